//! `verify`: is a tag (or digest) a complete multi-arch image covering the required
//! platforms? Generic over [`Store`], so it reads registries and OCI layouts alike. The
//! manifest is fetched fresh; an index is required when several platforms are; every child
//! manifest, config and layer is fetched or checked for existence with its size; each child's
//! config must agree with its index entry. Attestation entries are reported apart and are
//! neither coverage nor findings. With `--deep`, each complete child's layers are pulled
//! and given the content check ([`crate::check::check_store`]) too.

use std::collections::HashSet;

use futures_util::StreamExt;
use serde::Serialize;

use crate::check::{self, CheckOptions, CheckReport};
use crate::finding::{Finding, FindingKind};
use crate::image::ImageError;
use crate::oci::config::MAX_CONFIG_BYTES;
use crate::oci::documents::REFERENCE_DIGEST;
use crate::oci::media_types as mt;
use crate::oci::visits::MAX_MANIFESTS;
use crate::oci::{Descriptor, ImageConfig, ImageManifest, Index};
use crate::platform::Platform;
use crate::store::{self, RawManifest, Store, StoreError};

/// How many children of an index are fetched and checked at once.
const CHILDREN_AT_ONCE: usize = 16;

/// How to verify.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Run the content check on the pulled layers as well (`--deep`), with these options.
    pub deep: Option<CheckOptions>,
}

/// One platform image of what was verified.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ChildReport {
    /// The platform its index entry declares (or its config's, for a single image).
    pub platform: Platform,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub config_digest: Option<String>,
    /// The platform the config says.
    pub config_platform: Option<Platform>,
    pub layers: usize,
    /// Sum of the compressed layer sizes.
    pub compressed_size: u64,
}

/// An attestation entry of an index (not a platform).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AttestationReport {
    pub digest: String,
    /// The manifest it attests (`vnd.docker.reference.digest`).
    pub reference_digest: Option<String>,
}

/// The result of verifying a reference.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// What was verified, as given.
    pub reference: String,
    /// The digest of the manifest the reference pointed to (pin `REPO@DIGEST`).
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub findings: Vec<Finding>,
    pub children: Vec<ChildReport>,
    pub attestations: Vec<AttestationReport>,
    /// With `--deep`: the content check of each platform image (its findings are in
    /// `findings`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<CheckReport>,
}

/// Verifies `reference` in `store` against the `required` platforms.
pub async fn verify<S: Store>(
    store: &S,
    reference: &str,
    required: &[Platform],
    opts: &VerifyOptions,
) -> Result<VerifyReport, StoreError> {
    let mut report = verify_structure(store, reference, required).await?;
    if let Some(check_opts) = &opts.deep {
        check_contents(store, &mut report, check_opts).await?;
    }
    Ok(report)
}

/// Everything but the content check: coverage, references, configs.
async fn verify_structure<S: Store>(
    store: &S,
    reference: &str,
    required: &[Platform],
) -> Result<VerifyReport, StoreError> {
    let top = store.manifest(reference).await?;
    let image = format!("{}:{reference}", store.describe());
    let mut report = VerifyReport {
        reference: image.clone(),
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        size: top.bytes.len() as u64,
        findings: Vec::new(),
        children: Vec::new(),
        attestations: Vec::new(),
        content: Vec::new(),
    };
    if mt::is_image_manifest(&top.media_type) {
        verify_single(store, &top, &image, required, &mut report).await;
        return Ok(report);
    }
    if !mt::is_index(&top.media_type) {
        return Err(StoreError::Other {
            store: store.describe(),
            detail: format!(
                "{reference} is a {} document, not an image or index",
                top.media_type
            ),
        });
    }
    let index: Index = serde_json::from_slice(&top.bytes).map_err(|e| StoreError::Other {
        store: store.describe(),
        detail: format!("{reference}: the index is not valid JSON: {e}"),
    })?;
    if index.manifests.len() > MAX_MANIFESTS {
        return Err(StoreError::Other {
            store: store.describe(),
            detail: format!(
                "{reference}: the index lists {} manifests; archbuild verifies at most {MAX_MANIFESTS} under one reference (an index lists one per platform and attestation)",
                index.manifests.len()
            ),
        });
    }
    let (attestations, entries): (Vec<&Descriptor>, Vec<&Descriptor>) =
        index.manifests.iter().partition(|d| d.is_attestation());
    report.attestations = attestations
        .iter()
        .map(|d| AttestationReport {
            digest: d.digest.clone(),
            reference_digest: d.annotation(REFERENCE_DIGEST).map(str::to_string),
        })
        .collect();
    let present: Vec<Platform> = entries.iter().filter_map(|d| d.platform()).collect();
    for want in required {
        if !present.contains(want) {
            report.findings.push(missing(&image, want, &present));
        }
    }
    // A few children at a time: each holds its manifest (up to 4 MiB) while it is checked.
    let checks: Vec<_> = futures_util::stream::iter(&entries)
        .map(|entry| verify_entry(store, &image, entry))
        .buffered(CHILDREN_AT_ONCE)
        .collect()
        .await;
    for (child, findings) in checks {
        report.children.extend(child);
        report.findings.extend(findings);
    }
    Ok(report)
}

/// A tag naming one image manifest, not an index: right only when one platform is required
/// and it is that image's.
async fn verify_single<S: Store>(
    store: &S,
    top: &RawManifest,
    image: &str,
    required: &[Platform],
    report: &mut VerifyReport,
) {
    let (child, findings) = check_child(store, top, None).await;
    if required.len() > 1 {
        report.findings.push(
            Finding::error(
                FindingKind::SingleArch,
                format!(
                    "{image} is a single image manifest ({}), not an index: it cannot cover {}",
                    child
                        .as_ref()
                        .map_or("unknown platform".into(), |c| c.platform.to_string()),
                    list(required)
                ),
            )
            .with_image(image),
        );
    } else if let (Some(want), Some(c)) = (required.first(), &child) {
        if &c.platform != want {
            report
                .findings
                .push(missing(image, want, std::slice::from_ref(&c.platform)));
        }
    }
    report.findings.extend(findings);
    report.children.extend(child);
}

/// One entry of the index: its manifest fetched (size and digest checked) and verified.
async fn verify_entry<S: Store>(
    store: &S,
    image: &str,
    entry: &Descriptor,
) -> (Option<ChildReport>, Vec<Finding>) {
    match store.manifest(&entry.digest).await {
        Ok(child) => {
            let mut extra = Vec::new();
            if child.bytes.len() as u64 != entry.size {
                extra.push(broken(
                    image,
                    entry,
                    format!(
                        "the index says {} bytes, the manifest has {}",
                        entry.size,
                        child.bytes.len()
                    ),
                ));
            }
            let (report, mut findings) = check_child(store, &child, Some(entry)).await;
            findings.extend(extra);
            (report, findings)
        }
        Err(e @ (StoreError::NotFound { .. } | StoreError::DigestMismatch { .. })) => {
            (None, vec![broken(image, entry, e.to_string())])
        }
        Err(e) => (
            None,
            vec![broken(image, entry, format!("could not be fetched: {e}"))],
        ),
    }
}

/// Runs the content check on every child that verified without a broken reference (a
/// missing layer is already reported; pulling it again would only fail). A layer whose bytes
/// do not match its digest, or that is not a readable tar, is a broken reference too; other
/// failures (the store going away) are errors, since the check could not be done.
async fn check_contents<S: Store>(
    store: &S,
    report: &mut VerifyReport,
    opts: &CheckOptions,
) -> Result<(), StoreError> {
    let already_broken: HashSet<Option<Platform>> = report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::BrokenReference)
        .map(|f| f.platform.clone())
        .collect();
    for child in report.children.clone() {
        let key = Some(child.platform.clone());
        if already_broken.contains(&key) || already_broken.contains(&None) {
            continue;
        }
        let manifest = store.manifest(&child.digest).await?;
        let wanted = std::slice::from_ref(&child.platform);
        let checked = check::check_store(store, manifest, &report.reference, Some(wanted), opts);
        let why = match checked.await {
            Ok(reports) => {
                for mut r in reports {
                    // verify has compared the config with the index entry already.
                    r.findings
                        .retain(|f| f.kind != FindingKind::ConfigPlatformMismatch);
                    report.findings.extend(r.findings.iter().cloned());
                    report.content.push(r);
                }
                continue;
            }
            Err(e) => content_failure(e, store, &child.digest)?,
        };
        let own = Descriptor {
            digest: child.digest.clone(),
            ..Default::default()
        };
        report.findings.push(
            broken(&report.reference, &own, format!("its content: {why}"))
                .with_platform(&child.platform),
        );
    }
    Ok(())
}

/// Sorts a failed content check: what the image got wrong (a layer that does not match its
/// digest, is not a readable tar, or a config that is not JSON) is `Ok(why)`, to report as a
/// broken reference; a failure to reach the store is an error.
fn content_failure<S: Store>(
    e: check::CheckError,
    store: &S,
    digest: &str,
) -> Result<String, StoreError> {
    match e {
        check::CheckError::Config { .. } => Ok(e.to_string()),
        check::CheckError::Image(ImageError::Layer(e)) => Ok(e.to_string()),
        check::CheckError::Image(ImageError::Store(
            e @ (StoreError::NotFound { .. } | StoreError::DigestMismatch { .. }),
        )) => Ok(e.to_string()),
        check::CheckError::Image(ImageError::Store(e)) => Err(e),
        check::CheckError::Image(other) => Err(StoreError::Other {
            store: store.describe(),
            detail: format!("the content check of {digest}: {other}"),
        }),
    }
}

fn list(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn missing(image: &str, want: &Platform, present: &[Platform]) -> Finding {
    let have = if present.is_empty() {
        "nothing".to_string()
    } else {
        list(present)
    };
    Finding::error(
        FindingKind::PlatformMissing,
        format!("{image} has no {want} image (it has {have}): {want} nodes fail to pull it with 'no matching manifest'"),
    )
    .with_platform(want)
    .with_image(image)
    .with_expected_actual(want, have)
}

fn broken(image: &str, entry: &Descriptor, why: String) -> Finding {
    let mut f = Finding::error(
        FindingKind::BrokenReference,
        format!("{image}: {} is broken: {why}", entry.digest),
    )
    .with_image(image);
    if let Some(p) = entry.platform() {
        f = f.with_platform(&p);
    }
    f
}

/// Checks one image manifest: its config (fetched and parsed) and every layer's existence
/// and size; compares the config's platform with the index entry's.
async fn check_child<S: Store>(
    store: &S,
    manifest: &RawManifest,
    entry: Option<&Descriptor>,
) -> (Option<ChildReport>, Vec<Finding>) {
    let image = store.describe();
    let doc: ImageManifest = match serde_json::from_slice(&manifest.bytes) {
        Ok(d) => d,
        Err(e) => {
            let d = entry.cloned().unwrap_or(Descriptor {
                digest: manifest.digest.clone(),
                ..Default::default()
            });
            return (
                None,
                vec![broken(&image, &d, format!("not an image manifest: {e}"))],
            );
        }
    };
    let mut findings = Vec::new();
    let config = fetch_config(store, &doc.config).await;
    let config_platform = config.as_ref().ok().map(ImageConfig::platform);
    let declared = entry.and_then(Descriptor::platform);
    let platform = declared
        .clone()
        .or(config_platform.clone())
        .unwrap_or_else(|| Platform::from_parts_lenient("unknown", "unknown", None));
    let own = Descriptor {
        digest: manifest.digest.clone(),
        platform: entry.and_then(|e| e.platform.clone()),
        ..Default::default()
    };
    match (&config, &declared, &config_platform) {
        (Err(why), _, _) => findings.push(broken(&image, &own, format!("config {}: {why}", doc.config.digest))),
        (Ok(_), Some(d), Some(c)) if d != c => findings.push(
            Finding::error(
                FindingKind::ConfigPlatformMismatch,
                format!("{image}: the {d} entry {} has a config for {c}: runtimes that trust the config run it as {c}", manifest.digest),
            )
            .with_platform(d)
            .with_image(&image)
            .with_expected_actual(d, c),
        ),
        _ => {}
    }
    let sizes =
        futures_util::future::join_all(doc.layers.iter().map(|l| store.blob_size(&l.digest))).await;
    for (layer, size) in doc.layers.iter().zip(sizes) {
        let problem = match size {
            Ok(Some(s)) if s == layer.size => None,
            Ok(Some(s)) => Some(format!(
                "layer {} has {s} bytes, the manifest says {}",
                layer.digest, layer.size
            )),
            Ok(None) => Some(format!("layer {} does not exist", layer.digest)),
            Err(e) => Some(format!("layer {} could not be checked: {e}", layer.digest)),
        };
        if let Some(why) = problem {
            findings.push(broken(&image, &own, why).with_layer(&layer.digest));
        }
    }
    let report = ChildReport {
        platform,
        digest: manifest.digest.clone(),
        media_type: manifest.media_type.clone(),
        size: manifest.bytes.len() as u64,
        config_digest: Some(doc.config.digest.clone()),
        config_platform,
        layers: doc.layers.len(),
        compressed_size: doc.layers.iter().map(|l| l.size).sum(),
    };
    (Some(report), findings)
}

/// Fetches and parses a config blob, checking its digest and size.
async fn fetch_config<S: Store>(store: &S, d: &Descriptor) -> Result<ImageConfig, String> {
    let bytes = store::read_small_blob(store, &d.digest, "config", MAX_CONFIG_BYTES)
        .await
        .map_err(|e| match e {
            StoreError::DigestMismatch { actual, .. } => format!("has digest {actual}"),
            StoreError::Io { source, .. } => format!("could not be read: {source}"),
            e => e.to_string(),
        })?;
    if bytes.len() as u64 != d.size {
        return Err(format!(
            "has {} bytes, the manifest says {}",
            bytes.len(),
            d.size
        ));
    }
    ImageConfig::parse(&bytes).map_err(|e| format!("is not a valid image config: {e}"))
}

#[cfg(test)]
mod tests;
