//! From an image in the Docker daemon to publishable parts: the config bytes exactly as the
//! daemon stores them and every layer compressed (gzip or zstd) into the [`BlobCache`].
//!
//! The `docker save` stream is read once, in order. A layer that cannot be in the cache (its
//! size matches no cached layer of the image) is compressed as it streams, its diffID hashed
//! on the way, so compression starts with the first byte the daemon sends. A layer that may
//! be cached is spooled to a temp file while its diffID is hashed, and compressed on its own
//! thread (at most one per core across all images) only if the cache does not know it. In an
//! OCI-style export a layer's path is its diffID, so a cached one is not even read. When the
//! cache already has the config and every layer of an image, nothing is exported at all.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

mod gzip;
mod slots;
mod tap;

pub use gzip::gzip_parallel;
pub use slots::{Permit, Slots};
pub use tap::CompressingTap;

use super::assemble::{Compression, Layer};
use super::cache::BlobCache;
use crate::oci::digest::{HashingReader, HashingWriter};

/// An image ready to be assembled: config bytes and compressed layers (blobs in the cache).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Converted {
    pub config: Vec<u8>,
    pub diff_ids: Vec<String>,
    pub layers: Vec<Layer>,
    /// How many layers were compressed in this run (0 when all came from the cache).
    pub compressed: usize,
    /// Whether the image was exported from the daemon for this conversion.
    pub exported: bool,
}

/// Why an image could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("the Docker daemon could not {action} image {image}: {detail}")]
    Daemon {
        action: &'static str,
        image: String,
        detail: String,
    },
    #[error("the export of image {image} is not a docker save archive: {detail}")]
    Archive { image: String, detail: String },
    #[error("compressing layers of {image}: {source}")]
    Io {
        image: String,
        #[source]
        source: std::io::Error,
    },
}

/// Converts image `image_id` of the daemon, reusing what the cache holds.
pub async fn convert(
    docker: &bollard::Docker,
    image_id: &str,
    compression: Compression,
    cache: &BlobCache,
    slots: Arc<Slots>,
) -> Result<Converted, ConvertError> {
    use futures_util::TryStreamExt;
    let (id, diff_ids) = inspect(docker, image_id).await?;
    if let Some(hit) = from_cache(cache, &id, &diff_ids, compression) {
        return Ok(hit);
    }
    let stream = docker.export_image(&id).map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let cache = cache.clone();
    let image = id.clone();
    tokio::task::spawn_blocking(move || {
        let sync = tokio_util::io::SyncIoBridge::new(reader);
        read_export(sync, &image, &diff_ids, compression, &cache, &slots)
    })
    .await
    .map_err(|e| ConvertError::Io {
        image: id.clone(),
        source: std::io::Error::other(e),
    })?
}

/// A tap that compresses the layers of image `image_id` into the publish cache while the
/// check reads its export (see [`CompressingTap`]), or `None` when the cache holds the whole
/// image already and publishing will not need the export.
pub async fn tap_for(
    docker: &bollard::Docker,
    image_id: &str,
    opts: &super::PublishOptions,
    slots: Arc<Slots>,
) -> Result<Option<CompressingTap>, ConvertError> {
    let cache = BlobCache::open(&opts.cache_dir).map_err(|source| ConvertError::Io {
        image: image_id.to_string(),
        source,
    })?;
    let (id, diff_ids) = inspect(docker, image_id).await?;
    if from_cache(&cache, &id, &diff_ids, opts.compression).is_some() {
        return Ok(None);
    }
    Ok(Some(CompressingTap::new(
        opts.compression,
        &cache,
        slots,
        &diff_ids,
    )))
}

/// The image's ID and its layers' diffIDs, as the daemon reports them.
async fn inspect(
    docker: &bollard::Docker,
    image_id: &str,
) -> Result<(String, Vec<String>), ConvertError> {
    let inspect = docker
        .inspect_image(image_id)
        .await
        .map_err(|e| ConvertError::Daemon {
            action: "inspect",
            image: image_id.to_string(),
            detail: e.to_string(),
        })?;
    let id = inspect.id.unwrap_or_else(|| image_id.to_string());
    let diff_ids = inspect.root_fs.and_then(|r| r.layers).unwrap_or_default();
    Ok((id, diff_ids))
}

/// The converted image when the cache has its config and every layer.
pub fn from_cache(
    cache: &BlobCache,
    image_id: &str,
    diff_ids: &[String],
    compression: Compression,
) -> Option<Converted> {
    let config = cache.config(image_id)?;
    let layers = diff_ids
        .iter()
        .map(|d| cache.layer(d, compression))
        .collect::<Option<Vec<_>>>()?;
    Some(Converted {
        config,
        diff_ids: diff_ids.to_vec(),
        layers,
        compressed: 0,
        exported: false,
    })
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveManifest {
    config: String,
    #[serde(default)]
    layers: Vec<String>,
}

/// Reads a `docker save` archive (legacy `<id>/layer.tar` or OCI-style `blobs/sha256/`) of
/// one image and converts it, compressing the layers the cache does not know. `diff_ids` are
/// the image's layers as the daemon reported them (empty when unknown): which of them the
/// cache holds decides which layers are compressed as they stream.
pub fn read_export(
    reader: impl Read,
    image: &str,
    diff_ids: &[String],
    compression: Compression,
    cache: &BlobCache,
    slots: &Arc<Slots>,
) -> Result<Converted, ConvertError> {
    let io = |source| ConvertError::Io {
        image: image.to_string(),
        source,
    };
    let bad = |detail: String| ConvertError::Archive {
        image: image.to_string(),
        detail,
    };
    let mut pending = Compressions {
        compression,
        cache,
        slots,
        cached_sizes: cached_sizes(cache, diff_ids, compression),
        diff_of: HashMap::new(),
        jobs: HashMap::new(),
        done: HashMap::new(),
    };
    let members = read_members(reader, &mut pending).map_err(io)?;
    let Compressions {
        diff_of,
        jobs,
        done,
        ..
    } = pending;
    let (save, config) = the_one_image(&members.small).map_err(bad)?;
    let results = record_layers(cache, jobs, done).map_err(io)?;
    let compressed = results.len();
    let mut diff_ids = Vec::new();
    let mut layers = Vec::new();
    for path in &save.layers {
        let path = members.links.get(path).unwrap_or(path);
        let diff_id = diff_of
            .get(path)
            .ok_or_else(|| bad(format!("layer {path} is missing")))?;
        let layer = match results.get(diff_id) {
            Some(l) => l.clone(),
            None => cache
                .layer(diff_id, compression)
                .ok_or_else(|| bad(format!("layer {path} was not compressed")))?,
        };
        diff_ids.push(diff_id.clone());
        layers.push(layer);
    }
    cache.put_config(&config).map_err(io)?;
    Ok(Converted {
        config,
        diff_ids,
        layers,
        compressed,
        exported: true,
    })
}

/// The members of an export that are kept whole (`manifest.json`, configs, small blobs) and
/// its symlinks; layers go to the compressions as they stream past.
struct Members {
    small: HashMap<String, Vec<u8>>,
    links: HashMap<String, String>,
}

fn read_members(reader: impl Read, pending: &mut Compressions<'_>) -> std::io::Result<Members> {
    let mut members = Members {
        small: HashMap::new(),
        links: HashMap::new(),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            if let Some(target) = entry.link_name()? {
                members.links.insert(path.clone(), resolve(&path, &target));
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.header().size()?;
        let layer_candidate = path.ends_with("layer.tar") || path.starts_with("blobs/");
        if !layer_candidate || size < 1 << 20 {
            // manifest.json, configs, small blobs (a config or a tiny layer) and the rest.
            if size > 64 << 20 {
                continue;
            }
            let mut bytes = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut bytes)?;
            if layer_candidate && !bytes.starts_with(b"{") {
                pending.add(&path, size, &mut &bytes[..])?;
            }
            members.small.insert(path, bytes);
            continue;
        }
        pending.add(&path, size, &mut entry)?;
    }
    Ok(members)
}

/// The export's one image: its `manifest.json` entry and its config's bytes.
fn the_one_image(small: &HashMap<String, Vec<u8>>) -> Result<(SaveManifest, Vec<u8>), String> {
    let manifest = small
        .get("manifest.json")
        .ok_or_else(|| "manifest.json is missing".to_string())?;
    let manifests: Vec<SaveManifest> =
        serde_json::from_slice(manifest).map_err(|e| format!("manifest.json: {e}"))?;
    let count = manifests.len();
    let Ok([save]) = <[SaveManifest; 1]>::try_from(manifests) else {
        return Err(format!("{count} images in one export, expected 1"));
    };
    let config = small
        .get(&save.config)
        .cloned()
        .ok_or_else(|| format!("config {} is missing", save.config))?;
    Ok((save, config))
}

/// Waits for the compressions still running and records every compressed layer in the cache.
fn record_layers(
    cache: &BlobCache,
    jobs: HashMap<String, Job>,
    done: HashMap<String, Compressed>,
) -> std::io::Result<HashMap<String, Layer>> {
    let mut results: HashMap<String, Layer> = HashMap::new();
    for (diff_id, job) in jobs {
        let (layer, plain_size) = job
            .join()
            .map_err(|_| std::io::Error::other("a compression thread panicked"))??;
        cache.record_layer(&diff_id, &layer, plain_size)?;
        results.insert(diff_id, layer);
    }
    for (diff_id, (layer, plain_size)) in done {
        cache.record_layer(&diff_id, &layer, plain_size)?;
        results.insert(diff_id, layer);
    }
    Ok(results)
}

/// A symlink target relative to the link's folder, as an archive path.
fn resolve(link: &str, target: &Path) -> String {
    let base = Path::new(link).parent().unwrap_or(Path::new(""));
    let mut parts: Vec<String> = base
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for c in target.components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

/// The uncompressed sizes of the image's layers that the cache holds, or `None` when that
/// cannot be told (no diffIDs given, or an entry from before sizes were kept): then every
/// layer may be cached.
fn cached_sizes(
    cache: &BlobCache,
    diff_ids: &[String],
    compression: Compression,
) -> Option<HashSet<u64>> {
    if diff_ids.is_empty() {
        return None;
    }
    diff_ids
        .iter()
        .filter_map(|d| cache.plain_size(d, compression))
        .collect()
}

/// The diffID an OCI-style export's path names (`blobs/sha256/<hex>` holds that layer).
fn path_diff_id(path: &str) -> Option<String> {
    let hex = path.strip_prefix("blobs/sha256/")?;
    crate::oci::digest::is_well_formed(&format!("sha256:{hex}")).then(|| format!("sha256:{hex}"))
}

/// Copies a layer to a temp file, hashing it: the temp file, the diffID and the size.
fn spool(
    entry: &mut impl Read,
    cache: &BlobCache,
) -> std::io::Result<(tempfile::NamedTempFile, String, u64)> {
    let file = tempfile::NamedTempFile::new_in(cache.temp_dir())?;
    let mut writer = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
    std::io::copy(entry, &mut writer)?;
    let (buffered, diff_id, size) = writer.finish();
    let file = buffered.into_inner().map_err(|e| e.into_error())?;
    Ok((file, diff_id, size))
}

/// A compressed layer and the size of its uncompressed bytes.
type Compressed = (Layer, u64);

type Job = std::thread::JoinHandle<std::io::Result<Compressed>>;

/// The layers of an export being read: which diffID each archive path holds, the layers
/// compressed as they streamed, and the compressions started from spooled copies (one per
/// diffID the cache does not know), a few at a time.
struct Compressions<'a> {
    compression: Compression,
    cache: &'a BlobCache,
    slots: &'a Arc<Slots>,
    /// See [`cached_sizes`].
    cached_sizes: Option<HashSet<u64>>,
    diff_of: HashMap<String, String>,
    jobs: HashMap<String, Job>,
    done: HashMap<String, Compressed>,
}

impl Compressions<'_> {
    /// Takes the `size`-byte layer at `path`: skipped when its path names a layer the cache
    /// holds, compressed as it streams when its size rules the cache out, else spooled and
    /// compressed unless the cache (or another path of this export) already has it.
    fn add(&mut self, path: &str, size: u64, layer: &mut impl Read) -> std::io::Result<()> {
        let named = path_diff_id(path);
        if let Some(diff_id) = &named {
            if self.known(diff_id) {
                self.diff_of.insert(path.to_string(), diff_id.clone());
                return Ok(());
            }
        }
        let may_be_cached = self
            .cached_sizes
            .as_ref()
            .is_none_or(|sizes| sizes.contains(&size));
        if named.is_some() || !may_be_cached {
            let mut hashing = HashingReader::new(layer);
            let layer = compress_reader(&mut hashing, self.compression, self.cache)?;
            let diff_id = hashing.finish();
            self.diff_of.insert(path.to_string(), diff_id.clone());
            self.done.insert(diff_id, (layer, size));
            return Ok(());
        }
        let (spool, diff_id, plain_size) = spool(layer, self.cache)?;
        self.diff_of.insert(path.to_string(), diff_id.clone());
        if self.known(&diff_id) {
            return Ok(());
        }
        let (cache, slots, compression) =
            (self.cache.clone(), self.slots.clone(), self.compression);
        let permit = slots.acquire();
        let job = std::thread::spawn(move || {
            let result = compress(spool.path(), compression, &cache);
            drop(permit);
            result.map(|layer| (layer, plain_size))
        });
        self.jobs.insert(diff_id, job);
        Ok(())
    }

    /// Whether `diff_id` is compressed already: in the cache or by this export.
    fn known(&self, diff_id: &str) -> bool {
        self.jobs.contains_key(diff_id)
            || self.done.contains_key(diff_id)
            || self.cache.layer(diff_id, self.compression).is_some()
    }
}

/// zstd's compression workers: one a core.
fn zstd_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// A zstd encoder at level 3 in zstd's streaming multi-threaded mode, whose output is the same
/// for any number of workers (zstd's tests/cli-tests/determinism; tested here), so a layer's
/// digest does not depend on the machine that compressed it. Measured on 705 MB of libraries:
/// `zstd -3 -T1` and `-T2` wrote the same bytes, -T2 in 1.85 s against 3.24 s single-threaded.
fn zstd_encoder<W: Write>(
    out: W,
    workers: u32,
) -> std::io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut enc = zstd::stream::write::Encoder::new(out, 3)?;
    enc.multithread(workers)?;
    // Jobs of 2 MiB instead of level 3's 8 MiB: measured with `zstd -3 -T2 -B2M` on the same
    // 705 MB, as fast (1.65 s) and 0.35% larger, in 21 MB instead of 62 MB.
    enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(2 << 20))?;
    Ok(enc)
}

/// Compresses a file into the cache's blob store.
pub fn compress(
    input: &Path,
    compression: Compression,
    cache: &BlobCache,
) -> std::io::Result<Layer> {
    let mut source = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(input)?);
    compress_reader(&mut source, compression, cache)
}

/// Compresses what `source` yields into the cache's blob store, hashing the output on the fly.
pub fn compress_reader(
    source: &mut impl Read,
    compression: Compression,
    cache: &BlobCache,
) -> std::io::Result<Layer> {
    let out = tempfile::NamedTempFile::new_in(cache.temp_dir())?;
    let hashing = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, out));
    let hashing = match compression {
        Compression::Gzip => {
            let mut hashing = hashing;
            gzip_parallel(source, &mut hashing)?;
            hashing
        }
        Compression::Zstd => {
            let mut enc = zstd_encoder(hashing, zstd_workers())?;
            std::io::copy(source, &mut enc)?;
            enc.finish()?
        }
    };
    let (mut buffered, digest, size) = hashing.finish();
    buffered.flush()?;
    let out = buffered.into_inner().map_err(|e| e.into_error())?;
    out.persist(cache.blob_path(&digest)).map_err(|e| e.error)?;
    Ok(Layer {
        digest,
        size,
        compression,
    })
}

#[cfg(test)]
mod tap_tests;
#[cfg(test)]
mod tests;
