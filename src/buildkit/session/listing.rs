//! What a DiffCopy sender lists: the entries of one synced folder as fsutil `Stat`s, in the
//! order fsutil's receiver validates (sorted by path component, parents before children),
//! filtered by the folder's `.dockerignore` and by the include/exclude patterns the receiver
//! asked for. File contents are not read here; [`Entry::file`] says where to read them from
//! when the receiver requests them.
//!
//! Blocking file-system I/O only (no tokio): call it from a blocking thread.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use bollard_buildkit_proto::fsutil::types::Stat;

use super::super::context::walk_tree;
use super::super::dockerignore::{Ignore, PatternError};
use super::super::BuildError;

// Go's os.FileMode type bits, as fsutil puts them into `Stat.mode`.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_DEVICE: u32 = 1 << 26;
const MODE_NAMED_PIPE: u32 = 1 << 25;
const MODE_SOCKET: u32 = 1 << 24;
const MODE_SETUID: u32 = 1 << 23;
const MODE_SETGID: u32 = 1 << 22;
const MODE_CHAR_DEVICE: u32 = 1 << 21;
const MODE_STICKY: u32 = 1 << 20;

/// One folder a session offers under a name (`context`, `dockerfile`).
#[derive(Debug, Clone)]
pub enum SyncDir {
    /// A folder tree with its `.dockerignore`; a top-level [`STATE_DIR`](super::super::context::STATE_DIR) is never sent.
    Tree { root: PathBuf, ignore: Ignore },
    /// A folder holding just one file: the Dockerfile, wherever it lives, under `name`.
    Single { name: String, path: PathBuf },
}

/// One listed entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub stat: Stat,
    /// The file to send when the receiver requests this entry (regular files that are not a
    /// hard link to an earlier entry).
    pub file: Option<PathBuf>,
}

/// The receiver's own selection (`include-patterns`, `exclude-patterns` gRPC metadata), with
/// `.dockerignore` syntax: a pattern matching a folder matches everything under it.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Option<Ignore>,
    exclude: Ignore,
}

impl Filter {
    /// A filter from the receiver's pattern lists (an empty include list includes everything).
    pub fn new(includes: &[String], excludes: &[String]) -> Result<Filter, PatternError> {
        let include = if includes.is_empty() {
            None
        } else {
            Some(Ignore::parse(&includes.join("\n"))?)
        };
        Ok(Filter {
            include,
            exclude: Ignore::parse(&excludes.join("\n"))?,
        })
    }

    fn selects(&self, rel: &str) -> bool {
        !self.exclude.excludes(rel) && self.include.as_ref().is_none_or(|i| i.excludes(rel))
    }

    /// Whether a folder can hold anything the include patterns select: false only when
    /// every include pattern is a plain path that is neither `dir`, under it nor above it.
    fn may_select_under(&self, dir: &str, literal_includes: &[String]) -> bool {
        self.include.is_none()
            || literal_includes.is_empty()
            || literal_includes.iter().any(|p| {
                p.is_empty()
                    || p == dir
                    || p.starts_with(&format!("{dir}/"))
                    || dir.starts_with(&format!("{p}/"))
            })
    }
}

/// Lists `dir` for a receiver that asked with `filter`.
pub fn list(dir: &SyncDir, filter: &Filter, includes: &[String]) -> Result<Vec<Entry>, BuildError> {
    match dir {
        SyncDir::Single { name, path } => {
            if !filter.selects(name) {
                return Ok(Vec::new());
            }
            let meta = std::fs::metadata(path).map_err(|e| BuildError::io(path, e))?;
            Ok(vec![Entry {
                stat: stat_of(name, path, &meta)?,
                file: Some(path.clone()),
            }])
        }
        SyncDir::Tree { root, ignore } => list_tree(root, ignore, filter, includes),
    }
}

fn list_tree(
    root: &Path,
    ignore: &Ignore,
    filter: &Filter,
    includes: &[String],
) -> Result<Vec<Entry>, BuildError> {
    // Plain include paths let the walk skip folders that cannot hold them.
    let literal: Vec<String> = if includes
        .iter()
        .all(|p| !p.contains(['*', '?', '[', '\\', '!']))
    {
        includes
            .iter()
            .map(|p| p.trim_start_matches("./").trim_matches('/').to_string())
            .collect()
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    let mut chain: Vec<String> = Vec::new();
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let skip_dir = |rel: &str| !filter.may_select_under(rel, &literal);
    walk_tree(root, ignore, skip_dir, |rel, path, meta| {
        if !filter.selects(rel) {
            return Ok(());
        }
        add_parents(root, rel, &mut chain, &mut out)?;
        let mut stat = stat_of(rel, path, meta)?;
        let mut file = None;
        if meta.is_file() {
            let first = (meta.nlink() > 1)
                .then(|| {
                    links
                        .entry((meta.dev(), meta.ino()))
                        .or_insert(rel.to_string())
                })
                .filter(|first| first.as_str() != rel);
            match first {
                Some(first) => stat.linkname = first.clone(),
                None => file = Some(path.to_path_buf()),
            }
        }
        out.push(Entry { stat, file });
        if meta.is_dir() {
            chain.push(rel.to_string());
        }
        Ok(())
    })?;
    Ok(out)
}

/// Lists the folders above `rel` that are not listed yet (left out by the filters while
/// something under them is selected): the receiver needs every parent first.
fn add_parents(
    root: &Path,
    rel: &str,
    chain: &mut Vec<String>,
    out: &mut Vec<Entry>,
) -> Result<(), BuildError> {
    chain.retain(|dir| rel.starts_with(&format!("{dir}/")));
    let parts: Vec<&str> = rel.split('/').collect();
    for depth in 1..parts.len() {
        let dir = parts[..depth].join("/");
        if chain.contains(&dir) {
            continue;
        }
        let path = root.join(&dir);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| BuildError::io(&path, e))?;
        out.push(Entry {
            stat: stat_of(&dir, &path, &meta)?,
            file: None,
        });
        chain.push(dir);
    }
    Ok(())
}

/// The fsutil `Stat` of one entry: Go file mode bits, owner reset to root (as the docker CLI
/// does), mtime in nanoseconds, symlink target.
fn stat_of(rel: &str, path: &Path, meta: &Metadata) -> Result<Stat, BuildError> {
    let kind = meta.file_type();
    let mut stat = Stat {
        path: rel.to_string(),
        mode: go_mode(meta),
        mod_time: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ..Default::default()
    };
    if kind.is_file() {
        stat.size = meta.len() as i64;
    }
    if kind.is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| BuildError::io(path, e))?;
        stat.linkname = target.to_string_lossy().into_owned();
    }
    if kind.is_block_device() || kind.is_char_device() {
        let rdev = meta.rdev();
        stat.devmajor = (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as i64;
        stat.devminor = ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as i64;
    }
    Ok(stat)
}

/// Unix mode bits as Go's `os.FileMode`.
pub fn go_mode(meta: &Metadata) -> u32 {
    let unix = meta.mode();
    let kind = meta.file_type();
    let mut mode = unix & 0o777;
    if kind.is_dir() {
        mode |= MODE_DIR;
    } else if kind.is_symlink() {
        mode |= MODE_SYMLINK;
    } else if kind.is_fifo() {
        mode |= MODE_NAMED_PIPE;
    } else if kind.is_socket() {
        mode |= MODE_SOCKET;
    } else if kind.is_char_device() {
        mode |= MODE_DEVICE | MODE_CHAR_DEVICE;
    } else if kind.is_block_device() {
        mode |= MODE_DEVICE;
    }
    for (bit, go) in [
        (0o4000, MODE_SETUID),
        (0o2000, MODE_SETGID),
        (0o1000, MODE_STICKY),
    ] {
        if unix & bit != 0 {
            mode |= go;
        }
    }
    mode
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in [
            ("Dockerfile", "FROM scratch\n"),
            (".dockerignore", "logs\n"),
            ("a/b/c.txt", "c"),
            ("a.txt", "a"),
            ("logs/x.log", "x"),
            (".archbuild/cache/f", "f"),
        ] {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::hard_link(dir.path().join("a.txt"), dir.path().join("a/link.txt")).unwrap();
        dir
    }

    fn paths(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.stat.path.as_str()).collect()
    }

    #[test]
    fn a_tree_is_listed_in_order_without_ignored_entries_and_with_hard_links() {
        let dir = tree();
        let sync = SyncDir::Tree {
            root: dir.path().into(),
            ignore: Ignore::parse("logs\n").unwrap(),
        };
        let entries = list(&sync, &Filter::default(), &[]).unwrap();
        assert_eq!(
            paths(&entries),
            [
                ".dockerignore",
                "Dockerfile",
                "a",
                "a/b",
                "a/b/c.txt",
                "a/link.txt",
                "a.txt"
            ]
        );
        assert_eq!(entries[2].stat.mode & MODE_DIR, MODE_DIR);
        assert_eq!(entries[5].stat.linkname, "");
        // The link comes first in walk order, so the later name is the link.
        assert_eq!(entries[6].stat.linkname, "a/link.txt");
        assert!(entries[6].file.is_none() && entries[5].file.is_some());
        assert_eq!(entries[4].stat.size, 1);
    }

    #[test]
    fn receiver_patterns_select_and_parents_come_first() {
        let dir = tree();
        let sync = SyncDir::Tree {
            root: dir.path().into(),
            ignore: Ignore::default(),
        };
        let includes = vec!["a/b/c.txt".to_string()];
        let filter = Filter::new(&includes, &[]).unwrap();
        let entries = list(&sync, &filter, &includes).unwrap();
        assert_eq!(paths(&entries), ["a", "a/b", "a/b/c.txt"]);
        let includes = vec!["a".to_string()];
        let filter = Filter::new(&includes, &[]).unwrap();
        let entries = list(&sync, &filter, &includes).unwrap();
        assert_eq!(paths(&entries), ["a", "a/b", "a/b/c.txt", "a/link.txt"]);
        let filter = Filter::new(&[], &["a".to_string(), "!a/b/c.txt".to_string()]).unwrap();
        let entries = list(&sync, &filter, &[]).unwrap();
        assert_eq!(
            paths(&entries),
            [
                ".dockerignore",
                "Dockerfile",
                "a",
                "a/b",
                "a/b/c.txt",
                "a.txt",
                "logs",
                "logs/x.log"
            ]
        );
    }

    #[test]
    fn a_single_file_folder_lists_the_dockerfile_under_its_name() {
        let dir = tree();
        let sync = SyncDir::Single {
            name: "Dockerfile.web".into(),
            path: dir.path().join("Dockerfile"),
        };
        let filter = Filter::new(&["Dockerfile.web".into()], &[]).unwrap();
        let entries = list(&sync, &filter, &[]).unwrap();
        assert_eq!(paths(&entries), ["Dockerfile.web"]);
        assert_eq!(entries[0].stat.mode & 0o777, 0o644 & entries[0].stat.mode);
        let filter = Filter::new(&["other".into()], &[]).unwrap();
        assert!(list(&sync, &filter, &[]).unwrap().is_empty());
    }
}
