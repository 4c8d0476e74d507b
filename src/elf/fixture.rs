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
    /// A `PT_DYNAMIC` segment with these entries and version tables.
    pub dynamic: Option<DynSpec>,
}

/// The dynamic section a fixture declares.
#[derive(Clone, Debug, Default)]
pub struct DynSpec {
    pub needed: Vec<String>,
    pub soname: Option<String>,
    pub rpath: Option<String>,
    pub runpath: Option<String>,
    /// `.gnu.version_r`: per library file, its versions and whether each is weak.
    pub version_needs: Vec<(String, Vec<(String, bool)>)>,
    /// `.gnu.version_d`: the versions defined (a base entry naming the file is added).
    pub version_defs: Vec<String>,
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
            dynamic: None,
        }
    }

    /// The same file with a dynamic section.
    pub fn with_dynamic(mut self, dynamic: DynSpec) -> Self {
        self.dynamic = Some(dynamic);
        self
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
        let phnum: u16 = 1
            + u16::from(self.interp.is_some())
            + u16::from(self.isa_needed.is_some())
            + u16::from(self.dynamic.is_some());
        let interp = self.interp.as_deref().map(|s| {
            let mut b = s.as_bytes().to_vec();
            b.push(0);
            b
        });
        let interp_off = u64::from(ehsize) + u64::from(phnum) * u64::from(phentsize);
        let interp_end = interp_off + interp.as_ref().map_or(0, |b| b.len() as u64);
        let note_off = interp_end.next_multiple_of(8);
        let note = self.isa_needed.map(|mask| self.property_note(mask));
        let notes_end = match &note {
            Some(n) => note_off + n.len() as u64,
            None => interp_end,
        };
        let dyn_off = notes_end.next_multiple_of(8);
        let dynamic = self.dynamic.as_ref().map(|d| self.dynamic_blob(d, dyn_off));
        let total = match &dynamic {
            Some((blob, _)) => dyn_off + blob.len() as u64,
            None => notes_end,
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
        if let Some((blob, entries_at)) = &dynamic {
            let at = dyn_off + *entries_at as u64;
            w.phdr(wide, 2, at, blob.len() as u64 - *entries_at as u64, 8); // PT_DYNAMIC
        }
        w.phdr(wide, 1, 0, total, 0x10000); // PT_LOAD covering the file, 64 KiB aligned
        if let Some(bytes) = &interp {
            w.out.extend_from_slice(bytes);
        }
        if let Some(n) = &note {
            w.out.resize(note_off as usize, 0);
            w.out.extend_from_slice(n);
        }
        if let Some((blob, _)) = &dynamic {
            w.out.resize(dyn_off as usize, 0);
            w.out.extend_from_slice(blob);
        }
        w.out
    }

    /// The string table, version tables and dynamic array, laid out from file offset `at`
    /// (virtual address `0x1000 + at`); returns them and where the array starts in them.
    fn dynamic_blob(&self, d: &DynSpec, at: u64) -> (Vec<u8>, usize) {
        let wide = self.class == ElfClass::Elf64;
        let mut strtab = vec![0u8];
        let mut add = |s: &str| {
            let o = strtab.len() as u64;
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
            o
        };
        let needed: Vec<u64> = d.needed.iter().map(|n| add(n)).collect();
        let [soname, rpath, runpath] =
            [&d.soname, &d.rpath, &d.runpath].map(|s| s.as_deref().map(&mut add));
        let base = add(d.soname.as_deref().unwrap_or("fixture.so"));
        let needs: Vec<(u64, Vec<(u64, bool)>)> = d
            .version_needs
            .iter()
            .map(|(file, vs)| {
                (
                    add(file),
                    vs.iter().map(|(v, weak)| (add(v), *weak)).collect(),
                )
            })
            .collect();
        let defs: Vec<u64> = d.version_defs.iter().map(|v| add(v)).collect();
        let mut w = Writer {
            out: strtab,
            endian: self.endian,
        };
        let strsz = w.out.len() as u64;
        w.out.resize(w.out.len().next_multiple_of(8), 0);
        let verneed_at = w.out.len() as u64;
        for (i, (file, versions)) in needs.iter().enumerate() {
            let last = i + 1 == needs.len();
            w.u16(1);
            w.u16(versions.len() as u16);
            w.u32(*file as u32);
            w.u32(16);
            w.u32(if last {
                0
            } else {
                16 + 16 * versions.len() as u32
            });
            for (j, (name, weak)) in versions.iter().enumerate() {
                w.u32(0);
                w.u16(if *weak { 2 } else { 0 });
                w.u16(0);
                w.u32(*name as u32);
                w.u32(if j + 1 == versions.len() { 0 } else { 16 });
            }
        }
        let verdef_at = w.out.len() as u64;
        let names: Vec<(u64, u16)> = std::iter::once((base, 1))
            .chain(defs.iter().map(|d| (*d, 0)))
            .collect();
        for (i, (name, flags)) in names.iter().enumerate() {
            w.u16(1);
            w.u16(*flags);
            w.u16(i as u16 + 1);
            w.u16(1);
            w.u32(0);
            w.u32(20);
            w.u32(if i + 1 == names.len() { 0 } else { 28 });
            w.u32(*name as u32);
            w.u32(0);
        }
        w.out.resize(w.out.len().next_multiple_of(8), 0);
        let entries_at = w.out.len();
        let addr = |o: u64| 0x1000 + at + o;
        let mut tags: Vec<(u64, u64)> = needed.iter().map(|n| (1, *n)).collect();
        tags.extend(
            [(14, soname), (15, rpath), (29, runpath)]
                .iter()
                .filter_map(|(t, v)| Some((*t, (*v)?))),
        );
        tags.extend([(5, addr(0)), (10, strsz)]);
        if !needs.is_empty() {
            tags.extend([
                (0x6fff_fffe, addr(verneed_at)),
                (0x6fff_ffff, needs.len() as u64),
            ]);
        }
        if !defs.is_empty() {
            tags.extend([
                (0x6fff_fffc, addr(verdef_at)),
                (0x6fff_fffd, names.len() as u64),
            ]);
        }
        tags.push((0, 0));
        for (tag, value) in tags {
            w.addr(wide, tag);
            w.addr(wide, value);
        }
        (w.out, entries_at)
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
