//! `archbuild check` end to end: images assembled here from real cross-compiled programs,
//! written as `docker save` archives and OCI layouts, loaded into the real Docker daemon,
//! and checked through the real binary's `--json` output and exit status.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Output;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::*;

/// One entry of a layer.
enum E<'a> {
    Exe(&'a str, Vec<u8>),
    Link(&'a str, &'a str),
    Whiteout(&'a str),
}

fn layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        match e {
            E::Exe(path, bytes) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o755);
                h.set_size(bytes.len() as u64);
                b.append_data(&mut h, path, &bytes[..]).unwrap();
            }
            E::Link(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
            E::Whiteout(path) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// An image: its platform, command and layer tars (uncompressed).
struct Image {
    platform: &'static str,
    entrypoint: Vec<&'static str>,
    layers: Vec<Vec<u8>>,
}

impl Image {
    fn config(&self) -> Vec<u8> {
        let parts: Vec<&str> = self.platform.split('/').collect();
        let mut c = json!({
            "architecture": parts[1],
            "os": parts[0],
            "config": {"Entrypoint": self.entrypoint, "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": self.layers.iter().map(|l| digest(l)).collect::<Vec<_>>()},
        });
        if let Some(v) = parts.get(2) {
            c["variant"] = json!(v);
        }
        serde_json::to_vec(&c).unwrap()
    }
}

/// A `docker save` archive in the legacy layout (`<id>/layer.tar`, `<id>.json`,
/// `manifest.json` last), which `docker load` on this daemon reads.
fn docker_archive(tag: &str, image: &Image) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        b.append_data(&mut h, path, bytes).unwrap();
    };
    let mut names = Vec::new();
    for l in &image.layers {
        let id = digest(l).trim_start_matches("sha256:").to_string();
        add(&mut b, &format!("{id}/layer.tar"), l);
        names.push(format!("{id}/layer.tar"));
    }
    let config = image.config();
    let config_name = format!("{}.json", digest(&config).trim_start_matches("sha256:"));
    add(&mut b, &config_name, &config);
    let manifest = json!([{"Config": config_name, "RepoTags": [tag], "Layers": names}]);
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    b.into_inner().unwrap()
}

/// Writes an OCI layout holding an index of `images` (gzip layers) plus an attestation
/// entry, named `ref_name`.
fn oci_layout(dir: &Path, ref_name: &str, images: &[Image]) {
    oci_layout_listed(dir, ref_name, images, &[]);
}

/// The same, with the index listing image `i` as `listed[i]` (where given).
fn oci_layout_listed(dir: &Path, ref_name: &str, images: &[Image], listed: &[&str]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let d = digest(bytes);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        (d, bytes.len())
    };
    let mut entries = Vec::new();
    for (i, image) in images.iter().enumerate() {
        let (config, config_size) = put(&image.config());
        let layers: Vec<Value> = image
            .layers
            .iter()
            .map(|l| {
                let (d, size) = put(&gzip(l));
                json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": size})
            })
            .collect();
        let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
            "layers": layers});
        let (d, size) = put(&serde_json::to_vec(&manifest).unwrap());
        let parts: Vec<&str> = listed
            .get(i)
            .unwrap_or(&image.platform)
            .split('/')
            .collect();
        let mut platform = json!({"os": parts[0], "architecture": parts[1]});
        if let Some(v) = parts.get(2) {
            platform["variant"] = json!(v);
        }
        entries.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": size, "platform": platform}));
    }
    // An attestation manifest, as BuildKit adds: not a platform, never checked.
    let (empty, empty_size) = put(b"{}");
    let attestation = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.in-toto+json", "digest": empty, "size": empty_size}, "layers": []});
    let (att, att_size) = put(&serde_json::to_vec(&attestation).unwrap());
    entries.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": att, "size": att_size,
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}));
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
    let (index_digest, index_size) = put(&serde_json::to_vec(&index).unwrap());
    let top = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": index_digest, "size": index_size,
        "annotations": {"org.opencontainers.image.ref.name": ref_name}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", describe(out)))
}

fn findings(doc: &Value) -> Vec<(String, String, String)> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["platform"].as_str().unwrap_or("").to_string(),
                f["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn app(platform: &'static str, message: &str) -> Image {
    Image {
        platform,
        entrypoint: vec!["/app"],
        layers: vec![layer(&[E::Exe("app", static_program(platform, message))])],
    }
}

/// An image of one layer holding `program` as its entrypoint `/app`.
fn one_program(platform: &'static str, program: &[u8]) -> Image {
    Image {
        platform,
        entrypoint: vec!["/app"],
        layers: vec![layer(&[E::Exe("app", program.to_vec())])],
    }
}

/// A scenario: name, image, expected exit status, expected (kind, path) findings.
type Scenario = (&'static str, Image, i32, Vec<(&'static str, &'static str)>);

/// The five scenarios of the issue.
fn scenarios() -> Vec<Scenario> {
    vec![
        ("correct", app("linux/arm64", "hello"), 0, vec![]),
        (
            "amd64-in-arm64",
            Image {
                platform: "linux/arm64",
                entrypoint: vec!["/usr/local/bin/api"],
                layers: vec![layer(&[E::Exe(
                    "usr/local/bin/api",
                    static_program("linux/amd64", "api"),
                )])],
            },
            1,
            vec![("elf-arch-mismatch", "/usr/local/bin/api")],
        ),
        (
            "no-loader",
            Image {
                platform: "linux/arm64",
                entrypoint: vec!["/app"],
                layers: vec![layer(&[E::Exe(
                    "app",
                    dynamic_program("linux/arm64", "dyn"),
                )])],
            },
            1,
            vec![("missing-loader", "/app")],
        ),
        (
            "no-interpreter",
            Image {
                platform: "linux/arm64",
                entrypoint: vec!["/entrypoint.sh"],
                layers: vec![layer(&[
                    E::Exe("entrypoint.sh", b"#!/bin/bash\nexec /app\n".to_vec()),
                    E::Exe("app", static_program("linux/arm64", "x")),
                ])],
            },
            1,
            vec![("missing-interpreter", "/entrypoint.sh")],
        ),
        (
            "whiteout",
            Image {
                platform: "linux/arm64",
                entrypoint: vec!["/bin/app"],
                layers: vec![
                    layer(&[
                        E::Exe("bin/app", static_program("linux/arm64", "w")),
                        E::Exe("opt/tools/helper", static_program("linux/amd64", "h")),
                    ]),
                    layer(&[
                        E::Whiteout("opt/.wh.tools"),
                        E::Link("usr/bin/app", "../../bin/app"),
                    ]),
                ],
            },
            0,
            vec![],
        ),
    ]
}

fn assert_scenario(name: &str, out: &Output, exit: i32, want: &[(&str, &str)]) {
    assert_eq!(out.status.code(), Some(exit), "{name}: {}", describe(out));
    let doc = json_of(out);
    let got: Vec<(String, String)> = findings(&doc).into_iter().map(|(k, _, p)| (k, p)).collect();
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, p)| (k.to_string(), p.to_string()))
        .collect();
    assert_eq!(got, want, "{name}: {}", describe(out));
}

/// Writes `image` as `NAME.tar` (tagged `REPO/NAME:1`), checks it and asserts the scenario.
fn check_archive(
    project: &Project,
    repo: &str,
    name: &str,
    image: &Image,
    exit: i32,
    want: &[(&str, &str)],
) {
    project.write(
        &format!("{name}.tar"),
        docker_archive(&format!("{repo}/{name}:1"), image),
    );
    let out = project.archbuild(&["check", &format!("docker-archive:{name}.tar"), "--json"]);
    assert_scenario(name, &out, exit, want);
}

#[test]
fn the_five_scenarios_from_a_docker_save_archive() {
    let project = Project::new();
    for (name, image, exit, want) in scenarios() {
        check_archive(&project, "scenario", name, &image, exit, &want);
    }
    let out = project.archbuild(&["check", "docker-archive:amd64-in-arm64.tar"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/usr/local/bin/api is an x86-64 program in the linux/arm64 image: it fails with 'exec format error' on arm64 nodes"),
        "{text}"
    );
    assert!(text.contains("what to do"), "{text}");
}

#[test]
fn a_correct_two_platform_index_in_an_oci_layout() {
    let project = Project::new();
    oci_layout(
        &project.path().join("out"),
        "api",
        &[app("linux/amd64", "amd"), app("linux/arm64", "arm")],
    );
    let out = project.archbuild(&["check", "oci:out:api", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc = json_of(&out);
    let platforms: Vec<&str> = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["platform"].as_str().unwrap())
        .collect();
    assert_eq!(
        platforms,
        ["linux/amd64", "linux/arm64"],
        "attestations are not platforms"
    );
    assert_eq!(doc["images"][0]["elf_files"], 1);

    let out = project.archbuild(&[
        "check",
        "oci:out:api",
        "--platform",
        "linux/arm64,linux/s390x",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(
        findings(&json_of(&out)),
        [(
            "platform-missing".to_string(),
            "linux/s390x".to_string(),
            String::new()
        )]
    );

    let out = project.archbuild(&["check", "oci:out:nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ref \"nope\" (refs: api)"),
        "{}",
        describe(&out)
    );
}

#[test]
fn the_scenarios_in_an_index_are_reported_per_platform() {
    let project = Project::new();
    // amd64 child correct; arm64 child carries an amd64 program; the third child is listed
    // as linux/arm/v7 but its config (and program) say linux/386.
    let mut arm = app("linux/arm64", "arm");
    arm.layers.push(layer(&[E::Exe(
        "usr/bin/tool",
        static_program("linux/amd64", "t"),
    )]));
    let images = [app("linux/amd64", "amd"), arm, app("linux/386", "x86")];
    oci_layout_listed(
        &project.path().join("out"),
        "mixed",
        &images,
        &["linux/amd64", "linux/arm64", "linux/arm/v7"],
    );
    let out = project.archbuild(&["check", "oci:out", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        findings(&json_of(&out)),
        [
            s("elf-arch-mismatch", "linux/arm64", "/usr/bin/tool"),
            s("config-platform-mismatch", "linux/arm/v7", ""),
            s("elf-arch-mismatch", "linux/arm/v7", "/app"),
        ]
    );
}

#[test]
fn corrupt_blobs_are_errors_that_name_the_blob() {
    let project = Project::new();
    let dir = project.path().join("out");
    oci_layout(&dir, "api", &[app("linux/arm64", "arm")]);
    // Flip a byte inside the largest blob (the gzip layer): a digest mismatch or a corrupt stream.
    let blobs = dir.join("blobs/sha256");
    let largest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&largest).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&largest, &bytes).unwrap();
    let out = project.archbuild(&["check", "oci:out:api", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(out.stdout.is_empty(), "no half-written document");
    let err = String::from_utf8_lossy(&out.stderr);
    let name = largest.file_name().unwrap().to_string_lossy().to_string();
    assert!(err.contains(&name), "{err}");

    // A truncated docker save archive: exit 2, naming the layer.
    let archive = docker_archive("t:1", &app("linux/arm64", "t"));
    project.write("cut.tar", &archive[..archive.len() / 3]);
    let out = project.archbuild(&["check", "docker-archive:cut.tar"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    let out = project.archbuild(&["check", "oci-archive:x.tar"]);
    assert_eq!(out.status.code(), Some(2));
    let out = project.archbuild(&["check", "oci:missing-folder"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing-folder is not a folder"),
        "{}",
        describe(&out)
    );
}

#[test]
fn path_traversal_in_a_layer_is_reported_and_not_followed() {
    let project = Project::new();
    let mut raw = layer(&[E::Exe("app", static_program("linux/arm64", "a"))]);
    // Append an entry named ../../escape by hand (the tar crate refuses to write one).
    raw.truncate(raw.len() - 1024);
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..12].copy_from_slice(b"../../escape");
    h.set_mode(0o644);
    h.set_size(3);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    raw.extend_from_slice(h.as_bytes());
    raw.extend_from_slice(b"xyz");
    raw.extend_from_slice(&[0; 509 + 1024]);
    let image = Image {
        platform: "linux/arm64",
        entrypoint: vec!["/app"],
        layers: vec![raw],
    };
    project.write("t.tar", docker_archive("t:1", &image));
    let out = project.archbuild(&["check", "docker-archive:t.tar", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(findings(&json_of(&out))[0].0, "unsafe-layer-entry");
    assert!(!project.path().parent().unwrap().join("escape").exists());
}

#[test]
fn reads_docker_save_from_standard_input() {
    let project = Project::new();
    let archive = docker_archive("s:1", &scenarios().remove(1).1);
    let mut child = project
        .command(&["check", "docker-archive:-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&archive).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(findings(&json_of(&out))[0].0, "elf-arch-mismatch");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_five_scenarios_through_the_docker_daemon() {
    let Some(docker) = docker().await else { return };
    let project = Project::new();
    let mut loaded = Vec::new();
    for (name, image, exit, want) in scenarios() {
        let tag = format!("archbuild-check-test/{}:1", unique(name));
        let path = project.write(&format!("{name}.tar"), docker_archive(&tag, &image));
        run_ok(
            std::process::Command::new("docker")
                .arg("load")
                .arg("-i")
                .arg(&path),
        );
        loaded.push(tag.clone());
        let out = project.archbuild(&["check", &format!("docker-daemon:{tag}"), "--json"]);
        assert_scenario(name, &out, exit, &want);
        let doc = json_of(&out);
        assert_eq!(doc["images"][0]["image"], tag.as_str());
    }
    // The library entry point the build pipeline calls.
    let platform = archbuild::Platform::parse("linux/arm64").unwrap();
    let opts = archbuild::check::CheckOptions::default();
    let report =
        archbuild::check::check_daemon_image(&docker, &loaded[1], &platform, &opts, "api:dev")
            .await
            .unwrap();
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].image.as_deref(), Some("api:dev"));
    assert_eq!(report.elf_files, 1);

    let out = project.archbuild(&[
        "check",
        "docker-daemon:archbuild-check-test/does-not-exist:1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not in the Docker daemon"),
        "{}",
        describe(&out)
    );
    for tag in loaded {
        let _ = docker
            .remove_image(
                &tag,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }
}

#[test]
fn an_index_copied_to_a_registry_is_checked_there() {
    let Some(registry) = Registry::start() else {
        return;
    };
    if require("skopeo", which("skopeo")).is_none() {
        return;
    }
    let project = Project::new();
    let mut arm = app("linux/arm64", "arm");
    arm.layers.push(layer(&[E::Exe(
        "usr/bin/tool",
        static_program("linux/amd64", "t"),
    )]));
    oci_layout(
        &project.path().join("out"),
        "mixed",
        &[app("linux/amd64", "amd"), arm],
    );
    let dest = format!("{}/check/mixed:1", registry.addr);
    run_ok(
        std::process::Command::new("skopeo")
            .args(["copy", "--all", "--dest-tls-verify=false"])
            .arg(format!(
                "oci:{}:mixed",
                project.path().join("out").display()
            ))
            .arg(format!("docker://{dest}")),
    );
    let out = project.archbuild(&["check", &dest, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let doc = json_of(&out);
    assert_eq!(
        findings(&doc),
        [(
            "elf-arch-mismatch".to_string(),
            "linux/arm64".to_string(),
            "/usr/bin/tool".to_string()
        )]
    );
    assert_eq!(doc["images"].as_array().unwrap().len(), 2);
    let out = project.archbuild(&["check", &dest, "--platform", "linux/amd64", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = project.archbuild(&["check", &format!("{}/check/absent:1", registry.addr)]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn verify_deep_runs_the_content_check_in_a_registry_and_a_layout() {
    let project = Project::new();
    let mut arm = app("linux/arm64", "arm");
    arm.layers.push(layer(&[E::Exe(
        "usr/bin/tool",
        static_program("linux/amd64", "t"),
    )]));
    let out_dir = project.path().join("out");
    oci_layout(&out_dir, "mixed", &[app("linux/amd64", "amd"), arm]);
    let good_dir = project.path().join("good");
    oci_layout(
        &good_dir,
        "good",
        &[app("linux/amd64", "amd"), app("linux/arm64", "arm")],
    );
    let both = "linux/amd64,linux/arm64";
    let verify = |reference: &str, deep: bool| {
        let mut args = vec!["verify", reference, "--platform", both, "--json"];
        if deep {
            args.push("--deep");
        }
        project.archbuild(&args)
    };
    let arm64_tool = [(
        "elf-arch-mismatch".to_string(),
        "linux/arm64".to_string(),
        "/usr/bin/tool".to_string(),
    )];

    // Without --deep the structure is complete; with it, the amd64 program in arm64 shows.
    let out = verify("oci:out:mixed", false);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = verify("oci:out:mixed", true);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let doc = json_of(&out);
    assert_eq!(findings(&doc), arm64_tool);
    assert_eq!(doc["content"].as_array().unwrap().len(), 2);
    let out = verify("oci:good:good", true);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(json_of(&out)["content"][1]["elf_files"], 1);

    let Some(registry) = Registry::start() else {
        return;
    };
    if require("skopeo", which("skopeo")).is_none() {
        return;
    }
    for (dir, name) in [(&out_dir, "mixed"), (&good_dir, "good")] {
        run_ok(
            std::process::Command::new("skopeo")
                .args(["copy", "--all", "--dest-tls-verify=false"])
                .arg(format!("oci:{}:{name}", dir.display()))
                .arg(format!("docker://{}/verify/{name}:1", registry.addr)),
        );
    }
    let mixed = format!("{}/verify/mixed:1", registry.addr);
    let out = verify(&mixed, true);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let doc = json_of(&out);
    assert_eq!(findings(&doc), arm64_tool);
    assert_eq!(doc["findings"][0]["image"], mixed.as_str());
    let out = verify(&format!("{}/verify/good:1", registry.addr), true);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(
        &project
            .archbuild(&["verify", &mixed, "--platform", both, "--deep"])
            .stdout,
    )
    .to_string();
    assert!(
        text.contains("/usr/bin/tool is an x86-64 program"),
        "{text}"
    );
    assert!(text.contains("NOT verified"), "{text}");
}

#[test]
fn a_program_built_for_x86_64_v3_is_refused_in_plain_amd64_and_accepted_in_amd64_v3() {
    let project = Project::new();
    let source = "int main(void) { return 0; }\n";
    let v3 = compile_c_with(
        "linux/amd64",
        source,
        true,
        &["-march=x86-64-v3", "-mneeded"],
    );
    let baseline = compile_c_with("linux/amd64", source, true, &["-mneeded"]);
    let image = one_program;
    for (name, platform, program, exit, want) in [
        (
            "v3-in-amd64",
            "linux/amd64",
            &v3,
            1,
            vec![("cpu-level-mismatch", "/app")],
        ),
        ("v3-in-amd64-v3", "linux/amd64/v3", &v3, 0, vec![]),
        ("v3-in-amd64-v4", "linux/amd64/v4", &v3, 0, vec![]),
        ("baseline-in-amd64", "linux/amd64", &baseline, 0, vec![]),
    ] {
        check_archive(
            &project,
            "cpu",
            name,
            &image(platform, program),
            exit,
            &want,
        );
    }
    let out = project.archbuild(&["check", "docker-archive:v3-in-amd64.tar", "--json"]);
    let doc = json_of(&out);
    let f = &doc["findings"][0];
    assert_eq!(f["severity"], "error");
    assert_eq!(f["expected"], "x86-64 (baseline)");
    assert_eq!(f["actual"], "x86-64-v3");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("needs x86-64-v3")
            && message.contains("Illegal instruction")
            && message.contains("Haswell"),
        "{message}"
    );
}

#[test]
fn armv7_programs_are_refused_in_arm_v6_and_armv6_programs_in_arm_v5() {
    let project = Project::new();
    let v7 = compile_c("linux/arm/v7", "int main(void) { return 0; }\n", true);
    let v6 = compile_c_with(
        "linux/arm/v7",
        "void _start(void) { for (;;); }\n",
        true,
        &["-march=armv6", "-marm", "-mfpu=vfp", "-nostdlib"],
    );
    // ARMv5TE code with VFP, hard-float: not for soft-float armel userlands and boards.
    let v5_hard = compile_c_with(
        "linux/arm/v7",
        "void _start(void) { for (;;); }\n",
        true,
        &[
            "-march=armv5te",
            "-marm",
            "-mfpu=vfp",
            "-mfloat-abi=hard",
            "-nostdlib",
        ],
    );
    let image = one_program;
    for (name, platform, program, exit, want) in [
        (
            "v5-hard-in-v5",
            "linux/arm/v5",
            &v5_hard,
            1,
            vec![("cpu-level-mismatch", "/app")],
        ),
        ("v5-hard-in-v6", "linux/arm/v6", &v5_hard, 0, vec![]),
        ("v7-in-v7", "linux/arm/v7", &v7, 0, vec![]),
        (
            "v7-in-v6",
            "linux/arm/v6",
            &v7,
            1,
            vec![("cpu-level-mismatch", "/app")],
        ),
        ("v6-in-v6", "linux/arm/v6", &v6, 0, vec![]),
        (
            "v6-in-v5",
            "linux/arm/v5",
            &v6,
            1,
            vec![("cpu-level-mismatch", "/app")],
        ),
    ] {
        check_archive(
            &project,
            "arm",
            name,
            &image(platform, program),
            exit,
            &want,
        );
    }
    let out = project.archbuild(&["check", "docker-archive:v7-in-v6.tar", "--json"]);
    let f = &json_of(&out)["findings"][0];
    assert_eq!(
        (f["expected"].as_str(), f["actual"].as_str()),
        (Some("ARMv6"), Some("ARMv7"))
    );
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("Raspberry Pi Zero") && message.contains("Illegal instruction"),
        "{message}"
    );
}

#[test]
fn go_programs_are_held_to_their_goamd64_and_goarm_settings() {
    let project = Project::new();
    let v3 = go_program("amd64", &[("GOAMD64", "v3")]);
    let v1 = go_program("amd64", &[("GOAMD64", "v1")]);
    let arm7 = go_program("arm", &[("GOARM", "7")]);
    let arm6 = go_program("arm", &[("GOARM", "6")]);
    for (name, platform, program, exit, want) in [
        (
            "go-v3-in-amd64",
            "linux/amd64",
            &v3,
            1,
            vec![("cpu-level-mismatch", "/app")],
        ),
        ("go-v3-in-amd64-v3", "linux/amd64/v3", &v3, 0, vec![]),
        ("go-v1-in-amd64", "linux/amd64", &v1, 0, vec![]),
        (
            "go-arm7-in-v6",
            "linux/arm/v6",
            &arm7,
            1,
            vec![("cpu-level-mismatch", "/app")],
        ),
        ("go-arm7-in-v7", "linux/arm/v7", &arm7, 0, vec![]),
        ("go-arm6-in-v6", "linux/arm/v6", &arm6, 0, vec![]),
    ] {
        check_archive(
            &project,
            "go",
            name,
            &one_program(platform, program),
            exit,
            &want,
        );
    }
    let out = project.archbuild(&["check", "docker-archive:go-v3-in-amd64.tar", "--json"]);
    let doc = json_of(&out);
    let message = doc["findings"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("GOAMD64=v3") && message.contains("x86-64-v3"),
        "{message}"
    );
    // The Go settings are in the JSON report.
    let go = &doc["images"][0]["go"][0];
    assert_eq!(go["path"], "/app");
    assert!(
        go["go_version"].as_str().unwrap().starts_with("go1."),
        "{go}"
    );
    assert_eq!(go["settings"]["GOAMD64"], "v3");
    assert_eq!(go["settings"]["GOARCH"], "amd64");
    assert_eq!(go["settings"]["CGO_ENABLED"], "0");
    let out = project.archbuild(&["check", "docker-archive:go-arm7-in-v6.tar", "--json"]);
    let message = json_of(&out)["findings"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("GOARM=7") && message.contains("Raspberry Pi Zero"),
        "{message}"
    );
}

#[test]
fn arm64_programs_aligned_for_4k_pages_are_flagged_for_16k_and_64k_kernels() {
    let project = Project::new();
    let source = "int main(void) { return 0; }\n";
    let small = compile_c_with("linux/arm64", source, true, &["-Wl,-z,max-page-size=4096"]);
    let usual = compile_c("linux/arm64", source, true);
    let image = |program: &[u8]| one_program("linux/arm64", program);
    project.write("small.tar", docker_archive("page/small:1", &image(&small)));
    project.write("usual.tar", docker_archive("page/usual:1", &image(&usual)));
    let check = |archive: &str, extra: &[&str]| {
        let mut args = vec!["check", archive, "--json"];
        args.extend_from_slice(extra);
        project.archbuild(&args)
    };
    // By default a warning: the check passes and says why the program may not start.
    let out = check("docker-archive:small.tar", &[]);
    assert_scenario("small", &out, 0, &[("page-size", "/app")]);
    let f = &json_of(&out)["findings"][0];
    assert_eq!(f["severity"], "warning");
    assert!(
        f["message"].as_str().unwrap().contains("aligned to 4 KiB"),
        "{f}"
    );
    // For a cluster of 64 KiB kernels an error; a 4 KiB cluster accepts it.
    assert_scenario(
        "small 64k",
        &check("docker-archive:small.tar", &["--page-size", "65536"]),
        1,
        &[("page-size", "/app")],
    );
    assert_scenario(
        "small 4k",
        &check("docker-archive:small.tar", &["--page-size", "4096"]),
        0,
        &[],
    );
    // The toolchain's default, 64 KiB alignment, maps everywhere.
    assert_scenario(
        "usual 64k",
        &check("docker-archive:usual.tar", &["--page-size", "65536"]),
        0,
        &[],
    );
    let bad = check("docker-archive:usual.tar", &["--page-size", "8192"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
}

#[test]
fn terminal_escapes_in_image_paths_are_shown_escaped() {
    let project = Project::new();
    let image = Image {
        platform: "linux/arm64",
        entrypoint: vec!["/bin/ok"],
        layers: vec![layer(&[
            E::Exe("bin/ok", static_program("linux/arm64", "ok")),
            E::Exe(
                "bin/\u{1b}[2J\u{1b}]0;owned\u{7}x",
                static_program("linux/amd64", "x"),
            ),
        ])],
    };
    project.write("esc.tar", docker_archive("esc/esc:1", &image));
    let out = project.archbuild(&["check", "docker-archive:esc.tar"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        !out.stdout.contains(&0x1b) && !out.stdout.contains(&0x07),
        "{}",
        describe(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/bin/\\u{1b}[2J\\u{1b}]0;owned\\u{7}x is an x86-64 program"),
        "{text}"
    );
    // JSON keeps the real name, escaped by JSON's own rules.
    let doc = json_of(&project.archbuild(&["check", "docker-archive:esc.tar", "--json"]));
    assert_eq!(
        doc["findings"][0]["path"],
        "/bin/\u{1b}[2J\u{1b}]0;owned\u{7}x"
    );
}

/// A layer whose first entry is a PAX extension header claiming `claimed` bytes but holding
/// only `held`, then a regular file.
fn claiming_pax_layer(claimed: u64, held: usize) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_path("PaxHeaders/app").unwrap();
    h.set_mode(0o644);
    h.set_size(claimed);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend(std::iter::repeat_n(b'x', held));
    out.resize(out.len().next_multiple_of(512) + 1024, 0);
    out
}

#[test]
fn hostile_layers_end_in_a_clear_error_within_memory_and_time_limits() {
    let project = Project::new();
    let cases: [(&str, Vec<u8>, &str); 2] = [
        // A header that claims 8 GiB (an allocation of that size would fail under the limit).
        (
            "claims",
            claiming_pax_layer(8 << 30, 20_000),
            "is corrupt or truncated",
        ),
        // A real 5 MiB header: over the 4 MiB allowance for one entry's extension headers.
        ("huge", claiming_pax_layer(5 << 20, 5 << 20), "4194304"),
    ];
    for (name, tar, says) in cases {
        let image = Image {
            platform: "linux/amd64",
            entrypoint: vec!["/app"],
            layers: vec![tar],
        };
        project.write(
            &format!("{name}.tar"),
            docker_archive(&format!("h/{name}:1"), &image),
        );
        let out = archbuild_bounded(&project, &["check", &format!("docker-archive:{name}.tar")]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{name}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("memory allocation"),
            "{name}: {err}"
        );
    }
    // A 2,046-deep path and 100,000 entries read within the same limits, and are checked.
    let mut b = tar::Builder::new(Vec::new());
    let deep = vec!["d"; 2046].join("/");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(1);
    b.append_data(&mut h, format!("{deep}/f"), &b"x"[..])
        .unwrap();
    for i in 0..100_000 {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(0);
        b.append_data(&mut h, format!("many/{i}"), &[][..]).unwrap();
    }
    let mut layers = vec![b.into_inner().unwrap()];
    layers.push(layer(&[E::Exe("app", static_program("linux/amd64", "ok"))]));
    let image = Image {
        platform: "linux/amd64",
        entrypoint: vec!["/app"],
        layers,
    };
    project.write("wide.tar", docker_archive("h/wide:1", &image));
    let out = archbuild_bounded(&project, &["check", "docker-archive:wide.tar", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(json_of(&out)["images"][0]["files"].as_u64().unwrap() > 100_000);
}
