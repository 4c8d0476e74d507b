//! `verify`: is a tag (or digest) a complete multi-arch image covering the required
//! platforms? Generic over [`Store`], so it reads registries and OCI layouts alike. The
//! manifest is fetched fresh; an index is required when several platforms are; every child
//! manifest, config and layer is fetched or checked for existence with its size; each child's
//! config must agree with its index entry. Attestation entries are reported apart and are
//! neither coverage nor findings. With `--deep`, each complete child's layers are pulled
//! and given the content check ([`crate::check::check_store`]) too.

mod child;

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;
use serde::Serialize;

use crate::check::{self, CheckOptions, CheckReport};
use crate::finding::{Finding, FindingKind};
use crate::image::ImageError;
use crate::oci::documents::REFERENCE_DIGEST;
use crate::oci::media_types as mt;
use crate::oci::visits::MAX_MANIFESTS;
use crate::oci::{Descriptor, Index};
use crate::platform::Platform;
use crate::store::{RawManifest, Store, StoreError};

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
    // Each distinct child once, a few at a time (each holds its manifest, up to 4 MiB,
    // while it is read), then judged per entry: one image may be listed under many platforms.
    let mut seen = HashSet::new();
    let distinct: Vec<&str> = entries
        .iter()
        .map(|e| e.digest.as_str())
        .filter(|d| seen.insert(*d))
        .collect();
    let fetched: HashMap<String, child::Fetched> = futures_util::stream::iter(distinct)
        .map(|digest| child::fetch(store, digest))
        .buffered(CHILDREN_AT_ONCE)
        .map(|f| (f.digest.clone(), f))
        .collect()
        .await;
    for entry in entries {
        let (child, findings) = child::judge(&image, &fetched[&entry.digest], Some(entry));
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
    let fetched = child::fetch_from(store, top).await;
    let (child, findings) = child::judge(image, &fetched, None);
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
    // Children grouped by image: an index may list one image under many platforms, and
    // each is read once and checked per platform.
    let mut by_image: Vec<(String, Vec<Platform>)> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for child in &report.children {
        let key = Some(child.platform.clone());
        if already_broken.contains(&key) || already_broken.contains(&None) {
            continue;
        }
        match position.get(&child.digest) {
            Some(&at) => by_image[at].1.push(child.platform.clone()),
            None => {
                position.insert(child.digest.clone(), by_image.len());
                by_image.push((child.digest.clone(), vec![child.platform.clone()]));
            }
        }
    }
    for (digest, platforms) in by_image {
        let manifest = store.manifest(&digest).await?;
        let checked =
            check::check_image_for(store, manifest, &report.reference, &platforms, opts).await;
        let why = match checked {
            Ok(per_platform) => {
                for reports in per_platform {
                    for mut r in reports {
                        // verify has compared the config with the index entry already.
                        r.findings
                            .retain(|f| f.kind != FindingKind::ConfigPlatformMismatch);
                        report.findings.extend(r.findings.iter().cloned());
                        report.content.push(r);
                    }
                }
                continue;
            }
            Err(e) => content_failure(e, store, &digest)?,
        };
        let own = Descriptor {
            digest: digest.clone(),
            ..Default::default()
        };
        for platform in &platforms {
            report.findings.push(
                broken(&report.reference, &own, format!("its content: {why}"))
                    .with_platform(platform),
            );
        }
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

#[cfg(test)]
mod tests;
