//! One child image of a verified tag, in two steps: [`fetch`] reads what the registry holds
//! for a manifest digest (the manifest, its config, each layer's size), once per digest, and
//! [`judge`] turns that into the child's report and findings for one index entry, a pure
//! function. An index may list one image under many platforms (4,096 at most): it is fetched
//! once and judged per entry.

use futures_util::StreamExt;

use crate::finding::{Finding, FindingKind};
use crate::oci::config::MAX_CONFIG_BYTES;
use crate::oci::{Descriptor, ImageConfig, ImageManifest};
use crate::platform::Platform;
use crate::store::{self, RawManifest, Store, StoreError};

use super::{broken, ChildReport};

/// How many layer sizes are asked at once.
const LAYERS_AT_ONCE: usize = 16;

/// What the store holds for one manifest digest: what the per-entry judgement needs, not the
/// manifest itself (an index's children are kept together, and a manifest may be 4 MiB).
pub struct Fetched {
    pub digest: String,
    /// The manifest's media type and size, or why it could not be fetched (already worded).
    pub manifest: Result<(String, u64), String>,
    /// The parsed image manifest's findings base, or why it is not one.
    pub contents: Result<Contents, String>,
}

/// An image manifest's config and layers as found in the store.
pub struct Contents {
    pub config_digest: String,
    /// The config's platform, or why the config is broken.
    pub config: Result<Platform, String>,
    pub layers: usize,
    pub compressed_size: u64,
    /// Layers missing or of another size: (layer digest, why).
    pub layer_problems: Vec<(String, String)>,
}

/// Fetches the manifest `digest` and what it references.
pub async fn fetch<S: Store>(store: &S, digest: &str) -> Fetched {
    match store.manifest(digest).await {
        Ok(manifest) => fetch_from(store, &manifest).await,
        Err(e) => {
            let why = match e {
                StoreError::NotFound { .. } | StoreError::DigestMismatch { .. } => e.to_string(),
                e => format!("could not be fetched: {e}"),
            };
            Fetched {
                digest: digest.to_string(),
                manifest: Err(why.clone()),
                contents: Err(why),
            }
        }
    }
}

/// What `manifest` (already fetched) references: its config and each layer's size.
pub async fn fetch_from<S: Store>(store: &S, manifest: &RawManifest) -> Fetched {
    let described = Ok((manifest.media_type.clone(), manifest.bytes.len() as u64));
    let doc: ImageManifest = match serde_json::from_slice(&manifest.bytes) {
        Ok(d) => d,
        Err(e) => {
            return Fetched {
                digest: manifest.digest.clone(),
                manifest: described,
                contents: Err(format!("not an image manifest: {e}")),
            }
        }
    };
    // Each distinct layer asked once (a manifest may list one layer 20,000 times), a few at
    // a time, while the config is read.
    let mut seen = std::collections::HashSet::new();
    let distinct: Vec<&Descriptor> = doc
        .layers
        .iter()
        .filter(|l| seen.insert((&l.digest, l.size)))
        .collect();
    let heads: Vec<_> = distinct
        .iter()
        .map(|l| store.blob_size(&l.digest))
        .collect();
    let (config, sizes): (_, Vec<_>) = tokio::join!(
        fetch_config(store, &doc.config),
        futures_util::stream::iter(heads)
            .buffered(LAYERS_AT_ONCE)
            .collect()
    );
    let layer_problems = distinct
        .into_iter()
        .zip(sizes)
        .filter_map(|(layer, size)| {
            let why = match size {
                Ok(Some(s)) if s == layer.size => return None,
                Ok(Some(s)) => format!(
                    "layer {} has {s} bytes, the manifest says {}",
                    layer.digest, layer.size
                ),
                Ok(None) => format!("layer {} does not exist", layer.digest),
                Err(e) => format!("layer {} could not be checked: {e}", layer.digest),
            };
            Some((layer.digest.clone(), why))
        })
        .collect();
    Fetched {
        digest: manifest.digest.clone(),
        manifest: described,
        contents: Ok(Contents {
            config_digest: doc.config.digest.clone(),
            config: config.map(|c| c.platform()),
            layers: doc.layers.len(),
            compressed_size: doc.layers.iter().map(|l| l.size).sum(),
            layer_problems,
        }),
    }
}

/// The child's report and findings for the index entry `entry` (`None` for a tag naming
/// the image itself): the manifest's size against the entry's, the config's platform
/// against the entry's, and every broken layer.
pub fn judge(
    image: &str,
    fetched: &Fetched,
    entry: Option<&Descriptor>,
) -> (Option<ChildReport>, Vec<Finding>) {
    let own = Descriptor {
        digest: fetched.digest.clone(),
        platform: entry.and_then(|e| e.platform.clone()),
        ..Default::default()
    };
    let (media_type, size) = match &fetched.manifest {
        Ok(described) => described.clone(),
        Err(why) => return (None, vec![broken(image, &own, why.clone())]),
    };
    let mut findings = Vec::new();
    let size_differs = entry.filter(|e| e.size != size).map(|entry| {
        broken(
            image,
            entry,
            format!(
                "the index says {} bytes, the manifest has {size}",
                entry.size
            ),
        )
    });
    let contents = match &fetched.contents {
        Ok(c) => c,
        Err(why) => {
            findings.push(broken(image, &own, why.clone()));
            findings.extend(size_differs);
            return (None, findings);
        }
    };
    let declared = entry.and_then(Descriptor::platform);
    let config_platform = contents.config.as_ref().ok().cloned();
    match (&contents.config, &declared) {
        (Err(why), _) => findings.push(broken(
            image,
            &own,
            format!("config {}: {why}", contents.config_digest),
        )),
        (Ok(c), Some(d)) if d != c => findings.push(
            Finding::error(
                FindingKind::ConfigPlatformMismatch,
                format!(
                    "{image}: the {d} entry {} has a config for {c}: runtimes that trust the config run it as {c}",
                    fetched.digest
                ),
            )
            .with_platform(d)
            .with_image(image)
            .with_expected_actual(d, c),
        ),
        _ => {}
    }
    for (layer, why) in &contents.layer_problems {
        findings.push(broken(image, &own, why.clone()).with_layer(layer));
    }
    findings.extend(size_differs);
    let platform = declared
        .or(config_platform.clone())
        .unwrap_or_else(|| Platform::from_parts_lenient("unknown", "unknown", None));
    let report = ChildReport {
        platform,
        digest: fetched.digest.clone(),
        media_type,
        size,
        config_digest: Some(contents.config_digest.clone()),
        config_platform,
        layers: contents.layers,
        compressed_size: contents.compressed_size,
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
