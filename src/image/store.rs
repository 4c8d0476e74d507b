//! Reading images from any `Store` (a registry repository, an OCI layout): index → the
//! chosen platform children → config and layers. Layers are fetched and scanned several at a
//! time on blocking threads, each blob streamed once and its digest verified as it is read.

use std::io::{self, Read};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use tokio_util::io::SyncIoBridge;

use super::{select, ImageError, ImageInput, MissingPlatform};
use crate::layers::{self, LayerError, LayerSummary};
use crate::oci::config::MAX_CONFIG_BYTES;
use crate::oci::digest::HashingReader;
use crate::oci::{Descriptor, Document, Visits};
use crate::platform::Platform;
use crate::store::{self, RawManifest, Store, StoreError};

/// What an index or manifest yielded: the images read and the platforms asked for but absent.
#[derive(Debug, Default)]
pub struct StoreImages {
    pub images: Vec<ImageInput>,
    pub missing: Vec<MissingPlatform>,
}

/// Reads every image under `top` (an index or an image manifest) that `wanted` selects.
pub async fn read<S: Store>(
    store: &S,
    top: RawManifest,
    name: &str,
    wanted: Option<&[Platform]>,
) -> Result<StoreImages, ImageError> {
    let mut out = StoreImages::default();
    let mut pending: Vec<(RawManifest, Option<Platform>, usize)> = vec![(top, None, 0)];
    let mut visits = Visits::default();
    while let Some((manifest, listed, depth)) = pending.pop() {
        let doc: Document = serde_json::from_slice(&manifest.bytes).map_err(|e| {
            ImageError::invalid(
                &store.describe(),
                format!("manifest {} is not JSON: {e}", manifest.digest),
            )
        })?;
        if let Some(children) = &doc.manifests {
            let (chosen, missing) = select(children, wanted);
            let available: Vec<Platform> = children
                .iter()
                .filter(|d| !d.is_attestation())
                .filter_map(Descriptor::platform)
                .collect();
            if !chosen.iter().any(|d| d.is_index()) {
                out.missing
                    .extend(missing.into_iter().map(|platform| MissingPlatform {
                        name: name.to_string(),
                        platform,
                        available: available.clone(),
                    }));
            }
            for child in chosen.into_iter().rev() {
                let platform = child.platform().map(|p| p.to_string()).unwrap_or_default();
                let first = visits
                    .visit(&child.digest, &platform, depth + 1)
                    .map_err(|why| ImageError::invalid(&store.describe(), why))?;
                if first {
                    let m = fetch_manifest(store, child).await?;
                    pending.push((m, child.platform(), depth + 1));
                }
            }
            continue;
        }
        let (Some(config), Some(layer_descs)) = (doc.config, doc.layers) else {
            return Err(ImageError::invalid(
                &store.describe(),
                format!(
                    "manifest {} is neither an index nor an image manifest",
                    manifest.digest
                ),
            ));
        };
        let config_bytes = fetch_config(store, &config).await?;
        let layers = scan_layers(store, &layer_descs).await?;
        out.images.push(ImageInput {
            name: name.to_string(),
            listed_platform: listed,
            manifest_digest: Some(manifest.digest.clone()),
            config_digest: Some(config.digest.clone()),
            config: config_bytes,
            layers,
        });
    }
    Ok(out)
}

async fn fetch_manifest<S: Store>(store: &S, d: &Descriptor) -> Result<RawManifest, ImageError> {
    let m = store.manifest(&d.digest).await?;
    let what = format!("manifest {}", d.digest);
    store::verify_digest(&m.bytes, &d.digest, &what, &store.describe())?;
    Ok(m)
}

async fn fetch_config<S: Store>(store: &S, d: &Descriptor) -> Result<Vec<u8>, ImageError> {
    if d.size > MAX_CONFIG_BYTES {
        return Err(ImageError::invalid(
            &store.describe(),
            format!(
                "config {} declares {} bytes; configs are small JSON documents",
                d.digest, d.size
            ),
        ));
    }
    Ok(store::read_small_blob(store, &d.digest, "config blob", MAX_CONFIG_BYTES).await?)
}

/// Scans the layers, a few at a time (the CPU work runs on blocking threads), in order.
async fn scan_layers<S: Store>(
    store: &S,
    descs: &[Descriptor],
) -> Result<Vec<Arc<LayerSummary>>, ImageError> {
    let parallel = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    stream::iter(descs.iter())
        .map(|d| scan_one(store, d))
        .buffered(parallel)
        .try_collect()
        .await
}

async fn scan_one<S: Store>(store: &S, d: &Descriptor) -> Result<Arc<LayerSummary>, ImageError> {
    let reader = store.blob(&d.digest).await?;
    let bridge = SyncIoBridge::new(reader);
    let digest = d.digest.clone();
    let describe = store.describe();
    let joined =
        tokio::task::spawn_blocking(move || scan_verified(bridge, &digest, &describe)).await;
    match joined {
        Ok(r) => r.map(Arc::new),
        Err(e) => Err(ImageError::invalid(
            &store.describe(),
            format!("scanning layer {} stopped: {e}", d.digest),
        )),
    }
}

/// Scans a blob, then reads it to the end and compares its digest with the expected one.
pub fn scan_verified(
    reader: impl Read,
    digest: &str,
    store: &str,
) -> Result<LayerSummary, ImageError> {
    let mut hashing = HashingReader::like(reader, digest)
        .map_err(|why| ImageError::invalid(store, format!("layer {why}")))?;
    let summary = layers::scan(&mut hashing, digest, layers::Limits::from_env()?)?;
    io::copy(&mut hashing, &mut io::sink()).map_err(|source| LayerError::Corrupt {
        layer: digest.to_string(),
        offset: 0,
        after: None,
        source,
    })?;
    let actual = hashing.finish();
    if actual != digest {
        return Err(StoreError::DigestMismatch {
            what: format!("layer blob {digest}"),
            store: store.to_string(),
            expected: digest.to_string(),
            actual,
        }
        .into());
    }
    Ok(summary)
}
