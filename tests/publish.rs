//! Publishing against the real parts: images loaded into the real Docker daemon are pushed to
//! a real registry process and read back by independent readers (skopeo, `docker pull` + run),
//! written to an OCI layout that skopeo reads, and pushed again after a registry outage.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use archbuild::publish::{self, Compression, IndexFormat, PublishImage, PublishOptions, Target};
use archbuild::registry::RegistryOptions;
use archbuild::Platform;
use sha2::{Digest, Sha256};
use support::*;

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn tar_of(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, path, *bytes).unwrap();
    }
    b.into_inner().unwrap()
}

/// Loads a `FROM scratch`-like image (one layer per entry of `layers`) for `platform` into
/// the daemon with `docker load`; returns its image ID.
fn load_image(platform: &str, layers: &[Vec<u8>], dir: &Path) -> String {
    let p = Platform::parse(platform).unwrap();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let mut config = serde_json::json!({
        "architecture": p.architecture,
        "os": p.os,
        "config": {"Entrypoint": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [],
    });
    if let Some(v) = &p.variant {
        config["variant"] = serde_json::json!(v);
    }
    let config = serde_json::to_vec(&config).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut paths = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let path = format!("l{i}/layer.tar");
        files.push((path.clone(), l.clone()));
        paths.push(path);
    }
    files.push(("config.json".into(), config.clone()));
    let manifest =
        serde_json::json!([{"Config": "config.json", "RepoTags": null, "Layers": paths}]);
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    let refs: Vec<(&str, &[u8], u32)> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice(), 0o644))
        .collect();
    let archive = dir.join(format!("{}.tar", unique("img")));
    std::fs::write(&archive, tar_of(&refs)).unwrap();
    run_ok(Command::new("docker").arg("load").arg("-i").arg(&archive));
    sha256(&config)
}

fn program_layer(platform: &str, message: &str) -> Vec<u8> {
    tar_of(&[("hello", &static_program(platform, message), 0o755)])
}

/// Incompressible bytes, so that uploads take measurable time.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn options(cache: &Path, compression: Compression) -> PublishOptions {
    PublishOptions {
        format: IndexFormat::Oci,
        compression,
        cache_dir: cache.to_path_buf(),
        annotations: BTreeMap::new(),
    }
}

fn skopeo_raw(reference: &str) -> Vec<u8> {
    run_ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", reference]))
        .stdout
}

#[tokio::test]
async fn pushes_an_index_that_skopeo_and_the_daemon_read() {
    let Some(docker) = docker().await else { return };
    let Some(registry) = Registry::start() else {
        return;
    };
    if require("skopeo", which("skopeo")).is_none() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let amd64 = load_image(
        "linux/amd64",
        &[program_layer("linux/amd64", "hello from amd64")],
        work.path(),
    );
    let arm64 = load_image(
        "linux/arm64",
        &[program_layer("linux/arm64", "hello from arm64")],
        work.path(),
    );
    let repo = format!("{}/{}", registry.addr, unique("pub"));
    let image = PublishImage {
        name: "hello".into(),
        repository: Some(archbuild::reference::ImageRef::parse_repository(&repo).unwrap()),
        tags: vec!["1.0".into(), "latest".into()],
        children: vec![
            (Platform::parse("linux/amd64").unwrap(), amd64),
            (Platform::parse("linux/arm64").unwrap(), arm64),
        ],
    };
    let opts = options(&work.path().join("cache"), Compression::Gzip);
    let target = Target::Push(RegistryOptions::default());
    let first = publish::publish(&docker, std::slice::from_ref(&image), &target, &opts)
        .await
        .expect("publish");
    let p = &first[0];
    assert!(p.stats.blobs_uploaded >= 4, "{:?}", p.stats);

    // skopeo, an independent reader, sees exactly our index and children.
    let raw = skopeo_raw(&format!("docker://{repo}:1.0"));
    assert_eq!(sha256(&raw), p.index_digest);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["platform"]["architecture"], "arm64");
    assert_eq!(entries[1]["digest"], p.children[1].digest.as_str());
    let child = skopeo_raw(&format!("docker://{repo}@{}", p.children[1].digest));
    assert_eq!(sha256(&child), p.children[1].digest);

    // verify over the registry: complete for two platforms; arm/v7 missing is exit 1.
    let store = archbuild::registry::RegistryStore::new(
        &archbuild::source::parse_registry(&repo).unwrap(),
        &RegistryOptions::default(),
    );
    let required = archbuild::platform::parse_list("linux/amd64,linux/arm64").unwrap();
    let report = archbuild::verify::verify(&store, "1.0", &required, &Default::default())
        .await
        .unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.digest, p.index_digest);
    assert_eq!(report.children[0].layers, 1);
    let project = Project::new();
    let out = project.archbuild(&[
        "verify",
        &format!("{repo}:1.0"),
        "--platform",
        "linux/amd64,linux/arm64,linux/arm/v7",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["findings"][0]["kind"], "platform-missing");
    assert_eq!(doc["findings"][0]["platform"], "linux/arm/v7");
    assert_eq!(doc["digest"], p.index_digest.as_str());
    let out = project.archbuild(&[
        "verify",
        &format!("{repo}:nope"),
        "--platform",
        "linux/amd64",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{}",
        describe(&out)
    );

    let out = project.archbuild(&["inspect", &format!("{repo}:1.0")]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("multi-arch covering linux/amd64, linux/arm64"),
        "{text}"
    );
    let out = project.archbuild(&["inspect", "--raw", &format!("{repo}:1.0")]);
    assert_eq!(sha256(&out.stdout), p.index_digest);

    // The daemon pulls its own platform's child, and the program runs.
    let pulled = format!("{repo}:1.0");
    run_ok(Command::new("docker").args(["pull", &pulled]));
    let run = run_ok(Command::new("docker").args(["run", "--rm", &pulled]));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "hello from amd64"
    );

    // Re-pushing unchanged content compresses nothing and uploads no blob bytes.
    let again = publish::publish(&docker, std::slice::from_ref(&image), &target, &opts)
        .await
        .expect("re-publish");
    assert_eq!(again[0].index_digest, p.index_digest);
    assert_eq!(again[0].stats.layers_compressed, 0);
    assert_eq!(again[0].stats.bytes_uploaded, 0, "{:?}", again[0].stats);

    // The same images in an OCI layout, read by skopeo.
    let dir = work.path().join("oci");
    let local = publish::publish(&docker, &[image], &Target::Layout(dir.clone()), &opts)
        .await
        .expect("layout");
    assert_eq!(local[0].index_digest, p.index_digest);
    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:hello:1.0", dir.display()),
    ]))
    .stdout;
    assert_eq!(sha256(&raw), p.index_digest);
    let inspected = run_ok(Command::new("skopeo").args([
        "inspect",
        "--override-arch",
        "arm64",
        &format!("oci:{}:hello:latest", dir.display()),
    ]))
    .stdout;
    let inspected: serde_json::Value = serde_json::from_slice(&inspected).unwrap();
    assert_eq!(inspected["Architecture"], "arm64");

    let meta = publish::metadata(&again);
    assert_eq!(
        meta["hello"]["containerimage.digest"],
        p.index_digest.as_str()
    );
    assert_eq!(
        meta["hello"]["image.name"],
        format!("{repo}:1.0,{repo}:latest").as_str()
    );

    // A layer the registry no longer holds in the repository (its link removed, as a garbage
    // collection or a failed cross-repository mount leaves it): `verify` finds it by HEAD and
    // fails the release gate, naming the layer.
    let child = &p.children[0];
    let manifest: serde_json::Value =
        serde_json::from_slice(&skopeo_raw(&format!("docker://{repo}@{}", child.digest))).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let link_dir = registry
        .storage()
        .join("docker/registry/v2/repositories")
        .join(repo.split_once('/').unwrap().1)
        .join("_layers/sha256")
        .join(&layer[7..]);
    std::fs::remove_dir_all(&link_dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_archbuild"))
        .args([
            "verify",
            &format!("{repo}:1.0"),
            "--platform",
            "linux/amd64,linux/arm64",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let broken: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "broken-reference")
        .collect();
    assert_eq!(broken.len(), 1, "{report}");
    assert!(broken[0].to_string().contains(&layer), "{report}");

    let _ = Command::new("docker").args(["rmi", &pulled]).output();
}

/// The blobs linked into `repository` (what a HEAD in that repository finds): a blob's data
/// can be in the store before the upload is committed and linked, so the store alone overcounts.
fn blob_count(registry: &Registry, repository: &str) -> usize {
    let dir = registry
        .storage()
        .join("docker/registry/v2/repositories")
        .join(repository)
        .join("_layers/sha256");
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name() == "link")
        .count()
}

#[tokio::test]
async fn an_interrupted_push_keeps_the_old_tag_and_a_rerun_finishes() {
    let Some(docker) = docker().await else { return };
    let Some(mut registry) = Registry::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let repo = format!("{}/{}", registry.addr, unique("fault"));
    let opts = options(&work.path().join("cache"), Compression::Zstd);
    let target = Target::Push(RegistryOptions::default());
    let image = |id: String| PublishImage {
        name: "big".into(),
        repository: Some(archbuild::reference::ImageRef::parse_repository(&repo).unwrap()),
        tags: vec!["1.0".into()],
        children: vec![(Platform::parse("linux/amd64").unwrap(), id)],
    };
    let v1 = load_image(
        "linux/amd64",
        &[program_layer("linux/amd64", "v1")],
        work.path(),
    );
    let old = publish::publish(&docker, &[image(v1)], &target, &opts)
        .await
        .unwrap();
    let layers: Vec<Vec<u8>> = (0..6)
        .map(|i| tar_of(&[(&format!("noise{i}"), &noise(12 << 20, i + 7), 0o644)]))
        .collect();
    let v2 = load_image("linux/amd64", &layers, work.path());
    let repository = repo.split_once('/').unwrap().1.to_string();
    let before = blob_count(&registry, &repository);

    // Stop the registry once some of the new blobs have arrived.
    let push = tokio::spawn({
        let (docker, target, opts, image) = (
            docker.clone(),
            target.clone(),
            opts.clone(),
            image(v2.clone()),
        );
        async move { publish::publish(&docker, &[image], &target, &opts).await }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while blob_count(&registry, &repository) < before + 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    registry.stop();
    let result = push.await.unwrap();
    let err = result.expect_err("the push must fail while the registry is down");
    assert!(err.to_string().contains(&registry.addr), "{err}");

    registry.restart();
    let raw = skopeo_raw(&format!("docker://{repo}:1.0"));
    assert_eq!(
        sha256(&raw),
        old[0].index_digest,
        "the old tag still points at the old index"
    );

    let done = publish::publish(&docker, &[image(v2)], &target, &opts)
        .await
        .expect("the re-run finishes");
    let total: u64 = layers.len() as u64 * (12 << 20);
    let stats = &done[0].stats;
    assert_eq!(stats.layers_compressed, 0, "compression was remembered");
    assert!(
        stats.blobs_present >= 2,
        "what arrived is not uploaded again: {stats:?}"
    );
    assert!(stats.bytes_uploaded < total, "{stats:?}");
    let raw = skopeo_raw(&format!("docker://{repo}:1.0"));
    assert_eq!(sha256(&raw), done[0].index_digest);
}

/// A registry killed while committing a blob can leave the repository's link file empty;
/// the CNCF registry then answers 500 to every HEAD of that blob (seen in CI after the outage
/// test above). A re-run uploads such blobs again, which repairs them, instead of failing.
#[tokio::test]
async fn blobs_a_crashed_registry_answers_500_about_are_uploaded_again() {
    let Some(docker) = docker().await else { return };
    let Some(registry) = Registry::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let repo = format!("{}/{}", registry.addr, unique("crashed"));
    let opts = options(&work.path().join("cache"), Compression::Gzip);
    let target = Target::Push(RegistryOptions::default());
    let id = load_image(
        "linux/amd64",
        &[program_layer("linux/amd64", "crashed")],
        work.path(),
    );
    let image = PublishImage {
        name: "crashed".into(),
        repository: Some(archbuild::reference::ImageRef::parse_repository(&repo).unwrap()),
        tags: vec!["1.0".into()],
        children: vec![(Platform::parse("linux/amd64").unwrap(), id)],
    };
    publish::publish(&docker, std::slice::from_ref(&image), &target, &opts)
        .await
        .unwrap();
    let repository = repo.split_once('/').unwrap().1;
    let layers = registry
        .storage()
        .join("docker/registry/v2/repositories")
        .join(repository)
        .join("_layers/sha256");
    let mut emptied = 0;
    for entry in walkdir::WalkDir::new(&layers)
        .into_iter()
        .filter_map(Result::ok)
    {
        if entry.file_name() == "link" {
            std::fs::write(entry.path(), b"").unwrap();
            emptied += 1;
        }
    }
    assert!(emptied >= 2, "config and layer links: {emptied}");
    let digest = {
        let raw = skopeo_raw(&format!("docker://{repo}:1.0"));
        let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let child: serde_json::Value =
        serde_json::from_slice(&skopeo_raw(&format!("docker://{repo}@{digest}"))).unwrap();
    let config = child["config"]["digest"].as_str().unwrap();
    assert_eq!(
        http_head(&registry.addr, &format!("/v2/{repository}/blobs/{config}")),
        Some(500),
        "the registry's own answer about an emptied link"
    );

    let done = publish::publish(&docker, &[image], &target, &opts)
        .await
        .expect("the re-run repairs the blobs");
    assert!(done[0].stats.blobs_uploaded >= 2, "{:?}", done[0].stats);
    assert_eq!(
        http_head(&registry.addr, &format!("/v2/{repository}/blobs/{config}")),
        Some(200)
    );
    let out = run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{repo}:1.0"),
    ]));
    assert!(out.status.success());
}
