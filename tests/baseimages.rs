//! Real base images and `RUN` steps: Debian bookworm root filesystems (debootstrap, amd64 and
//! arm64) pushed by skopeo to the loopback registry as a multi-platform base, and real
//! Dockerfiles built against it through BuildKit: `RUN` steps on the native platform, a
//! multi-stage build whose compile stage runs on `$BUILDPLATFORM` and picks the program for
//! `TARGETARCH`, an arm64 `RUN` step under QEMU registered through `binfmt_misc` (set up and
//! taken down here), the same step with the handler gone (archbuild's `exec format error`
//! explanation), a base tag that moved (rebuilt, and the run says why), and `--check-bases`.
//! Results are read back through `check`, `verify`, skopeo and `docker pull`/`docker run`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::debian::*;
use support::*;

/// Pushes bookworm for amd64 and arm64 (or amd64 only) as `REG/library/debian:TAG`, with an
/// extra layer holding `/etc/base-version` when `version` is given; returns the reference.
fn push_debian(
    registry: &Registry,
    work: &Path,
    tag: &str,
    arm64: bool,
    version: Option<&str>,
) -> Option<String> {
    require("skopeo", which("skopeo"))?;
    let mut archs = vec![("amd64", "linux/amd64")];
    if arm64 {
        archs.push(("arm64", "linux/arm64"));
    }
    let mut images = Vec::new();
    for (arch, platform) in archs {
        let mut layers = vec![rootfs_layer("bookworm", arch)?];
        if let Some(version) = version {
            layers.push(version_layer(work, version));
        }
        images.push((platform, "/bin/bash", layers));
    }
    let dir = work.join(unique("base-layout"));
    layout(&dir, "bookworm", &images);
    let reference = format!("{}/library/debian:{tag}", registry.addr);
    run_ok(Command::new("skopeo").args([
        "copy",
        "--all",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci:{}:bookworm", dir.display()),
        &format!("docker://{reference}"),
    ]));
    Some(reference)
}

fn version_layer(work: &Path, version: &str) -> PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    let data = format!("{version}\n");
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, "etc/base-version", data.as_bytes())
        .unwrap();
    let path = work.join(format!("version-{version}.tar"));
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();
    path
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", describe(out)))
}

fn errors(report: &Value) -> Vec<Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .cloned()
        .collect()
}

fn docker_run(reference: &str, args: &[&str]) -> String {
    let _ = Command::new("docker")
        .args(["rmi", "-f", reference])
        .output();
    run_ok(Command::new("docker").args(["pull", "-q", reference]));
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", reference]).args(args);
    let out = String::from_utf8_lossy(&run_ok(&mut cmd).stdout).to_string();
    let _ = Command::new("docker")
        .args(["rmi", "-f", reference])
        .output();
    out
}

#[tokio::test]
async fn run_steps_and_a_cross_compiling_build_on_a_real_debian_base() {
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let Some(base) = push_debian(&registry, work.path(), "bookworm", true, None) else {
        return;
    };
    let p = Project::new();
    p.write(
        "archbuild.toml",
        format!(
            "[defaults]\nregistry = \"{}/team\"\n[images.native]\ncontext = \"native\"\nplatforms = [\"linux/amd64\"]\n[images.cross]\ncontext = \"cross\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n",
            registry.addr
        ),
    );
    p.write(
        "native/Dockerfile",
        format!("FROM {base}\nRUN echo \"made by RUN on $(uname -m)\" > /etc/archbuild-note && test -x /bin/bash\nENTRYPOINT [\"cat\", \"/etc/archbuild-note\"]\n"),
    );
    // The compile stage runs on the build platform and hands over the program for the
    // target; the final stage has no RUN, so nothing is emulated.
    p.write(
        "cross/Dockerfile",
        format!("FROM --platform=$BUILDPLATFORM {base} AS build\nARG TARGETARCH\nARG BUILDPLATFORM\nCOPY app-${{TARGETARCH}} /out/app\nRUN chmod 755 /out/app && echo \"$BUILDPLATFORM\" > /out/built-on\nFROM {base}\nCOPY --from=build /out/ /usr/local/bin/\nENTRYPOINT [\"/usr/local/bin/app\"]\n"),
    );
    for arch in ["amd64", "arm64"] {
        // Linked against glibc: the check resolves libc.so.6 in the Debian base.
        p.write_exec(
            &format!("cross/app-{arch}"),
            dynamic_program(&format!("linux/{arch}"), &format!("cross-built for {arch}")),
        );
    }
    let out = p.archbuild(&["build", "--push", "--json", "--progress", "plain"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report = json_of(&out);
    assert_eq!(errors(&report), Vec::<Value>::new(), "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("emulated"),
        "nothing is emulated: {stderr}"
    );

    for (image, platforms) in [
        ("native", "linux/amd64"),
        ("cross", "linux/amd64,linux/arm64"),
    ] {
        let reference = format!("{}/team/{image}:latest", registry.addr);
        let verify = p.archbuild(&[
            "verify",
            &reference,
            "--platform",
            platforms,
            "--deep",
            "--json",
        ]);
        assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
        let check = p.archbuild(&["check", &reference, "--json"]);
        assert_eq!(check.status.code(), Some(0), "{}", describe(&check));
        let raw = run_ok(Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ]));
        let index: Value = serde_json::from_slice(&raw.stdout).unwrap();
        let count = index["manifests"].as_array().unwrap().len();
        assert_eq!(count, platforms.split(',').count(), "{index}");
    }
    if std::env::consts::ARCH == "x86_64" {
        let native = format!("{}/team/native:latest", registry.addr);
        assert_eq!(docker_run(&native, &[]), "made by RUN on x86_64\n");
        let cross = format!("{}/team/cross:latest", registry.addr);
        assert_eq!(docker_run(&cross, &[]), "cross-built for amd64\n");
    }

    // --check-bases: the base covers both platforms; an amd64-only base does not.
    let audit = p.archbuild(&[
        "audit",
        "--check-bases",
        "--platform",
        "linux/amd64,linux/arm64",
        "--json",
    ]);
    assert_eq!(audit.status.code(), Some(0), "{}", describe(&audit));
    let Some(amd64_only) = push_debian(&registry, work.path(), "amd64-only", false, None) else {
        return;
    };
    p.write(
        "cross/Dockerfile",
        format!("FROM {amd64_only}\nARG TARGETARCH\nCOPY app-${{TARGETARCH}} /usr/local/bin/app\n"),
    );
    let audit = p.archbuild(&[
        "audit",
        "--check-bases",
        "--platform",
        "linux/amd64,linux/arm64",
        "--json",
    ]);
    assert_eq!(audit.status.code(), Some(1), "{}", describe(&audit));
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(
        text.contains("amd64-only") && text.contains("linux/arm64"),
        "{text}"
    );
}

/// Registers QEMU's arm64 handler for the test and restores the machine's state afterwards.
struct Emulation {
    was_enabled: bool,
}

const HANDLER: &str = "/proc/sys/fs/binfmt_misc/qemu-aarch64";

impl Emulation {
    fn set_up() -> Option<Emulation> {
        require(
            "update-binfmts (Debian package binfmt-support)",
            which("update-binfmts"),
        )?;
        require(
            "qemu-aarch64-static (Debian package qemu-user-static)",
            which("qemu-aarch64-static"),
        )?;
        if !Path::new("/proc/sys/fs/binfmt_misc/status").exists() {
            run_ok(Command::new("mount").args([
                "-t",
                "binfmt_misc",
                "binfmt_misc",
                "/proc/sys/fs/binfmt_misc",
            ]));
        }
        let was_enabled = handler_enabled();
        run_ok(Command::new("update-binfmts").args(["--enable", "qemu-aarch64"]));
        assert!(handler_enabled(), "qemu-aarch64 registered");
        Some(Emulation { was_enabled })
    }

    fn disable(&self) {
        run_ok(Command::new("update-binfmts").args(["--disable", "qemu-aarch64"]));
        assert!(!handler_enabled());
    }
}

fn handler_enabled() -> bool {
    std::fs::read_to_string(HANDLER).is_ok_and(|s| s.starts_with("enabled"))
}

impl Drop for Emulation {
    fn drop(&mut self) {
        let action = if self.was_enabled {
            "--enable"
        } else {
            "--disable"
        };
        let _ = Command::new("update-binfmts")
            .args([action, "qemu-aarch64"])
            .output();
    }
}

#[tokio::test]
async fn an_arm64_run_step_runs_under_emulation_and_fails_clearly_without_it() {
    let Some(_docker) = docker().await else {
        return;
    };
    if std::env::consts::ARCH != "x86_64" {
        return; // arm64 is native there
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let Some(base) = push_debian(&registry, work.path(), "bookworm", true, None) else {
        return;
    };
    let Some(emulation) = Emulation::set_up() else {
        return;
    };
    let p = Project::new();
    let repository = format!("{}/team/{}", registry.addr, unique("emulated"));
    p.write(
        "archbuild.toml",
        format!("[images.emu]\ncontext = \"emu\"\nplatforms = [\"linux/arm64\"]\nrepository = \"{repository}\"\n"),
    );
    p.write(
        "emu/Dockerfile",
        format!("FROM {base}\nRUN uname -m > /arch\nENTRYPOINT [\"cat\", \"/arch\"]\n"),
    );
    let out = p.archbuild(&["build", "--push", "--progress", "plain"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(RUN steps emulated)"), "{stderr}");
    let reference = format!("{repository}:latest");
    let verify = p.archbuild(&["verify", &reference, "--platform", "linux/arm64", "--json"]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
    // The RUN step ran as arm64 (under QEMU), and the image runs the same way.
    let _ = Command::new("docker")
        .args(["rmi", "-f", &reference])
        .output();
    let ran = run_ok(Command::new("docker").args([
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        &reference,
    ]));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "aarch64\n");
    let _ = Command::new("docker")
        .args(["rmi", "-f", &reference])
        .output();

    // Without the handler the step cannot run: archbuild's explanation, exit 2.
    emulation.disable();
    let out = p.archbuild(&["build", "--no-cache", "--progress", "plain"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("'exec format error'"), "{stderr}");
    assert!(
        stderr.contains("cannot run linux/arm64 programs"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[builders]") && stderr.contains("--platform=$BUILDPLATFORM"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_base_tag_that_moved_rebuilds_and_says_why() {
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let Some(base) = push_debian(&registry, work.path(), "moving", false, Some("v1")) else {
        return;
    };
    let p = Project::new();
    let name = unique("moving");
    p.write(
        "archbuild.toml",
        format!("[images.app]\ncontext = \"app\"\nplatforms = [\"linux/amd64\"]\nrepository = \"{}/team/{name}\"\n", registry.addr),
    );
    p.write(
        "app/Dockerfile",
        format!("FROM {base}\nRUN cp /etc/base-version /seen\nENTRYPOINT [\"cat\", \"/seen\"]\n"),
    );
    let build = || p.archbuild(&["build", "--no-output", "--progress", "plain"]);
    let out = build();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = build();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("unchanged: reusing"),
        "nothing moved yet: {stderr}"
    );

    push_debian(&registry, work.path(), "moving", false, Some("v2"));
    let out = build();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("unchanged: reusing"), "{stderr}");
    assert!(
        stderr.contains(&format!("base {base} moved from sha256:")),
        "{stderr}"
    );
    // The daemon's own platform is tagged as after `docker build`: it has the new base.
    let local = format!("{}/team/{name}:latest", registry.addr);
    let ran = run_ok(Command::new("docker").args(["run", "--rm", &local]));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "v2\n");
    let _ = Command::new("docker").args(["rmi", "-f", &local]).output();
}
