//! An OCI image layout folder (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`): written by
//! `publish` (every image under each of its tags as `org.opencontainers.image.ref.name`) and
//! read as a [`Store`] by `check`, `verify` and `inspect` (`oci:DIR[:REF]`). Every file is
//! written to a temp file and renamed into place, so a crash never leaves a half-written
//! `index.json` or blob; blobs already present are reused. Manifests read are checked against
//! their digests; blobs are streamed, for the reader to verify as it reads.

use std::path::{Path, PathBuf};

use super::digest;
use super::documents::{self, Descriptor, Index, MAX_MANIFEST_BYTES};
use super::media_types as mt;
use crate::atomic_file;
use crate::store::{BlobReader, RawManifest, Store, StoreError};

/// The annotation naming a tag in an OCI layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI image layout folder.
#[derive(Clone, Debug)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// Opens a layout for reading: the folder must exist and hold `index.json`, a regular
    /// file (not a symbolic link, a FIFO or a device, which are never read).
    pub fn open(dir: &Path) -> Result<Layout, StoreError> {
        let layout = Layout { dir: dir.into() };
        if !dir.is_dir() {
            return Err(layout.other(format!("{} is not a folder", dir.display())));
        }
        let index = dir.join("index.json");
        match std::fs::symlink_metadata(&index) {
            Ok(m) if m.is_file() => Ok(layout),
            Ok(m) => Err(layout.other(format!(
                "{} is {}, not a regular file; an OCI image layout's index.json is a JSON file, and archbuild reads no other kind",
                index.display(),
                if m.is_symlink() {
                    "a symbolic link"
                } else if m.is_dir() {
                    "a folder"
                } else {
                    "a device, FIFO or socket"
                }
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(layout.other(format!(
                "{} has no index.json: it is not an OCI image layout",
                dir.display()
            ))),
            Err(e) => Err(layout.io(e)),
        }
    }

    /// Opens a layout for writing, creating the folder, `oci-layout` and an empty
    /// `index.json` if missing.
    pub fn create(dir: &Path) -> std::io::Result<Layout> {
        std::fs::create_dir_all(dir.join("blobs/sha256"))?;
        let layout = Layout { dir: dir.into() };
        if !dir.join("oci-layout").is_file() {
            atomic_file::write(&dir.join("oci-layout"), OCI_LAYOUT)?;
        }
        if !dir.join("index.json").is_file() {
            let empty = Index {
                schema_version: 2,
                media_type: Some(mt::OCI_INDEX.into()),
                ..Default::default()
            };
            atomic_file::write(&dir.join("index.json"), &documents::to_bytes(&empty))?;
        }
        Ok(layout)
    }

    /// The layout folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a blob lives (`blobs/<alg>/<hex>`). A digest that is not `alg:hex` is refused,
    /// so that an index cannot name a file outside the layout.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        digest::check_supported(digest).map_err(|why| self.other(why))?;
        let (alg, hex) = digest
            .split_once(':')
            .filter(|_| digest::is_well_formed(digest))
            .ok_or_else(|| self.other(format!("{digest:?} is not a digest")))?;
        Ok(self.dir.join("blobs").join(alg).join(hex))
    }

    /// Opens a blob for reading: only a regular file inside the layout, reached through real
    /// folders (`blobs/`, `blobs/<alg>/`) and not itself a symbolic link, so that a hostile
    /// layout cannot make archbuild read a device, a FIFO or a file elsewhere on the host.
    fn open_blob(&self, digest: &str) -> Result<std::fs::File, StoreError> {
        let path = self.blob_path(digest)?;
        let mut folder = self.dir.clone();
        for part in ["blobs", digest.split_once(':').map_or("", |(alg, _)| alg)] {
            folder.push(part);
            match std::fs::symlink_metadata(&folder) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(self.other(format!(
                        "{} is not a folder (a symbolic link or other file); blobs must be inside the layout",
                        folder.display()
                    )))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(self.not_found(format!("blob {digest}")))
                }
                Err(e) => return Err(self.io(e)),
            }
        }
        match open_regular(&path) {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(self.not_found(format!("blob {digest}")))
            }
            Err(e) => Err(self.other(format!("blob {digest}: {e}"))),
        }
    }

    /// Reads a small document of the layout (`index.json`, a manifest blob) whole, refusing
    /// anything larger than [`MAX_MANIFEST_BYTES`].
    fn read_document(&self, file: std::fs::File, what: &str) -> Result<Vec<u8>, StoreError> {
        use std::io::Read;
        let len = file.metadata().map_err(|e| self.io(e))?.len();
        if len > MAX_MANIFEST_BYTES {
            return Err(self.other(format!(
                "{what} is {len} bytes; archbuild reads manifests and indexes of at most {MAX_MANIFEST_BYTES} bytes"
            )));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io(e))?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(self.other(format!(
                "{what} grew past {MAX_MANIFEST_BYTES} bytes while read"
            )));
        }
        Ok(bytes)
    }

    /// `index.json`'s bytes, read as any other document of the layout.
    fn index_bytes(&self) -> Result<Vec<u8>, StoreError> {
        let path = self.dir.join("index.json");
        let file = open_regular(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => self.io(e),
            _ => self.other(format!("{}: {e}", path.display())),
        })?;
        self.read_document(file, "index.json")
    }

    /// Whether the layout holds a blob of this size already.
    pub fn has_blob(&self, digest: &str, size: u64) -> bool {
        self.blob_path(digest)
            .is_ok_and(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == size))
    }

    /// Stores bytes under their digest (unless already there).
    pub fn put_bytes(&self, digest: &str, bytes: &[u8]) -> std::io::Result<()> {
        if self.has_blob(digest, bytes.len() as u64) {
            return Ok(());
        }
        atomic_file::write(&self.writable_blob_path(digest)?, bytes)
    }

    /// Stores a file's content under its (already computed) digest: hard-linked when on the
    /// same file system, copied otherwise; nothing is done when the blob is present.
    pub fn put_file(&self, digest: &str, size: u64, file: &Path) -> std::io::Result<()> {
        if self.has_blob(digest, size) {
            return Ok(());
        }
        crate::atomic_file::place(file, &self.writable_blob_path(digest)?)
    }

    /// Points each of `names` at `manifest` (stored as a blob first): entries with the same
    /// ref name are replaced, other entries kept; `index.json` is replaced atomically. The
    /// read and rewrite of `index.json` hold the layout's lock, so that two builds writing
    /// one layout at once both keep their tags; the blobs' folder is synced first, so that
    /// a tag that survives a crash names blobs that survive it too.
    pub fn tag(&self, names: &[String], manifest: &RawManifest) -> std::io::Result<()> {
        self.put_bytes(&manifest.digest, &manifest.bytes)?;
        atomic_file::sync_folder(&self.dir.join("blobs/sha256"))?;
        let _lock = self.lock()?;
        let mut index = self.read_index().map_err(std::io::Error::other)?;
        index
            .manifests
            .retain(|d| ref_name(d).is_none_or(|n| !names.iter().any(|x| x == n)));
        for name in names {
            let mut annotations = std::collections::BTreeMap::new();
            annotations.insert(REF_NAME.to_string(), name.clone());
            index.manifests.push(Descriptor {
                media_type: manifest.media_type.clone(),
                digest: manifest.digest.clone(),
                size: manifest.bytes.len() as u64,
                annotations: Some(annotations),
                platform: None,
            });
        }
        atomic_file::write(&self.dir.join("index.json"), &documents::to_bytes(&index))
    }

    /// The layout's lock, held until the returned file is dropped: an exclusive `flock(2)`
    /// on the layout folder itself (no lock file for other tools to stumble on).
    fn lock(&self) -> std::io::Result<std::fs::File> {
        let folder = std::fs::File::open(&self.dir)?;
        folder.lock()?;
        Ok(folder)
    }

    /// The layout's `index.json`.
    pub fn read_index(&self) -> Result<Index, StoreError> {
        let bytes = self.index_bytes()?;
        self.parse_index(&bytes)
    }

    /// `index.json` as a manifest (it is an image index).
    pub async fn index(&self) -> Result<RawManifest, StoreError> {
        let bytes = self.index_bytes()?;
        Ok(RawManifest {
            digest: digest::sha256(&bytes),
            media_type: mt::OCI_INDEX.into(),
            bytes,
        })
    }

    /// The top-level document `check` reads: the entry named `reference`, or the whole
    /// `index.json` (every entry) when no reference is given.
    pub async fn top(&self, reference: Option<&str>) -> Result<RawManifest, StoreError> {
        match reference {
            None => self.index().await,
            Some(r) => self.manifest(r).await,
        }
    }

    fn parse_index(&self, bytes: &[u8]) -> Result<Index, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| {
            self.other(format!(
                "{} is not a valid OCI index: {e}",
                self.dir.join("index.json").display()
            ))
        })
    }

    /// The `index.json` entry for a reference: a `sha256:` digest (the entry with that digest,
    /// if any), a ref name (the first entry so named), or empty for the only entry.
    fn entry(&self, index: &Index, reference: &str) -> Result<Option<Descriptor>, StoreError> {
        if reference.starts_with("sha256:") || reference.starts_with("sha512:") {
            return Ok(index
                .manifests
                .iter()
                .find(|d| d.digest == reference)
                .cloned());
        }
        if !reference.is_empty() {
            return match index
                .manifests
                .iter()
                .find(|d| ref_name(d) == Some(reference))
            {
                Some(d) => Ok(Some(d.clone())),
                None => Err(self.not_found(format!("ref {reference:?} ({})", known_refs(index)))),
            };
        }
        match index.manifests.as_slice() {
            [one] => Ok(Some(one.clone())),
            [] => Err(self.not_found("an image (index.json lists none)".into())),
            _ => Err(self.other(format!(
                "several images match; name one with oci:{}:REF ({})",
                self.dir.display(),
                known_refs(index)
            ))),
        }
    }

    fn writable_blob_path(&self, digest: &str) -> std::io::Result<PathBuf> {
        let path = self.blob_path(digest).map_err(std::io::Error::other)?;
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        Ok(path)
    }

    fn other(&self, detail: String) -> StoreError {
        StoreError::Other {
            store: self.describe(),
            detail,
        }
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            store: self.describe(),
            source,
        }
    }

    fn not_found(&self, what: String) -> StoreError {
        StoreError::NotFound {
            what,
            store: self.describe(),
        }
    }
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotation(REF_NAME)
}

fn known_refs(index: &Index) -> String {
    let names: Vec<&str> = index.manifests.iter().filter_map(ref_name).collect();
    if names.is_empty() {
        "index.json names no refs".into()
    } else {
        format!("refs: {}", names.join(", "))
    }
}

/// Opens `path` for reading only if it is a regular file and not a symbolic link (`O_NOFOLLOW`;
/// `O_NONBLOCK` so that a FIFO cannot make the open wait for ever).
fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => std::io::Error::other("is a symbolic link, not a regular file"),
            _ => e,
        })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(std::io::Error::other(format!(
            "is not a regular file ({})",
            if kind.is_dir() {
                "a folder"
            } else {
                "a device, FIFO or socket"
            }
        )));
    }
    Ok(file)
}

impl Store for Layout {
    async fn manifest(&self, reference: &str) -> Result<RawManifest, StoreError> {
        let index_bytes = self.index_bytes()?;
        let index = self.parse_index(&index_bytes)?;
        let entry = self.entry(&index, reference)?;
        let (digest, declared) = match entry {
            Some(d) => (d.digest, Some(d.media_type).filter(|m| !m.is_empty())),
            None => (reference.to_string(), None),
        };
        let file = self.open_blob(&digest)?;
        let bytes = self.read_document(file, &format!("manifest blob {digest}"))?;
        let actual = digest::digest_like(&digest, &bytes).unwrap_or_default();
        if actual != digest {
            return Err(StoreError::DigestMismatch {
                what: format!("manifest blob {digest}"),
                store: self.describe(),
                expected: digest,
                actual,
            });
        }
        let media_type = mt::detect(&bytes)
            .or(declared)
            .ok_or_else(|| self.other(format!("manifest blob {digest} is not a JSON manifest")))?;
        Ok(RawManifest {
            bytes,
            media_type,
            digest,
        })
    }

    async fn blob_size(&self, digest: &str) -> Result<Option<u64>, StoreError> {
        match tokio::fs::metadata(self.blob_path(digest)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    async fn blob(&self, digest: &str) -> Result<BlobReader, StoreError> {
        let file = tokio::fs::File::from_std(self.open_blob(digest)?);
        Ok(Box::pin(tokio::io::BufReader::with_capacity(
            256 * 1024,
            file,
        )))
    }

    fn describe(&self) -> String {
        format!("oci:{}", self.dir.display())
    }
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
