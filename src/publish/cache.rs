//! What was compressed before: a cache under `.archbuild/cache/` that maps an uncompressed
//! layer (its diffID) and a compression to the compressed blob it became, and keeps that blob
//! and the image configs (content-addressed, so an image ID finds its config). Re-runs use it
//! instead of exporting and compressing again, so re-pushing unchanged content costs only
//! existence checks. Entries are small files written atomically; a half-written blob never
//! has its final name.

use std::path::{Path, PathBuf};

use super::assemble::{Compression, Layer};

/// The compression cache.
#[derive(Clone, Debug)]
pub struct BlobCache {
    dir: PathBuf,
}

impl BlobCache {
    /// Opens (creating) a cache folder, e.g. `.archbuild/cache`.
    pub fn open(dir: &Path) -> std::io::Result<BlobCache> {
        std::fs::create_dir_all(dir.join("blobs/sha256"))?;
        std::fs::create_dir_all(dir.join("layers"))?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        Ok(BlobCache { dir: dir.into() })
    }

    /// Where a blob is kept.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs/sha256").join(hex)
    }

    /// A folder for temp files on the same file system as the blobs.
    pub fn temp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    fn entry_path(&self, diff_id: &str, compression: Compression) -> PathBuf {
        let hex = diff_id.strip_prefix("sha256:").unwrap_or(diff_id);
        self.dir
            .join("layers")
            .join(format!("{hex}.{}", compression.as_str()))
    }

    /// The compressed blob a layer became before, if it is still there with its size.
    pub fn layer(&self, diff_id: &str, compression: Compression) -> Option<Layer> {
        self.entry(diff_id, compression).map(|(layer, _)| layer)
    }

    /// The uncompressed size of a layer the cache holds: `Some(None)` for an entry written
    /// before sizes were kept, `None` when the cache does not hold the layer.
    pub fn plain_size(&self, diff_id: &str, compression: Compression) -> Option<Option<u64>> {
        self.entry(diff_id, compression).map(|(_, plain)| plain)
    }

    /// An entry's line is `DIGEST SIZE [PLAIN_SIZE]`.
    fn entry(&self, diff_id: &str, compression: Compression) -> Option<(Layer, Option<u64>)> {
        let text = std::fs::read_to_string(self.entry_path(diff_id, compression)).ok()?;
        let mut fields = text.split_whitespace();
        let digest = fields.next()?;
        let size: u64 = fields.next()?.parse().ok()?;
        let plain = fields.next().and_then(|p| p.parse().ok());
        let present = std::fs::metadata(self.blob_path(digest)).ok()?.len() == size;
        present.then(|| {
            let layer = Layer {
                digest: digest.to_string(),
                size,
                compression,
            };
            (layer, plain)
        })
    }

    /// Remembers that `diff_id` (`plain_size` bytes) compressed with `layer.compression` is
    /// `layer`.
    pub fn record_layer(
        &self,
        diff_id: &str,
        layer: &Layer,
        plain_size: u64,
    ) -> std::io::Result<()> {
        let line = format!("{} {} {plain_size}\n", layer.digest, layer.size);
        crate::atomic_file::write(
            &self.entry_path(diff_id, layer.compression),
            line.as_bytes(),
        )
    }

    /// An image config by image ID (the config's own digest), if kept.
    pub fn config(&self, image_id: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.blob_path(image_id)).ok()?;
        let digest = crate::oci::sha256(&bytes);
        (digest == image_id).then_some(bytes)
    }

    /// Keeps an image config; returns its digest.
    pub fn put_config(&self, bytes: &[u8]) -> std::io::Result<String> {
        let digest = crate::oci::sha256(bytes);
        if self.config(&digest).is_none() {
            crate::atomic_file::write(&self.blob_path(&digest), bytes)?;
        }
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_layers_only_while_the_blob_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let blob = b"compressed";
        let digest = crate::oci::sha256(blob);
        std::fs::write(cache.blob_path(&digest), blob).unwrap();
        let layer = Layer {
            digest: digest.clone(),
            size: blob.len() as u64,
            compression: Compression::Gzip,
        };
        cache.record_layer("sha256:abc", &layer, 42).unwrap();
        assert_eq!(cache.layer("sha256:abc", Compression::Gzip), Some(layer));
        assert_eq!(
            cache.plain_size("sha256:abc", Compression::Gzip),
            Some(Some(42))
        );
        assert_eq!(cache.plain_size("sha256:abd", Compression::Gzip), None);
        assert_eq!(cache.layer("sha256:abc", Compression::Zstd), None);
        std::fs::remove_file(cache.blob_path(&digest)).unwrap();
        assert_eq!(cache.layer("sha256:abc", Compression::Gzip), None);
        let id = cache.put_config(b"{}").unwrap();
        assert_eq!(cache.config(&id).as_deref(), Some(&b"{}"[..]));
    }
}
