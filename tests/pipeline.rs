//! `archbuild build` end to end: real BuildKit builds through the daemon, the content check
//! of every image, the OCI layout (read back by skopeo), `--push` to a real registry (read
//! back by skopeo and pulled and run by the daemon), and the check of the same images from
//! the daemon, the layout and the registry.

mod support;

use serde_json::Value;
use support::*;

const UNLINK: &str = "#include <unistd.h>\nint main(int argc, char **argv) { return argc > 1 && unlink(argv[1]) == 0 ? 0 : 1; }\n";

/// A project of five images, one per content-check scenario of the issue.
fn scenario_project(registry: Option<&str>) -> Project {
    let p = Project::new();
    let repo = registry
        .map(|r| format!("registry = \"{r}/{}\"\n", unique("e2e")))
        .unwrap_or_default();
    p.write(
        "archbuild.toml",
        format!(
            r#"[defaults]
platforms = ["linux/amd64", "linux/arm64"]
{repo}
[images.good]
context = "good"
check = {{ binaries = ["/app"] }}

[images.wrongarch]
context = "wrongarch"
platforms = ["linux/arm64"]

[images.noloader]
context = "noloader"
platforms = ["linux/amd64"]

[images.nointerp]
context = "nointerp"
platforms = ["linux/amd64"]

[images.whiteout]
context = "whiteout"
platforms = ["linux/amd64"]
"#
        ),
    );
    p.write(
        "good/Dockerfile",
        "FROM scratch\nARG TARGETARCH\nCOPY app-${TARGETARCH} /app\nCOPY data.bin /data.bin\nENTRYPOINT [\"/app\"]\n",
    );
    // Over two gzip chunks of data: the layer is published as several gzip members, which
    // the daemon's pull must read back to the same diffID.
    let data: Vec<u8> = (0u64..9 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    p.write("good/data.bin", data);
    p.write_exec(
        "good/app-amd64",
        static_program("linux/amd64", "hello from amd64"),
    );
    p.write_exec(
        "good/app-arm64",
        static_program("linux/arm64", "hello from arm64"),
    );
    // The laptop mistake: a program built on the amd64 host copied into the arm64 image.
    p.write(
        "wrongarch/Dockerfile",
        "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n",
    );
    p.write_exec("wrongarch/app", static_program("linux/amd64", "wrong"));
    p.write(
        "noloader/Dockerfile",
        "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n",
    );
    p.write_exec("noloader/app", dynamic_program("linux/amd64", "dynamic"));
    p.write(
        "nointerp/Dockerfile",
        "FROM scratch\nCOPY run.sh /run.sh\nENTRYPOINT [\"/run.sh\"]\n",
    );
    p.write_exec("nointerp/run.sh", "#!/bin/bash\necho hi\n");
    // A wrong-arch file deleted by a later layer: a whiteout hides it from the final image.
    p.write(
        "whiteout/Dockerfile",
        "FROM scratch\nCOPY app /app\nCOPY old /old\nCOPY unlink /unlink\nRUN [\"/unlink\", \"/old\"]\nENTRYPOINT [\"/app\"]\n",
    );
    p.write_exec("whiteout/app", static_program("linux/amd64", "app"));
    p.write_exec("whiteout/old", static_program("linux/arm64", "old"));
    p.write_exec("whiteout/unlink", compile_c("linux/amd64", UNLINK, true));
    p
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", describe(out)))
}

/// `(kind, image name prefix, platform, path)` of every error finding, sorted.
fn errors(doc: &Value) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
            let image = s("image");
            let name = image
                .rsplit('/')
                .next()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string();
            (s("kind"), name, s("platform"), s("path"))
        })
        .collect();
    v.sort();
    v
}

fn expected_scenario_errors() -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = [
        ("elf-arch-mismatch", "wrongarch", "linux/arm64", "/app"),
        ("missing-interpreter", "nointerp", "linux/amd64", "/run.sh"),
        ("missing-loader", "noloader", "linux/amd64", "/app"),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .collect();
    v.sort();
    v
}

#[tokio::test]
async fn build_checks_every_image_and_refuses_to_publish_findings() {
    let Some(_docker) = docker().await else {
        return;
    };
    let p = scenario_project(None);

    let out = p.archbuild(&["build", "--json", "--progress", "plain"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let doc = json(&out);
    assert_eq!(errors(&doc), expected_scenario_errors(), "{doc:#}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not publishing"), "{stderr}");
    assert!(
        !p.path().join(".archbuild/oci/index.json").exists(),
        "nothing may be published when the check finds errors"
    );
    // The report says why, image by image.
    let report: Value =
        serde_json::from_slice(&std::fs::read(p.path().join(".archbuild/report.json")).unwrap())
            .unwrap();
    let wrong = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "wrongarch")
        .unwrap();
    assert_eq!(wrong["findings"][0]["kind"], "elf-arch-mismatch");
    assert_eq!(wrong["verified"], false);

    // The same images, read from the daemon by `check`.
    let daemon = p.archbuild(&[
        "check",
        "docker-daemon:archbuild-local/wrongarch:latest-linux-arm64",
        "--json",
    ]);
    assert_eq!(daemon.status.code(), Some(1), "{}", describe(&daemon));
    let findings = json(&daemon)["findings"].clone();
    assert_eq!(findings[0]["kind"], "elf-arch-mismatch");
    assert_eq!(findings[0]["expected"], "aarch64 (ELF64, little-endian)");
    assert_eq!(findings[0]["actual"], "x86-64 (ELF64, little-endian)");

    // --allow-findings publishes to the layout anyway; the exit status still says findings.
    let out = p.archbuild(&["build", "--json", "--allow-findings"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(errors(&json(&out)), expected_scenario_errors());
    let layout = p.path().join(".archbuild/oci");
    for (image, kind) in [
        ("wrongarch", Some("elf-arch-mismatch")),
        ("noloader", Some("missing-loader")),
        ("nointerp", Some("missing-interpreter")),
        ("whiteout", None),
        ("good", None),
    ] {
        let source = format!("oci:{}:{image}:latest", layout.display());
        let out = p.archbuild(&["check", &source, "--json"]);
        let doc = json(&out);
        match kind {
            Some(kind) => {
                assert_eq!(out.status.code(), Some(1), "{image}: {}", describe(&out));
                assert_eq!(doc["findings"][0]["kind"], kind, "{image}: {doc:#}");
            }
            None => assert_eq!(out.status.code(), Some(0), "{image}: {}", describe(&out)),
        }
    }
    // skopeo, an independent reader, sees a two-platform OCI index for the good image.
    let raw = run_ok(std::process::Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:good:latest", layout.display()),
    ]));
    let index: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
}

#[tokio::test]
async fn build_push_verifies_the_tag_and_the_daemon_pulls_and_runs_it() {
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let p = scenario_project(Some(&registry.addr));

    // --no-output builds and checks only: nothing is written, nothing is pushed.
    let out = p.archbuild(&["build", "good", "--no-output", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(json(&out)["published"], serde_json::json!([]));
    assert_eq!(json(&out)["checks"].as_array().unwrap().len(), 2);
    assert!(!p.path().join(".archbuild/oci").exists());

    let out = p.archbuild(&[
        "build",
        "good",
        "--push",
        "--metadata-file",
        "meta.json",
        "--progress",
        "plain",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("verified: linux/amd64, linux/arm64"),
        "{stdout}"
    );

    let meta: Value = serde_json::from_slice(&std::fs::read(p.path().join("meta.json")).unwrap())
        .expect("metadata file");
    let digest = meta["good"]["containerimage.digest"].as_str().unwrap();
    let name = meta["good"]["image.name"].as_str().unwrap().to_string();
    let reference = name.split(',').next().unwrap().to_string();
    assert!(reference.starts_with(&registry.addr), "{reference}");

    // skopeo reads the pushed index: its digest is what archbuild reported.
    let raw = run_ok(std::process::Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]));
    use sha2::Digest;
    let sha = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&raw.stdout)));
    assert_eq!(sha, digest);

    // The release gate, from the registry.
    let verify = p.archbuild(&[
        "verify",
        &reference,
        "--platform",
        "linux/amd64,linux/arm64",
        "--json",
    ]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
    assert_eq!(json(&verify)["digest"], digest);
    let missing = p.archbuild(&["verify", &reference, "--platform", "linux/arm/v7", "--json"]);
    assert_eq!(missing.status.code(), Some(1), "{}", describe(&missing));
    assert_eq!(json(&missing)["findings"][0]["kind"], "platform-missing");

    // The daemon pulls its own platform's child and the container runs.
    if std::env::consts::ARCH == "x86_64" {
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", &reference])
            .output();
        run_ok(std::process::Command::new("docker").args(["pull", "-q", &reference]));
        let ran = run_ok(std::process::Command::new("docker").args(["run", "--rm", &reference]));
        assert_eq!(String::from_utf8_lossy(&ran.stdout), "hello from amd64\n");
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", &reference])
            .output();
    }

    // A registry copy of a broken image is checked like the local one.
    let out = p.archbuild(&["build", "wrongarch", "--push", "--allow-findings", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let pushed = json(&out)["published"][0]["tags"][0]
        .as_str()
        .unwrap()
        .to_string();
    let check = p.archbuild(&["check", &pushed, "--json"]);
    assert_eq!(check.status.code(), Some(1), "{}", describe(&check));
    let doc = json(&check);
    assert_eq!(doc["findings"][0]["kind"], "elf-arch-mismatch");
    assert_eq!(doc["findings"][0]["platform"], "linux/arm64");
    assert_eq!(doc["findings"][0]["path"], "/app");
}

/// The report's `exports` of image `name`: how many platform images this run exported from
/// the daemon, for the check and the publish together.
fn exports_of(p: &Project, name: &str) -> u64 {
    let report: Value =
        serde_json::from_slice(&std::fs::read(p.path().join(".archbuild/report.json")).unwrap())
            .unwrap();
    let image = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name);
    image.expect("the image is in the report")["exports"]
        .as_u64()
        .unwrap()
}

/// A release exports each platform image from the daemon once: the check's read of the
/// export also compresses its layers, publishing then exports nothing; a push after a plain
/// build exports and compresses nothing again; and both write the same index.
#[tokio::test]
async fn a_release_exports_each_image_once_and_a_push_after_a_build_none() {
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let stats = |out: &std::process::Output| json(out)["published"][0]["stats"].clone();

    // The one-command release, from a fresh project (empty check and publish caches).
    let p = scenario_project(Some(&registry.addr));
    let out = p.archbuild(&["build", "good", "--push", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(exports_of(&p, "good"), 2, "one export per platform image");
    assert_eq!(stats(&out)["exports"], 0, "publishing exported nothing");
    let progress = String::from_utf8_lossy(&out.stderr);
    for platform in ["linux/amd64", "linux/arm64"] {
        let line =
            format!("[good {platform}] checked: no findings; layers compressed for publishing");
        assert!(progress.contains(&line), "{line} in:\n{progress}");
    }
    assert_eq!(
        stats(&out)["layers_compressed"],
        0,
        "the check's read compressed them"
    );
    assert!(
        stats(&out)["blobs_uploaded"].as_u64().unwrap() >= 4,
        "{}",
        stats(&out)
    );
    let out = p.archbuild(&["build", "good", "--push", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        exports_of(&p, "good"),
        0,
        "nothing changed, nothing exported"
    );
    assert_eq!(stats(&out)["bytes_uploaded"], 0);
    assert_eq!(
        stats(&out)["unchanged"],
        true,
        "the tag named the index already: nothing sent"
    );
    let progress = String::from_utf8_lossy(&out.stderr);
    let line = "[good linux/arm64] checked: no findings (remembered from an earlier check)";
    assert!(progress.contains(line), "{line} in:\n{progress}");

    // A plain build (the OCI layout), then a push of the same images.
    let p = scenario_project(Some(&registry.addr));
    let out = p.archbuild(&["build", "good", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(exports_of(&p, "good"), 2);
    let layout_index = json(&out)["published"][0]["index_digest"].clone();
    let out = p.archbuild(&["build", "good", "--push", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        exports_of(&p, "good"),
        0,
        "the layout's blobs are the cache"
    );
    assert_eq!(stats(&out)["layers_compressed"], 0);
    assert_eq!(json(&out)["published"][0]["index_digest"], layout_index);
    assert!(json(&out)["verified"][0]["findings"]
        .as_array()
        .unwrap()
        .is_empty());
}

/// Ctrl-C while `build --push` compresses the layers for publishing: the command stops (exit
/// 2, "interrupted"), the tag is never written, and the publish cache keeps no temporary file.
#[tokio::test]
async fn ctrl_c_while_compressing_for_a_push_moves_no_tag_and_leaves_no_temporary_files() {
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    if require("skopeo", which("skopeo")).is_none() {
        return;
    }
    let p = Project::new();
    let prefix = format!("{}/{}", registry.addr, unique("sigint"));
    p.write(
        "archbuild.toml",
        format!(
            "[defaults]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\nregistry = \"{prefix}\"\n\n\
             [images.big]\ncontext = \"big\"\ntags = [\"1.0\"]\n"
        ),
    );
    p.write(
        "big/Dockerfile",
        "FROM scratch\nARG TARGETARCH\nCOPY app-${TARGETARCH} /app\nCOPY data.bin /data.bin\nENTRYPOINT [\"/app\"]\n",
    );
    // 160 MB that gzip cannot shrink much: compressing and uploading it takes seconds.
    let data: Vec<u8> = (0u64..160 << 20)
        .map(|i| (i.wrapping_mul(6_364_136_223_846_793_005) >> 29) as u8)
        .collect();
    p.write("big/data.bin", data);
    p.write_exec("big/app-amd64", static_program("linux/amd64", "big"));
    p.write_exec("big/app-arm64", static_program("linux/arm64", "big"));
    let child = p
        .command(&["build", "big", "--push", "--progress", "plain"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The layers are being compressed (while the check reads the images, or for the push)
    // when the publish cache holds a temporary file.
    let tmp = p.path().join(".archbuild/cache/tmp");
    let compressing = || std::fs::read_dir(&tmp).is_ok_and(|mut d| d.next().is_some());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !compressing() {
        assert!(
            std::time::Instant::now() < deadline,
            "compressing never began"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    run_ok(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("archbuild: interrupted"), "{stderr}");
    // The tag was never written: the registry has no 1.0 for the image.
    let inspect = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{prefix}/big:1.0"))
        .output()
        .unwrap();
    assert!(
        !inspect.status.success(),
        "the tag was written: {}",
        describe(&inspect)
    );
    let stray: Vec<_> = walkdir::WalkDir::new(p.path().join(".archbuild"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| e.path().starts_with(&tmp) || e.file_name().to_string_lossy().ends_with(".tmp"))
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
}
