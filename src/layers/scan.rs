//! One streaming pass over a layer: detect the compression from the first bytes, walk the
//! tar, and summarise each entry. File contents are read only as far as the ELF prefix or
//! the `#!` line (the loaders' configuration files and glibc's loader cache whole, up to a
//! bound); the rest is skipped as the stream passes, or, for an uncompressed layer
//! read from a file (`scan_seekable`), seeked over without being read.
//!
//! The walk is bounded whatever the layer says (the limits and their account are in
//! `bounds`): entries and expanded bytes by [`Limits`], the extension headers of one entry
//! (PAX records, GNU long names, sparse maps, which the tar reader keeps in memory) by
//! [`MAX_HEADER_BYTES`].

use std::cell::Cell;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

use tar::EntryType;

use super::bounds::{Hit, Meter, Metered};
use super::sniff::{loader_cache, loader_config, sniff};
use super::{
    normalize, Entry, EntryKind, FileInfo, LayerSummary, Limits, UnsafeEntry, MAX_HEADER_BYTES,
};
use crate::elf;

/// Entries declaring more than this many bytes (1 TiB) are refused as absurd.
pub const MAX_ENTRY_SIZE: u64 = 1 << 40;

/// How a layer blob is compressed, as its first bytes say (the media type is not trusted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

/// Why a layer could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {layer} is {what}; expected a tar, gzip or zstd stream")]
    Unsupported { layer: String, what: String },
    #[error("layer {layer} is corrupt or truncated at compressed byte {offset}{}: {source}",
        after.as_ref().map(|a| format!(" (after entry {a})")).unwrap_or_default())]
    Corrupt {
        layer: String,
        offset: u64,
        after: Option<String>,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: entry {name} declares {size} bytes, more than any real file (limit {MAX_ENTRY_SIZE})")]
    AbsurdSize {
        layer: String,
        name: String,
        size: u64,
    },
    #[error("layer {layer} {what}{}", after.as_ref().map(|a| format!(" (after entry {a})")).unwrap_or_default())]
    OverLimit {
        layer: String,
        what: String,
        after: Option<String>,
    },
    #[error("{var}={value:?} is not a limit; expected a positive whole number")]
    BadLimit { var: &'static str, value: String },
}

/// Reads a layer blob once and summarises it. `layer` names it in the summary and in errors.
pub fn scan(reader: impl Read, layer: &str, limits: Limits) -> Result<LayerSummary, LayerError> {
    let offset = Rc::new(Cell::new(0u64));
    let mut counted = Counting {
        inner: reader,
        count: offset.clone(),
    };
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut counted, &mut magic).map_err(|e| corrupt(layer, &offset, None, e))?;
    let head = io::Cursor::new(magic[..got].to_vec()).chain(counted);
    let compression = match &magic[..got] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        [b'B', b'Z', b'h', ..] => return Err(unsupported(layer, "bzip2-compressed")),
        [0xfd, b'7', b'z', b'X'] => return Err(unsupported(layer, "xz-compressed")),
        _ => Compression::None,
    };
    let mut summary = LayerSummary {
        digest: layer.to_string(),
        compression,
        ..LayerSummary::default()
    };
    let meter = Rc::new(Meter::new(limits));
    let result = match compression {
        Compression::None => walk(head, &mut summary, &meter),
        Compression::Gzip => walk(
            flate2::read::MultiGzDecoder::new(head),
            &mut summary,
            &meter,
        ),
        Compression::Zstd => match zstd::stream::read::Decoder::new(head) {
            Ok(d) => walk(d, &mut summary, &meter),
            Err(e) => Err(WalkError::Io(e, None)),
        },
    };
    summary.tar_bytes = meter.read.get();
    finish(result, summary, &meter, &offset)
}

/// Like [`scan`], for a layer that can seek (a region of a file): an uncompressed tar's file
/// contents past the ELF prefix or `#!` line are seeked over instead of read. A compressed
/// layer is streamed as [`scan`] does.
pub fn scan_seekable<R: Read + Seek>(
    mut reader: R,
    layer: &str,
    limits: Limits,
) -> Result<LayerSummary, LayerError> {
    let mut magic = [0u8; 4];
    let at_start = read_up_to(&mut reader, &mut magic).and_then(|got| {
        reader.seek(SeekFrom::Start(0))?;
        Ok(got)
    });
    let got = at_start.map_err(|e| corrupt(layer, &Rc::new(Cell::new(0)), None, e))?;
    if is_compressed(&magic[..got]) {
        return scan(reader, layer, limits);
    }
    let mut summary = LayerSummary {
        digest: layer.to_string(),
        ..LayerSummary::default()
    };
    let meter = Rc::new(Meter::new(limits));
    let mut archive = tar::Archive::new(Metered {
        inner: reader,
        meter: meter.clone(),
    });
    let mut last = None;
    let result = match archive.entries_with_seek() {
        Ok(entries) => summarise(entries, &mut summary, &meter, &mut last, false),
        Err(e) => Err(WalkError::Io(e, None)),
    }
    .and_then(|()| drain(archive.into_inner(), last));
    summary.tar_bytes = meter.read.get();
    let position = Rc::new(Cell::new(meter.read.get()));
    finish(result, summary, &meter, &position)
}

fn is_compressed(magic: &[u8]) -> bool {
    matches!(
        magic,
        [0x1f, 0x8b, ..]
            | [0x28, 0xb5, 0x2f, 0xfd]
            | [b'B', b'Z', b'h', ..]
            | [0xfd, b'7', b'z', b'X']
    )
}

fn finish(
    result: Result<(), WalkError>,
    summary: LayerSummary,
    meter: &Meter,
    offset: &Rc<Cell<u64>>,
) -> Result<LayerSummary, LayerError> {
    let layer = summary.digest.as_str();
    let over = |what: String, after: Option<String>| LayerError::OverLimit {
        layer: layer.to_string(),
        what,
        after,
    };
    match result {
        Ok(()) => Ok(summary),
        Err(WalkError::Absurd { name, size }) => Err(LayerError::AbsurdSize {
            layer: layer.to_string(),
            name,
            size,
        }),
        Err(WalkError::TooManyEntries(after)) => Err(over(
            format!(
                "has more than {} entries, the limit (set {} to raise it)",
                meter.limits.entries,
                Limits::ENTRIES_VAR
            ),
            after,
        )),
        Err(WalkError::Io(e, after)) => match meter.hit.get() {
            Some(Hit::Bytes) => Err(over(
                format!(
                    "expands to more than {} bytes of tar, the limit (set {} to raise it)",
                    meter.limits.tar_bytes,
                    Limits::BYTES_VAR
                ),
                after,
            )),
            Some(Hit::Header) => Err(over(
                format!(
                    "has an entry whose extension headers (PAX records, GNU long names, sparse map) \
                     exceed {MAX_HEADER_BYTES} bytes; real ones take a few KiB"
                ),
                after,
            )),
            None => Err(corrupt(layer, offset, after, e)),
        },
    }
}

/// A failed walk: a read error after the named entry, an entry too large to be real, or
/// more entries than the limit.
enum WalkError {
    Io(io::Error, Option<String>),
    Absurd { name: String, size: u64 },
    TooManyEntries(Option<String>),
}

fn walk<R: Read>(
    reader: R,
    summary: &mut LayerSummary,
    meter: &Rc<Meter>,
) -> Result<(), WalkError> {
    let mut archive = tar::Archive::new(Metered {
        inner: reader,
        meter: meter.clone(),
    });
    let mut last: Option<String> = None;
    let entries = archive.entries().map_err(|e| WalkError::Io(e, None))?;
    summarise(entries, summary, meter, &mut last, true)?;
    drain(archive.into_inner(), last)
}

/// Summarises every entry into `summary`; `last` is the last entry seen (for errors). With
/// `drain_each`, what the summary does not need of an entry is read here, so that what the
/// tar reader reads while it looks for the next entry is that entry's headers alone.
fn summarise<R: Read>(
    mut entries: tar::Entries<'_, R>,
    summary: &mut LayerSummary,
    meter: &Meter,
    last: &mut Option<String>,
    drain_each: bool,
) -> Result<(), WalkError> {
    let mut buf = Vec::with_capacity(elf::PREFIX_LEN);
    let mut seen = 0u64;
    loop {
        meter.headers_begin();
        let next = entries.next();
        meter.headers_end();
        let Some(entry) = next else { break };
        let mut entry = entry.map_err(|e| WalkError::Io(e, last.clone()))?;
        seen += 1;
        if seen > meter.limits.entries {
            return Err(WalkError::TooManyEntries(last.clone()));
        }
        if let Some(e) = summarise_entry(&mut entry, summary, &mut buf, last)? {
            summary.entries.push(e);
        }
        if drain_each {
            io::copy(&mut entry, &mut io::sink()).map_err(|e| WalkError::Io(e, last.clone()))?;
        }
    }
    Ok(())
}

/// What one tar entry adds to the filesystem, if anything (unsafe entries are recorded in
/// `summary` instead; PAX global headers describe the archive, not a file).
fn summarise_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    summary: &mut LayerSummary,
    buf: &mut Vec<u8>,
    last: &mut Option<String>,
) -> Result<Option<Entry>, WalkError> {
    let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let size = entry.size();
    if size > MAX_ENTRY_SIZE {
        return Err(WalkError::Absurd { name, size });
    }
    let entry_type = entry.header().entry_type();
    if entry_type == EntryType::XGlobalHeader {
        return Ok(None);
    }
    let path = match normalize(&name) {
        Ok(p) => p,
        Err(reason) => {
            summary.unsafe_entries.push(UnsafeEntry { name, reason });
            return Ok(None);
        }
    };
    *last = Some(path.clone());
    if path == "/" {
        return Ok(None);
    }
    let kind = match classify(&path) {
        Some(kind) => kind,
        None => match entry_type {
            EntryType::Regular | EntryType::Continuous => {
                let mode = entry
                    .header()
                    .mode()
                    .map_err(|e| WalkError::Io(e, last.clone()))?;
                let content = if super::is_loader_config(&path) {
                    loader_config(entry, size, buf)
                } else if path == super::LOADER_CACHE {
                    loader_cache(entry, size, buf)
                } else {
                    sniff(entry, size, buf)
                }
                .map_err(|e| WalkError::Io(e, last.clone()))?;
                EntryKind::File(FileInfo {
                    size,
                    mode,
                    content,
                })
            }
            EntryType::Directory => EntryKind::Dir {
                mode: entry.header().mode().unwrap_or(0o755),
            },
            EntryType::Symlink => EntryKind::Symlink {
                target: link_name(entry),
            },
            EntryType::Link => match normalize(&link_name(entry)) {
                Ok(target) => EntryKind::Hardlink { target },
                Err(reason) => {
                    summary.unsafe_entries.push(UnsafeEntry {
                        name,
                        reason: format!("hard link target: {reason}"),
                    });
                    return Ok(None);
                }
            },
            EntryType::Char => EntryKind::Special("character device".into()),
            EntryType::Block => EntryKind::Special("block device".into()),
            EntryType::Fifo => EntryKind::Special("FIFO".into()),
            other => EntryKind::Special(format!("tar type {:?}", other.as_byte() as char)),
        },
    };
    let path = match kind {
        EntryKind::Whiteout => whited_out(&path),
        EntryKind::OpaqueDir => super::parent(&path).to_string(),
        _ => path,
    };
    Ok(Some(Entry { path, kind }))
}

/// Reads whatever follows the end-of-archive blocks so that a compressed stream's trailer
/// (gzip CRC and length, zstd checksum) is verified and a cut-off stream is noticed.
fn drain(mut rest: impl Read, last: Option<String>) -> Result<(), WalkError> {
    io::copy(&mut rest, &mut io::sink()).map_err(|e| WalkError::Io(e, last))?;
    Ok(())
}

/// Whiteout markers by name: `.wh..wh..opq` and `.wh.NAME`.
fn classify(path: &str) -> Option<EntryKind> {
    let name = super::file_name(path);
    if name == ".wh..wh..opq" {
        Some(EntryKind::OpaqueDir)
    } else if name.starts_with(".wh..wh.") {
        // aufs bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): not part of the filesystem.
        Some(EntryKind::Special("aufs metadata".into()))
    } else if name.starts_with(".wh.") {
        Some(EntryKind::Whiteout)
    } else {
        None
    }
}

fn whited_out(path: &str) -> String {
    let name = super::file_name(path).trim_start_matches(".wh.");
    super::join(super::parent(path), name)
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    entry
        .link_name_bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn unsupported(layer: &str, what: &str) -> LayerError {
    LayerError::Unsupported {
        layer: layer.to_string(),
        what: what.to_string(),
    }
}

fn corrupt(
    layer: &str,
    offset: &Rc<Cell<u64>>,
    after: Option<String>,
    source: io::Error,
) -> LayerError {
    LayerError::Corrupt {
        layer: layer.to_string(),
        offset: offset.get(),
        after,
        source,
    }
}

/// Counts the bytes read through it, for "where" in error messages.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}
