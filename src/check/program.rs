//! One program against its platform, the pieces both the rules and the entrypoint chain use:
//! the options that select what is checked, the `elf-arch-mismatch` finding for a file whose
//! ELF identity is not the platform's, and how files are named in messages. Pure.

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::elf::{ElfInfo, ElfKind, ElfReport};
use crate::finding::{Finding, FindingKind};
use crate::layers::{Content, Node, NodeKind};
use crate::platform::{
    amd64_level, arm_level, machine_name, ElfIdentity, FloatAbi, Platform, EM_AARCH64, EM_ARM,
    EM_X86_64,
};

/// What the user tells the check besides the image: paths to skip and programs to require.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    ignore: Vec<String>,
    ignore_set: GlobSet,
    /// `check.binaries`: absolute paths or names looked up on the image's `PATH`.
    pub binaries: Vec<String>,
    /// `check.page-size`: the page size of the cluster's arm64 kernels. A program that cannot
    /// be mapped with it is an error; without it, one that cannot be mapped with 16 KiB pages
    /// is a warning.
    pub page_size: Option<u64>,
}

impl CheckOptions {
    /// Compiles the `check.ignore` globs (matched against absolute paths such as
    /// `/usr/share/qemu/**`; a glob without a leading `/` matches as if it had one).
    pub fn new(ignore: &[String], binaries: &[String]) -> Result<CheckOptions, globset::Error> {
        let mut b = GlobSetBuilder::new();
        for g in ignore {
            let g = if g.starts_with('/') {
                g.clone()
            } else {
                format!("/{g}")
            };
            b.add(Glob::new(&g)?);
        }
        Ok(CheckOptions {
            ignore: ignore.to_vec(),
            ignore_set: b.build()?,
            binaries: binaries.to_vec(),
            page_size: None,
        })
    }

    /// The same options with `check.page-size` set.
    pub fn with_page_size(mut self, page_size: Option<u64>) -> CheckOptions {
        self.page_size = page_size;
        self
    }

    /// Whether `path` is matched by an ignore glob.
    pub fn ignores(&self, path: &str) -> bool {
        !self.ignore.is_empty() && self.ignore_set.is_match(path)
    }
}

/// `elf-arch-mismatch` for one loadable ELF file, if its identity is not the platform's.
pub fn arch_finding(
    path: &str,
    info: &ElfInfo,
    expected: &ElfIdentity,
    platform: &Platform,
) -> Option<Finding> {
    if !info.kind.is_loadable() || expected.accepts(&info.identity) {
        return None;
    }
    let actual = info.identity;
    let noun = noun(info);
    let what = format!("{} {}", with_article(&machine_name(actual.machine)), noun);
    let same_cpu = expected.machine == actual.machine
        && expected.class == actual.class
        && expected.endian == actual.endian;
    let foreign = actual.platforms().into_iter().find(|p| platform.runs(p));
    let arch = &platform.architecture;
    let finding = if same_cpu {
        let abi = |a: Option<FloatAbi>| match a {
            Some(FloatAbi::Hard) => "hard-float",
            Some(FloatAbi::Soft) => "soft-float",
            None => "unspecified float ABI",
        };
        Finding::warning(
            FindingKind::ElfArchMismatch,
            format!(
                "{path} is a {} {noun} in the {platform} image ({} expected): a static program runs, but a dynamically linked one needs the {} loader and libraries",
                abi(actual.float_abi),
                abi(expected.float_abi),
                abi(actual.float_abi),
            ),
        )
    } else if let Some(foreign) = foreign {
        Finding::warning(
            FindingKind::ElfArchMismatch,
            format!(
                "{path} is {what} in the {platform} image: it is built for {foreign}, which {arch} nodes run only where the CPU and kernel support it (many {arch} servers do not)"
            ),
        )
    } else {
        let effect = if noun == "program" {
            format!("it fails with 'exec format error' on {arch} nodes")
        } else {
            format!("programs that load it fail on {arch} nodes ('wrong ELF class' or 'cannot open shared object file')")
        };
        Finding::error(
            FindingKind::ElfArchMismatch,
            format!("{path} is {what} in the {platform} image: {effect}"),
        )
    };
    Some(
        finding
            .with_platform(platform)
            .with_path(path)
            .with_expected_actual(expected, actual),
    )
}

/// `cpu-level-mismatch` for an x86-64 file of the right machine whose ISA note needs a
/// higher micro-architecture level than the platform guarantees.
pub fn level_finding(path: &str, info: &ElfInfo, platform: &Platform) -> Option<Finding> {
    if !info.kind.is_loadable() {
        return None;
    }
    if platform.architecture == "arm" && info.identity.machine == EM_ARM {
        return arm_level_finding(path, info, platform);
    }
    let from_go = info.go.as_ref().and_then(|g| g.amd64_level());
    let (needed, source) = match (info.x86_level_needed, from_go) {
        (_, Some(g)) if info.x86_level_needed.is_none_or(|n| g > n) => {
            (g, format!("it was built with GOAMD64=v{g}"))
        }
        (Some(n), _) => (n, "its GNU property note says so".to_string()),
        _ => return None,
    };
    if platform.architecture != "amd64" || info.identity.machine != EM_X86_64 {
        return None;
    }
    let guaranteed = amd64_level(platform);
    if !info.kind.is_loadable() || needed <= guaranteed {
        return None;
    }
    let older = match needed {
        2 => "without SSE4.2 and POPCNT (before Nehalem, 2008)",
        3 => "without AVX2 (before Haswell, 2013, and many Atom, Pentium and Celeron parts)",
        _ => "without AVX-512 (most desktop CPUs, and servers before Skylake-SP)",
    };
    let name = |level: u8| match level {
        1 => "x86-64 (baseline)".to_string(),
        n => format!("x86-64-v{n}"),
    };
    let noun = noun(info);
    Some(
        Finding::error(
            FindingKind::CpuLevelMismatch,
            format!(
                "{path} is an x86-64 {noun} that needs {} ({source}), but {platform} guarantees only {}: on nodes {older} it fails with 'Illegal instruction'",
                name(needed),
                name(guaranteed)
            ),
        )
        .with_platform(platform)
        .with_path(path)
        .with_expected_actual(name(guaranteed), name(needed)),
    )
}

/// `cpu-level-mismatch` for a 32-bit ARM program whose build attributes need a newer
/// architecture (`Tag_CPU_arch`) than the platform's variant guarantees.
///
/// Programs only: a shared library's file attributes are the highest of its objects', and
/// libraries such as libgcrypt and nettle carry code for newer CPUs that they pick at run
/// time by `HWCAP` (Debian's armhf libgcrypt says ARMv8, armel's nettle ARMv6, and both run
/// on the boards they are built for). The programs of a mislabelled userland all say it.
fn arm_level_finding(path: &str, info: &ElfInfo, platform: &Platform) -> Option<Finding> {
    let program = info.kind == ElfKind::Executable || info.interp.is_some();
    let from_attributes = info
        .arm
        .filter(|_| program)
        .and_then(|a| a.arch_version())
        .map(|v| (v, "its .ARM.attributes say so".to_string()));
    let from_go = || {
        let v = info.go.as_ref()?.arm_level()?;
        Some((v, format!("it was built with GOARM={v}")))
    };
    let level = arm_level(platform);
    let Some((needed, source)) = from_attributes.or_else(from_go) else {
        return hard_float_finding(path, info, platform, level, program);
    };
    let boards = match level {
        0..=5 => "ARMv5 boards (Marvell Kirkwood and other armel devices)",
        6 => "ARMv6 boards such as the Raspberry Pi Zero and Pi 1",
        _ => "ARMv7 boards",
    };
    let noun = noun(info);
    if needed <= level {
        return hard_float_finding(path, info, platform, level, program);
    }
    let (needs, has) = (format!("ARMv{needed}"), format!("ARMv{level}"));
    Some(
        Finding::error(
            FindingKind::CpuLevelMismatch,
            format!(
                "{path} is an ARM {noun} built for {needs} ({source}), but {platform} guarantees only {has}: on {boards} it fails with 'Illegal instruction'"
            ),
        )
        .with_platform(platform)
        .with_path(path)
        .with_expected_actual(has, needs),
    )
}

/// `cpu-level-mismatch` for a hard-float ARM program (`EF_ARM_ABI_FLOAT_HARD`: it passes
/// floating-point values in VFP registers) in `arm/v5`, whose userlands (Debian armel) are
/// soft-float and whose boards mostly have no VFP unit. `arm/v6` is built both ways
/// (Raspberry Pi OS and Alpine hard-float, others soft): nothing is said there.
fn hard_float_finding(
    path: &str,
    info: &ElfInfo,
    platform: &Platform,
    level: u8,
    program: bool,
) -> Option<Finding> {
    if level > 5 || !program || info.identity.float_abi != Some(FloatAbi::Hard) {
        return None;
    }
    Some(
        Finding::error(
            FindingKind::CpuLevelMismatch,
            format!(
                "{path} is a hard-float ARM {} (its ELF header says it passes floating-point values in VFP registers), but {platform} userlands are soft-float and ARMv5 boards mostly have no VFP unit: it fails with 'Illegal instruction', and a dynamically linked one finds no hard-float loader",
                noun(info)
            ),
        )
        .with_platform(platform)
        .with_path(path)
        .with_expected_actual("soft-float", "hard-float"),
    )
}

/// The page size of the arm64 kernels that a program must map with unless told otherwise:
/// 16 KiB (Apple Silicon under Asahi Linux, and the page size Android and some Ampere
/// deployments move to). 4 KiB kernels map anything; RHEL's and some Ampere kernels use 64 KiB.
pub const DEFAULT_PAGE_SIZE: u64 = 16 * 1024;

/// `page-size` for an arm64 ELF file whose load segments are aligned below the page size of
/// the cluster's kernels (`page_size`, an error), or below 16 KiB when that is not known (a
/// warning): the kernel cannot map it, and exec fails.
pub fn page_finding(
    path: &str,
    info: &ElfInfo,
    platform: &Platform,
    page_size: Option<u64>,
) -> Option<Finding> {
    if platform.architecture != "arm64" || info.identity.machine != EM_AARCH64 {
        return None;
    }
    let align = info.load_align.filter(|_| info.kind.is_loadable())?;
    let wanted = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if align >= wanted {
        return None;
    }
    let kib = |n: u64| {
        if n >= 1024 && n.is_multiple_of(1024) {
            format!("{} KiB", n / 1024)
        } else {
            format!("{n} bytes")
        }
    };
    let noun = noun(info);
    let message = format!(
        "{path} is an arm64 {noun} whose load segments are aligned to {}: kernels with {} pages cannot map it, and it fails there with 'exec format error' or, for a library, 'ELF load command address/offset not page-aligned'{}",
        kib(align),
        kib(wanted),
        if page_size.is_some() {
            String::new()
        } else {
            " (a warning: set check.page-size to the page size of your nodes' kernels to make it an error, or to 4096 to accept it)".to_string()
        }
    );
    let finding = if page_size.is_some() {
        Finding::error(FindingKind::PageSize, message)
    } else {
        Finding::warning(FindingKind::PageSize, message)
    };
    Some(
        finding
            .with_platform(platform)
            .with_path(path)
            .with_expected_actual(
                format!("aligned to {} or more", kib(wanted)),
                format!("aligned to {}", kib(align)),
            ),
    )
}

/// "program" for executables (static, or PIE with a loader), "shared library" otherwise.
pub fn noun(info: &ElfInfo) -> &'static str {
    match info.kind {
        ElfKind::Executable => "program",
        ElfKind::SharedObject if info.interp.is_some() => "program",
        ElfKind::SharedObject => "shared library",
        other => other.noun(),
    }
}

/// "an x86-64", "a RISC-V".
pub fn with_article(name: &str) -> String {
    let vowel = name
        .chars()
        .next()
        .is_some_and(|c| "aeiouxAEIOUX".contains(c));
    if vowel {
        format!("an {name}")
    } else {
        format!("a {name}")
    }
}

/// What a node is, in a few words, for messages.
pub fn describe(node: &Node) -> String {
    match &node.kind {
        NodeKind::File(f) => match &f.content {
            Content::Elf(ElfReport::Elf(info)) => {
                format!(
                    "{} {}",
                    with_article(&machine_name(info.identity.machine)),
                    noun(info)
                )
            }
            Content::Elf(_) => "a malformed ELF file".into(),
            Content::Script(s) => format!("a script for {}", s.interpreter),
            Content::Other => "a regular file".into(),
            Content::LoaderConfig(_) => "the loader's configuration".into(),
            Content::LoaderCache(_) => "the loader's cache".into(),
        },
        NodeKind::Dir { .. } => "a folder".into(),
        NodeKind::Symlink { target } => format!("a symlink to {target}"),
        NodeKind::Special(s) => format!("a {s}"),
        NodeKind::DanglingHardlink { target } => {
            format!("a hard link to {target}, which no layer has")
        }
    }
}
