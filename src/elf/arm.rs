//! The ARM build attributes (`.ARM.attributes`, the "aeabi" section of the ARM ABI's
//! addenda): the architecture version (`Tag_CPU_arch`) and floating-point unit (`Tag_FP_arch`)
//! a 32-bit ARM file was built for. They live in a non-loaded section near the end of the
//! file, so they are read from the file's tail; where the section or the section header table
//! is not in the bytes read, nothing is known and nothing is guessed. Pure.

use super::Words;
use crate::platform::{Endian, EM_ARM};

/// How many bytes at the end of an ARM file are read for the attributes: the section header
/// table and `.ARM.attributes` of a stripped program are within its last kilobytes.
pub const TAIL_LEN: u64 = 256 * 1024;

const SHT_ARM_ATTRIBUTES: u32 = 0x7000_0003;
const TAG_FILE: u64 = 1;
const TAG_CPU_ARCH: u64 = 6;
const TAG_FP_ARCH: u64 = 10;

/// What a 32-bit ARM file's attributes say it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArmAttributes {
    /// `Tag_CPU_arch`, as the ABI numbers it (6 = ARMv6, 10 = ARMv7, 14 = ARMv8, …).
    pub cpu_arch: Option<u8>,
    /// `Tag_FP_arch` (2 = VFPv2, 3 = VFPv3, 4 = VFPv3-D16, …). Not a requirement by itself:
    /// glibc's static archive carries NEON routines it selects at run time, so a program
    /// that runs on any ARMv7 FPU can declare VFPv3 with NEON.
    pub fp_arch: Option<u8>,
}

impl ArmAttributes {
    /// The architecture version the CPU must implement: 4, 5, 6, 7, 8 or 9.
    pub fn arch_version(&self) -> Option<u8> {
        Some(match self.cpu_arch? {
            0..=2 => 4,
            3..=5 => 5,
            6..=9 | 11 | 12 => 6,
            10 | 13 => 7,
            14..=21 => 8,
            _ => 9,
        })
    }
}

/// Reads the attributes of the ARM file whose first bytes are `prefix` and whose bytes from
/// offset `tail_start` on are `tail` (the two may overlap or be the same slice).
pub fn read(prefix: &[u8], tail: &[u8], tail_start: u64) -> Option<ArmAttributes> {
    if prefix.get(4) != Some(&1) {
        return None; // ELF32 only: AArch64 files carry no such section
    }
    let endian = match prefix.get(5)? {
        1 => Endian::Little,
        2 => Endian::Big,
        _ => return None,
    };
    let r = Words { endian };
    if r.u16(prefix, 18)? != EM_ARM {
        return None;
    }
    let shoff = u64::from(r.u32(prefix, 32)?);
    let shentsize = u64::from(r.u16(prefix, 46)?);
    let shnum = u64::from(r.u16(prefix, 48)?);
    if shentsize < 40 || shnum == 0 {
        return None;
    }
    let at = |offset: u64, len: u64| -> Option<&[u8]> {
        let start = usize::try_from(offset.checked_sub(tail_start)?).ok()?;
        tail.get(start..start.checked_add(usize::try_from(len).ok()?)?)
    };
    let table = at(shoff, shnum.checked_mul(shentsize)?)?;
    for i in 0..shnum as usize {
        let base = i * shentsize as usize;
        if r.u32(table, base + 4)? != SHT_ARM_ATTRIBUTES {
            continue;
        }
        let offset = u64::from(r.u32(table, base + 16)?);
        let size = u64::from(r.u32(table, base + 20)?);
        return parse(at(offset, size)?, r);
    }
    None
}

/// Parses the section's contents: a format version `A`, then vendor subsections; only the
/// `aeabi` vendor's file-scope attributes are read.
fn parse(section: &[u8], r: Words) -> Option<ArmAttributes> {
    let (&version, mut rest) = section.split_first()?;
    if version != b'A' {
        return None;
    }
    let mut found = ArmAttributes {
        cpu_arch: None,
        fp_arch: None,
    };
    while rest.len() >= 4 {
        let len = r.u32(rest, 0)? as usize;
        let sub = rest.get(4..len)?;
        rest = &rest[len..];
        let nul = sub.iter().position(|b| *b == 0)?;
        if &sub[..nul] != b"aeabi" {
            continue;
        }
        let mut body = &sub[nul + 1..];
        while body.len() >= 5 {
            let tag = body[0];
            let size = r.u32(body, 1)? as usize;
            let attrs = body.get(5..size)?;
            body = &body[size..];
            if u64::from(tag) == TAG_FILE {
                file_attributes(attrs, &mut found)?;
            }
        }
    }
    (found.cpu_arch.is_some() || found.fp_arch.is_some()).then_some(found)
}

/// Reads tag/value pairs; the ABI says which tags carry strings (4, 5, 67; 32 carries a
/// number and a string; unknown tags above 32 carry a string when odd).
fn file_attributes(mut attrs: &[u8], found: &mut ArmAttributes) -> Option<()> {
    while !attrs.is_empty() {
        let tag = uleb(&mut attrs)?;
        match tag {
            4 | 5 | 67 => skip_string(&mut attrs)?,
            32 => {
                uleb(&mut attrs)?;
                skip_string(&mut attrs)?;
            }
            t if t > 32 && t % 2 == 1 => skip_string(&mut attrs)?,
            _ => {
                let value = uleb(&mut attrs)?;
                let small = u8::try_from(value).ok();
                match tag {
                    TAG_CPU_ARCH => found.cpu_arch = small,
                    TAG_FP_ARCH => found.fp_arch = small,
                    _ => {}
                }
            }
        }
    }
    Some(())
}

fn uleb(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn skip_string(bytes: &mut &[u8]) -> Option<()> {
    let nul = bytes.iter().position(|b| *b == 0)?;
    *bytes = &bytes[nul + 1..];
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An attributes section as GCC writes it: CPU name "7-A", Tag_CPU_arch v7, VFPv3-D16.
    fn section() -> Vec<u8> {
        let attrs: &[u8] = b"\x057-A\x00\x06\x0a\x07\x41\x08\x01\x0a\x04\x22\x01";
        let mut file = vec![TAG_FILE as u8];
        file.extend_from_slice(&(5 + attrs.len() as u32).to_le_bytes());
        file.extend_from_slice(attrs);
        let mut sub = Vec::new();
        sub.extend_from_slice(&(4 + 6 + file.len() as u32).to_le_bytes());
        sub.extend_from_slice(b"aeabi\0");
        sub.extend_from_slice(&file);
        let mut out = vec![b'A'];
        out.extend_from_slice(&sub);
        out
    }

    #[test]
    fn reads_cpu_and_fp_architecture() {
        let r = Words {
            endian: Endian::Little,
        };
        let a = parse(&section(), r).unwrap();
        assert_eq!((a.cpu_arch, a.fp_arch), (Some(10), Some(4)));
        assert_eq!(a.arch_version(), Some(7));
    }

    #[test]
    fn truncated_or_garbage_sections_are_unknown_never_a_panic() {
        let r = Words {
            endian: Endian::Little,
        };
        let whole = section();
        for cut in 0..whole.len() {
            let _ = parse(&whole[..cut], r);
        }
        let mut bad = whole.clone();
        bad[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&bad, r), None);
        assert_eq!(parse(b"B", r), None);
    }
}
