//! Reading what the kernel reads before it execs a file: the ELF identification, `e_machine`,
//! `e_flags` (the ARM float ABI), `e_type` and the program headers with `PT_INTERP`.
//!
//! Pure: `inspect` works on a bounded prefix of a file (the layer walker keeps the first
//! [`PREFIX_LEN`] bytes), never panics, and never calls a file it could not fully read
//! another architecture: a truncated header is `Malformed`, not a guess.

use goblin::container::{Container, Ctx};
use goblin::elf::program_header::{ProgramHeader, PT_INTERP, PT_LOAD};
use goblin::elf::Elf;

use crate::platform::{ElfClass, ElfIdentity, Endian, FloatAbi, EM_ARM, EM_X86_64};

pub mod arm;
pub mod dynamic;
#[doc(hidden)]
pub mod fixture;
pub mod go;
#[cfg(test)]
mod tests;

/// How many leading bytes of a file are kept for `inspect`: program headers and the
/// `PT_INTERP` string sit in the first page of every linker's output.
pub const PREFIX_LEN: usize = 64 * 1024;

/// The ELF magic, `\x7fELF`.
pub const MAGIC: &[u8; 4] = b"\x7fELF";

/// What a file's first bytes say about it as an ELF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfReport {
    /// It does not start with the ELF magic.
    NotElf,
    /// A readable ELF header (and program headers, where they lie within the prefix).
    Elf(ElfInfo),
    /// It starts with the ELF magic but cannot be read as ELF; the reason says why.
    Malformed(String),
}

/// The parts of an ELF file that decide whether and how it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    pub identity: ElfIdentity,
    pub kind: ElfKind,
    /// The `PT_INTERP` loader path of a dynamically linked program.
    pub interp: Option<String>,
    /// `PT_INTERP` exists but lies beyond the bytes given: the loader is not known.
    pub interp_beyond_prefix: bool,
    /// The x86-64 micro-architecture level (1 for the baseline, 2 to 4 for `x86-64-v2` to
    /// `-v4`) the program's `GNU_PROPERTY_X86_ISA_1_NEEDED` note asks for, where it has one
    /// within the bytes read (GCC and Clang write it with `-mneeded`, and distributions
    /// built for a higher level do).
    pub x86_level_needed: Option<u8>,
    /// A 32-bit ARM file's build attributes, where they were within the bytes read (the
    /// layer walker reads an ARM file's tail for them: [`arm::TAIL_LEN`]).
    pub arm: Option<arm::ArmAttributes>,
    /// The smallest `p_align` of its `PT_LOAD` segments: the largest page size a kernel can
    /// map the file with (`None` without load segments, or when the table was not read).
    pub load_align: Option<u64>,
    /// What the dynamic loader reads (`DT_NEEDED`, search paths, symbol versions), where
    /// the layer walker read the file that far ([`dynamic`]).
    pub dynamic: Option<Box<dynamic::Dynamic>>,
    /// A Go program's build information, where the layer walker read it ([`go`]).
    pub go: Option<Box<go::GoBuild>>,
}

/// `e_type`: what the file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfKind {
    /// `ET_EXEC`: a position-dependent program.
    Executable,
    /// `ET_DYN`: a shared object or a position-independent program.
    SharedObject,
    /// `ET_REL`: an object file.
    Relocatable,
    /// `ET_CORE`: a core dump.
    Core,
    /// Any other `e_type`.
    Other(u16),
}

impl ElfKind {
    /// Whether files of this kind are run or loaded (programs and shared objects).
    pub fn is_loadable(self) -> bool {
        matches!(self, ElfKind::Executable | ElfKind::SharedObject)
    }

    /// A short noun for messages.
    pub fn noun(self) -> &'static str {
        match self {
            ElfKind::Executable => "program",
            ElfKind::SharedObject => "shared object or PIE program",
            ElfKind::Relocatable => "object file",
            ElfKind::Core => "core dump",
            ElfKind::Other(_) => "ELF file",
        }
    }
}

/// Whether a file's first bytes are the ELF magic.
pub fn is_elf(prefix: &[u8]) -> bool {
    prefix.starts_with(MAGIC)
}

/// Inspects the first bytes of a file that is exactly as long as `prefix`.
pub fn inspect(prefix: &[u8]) -> ElfReport {
    inspect_prefix(prefix, prefix.len() as u64)
}

/// Inspects the first bytes of a file of `file_size` bytes (`prefix` may be shorter than the
/// file). Structures cut off by the end of the file make the report `Malformed`; structures
/// cut off only by the end of the prefix are reported as unknown.
pub fn inspect_prefix(prefix: &[u8], file_size: u64) -> ElfReport {
    if !is_elf(prefix) {
        return ElfReport::NotElf;
    }
    match read(prefix, file_size) {
        Ok(info) => ElfReport::Elf(info),
        Err(reason) => ElfReport::Malformed(reason),
    }
}

fn read(bytes: &[u8], file_size: u64) -> Result<ElfInfo, String> {
    let class = match bytes.get(4) {
        Some(1) => ElfClass::Elf32,
        Some(2) => ElfClass::Elf64,
        Some(c) => return Err(format!("unknown ELF class {c} (expected 1 or 2)")),
        None => return Err(truncated(bytes.len(), "the ELF identification")),
    };
    let endian = match bytes.get(5) {
        Some(1) => Endian::Little,
        Some(2) => Endian::Big,
        Some(d) => return Err(format!("unknown ELF byte order {d} (expected 1 or 2)")),
        None => return Err(truncated(bytes.len(), "the ELF identification")),
    };
    let header_len = match class {
        ElfClass::Elf32 => 52,
        ElfClass::Elf64 => 64,
    };
    if bytes.len() < header_len {
        return Err(truncated(bytes.len(), "the ELF header"));
    }
    let header = Elf::parse_header(bytes).map_err(|e| format!("unreadable ELF header: {e}"))?;
    let identity = ElfIdentity {
        machine: header.e_machine,
        class,
        endian,
        float_abi: float_abi(header.e_machine, header.e_flags),
    };
    let kind = match header.e_type {
        1 => ElfKind::Relocatable,
        2 => ElfKind::Executable,
        3 => ElfKind::SharedObject,
        4 => ElfKind::Core,
        other => ElfKind::Other(other),
    };
    let mut info = ElfInfo {
        identity,
        kind,
        interp: None,
        interp_beyond_prefix: false,
        x86_level_needed: None,
        arm: None,
        load_align: None,
        dynamic: None,
        go: None,
    };
    if header.e_machine == EM_ARM && bytes.len() as u64 == file_size {
        info.arm = arm::read(bytes, bytes, 0);
    }
    if header.e_phnum == 0 {
        return Ok(info);
    }
    let ctx = goblin_ctx(class, endian);
    let Some(headers) = program_headers(bytes, file_size, &header, ctx)? else {
        // Linkers put the table right after the header; a table beyond the prefix is
        // unusual but not wrong, and the loader is then simply unknown.
        info.interp_beyond_prefix = true;
        return Ok(info);
    };
    info.load_align = headers
        .iter()
        .filter(|h| h.p_type == PT_LOAD)
        .map(|h| h.p_align)
        .min();
    if header.e_machine == EM_X86_64 {
        info.x86_level_needed = x86_level_needed(bytes, &headers, class, endian);
    }
    if let Some(interp) = headers.iter().find(|h| h.p_type == PT_INTERP) {
        match read_interp(bytes, file_size, interp)? {
            Some(path) => info.interp = Some(path),
            None => info.interp_beyond_prefix = true,
        }
    }
    Ok(info)
}

/// goblin's parsing context for a file's class and byte order.
fn goblin_ctx(class: ElfClass, endian: Endian) -> Ctx {
    Ctx::new(
        match class {
            ElfClass::Elf32 => Container::Little,
            ElfClass::Elf64 => Container::Big,
        },
        match endian {
            Endian::Little => goblin::container::Endian::Little,
            Endian::Big => goblin::container::Endian::Big,
        },
    )
}

/// The program header table, checked against the file's size; `None` when it lies beyond
/// the bytes read.
fn program_headers(
    bytes: &[u8],
    file_size: u64,
    header: &goblin::elf::Header,
    ctx: Ctx,
) -> Result<Option<Vec<ProgramHeader>>, String> {
    let entry_len = ProgramHeader::size(ctx);
    if usize::from(header.e_phentsize) != entry_len {
        return Err(format!(
            "program header entries are {} bytes, expected {entry_len}",
            header.e_phentsize
        ));
    }
    let table_end = header
        .e_phoff
        .checked_add(u64::from(header.e_phnum) * entry_len as u64)
        .ok_or("program header table offset overflows")?;
    if table_end > file_size {
        return Err(format!(
            "program header table ends at byte {table_end}, past the end of the {file_size}-byte file"
        ));
    }
    if table_end > bytes.len() as u64 {
        return Ok(None);
    }
    ProgramHeader::parse(
        bytes,
        header.e_phoff as usize,
        usize::from(header.e_phnum),
        ctx,
    )
    .map(Some)
    .map_err(|e| format!("unreadable program headers: {e}"))
}

/// The loader `PT_INTERP` names; `None` when it lies beyond the bytes read.
fn read_interp(
    bytes: &[u8],
    file_size: u64,
    interp: &ProgramHeader,
) -> Result<Option<String>, String> {
    let end = interp
        .p_offset
        .checked_add(interp.p_filesz)
        .ok_or("PT_INTERP offset overflows")?;
    if end > file_size {
        return Err(format!(
            "PT_INTERP ends at byte {end}, past the end of the {file_size}-byte file"
        ));
    }
    if end > bytes.len() as u64 {
        return Ok(None);
    }
    let raw = &bytes[interp.p_offset as usize..end as usize];
    let raw = raw.split(|b| *b == 0).next().unwrap_or_default();
    if raw.is_empty() {
        return Err("PT_INTERP is empty".into());
    }
    Ok(Some(String::from_utf8_lossy(raw).into_owned()))
}

const PT_NOTE: u32 = 4;
const PT_GNU_PROPERTY: u32 = 0x6474_e553;
const NT_GNU_PROPERTY_TYPE_0: u32 = 5;
const GNU_PROPERTY_X86_ISA_1_NEEDED: u32 = 0xc000_8002;

/// The level the `GNU_PROPERTY_X86_ISA_1_NEEDED` property asks for: the highest of its bits
/// (baseline, v2, v3, v4). The property note is read from `PT_GNU_PROPERTY`, or from the
/// `PT_NOTE` segments of files linked before that segment existed; notes beyond the bytes
/// read are not known (`None`), never guessed.
fn x86_level_needed(
    bytes: &[u8],
    headers: &[ProgramHeader],
    class: ElfClass,
    endian: Endian,
) -> Option<u8> {
    let segments = headers
        .iter()
        .filter(|h| h.p_type == PT_GNU_PROPERTY)
        .chain(headers.iter().filter(|h| h.p_type == PT_NOTE));
    for h in segments {
        let start = usize::try_from(h.p_offset).ok()?;
        let Some(segment) = usize::try_from(h.p_filesz)
            .ok()
            .and_then(|len| bytes.get(start..start.checked_add(len)?))
        else {
            continue;
        };
        let align = if h.p_align >= 8 { 8 } else { 4 };
        if let Some(mask) = isa_needed(segment, align, class, endian) {
            return (0..4u8)
                .rev()
                .find(|bit| mask & (1 << bit) != 0)
                .map(|bit| bit + 1);
        }
    }
    None
}

/// The `GNU_PROPERTY_X86_ISA_1_NEEDED` bit mask of the notes in `segment`.
fn isa_needed(segment: &[u8], align: usize, class: ElfClass, endian: Endian) -> Option<u32> {
    let r = Words { endian };
    let word = |b: &[u8], at: usize| r.u32(b, at);
    let up = |n: usize, to: usize| n.checked_add(to - 1).map(|n| n / to * to);
    let property_align = if class == ElfClass::Elf64 { 8 } else { 4 };
    let mut at = 0usize;
    while at.checked_add(12)? <= segment.len() {
        let namesz = word(segment, at)? as usize;
        let descsz = word(segment, at + 4)? as usize;
        let kind = word(segment, at + 8)?;
        let name_at = at + 12;
        let desc_at = up(name_at.checked_add(namesz)?, align)?;
        let next = up(desc_at.checked_add(descsz)?, align)?;
        let name = segment.get(name_at..name_at + namesz)?;
        if kind == NT_GNU_PROPERTY_TYPE_0 && name == b"GNU\0" {
            let desc = segment.get(desc_at..desc_at + descsz)?;
            let mut p = 0usize;
            while p.checked_add(8)? <= desc.len() {
                let pr_type = word(desc, p)?;
                let datasz = word(desc, p + 4)? as usize;
                if pr_type == GNU_PROPERTY_X86_ISA_1_NEEDED && datasz == 4 {
                    return word(desc, p + 8);
                }
                p = up(p.checked_add(8)?.checked_add(datasz)?, property_align)?;
            }
        }
        if next <= at {
            return None;
        }
        at = next;
    }
    None
}

/// The float ABI an ARM EABI (version 5 and later) file declares in `e_flags`.
fn float_abi(machine: u16, flags: u32) -> Option<FloatAbi> {
    const EF_ARM_EABIMASK: u32 = 0xff00_0000;
    const EF_ARM_ABI_FLOAT_SOFT: u32 = 0x200;
    const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;
    if machine != EM_ARM || (flags & EF_ARM_EABIMASK) >> 24 < 5 {
        return None;
    }
    if flags & EF_ARM_ABI_FLOAT_HARD != 0 {
        Some(FloatAbi::Hard)
    } else if flags & EF_ARM_ABI_FLOAT_SOFT != 0 {
        Some(FloatAbi::Soft)
    } else {
        None
    }
}

/// Reads 16-, 32- and 64-bit words of the file's byte order at an offset, `None` past the end.
#[derive(Clone, Copy)]
struct Words {
    endian: Endian,
}

impl Words {
    fn u16(&self, b: &[u8], at: usize) -> Option<u16> {
        let raw: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u16::from_le_bytes(raw),
            Endian::Big => u16::from_be_bytes(raw),
        })
    }

    fn u32(&self, b: &[u8], at: usize) -> Option<u32> {
        let raw: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u32::from_le_bytes(raw),
            Endian::Big => u32::from_be_bytes(raw),
        })
    }

    fn u64(&self, b: &[u8], at: usize) -> Option<u64> {
        let raw: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u64::from_le_bytes(raw),
            Endian::Big => u64::from_be_bytes(raw),
        })
    }
}

fn truncated(len: usize, what: &str) -> String {
    format!("truncated: {len} bytes end inside {what}")
}
