//! What a regular file's bytes say, read forward from a tar entry: the ELF reader's prefix
//! and, for loadable ELF files, the ranges beyond it (dynamic section, Go build information,
//! ARM attributes) in one pass; a `#!` line; a loader configuration file's text; the loader
//! cache's bytes.

use std::io::{self, Read};

use super::{parse_shebang, Content, LOADER_CACHE_LEN, LOADER_CONFIG_LEN};
use crate::elf;
use crate::platform::EM_ARM;

/// Linux reads at most this much of a `#!` line (`BINPRM_BUF_SIZE`).
const SHEBANG_LEN: u64 = 256;
/// How much of an ELF file's head is kept for its dynamic section's tables: they end within
/// the first 12 MB even in the largest Debian programs (dockerd, node, libLLVM).
const DYNAMIC_HEAD_LEN: u64 = 16 << 20;

/// Reads as much of a regular file as the ELF reader or the `#!` parser needs.
pub(super) fn sniff(entry: &mut impl Read, size: u64, buf: &mut Vec<u8>) -> io::Result<Content> {
    buf.clear();
    if buf.capacity() > 4 * elf::PREFIX_LEN {
        buf.shrink_to(elf::PREFIX_LEN);
    }
    entry.take(4.min(size)).read_to_end(buf)?;
    if elf::is_elf(buf) {
        let want = (elf::PREFIX_LEN as u64).min(size) - buf.len() as u64;
        entry.take(want).read_to_end(buf)?;
        let mut report = elf::inspect_prefix(buf, size);
        if let elf::ElfReport::Elf(info) = &mut report {
            if info.kind.is_loadable() {
                read_beyond_prefix(entry, size, buf, info)?;
            }
        }
        return Ok(Content::Elf(report));
    }
    if buf.starts_with(b"#!") {
        let want = SHEBANG_LEN.min(size) - buf.len() as u64;
        entry.take(want).read_to_end(buf)?;
        return Ok(parse_shebang(buf).map_or(Content::Other, Content::Script));
    }
    Ok(Content::Other)
}

/// A loader configuration file's text.
pub(super) fn loader_config(
    entry: &mut impl Read,
    size: u64,
    buf: &mut Vec<u8>,
) -> io::Result<Content> {
    buf.clear();
    entry.take(size.min(LOADER_CONFIG_LEN)).read_to_end(buf)?;
    Ok(Content::LoaderConfig(
        String::from_utf8_lossy(buf).into_owned(),
    ))
}

/// The loader cache's bytes, up to [`LOADER_CACHE_LEN`].
pub(super) fn loader_cache(
    entry: &mut impl Read,
    size: u64,
    buf: &mut Vec<u8>,
) -> io::Result<Content> {
    buf.clear();
    entry.take(size.min(LOADER_CACHE_LEN)).read_to_end(buf)?;
    Ok(Content::LoaderCache(buf.clone()))
}

/// Reads the parts of a loadable ELF file (whose first `buf` bytes were read) beyond the
/// prefix, in one forward pass, and fills in what they say:
/// - its dynamic section ([`elf::dynamic`]): the string and version tables lie before the
///   dynamic segment in every linker's output, so the head is kept up to the segment's end
///   (at most [`DYNAMIC_HEAD_LEN`]) and the segment itself wherever it lies;
/// - the first [`elf::go::WINDOW`] bytes of its first writable segment, for Go's build
///   information;
/// - a 32-bit ARM file's last [`elf::arm::TAIL_LEN`] bytes, for its build attributes.
fn read_beyond_prefix(
    entry: &mut impl Read,
    size: u64,
    buf: &mut Vec<u8>,
    info: &mut elf::ElfInfo,
) -> io::Result<()> {
    let Some(layout) = elf::dynamic::locate(buf, size) else {
        return Ok(());
    };
    let mut wanted = Vec::new();
    if let Some((offset, len)) = layout.dynamic {
        wanted.push((0, (offset + len).min(DYNAMIC_HEAD_LEN)));
        wanted.push((offset, offset + len));
    }
    if let Some(data) = layout.data {
        wanted.push((data, data.saturating_add(elf::go::WINDOW)));
    }
    let arm_tail = size.saturating_sub(elf::arm::TAIL_LEN);
    let arm = info.identity.machine == EM_ARM && info.arm.is_none();
    if arm {
        wanted.push((arm_tail, size));
    }
    let chunks = read_ranges(entry, size, buf, wanted)?;
    let known = elf::dynamic::Known {
        head: buf,
        chunks: &chunks,
    };
    info.dynamic = elf::dynamic::read(&layout, known).map(Box::new);
    info.go = layout
        .data
        .and_then(|data| known.get(data, elf::go::WINDOW.min(size - data)))
        .and_then(elf::go::read)
        .map(Box::new);
    if arm {
        info.arm = match known.get(arm_tail, size - arm_tail) {
            Some(tail) => elf::arm::read(buf, tail, arm_tail),
            None => None,
        };
    }
    Ok(())
}

/// Reads the byte ranges `wanted` (start, end; in any order, overlapping or not) of a file
/// whose first `head.len()` bytes were read, forward only: a range that continues the head
/// extends it (up to [`DYNAMIC_HEAD_LEN`]), the others become chunks, adjacent ones joined,
/// so that any wanted range lies whole in the head or in one chunk.
fn read_ranges(
    entry: &mut impl Read,
    size: u64,
    head: &mut Vec<u8>,
    mut wanted: Vec<(u64, u64)>,
) -> io::Result<Vec<(u64, Vec<u8>)>> {
    wanted.sort_unstable();
    let mut chunks: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut pos = head.len() as u64;
    for (start, end) in wanted {
        let end = end.min(size);
        if end <= pos {
            continue;
        }
        let start = start.max(pos);
        io::copy(&mut entry.take(start - pos), &mut io::sink())?;
        if chunks.is_empty() && start == head.len() as u64 && end <= DYNAMIC_HEAD_LEN {
            entry.take(end - start).read_to_end(head)?;
        } else {
            match chunks.last_mut() {
                Some((at, bytes)) if *at + bytes.len() as u64 == start => {
                    entry.take(end - start).read_to_end(bytes)?;
                }
                _ => {
                    let mut bytes = Vec::new();
                    entry.take(end - start).read_to_end(&mut bytes)?;
                    chunks.push((start, bytes));
                }
            }
        }
        pos = end;
    }
    Ok(chunks)
}
