//! A tiny ELF writer for tests and fuzz seeds: a valid ELF header, a program header table
//! and optionally a `PT_INTERP` segment, in either class and byte order. The files do not
//! run; they carry exactly what `elf::inspect` and the kernel's first checks read.

use crate::platform::{ElfClass, Endian};

/// What the written file should declare.
#[derive(Clone, Debug)]
pub struct ElfSpec {
    pub machine: u16,
    pub class: ElfClass,
    pub endian: Endian,
    pub flags: u32,
    /// `e_type`: 2 executable, 3 shared object.
    pub e_type: u16,
    pub interp: Option<String>,
    /// A `GNU_PROPERTY_X86_ISA_1_NEEDED` bit mask, written as a `PT_GNU_PROPERTY` note.
    pub isa_needed: Option<u32>,
}

impl ElfSpec {
    /// A static executable for a machine, class and byte order.
    pub fn new(machine: u16, class: ElfClass, endian: Endian) -> Self {
        ElfSpec {
            machine,
            class,
            endian,
            flags: 0,
            e_type: 2,
            interp: None,
            isa_needed: None,
        }
    }

    /// The same file with an x86 ISA "needed" property (bit 0 baseline … bit 3 v4).
    pub fn with_isa_needed(mut self, mask: u32) -> Self {
        self.isa_needed = Some(mask);
        self
    }

    /// The same file, dynamically linked against `loader`.
    pub fn with_interp(mut self, loader: &str) -> Self {
        self.interp = Some(loader.to_string());
        self
    }

    /// The same file with these `e_flags`.
    pub fn with_flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }

    /// The file's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut w = Writer {
            out: Vec::new(),
            endian: self.endian,
        };
        let wide = self.class == ElfClass::Elf64;
        let (ehsize, phentsize) = if wide { (64u16, 56u16) } else { (52, 32) };
        let phnum: u16 =
            1 + u16::from(self.interp.is_some()) + u16::from(self.isa_needed.is_some());
        let interp = self.interp.as_deref().map(|s| {
            let mut b = s.as_bytes().to_vec();
            b.push(0);
            b
        });
        let interp_off = u64::from(ehsize) + u64::from(phnum) * u64::from(phentsize);
        let interp_end = interp_off + interp.as_ref().map_or(0, |b| b.len() as u64);
        let note_off = interp_end.next_multiple_of(8);
        let note = self.isa_needed.map(|mask| self.property_note(mask));
        let total = match &note {
            Some(n) => note_off + n.len() as u64,
            None => interp_end,
        };

        w.out.extend_from_slice(super::MAGIC);
        w.out.push(if wide { 2 } else { 1 });
        w.out
            .push(if self.endian == Endian::Little { 1 } else { 2 });
        w.out.push(1); // EI_VERSION
        w.out.extend_from_slice(&[0; 9]);
        w.u16(self.e_type);
        w.u16(self.machine);
        w.u32(1);
        w.addr(wide, 0x1000); // e_entry
        w.addr(wide, u64::from(ehsize)); // e_phoff
        w.addr(wide, 0); // e_shoff
        w.u32(self.flags);
        w.u16(ehsize);
        w.u16(phentsize);
        w.u16(phnum);
        w.u16(if wide { 64 } else { 40 });
        w.u16(0);
        w.u16(0);
        if let Some(bytes) = &interp {
            w.phdr(wide, 3, interp_off, bytes.len() as u64, 1);
        }
        if let Some(n) = &note {
            w.phdr(wide, 0x6474_e553, note_off, n.len() as u64, 8); // PT_GNU_PROPERTY
        }
        w.phdr(wide, 1, 0, total, 0x10000); // PT_LOAD covering the file, 64 KiB aligned
        if let Some(bytes) = &interp {
            w.out.extend_from_slice(bytes);
        }
        if let Some(n) = &note {
            w.out.resize(note_off as usize, 0);
            w.out.extend_from_slice(n);
        }
        w.out
    }

    /// An `NT_GNU_PROPERTY_TYPE_0` note holding one `GNU_PROPERTY_X86_ISA_1_NEEDED` property.
    fn property_note(&self, mask: u32) -> Vec<u8> {
        let wide = self.class == ElfClass::Elf64;
        let mut w = Writer {
            out: Vec::new(),
            endian: self.endian,
        };
        let descsz = if wide { 16 } else { 12 };
        w.u32(4);
        w.u32(descsz);
        w.u32(5);
        w.out.extend_from_slice(b"GNU\0");
        w.u32(0xc000_8002);
        w.u32(4);
        w.u32(mask);
        if wide {
            w.u32(0);
        }
        w.out
    }
}

struct Writer {
    out: Vec<u8>,
    endian: Endian,
}

impl Writer {
    fn u16(&mut self, v: u16) {
        match self.endian {
            Endian::Little => self.out.extend_from_slice(&v.to_le_bytes()),
            Endian::Big => self.out.extend_from_slice(&v.to_be_bytes()),
        }
    }
    fn u32(&mut self, v: u32) {
        match self.endian {
            Endian::Little => self.out.extend_from_slice(&v.to_le_bytes()),
            Endian::Big => self.out.extend_from_slice(&v.to_be_bytes()),
        }
    }
    fn u64(&mut self, v: u64) {
        match self.endian {
            Endian::Little => self.out.extend_from_slice(&v.to_le_bytes()),
            Endian::Big => self.out.extend_from_slice(&v.to_be_bytes()),
        }
    }
    fn addr(&mut self, wide: bool, v: u64) {
        if wide {
            self.u64(v)
        } else {
            self.u32(v as u32)
        }
    }
    /// A program header: the 64-bit layout moves `p_flags` up front.
    fn phdr(&mut self, wide: bool, p_type: u32, offset: u64, size: u64, align: u64) {
        self.u32(p_type);
        if wide {
            self.u32(4); // p_flags
            self.u64(offset);
            self.u64(0x1000 + offset);
            self.u64(0x1000 + offset);
            self.u64(size);
            self.u64(size);
            self.u64(align);
        } else {
            self.u32(offset as u32);
            self.u32(0x1000 + offset as u32);
            self.u32(0x1000 + offset as u32);
            self.u32(size as u32);
            self.u32(size as u32);
            self.u32(4); // p_flags
            self.u32(align as u32);
        }
    }
}
