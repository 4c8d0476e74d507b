//! `archbuild build` as a `docker build` drop-in: without an archbuild.toml, `-t`, `-f`,
//! `--build-arg`, `--target`, `--label`, `--platform`, `--push`, `--no-cache`, `--progress`
//! and `--metadata-file` build, check and publish one image as a one-image project file
//! would; with a project file the same flags override its values for the run. The Makefile
//! of `examples/dropin` is run as a user would run it; what it pushes is read back by skopeo
//! and pulled and run by the daemon.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::*;

fn skopeo(args: &[&str]) -> Vec<u8> {
    let mut cmd = Command::new("skopeo");
    cmd.args(args);
    run_ok(&mut cmd).stdout
}

/// The example folder copied into a fresh project, with the program built for both arches.
fn example_project() -> Project {
    let p = Project::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dropin");
    for file in ["Makefile", "Dockerfile"] {
        p.write(file, std::fs::read(example.join(file)).unwrap());
    }
    for arch in ["amd64", "arm64"] {
        p.write_exec(
            &format!("app-{arch}"),
            static_program(&format!("linux/{arch}"), &format!("hello from {arch}")),
        );
    }
    p
}

fn make(p: &Project, target: &str, image: &str) -> std::process::Output {
    let out = Command::new("make")
        .arg("-s")
        .arg(target)
        .arg(format!("ARCHBUILD={}", env!("CARGO_BIN_EXE_archbuild")))
        .arg(format!("IMAGE={image}"))
        .arg("VERSION=2.0")
        .current_dir(p.path())
        .env("DOCKER_CONFIG", p.path().join(".docker-config"))
        .env_remove("DOCKER_HOST")
        .output()
        .expect("run make");
    assert_eq!(
        out.status.code(),
        Some(0),
        "make {target}: {}",
        describe(&out)
    );
    out
}

/// The labels of the config of the index's child for `arch`.
fn labels(reference: &str, arch: &str) -> Value {
    let config = skopeo(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        "--override-os",
        "linux",
        "--override-arch",
        arch,
        reference,
    ]);
    let config: Value = serde_json::from_slice(&config).unwrap();
    config["config"]["Labels"].clone()
}

#[tokio::test]
async fn the_example_makefile_builds_checks_and_pushes_without_a_project_file() {
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    if require("make", which("make")).is_none() {
        return;
    }
    let p = example_project();
    let image = format!("{}/team/{}", registry.addr, unique("hello"));

    let out = make(&p, "push", &image);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("verified: linux/amd64, linux/arm64"),
        "{stdout}"
    );
    let meta: Value =
        serde_json::from_slice(&std::fs::read(p.path().join("build-metadata.json")).unwrap())
            .unwrap();
    // One image, named after the repository's last component as `-t` gave it.
    let name = image.rsplit('/').next().unwrap();
    let digest = meta[name]["containerimage.digest"]
        .as_str()
        .unwrap_or_else(|| panic!("{meta}"))
        .to_string();
    use sha2::Digest;
    for tag in ["2.0", "latest"] {
        let raw = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image}:{tag}"),
        ]);
        let sha = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&raw)));
        assert_eq!(sha, digest, "both -t tags point at the one index");
        let index: Value = serde_json::from_slice(&raw).unwrap();
        let platforms: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["platform"]["architecture"].as_str())
            .collect();
        assert_eq!(platforms, ["amd64", "arm64"], "{index}");
    }
    let reference = format!("docker://{image}:2.0");
    for arch in ["amd64", "arm64"] {
        let labels = labels(&reference, arch);
        // --build-arg reached the Dockerfile, --label was added, --target stopped at runtime.
        assert_eq!(labels["org.example.version"], "2.0", "{labels}");
        assert_eq!(
            labels["org.opencontainers.image.version"], "2.0",
            "{labels}"
        );
        assert!(labels.get("org.example.debug").is_none(), "{labels}");
    }
    if std::env::consts::ARCH == "x86_64" {
        let tagged = format!("{image}:2.0");
        let _ = Command::new("docker").args(["rmi", "-f", &tagged]).output();
        run_ok(Command::new("docker").args(["pull", "-q", &tagged]));
        let ran = run_ok(Command::new("docker").args(["run", "--rm", &tagged]));
        assert_eq!(String::from_utf8_lossy(&ran.stdout), "hello from amd64\n");
        let _ = Command::new("docker").args(["rmi", "-f", &tagged]).output();
    }

    // `make image`: no push; the layout in the current folder, named as `-t` says.
    make(&p, "image", &image);
    let layout = format!(
        "oci:{}:{name}:2.0",
        p.path().join(".archbuild/oci").display()
    );
    let raw = skopeo(&["inspect", "--raw", &layout]);
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
}

#[tokio::test]
async fn flags_without_a_project_file_default_like_one_and_bad_flags_are_exit_2() {
    let Some(_docker) = docker().await else {
        return;
    };
    let p = Project::new();
    p.write(
        "ctx/Dockerfile",
        "FROM scratch\nARG TARGETARCH\nCOPY app-${TARGETARCH} /app\nENTRYPOINT [\"/app\"]\n",
    );
    for arch in ["amd64", "arm64"] {
        p.write_exec(
            &format!("ctx/app-{arch}"),
            static_program(&format!("linux/{arch}"), arch),
        );
    }
    // Only the context: both default platforms, tag latest, named after the folder.
    let out = p.archbuild(&["build", "ctx", "--no-output", "--json", "--no-cache"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checked: Vec<String> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["platform"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(checked, ["linux/amd64", "linux/arm64"], "{report}");

    for (args, says) in [
        (vec!["build"], "give the build context"),
        (
            vec!["build", "ctx", "--build-arg", "=x"],
            "--build-arg \"=x\"",
        ),
        (
            vec!["build", "ctx", "-t", "a/one:1", "-t", "a/two:1"],
            "same repository",
        ),
        (vec!["build", "ctx", "-t", "Bad Name"], "-t Bad Name"),
        (
            vec!["build", "ctx", "--platform", "linux/sparc"],
            "--platform linux/sparc",
        ),
        (
            vec!["build", "ctx", "-f", "missing.Dockerfile"],
            "no Dockerfile at",
        ),
        (vec!["build", "nowhere"], "not a folder"),
    ] {
        let out = p.archbuild(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn with_a_project_file_the_flags_override_it_for_the_run() {
    let Some(_docker) = docker().await else {
        return;
    };
    let p = Project::new();
    p.write(
        "archbuild.toml",
        "[images.api]\ncontext = \"api\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\nbuild-args = { FLAVOUR = \"plain\" }\n[images.web]\ncontext = \"api\"\n",
    );
    p.write(
        "api/Dockerfile",
        "FROM scratch\nARG TARGETARCH\nARG FLAVOUR\nLABEL flavour=$FLAVOUR\nCOPY app-${TARGETARCH} /app\n",
    );
    for arch in ["amd64", "arm64"] {
        p.write_exec(
            &format!("api/app-{arch}"),
            static_program(&format!("linux/{arch}"), arch),
        );
    }
    let out = p.archbuild(&[
        "build",
        "api",
        "--platform",
        "linux/arm64",
        "--build-arg",
        "FLAVOUR=spicy",
        "-t",
        "example.com/team/api:9",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["checks"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["checks"][0]["platform"], "linux/arm64");
    let layout = format!("oci:{}:api:9", p.path().join(".archbuild/oci").display());
    let config: Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--config",
        "--override-arch",
        "arm64",
        &layout,
    ]))
    .unwrap();
    assert_eq!(config["config"]["Labels"]["flavour"], "spicy", "{config}");

    // -t with two images selected is ambiguous.
    let out = p.archbuild(&["build", "-t", "example.com/x:1"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("name the image to build"));
}
