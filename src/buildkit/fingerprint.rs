//! No-change rebuilds without uploading the context: a fingerprint of everything a job's
//! result depends on (the context's file list as `.dockerignore` filters it, with each file's
//! size, mtime, inode and mode, like git's index; the Dockerfile's bytes; build args, target,
//! platform, labels and endpoint). It is kept in `.archbuild/cache/` with the image ID it
//! produced; when the fingerprint is unchanged and the daemon still has that image, the job
//! reuses it instead of building.
//!
//! Stat data rather than content hashes keeps the check to a few milliseconds for thousands of
//! files; a tool that rewrites a file with the same size and mtime defeats it, as it defeats
//! git and make, and `--no-cache` skips the reuse altogether.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::context::{self, ContextSpec};
use super::{BuildError, Job};

/// Bumped when what goes into the fingerprint changes.
const VERSION: &str = "archbuild-fingerprint-v3";

/// What the cache remembers about one (image, platform, endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub image: String,
    pub platform: String,
    pub endpoint: String,
    pub fingerprint: String,
    pub image_id: String,
    /// The base images and their digests when it was built.
    #[serde(default)]
    pub bases: Vec<super::bases::ResolvedBase>,
}

/// The fingerprint of a job's inputs.
pub fn compute(
    request: &Job,
    labels: &std::collections::BTreeMap<String, String>,
    bases: &[super::bases::ResolvedBase],
) -> Result<String, BuildError> {
    let files = files(&request.context, &request.dockerfile)?;
    Ok(compute_with(request, labels, bases, &files))
}

/// The fingerprint of a job's inputs, with its context's [`files`] digest computed already
/// (once for every job on that context and Dockerfile: the walk is most of the cost).
pub fn compute_with(
    request: &Job,
    labels: &std::collections::BTreeMap<String, String>,
    bases: &[super::bases::ResolvedBase],
    files: &str,
) -> String {
    let mut hash = Sha256::new();
    let mut field = |name: &str, value: &str| {
        let _ = write!(hash, "{name}\0{}\0{value}\0", value.len());
    };
    field("version", VERSION);
    field("platform", &request.platform.to_string());
    field("endpoint", &request.builder.url);
    field("target", request.target.as_deref().unwrap_or(""));
    for (k, v) in &request.build_args {
        field("arg", &format!("{k}={v}"));
    }
    for (k, v) in labels {
        field("label", &format!("{k}={v}"));
    }
    for base in bases {
        let digest = base.digest.as_deref().unwrap_or("unresolved");
        field("base", &format!("{} {digest}", base.reference));
    }
    field("files", files);
    hex::encode(hash.finalize())
}

/// The digest of what a build on `context` with `dockerfile` sends: the Dockerfile's bytes
/// and place, and every file `.dockerignore` lets through, by its stat data.
pub fn files(context: &Path, dockerfile: &Path) -> Result<String, BuildError> {
    let spec = context::prepare(context, dockerfile)?;
    let mut hash = Sha256::new();
    let _ = write!(hash, "dockerfile-path\0{}\0", spec.dockerfile_in_tar);
    let bytes = std::fs::read(dockerfile).map_err(|e| BuildError::io(dockerfile, e))?;
    hash.update(Sha256::digest(&bytes));
    hash_files(&spec, &mut hash)?;
    Ok(hex::encode(hash.finalize()))
}

fn hash_files(spec: &ContextSpec, hash: &mut Sha256) -> Result<(), BuildError> {
    context::walk(spec, |rel, path, meta| {
        let link = if meta.file_type().is_symlink() {
            std::fs::read_link(path)?.to_string_lossy().into_owned()
        } else {
            String::new()
        };
        let _ = write!(
            hash,
            "{rel}\0{}\0{}\0{}.{}\0{}\0{}\0{link}\0",
            meta.mode(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ino(),
            meta.dev(),
        );
        Ok(())
    })
}

/// Where the entry for a request lives.
pub fn entry_path(cache_dir: &Path, request: &Job) -> PathBuf {
    let key = format!(
        "{}\0{}\0{}",
        request.image, request.platform, request.builder.url
    );
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    let slug: String = request
        .image
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    cache_dir.join(format!("{slug}-{}.json", &digest[..16]))
}

/// The remembered entry, if any (an unreadable one counts as none).
pub fn load(cache_dir: &Path, request: &Job) -> Option<CacheEntry> {
    let text = std::fs::read_to_string(entry_path(cache_dir, request)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Remembers `entry`, written to a temporary file and renamed so a reader never sees half.
pub fn store(cache_dir: &Path, request: &Job, entry: &CacheEntry) -> std::io::Result<()> {
    std::fs::create_dir_all(cache_dir)?;
    let path = entry_path(cache_dir, request);
    crate::atomic_file::write_with(&path, |file| Ok(serde_json::to_writer_pretty(file, entry)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Platform;
    use std::collections::BTreeMap;

    fn request(dir: &Path) -> Job {
        Job {
            image: "api".into(),
            platform: Platform::parse("linux/arm64").unwrap(),
            context: dir.to_path_buf(),
            dockerfile: dir.join("Dockerfile"),
            target: None,
            build_args: BTreeMap::new(),
            labels: BTreeMap::new(),
            references: vec![],
            builder: crate::endpoint::Endpoint {
                url: "unix:///var/run/docker.sock".into(),
                chosen_by: "the default socket".into(),
                tls: None,
            },
            alternates: Vec::new(),
            platform_tag: crate::reference::ImageRef::local(
                "archbuild-local/api",
                "latest-linux-arm64",
            ),
        }
    }

    #[test]
    fn changes_with_any_input_but_not_ignored_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "*.log\n").unwrap();
        std::fs::write(dir.path().join("app"), "v1").unwrap();
        let req = request(dir.path());
        let labels = BTreeMap::new();
        let first = compute(&req, &labels, &[]).unwrap();
        assert_eq!(first, compute(&req, &labels, &[]).unwrap());

        std::fs::write(dir.path().join("build.log"), "noise").unwrap();
        assert_eq!(first, compute(&req, &labels, &[]).unwrap(), "ignored file");

        let mut other = req.clone();
        other.platform = Platform::parse("linux/amd64").unwrap();
        assert_ne!(first, compute(&other, &labels, &[]).unwrap(), "platform");
        let mut other = req.clone();
        other.build_args.insert("V".into(), "2".into());
        assert_ne!(first, compute(&other, &labels, &[]).unwrap(), "build arg");

        let base = |digest: &str| super::super::bases::ResolvedBase {
            reference: "debian:12".into(),
            digest: Some(digest.into()),
        };
        let on_a = compute(&req, &labels, &[base("sha256:a")]).unwrap();
        assert_ne!(first, on_a, "a base");
        assert_ne!(
            on_a,
            compute(&req, &labels, &[base("sha256:b")]).unwrap(),
            "a moved base"
        );

        std::fs::write(dir.path().join("app"), "v22").unwrap();
        assert_ne!(first, compute(&req, &labels, &[]).unwrap(), "file content");
    }

    #[test]
    fn entries_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let req = request(dir.path());
        let cache = dir.path().join(".archbuild/cache");
        assert_eq!(load(&cache, &req), None);
        let entry = CacheEntry {
            image: "api".into(),
            platform: "linux/arm64".into(),
            endpoint: req.builder.url.clone(),
            fingerprint: "f".into(),
            image_id: "sha256:1".into(),
            bases: Vec::new(),
        };
        store(&cache, &req, &entry).unwrap();
        assert_eq!(load(&cache, &req), Some(entry));
    }
}
