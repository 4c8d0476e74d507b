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
        }
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
        let phnum: u16 = if self.interp.is_some() { 2 } else { 1 };
        let interp = self.interp.as_deref().map(|s| {
            let mut b = s.as_bytes().to_vec();
            b.push(0);
            b
        });
        let interp_off = u64::from(ehsize) + u64::from(phnum) * u64::from(phentsize);
        let total = interp_off + interp.as_ref().map_or(0, |b| b.len() as u64);

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
            w.phdr(wide, 3, interp_off, bytes.len() as u64);
        }
        w.phdr(wide, 1, 0, total); // PT_LOAD covering the file
        if let Some(bytes) = &interp {
            w.out.extend_from_slice(bytes);
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
    fn phdr(&mut self, wide: bool, p_type: u32, offset: u64, size: u64) {
        self.u32(p_type);
        if wide {
            self.u32(4); // p_flags
            self.u64(offset);
            self.u64(0x1000 + offset);
            self.u64(0x1000 + offset);
            self.u64(size);
            self.u64(size);
            self.u64(1);
        } else {
            self.u32(offset as u32);
            self.u32(0x1000 + offset as u32);
            self.u32(0x1000 + offset as u32);
            self.u32(size as u32);
            self.u32(size as u32);
            self.u32(4); // p_flags
            self.u32(1);
        }
    }
}
