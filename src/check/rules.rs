//! The content rules, pure: given an image's final filesystem, its config and the platform
//! it is for, every finding. No I/O here; the sources in `check::source` feed it.

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::entrypoint;
use crate::elf::{ElfInfo, ElfKind, ElfReport};
use crate::finding::{Finding, FindingKind};
use crate::layers::{Content, Filesystem, Node, NodeKind};
use crate::oci::ImageConfig;
use crate::platform::{machine_name, ElfIdentity, FloatAbi, Platform};

/// What the user tells the check besides the image: paths to skip and programs to require.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    ignore: Vec<String>,
    ignore_set: GlobSet,
    /// `check.binaries`: absolute paths or names looked up on the image's `PATH`.
    pub binaries: Vec<String>,
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
        })
    }

    /// Whether `path` is matched by an ignore glob.
    pub fn ignores(&self, path: &str) -> bool {
        !self.ignore.is_empty() && self.ignore_set.is_match(path)
    }
}

/// Every finding for one image on one platform. `platform` is what the image is listed or
/// built for; findings carry it, and the caller adds the image name.
pub fn run(
    fs: &Filesystem,
    config: &ImageConfig,
    platform: &Platform,
    opts: &CheckOptions,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let claimed = config.platform();
    if &claimed != platform {
        findings.push(
            Finding::error(
                FindingKind::ConfigPlatformMismatch,
                format!(
                    "the image listed as {platform} says it is {claimed} in its config: runtimes pick it by the list, and tools that read the config (docker inspect, image scanners) see another platform"
                ),
            )
            .with_platform(platform)
            .with_expected_actual(platform, &claimed),
        );
    }
    for (layer, entry) in &fs.unsafe_entries {
        findings.push(
            Finding::error(
                FindingKind::UnsafeLayerEntry,
                format!(
                    "layer entry {:?} was not applied: {}",
                    entry.name, entry.reason
                ),
            )
            .with_platform(platform)
            .with_layer(&fs.layers[*layer]),
        );
    }
    let chain = entrypoint::check(fs, config, platform, opts, &mut findings);
    if let Some(expected) = platform.elf_identity() {
        for (path, node) in fs.iter() {
            let NodeKind::File(file) = &node.kind else {
                continue;
            };
            let Content::Elf(report) = &file.content else {
                continue;
            };
            if opts.ignores(path) {
                continue;
            }
            match report {
                ElfReport::NotElf => {}
                ElfReport::Malformed(reason) => findings.push(
                    Finding::warning(
                        FindingKind::MalformedElf,
                        format!(
                            "{path} starts like an ELF file but cannot be read as one: {reason}"
                        ),
                    )
                    .with_platform(platform)
                    .with_path(path)
                    .with_layer(&fs.layers[node.layer]),
                ),
                ElfReport::Elf(info) => {
                    if let Some(f) = arch_finding(path, info, &expected, platform) {
                        findings.push(f.with_layer(&fs.layers[node.layer]));
                    }
                    if !chain.contains(path) {
                        if let Some(f) = entrypoint::loader_finding(fs, path, info, platform, false)
                        {
                            findings.push(f);
                        }
                    }
                }
            }
        }
    }
    findings
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
    let foreign = actual
        .platform_names()
        .into_iter()
        .filter_map(|p| Platform::parse(&p).ok())
        .find(|p| platform.runs(p));
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
        },
        NodeKind::Dir { .. } => "a folder".into(),
        NodeKind::Symlink { target } => format!("a symlink to {target}"),
        NodeKind::Special(s) => format!("a {s}"),
        NodeKind::DanglingHardlink { target } => {
            format!("a hard link to {target}, which no layer has")
        }
    }
}
