//! Native builders on other hosts: two Docker daemons, each in a network namespace of its own
//! and pinned to one core, reached over `tcp://` with mutual TLS (`DOCKER_TLS_VERIFY`,
//! `DOCKER_CERT_PATH`). A two-platform image is built with one platform on each host, with
//! the context sent by the BuildKit session's file sync over TLS (a one-file change sends
//! about that file), checked, published to the loopback registry from the daemons that built
//! it, pulled and run by the local daemon. Two builders for one platform share its jobs, and
//! take each other's when one is down, or is lost in the middle of a build. A certificate from
//! another CA and a builder that is down with no other for its platform are refused clearly
//! (exit 2); a builder killed or cut off (its daemon frozen) during a build fails its job with
//! what it was doing, the cut-off one within seconds, not at the request timeout.

mod support;

use std::process::{Command, Output};

use serde_json::Value;
use support::hosts::{Certificates, TlsHost};
use support::*;

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", describe(out)))
}

/// `context_bytes` of each built job, by platform.
fn context_bytes(report: &Value) -> Vec<(String, u64)> {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["platform"].as_str().unwrap().to_string(),
                i["context_bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `archbuild.toml` of the two-platform project, each platform on its builder.
fn project_file(repository: &str, amd64: &str, arm64: &str) -> String {
    format!(
        "[images.app]\ncontext = \"app\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\nrepository = \"{repository}\"\ntags = [\"1.0\"]\n\n[builders]\n\"linux/amd64\" = \"{amd64}\"\n\"linux/arm64\" = \"{arm64}\"\n"
    )
}

/// The two-platform project of these tests: `app` for amd64 on `amd64` and arm64 on `arm64`,
/// a 3 MiB file and a small one in its context, and a program printing "MESSAGE ARCH".
fn two_platform_project(p: &Project, repository: &str, amd64: &str, arm64: &str, message: &str) {
    p.write("archbuild.toml", project_file(repository, amd64, arm64));
    p.write(
        "app/Dockerfile",
        "FROM scratch\nARG TARGETARCH\nCOPY data.bin note.txt /\nCOPY app-${TARGETARCH} /app\nENTRYPOINT [\"/app\"]\n",
    );
    let data: Vec<u8> = (0u64..3 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    p.write("app/data.bin", &data);
    p.write("app/note.txt", "first\n");
    for arch in ["amd64", "arm64"] {
        p.write_exec(
            &format!("app/app-{arch}"),
            static_program(&format!("linux/{arch}"), &format!("{message} {arch}")),
        );
    }
}

/// (image, builder URL) of each built job.
fn built_on(report: &Value) -> Vec<(String, String)> {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["image"].as_str().unwrap().to_string(),
                i["endpoint_url"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn with_tls<'a>(cmd: &'a mut Command, certs: &std::path::Path) -> &'a mut Command {
    cmd.env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", certs)
}

fn tls(cmd: &mut Command, certs: &std::path::Path) -> Output {
    with_tls(cmd, certs).output().expect("run archbuild")
}

#[tokio::test]
async fn two_platforms_on_two_tls_hosts_with_file_sync_then_published_and_pulled() {
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(ca) = Certificates::new() else {
        return;
    };
    let hosts: Vec<Option<TlsHost>> = std::thread::scope(|s| {
        let started: Vec<_> = [0, 1]
            .into_iter()
            .map(|core| {
                let ca = &ca;
                s.spawn(move || TlsHost::start(ca, core))
            })
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let [Some(amd64_host), Some(mut arm64_host)] =
        <[Option<TlsHost>; 2]>::try_from(hosts).ok().unwrap()
    else {
        return;
    };
    let p = Project::new();
    let repository = format!("{}/team/{}", registry.addr, unique("remote"));
    two_platform_project(&p, &repository, &amd64_host.url, &arm64_host.url, "remote");
    let push = || {
        tls(
            &mut p.command(&["build", "--push", "--json", "--progress", "plain"]),
            ca.path(),
        )
    };
    let out = push();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        describe(&out),
        amd64_host.log()
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains(&format!("building on {}", amd64_host.url)),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("building on {}", arm64_host.url)),
        "{stderr}"
    );
    assert!(
        !stderr.contains("tar upload"),
        "file sync, not a tar: {stderr}"
    );
    let first = context_bytes(&json_of(&out));
    assert!(
        first.iter().all(|(_, b)| *b >= 3 << 20),
        "the whole context went: {first:?}"
    );

    // Each host really built its platform: the image is in that daemon.
    for (host, platform) in [(&amd64_host, "linux/amd64"), (&arm64_host, "linux/arm64")] {
        let images = Command::new("docker")
            .args(["-H", &format!("unix://{}", host.socket().display())])
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&images.stdout);
        let arch = platform.rsplit('/').next().unwrap();
        assert!(
            listed.contains(&format!("linux-{arch}")),
            "{platform} on {}: {listed}",
            host.url
        );
    }

    // One small file changed: file sync sends about that file, not the 3 MiB.
    p.write("app/note.txt", "second\n");
    let out = push();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let second = context_bytes(&json_of(&out));
    assert!(
        second.iter().all(|(_, b)| *b < 64 << 10),
        "only the change went: {second:?}"
    );

    // Published from the daemons that built it; the local daemon pulls and runs it.
    let reference = format!("{repository}:1.0");
    let verify = p.archbuild(&[
        "verify",
        &reference,
        "--platform",
        "linux/amd64,linux/arm64",
    ]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
    if std::env::consts::ARCH == "x86_64" {
        let _ = Command::new("docker")
            .args(["rmi", "-f", &reference])
            .output();
        run_ok(Command::new("docker").args(["pull", "-q", &reference]));
        let ran = run_ok(Command::new("docker").args(["run", "--rm", &reference]));
        assert_eq!(String::from_utf8_lossy(&ran.stdout), "remote amd64\n");
        let _ = Command::new("docker")
            .args(["rmi", "-f", &reference])
            .output();
    }

    // A client certificate from another CA: refused by the TLS handshake, said clearly.
    let Some(other) = Certificates::new() else {
        return;
    };
    let out = tls(&mut p.command(&["build", "--no-output"]), other.path());
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&amd64_host.url) || stderr.contains(&arm64_host.url),
        "{stderr}"
    );
    assert!(stderr.contains("not issued by the CA in"), "{stderr}");

    // Docker contexts made by the Docker CLI itself, each with its TLS material: no
    // DOCKER_CERT_PATH needed.
    let config_dir = p.path().join(".docker-config");
    for (name, host) in [("amd64-host", &amd64_host), ("arm64-host", &arm64_host)] {
        let pem = |f: &str| ca.path().join(f).display().to_string();
        run_ok(
            Command::new("docker")
                .env("DOCKER_CONFIG", &config_dir)
                .args(["context", "create", name, "--docker"])
                .arg(format!(
                    "host={},ca={},cert={},key={}",
                    host.url,
                    pem("ca.pem"),
                    pem("cert.pem"),
                    pem("key.pem")
                )),
        );
    }
    p.write(
        "archbuild.toml",
        format!(
            "[images.app]\ncontext = \"app\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\nrepository = \"{repository}\"\ntags = [\"1.0\"]\n\n[builders]\n\"linux/amd64\" = \"context:amd64-host\"\n\"linux/arm64\" = \"context:arm64-host\"\n"
        ),
    );
    p.write("app/note.txt", "by context\n");
    let out = p.archbuild(&["build", "--no-output", "--json", "--progress", "plain"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains(&format!("building on {}", amd64_host.url)),
        "{stderr}"
    );
    let via_context = context_bytes(&json_of(&out));
    assert!(
        via_context.iter().all(|(_, b)| *b < 64 << 10),
        "file sync: {via_context:?}"
    );

    // Two builders for one platform: its jobs (two images) go to them in turn, and each
    // image is published from the daemon that built it.
    let two_builders = format!(
        "[defaults]\nplatforms = [\"linux/amd64\"]\n\n[images.app]\ncontext = \"app\"\nrepository = \"{repository}\"\ntags = [\"spread\"]\n\n[images.tool]\ncontext = \"app\"\nrepository = \"{repository}-tool\"\ntags = [\"spread\"]\n\n[builders]\n\"linux/amd64\" = [\"{}\", \"{}\"]\n",
        amd64_host.url, arm64_host.url
    );
    p.write("archbuild.toml", &two_builders);
    let plan = p.archbuild(&["plan", "--json"]);
    assert_eq!(plan.status.code(), Some(0), "{}", describe(&plan));
    let plan = json_of(&plan);
    let routed: Vec<(&str, &str, &str)> = plan["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["image"].as_str().unwrap(),
                j["builder"]["url"].as_str().unwrap(),
                j["alternates"][0]["url"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        routed,
        vec![
            ("app", amd64_host.url.as_str(), arm64_host.url.as_str()),
            ("tool", arm64_host.url.as_str(), amd64_host.url.as_str()),
        ]
    );
    let out = tls(
        &mut p.command(&["build", "--push", "--json", "--progress", "plain"]),
        ca.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        built_on(&json_of(&out)),
        vec![
            ("app".to_string(), amd64_host.url.clone()),
            ("tool".to_string(), arm64_host.url.clone()),
        ]
    );
    for reference in [
        format!("{repository}:spread"),
        format!("{repository}-tool:spread"),
    ] {
        let verify = p.archbuild(&["verify", &reference, "--platform", "linux/amd64"]);
        assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
    }

    // A builder that is down (its daemon stopped; the namespace kept, so that nothing is
    // sent past it): its job goes to the platform's other builder, and is said so.
    let address = arm64_host.address.clone();
    arm64_host.stop_daemon();
    p.write("app/note.txt", "third\n");
    let out = tls(
        &mut p.command(&["build", "--no-output", "--json", "--progress", "plain"]),
        ca.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "[tool linux/amd64] builder {} is down, building on {} instead",
            arm64_host.url, amd64_host.url
        )),
        "{stderr}"
    );
    assert_eq!(
        built_on(&json_of(&out)),
        vec![
            ("app".to_string(), amd64_host.url.clone()),
            ("tool".to_string(), amd64_host.url.clone()),
        ]
    );

    // With no other builder for its platform, the job fails before anything is built: the
    // builder is named, with the setting that chose it.
    p.write(
        "archbuild.toml",
        project_file(&repository, &amd64_host.url, &arm64_host.url),
    );
    let out = tls(&mut p.command(&["build", "--no-output"]), ca.path());
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("tcp://{address}:2376")),
        "{stderr}"
    );
    assert!(stderr.contains("[builders] \"linux/arm64\""), "{stderr}");
    assert!(
        !stderr.contains("building on"),
        "nothing built on the other host: {stderr}"
    );
}

/// A base image for `host` holding one static program, `/nap`, which sleeps `NAP` seconds:
/// a `RUN` step that is still running when the test kills the builder.
fn import_nap_base(host: &TlsHost, p: &Project) -> String {
    import_nap_base_into(&[&format!("unix://{}", host.socket().display())], p)
}

/// [`import_nap_base`] into each daemon of `docker_hosts` (`-H` addresses).
fn import_nap_base_into(docker_hosts: &[&str], p: &Project) -> String {
    let nap = compile_c(
        "linux/amd64",
        "#include <stdlib.h>\n#include <unistd.h>\nint main(void) { const char *n = getenv(\"NAP\"); sleep(n ? atoi(n) : 5); return 0; }\n",
        true,
    );
    let root = p.write_exec("nap-root/nap", nap);
    let tar = p.path().join("nap.tar");
    run_ok(
        Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(root.parent().unwrap())
            .arg("nap"),
    );
    let name = "archbuild-test/nap:1".to_string();
    for docker_host in docker_hosts {
        run_ok(Command::new("docker").args(["-H", docker_host]).args([
            "import",
            &tar.display().to_string(),
            &name,
        ]));
    }
    name
}

/// Runs `cmd` and calls `when` with each line of its standard error; `when` returning true
/// runs `then` once. The whole output comes back, or the test fails after `limit`.
fn run_and_act_on(
    cmd: &mut Command,
    when: impl Fn(&str) -> bool,
    then: impl FnOnce(),
    limit: std::time::Duration,
) -> Output {
    use std::io::{BufRead, Read};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run archbuild");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let mut stderr = Vec::new();
    let mut then = Some(then);
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let Ok(line) = line else { break };
        if when(&line) {
            if let Some(act) = then.take() {
                act();
            }
        }
        stderr.extend_from_slice(line.as_bytes());
        stderr.push(b'\n');
    }
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "archbuild did not end within {limit:?}: {}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    Output {
        status,
        stdout: reader.join().unwrap(),
        stderr,
    }
}

#[tokio::test]
async fn a_builder_killed_during_a_build_fails_its_job_and_publishes_nothing() {
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(ca) = Certificates::new() else {
        return;
    };
    let Some(mut host) = TlsHost::start(&ca, 1) else {
        return;
    };
    forget_survivor();
    let p = Project::new();
    let base = import_nap_base(&host, &p);
    let repository = format!("{}/team/{}", registry.addr, unique("killed"));
    p.write(
        "archbuild.toml",
        format!(
            "[images.slow]\ncontext = \"slow\"\nplatforms = [\"linux/amd64\"]\nrepository = \"{repository}\"\ntags = [\"1.0\"]\n\n[images.survivor]\ncontext = \"survivor\"\nplatforms = [\"linux/arm64\"]\nrepository = \"{repository}-survivor\"\ntags = [\"1.0\"]\n\n[builders]\n\"linux/amd64\" = \"{}\"\n\"linux/arm64\" = \"unix:///var/run/docker.sock\"\n",
            host.url
        ),
    );
    p.write(
        "slow/Dockerfile",
        format!("FROM {base}\nCOPY data.bin /\nENV NAP=6\nRUN [\"/nap\"]\n"),
    );
    p.write("slow/data.bin", vec![7u8; 1 << 20]);
    p.write("survivor/Dockerfile", "FROM scratch\nCOPY note.txt /\n");
    p.write("survivor/note.txt", "still here\n");

    let killed = std::sync::atomic::AtomicBool::new(false);
    let out = run_and_act_on(
        with_tls(
            &mut p.command(&["build", "--push", "--json", "--progress", "plain"]),
            ca.path(),
        ),
        |line| line.starts_with("[slow linux/amd64]") && line.contains("RUN [\"/nap\"]"),
        || {
            host.kill_daemon();
            killed.store(true, std::sync::atomic::Ordering::SeqCst);
        },
        std::time::Duration::from_secs(120),
    );
    assert!(
        killed.into_inner(),
        "the RUN step never started: {}",
        describe(&out)
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "the builder at {} went away during step `",
            host.url
        )) && stderr.contains("RUN [\"/nap\"]`")
            && stderr.contains("when the builder is back, run the build again"),
        "{stderr}"
    );
    // Nothing published, neither the failed image nor the one that built.
    let registry_path = |repo: &str| {
        let path = repo.split_once('/').unwrap().1;
        format!("/v2/{path}/manifests/1.0")
    };
    for repo in [repository.clone(), format!("{repository}-survivor")] {
        assert_eq!(
            http_head(&registry.addr, &registry_path(&repo)),
            Some(404),
            "{repo}"
        );
    }
    // The surviving builder keeps no temporary or final names of this run.
    let local =
        run_ok(Command::new("docker").args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    let listed = String::from_utf8_lossy(&local.stdout);
    assert!(
        !listed.lines().any(|l| l.contains("survivor")),
        "names left on the surviving builder: {listed}"
    );

    // The builder is back: the same command finishes, from the cache each builder kept.
    host.restart_daemon(&ca);
    let out = tls(
        &mut p.command(&["build", "--push", "--json", "--progress", "plain"]),
        ca.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        describe(&out),
        host.log()
    );
    let report = json_of(&out);
    let images = report["images"].as_array().unwrap();
    let job = |name: &str| images.iter().find(|i| i["image"] == name).unwrap().clone();
    assert!(
        job("slow")["cached_steps"].as_u64().unwrap() >= 1,
        "the COPY before the killed step came from the cache: {report}"
    );
    assert!(
        job("survivor")["cached_steps"].as_u64().unwrap() >= 1,
        "the surviving builder's cache: {report}"
    );
    for (reference, platform) in [
        (format!("{repository}:1.0"), "linux/amd64"),
        (format!("{repository}-survivor:1.0"), "linux/arm64"),
    ] {
        let verify = p.archbuild(&["verify", &reference, "--platform", platform]);
        assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
    }
    forget_survivor();
}

/// Removes the final names a finished run gives the surviving job in the local daemon.
fn forget_survivor() {
    let _ = Command::new("docker")
        .args(["rmi", "archbuild-local/survivor:1.0-linux-arm64"])
        .output();
}

#[tokio::test]
async fn one_platform_over_ssh_and_one_over_tls_with_file_sync_then_pulled() {
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(ca) = Certificates::new() else {
        return;
    };
    let (Some(tls_host), Some(ssh_host)) = (TlsHost::start(&ca, 0), TlsHost::start(&ca, 1)) else {
        return;
    };
    let Some(ssh) = ssh_host.start_sshd() else {
        return;
    };
    let p = Project::new();
    let repository = format!("{}/team/{}", registry.addr, unique("ssh"));
    two_platform_project(&p, &repository, &tls_host.url, &ssh.url, "over ssh");
    let build = |other_key: bool| {
        let mut cmd = p.command(&["build", "--push", "--json", "--progress", "plain"]);
        cmd.env("PATH", ssh.path(other_key));
        tls(&mut cmd, ca.path())
    };
    let out = build(false);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains(&format!("building on {}", ssh.url)),
        "{stderr}"
    );
    assert!(
        !stderr.contains("tar upload"),
        "file sync, not a tar: {stderr}"
    );
    let first = context_bytes(&json_of(&out));
    assert!(
        first.iter().all(|(_, b)| *b >= 3 << 20),
        "the whole context went: {first:?}"
    );
    // The ssh host's daemon has the arm64 image: it was built there.
    let images = run_ok(
        Command::new("docker")
            .args(["-H", &format!("unix://{}", ssh_host.socket().display())])
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"]),
    );
    assert!(
        String::from_utf8_lossy(&images.stdout).contains("linux-arm64"),
        "{}",
        String::from_utf8_lossy(&images.stdout)
    );

    // File sync over ssh as over TLS: a one-line change sends about that line.
    p.write("app/note.txt", "second\n");
    let out = build(false);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let second = context_bytes(&json_of(&out));
    assert!(
        second.iter().all(|(_, b)| *b < 64 << 10),
        "only the change went: {second:?}"
    );

    let reference = format!("{repository}:1.0");
    let verify = p.archbuild(&[
        "verify",
        &reference,
        "--platform",
        "linux/amd64,linux/arm64",
    ]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
    let _ = Command::new("docker")
        .args(["rmi", "-f", &reference])
        .output();
    run_ok(Command::new("docker").args(["pull", "-q", "--platform", "linux/arm64", &reference]));
    let inspect = run_ok(Command::new("docker").args([
        "image",
        "inspect",
        "--format",
        "{{.Architecture}}",
        &reference,
    ]));
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), "arm64");
    let _ = Command::new("docker")
        .args(["rmi", "-f", &reference])
        .output();

    // A key the server does not take: ssh's own words, the endpoint, exit 2, nothing built.
    p.write("app/note.txt", "third\n");
    let out = build(true);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&ssh.url), "{stderr}");
    assert!(stderr.contains("Permission denied (publickey)"), "{stderr}");
    assert!(!stderr.contains("building on"), "{stderr}");
}

/// The one-image project of the lost-builder tests: `slow` for linux/amd64, whose `RUN`
/// sleeps on the `nap` base image, on the builders `builders` (a TOML value).
fn slow_project(p: &Project, base: &str, repository: &str, builders: &str) {
    p.write(
        "archbuild.toml",
        format!(
            "[images.slow]\ncontext = \"slow\"\nplatforms = [\"linux/amd64\"]\nrepository = \"{repository}\"\ntags = [\"1.0\"]\n\n[builders]\n\"linux/amd64\" = {builders}\n"
        ),
    );
    p.write(
        "slow/Dockerfile",
        format!("FROM {base}\nCOPY data.bin /\nENV NAP=6\nRUN [\"/nap\"]\n"),
    );
    p.write("slow/data.bin", vec![7u8; 1 << 20]);
}

fn registry_has(registry: &Registry, repository: &str, tag: &str) -> Option<u16> {
    let path = repository.split_once('/').unwrap().1;
    http_head(&registry.addr, &format!("/v2/{path}/manifests/{tag}"))
}

/// How a test cuts a builder off without closing its connections.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Its daemon frozen (SIGSTOP).
    Freeze,
    /// Every packet into and out of its namespace dropped (iptables).
    DropPackets,
}

#[tokio::test]
async fn a_builder_whose_daemon_freezes_during_a_build_fails_its_job_within_seconds() {
    a_builder_cut_off_during_a_build_fails_its_job_within_seconds(Cut::Freeze, "frozen").await;
}

#[tokio::test]
async fn a_builder_whose_network_drops_packets_during_a_build_fails_its_job_within_seconds() {
    if require("iptables (Debian package iptables)", which("iptables")).is_none() {
        return;
    }
    a_builder_cut_off_during_a_build_fails_its_job_within_seconds(Cut::DropPackets, "dropped")
        .await;
}

/// A build on a host that is cut off (`how`) while a `RUN` step sleeps fails within seconds,
/// with the step named, and publishes nothing; the job on the local daemon, the image
/// `bystander-NAME`, finishes but is neither published nor left named.
async fn a_builder_cut_off_during_a_build_fails_its_job_within_seconds(how: Cut, name: &str) {
    let bystander = format!("bystander-{name}");
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(ca) = Certificates::new() else {
        return;
    };
    let Some(host) = TlsHost::start(&ca, 1) else {
        return;
    };
    forget(&bystander);
    let p = Project::new();
    let base = import_nap_base(&host, &p);
    let repository = format!("{}/team/{}", registry.addr, unique("cutoff"));
    slow_project(&p, &base, &repository, &format!("\"{}\"", host.url));
    // A second job on the local daemon, which stays up: it finishes, and is neither
    // published nor left named.
    let mut file = std::fs::read_to_string(p.path().join("archbuild.toml")).unwrap();
    file = file.replace(
        "[builders]\n",
        &format!("[images.{bystander}]\ncontext = \"{bystander}\"\nplatforms = [\"linux/arm64\"]\nrepository = \"{repository}-{bystander}\"\ntags = [\"1.0\"]\n\n[builders]\n\"linux/arm64\" = \"unix:///var/run/docker.sock\"\n"),
    );
    p.write("archbuild.toml", file);
    p.write(
        &format!("{bystander}/Dockerfile"),
        "FROM scratch\nCOPY note.txt /\n",
    );
    // Content of its own: the same step as another test's job, built at the same time on
    // the same daemon, would be shared between the two builds and not count as cached there.
    p.write(&format!("{bystander}/note.txt"), unique(&bystander));

    // The host is cut off while the RUN step sleeps: frozen, its connections stay open and
    // its port takes connections, but nothing answers; behind dropped packets nothing at all
    // comes back.
    let frozen_at = std::sync::Mutex::new(None);
    let out = run_and_act_on(
        with_tls(
            &mut p.command(&["build", "--push", "--json", "--progress", "plain"]),
            ca.path(),
        ),
        |line| line.starts_with("[slow linux/amd64]") && line.contains("RUN [\"/nap\"]"),
        || {
            match how {
                Cut::Freeze => host.freeze_daemon(),
                Cut::DropPackets => host.drop_packets(),
            }
            *frozen_at.lock().unwrap() = Some(std::time::Instant::now());
        },
        std::time::Duration::from_secs(120),
    );
    let ended = std::time::Instant::now();
    host.resume_daemon();
    host.pass_packets();
    let frozen_at = frozen_at
        .into_inner()
        .unwrap()
        .unwrap_or_else(|| panic!("the RUN step never started: {}", describe(&out)));
    let took = ended - frozen_at;
    eprintln!("{how:?}: cut off to error: {:.1} s", took.as_secs_f64());
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "the builder at {} went away during step `",
            host.url
        )) && stderr.contains("RUN [\"/nap\"]`")
            && stderr.contains("has not answered /_ping for 1")
            && stderr.contains("nothing was published")
            && stderr.contains("when the builder is back, run the build again"),
        "{stderr}"
    );
    // The watchdog gives up after 10 s of silence; the request timeout is 6 hours.
    assert!(
        took >= std::time::Duration::from_secs(9) && took < std::time::Duration::from_secs(25),
        "{took:?} from the cut to the error: {stderr}"
    );
    for repo in [repository.clone(), format!("{repository}-{bystander}")] {
        assert_eq!(registry_has(&registry, &repo, "1.0"), Some(404), "{repo}");
    }
    let local =
        run_ok(Command::new("docker").args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    let listed = String::from_utf8_lossy(&local.stdout);
    assert!(
        !listed.lines().any(|l| l.contains(&bystander)),
        "names left on the surviving builder: {listed}"
    );
    forget(&bystander);
}

#[tokio::test]
async fn a_builder_killed_during_a_build_hands_its_job_to_the_platforms_other_builder() {
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(ca) = Certificates::new() else {
        return;
    };
    let Some(mut host) = TlsHost::start(&ca, 1) else {
        return;
    };
    let local = "unix:///var/run/docker.sock";
    let p = Project::new();
    let host_socket = format!("unix://{}", host.socket().display());
    let base = import_nap_base_into(&[&host_socket, local], &p);
    let repository = format!("{}/team/{}", registry.addr, unique("handover"));
    // The host first: the one image goes to it, the local daemon is its alternate.
    slow_project(
        &p,
        &base,
        &repository,
        &format!("[\"{}\", \"{local}\"]", host.url),
    );
    let killed = std::sync::atomic::AtomicBool::new(false);
    let out = run_and_act_on(
        with_tls(
            &mut p.command(&["build", "--push", "--json", "--progress", "plain"]),
            ca.path(),
        ),
        |line| {
            line.starts_with("[slow linux/amd64]")
                && line.contains("RUN [\"/nap\"]")
                && !killed.load(std::sync::atomic::Ordering::SeqCst)
        },
        || {
            host.kill_daemon();
            killed.store(true, std::sync::atomic::Ordering::SeqCst);
        },
        std::time::Duration::from_secs(180),
    );
    let cleanup = || {
        for name in [
            base.clone(),
            format!("{repository}:1.0"),
            "archbuild-local/slow:1.0-linux-amd64".to_string(),
        ] {
            let _ = Command::new("docker").args(["rmi", &name]).output();
        }
    };
    assert!(
        killed.load(std::sync::atomic::Ordering::SeqCst),
        "the RUN step never started: {}",
        describe(&out)
    );
    if out.status.code() != Some(0) {
        cleanup();
    }
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "[slow linux/amd64] builder {} was lost, building again on {local}: it went away during step `",
            host.url
        )) && stderr.contains(&format!("[slow linux/amd64] building on {local}")),
        "{stderr}"
    );
    let report = json_of(&out);
    assert_eq!(
        built_on(&report),
        vec![("slow".to_string(), local.to_string())]
    );
    let lost = &report["images"][0]["lost_builders"];
    assert_eq!(lost[0]["endpoint"], host.url.as_str(), "{report}");
    assert!(
        lost[0]["step"]
            .as_str()
            .unwrap_or_default()
            .contains("RUN [\"/nap\"]"),
        "{report}"
    );
    // The build report keeps the handover.
    let written: Value =
        serde_json::from_slice(&std::fs::read(p.path().join(".archbuild/report.json")).unwrap())
            .unwrap();
    let handover = &written["images"][0]["handovers"][0];
    assert_eq!(
        (handover["from"].as_str(), handover["to"].as_str()),
        (Some(host.url.as_str()), Some(local)),
        "{written}"
    );
    // Published from the builder that finished it.
    let verify = p.archbuild(&[
        "verify",
        &format!("{repository}:1.0"),
        "--platform",
        "linux/amd64",
    ]);
    cleanup();
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
}

/// Removes the final names a finished run would give the local job `image` of a cut-off test.
fn forget(image: &str) {
    let _ = Command::new("docker")
        .args(["rmi", &format!("archbuild-local/{image}:1.0-linux-arm64")])
        .output();
}
