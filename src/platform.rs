//! Platforms (`os/arch[/variant]`): parsing, normalisation and matching the way containerd
//! does it, and the ELF identity that a platform's programs must carry.
//!
//! Everything here is pure: no I/O, no async. The table of architectures is the single place
//! that knows which `e_machine`, class and byte order belong to which Go/OCI architecture name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An OCI platform, normalised: `os` and `architecture` as Go names (`linux`, `arm64`),
/// `variant` only where it is meaningful (`arm/v7`, `amd64/v3`), never the default one of
/// `arm64` (`v8`) or `amd64` (`v1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// Why a platform string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    #[error("empty platform; expected os/arch[/variant], e.g. \"linux/arm64\"")]
    Empty,
    #[error(
        "platform \"{0}\" has too many parts; expected os/arch[/variant], e.g. \"linux/arm/v7\""
    )]
    TooManyParts(String),
    #[error("unknown platform \"{given}\"{}", suggestion_suffix(.suggestion))]
    Unknown {
        given: String,
        suggestion: Option<String>,
    },
}

fn suggestion_suffix(s: &Option<String>) -> String {
    match s {
        Some(s) => format!("; did you mean \"{s}\"?"),
        None => format!("; expected one of {}", known_list()),
    }
}

fn known_list() -> String {
    KNOWN_PLATFORMS
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The platforms archbuild knows the ELF identity of, in their canonical spelling.
pub const KNOWN_PLATFORMS: &[&str] = &[
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/arm/v5",
    "linux/386",
    "linux/ppc64le",
    "linux/ppc64",
    "linux/s390x",
    "linux/riscv64",
    "linux/mips64le",
    "linux/mips64",
    "linux/mipsle",
    "linux/mips",
    "linux/loong64",
];

const KNOWN_OS: &[&str] = &[
    "linux",
    "windows",
    "darwin",
    "freebsd",
    "netbsd",
    "openbsd",
    "solaris",
    "illumos",
    "aix",
    "android",
    "ios",
    "js",
    "wasip1",
    "plan9",
    "dragonfly",
];

impl Platform {
    /// Builds a platform from parts, normalising them.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Result<Self, PlatformError> {
        Platform::known(os, architecture, variant).ok_or_else(|| {
            unknown(&match variant {
                Some(v) => format!("{os}/{architecture}/{v}"),
                None => format!("{os}/{architecture}"),
            })
        })
    }

    /// The normalised platform when archbuild knows the parts, without the error (and its
    /// suggestion) that [`Platform::new`] builds otherwise.
    fn known(os: &str, architecture: &str, variant: Option<&str>) -> Option<Self> {
        let os = normalize_os(os);
        let (architecture, variant) = normalize_arch(&architecture.to_ascii_lowercase(), variant)?;
        KNOWN_OS.contains(&os.as_str()).then_some(Platform {
            os,
            architecture,
            variant,
        })
    }

    /// Parses `os/arch[/variant]`, or a bare architecture (then the OS is `linux`, as
    /// containerd assumes for a Linux host).
    pub fn parse(s: &str) -> Result<Self, PlatformError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(PlatformError::Empty);
        }
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [arch] => Platform::new("linux", arch, None).map_err(|_| unknown(s)),
            [os, arch] => Platform::new(os, arch, None).map_err(|_| unknown(s)),
            [os, arch, variant] => Platform::new(os, arch, Some(variant)).map_err(|_| unknown(s)),
            _ => Err(PlatformError::TooManyParts(s.to_string())),
        }
    }

    /// The `unknown/unknown` placeholder BuildKit uses for attestation manifests.
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" && self.architecture == "unknown"
    }

    /// Builds a platform from descriptor or config fields without rejecting what archbuild
    /// does not know (an index may list `unknown/unknown` or `windows/amd64`): known names are
    /// normalised, others kept as written.
    pub fn from_parts_lenient(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let variant = variant.filter(|v| !v.is_empty());
        Platform::known(os, architecture, variant).unwrap_or_else(|| Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        })
    }

    /// The ELF identity this platform's programs must have, if the OS runs ELF programs and
    /// the architecture is in the table.
    pub fn elf_identity(&self) -> Option<ElfIdentity> {
        if !matches!(self.os.as_str(), "linux" | "android" | "freebsd") {
            return None;
        }
        let (machine, class, endian) = match self.architecture.as_str() {
            "amd64" => (EM_X86_64, ElfClass::Elf64, Endian::Little),
            "arm64" => (EM_AARCH64, ElfClass::Elf64, Endian::Little),
            "arm" => (EM_ARM, ElfClass::Elf32, Endian::Little),
            "386" => (EM_386, ElfClass::Elf32, Endian::Little),
            "ppc64le" => (EM_PPC64, ElfClass::Elf64, Endian::Little),
            "ppc64" => (EM_PPC64, ElfClass::Elf64, Endian::Big),
            "s390x" => (EM_S390, ElfClass::Elf64, Endian::Big),
            "riscv64" => (EM_RISCV, ElfClass::Elf64, Endian::Little),
            "mips64le" => (EM_MIPS, ElfClass::Elf64, Endian::Little),
            "mips64" => (EM_MIPS, ElfClass::Elf64, Endian::Big),
            "mipsle" => (EM_MIPS, ElfClass::Elf32, Endian::Little),
            "mips" => (EM_MIPS, ElfClass::Elf32, Endian::Big),
            "loong64" => (EM_LOONGARCH, ElfClass::Elf64, Endian::Little),
            _ => return None,
        };
        // Debian's armhf (the arm/v7 of almost every image) is hard-float; arm/v5 and v6 are
        // built both ways (Debian armel is soft-float, Raspberry Pi OS and Alpine hard-float),
        // so for them the float ABI is not something a platform can require.
        let float_abi = match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm", Some("v7")) | ("arm", Some("v8")) => Some(FloatAbi::Hard),
            _ => None,
        };
        Some(ElfIdentity {
            machine,
            class,
            endian,
            float_abi,
        })
    }

    /// Whether a program built for `other` runs on this platform without emulation, by
    /// containerd's rules (`platforms.Only`): an arm64 host runs arm/v8..v5 where the CPU has
    /// AArch32, arm/v7 runs v6 and v5, amd64 runs 386. Equal platforms always run.
    pub fn runs(&self, other: &Platform) -> bool {
        if self == other {
            return true;
        }
        if self.os != other.os {
            return false;
        }
        match (self.architecture.as_str(), other.architecture.as_str()) {
            ("amd64", "386") => true,
            ("arm64", "arm") => true,
            ("arm", "arm") => arm_level(self) >= arm_level(other),
            ("amd64", "amd64") => amd64_level(self) >= amd64_level(other),
            _ => false,
        }
    }
}

/// The ARM architecture version an `arm` platform guarantees: 7 for plain `linux/arm`, N for `arm/vN`.
pub fn arm_level(p: &Platform) -> u8 {
    p.variant
        .as_deref()
        .and_then(|v| v.trim_start_matches('v').parse().ok())
        .unwrap_or(7)
}

/// The x86-64 level an `amd64` platform guarantees: 1 for plain `linux/amd64`, N for `amd64/vN`.
pub fn amd64_level(p: &Platform) -> u8 {
    p.variant
        .as_deref()
        .and_then(|v| v.trim_start_matches('v').parse().ok())
        .unwrap_or(1)
}

fn unknown(given: &str) -> PlatformError {
    PlatformError::Unknown {
        given: given.to_string(),
        suggestion: suggest(given),
    }
}

/// The closest known platform to a misspelt one, if any is close enough to be a good guess.
///
/// Only known platforms of about its length are compared (the distance is at least the
/// difference in length), so that a long string (an index's hostile platform, megabytes)
/// costs nothing: the distance takes time and memory in its length times theirs.
pub fn suggest(given: &str) -> Option<String> {
    let given = given.to_ascii_lowercase();
    KNOWN_PLATFORMS
        .iter()
        .filter(|k| k.len().abs_diff(given.len()) <= 3)
        .map(|k| (strsim::damerau_levenshtein(&given, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.to_string())
}

fn normalize_os(os: &str) -> String {
    match os.to_ascii_lowercase().as_str() {
        "macos" => "darwin".to_string(),
        other => other.to_string(),
    }
}

/// containerd's `normalizeArch`, plus the Debian/uname spellings users type (`armv7l`, `i686`).
fn normalize_arch(arch: &str, variant: Option<&str>) -> Option<(String, Option<String>)> {
    let variant = variant.map(|v| v.to_ascii_lowercase());
    let v = variant.as_deref();
    let (arch, variant) = match arch {
        "i386" | "i686" | "x86" | "386" => ("386", None),
        "x86_64" | "x86-64" | "amd64" => match v {
            None | Some("v1") | Some("") => ("amd64", None),
            Some(v @ ("v2" | "v3" | "v4")) => ("amd64", Some(v.to_string())),
            Some(_) => return None,
        },
        "aarch64" | "arm64" => match v {
            None | Some("8") | Some("v8") | Some("") => ("arm64", None),
            Some(v @ ("v8.1" | "v8.2" | "v9" | "v9.0")) => ("arm64", Some(v.to_string())),
            Some(_) => return None,
        },
        "armhf" if v.is_none() => ("arm", Some("v7".to_string())),
        "armel" if v.is_none() => ("arm", Some("v6".to_string())),
        "armv7l" | "armv7" if v.is_none() => ("arm", Some("v7".to_string())),
        "armv6l" | "armv6" if v.is_none() => ("arm", Some("v6".to_string())),
        "armv5tel" | "armv5" if v.is_none() => ("arm", Some("v5".to_string())),
        "arm" => match v {
            None | Some("") | Some("7") | Some("v7") => ("arm", Some("v7".to_string())),
            Some("5") | Some("v5") => ("arm", Some("v5".to_string())),
            Some("6") | Some("v6") => ("arm", Some("v6".to_string())),
            Some("8") | Some("v8") => ("arm", Some("v8".to_string())),
            Some(_) => return None,
        },
        "ppc64le" | "powerpc64le" | "ppc64el" => ("ppc64le", None),
        "ppc64" | "powerpc64" => ("ppc64", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        "mips64le" | "mips64el" => ("mips64le", None),
        "mips64" => ("mips64", None),
        "mipsle" | "mipsel" => ("mipsle", None),
        "mips" => ("mips", None),
        "loong64" | "loongarch64" => ("loong64", None),
        "wasm" => ("wasm", None),
        _ => return None,
    };
    if variant.is_none() && v.is_some_and(|v| !v.is_empty()) && arch != "arm64" && arch != "amd64" {
        return None;
    }
    Some((arch.to_string(), variant))
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

impl Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Platform::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses a comma-separated `--platform` list, normalising each entry and dropping repeats.
pub fn parse_list(list: &str) -> Result<Vec<Platform>, PlatformError> {
    let mut out: Vec<Platform> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let p = Platform::parse(item)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(PlatformError::Empty);
    }
    Ok(out)
}

pub const EM_386: u16 = 3;
pub const EM_MIPS: u16 = 8;
pub const EM_PPC64: u16 = 21;
pub const EM_S390: u16 = 22;
pub const EM_ARM: u16 = 40;
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
pub const EM_RISCV: u16 = 243;
pub const EM_LOONGARCH: u16 = 258;

/// ELF class (`EI_CLASS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ElfClass {
    Elf32,
    Elf64,
}

/// ELF byte order (`EI_DATA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Endian {
    Little,
    Big,
}

/// The ARM EABI floating-point calling convention (`EF_ARM_ABI_FLOAT_*` in `e_flags`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FloatAbi {
    Soft,
    Hard,
}

/// What the kernel looks at before it agrees to exec a program: machine, class, byte order,
/// and for 32-bit ARM the float ABI the program was linked for (when the file says).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ElfIdentity {
    pub machine: u16,
    pub class: ElfClass,
    pub endian: Endian,
    pub float_abi: Option<FloatAbi>,
}

impl ElfIdentity {
    /// Whether a file with identity `actual` runs where `self` is expected: machine, class
    /// and byte order must agree; a float ABI is compared only when both sides state one.
    pub fn accepts(&self, actual: &ElfIdentity) -> bool {
        self.machine == actual.machine
            && self.class == actual.class
            && self.endian == actual.endian
            && match (self.float_abi, actual.float_abi) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// The platforms whose programs have this identity (ignoring the float ABI), canonical
    /// names first: what a user would call the file's architecture.
    pub fn platforms(&self) -> Vec<Platform> {
        KNOWN_PLATFORMS
            .iter()
            .filter_map(|k| {
                let p = Platform::parse(k).ok()?;
                let id = p.elf_identity()?;
                (id.machine == self.machine && id.class == self.class && id.endian == self.endian)
                    .then_some(p)
            })
            .collect()
    }
}

/// The name `file(1)` and `readelf` users know for an `e_machine` value.
pub fn machine_name(machine: u16) -> String {
    match machine {
        EM_386 => "Intel 80386".into(),
        EM_MIPS => "MIPS".into(),
        EM_PPC64 => "PowerPC64".into(),
        EM_S390 => "IBM S/390".into(),
        EM_ARM => "ARM".into(),
        EM_X86_64 => "x86-64".into(),
        EM_AARCH64 => "aarch64".into(),
        EM_RISCV => "RISC-V".into(),
        EM_LOONGARCH => "LoongArch".into(),
        2 => "SPARC".into(),
        20 => "PowerPC".into(),
        43 => "SPARC v9".into(),
        50 => "IA-64".into(),
        other => format!("e_machine {other}"),
    }
}

impl fmt::Display for ElfIdentity {
    /// `aarch64 (ELF64, little-endian)`, `ARM (ELF32, little-endian, hard-float)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.class {
            ElfClass::Elf32 => "ELF32",
            ElfClass::Elf64 => "ELF64",
        };
        let endian = match self.endian {
            Endian::Little => "little-endian",
            Endian::Big => "big-endian",
        };
        write!(f, "{} ({class}, {endian}", machine_name(self.machine))?;
        match self.float_abi {
            Some(FloatAbi::Hard) => write!(f, ", hard-float)"),
            Some(FloatAbi::Soft) => write!(f, ", soft-float)"),
            None => write!(f, ")"),
        }
    }
}

#[cfg(test)]
mod tests;
