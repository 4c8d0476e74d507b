//! What a check reports: one `CheckReport` per image and platform (what was checked and
//! what was found), and the human rendering grouped by image and platform with what to do.

use std::fmt::Write;

use serde::Serialize;

use crate::elf::ElfReport;
use crate::finding::{Finding, FindingKind, Severity};
use crate::layers::{Content, Filesystem, NodeKind};
use crate::platform::Platform;

/// The result of checking one image for one platform.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct CheckReport {
    /// How the image was named (`docker-daemon:api:dev`, `oci:out:api`, a reference).
    pub image: String,
    pub platform: Platform,
    /// The manifest digest, where the source has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    pub entrypoint: Vec<String>,
    pub layers: usize,
    /// Paths in the final filesystem (folders included).
    pub files: usize,
    /// Regular files that start with the ELF magic.
    pub elf_files: usize,
    pub errors: usize,
    pub warnings: usize,
    /// The Go programs in the image and the build settings that decide where they run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub go: Vec<GoProgram>,
    /// The findings (the JSON document lists them once, at the top).
    #[serde(skip)]
    pub findings: Vec<Finding>,
}

/// A Go program found in an image, with its toolchain and `build` settings (`go version -m`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct GoProgram {
    pub path: String,
    pub go_version: String,
    pub settings: std::collections::BTreeMap<String, String>,
}

impl CheckReport {
    /// Assembles a report, stamping each finding with the image name.
    pub fn new(
        image: &str,
        platform: Platform,
        fs: &Filesystem,
        entrypoint: Vec<String>,
        findings: Vec<Finding>,
    ) -> CheckReport {
        let findings: Vec<Finding> = findings
            .into_iter()
            .map(|f| {
                if f.image.is_none() {
                    f.with_image(image)
                } else {
                    f
                }
            })
            .collect();
        let elf_files = fs
            .iter()
            .filter(|(_, n)| matches!(&n.kind, NodeKind::File(f) if matches!(f.content, Content::Elf(ElfReport::Elf(_) | ElfReport::Malformed(_)))))
            .count();
        let go = fs
            .iter()
            .filter_map(|(path, n)| match &n.kind {
                NodeKind::File(f) => match &f.content {
                    Content::Elf(ElfReport::Elf(info)) => info.go.as_ref().map(|g| GoProgram {
                        path: path.to_string(),
                        go_version: g.version.clone(),
                        settings: g.settings.iter().cloned().collect(),
                    }),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        CheckReport {
            image: image.to_string(),
            go,
            platform,
            manifest: None,
            config: None,
            entrypoint,
            layers: fs.layers.len(),
            files: fs.len(),
            elf_files,
            errors: findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count(),
            warnings: findings
                .iter()
                .filter(|f| f.severity == Severity::Warning)
                .count(),
            findings,
        }
    }
}

/// The human report: per image and platform, each finding with its path, what it is, what it
/// should be, and what to do about each kind found.
pub fn render(reports: &[CheckReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let verdict = match (r.errors, r.warnings) {
            (0, 0) => "ok".to_string(),
            (e, w) => format!("{e} error(s), {w} warning(s)"),
        };
        let _ = writeln!(out, "{} [{}]: {verdict}", r.image, r.platform);
        let _ = writeln!(
            out,
            "  checked {} paths, {} ELF files in {} layers; entrypoint {}",
            r.files,
            r.elf_files,
            r.layers,
            if r.entrypoint.is_empty() {
                "(none)".to_string()
            } else {
                format!("{:?}", r.entrypoint)
            }
        );
        for (f, others) in grouped(&r.findings) {
            let _ = writeln!(
                out,
                "  {:<7} {}: {}",
                severity(f.severity),
                f.kind.as_str(),
                crate::finding::for_terminal(&f.message)
            );
            if let (Some(e), Some(a)) = (&f.expected, &f.actual) {
                let _ = writeln!(out, "          expected {e}, found {a}");
            }
            if let Some(layer) = &f.layer {
                let _ = writeln!(out, "          layer {layer}");
            }
            if !others.is_empty() {
                let _ = writeln!(out, "          {}", also(&others));
            }
        }
        let mut kinds: Vec<FindingKind> = r.findings.iter().map(|f| f.kind).collect();
        kinds.sort();
        kinds.dedup();
        for kind in kinds {
            if let Some(advice) = advice(kind, &r.platform) {
                let _ = writeln!(out, "  what to do ({}): {advice}", kind.as_str());
            }
        }
        out.push('\n');
    }
    let errors: usize = reports.iter().map(|r| r.errors).sum();
    let warnings: usize = reports.iter().map(|r| r.warnings).sum();
    let _ = writeln!(
        out,
        "{} image(s) checked: {errors} error(s), {warnings} warning(s)",
        reports.len()
    );
    out
}

/// The findings in the order a reader needs them (errors, then warnings, then notes; the
/// entrypoint chain's first, as the rules emit them), those of one kind and cause together:
/// each group's first finding and the paths of the others. A cause is the message with the
/// finding's own path taken out, so "14 programs need the same missing loader" is one entry.
fn grouped(findings: &[Finding]) -> Vec<(&Finding, Vec<&str>)> {
    let mut order: Vec<&Finding> = findings.iter().collect();
    order.sort_by_key(|f| f.severity);
    let mut groups: Vec<(&Finding, Vec<&str>)> = Vec::new();
    let mut index: std::collections::HashMap<(Severity, FindingKind, String), usize> =
        std::collections::HashMap::new();
    for f in order {
        let Some(path) = f.path.as_deref().filter(|p| !p.is_empty()) else {
            groups.push((f, Vec::new()));
            continue;
        };
        let key = (f.severity, f.kind, f.message.replace(path, "\u{0}"));
        match index.get(&key) {
            Some(&i) => groups[i].1.push(path),
            None => {
                index.insert(key, groups.len());
                groups.push((f, Vec::new()));
            }
        }
    }
    groups
}

/// "and 13 more with the same cause: /a, /b, /c, /d, /e and 8 others".
fn also(paths: &[&str]) -> String {
    const SHOWN: usize = 5;
    let shown: Vec<String> = paths
        .iter()
        .take(SHOWN)
        .map(|p| crate::finding::for_terminal(p).into_owned())
        .collect();
    let rest = paths.len().saturating_sub(SHOWN);
    let tail = if rest > 0 {
        format!(" and {rest} others")
    } else {
        String::new()
    };
    format!(
        "and {} more with the same cause: {}{tail}",
        paths.len(),
        shown.join(", ")
    )
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// What a user would do about a kind of finding.
fn advice(kind: FindingKind, platform: &Platform) -> Option<String> {
    let arch = &platform.architecture;
    Some(match kind {
        FindingKind::ElfArchMismatch => format!(
            "build the file for {platform} inside the build (use $TARGETARCH/$TARGETPLATFORM in the Dockerfile instead of a hard-coded architecture, or download the {arch} release), or add the path to check.ignore if it is data that is never run"
        ),
        FindingKind::CpuLevelMismatch if arch == "arm" => format!(
            "build the programs for the architecture {platform} guarantees (-march=armv{v} for C and C++, GOARM={v} for Go, a Debian armel or Raspberry Pi OS base for ARMv6), or publish the image as the linux/arm variant it needs",
            v = crate::platform::arm_level(platform)
        ),
        FindingKind::CpuLevelMismatch => format!(
            "build the program for the level {platform} guarantees (-march=x86-64 or the platform's x86-64-vN for C, C++ and Rust's target-cpu; GOAMD64 for Go), or publish the image as the linux/amd64/vN it needs, so that only nodes that can run it pull it"
        ),
        FindingKind::MissingLibrary => "install the package that provides the library in the final stage (or COPY it from the build stage with the program), or add its folder to the program's RUNPATH or to LD_LIBRARY_PATH; link statically where that is an option".into(),
        FindingKind::LibraryVersionMissing => "build the program against the C library of the base image it runs on (the same distribution release in the build and final stages), or move the final stage to a base image with a newer library".into(),
        FindingKind::PageSize => "link the program with -Wl,-z,max-page-size=65536 (Go, Rust and current GNU toolchains for arm64 do by default), or set check.page-size to your kernels' page size".into(),
        FindingKind::MissingEntrypoint => "fix Entrypoint/Cmd or the file it names (COPY it in, fix the symlink, or add its folder to PATH)".into(),
        FindingKind::MissingLoader => "install the C library the program was linked against (e.g. libc6 or musl) in the final stage, or link the program statically".into(),
        FindingKind::MissingInterpreter => "install the interpreter in the final stage, or change the #! line to one the image has".into(),
        FindingKind::MissingBinary => "add the program to the image, or remove it from check.binaries".into(),
        FindingKind::ConfigPlatformMismatch => "rebuild with --platform set to the platform the image is listed for, so the config and the index agree".into(),
        FindingKind::MalformedElf => "look at the file: a truncated download or a corrupt copy; add it to check.ignore if it is data".into(),
        FindingKind::UnsafeLayerEntry => "rebuild the layer with a tool that writes relative, normalised paths; do not ship a layer that escapes its root".into(),
        _ => return None,
    })
}
