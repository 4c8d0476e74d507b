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
use std::sync::{Arc, Condvar, Mutex};

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

/// A counting limit on concurrent compressions, shared by every image of a publish.
#[derive(Debug)]
pub struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    /// `n` slots (at least one).
    pub fn new(n: usize) -> Arc<Slots> {
        Arc::new(Slots {
            free: Mutex::new(n.max(1)),
            freed: Condvar::new(),
        })
    }

    /// One slot per core.
    pub fn per_core() -> Arc<Slots> {
        Slots::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    fn acquire(&self) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
    }

    fn release(&self) {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.freed.notify_one();
    }
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
    let daemon = |action, e: bollard::errors::Error| ConvertError::Daemon {
        action,
        image: image_id.to_string(),
        detail: e.to_string(),
    };
    let inspect = docker
        .inspect_image(image_id)
        .await
        .map_err(|e| daemon("inspect", e))?;
    let id = inspect.id.unwrap_or_else(|| image_id.to_string());
    let diff_ids = inspect.root_fs.and_then(|r| r.layers).unwrap_or_default();
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
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    let mut pending = Compressions {
        compression,
        cache,
        slots,
        cached_sizes: cached_sizes(cache, diff_ids, compression),
        diff_of: HashMap::new(),
        jobs: HashMap::new(),
        done: HashMap::new(),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let path = entry.path().map_err(io)?.to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            if let Some(target) = entry.link_name().map_err(io)? {
                links.insert(path.clone(), resolve(&path, &target));
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.header().size().map_err(io)?;
        let layer_candidate = path.ends_with("layer.tar") || path.starts_with("blobs/");
        if !layer_candidate || size < 1 << 20 {
            // manifest.json, configs, small blobs (a config or a tiny layer) and the rest.
            if size > 64 << 20 {
                continue;
            }
            let mut bytes = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut bytes).map_err(io)?;
            if layer_candidate && !bytes.starts_with(b"{") {
                pending.add(&path, size, &mut &bytes[..]).map_err(io)?;
            }
            small.insert(path, bytes);
            continue;
        }
        pending.add(&path, size, &mut entry).map_err(io)?;
    }
    let Compressions {
        diff_of,
        jobs,
        done,
        ..
    } = pending;
    let manifest = small
        .get("manifest.json")
        .ok_or_else(|| bad("manifest.json is missing".into()))?;
    let manifests: Vec<SaveManifest> =
        serde_json::from_slice(manifest).map_err(|e| bad(format!("manifest.json: {e}")))?;
    let [save] = manifests.as_slice() else {
        return Err(bad(format!(
            "{} images in one export, expected 1",
            manifests.len()
        )));
    };
    let config = small
        .get(&save.config)
        .cloned()
        .ok_or_else(|| bad(format!("config {} is missing", save.config)))?;
    let mut results: HashMap<String, Layer> = HashMap::new();
    for (diff_id, job) in jobs {
        let (layer, plain_size) = job
            .join()
            .map_err(|_| io(std::io::Error::other("a compression thread panicked")))?
            .map_err(io)?;
        cache
            .record_layer(&diff_id, &layer, plain_size)
            .map_err(io)?;
        results.insert(diff_id, layer);
    }
    for (diff_id, (layer, plain_size)) in done {
        cache
            .record_layer(&diff_id, &layer, plain_size)
            .map_err(io)?;
        results.insert(diff_id, layer);
    }
    let compressed = results.len();
    let mut diff_ids = Vec::new();
    let mut layers = Vec::new();
    for path in &save.layers {
        let path = links.get(path).unwrap_or(path);
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
    })
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
        slots.acquire();
        let job = std::thread::spawn(move || {
            let result = compress(spool.path(), compression, &cache);
            slots.release();
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
            let mut enc = zstd::stream::write::Encoder::new(hashing, 3)?;
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

/// The uncompressed bytes of one gzip member in [`gzip_parallel`].
const GZIP_CHUNK: usize = 4 << 20;

/// Gzip (libdeflate at [`GZIP_LEVEL`]) on every core: the input is cut into chunks of
/// [`GZIP_CHUNK`] bytes, each compressed as its own gzip member on its own thread, and the
/// members are written in order. Concatenated members are one valid gzip stream (RFC 1952
/// §2.2; Go's, containerd's and flate2's readers all read them), the output is the same bytes
/// for the same input (so digests are reproducible), and at most one chunk per core is in
/// flight, so memory stays bounded however large the layer.
pub fn gzip_parallel(source: &mut impl Read, out: &mut impl Write) -> std::io::Result<()> {
    use std::collections::VecDeque;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let joined = |h: std::thread::ScopedJoinHandle<'_, std::io::Result<Vec<u8>>>| {
        h.join()
            .map_err(|_| std::io::Error::other("a gzip worker panicked"))?
    };
    std::thread::scope(|scope| -> std::io::Result<()> {
        let mut pending = VecDeque::new();
        let mut chunks = 0usize;
        loop {
            let mut chunk = Vec::with_capacity(GZIP_CHUNK);
            let read = (&mut *source)
                .take(GZIP_CHUNK as u64)
                .read_to_end(&mut chunk)?;
            if read == 0 && chunks > 0 {
                break;
            }
            chunks += 1;
            if pending.len() >= workers {
                out.write_all(&joined(pending.pop_front().expect("non-empty"))?)?;
            }
            pending.push_back(scope.spawn(move || gzip_member(&chunk)));
            if read < GZIP_CHUNK {
                break;
            }
        }
        while let Some(h) = pending.pop_front() {
            out.write_all(&joined(h)?)?;
        }
        Ok(())
    })
}

/// libdeflate's compression level for gzip layers. Measured on one core over the benchmark
/// fixture: zlib level 6 (what `gzip -6` writes) gives 0.326 of the input at 72 MB/s and
/// libdeflate level 6 0.315 at 102 MB/s (arm64 layers); libdeflate level 2 gives 0.340 at
/// 159 MB/s, level 4 0.334 at 144 MB/s (amd64 layers). buildah's and skopeo's pgzip output of
/// the same layers is 0.350: level 2 keeps layers smaller than theirs at twice zlib's speed.
const GZIP_LEVEL: i32 = 2;

/// One gzip member at [`GZIP_LEVEL`].
fn gzip_member(chunk: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut compressor = libdeflater::Compressor::new(
        libdeflater::CompressionLvl::new(GZIP_LEVEL).expect("a valid libdeflate level"),
    );
    let mut out = vec![0; compressor.gzip_compress_bound(chunk.len())];
    let written = compressor
        .gzip_compress(chunk, &mut out)
        .map_err(|e| std::io::Error::other(format!("gzip: {e:?}")))?;
    out.truncate(written);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_gzip_is_one_valid_reproducible_stream() {
        let sizes = [0, 1, GZIP_CHUNK - 1, GZIP_CHUNK, 2 * GZIP_CHUNK + 5];
        for size in sizes {
            let input: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let mut first = Vec::new();
            gzip_parallel(&mut &input[..], &mut first).unwrap();
            let mut again = Vec::new();
            gzip_parallel(&mut &input[..], &mut again).unwrap();
            assert_eq!(first, again, "{size} bytes: not reproducible");
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(&first[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(
                back, input,
                "{size} bytes: does not decompress to the input"
            );
            assert_eq!(&first[..2], b"\x1f\x8b");
        }
    }

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, *bytes).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// A legacy `docker save` archive: config, one layer used twice (the second a symlink).
    fn legacy_export(layer: &[u8], config: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, bytes) in [
            ("aaa/layer.tar", layer),
            ("aaa/VERSION", &b"1.0"[..]),
            ("cfg.json", config),
            (
                "manifest.json",
                &br#"[{"Config":"cfg.json","RepoTags":null,"Layers":["aaa/layer.tar","bbb/layer.tar"]}]"#[..],
            ),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, bytes).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_cksum();
        b.append_link(&mut h, "bbb/layer.tar", "../aaa/layer.tar")
            .unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn converts_a_legacy_export_and_remembers_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let layer = tar_of(&[("hello", &b"hello world\n".repeat(1000)[..])]);
        let config = br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers"}}"#;
        let export = legacy_export(&layer, config);
        let slots = Slots::new(2);
        let ids = [crate::oci::sha256(&layer), crate::oci::sha256(&layer)];
        let c = read_export(&export[..], "img", &ids, Compression::Gzip, &cache, &slots).unwrap();
        assert_eq!(c.config, config, "config bytes kept exactly");
        assert_eq!(
            c.diff_ids,
            vec![crate::oci::sha256(&layer), crate::oci::sha256(&layer)]
        );
        assert_eq!(c.compressed, 1, "the shared layer is compressed once");
        let blob = std::fs::read(cache.blob_path(&c.layers[0].digest)).unwrap();
        assert_eq!(crate::oci::sha256(&blob), c.layers[0].digest);
        assert_eq!(blob.len() as u64, c.layers[0].size);
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, layer);
        // A second run compresses nothing, and the cache alone can answer.
        let again =
            read_export(&export[..], "img", &ids, Compression::Gzip, &cache, &slots).unwrap();
        assert_eq!(again.compressed, 0);
        assert_eq!(again.layers, c.layers);
        let hit = from_cache(
            &cache,
            &crate::oci::sha256(config),
            &c.diff_ids,
            Compression::Gzip,
        )
        .unwrap();
        assert_eq!(hit.layers, c.layers);
        assert!(from_cache(
            &cache,
            &crate::oci::sha256(config),
            &c.diff_ids,
            Compression::Zstd
        )
        .is_none());
    }

    #[test]
    fn zstd_on_request_and_bad_archives_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let layer = tar_of(&[("x", &b"x"[..])]);
        let export = legacy_export(&layer, b"{}");
        let c = read_export(
            &export[..],
            "img",
            &[],
            Compression::Zstd,
            &cache,
            &Slots::new(1),
        )
        .unwrap();
        let blob = std::fs::read(cache.blob_path(&c.layers[0].digest)).unwrap();
        assert_eq!(zstd::decode_all(&blob[..]).unwrap(), layer);
        let err = read_export(
            &tar_of(&[("x", b"y")])[..],
            "img",
            &[],
            Compression::Gzip,
            &cache,
            &Slots::new(1),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("manifest.json is missing"), "{err}");
    }

    /// An OCI-style export (Docker 25 and later): layers under `blobs/sha256/<diffID>`.
    fn oci_export(layers: &[(&str, &[u8])], config: &[u8]) -> Vec<u8> {
        let config_path = format!("blobs/sha256/{}", &crate::oci::sha256(config)[7..]);
        let paths: Vec<String> = layers
            .iter()
            .map(|(id, _)| format!("blobs/sha256/{}", &id[7..]))
            .collect();
        let manifest = serde_json::json!([{ "Config": config_path, "Layers": paths }]).to_string();
        let mut files: Vec<(&str, &[u8])> = paths
            .iter()
            .zip(layers)
            .map(|(p, (_, bytes))| (p.as_str(), *bytes))
            .collect();
        files.push((&config_path, config));
        files.push(("manifest.json", manifest.as_bytes()));
        tar_of(&files)
    }

    #[test]
    fn streams_new_layers_and_does_not_read_cached_ones_an_oci_export_names() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let slots = Slots::new(1);
        // Large enough to take the streaming path through several gzip members.
        let base: Vec<u8> = (0..(9usize << 20)).map(|i| (i * 31 % 253) as u8).collect();
        let top = tar_of(&[("app", &b"new code\n".repeat(100)[..])]);
        let (base_id, top_id) = (crate::oci::sha256(&base), crate::oci::sha256(&top));
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let ids = [base_id.clone(), top_id.clone()];
        let first = oci_export(&[(&base_id, &base), (&top_id, &top)], config);
        let c = read_export(&first[..], "img", &ids, Compression::Gzip, &cache, &slots).unwrap();
        assert_eq!(c.compressed, 2);
        assert_eq!(c.diff_ids, ids);
        for (layer, plain) in c.layers.iter().zip([&base, &top]) {
            let blob = std::fs::read(cache.blob_path(&layer.digest)).unwrap();
            assert_eq!(crate::oci::sha256(&blob), layer.digest);
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(&blob[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(&back, plain);
        }
        assert_eq!(
            cache.plain_size(&base_id, Compression::Gzip),
            Some(Some(base.len() as u64))
        );
        // The base layer is cached: its bytes in the next export are never read (here they
        // are garbage of the same size), only the changed top layer is compressed.
        let top2 = tar_of(&[("app", &b"newer code\n".repeat(100)[..])]);
        let top2_id = crate::oci::sha256(&top2);
        let garbage = vec![0u8; base.len()];
        let second = oci_export(&[(&base_id, &garbage), (&top2_id, &top2)], config);
        let ids2 = [base_id.clone(), top2_id.clone()];
        let c2 = read_export(&second[..], "img", &ids2, Compression::Gzip, &cache, &slots).unwrap();
        assert_eq!(c2.compressed, 1);
        assert_eq!(c2.layers[0], c.layers[0]);
        assert_eq!(c2.diff_ids, ids2);
    }

    #[test]
    fn a_legacy_layer_of_a_cached_size_but_new_content_is_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let slots = Slots::new(1);
        let layer: Vec<u8> = (0..(3usize << 20)).map(|i| (i % 241) as u8).collect();
        let config = br#"{"architecture":"arm64","os":"linux"}"#;
        let ids = [crate::oci::sha256(&layer), crate::oci::sha256(&layer)];
        let export = legacy_export(&layer, config);
        assert_eq!(
            read_export(&export[..], "img", &ids, Compression::Gzip, &cache, &slots)
                .unwrap()
                .compressed,
            1
        );
        // Another layer of the same size under a legacy (opaque) path: it may be the cached
        // one, so it is spooled and hashed first; being different, it is then compressed.
        let mut other = layer.clone();
        other[0] ^= 1;
        let other_id = crate::oci::sha256(&other);
        let export = legacy_export(&other, config);
        let c = read_export(
            &export[..],
            "img",
            &[ids[0].clone(), other_id.clone()],
            Compression::Gzip,
            &cache,
            &slots,
        )
        .unwrap();
        assert_eq!(c.compressed, 1);
        assert_eq!(c.diff_ids, vec![other_id.clone(), other_id]);
        assert_ne!(
            c.layers[0],
            cache.layer(&ids[0], Compression::Gzip).unwrap()
        );
    }
}
