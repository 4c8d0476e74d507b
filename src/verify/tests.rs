//! The release gate against OCI layouts the tests write: complete and incomplete indexes,
//! children whose config disagrees with their listed platform, Docker manifest lists.

use std::collections::BTreeMap;

use super::*;
use crate::oci::{digest, DescriptorPlatform, ImageManifest, Layout};
use crate::publish::assemble::{self, Child, Compression, IndexFormat, Layer};

fn p(s: &str) -> Platform {
    Platform::parse(s).unwrap()
}

/// Writes one platform image (config saying `config_platform`) into the layout.
fn image(layout: &Layout, listed: &str, config_platform: &str, format: IndexFormat) -> Child {
    let cp = p(config_platform);
    let layer = format!("layer for {listed}").into_bytes();
    let layer_digest = digest::sha256(&layer);
    layout.put_bytes(&layer_digest, &layer).unwrap();
    let mut config = serde_json::json!({"architecture": cp.architecture, "os": cp.os, "rootfs": {"type": "layers", "diff_ids": [layer_digest]}});
    if let Some(v) = &cp.variant {
        config["variant"] = v.clone().into();
    }
    let config = serde_json::to_vec(&config).unwrap();
    layout.put_bytes(&digest::sha256(&config), &config).unwrap();
    let layers = [Layer {
        digest: layer_digest,
        size: layer.len() as u64,
        compression: Compression::Gzip,
    }];
    let manifest = assemble::image_manifest(&config, &layers, format, &BTreeMap::new());
    layout.put_bytes(&manifest.digest, &manifest.bytes).unwrap();
    Child {
        platform: p(listed),
        manifest,
    }
}

fn kinds(r: &VerifyReport) -> Vec<FindingKind> {
    r.findings.iter().map(|f| f.kind).collect()
}

async fn verify_tag(layout: &Layout, tag: &str, required: &str) -> VerifyReport {
    let required = crate::platform::parse_list(required).unwrap();
    verify(layout, tag, &required, &VerifyOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn every_case_of_the_release_gate() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path()).unwrap();
    let none = BTreeMap::new();
    let amd = image(&layout, "linux/amd64", "linux/amd64", IndexFormat::Oci);
    let arm = image(&layout, "linux/arm64", "linux/arm64", IndexFormat::Oci);
    let liar = image(&layout, "linux/arm/v7", "linux/amd64", IndexFormat::Oci);

    let complete = assemble::index(&[amd.clone(), arm.clone()], IndexFormat::Oci, &none);
    layout.tag(&["complete".into()], &complete).unwrap();
    let r = verify_tag(&layout, "complete", "linux/amd64,linux/arm64").await;
    assert_eq!(kinds(&r), vec![]);
    assert_eq!(r.digest, complete.digest);
    assert_eq!(r.children.len(), 2);
    assert_eq!(r.children[1].config_platform, Some(p("linux/arm64")));

    let r = verify_tag(&layout, "complete", "linux/amd64,linux/arm64,linux/arm/v7").await;
    assert_eq!(kinds(&r), vec![FindingKind::PlatformMissing]);
    assert_eq!(
        r.findings[0]
            .platform
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("linux/arm/v7")
    );

    layout.tag(&["single".into()], &amd.manifest).unwrap();
    let r = verify_tag(&layout, "single", "linux/amd64,linux/arm64").await;
    assert_eq!(kinds(&r), vec![FindingKind::SingleArch]);
    assert_eq!(
        kinds(&verify_tag(&layout, "single", "linux/amd64").await),
        vec![]
    );

    let lying = assemble::index(&[amd.clone(), liar], IndexFormat::Oci, &none);
    layout.tag(&["liar".into()], &lying).unwrap();
    let r = verify_tag(&layout, "liar", "linux/amd64,linux/arm/v7").await;
    assert_eq!(kinds(&r), vec![FindingKind::ConfigPlatformMismatch]);

    // An attestation entry, as BuildKit writes them: neither coverage nor a finding.
    let mut index: Index = serde_json::from_slice(&complete.bytes).unwrap();
    let mut ann = BTreeMap::new();
    ann.insert(
        "vnd.docker.reference.type".to_string(),
        "attestation-manifest".to_string(),
    );
    ann.insert(
        "vnd.docker.reference.digest".to_string(),
        amd.manifest.digest.clone(),
    );
    index.manifests.push(Descriptor {
        media_type: mt::OCI_MANIFEST.into(),
        digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000".into(),
        size: 10,
        annotations: Some(ann),
        platform: Some(DescriptorPlatform {
            architecture: "unknown".into(),
            os: "unknown".into(),
            ..Default::default()
        }),
    });
    let bytes = crate::oci::documents::to_bytes(&index);
    let attested = RawManifest {
        digest: digest::sha256(&bytes),
        media_type: mt::OCI_INDEX.into(),
        bytes,
    };
    layout.tag(&["attested".into()], &attested).unwrap();
    let r = verify_tag(&layout, "attested", "linux/amd64,linux/arm64").await;
    assert_eq!(kinds(&r), vec![]);
    assert_eq!(r.attestations.len(), 1);
    assert_eq!(
        r.attestations[0].reference_digest.as_ref(),
        Some(&amd.manifest.digest)
    );

    let d_amd = image(&layout, "linux/amd64", "linux/amd64", IndexFormat::Docker);
    let d_arm = image(&layout, "linux/arm64", "linux/arm64", IndexFormat::Docker);
    let list = assemble::index(&[d_amd, d_arm], IndexFormat::Docker, &none);
    layout.tag(&["docker".into()], &list).unwrap();
    let r = verify_tag(&layout, "docker", "linux/amd64,linux/arm64").await;
    assert_eq!(kinds(&r), vec![]);
    assert_eq!(r.media_type, mt::DOCKER_LIST);

    // A layer that went missing is a broken reference.
    let doc: ImageManifest = serde_json::from_slice(&arm.manifest.bytes).unwrap();
    std::fs::remove_file(layout.blob_path(&doc.layers[0].digest).unwrap()).unwrap();
    let r = verify_tag(&layout, "complete", "linux/amd64,linux/arm64").await;
    assert_eq!(kinds(&r), vec![FindingKind::BrokenReference]);
    assert_eq!(
        r.findings[0]
            .platform
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("linux/arm64")
    );
}

#[tokio::test]
async fn deep_reports_unreadable_layers_as_broken_references() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path()).unwrap();
    // The fixture's layers are short texts, not tars: structurally fine, not content.
    let amd = image(&layout, "linux/amd64", "linux/amd64", IndexFormat::Oci);
    let index = assemble::index(&[amd], IndexFormat::Oci, &BTreeMap::new());
    layout.tag(&["t".into()], &index).unwrap();
    let required = [p("linux/amd64")];
    let shallow = verify(&layout, "t", &required, &VerifyOptions::default())
        .await
        .unwrap();
    assert_eq!(kinds(&shallow), vec![]);
    let deep = VerifyOptions {
        deep: Some(CheckOptions::default()),
    };
    let r = verify(&layout, "t", &required, &deep).await.unwrap();
    assert_eq!(kinds(&r), vec![FindingKind::BrokenReference]);
    assert!(
        r.findings[0].message.contains("its content"),
        "{}",
        r.findings[0].message
    );
    assert!(r.content.is_empty());
}

#[tokio::test]
async fn an_index_of_more_manifests_than_the_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path()).unwrap();
    let amd = image(&layout, "linux/amd64", "linux/amd64", IndexFormat::Oci);
    let entry = serde_json::json!({"mediaType": amd.manifest.media_type,
        "digest": amd.manifest.digest, "size": amd.manifest.bytes.len()});
    let entries: Vec<_> = (0..=crate::oci::visits::MAX_MANIFESTS)
        .map(|i| {
            let mut e = entry.clone();
            e["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64",
                "variant": format!("x{i}")});
            e
        })
        .collect();
    let bytes = serde_json::to_vec(
        &serde_json::json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": entries}),
    )
    .unwrap();
    let index = RawManifest {
        digest: digest::sha256(&bytes),
        media_type: mt::OCI_INDEX.into(),
        bytes,
    };
    layout.tag(&["wide".into()], &index).unwrap();
    let err = verify(
        &layout,
        "wide",
        &[p("linux/amd64")],
        &VerifyOptions::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("lists 4097 manifests") && err.contains("at most 4096"),
        "{err}"
    );
}

/// A layout that counts the manifests and blobs read from it.
struct Counting {
    layout: Layout,
    reads: std::sync::atomic::AtomicUsize,
}

impl Store for Counting {
    async fn manifest(&self, reference: &str) -> Result<RawManifest, StoreError> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.layout.manifest(reference).await
    }
    async fn blob_size(&self, digest: &str) -> Result<Option<u64>, StoreError> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.layout.blob_size(digest).await
    }
    async fn blob(&self, digest: &str) -> Result<crate::store::BlobReader, StoreError> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.layout.blob(digest).await
    }
    fn describe(&self) -> String {
        self.layout.describe()
    }
}

#[tokio::test]
async fn one_image_under_many_platforms_is_read_once_and_judged_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path()).unwrap();
    let amd = image(&layout, "linux/amd64", "linux/amd64", IndexFormat::Oci);
    let entry = serde_json::json!({"mediaType": amd.manifest.media_type,
        "digest": amd.manifest.digest, "size": amd.manifest.bytes.len()});
    let mut entries: Vec<_> = ["amd64", "arm64", "386"]
        .iter()
        .map(|arch| {
            let mut e = entry.clone();
            e["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
            e
        })
        .collect();
    // The same image again under its own platform, with a size that lies.
    let mut liar = entry.clone();
    liar["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64", "variant": "v2"});
    liar["size"] = serde_json::json!(1);
    entries.push(liar);
    let bytes = serde_json::to_vec(
        &serde_json::json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": entries}),
    )
    .unwrap();
    let index = RawManifest {
        digest: digest::sha256(&bytes),
        media_type: mt::OCI_INDEX.into(),
        bytes,
    };
    layout.tag(&["many".into()], &index).unwrap();
    let store = Counting {
        layout,
        reads: Default::default(),
    };
    let deep = VerifyOptions {
        deep: Some(CheckOptions::default()),
    };
    let r = verify(&store, "many", &[p("linux/amd64")], &deep)
        .await
        .unwrap();
    // The tag, then the child's manifest, config and layer size once; --deep reads the
    // child's manifest, config and layer once more.
    assert_eq!(store.reads.load(std::sync::atomic::Ordering::Relaxed), 7);
    assert_eq!(r.children.len(), 4);
    let platforms: Vec<String> = r.children.iter().map(|c| c.platform.to_string()).collect();
    assert_eq!(
        platforms,
        ["linux/amd64", "linux/arm64", "linux/386", "linux/amd64/v2"]
    );
    // Judged per entry: the arm64, 386 and amd64/v2 entries name a plain amd64 config; the
    // last one's size is wrong.
    let mismatched: Vec<String> = r
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::ConfigPlatformMismatch)
        .map(|f| f.platform.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(mismatched, ["linux/arm64", "linux/386", "linux/amd64/v2"]);
    assert!(r
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::BrokenReference
            && f.message.contains("the index says 1 bytes")));
    // The content check read the image once and reported it (its layer is not gzip) for
    // each entry without a broken reference already.
    let content: Vec<String> = r
        .findings
        .iter()
        .filter(|f| f.message.contains("its content: layer"))
        .map(|f| f.platform.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(content, ["linux/amd64", "linux/arm64", "linux/386"]);
}
