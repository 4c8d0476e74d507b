//! The content rules, pure: given an image's final filesystem, its config and the platform
//! it is for, every finding. No I/O here; the sources in `check::source` feed it.

use super::entrypoint;
use super::libraries::Libraries;
use super::program::{arch_finding, level_finding, page_finding, CheckOptions};
use crate::elf::ElfReport;
use crate::finding::{Finding, FindingKind};
use crate::layers::{Content, Filesystem, NodeKind};
use crate::oci::ImageConfig;
use crate::platform::Platform;

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
        let mut libraries = Libraries::new(fs, config, platform);
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
                    let wrong_level = || level_finding(path, info, platform);
                    let arch = arch_finding(path, info, &expected, platform);
                    let right_arch = arch.is_none();
                    if let Some(f) = arch.or_else(wrong_level) {
                        findings.push(f.with_layer(&fs.layers[node.layer]));
                    }
                    if right_arch {
                        let required = chain.contains(path);
                        findings.extend(libraries.check(path, info, platform, required));
                    }
                    if let Some(f) = page_finding(path, info, platform, opts.page_size) {
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
