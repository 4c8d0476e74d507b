//! glibc's `/etc/ld.so.cache`, as `ldconfig` writes it and `ld.so` reads it
//! (`sysdeps/generic/dl-cache.h`, `elf/dl-cache.c`): the new format ("glibc-ld.so.cache1.1":
//! a 48-byte header, 24-byte entries, strings at offsets from the header's start, a flags
//! byte giving the byte order), alone or after the old one ("ld.so-1.7.0": a 16-byte header,
//! 12-byte entries, strings at offsets from the entries' end), which is read when no new
//! part follows. Each entry maps a soname to the path of a library, with flags telling its
//! kind and ABI (`FLAG_ELF_LIBC6 | FLAG_X8664_LIB64` and so on,
//! `sysdeps/generic/ldconfig.h`), which [`accepts`] matches against the program's as
//! `_dl_cache_check_flags` does. Since glibc 2.33 `ldconfig` also lists the libraries of each
//! folder's `glibc-hwcaps/NAME/` subfolders: their entries have `DL_CACHE_HWCAP_EXTENSION`
//! (bit 62) in `hwcap` and in its low 32 bits an index into the names of the new format's
//! `cache_extension_tag_glibc_hwcaps` extension section (`sysdeps/generic/dl-cache.h`); the
//! loader takes such an entry only when the CPU supports that name (`search_cache`,
//! `elf/dl-cache.c`), which [`Entry::hwcaps`] gives.
//!
//! The file is untrusted: every offset is checked against its length, an entry count the
//! file cannot hold makes it ignored whole (as glibc does), at most [`MAX_ENTRIES`] entries
//! and strings of at most [`MAX_STRING`] bytes are read, and an entry that does not make
//! sense (no terminating NUL, not UTF-8, a relative path) is skipped. Pure.

use crate::platform::{ElfClass, ElfIdentity, Endian};

/// The most entries read (a full Debian desktop's cache has a few thousand).
pub const MAX_ENTRIES: usize = 1 << 16;
/// The longest soname or path read (`PATH_MAX`).
pub const MAX_STRING: usize = 4096;

const MAGIC_OLD: &[u8] = b"ld.so-1.7.0";
const MAGIC_NEW: &[u8] = b"glibc-ld.so.cache1.1";
const HEADER_OLD: usize = 16;
const ENTRY_OLD: usize = 12;
const HEADER_NEW: usize = 48;
const ENTRY_NEW: usize = 24;
/// `cache_extension_magic` (`(uint32_t) -358342284`), at the header's `extension_offset`.
const EXTENSION_MAGIC: u32 = 0xeaa4_2174;
/// `cache_extension_tag_glibc_hwcaps`: an array of string offsets, the hwcaps names.
const TAG_GLIBC_HWCAPS: u32 = 1;
/// The most extension sections and hwcaps names read (glibc writes 2 and 3 or 4).
const MAX_EXTENSION: usize = 64;
/// `DL_CACHE_HWCAP_EXTENSION >> 32`: the high half of `hwcap` of a glibc-hwcaps entry.
const HWCAP_EXTENSION_HIGH: u64 = 1 << 30;

/// `FLAG_ELF`: an ELF library of any libc, accepted by every loader.
const FLAG_ELF: i32 = 0x0001;
const FLAG_ELF_LIBC6: i32 = 0x0003;
const FLAG_TYPE_MASK: i32 = 0x00ff;

/// One library the cache lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub flags: i32,
    pub soname: String,
    pub path: String,
    /// Non-zero for a library of a `glibc-hwcaps` subfolder or a legacy hwcap folder, which
    /// the loader picks only on a CPU that has those capabilities.
    pub hwcap: u64,
    /// For a library of a `glibc-hwcaps` subfolder (`dl_cache_hwcap_extension`), the
    /// subfolder's name (`x86-64-v3`); empty when the file does not name it, an entry no
    /// loader takes.
    pub hwcaps: Option<String>,
}

/// The entries of a cache file, in the file's order; `endian` is the byte order assumed
/// where the file does not say (the old format, a new header with its flags unset). A file
/// that is neither format, or whose header lies about its size, gives none.
pub fn parse(bytes: &[u8], endian: Endian) -> Vec<Entry> {
    if bytes.starts_with(MAGIC_OLD) && bytes.len() >= HEADER_OLD {
        let count = read_u32(bytes, 12, endian).unwrap_or(u32::MAX) as usize;
        if (bytes.len() - HEADER_OLD) / ENTRY_OLD < count {
            return Vec::new();
        }
        let strings = HEADER_OLD + count * ENTRY_OLD;
        let new_at = strings.next_multiple_of(8);
        if bytes.len() >= new_at + HEADER_NEW && bytes[new_at..].starts_with(MAGIC_NEW) {
            return parse_new(&bytes[new_at..], endian);
        }
        let entries = (0..count.min(MAX_ENTRIES)).map(|i| HEADER_OLD + i * ENTRY_OLD);
        return read_entries(bytes, entries, strings, endian, false);
    }
    if bytes.starts_with(MAGIC_NEW) && bytes.len() >= HEADER_NEW {
        return parse_new(bytes, endian);
    }
    Vec::new()
}

/// The new format, `bytes` starting at its header.
fn parse_new(bytes: &[u8], endian: Endian) -> Vec<Entry> {
    // `CACHE_FILE_FLAGS_ENDIAN_*`: 0 unset, 1 invalid, 2 little, 3 big.
    let endian = match bytes[28] & 3 {
        0 => endian,
        2 => Endian::Little,
        3 => Endian::Big,
        _ => return Vec::new(),
    };
    let count = read_u32(bytes, 20, endian).unwrap_or(u32::MAX) as usize;
    if (bytes.len() - HEADER_NEW) / ENTRY_NEW < count {
        return Vec::new();
    }
    let entries = (0..count.min(MAX_ENTRIES)).map(|i| HEADER_NEW + i * ENTRY_NEW);
    let names = hwcaps_names(bytes, endian);
    let mut entries = read_entries(bytes, entries, 0, endian, true);
    for e in &mut entries {
        if e.hwcap >> 32 == HWCAP_EXTENSION_HIGH {
            let index = e.hwcap as u32 as usize;
            e.hwcaps = Some(names.get(index).cloned().unwrap_or_default());
        }
    }
    entries
}

/// The names of the `glibc-hwcaps` extension section, by index; none when the file has no
/// extension (`extension_offset` 0, before glibc 2.33) or it does not make sense.
fn hwcaps_names(bytes: &[u8], endian: Endian) -> Vec<String> {
    let names = || -> Option<Vec<String>> {
        let at = read_u32(bytes, 32, endian)? as usize;
        if at == 0 || read_u32(bytes, at, endian)? != EXTENSION_MAGIC {
            return None;
        }
        let count = read_u32(bytes, at + 4, endian)? as usize;
        let section = (0..count.min(MAX_EXTENSION))
            .map(|i| at + 8 + i * 16)
            .find(|&s| read_u32(bytes, s, endian) == Some(TAG_GLIBC_HWCAPS))?;
        let offset = read_u32(bytes, section + 8, endian)? as usize;
        let size = read_u32(bytes, section + 12, endian)? as usize;
        (0..(size / 4).min(MAX_EXTENSION))
            .map(|i| {
                let name = read_u32(bytes, offset.checked_add(i * 4)?, endian)? as usize;
                string(bytes, name)
            })
            .collect()
    };
    names().unwrap_or_default()
}

/// The entries at the given offsets (`flags`, `key`, `value`, and in the new format
/// `osversion`, `hwcap`), their strings at offsets from `strings`.
fn read_entries(
    bytes: &[u8],
    entries: impl Iterator<Item = usize>,
    strings: usize,
    endian: Endian,
    new: bool,
) -> Vec<Entry> {
    entries
        .filter_map(|at| {
            let flags = read_u32(bytes, at, endian)? as i32;
            let key = read_u32(bytes, at + 4, endian)? as usize;
            let value = read_u32(bytes, at + 8, endian)? as usize;
            let hwcap = if new {
                read_u64(bytes, at + 16, endian)?
            } else {
                0
            };
            let soname = string(bytes, strings.checked_add(key)?)?;
            let path = string(bytes, strings.checked_add(value)?)?;
            (!soname.is_empty() && !soname.contains('/') && path.starts_with('/')).then_some(
                Entry {
                    flags,
                    soname,
                    path,
                    hwcap,
                    hwcaps: None,
                },
            )
        })
        .collect()
}

/// The NUL-terminated UTF-8 string at `at`, if it ends within the file and [`MAX_STRING`].
fn string(bytes: &[u8], at: usize) -> Option<String> {
    let rest = bytes.get(at..)?;
    let rest = &rest[..rest.len().min(MAX_STRING + 1)];
    let end = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..end]).ok().map(str::to_string)
}

fn read_u32(bytes: &[u8], at: usize, endian: Endian) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(match endian {
        Endian::Little => u32::from_le_bytes(b),
        Endian::Big => u32::from_be_bytes(b),
    })
}

fn read_u64(bytes: &[u8], at: usize, endian: Endian) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(match endian {
        Endian::Little => u64::from_le_bytes(b),
        Endian::Big => u64::from_be_bytes(b),
    })
}

/// Whether the loader of programs of `identity` takes an entry with `flags`: glibc's
/// `_dl_cache_check_flags`, `flags == FLAG_ELF` or the platform's `_DL_CACHE_DEFAULT_ID`
/// (`FLAG_ELF_LIBC6` with the ABI flag of `sysdeps/generic/ldconfig.h`: `FLAG_X8664_LIB64`
/// 0x0300, `FLAG_AARCH64_LIB64` 0x0a00, ...). Both ARM float ABIs and both RISC-V ones are
/// taken (the file's own check follows); for a machine not listed any libc6 entry is.
pub fn accepts(flags: i32, identity: &ElfIdentity) -> bool {
    if flags == FLAG_ELF {
        return true;
    }
    if flags & FLAG_TYPE_MASK != FLAG_ELF_LIBC6 {
        return false;
    }
    let abi = flags & !FLAG_TYPE_MASK;
    let expected: &[i32] = match (identity.machine, identity.class) {
        (62, ElfClass::Elf64) => &[0x0300],          // FLAG_X8664_LIB64
        (62, ElfClass::Elf32) => &[0x0800],          // FLAG_X8664_LIBX32
        (3, _) => &[0],                              // i386: FLAG_ELF_LIBC6
        (183, ElfClass::Elf64) => &[0x0a00],         // FLAG_AARCH64_LIB64
        (40, _) => &[0x0900, 0x0b00],                // FLAG_ARM_LIBHF, FLAG_ARM_LIBSF
        (21, ElfClass::Elf64) => &[0x0500],          // FLAG_POWERPC_LIB64
        (20, _) => &[0],                             // powerpc
        (22, ElfClass::Elf64) => &[0x0400],          // FLAG_S390_LIB64
        (243, ElfClass::Elf64) => &[0x1000, 0x0f00], // FLAG_RISCV_FLOAT_ABI_DOUBLE, _SOFT
        _ => return true,
    };
    expected.contains(&abi)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with glibc 2.36's ldconfig (Debian 12) from a root holding two libraries built by
    // `gcc -shared -fPIC -nostdlib -Wl,-soname,NAME`, /opt/odd/lib/libodd.so.1.2.3 (soname
    // libodd.so.1) and /usr/lib/x86_64-linux-gnu/libeven.so.2, and an /etc/ld.so.conf listing
    // both folders: `ldconfig [-c compat|old] -C /etc/ld.so.cache -f /etc/ld.so.conf -r ROOT`.
    const NEW: &[u8] = include_bytes!("fixtures/ld.so.cache.new");
    const COMPAT: &[u8] = include_bytes!("fixtures/ld.so.cache.compat");
    const OLD: &[u8] = include_bytes!("fixtures/ld.so.cache.old");

    fn expected() -> Vec<Entry> {
        vec![
            Entry {
                flags: 0x0303,
                soname: "libodd.so.1".into(),
                path: "/opt/odd/lib/libodd.so.1".into(),
                hwcap: 0,
                hwcaps: None,
            },
            Entry {
                flags: 0x0303,
                soname: "libeven.so.2".into(),
                path: "/usr/lib/x86_64-linux-gnu/libeven.so.2".into(),
                hwcap: 0,
                hwcaps: None,
            },
        ]
    }

    #[test]
    fn the_formats_ldconfig_writes_are_read() {
        assert_eq!(parse(NEW, Endian::Little), expected());
        assert_eq!(parse(COMPAT, Endian::Little), expected());
        assert_eq!(parse(OLD, Endian::Little), expected());
        // The new format says its byte order itself.
        assert_eq!(parse(NEW, Endian::Big), expected());
    }

    // Made the same way (glibc 2.36, `ldconfig -C /etc/ld.so.cache -f /etc/ld.so.conf -r ROOT`)
    // from a root whose /etc/ld.so.conf lists /opt/hw, holding
    // /opt/hw/glibc-hwcaps/x86-64-v3/{libhw3.so.1,libboth.so.1},
    // /opt/hw/glibc-hwcaps/x86-64-v2/libhw2.so.1 and /opt/hw/libboth.so.1.
    const HWCAPS: &[u8] = include_bytes!("fixtures/ld.so.cache.hwcaps");

    #[test]
    fn glibc_hwcaps_entries_name_their_subfolder() {
        let entry = |soname: &str, path: &str, hwcaps: Option<&str>| Entry {
            flags: 0x0303,
            soname: soname.into(),
            path: path.into(),
            hwcap: hwcaps.map_or(0, |h| (1 << 62) | u64::from(h == "x86-64-v3")),
            hwcaps: hwcaps.map(String::from),
        };
        let v3 = "/opt/hw/glibc-hwcaps/x86-64-v3";
        assert_eq!(
            parse(HWCAPS, Endian::Little),
            vec![
                entry(
                    "libhw3.so.1",
                    &format!("{v3}/libhw3.so.1"),
                    Some("x86-64-v3")
                ),
                entry(
                    "libhw2.so.1",
                    "/opt/hw/glibc-hwcaps/x86-64-v2/libhw2.so.1",
                    Some("x86-64-v2")
                ),
                entry(
                    "libboth.so.1",
                    &format!("{v3}/libboth.so.1"),
                    Some("x86-64-v3")
                ),
                entry("libboth.so.1", "/opt/hw/libboth.so.1", None),
            ]
        );
        // An extension that is not one, or an index past its names: the entry names nothing.
        let mut bad = HWCAPS.to_vec();
        bad[0x13c] ^= 0xff;
        let entries = parse(&bad, Endian::Little);
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].hwcaps.as_deref(), Some(""));
        assert_eq!(entries[3].hwcaps, None);
        let mut past = HWCAPS.to_vec();
        past[HEADER_NEW + 16] = 7;
        assert_eq!(parse(&past, Endian::Little)[0].hwcaps.as_deref(), Some(""));
        for end in 0..HWCAPS.len() {
            parse(&HWCAPS[..end], Endian::Little);
        }
    }

    #[test]
    fn a_file_that_lies_or_ends_early_gives_what_it_can_and_never_panics() {
        assert_eq!(parse(b"", Endian::Little), vec![]);
        assert_eq!(parse(b"glibc-ld.so.cache1.1", Endian::Little), vec![]);
        // Cut anywhere: no panic; cut within the entries, nothing (the count lies).
        for end in 0..NEW.len() {
            let entries = parse(&NEW[..end], Endian::Little);
            assert!(entries.len() <= 2);
            if end < HEADER_NEW + 2 * ENTRY_NEW {
                assert_eq!(entries, vec![]);
            }
        }
        for end in 0..COMPAT.len() {
            parse(&COMPAT[..end], Endian::Little);
        }
        for end in 0..OLD.len() {
            parse(&OLD[..end], Endian::Little);
        }
        // A count larger than the file: ignored whole.
        let mut huge = NEW.to_vec();
        huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&huge, Endian::Little), vec![]);
        let mut huge = OLD.to_vec();
        huge[12..16].copy_from_slice(&0x4000_0000u32.to_le_bytes());
        assert_eq!(parse(&huge, Endian::Little), vec![]);
        // String offsets past the end, or into a string with no NUL: that entry skipped.
        let mut lying = NEW.to_vec();
        lying[HEADER_NEW + 4..HEADER_NEW + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&lying, Endian::Little), expected()[1..]);
        let mut unterminated = NEW.to_vec();
        let last = unterminated.len() as u32 - 1;
        unterminated[HEADER_NEW + 8..HEADER_NEW + 12].copy_from_slice(&last.to_le_bytes());
        *unterminated.last_mut().unwrap() = b'x';
        assert_eq!(parse(&unterminated, Endian::Little), expected()[1..]);
        // An invalid byte order flag: ignored whole.
        let mut invalid = NEW.to_vec();
        invalid[28] = 1;
        assert_eq!(parse(&invalid, Endian::Little), vec![]);
    }

    #[test]
    fn entries_are_taken_by_the_platforms_flags() {
        let id = |machine, class| ElfIdentity {
            machine,
            class,
            endian: Endian::Little,
            float_abi: None,
        };
        let amd64 = id(62, ElfClass::Elf64);
        assert!(accepts(0x0303, &amd64));
        assert!(accepts(0x0001, &amd64));
        assert!(!accepts(0x0003, &amd64)); // i386 libc6
        assert!(!accepts(0x0a03, &amd64));
        assert!(!accepts(0x0302, &amd64)); // libc5
        let arm64 = id(183, ElfClass::Elf64);
        assert!(accepts(0x0a03, &arm64));
        assert!(!accepts(0x0303, &arm64));
        assert!(accepts(0x0003, &id(3, ElfClass::Elf32)));
        assert!(accepts(0x0903, &id(40, ElfClass::Elf32)));
    }
}
