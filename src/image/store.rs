//! Reading images from any `Store` (a registry repository, an OCI layout): index → the
//! chosen platform children → config and layers. Layers are fetched and scanned several at a
//! time on blocking threads, each blob streamed once and its digest verified as it is read.

use std::collections::{HashMap, HashSet};
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
///
/// Every child an index lists is counted ([`Visits`]) before any is fetched, so that an
/// index fanning out past the limit is refused without a request; children wait as
/// descriptors and are fetched one at a time, so that at most one manifest is held, not one
/// per pending child (thousands of 4 MiB manifests would not fit in memory).
pub async fn read<S: Store>(
    store: &S,
    top: RawManifest,
    name: &str,
    wanted: Option<&[Platform]>,
) -> Result<StoreImages, ImageError> {
    let mut out = StoreImages::default();
    let mut pending: Vec<(Descriptor, usize)> = Vec::new();
    let mut next = Some((top, None, 0));
    let mut visits = Visits::default();
    let mut seen = Seen::default();
    loop {
        let (manifest, listed, depth) = match next.take() {
            Some(top) => top,
            None => match pending.pop() {
                // The same image listed again (under another platform): its contents are
                // known, only where it is listed differs.
                Some((child, _)) if seen.images.contains_key(&child.digest) => {
                    let mut image = seen.images[&child.digest].clone();
                    seen.count_layers(image.layers.len(), name, store)?;
                    image.listed_platform = child.platform();
                    out.images.push(image);
                    continue;
                }
                Some((child, depth)) => (
                    fetch_manifest(store, &child).await?,
                    child.platform(),
                    depth,
                ),
                None => break,
            },
        };
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
                    pending.push((child.clone(), depth + 1));
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
        seen.count_layers(layer_descs.len(), name, store)?;
        let config_bytes = match seen.configs.get(&config.digest) {
            Some(known) => known.clone(),
            None => {
                let bytes: Arc<[u8]> = fetch_config(store, &config).await?.into();
                seen.config_bytes += bytes.len() as u64;
                if seen.config_bytes > MAX_CONFIG_BYTES_PER_READ {
                    return Err(ImageError::invalid(
                        &store.describe(),
                        format!(
                            "the configs of {name} total more than {MAX_CONFIG_BYTES_PER_READ} bytes (at config {}); an image's config is a few KiB",
                            config.digest
                        ),
                    ));
                }
                seen.configs.insert(config.digest.clone(), bytes.clone());
                bytes
            }
        };
        let layers = scan_layers(store, &layer_descs, &mut seen.layers).await?;
        let image = ImageInput {
            name: name.to_string(),
            listed_platform: listed,
            manifest_digest: Some(manifest.digest.clone()),
            config_digest: Some(config.digest.clone()),
            config: config_bytes,
            layers,
        };
        seen.images.insert(manifest.digest.clone(), image.clone());
        out.images.push(image);
    }
    Ok(out)
}

/// The most config bytes one [`read`] holds: every distinct config of an index is kept for
/// the check, and an index may list 4,096 images, each with a config of up to
/// [`MAX_CONFIG_BYTES`]; real indexes hold a few configs of a few KiB.
pub const MAX_CONFIG_BYTES_PER_READ: u64 = 128 << 20;

/// What one [`read`] has already fetched, so that an index listing one image (or one
/// config, or one layer) many times fetches and scans it once: images by manifest digest,
/// configs and layer summaries by their digests.
#[derive(Default)]
struct Seen {
    images: HashMap<String, ImageInput>,
    configs: HashMap<String, Arc<[u8]>>,
    config_bytes: u64,
    layers: HashMap<String, Arc<LayerSummary>>,
    /// Layers listed by the images read so far, each listing counted.
    layer_listings: usize,
}

impl Seen {
    /// Counts `n` more layer listings, refusing more than [`MAX_LAYERS_PER_READ`].
    fn count_layers<S: Store>(
        &mut self,
        n: usize,
        name: &str,
        store: &S,
    ) -> Result<(), ImageError> {
        self.layer_listings += n;
        if self.layer_listings > MAX_LAYERS_PER_READ {
            return Err(too_many_layers(name, &store.describe()));
        }
        Ok(())
    }
}

/// The most layer listings one read (or one check of an image for several platforms) takes:
/// each is merged into a filesystem and checked once per platform, and a 4 MiB manifest can
/// list one layer 20,000 times under each of 4,096 platforms (82 million merges, hours). Real
/// images have tens of layers (overlay2 mounts at most 128) under a few platforms.
pub const MAX_LAYERS_PER_READ: usize = 100_000;

/// The error for an image (or index) past [`MAX_LAYERS_PER_READ`].
pub fn too_many_layers(name: &str, store: &str) -> ImageError {
    ImageError::invalid(
        store,
        format!(
            "{name} lists more than {MAX_LAYERS_PER_READ} layers over all its platforms; an image has tens of layers (overlay2 mounts at most 128)"
        ),
    )
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

/// Scans the layers, a few at a time (the CPU work runs on blocking threads), in order. A
/// layer listed several times, here or in an image read before (`known`), is fetched and
/// scanned once (a 4 MiB manifest can list one layer 20,000 times).
async fn scan_layers<S: Store>(
    store: &S,
    descs: &[Descriptor],
    known: &mut HashMap<String, Arc<LayerSummary>>,
) -> Result<Vec<Arc<LayerSummary>>, ImageError> {
    let parallel = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let mut seen = HashSet::new();
    let distinct: Vec<&Descriptor> = descs
        .iter()
        .filter(|d| !known.contains_key(&d.digest) && seen.insert(&d.digest))
        .collect();
    let scanned: Vec<Arc<LayerSummary>> = stream::iter(distinct.iter())
        .map(|d| scan_one(store, d))
        .buffered(parallel)
        .try_collect()
        .await?;
    for (d, summary) in distinct.iter().zip(scanned) {
        known.insert(d.digest.clone(), summary);
    }
    Ok(descs.iter().map(|d| known[&d.digest].clone()).collect())
}

async fn scan_one<S: Store>(store: &S, d: &Descriptor) -> Result<Arc<LayerSummary>, ImageError> {
    use tokio::io::AsyncReadExt;
    let reader = store.blob(&d.digest).await?;
    // A blob is read no further than one byte past the size its descriptor gives (a blob
    // longer than declared then fails its digest check rather than streaming for ever); a
    // descriptor without a size (0, as some archives write) is read to its end.
    let bound = match d.size {
        0 => u64::MAX,
        size => size.saturating_add(1),
    };
    let bridge = SyncIoBridge::new(reader.take(bound));
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::oci::layout::Layout;
    use crate::oci::sha256;
    use crate::store::BlobReader;

    /// A layout that counts the manifests and blobs fetched from it.
    struct Counting {
        layout: Layout,
        manifests: AtomicUsize,
        blobs: AtomicUsize,
    }

    impl Store for Counting {
        async fn manifest(&self, reference: &str) -> Result<RawManifest, StoreError> {
            self.manifests.fetch_add(1, Ordering::Relaxed);
            self.layout.manifest(reference).await
        }
        async fn blob_size(&self, digest: &str) -> Result<Option<u64>, StoreError> {
            self.layout.blob_size(digest).await
        }
        async fn blob(&self, digest: &str) -> Result<BlobReader, StoreError> {
            self.blobs.fetch_add(1, Ordering::Relaxed);
            self.layout.blob(digest).await
        }
        fn describe(&self) -> String {
            self.layout.describe()
        }
    }

    fn put(layout: &Layout, bytes: &[u8]) -> serde_json::Value {
        layout.put_bytes(&sha256(bytes), bytes).unwrap();
        json!({"digest": sha256(bytes), "size": bytes.len()})
    }

    /// A layout holding an amd64 image (an empty layer, listed `repeats` times), and an index
    /// (not stored) listing it under `variants` platforms `linux/amd64/VARIANT`.
    fn fan_out(dir: &std::path::Path, variants: usize, repeats: usize) -> (Counting, RawManifest) {
        let layout = Layout::create(dir).unwrap();
        let layer = tar::Builder::new(Vec::new()).into_inner().unwrap();
        let config = json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": vec![sha256(&layer); repeats]}});
        let mut config = put(&layout, config.to_string().as_bytes());
        config["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
        let mut layer = put(&layout, &layer);
        layer["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
        let manifest = json!({"schemaVersion": 2, "config": config, "layers": vec![layer; repeats],
            "mediaType": "application/vnd.oci.image.manifest.v1+json"});
        let mut entry = put(&layout, manifest.to_string().as_bytes());
        entry["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
        let entries: Vec<_> = (0..variants)
            .map(|i| {
                let mut e = entry.clone();
                e["platform"] =
                    json!({"os": "linux", "architecture": "amd64", "variant": format!("x{i}")});
                e
            })
            .collect();
        let index = json!({"schemaVersion": 2, "manifests": entries}).to_string();
        let top = RawManifest {
            digest: sha256(index.as_bytes()),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            bytes: index.into_bytes(),
        };
        let store = Counting {
            layout,
            manifests: AtomicUsize::new(0),
            blobs: AtomicUsize::new(0),
        };
        (store, top)
    }

    #[tokio::test]
    async fn a_fan_out_past_the_limit_is_refused_before_any_child_is_fetched() {
        let dir = tempfile::tempdir().unwrap();
        let (store, top) = fan_out(dir.path(), crate::oci::visits::MAX_MANIFESTS + 1, 1);
        let err = read(&store, top, "wide", None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 4096 manifests"), "{err}");
        assert_eq!(store.manifests.load(Ordering::Relaxed), 0);

        let (store, top) = fan_out(dir.path(), 3, 1);
        let read = read(&store, top, "three", None).await.unwrap();
        assert_eq!(read.images.len(), 3);
        // One image under three platforms: fetched once, its config and layer once.
        assert_eq!(store.manifests.load(Ordering::Relaxed), 1);
        assert_eq!(store.blobs.load(Ordering::Relaxed), 2);
        let listed: Vec<String> = read
            .images
            .iter()
            .map(|i| i.listed_platform.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(
            listed,
            ["linux/amd64/x0", "linux/amd64/x1", "linux/amd64/x2"]
        );
    }

    #[tokio::test]
    async fn one_image_under_four_thousand_platforms_is_fetched_and_scanned_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, top) = fan_out(dir.path(), crate::oci::visits::MAX_MANIFESTS - 1, 1);
        let read = read(&store, top, "wide", None).await.unwrap();
        assert_eq!(read.images.len(), crate::oci::visits::MAX_MANIFESTS - 1);
        assert_eq!(store.manifests.load(Ordering::Relaxed), 1);
        assert_eq!(store.blobs.load(Ordering::Relaxed), 2);
        // Every copy shares the one config and layer summary read.
        assert!(Arc::ptr_eq(
            &read.images[0].config,
            &read.images[4094].config
        ));
        assert!(Arc::ptr_eq(
            &read.images[0].layers[0],
            &read.images[4094].layers[0]
        ));
    }

    #[tokio::test]
    async fn configs_past_the_per_read_budget_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let padding = " ".repeat((MAX_CONFIG_BYTES - 100) as usize);
        let entries: Vec<_> = (0..(MAX_CONFIG_BYTES_PER_READ / MAX_CONFIG_BYTES + 1))
            .map(|i| {
                let text = format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"n":{i}}}{padding}"#);
                let mut config = put(&layout, text.as_bytes());
                config["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
                let manifest = json!({"schemaVersion": 2, "config": config, "layers": [],
                    "mediaType": "application/vnd.oci.image.manifest.v1+json"});
                let mut entry = put(&layout, manifest.to_string().as_bytes());
                entry["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
                entry["platform"] = json!({"os": "linux", "architecture": "amd64", "variant": format!("x{i}")});
                entry
            })
            .collect();
        let index = json!({"schemaVersion": 2, "manifests": entries}).to_string();
        let top = RawManifest {
            digest: sha256(index.as_bytes()),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            bytes: index.into_bytes(),
        };
        let err = read(&layout, top, "heavy", None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("configs of heavy total more than 134217728 bytes"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn layer_listings_past_the_per_read_limit_are_refused_before_any_layer_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (store, top) = fan_out(dir.path(), 6, 20_000);
        let err = read(&store, top, "layered", None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("layered lists more than 100000 layers"),
            "{err}"
        );
        // Five images read (100,000 listings), the sixth refused before it is fetched again.
        assert_eq!(
            store.blobs.load(Ordering::Relaxed),
            2,
            "config and layer once"
        );
    }

    #[tokio::test]
    async fn a_layer_listed_many_times_is_scanned_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, top) = fan_out(dir.path(), 1, 1000);
        let read = read(&store, top, "repeats", None).await.unwrap();
        assert_eq!(read.images[0].layers.len(), 1000);
        assert_eq!(
            store.blobs.load(Ordering::Relaxed),
            2,
            "the config and the layer"
        );
    }
}
