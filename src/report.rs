//! The build report: what `archbuild build` produced and found, written to
//! `.archbuild/report.json` and read back by `archbuild checklist`.
//!
//! The model is plain data (serde), filled by the build pipeline; the one piece of logic here is
//! [`ImageReport::classification`], the root-cause verdict the rollout checklist starts from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::finding::{Finding, FindingKind, Severity};
use crate::platform::Platform;

/// The report format version this build writes and reads.
pub const REPORT_VERSION: u32 = 1;

/// Where `archbuild build` writes the report, relative to the project folder.
pub const DEFAULT_REPORT_PATH: &str = ".archbuild/report.json";

/// Everything one `archbuild build` run produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_VERSION`] when written by this archbuild.
    pub version: u32,
    /// When the build finished, RFC 3339 (`2025-05-01T12:00:00Z`).
    pub created: String,
    /// One entry per image of the project that was built.
    pub images: Vec<ImageReport>,
    /// Findings that belong to no single image (pre-flight, configuration).
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// How long each step took.
    #[serde(default)]
    pub timings: Vec<Timing>,
}

/// One image of the project: what was required, built, published and verified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageReport {
    /// The image's name in `archbuild.toml` (`[images.NAME]`).
    pub name: String,
    /// The repository it is published to (`registry.example.com/team/api`).
    pub repository: String,
    /// The tags written (`1.8.0`, `latest`).
    pub tags: Vec<String>,
    /// The platforms `archbuild.toml` requires.
    pub required_platforms: Vec<Platform>,
    /// The platforms actually built and assembled.
    pub built_platforms: Vec<Platform>,
    /// `sha256:…` of the index, when one was assembled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
    /// `sha256:…` of each platform's image manifest.
    #[serde(default)]
    pub manifests: BTreeMap<Platform, String>,
    /// Whether the image was pushed to `repository`.
    pub pushed: bool,
    /// Where it was written: an OCI layout folder (`oci:out/oci`) or the registry reference.
    pub output: String,
    /// Whether the published index was read back and found complete.
    pub verified: bool,
    /// How many times this run exported the image's platform images from their daemons, for
    /// the check and the publish together: at most once each (0 when nothing changed).
    #[serde(default)]
    pub exports: usize,
    /// What the content check and verification found for this image.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Builders lost while they built one of the image's platforms, each of which handed
    /// its job to another builder of that platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handovers: Vec<Handover>,
}

/// A job handed from a builder lost mid-build to another builder of its platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    pub platform: Platform,
    /// The lost builder's URL.
    pub from: String,
    /// The builder that built the job again.
    pub to: String,
    /// The step that was running on `from`, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Why `from` counts as lost (a broken connection, or how long it was silent).
    pub reason: String,
}

/// How long one step of the build took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// What was timed: `build api linux/arm64`, `push api`, `verify api`.
    pub step: String,
    pub seconds: f64,
}

/// The root-cause classification of one image, with the finding behind it.
#[derive(Clone, Debug, PartialEq)]
pub enum Classification {
    /// An index covering every required platform, content checked and verified.
    VerifiedMultiArch,
    /// One image manifest (or an index of one platform): pods on another architecture fail
    /// with `exec format error`.
    SingleArch {
        platform: Platform,
        finding: Finding,
    },
    /// An index lacking required platforms: pulls fail with `no match for platform in manifest`.
    MissingPlatform {
        missing: Vec<Platform>,
        finding: Finding,
    },
    /// A platform's content does not run on it (a wrong-architecture program, a missing loader).
    ContentMismatch { finding: Finding },
    /// Built and checked, but not read back from where it was published.
    Unverified { finding: Finding },
}

impl Classification {
    /// The kebab-case name used in JSON and templates.
    pub fn as_str(&self) -> &'static str {
        match self {
            Classification::VerifiedMultiArch => "verified-multi-arch",
            Classification::SingleArch { .. } => "single-arch",
            Classification::MissingPlatform { .. } => "missing-platform",
            Classification::ContentMismatch { .. } => "content-mismatch",
            Classification::Unverified { .. } => "unverified",
        }
    }

    /// The finding behind the classification (none for a verified image).
    pub fn finding(&self) -> Option<&Finding> {
        match self {
            Classification::VerifiedMultiArch => None,
            Classification::SingleArch { finding, .. }
            | Classification::MissingPlatform { finding, .. }
            | Classification::ContentMismatch { finding }
            | Classification::Unverified { finding } => Some(finding),
        }
    }
}

/// Findings about what runs inside an image, as opposed to how it is published.
const CONTENT_KINDS: &[FindingKind] = &[
    FindingKind::ElfArchMismatch,
    FindingKind::ConfigPlatformMismatch,
    FindingKind::MissingEntrypoint,
    FindingKind::MissingLoader,
    FindingKind::MissingInterpreter,
    FindingKind::MalformedElf,
    FindingKind::MissingBinary,
    FindingKind::BrokenReference,
];

impl ImageReport {
    /// The reference to deploy: `REPO@sha256:…` of the index, else of the only image.
    pub fn pinned_reference(&self) -> Option<String> {
        let digest = self
            .index_digest
            .as_ref()
            .or_else(|| match self.manifests.len() {
                1 => self.manifests.values().next(),
                _ => None,
            })?;
        Some(format!("{}@{digest}", self.repository))
    }

    /// The required platforms that were not built.
    pub fn missing_platforms(&self) -> Vec<Platform> {
        self.required_platforms
            .iter()
            .filter(|p| !self.built_platforms.contains(p))
            .cloned()
            .collect()
    }

    /// The verdict the checklist starts from. Content problems come first (a pod crashes even
    /// where its platform is present), then missing platforms, then a single-arch image, then
    /// an unverified publication.
    pub fn classification(&self) -> Classification {
        let errors = || {
            self.findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
        };
        if let Some(f) = errors().find(|f| CONTENT_KINDS.contains(&f.kind)) {
            return Classification::ContentMismatch { finding: f.clone() };
        }
        let missing = self.missing_platforms_with_findings();
        if !missing.is_empty() {
            let finding = errors()
                .find(|f| f.kind == FindingKind::PlatformMissing)
                .cloned()
                .unwrap_or_else(|| self.missing_finding(&missing));
            return Classification::MissingPlatform { missing, finding };
        }
        let single = errors().find(|f| f.kind == FindingKind::SingleArch);
        if single.is_some() || self.index_digest.is_none() || self.built_platforms.len() == 1 {
            let platform = self
                .built_platforms
                .first()
                .cloned()
                .unwrap_or_else(|| Platform::from_parts_lenient("unknown", "unknown", None));
            let finding = single
                .cloned()
                .unwrap_or_else(|| self.single_arch_finding(&platform));
            return Classification::SingleArch { platform, finding };
        }
        if !self.verified {
            let finding = Finding::warning(
                FindingKind::BrokenReference,
                format!(
                    "{} was not read back from {} after it was written; run `archbuild verify`",
                    self.name, self.output
                ),
            )
            .with_image(&self.repository);
            return Classification::Unverified { finding };
        }
        Classification::VerifiedMultiArch
    }

    fn missing_platforms_with_findings(&self) -> Vec<Platform> {
        let mut missing = self.missing_platforms();
        for f in &self.findings {
            if f.kind != FindingKind::PlatformMissing || f.severity != Severity::Error {
                continue;
            }
            if let Some(p) = f.platform.as_ref().filter(|p| !missing.contains(p)) {
                missing.push(p.clone());
            }
        }
        missing
    }

    fn missing_finding(&self, missing: &[Platform]) -> Finding {
        let list = platform_list(missing);
        Finding::error(
            FindingKind::PlatformMissing,
            format!(
                "{} does not include {list}: pods on those nodes fail to pull with 'no match for platform in manifest'",
                self.name
            ),
        )
        .with_platform(&missing[0])
        .with_image(&self.repository)
    }

    fn single_arch_finding(&self, platform: &Platform) -> Finding {
        Finding::error(
            FindingKind::SingleArch,
            format!(
                "{} is a single {platform} image, not an index: on nodes of another architecture its programs fail with 'exec format error'",
                self.name
            ),
        )
        .with_platform(platform)
        .with_image(&self.repository)
    }
}

/// `linux/amd64, linux/arm64`.
pub fn platform_list(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read the build report {path}: {error}; run `archbuild build` first or pass --report FILE")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}:{line}:{column}: not a valid archbuild report: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: report version {found} is not supported; this archbuild reads version {REPORT_VERSION}")]
    Version { path: PathBuf, found: u32 },
}

impl Report {
    /// Reads and validates a report file.
    pub fn load(path: &Path) -> Result<Report, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|error| ReportError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Report::parse(&text, path)
    }

    /// Parses report JSON; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Report, ReportError> {
        let report: Report = serde_json::from_str(text).map_err(|e| ReportError::Parse {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if report.version != REPORT_VERSION {
            return Err(ReportError::Version {
                path: path.to_path_buf(),
                found: report.version,
            });
        }
        Ok(report)
    }

    /// Every finding of the report: its own, then each image's.
    pub fn all_findings(&self) -> Vec<Finding> {
        let mut all = self.findings.clone();
        for image in &self.images {
            all.extend(image.findings.iter().cloned());
        }
        all
    }
}

#[cfg(test)]
mod tests;
