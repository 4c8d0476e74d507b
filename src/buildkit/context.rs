//! The build context: the files of the context folder that `.dockerignore` lets through,
//! written as a tar stream the way the Docker daemon wants it (`sparse(false)`), sorted, owned
//! by root, hard links kept as links, mtimes clamped to `SOURCE_DATE_EPOCH` when it is set.
//!
//! The tar is written on a blocking thread into a bounded channel and sent as the request
//! body while it is being written, so the client never holds the context in memory (a few
//! chunks of [`CHUNK`] bytes at most).

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::dockerignore::Ignore;
use super::BuildError;

/// Size of the pieces the tar is sent in.
pub const CHUNK: usize = 256 * 1024;
/// How many pieces may wait in the channel.
const IN_FLIGHT: usize = 4;

/// archbuild's state folder (`.archbuild/`), left out of every context.
pub const STATE_DIR: &str = ".archbuild";

/// What goes into one job's context, resolved and checked.
#[derive(Debug, Clone)]
pub struct ContextSpec {
    pub root: PathBuf,
    /// The Dockerfile's path inside the tar (what the daemon's `dockerfile` parameter names).
    pub dockerfile_in_tar: String,
    /// A Dockerfile outside the context folder, appended to the tar under `dockerfile_in_tar`.
    pub outside_dockerfile: Option<PathBuf>,
    pub ignore: Ignore,
    /// `SOURCE_DATE_EPOCH`: mtimes later than it are clamped to it.
    pub source_date_epoch: Option<u64>,
}

/// Size of a written context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextStats {
    pub entries: usize,
    pub hard_links: usize,
    /// Tar bytes sent (only counted by [`stream`]).
    pub bytes: u64,
}

/// Checks the context folder and Dockerfile and reads `.dockerignore`.
pub fn prepare(context: &Path, dockerfile: &Path) -> Result<ContextSpec, BuildError> {
    if !context.is_dir() {
        return Err(BuildError::MissingContext {
            path: context.to_path_buf(),
        });
    }
    if !dockerfile.is_file() {
        return Err(BuildError::MissingDockerfile {
            path: dockerfile.to_path_buf(),
        });
    }
    let root = context
        .canonicalize()
        .map_err(|e| BuildError::io(context, e))?;
    let dockerfile_abs = dockerfile
        .canonicalize()
        .map_err(|e| BuildError::io(dockerfile, e))?;
    let ignore_path = root.join(".dockerignore");
    let mut ignore = match std::fs::read_to_string(&ignore_path) {
        Ok(text) => Ignore::parse(&text).map_err(|source| BuildError::Ignore {
            path: root.clone(),
            source,
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => return Err(BuildError::io(ignore_path, e)),
    };
    let (dockerfile_in_tar, outside_dockerfile) = match dockerfile_abs.strip_prefix(&root) {
        Ok(rel) => (slash_path(rel), None),
        Err(_) => {
            let digest = sha2_hex(dockerfile_abs.to_string_lossy().as_bytes());
            (
                format!(".archbuild-dockerfile-{}", &digest[..12]),
                Some(dockerfile_abs.clone()),
            )
        }
    };
    if !ignore.is_empty() {
        ignore.always_include(&dockerfile_in_tar);
        ignore.always_include(".dockerignore");
    }
    let source_date_epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok());
    Ok(ContextSpec {
        root,
        dockerfile_in_tar,
        outside_dockerfile,
        ignore,
        source_date_epoch,
    })
}

fn sha2_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// A relative path with `/` between its components, as tar and fsutil name entries.
pub(super) fn slash_path(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Visits every entry that goes into the context, sorted by path, parents before children.
/// A top-level [`STATE_DIR`] is left out.
pub fn walk(
    spec: &ContextSpec,
    mut visit: impl FnMut(&str, &Path, &Metadata) -> io::Result<()>,
) -> Result<(), BuildError> {
    walk_tree(
        &spec.root,
        &spec.ignore,
        |_| false,
        |rel, path, meta| visit(rel, path, meta).map_err(|e| BuildError::io(path, e)),
    )
}

/// The one walk of a context folder, for the tar and for the session's file-sync listing:
/// every entry of `root` that `ignore` lets through, sorted by file name, parents before
/// children, symlinks not followed. A top-level [`STATE_DIR`] is left out, and so is every
/// folder for which `skip_dir` says nothing under it is wanted.
pub fn walk_tree(
    root: &Path,
    ignore: &Ignore,
    skip_dir: impl Fn(&str) -> bool,
    mut visit: impl FnMut(&str, &Path, &Metadata) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    let mut walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(entry) = walker.next() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            BuildError::io(path, e.into())
        })?;
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let rel = slash_path(rel);
        let is_dir = entry.file_type().is_dir();
        // archbuild's own state changes with every build; it is never part of an image.
        if is_dir && (rel == STATE_DIR || skip_dir(&rel)) {
            walker.skip_current_dir();
            continue;
        }
        if ignore.excludes(&rel) {
            if is_dir && !ignore.may_include_under(&rel) {
                walker.skip_current_dir();
            }
            continue;
        }
        let meta = entry
            .metadata()
            .map_err(|e| BuildError::io(entry.path(), e.into()))?;
        visit(&rel, entry.path(), &meta)?;
    }
    Ok(())
}

/// Writes the context as a tar into `out`.
pub fn write_tar(spec: &ContextSpec, out: impl Write) -> Result<ContextStats, BuildError> {
    let mut tar = tar::Builder::new(out);
    tar.sparse(false);
    tar.follow_symlinks(false);
    let mut stats = ContextStats::default();
    let mut first_of_inode: HashMap<(u64, u64), String> = HashMap::new();
    walk(spec, |rel, path, meta| {
        let mut header = header_for(meta, spec.source_date_epoch);
        let file_type = meta.file_type();
        stats.entries += 1;
        if file_type.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            tar.append_data(&mut header, format!("{rel}/"), io::empty())
        } else if file_type.is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            let target = std::fs::read_link(path)?;
            tar.append_link(&mut header, rel, target)
        } else if file_type.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = first_of_inode.get(&key) {
                    stats.hard_links += 1;
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_size(0);
                    return tar.append_link(&mut header, rel, first);
                }
                first_of_inode.insert(key, rel.to_string());
            }
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.len());
            tar.append_data(&mut header, rel, File::open(path)?)
        } else {
            // Sockets, FIFOs and devices have no place in an image build context.
            stats.entries -= 1;
            Ok(())
        }
    })?;
    if let Some(outside) = &spec.outside_dockerfile {
        let meta = std::fs::metadata(outside).map_err(|e| BuildError::io(outside, e))?;
        let mut header = header_for(&meta, spec.source_date_epoch);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(meta.len());
        let file = File::open(outside).map_err(|e| BuildError::io(outside, e))?;
        tar.append_data(&mut header, &spec.dockerfile_in_tar, file)
            .map_err(|e| BuildError::io(outside, e))?;
        stats.entries += 1;
    }
    let mut out = tar
        .into_inner()
        .map_err(|e| BuildError::io(&spec.root, e))?;
    out.flush().map_err(|e| BuildError::io(&spec.root, e))?;
    Ok(stats)
}

fn header_for(meta: &Metadata, source_date_epoch: Option<u64>) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(0);
    header.set_gid(0);
    let mtime = meta.mtime().max(0) as u64;
    header.set_mtime(source_date_epoch.map_or(mtime, |epoch| mtime.min(epoch)));
    header.set_size(0);
    header
}

/// A [`Write`] that sends what it gets as [`CHUNK`]-sized pieces into a bounded channel,
/// blocking while the receiver is behind.
struct ChannelWriter {
    buffer: Vec<u8>,
    tx: mpsc::Sender<Bytes>,
    sent: u64,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.sent += chunk.len() as u64;
        self.tx
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let n = room.min(data.len());
        self.buffer.extend_from_slice(&data[..n]);
        if self.buffer.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Starts writing the context on a blocking thread; returns the body stream and the writer's
/// handle, which yields the stats once the whole tar was taken by the stream.
pub fn stream(
    spec: ContextSpec,
) -> (
    impl Stream<Item = Bytes> + Send + 'static,
    JoinHandle<Result<ContextStats, BuildError>>,
) {
    let (tx, rx) = mpsc::channel::<Bytes>(IN_FLIGHT);
    let writer = tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            buffer: Vec::with_capacity(CHUNK),
            tx,
            sent: 0,
        };
        let mut stats = write_tar(&spec, &mut out)?;
        stats.bytes = out.sent;
        Ok(stats)
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    (body, writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, String)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().entry_type(),
                    link,
                )
            })
            .collect()
    }

    #[test]
    fn sorted_ignored_and_hard_links_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(root.join(".dockerignore"), "*.log\nsecret/\nDockerfile\n").unwrap();
        std::fs::create_dir(root.join("b")).unwrap();
        std::fs::write(root.join("b/z.txt"), "z").unwrap();
        std::fs::write(root.join("a.bin"), vec![7u8; 100_000]).unwrap();
        std::fs::hard_link(root.join("a.bin"), root.join("c.bin")).unwrap();
        std::fs::write(root.join("debug.log"), "x").unwrap();
        std::fs::create_dir(root.join("secret")).unwrap();
        std::fs::write(root.join("secret/key"), "k").unwrap();
        std::os::unix::fs::symlink("a.bin", root.join("d-link")).unwrap();

        let spec = prepare(root, &root.join("Dockerfile")).unwrap();
        let mut out = Vec::new();
        let stats = write_tar(&spec, &mut out).unwrap();
        assert_eq!(stats.hard_links, 1);
        let got = entries(&out);
        let names: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                ".dockerignore",
                "Dockerfile",
                "a.bin",
                "b/",
                "b/z.txt",
                "c.bin",
                "d-link"
            ]
        );
        assert_eq!(got[5].1, tar::EntryType::Link);
        assert_eq!(got[5].2, "a.bin");
        assert_eq!(got[6].1, tar::EntryType::Symlink);
        // The linked copy costs a header, not another 100 kB.
        assert!(out.len() < 110_000 + 10 * 1024, "{}", out.len());
    }

    #[test]
    fn missing_context_and_dockerfile_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = prepare(&dir.path().join("nope"), &dir.path().join("Dockerfile")).unwrap_err();
        assert!(matches!(err, BuildError::MissingContext { .. }));
        let err = prepare(dir.path(), &dir.path().join("Dockerfile")).unwrap_err();
        assert!(err.to_string().contains("Dockerfile"), "{err}");
    }

    #[test]
    fn dockerfile_outside_the_context_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(ctx.join("f"), "f").unwrap();
        std::fs::write(dir.path().join("Dockerfile.x"), "FROM scratch\n").unwrap();
        let spec = prepare(&ctx, &dir.path().join("Dockerfile.x")).unwrap();
        let mut out = Vec::new();
        write_tar(&spec, &mut out).unwrap();
        let names: Vec<String> = entries(&out).into_iter().map(|e| e.0).collect();
        assert_eq!(names, vec!["f".to_string(), spec.dockerfile_in_tar.clone()]);
    }

    #[tokio::test]
    async fn stream_delivers_the_same_bytes() {
        use futures_util::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("big"), vec![1u8; 3 * CHUNK + 17]).unwrap();
        let spec = prepare(dir.path(), &dir.path().join("Dockerfile")).unwrap();
        let mut expected = Vec::new();
        write_tar(&spec, &mut expected).unwrap();
        let (body, writer) = stream(spec);
        let chunks: Vec<Bytes> = body.collect().await;
        assert!(chunks.iter().all(|c| c.len() <= CHUNK));
        assert_eq!(chunks.concat(), expected);
        assert_eq!(writer.await.unwrap().unwrap().entries, 2);
    }
}
