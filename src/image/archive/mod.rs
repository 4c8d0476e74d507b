//! `docker save` tarballs, read as one sequential stream (a file, standard input or the
//! daemon's export). `docker save` writes `manifest.json` last, so every layer blob is
//! summarised as it passes, keyed by its path, and images are assembled at the end. Both
//! layouts are read: the legacy one (`<id>/layer.tar`, `<id>.json`, `manifest.json`) and the
//! OCI-style one of Docker 25+ (`blobs/sha256/…`, `index.json`, `manifest.json`).
//!
//! A regular file is read by position instead ([`read_file`], in `indexed`): the outer tar
//! is indexed, then the layers are scanned and hashed in parallel, each from its own window
//! of the file.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use serde::Deserialize;

use super::{ImageError, ImageInput};
use crate::layers::{self, LayerSummary};
use crate::oci::digest::{self, HashingReader};
use crate::oci::{self, Document, Visits};

mod indexed;
mod window;

pub use indexed::read_file;

/// JSON documents larger than this are not manifests or configs.
const MAX_JSON: u64 = 16 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// What the outer tar held: JSON documents, layer summaries and symlinked (shared) layers,
/// and the digest of every document and layer as read (in the algorithm its name claims).
#[derive(Default)]
struct Contents {
    json: HashMap<String, Vec<u8>>,
    layers: HashMap<String, Arc<LayerSummary>>,
    links: HashMap<String, String>,
    digests: HashMap<String, String>,
}

/// The digest a member's path claims, where the path is content-addressed: `blobs/ALG/HEX`
/// (OCI-style archives) or a legacy config `HEX.json` (named by its image ID).
fn claimed_digest(path: &str) -> Option<String> {
    if let Some(rest) = path.strip_prefix("blobs/") {
        let (algorithm, hex) = rest.split_once('/')?;
        return Some(format!("{algorithm}:{hex}"));
    }
    let hex = path.strip_suffix(".json")?;
    let is_id = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    is_id.then(|| format!("sha256:{hex}"))
}

/// What a member's digest is computed in: its claimed digest's algorithm, else SHA-256 (what
/// configs' `diff_ids` use). Unknown algorithms are hashed in SHA-256 and so never match.
fn hashing_digest(path: &str) -> String {
    claimed_digest(path)
        .filter(|d| d.starts_with("sha512:"))
        .unwrap_or_else(|| "sha256:".to_string())
}

/// Reads a `docker save` stream; `name` names the archive in messages and unnamed images.
pub fn read(reader: impl Read, name: &str) -> Result<Vec<ImageInput>, ImageError> {
    read_tapped(reader, name, &mut NoTap)
}

/// Reads a `docker save` stream as [`read`] does, handing a copy of every layer blob's bytes
/// to `tap` as they pass: one read of an export serves the check and whatever else needs the
/// layers (the publish's compression).
pub fn read_tapped(
    reader: impl Read,
    name: &str,
    tap: &mut dyn LayerTap,
) -> Result<Vec<ImageInput>, ImageError> {
    images(walk(reader, name, tap)?, name)
}

/// Receives a copy of the layer blobs of an archive as [`read_tapped`] reads them, each
/// byte once, in the archive's order.
pub trait LayerTap {
    /// The layer blob at `path`, `size` bytes, is about to be read: where its bytes should be
    /// copied, if anywhere.
    fn begin(&mut self, path: &str, size: u64) -> io::Result<Option<Box<dyn Write + Send>>>;
    /// The layer blob at `path` was read whole into `copy` (what `begin` gave); `digest` is
    /// what its bytes hash to (a docker save layer's diffID).
    fn end(&mut self, path: &str, digest: &str, copy: Box<dyn Write + Send>) -> io::Result<()>;
}

/// The tap that copies nothing.
pub struct NoTap;

impl LayerTap for NoTap {
    fn begin(&mut self, _: &str, _: u64) -> io::Result<Option<Box<dyn Write + Send>>> {
        Ok(None)
    }
    fn end(&mut self, _: &str, _: &str, _: Box<dyn Write + Send>) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that copies what is read through it into `copy`.
struct Tee<R, W> {
    inner: R,
    copy: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// The images an archive's contents make, by `manifest.json` or else `index.json`, once
/// every content-addressed member is checked against the digest its name claims.
fn images(contents: Contents, name: &str) -> Result<Vec<ImageInput>, ImageError> {
    contents.verify_names(name)?;
    if let Some(bytes) = contents.json.get("manifest.json") {
        let entries: Vec<ManifestEntry> = serde_json::from_slice(bytes).map_err(|e| {
            ImageError::invalid(
                name,
                format!("manifest.json is not a docker save manifest: {e}"),
            )
        })?;
        if entries.is_empty() {
            return Err(ImageError::invalid(name, "manifest.json lists no images"));
        }
        return entries
            .into_iter()
            .map(|e| assemble(&contents, name, e))
            .collect();
    }
    if contents.json.contains_key("index.json") {
        return from_index(&contents, name);
    }
    Err(ImageError::invalid(
        name,
        "neither manifest.json nor index.json found: this is not a `docker save` archive",
    ))
}

fn assemble(
    contents: &Contents,
    name: &str,
    entry: ManifestEntry,
) -> Result<ImageInput, ImageError> {
    let config = contents.json.get(&entry.config).ok_or_else(|| {
        ImageError::invalid(
            name,
            format!(
                "manifest.json names config {}, which is not in the archive",
                entry.config
            ),
        )
    })?;
    let diff_ids = crate::oci::ImageConfig::parse(config)
        .map_err(|e| {
            ImageError::invalid(
                name,
                format!("config {} is not an image config: {e}", entry.config),
            )
        })?
        .diff_ids;
    if diff_ids.len() != entry.layers.len() {
        return Err(ImageError::invalid(
            name,
            format!(
                "manifest.json lists {} layers for config {}, whose rootfs.diff_ids lists {}; Docker loads neither",
                entry.layers.len(),
                entry.config,
                diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (path, diff_id) in entry.layers.iter().zip(&diff_ids) {
        let mut summary = layer(contents, name, path)?;
        contents.verify_diff_id(name, path, &summary, diff_id)?;
        if summary.digest != *diff_id {
            let mut renamed = (*summary).clone();
            renamed.digest = diff_id.clone();
            summary = Arc::new(renamed);
        }
        layers.push(summary);
    }
    let image = entry
        .repo_tags
        .and_then(|t| t.into_iter().next())
        .unwrap_or_else(|| format!("{name} ({})", entry.config));
    Ok(ImageInput {
        name: image,
        listed_platform: None,
        manifest_digest: None,
        config_digest: Some(oci::sha256(config)),
        config: config.as_slice().into(),
        layers,
    })
}

/// The layer at `path` (following the links `docker save` writes for shared layers).
fn layer(contents: &Contents, name: &str, path: &str) -> Result<Arc<LayerSummary>, ImageError> {
    let mut path = path.to_string();
    for _ in 0..8 {
        if let Some(summary) = contents.layers.get(&path) {
            return Ok(summary.clone());
        }
        match contents.links.get(&path) {
            Some(target) => path = target.clone(),
            None => break,
        }
    }
    Err(ImageError::invalid(
        name,
        format!("the manifest names layer {path}, which is not a layer in the archive"),
    ))
}

/// The OCI-style archive without `manifest.json`: follow `index.json` to image manifests.
fn from_index(contents: &Contents, name: &str) -> Result<Vec<ImageInput>, ImageError> {
    let mut out = Vec::new();
    let mut pending = vec![("index.json".to_string(), None, 0)];
    let mut visits = Visits::default();
    while let Some((path, listed, depth)) = pending.pop() {
        let bytes = contents.json.get(&path).ok_or_else(|| {
            ImageError::invalid(name, format!("{path} is referenced but not in the archive"))
        })?;
        let doc: Document = serde_json::from_slice(bytes)
            .map_err(|e| ImageError::invalid(name, format!("{path}: {e}")))?;
        if let Some(children) = &doc.manifests {
            for d in children.iter().filter(|d| !d.is_attestation()) {
                let platform = d.platform().map(|p| p.to_string()).unwrap_or_default();
                if visits
                    .visit(&d.digest, &platform, depth + 1)
                    .map_err(|why| ImageError::invalid(name, why))?
                {
                    pending.push((blob_path(&d.digest), d.platform(), depth + 1));
                }
            }
            continue;
        }
        let (Some(config), Some(layer_descs)) = (doc.config, doc.layers) else {
            return Err(ImageError::invalid(
                name,
                format!("{path} is neither an index nor an image manifest"),
            ));
        };
        let config_bytes = contents
            .json
            .get(&blob_path(&config.digest))
            .ok_or_else(|| {
                ImageError::invalid(
                    name,
                    format!("config {} is not in the archive", config.digest),
                )
            })?;
        let layers = layer_descs
            .iter()
            .map(|l| layer(contents, name, &blob_path(&l.digest)))
            .collect::<Result<_, _>>()?;
        out.push(ImageInput {
            name: name.to_string(),
            listed_platform: listed,
            manifest_digest: Some(oci::sha256(bytes)),
            config_digest: Some(config.digest.clone()),
            config: config_bytes.as_slice().into(),
            layers,
        });
    }
    out.reverse();
    Ok(out)
}

fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

fn walk(reader: impl Read, name: &str, tap: &mut dyn LayerTap) -> Result<Contents, ImageError> {
    let mut contents = Contents::default();
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(io_err(format!("reading {name}")))?;
    let mut head = Vec::with_capacity(512);
    for entry in entries {
        let mut entry = entry.map_err(io_err(format!("{name} is not a readable tar archive")))?;
        match contents.classify(&mut entry, &mut head, name)? {
            Outer::Layer(path) => {
                let tap_err = io_err(format!("{name}: copying layer {path}"));
                let copy = tap.begin(&path, entry.size()).map_err(tap_err)?;
                let reader = io::Cursor::new(std::mem::take(&mut head)).chain(&mut entry);
                let (summary, digest) = match copy {
                    None => scan_hashed(reader, &path, name)?,
                    Some(copy) => {
                        let mut tee = Tee {
                            inner: reader,
                            copy,
                        };
                        let scanned = scan_hashed(&mut tee, &path, name)?;
                        let tap_err = io_err(format!("{name}: copying layer {path}"));
                        tap.end(&path, &scanned.1, tee.copy).map_err(tap_err)?;
                        scanned
                    }
                };
                contents.digests.insert(path.clone(), digest);
                contents.layers.insert(path, Arc::new(summary));
            }
            Outer::Read | Outer::Skip => {}
        }
    }
    Ok(contents)
}

/// Scans the layer blob at `path` of archive `name` and hashes every byte of it as it passes
/// (in the algorithm its name claims, else SHA-256), in one read.
fn scan_hashed(
    reader: impl Read,
    path: &str,
    name: &str,
) -> Result<(LayerSummary, String), ImageError> {
    let mut hashing = HashingReader::in_algorithm_of(reader, &hashing_digest(path))
        .expect("hashing_digest names sha256 or sha512");
    let summary = layers::scan(&mut hashing, path, layers::Limits::from_env()?)?;
    io::copy(&mut hashing, &mut io::sink()).map_err(io_err(format!("{name}: reading {path}")))?;
    Ok((summary, hashing.finish()))
}

/// What [`Contents::classify`] made of an entry of the outer tar.
enum Outer {
    /// A layer blob, at this path; its first bytes are in `head`, the rest still in the entry.
    Layer(String),
    /// A JSON document, now read into `Contents::json`.
    Read,
    /// Anything else (folders, links recorded, files of no interest).
    Skip,
}

fn io_err(what: String) -> impl FnOnce(io::Error) -> ImageError {
    move |source| ImageError::Io { what, source }
}

impl Contents {
    /// Reads an entry of the outer tar as far as telling what it is: its first 512 bytes go
    /// to `head` (cleared first); a JSON document is read whole into `self.json`.
    fn classify<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        head: &mut Vec<u8>,
        name: &str,
    ) -> Result<Outer, ImageError> {
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Ok(path) = layers::normalize(&raw) else {
            return Ok(Outer::Skip);
        };
        let path = path.trim_start_matches('/').to_string();
        if !self.is_file(entry, &path) {
            return Ok(Outer::Skip);
        }
        let size = entry.size();
        head.clear();
        entry
            .take(512)
            .read_to_end(head)
            .map_err(io_err(format!("{name}: reading {path}")))?;
        if looks_like_layer(head, &path) {
            return Ok(Outer::Layer(path));
        }
        if !looks_like_json(head, size) {
            return Ok(Outer::Skip);
        }
        let mut bytes = head.clone();
        entry
            .read_to_end(&mut bytes)
            .map_err(io_err(format!("{name}: reading {path}")))?;
        let digest = oci::digest::digest_like(&hashing_digest(&path), &bytes)
            .expect("hashing_digest names sha256 or sha512");
        self.digests.insert(path.clone(), digest);
        self.json.insert(path, bytes);
        Ok(Outer::Read)
    }

    /// Every document and layer whose name is a digest matches it, whatever the algorithm
    /// (one archbuild cannot compute is refused by name).
    fn verify_names(&self, name: &str) -> Result<(), ImageError> {
        let mut paths: Vec<&String> = self.digests.keys().collect();
        paths.sort();
        for path in paths {
            let Some(claimed) = claimed_digest(path) else {
                continue;
            };
            digest::check_supported(&claimed)
                .map_err(|why| ImageError::invalid(name, format!("member {path}: {why}")))?;
            let actual = &self.digests[path];
            if *actual != claimed {
                return Err(ImageError::invalid(
                    name,
                    format!("member {path} does not match its digest: its content is {actual}; the archive is corrupt or was altered"),
                ));
            }
        }
        Ok(())
    }

    /// A layer a legacy `manifest.json` lists is the one the config's `diff_ids` names: an
    /// uncompressed layer hashes to it; a compressed one must be named by its own digest
    /// (checked by [`Contents::verify_names`]), as nothing else can vouch for it.
    fn verify_diff_id(
        &self,
        name: &str,
        path: &str,
        summary: &LayerSummary,
        diff_id: &str,
    ) -> Result<(), ImageError> {
        let resolved = summary.digest.as_str();
        let actual = self.digests.get(resolved).map(String::as_str);
        if summary.compression != layers::Compression::None {
            if claimed_digest(resolved).is_some() {
                return Ok(());
            }
            return Err(ImageError::invalid(
                name,
                format!("layer {path} is compressed and not named by its digest, so nothing verifies it (the config's diff_id {diff_id} is of the uncompressed tar)"),
            ));
        }
        if actual == Some(diff_id) {
            return Ok(());
        }
        Err(ImageError::invalid(
            name,
            format!(
                "layer {path} is not the layer the config lists: diff_id {diff_id}, content {}; the archive is corrupt or was altered",
                actual.unwrap_or("unknown")
            ),
        ))
    }

    /// Records a link entry of the outer tar (a layer shared between images) and says
    /// whether the entry is a regular file, to read further.
    fn is_file<R: Read>(&mut self, entry: &tar::Entry<'_, R>, path: &str) -> bool {
        let entry_type = entry.header().entry_type();
        match entry_type {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let base = if entry_type == tar::EntryType::Symlink {
                    layers::parent(&format!("/{path}")).to_string()
                } else {
                    "/".into()
                };
                if let Ok(t) = layers::normalize(&format!("{base}/{target}")) {
                    self.links
                        .insert(path.to_string(), t.trim_start_matches('/').to_string());
                }
                false
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => true,
            _ => false,
        }
    }
}

/// Manifests, configs and `index.json` are small JSON documents.
fn looks_like_json(head: &[u8], size: u64) -> bool {
    size <= MAX_JSON && head.first().is_some_and(|b| *b == b'{' || *b == b'[')
}

/// Layers are tar streams (the `ustar` magic at 257, or an empty archive's zero block),
/// possibly compressed; JSON documents start with `{`.
fn looks_like_layer(head: &[u8], path: &str) -> bool {
    let compressed = head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    let tar = head.len() >= 262 && &head[257..262] == b"ustar";
    let empty_tar = head.len() == 512 && head.iter().all(|b| *b == 0);
    compressed || tar || empty_tar || (path.ends_with("/layer.tar") && !head.starts_with(b"{"))
}
