//! Layers: what each layer tar contains (`scan`, one streaming pass, nothing extracted) and
//! the filesystem the layers make together once OCI whiteouts and opaque directories are
//! applied (`Filesystem::merge`), with symlink resolution inside the image.
//!
//! Memory stays bounded: a layer is summarised as paths, types, sizes and the ELF report or
//! `#!` line of each regular file; file contents are never kept, but for the dynamic
//! loaders' configuration files and glibc's loader cache, each bounded in size.

use crate::elf::ElfReport;

mod bounds;
mod merge;
mod scan;
mod sniff;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod tests_support;

pub use bounds::{Limits, MAX_HEADER_BYTES};
pub use merge::{Filesystem, Node, NodeKind, ResolveError, Resolved, SYMLINK_LIMIT};
pub use scan::{scan, scan_seekable, Compression, LayerError, MAX_ENTRY_SIZE};

/// What one layer tar holds, in tar order.
#[derive(Clone, Debug, Default)]
pub struct LayerSummary {
    /// How the layer is named in findings (its digest, or its path in an archive).
    pub digest: String,
    pub compression: Compression,
    pub entries: Vec<Entry>,
    /// Entries that were not applied because applying them would be unsafe.
    pub unsafe_entries: Vec<UnsafeEntry>,
    /// Uncompressed tar bytes read.
    pub tar_bytes: u64,
}

/// One tar entry, its path normalised to an absolute path inside the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
}

/// What a tar entry makes in the filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File(FileInfo),
    Dir {
        mode: u32,
    },
    Symlink {
        target: String,
    },
    /// A hard link to another path (normalised like entry paths) of this or a lower layer.
    Hardlink {
        target: String,
    },
    /// `.wh.NAME`: `path` (the NAME) is deleted from the layers below.
    Whiteout,
    /// `.wh..wh..opq`: the directory `path` hides everything the layers below put in it.
    OpaqueDir,
    /// A device, FIFO or other special file, by tar type name.
    Special(String),
}

/// A regular file: size, permission bits and what its first bytes say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub size: u64,
    pub mode: u32,
    pub content: Content,
}

/// What a regular file's first bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    Elf(ElfReport),
    Script(Shebang),
    /// A dynamic loader's configuration (`/etc/ld.so.conf` and its folder,
    /// `/etc/ld-musl-ARCH.path`), kept whole up to [`LOADER_CONFIG_LEN`] bytes.
    LoaderConfig(String),
    /// glibc's loader cache, `/etc/ld.so.cache` (built by `ldconfig`), its bytes kept up to
    /// [`LOADER_CACHE_LEN`].
    LoaderCache(Vec<u8>),
    Other,
}

/// The most of a loader configuration file that is kept; real ones are a few lines.
pub const LOADER_CONFIG_LEN: u64 = 64 * 1024;
/// The most of the loader cache that is kept: a few thousand libraries take some hundred
/// KiB; what lies beyond is read as missing.
pub const LOADER_CACHE_LEN: u64 = 4 << 20;

/// The file glibc's loader reads its cache from (`LD_SO_CACHE`).
pub const LOADER_CACHE: &str = "/etc/ld.so.cache";

/// Whether the loaders read the file at `path` as their configuration: glibc's
/// `/etc/ld.so.conf` with its customary `/etc/ld.so.conf.d/*.conf`, and musl's
/// `/etc/ld-musl-ARCH.path`.
pub fn is_loader_config(path: &str) -> bool {
    path == "/etc/ld.so.conf"
        || (path.starts_with("/etc/ld.so.conf.d/") && path.ends_with(".conf"))
        || (path.starts_with("/etc/ld-musl-")
            && path.ends_with(".path")
            && !path[5..].contains('/'))
}

/// A `#!` line as the kernel reads it: the interpreter and at most one argument string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shebang {
    pub interpreter: String,
    pub arg: Option<String>,
}

/// A tar entry that was recorded and skipped instead of applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsafeEntry {
    /// The name as written in the tar.
    pub name: String,
    pub reason: String,
}

impl FileInfo {
    /// Whether any execute bit is set.
    pub fn is_executable(&self) -> bool {
        self.mode & 0o111 != 0
    }
}

/// Parses a `#!` line (the bytes after `#!` up to the newline), as Linux does: the
/// interpreter is the first word, the rest (trimmed) is one argument.
pub fn parse_shebang(line: &[u8]) -> Option<Shebang> {
    let rest = line.strip_prefix(b"#!")?;
    let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    let text = String::from_utf8_lossy(&rest[..end]);
    let text = text.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
    if text.is_empty() {
        return None;
    }
    let (interpreter, arg) = match text.find([' ', '\t']) {
        Some(i) => (&text[..i], Some(text[i..].trim().to_string())),
        None => (text, None),
    };
    Some(Shebang {
        interpreter: interpreter.to_string(),
        arg: arg.filter(|a| !a.is_empty()),
    })
}

/// Linux's longest path (`PATH_MAX`, the terminating NUL included): a runtime cannot create
/// a longer one when it extracts a layer.
pub const PATH_MAX: usize = 4096;

/// Normalises a tar entry name to an absolute path in the image: `./a//b/` → `/a/b`.
/// A `..` component is refused: a runtime would clamp it at the root, but a layer that
/// needs it was made by something careless or hostile.
pub fn normalize(name: &str) -> Result<String, String> {
    if name.len() > PATH_MAX {
        return Err(format!(
            "the name is {} bytes long, more than Linux's PATH_MAX ({PATH_MAX}): no runtime can extract it",
            name.len()
        ));
    }
    let mut out = String::with_capacity(name.len() + 1);
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("the name contains \"..\" (path traversal)".into()),
            p => {
                out.push('/');
                out.push_str(p);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The parent folder of a normalised path (`/` for top-level entries and for `/`).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a normalised path.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Joins a normalised folder and a name.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}
