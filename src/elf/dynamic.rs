//! The dynamic section: what the dynamic loader reads of a program or library once it is
//! mapped. `DT_NEEDED`, `DT_SONAME`, `DT_RPATH`/`DT_RUNPATH` and the GNU symbol-version
//! tables (`.gnu.version_r` needs, `.gnu.version_d` definitions).
//!
//! Specifications followed: the System V gABI "Dynamic Section" (tags and `Elf32_Dyn` /
//! `Elf64_Dyn` layouts) and the Linux Standard Base Core "Symbol Versioning" chapter
//! (`Elf_Verneed`/`Elf_Vernaux`, `Elf_Verdef`/`Elf_Verdaux`, `VER_FLG_BASE`, `VER_FLG_WEAK`).
//! Tables hold virtual addresses; they are turned into file offsets through the `PT_LOAD`
//! segments, as the loader maps them.
//!
//! Pure and bounded: it reads only the bytes it is given ([`Known`]), and a table outside
//! them is "not known" (`None`), never guessed.

use goblin::elf::program_header::{ProgramHeader, PF_W, PT_DYNAMIC, PT_LOAD};
use goblin::elf::Elf;

use super::Words;
use crate::platform::{ElfClass, Endian};

const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;
const DT_VERDEF: u64 = 0x6fff_fffc;
const DT_VERDEFNUM: u64 = 0x6fff_fffd;
const DT_VERNEED: u64 = 0x6fff_fffe;
const DT_VERNEEDNUM: u64 = 0x6fff_ffff;
/// `vd_flags`: this definition names the file itself, not a version.
const VER_FLG_BASE: u16 = 1;
/// `vna_flags`: a missing version is not an error.
const VER_FLG_WEAK: u16 = 2;

/// At most this many `DT_NEEDED` entries, version needs or definitions are read per file;
/// real files have tens (glibc defines about forty versions).
const MAX_ITEMS: usize = 4096;
/// The largest dynamic segment read: real ones are a few hundred entries.
pub const MAX_DYNAMIC_LEN: u64 = 1 << 20;

/// What the dynamic loader reads of one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dynamic {
    /// `DT_NEEDED`, in order.
    pub needed: Vec<String>,
    pub soname: Option<String>,
    pub rpath: Option<String>,
    pub runpath: Option<String>,
    /// `.gnu.version_r`: for each needed file, the versions it must define (weak ones left
    /// out, as the loader does not fail on them). `None` when the table was not known.
    pub version_needs: Option<Vec<VersionNeed>>,
    /// `.gnu.version_d`: the versions this file defines. `None` without the table (the
    /// loader then checks nothing against this file) or when it was not known.
    pub version_defs: Option<Vec<String>>,
}

/// The versions one file requires of one library (`vn_file`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionNeed {
    pub file: String,
    pub versions: Vec<String>,
}

/// Where a file's segments lie: its dynamic segment, its first writable load segment (where
/// Go puts its build information), and how its addresses map to file offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The `PT_DYNAMIC` segment's file offset and size, for a dynamically linked file.
    pub dynamic: Option<(u64, u64)>,
    /// The file offset of the first `PT_LOAD` segment with `PF_W`.
    pub data: Option<u64>,
    class: ElfClass,
    endian: Endian,
    /// `PT_LOAD` segments: (virtual address, file offset, size in the file).
    loads: Vec<(u64, u64, u64)>,
}

/// The bytes of a file that were read: a head from offset 0 and later chunks, each with its
/// file offset.
#[derive(Clone, Copy, Debug)]
pub struct Known<'a> {
    pub head: &'a [u8],
    pub chunks: &'a [(u64, Vec<u8>)],
}

impl<'a> Known<'a> {
    /// The whole file, or a prefix of it.
    pub fn contiguous(bytes: &'a [u8]) -> Self {
        Known {
            head: bytes,
            chunks: &[],
        }
    }

    /// `len` bytes at `offset`, where one piece read holds them all.
    pub fn get(&self, offset: u64, len: u64) -> Option<&'a [u8]> {
        let end = offset.checked_add(len)?;
        if end <= self.head.len() as u64 {
            return self.head.get(offset as usize..end as usize);
        }
        self.chunks.iter().find_map(|(at, bytes)| {
            let from = usize::try_from(offset.checked_sub(*at)?).ok()?;
            bytes.get(from..from.checked_add(usize::try_from(len).ok()?)?)
        })
    }
}

/// The segments of a file whose first bytes are `prefix` (program headers included), `None`
/// when its headers are not in `prefix`.
pub fn locate(prefix: &[u8], file_size: u64) -> Option<Layout> {
    let header = Elf::parse_header(prefix).ok()?;
    let class = match header.e_ident[4] {
        1 => ElfClass::Elf32,
        2 => ElfClass::Elf64,
        _ => return None,
    };
    let endian = match header.e_ident[5] {
        1 => Endian::Little,
        2 => Endian::Big,
        _ => return None,
    };
    let ctx = super::goblin_ctx(class, endian);
    let count = usize::from(header.e_phnum);
    let end =
        (header.e_phoff as usize).checked_add(count.checked_mul(ProgramHeader::size(ctx))?)?;
    if end > prefix.len() || usize::from(header.e_phentsize) != ProgramHeader::size(ctx) {
        return None;
    }
    let headers = ProgramHeader::parse(prefix, header.e_phoff as usize, count, ctx).ok()?;
    let dynamic = headers
        .iter()
        .find(|h| h.p_type == PT_DYNAMIC)
        .map(|h| (h.p_offset, h.p_filesz))
        .filter(|(offset, size)| {
            offset
                .checked_add(*size)
                .is_some_and(|end| end <= file_size)
                && *size <= MAX_DYNAMIC_LEN
        });
    let data = headers
        .iter()
        .find(|h| h.p_type == PT_LOAD && h.p_flags & PF_W != 0 && h.p_offset < file_size)
        .map(|h| h.p_offset);
    Some(Layout {
        dynamic,
        data,
        class,
        endian,
        loads: headers
            .iter()
            .filter(|h| h.p_type == PT_LOAD)
            .map(|h| (h.p_vaddr, h.p_offset, h.p_filesz))
            .collect(),
    })
}

/// Reads the dynamic section of a file laid out as `layout` from the bytes `known`.
/// `None` without a dynamic segment (a static program), or when it or its string table is
/// not among the bytes known.
pub fn read(layout: &Layout, known: Known<'_>) -> Option<Dynamic> {
    let r = Words {
        endian: layout.endian,
    };
    let (offset, size) = layout.dynamic?;
    let entries = known.get(offset, size)?;
    let wide = layout.class == ElfClass::Elf64;
    let step = if wide { 16 } else { 8 };
    let word = |at: usize| -> Option<u64> {
        if wide {
            r.u64(entries, at)
        } else {
            r.u32(entries, at).map(u64::from)
        }
    };
    let mut tags: Vec<(u64, u64)> = Vec::new();
    let mut at = 0;
    while at + step <= entries.len() && tags.len() < MAX_ITEMS {
        let (tag, value) = (word(at)?, word(at + step / 2)?);
        if tag == DT_NULL {
            break;
        }
        tags.push((tag, value));
        at += step;
    }
    let first = |tag: u64| tags.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
    let strsz = first(DT_STRSZ)?;
    let strtab = known.get(layout.file_offset(first(DT_STRTAB)?, strsz)?, strsz)?;
    let string = |offset: u64| string_at(strtab, offset);
    let all = |tag: u64| tags.iter().filter(move |(t, _)| *t == tag).map(|(_, v)| *v);
    let table = |tag: u64, count_tag: u64| {
        let count = usize::try_from(first(count_tag)?).ok()?.min(MAX_ITEMS);
        let offset = layout.file_offset(first(tag)?, 1)?;
        Some((offset, count))
    };
    Some(Dynamic {
        needed: all(DT_NEEDED).filter_map(string).collect(),
        soname: first(DT_SONAME).and_then(string),
        rpath: first(DT_RPATH).and_then(string),
        runpath: first(DT_RUNPATH).and_then(string),
        version_needs: match first(DT_VERNEED) {
            None => Some(Vec::new()),
            Some(_) => table(DT_VERNEED, DT_VERNEEDNUM)
                .and_then(|(offset, count)| version_needs(known, offset, count, r, &string)),
        },
        version_defs: table(DT_VERDEF, DT_VERDEFNUM)
            .and_then(|(offset, count)| version_defs(known, offset, count, r, &string)),
    })
}

impl Layout {
    /// The file offset of `len` bytes at virtual address `vaddr`, through the `PT_LOAD`
    /// segment that maps them.
    fn file_offset(&self, vaddr: u64, len: u64) -> Option<u64> {
        self.loads.iter().find_map(|&(start, offset, size)| {
            let within = vaddr.checked_sub(start)?;
            (within.checked_add(len)? <= size).then(|| offset + within)
        })
    }
}

/// A NUL-terminated string of the string table (at most 4096 bytes, as `PATH_MAX`).
fn string_at(strtab: &[u8], offset: u64) -> Option<String> {
    let rest = strtab.get(usize::try_from(offset).ok()?..)?;
    let len = rest.iter().take(4096).position(|b| *b == 0)?;
    Some(String::from_utf8_lossy(&rest[..len]).into_owned())
}

/// `Elf_Verneed` records (16 bytes: version, count, file, aux, next), each with its
/// `Elf_Vernaux` records (16 bytes: hash, flags, other, name, next).
fn version_needs(
    known: Known<'_>,
    offset: u64,
    count: usize,
    r: Words,
    string: &dyn Fn(u64) -> Option<String>,
) -> Option<Vec<VersionNeed>> {
    let mut needs = Vec::new();
    let mut at = offset;
    for _ in 0..count {
        let rec = known.get(at, 16)?;
        let file = string(u64::from(r.u32(rec, 4)?))?;
        let mut versions = Vec::new();
        let mut aux = at.checked_add(u64::from(r.u32(rec, 8)?))?;
        for _ in 0..r.u16(rec, 2)?.min(MAX_ITEMS as u16) {
            let a = known.get(aux, 16)?;
            if r.u16(a, 4)? & VER_FLG_WEAK == 0 {
                versions.push(string(u64::from(r.u32(a, 8)?))?);
            }
            match r.u32(a, 12)? {
                0 => break,
                next => aux = aux.checked_add(u64::from(next))?,
            }
        }
        needs.push(VersionNeed { file, versions });
        match r.u32(rec, 12)? {
            0 => break,
            next => at = at.checked_add(u64::from(next))?,
        }
    }
    Some(needs)
}

/// `Elf_Verdef` records (20 bytes: version, flags, index, count, hash, aux, next); the first
/// `Elf_Verdaux` (name, next) of each names the version. The base entry names the file.
fn version_defs(
    known: Known<'_>,
    offset: u64,
    count: usize,
    r: Words,
    string: &dyn Fn(u64) -> Option<String>,
) -> Option<Vec<String>> {
    let mut defs = Vec::new();
    let mut at = offset;
    for _ in 0..count {
        let rec = known.get(at, 20)?;
        if r.u16(rec, 2)? & VER_FLG_BASE == 0 && r.u16(rec, 6)? > 0 {
            let aux = known.get(at.checked_add(u64::from(r.u32(rec, 12)?))?, 8)?;
            defs.push(string(u64::from(r.u32(aux, 0)?))?);
        }
        match r.u32(rec, 16)? {
            0 => break,
            next => at = at.checked_add(u64::from(next))?,
        }
    }
    Some(defs)
}

#[cfg(test)]
#[path = "dynamic_tests.rs"]
mod tests;
