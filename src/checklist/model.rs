//! What the checklist says about each image, computed from the report: the data the templates
//! render (and what `--format json` prints). The wording lives in the templates.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::finding::{Finding, FindingKind, Severity};
use crate::k8s::{self, Workload, WorkloadKind};
use crate::platform::Platform;
use crate::report::{Classification, ImageReport, Report};

/// The whole checklist.
#[derive(Clone, Debug, Serialize)]
pub struct Checklist {
    /// When the build finished (the report's `created`).
    pub created: String,
    /// The node architectures the project targets: every image's required platforms, as
    /// `kubernetes.io/arch` values (`amd64`, `arm64`).
    pub node_architectures: Vec<String>,
    pub images: Vec<ImageChecklist>,
    /// Present when the project targets arm64: how to taint the arm64 pool during a migration
    /// and admit the images verified to cover it.
    pub migration: Option<Migration>,
}

/// One image's entry.
#[derive(Clone, Debug, Serialize)]
pub struct ImageChecklist {
    pub name: String,
    pub repository: String,
    pub tags: Vec<String>,
    /// `verified-multi-arch`, `single-arch`, `missing-platform`, `content-mismatch`, `unverified`.
    pub classification: &'static str,
    /// The finding behind the classification.
    pub finding: Option<Finding>,
    /// `REPO@sha256:…` of the index (or of the only image).
    pub reference: Option<String>,
    /// `REPO@sha256:…` of each platform's image.
    pub platform_references: Vec<PlatformReference>,
    pub required_platforms: Vec<Platform>,
    /// Built platforms whose content passed the checks.
    pub covered_platforms: Vec<Platform>,
    /// Node architectures the image does not run on.
    pub uncovered_architectures: Vec<String>,
    /// `["linux/amd64", "linux/arm64"]`: the platforms line `archbuild.toml` should have.
    pub platforms_toml: String,
    /// The node-affinity patch that keeps workloads of this image where it runs, when it does
    /// not run on every node architecture.
    pub interim_patch: Option<InterimPatch>,
    pub covers_arm64: bool,
    /// What each CPU-level finding means for scheduling, one per platform and level.
    pub cpu_levels: Vec<CpuLevel>,
}

/// A platform's image needs a newer CPU than the platform guarantees: which nodes can run it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CpuLevel {
    pub platform: Platform,
    /// `x86-64-v3`, `ARMv7`.
    pub needs: String,
    /// The Node Feature Discovery label a `nodeAffinity` would select on, where NFD has one
    /// by default (`feature.node.kubernetes.io/cpu-cpuid.AVX2` for x86-64-v3).
    pub label: Option<String>,
    /// What to do where there is no such label.
    pub note: String,
}

/// The scheduling consequence of each `cpu-level-mismatch` finding. Pure.
pub fn cpu_levels(findings: &[Finding]) -> Vec<CpuLevel> {
    let mut out: Vec<CpuLevel> = Vec::new();
    for f in findings
        .iter()
        .filter(|f| f.kind == FindingKind::CpuLevelMismatch)
    {
        let (Some(platform), Some(needs)) = (f.platform.clone(), f.actual.clone()) else {
            continue;
        };
        if out
            .iter()
            .any(|c| c.platform == platform && c.needs == needs)
        {
            continue;
        }
        // NFD labels CPUID features; AVX2 and AVX512F are labelled by default, SSE4.2 and
        // POPCNT (x86-64-v2) are on its default deny list.
        let (label, note) = match needs.as_str() {
            "x86-64-v3" => (Some("feature.node.kubernetes.io/cpu-cpuid.AVX2"), String::new()),
            "x86-64-v4" => (Some("feature.node.kubernetes.io/cpu-cpuid.AVX512F"), String::new()),
            "x86-64-v2" => (None, "Node Feature Discovery labels no x86-64-v2 feature by default (SSE4.2 and POPCNT are on its deny list): label the nodes that have them yourself, or rebuild for the baseline".to_string()),
            _ => (None, format!("only {needs} and newer boards can run it: keep its pods off older ones with a node label of your own, or rebuild for the platform's level")),
        };
        out.push(CpuLevel {
            platform,
            needs,
            label: label.map(String::from),
            note,
        });
    }
    out
}

/// A platform and the digest-pinned reference of its image.
#[derive(Clone, Debug, Serialize)]
pub struct PlatformReference {
    pub platform: Platform,
    pub reference: String,
}

/// The interim node-affinity patch for a workload of an image.
#[derive(Clone, Debug, Serialize)]
pub struct InterimPatch {
    /// The `kubernetes.io/arch` values it allows.
    pub architectures: Vec<String>,
    pub file_name: String,
    pub yaml: String,
    pub command: String,
}

/// The tainted-pool migration to arm64.
#[derive(Clone, Debug, Serialize)]
pub struct Migration {
    pub taint_command: String,
    pub untaint_command: String,
    /// The images verified to cover arm64, whose workloads get the toleration.
    pub images: Vec<String>,
    pub toleration_file: String,
    pub toleration_yaml: String,
    pub toleration_command: String,
}

/// Placeholders the reader replaces with their own workload.
const WORKLOAD: &str = "<workload>";
const NAMESPACE: &str = "<namespace>";

/// Builds the checklist data of a report.
pub fn build(report: &Report) -> Checklist {
    let node_architectures: Vec<String> = report
        .images
        .iter()
        .flat_map(|i| i.required_platforms.iter().map(|p| p.architecture.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let images: Vec<ImageChecklist> = report
        .images
        .iter()
        .map(|i| image(i, &node_architectures))
        .collect();
    let migration = node_architectures
        .iter()
        .any(|a| a == "arm64")
        .then(|| migration(&images))
        .flatten();
    Checklist {
        created: report.created.clone(),
        node_architectures,
        images,
        migration,
    }
}

fn image(report: &ImageReport, node_architectures: &[String]) -> ImageChecklist {
    let classification = report.classification();
    let covered = covered_platforms(report, &classification);
    let uncovered: Vec<String> = node_architectures
        .iter()
        .filter(|arch| !covered.iter().any(|p| &p.architecture == *arch))
        .cloned()
        .collect();
    let runs_on: Vec<String> = node_architectures
        .iter()
        .filter(|a| !uncovered.contains(a))
        .cloned()
        .collect();
    let interim_patch = if uncovered.is_empty() {
        None
    } else {
        interim_patch(&report.name, &runs_on)
    };
    let mut wanted: Vec<Platform> = report.required_platforms.clone();
    for arch in node_architectures {
        if !wanted.iter().any(|p| &p.architecture == arch) {
            if let Ok(p) = Platform::new("linux", arch, None) {
                wanted.push(p);
            }
        }
    }
    ImageChecklist {
        name: report.name.clone(),
        repository: report.repository.clone(),
        tags: report.tags.clone(),
        classification: classification.as_str(),
        finding: classification.finding().cloned(),
        reference: report.pinned_reference(),
        platform_references: report
            .manifests
            .iter()
            .map(|(p, d)| PlatformReference {
                platform: p.clone(),
                reference: format!("{}@{d}", report.repository),
            })
            .collect(),
        required_platforms: report.required_platforms.clone(),
        covers_arm64: covered.iter().any(|p| p.architecture == "arm64"),
        covered_platforms: covered,
        uncovered_architectures: uncovered,
        platforms_toml: format!(
            "[{}]",
            wanted
                .iter()
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        interim_patch,
        cpu_levels: cpu_levels(&report.findings),
    }
}

/// The built platforms whose content had no error finding.
fn covered_platforms(report: &ImageReport, classification: &Classification) -> Vec<Platform> {
    let broken: BTreeSet<Platform> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error && f.kind != FindingKind::PlatformMissing)
        .filter_map(|f| f.platform.clone())
        .collect();
    if matches!(classification, Classification::ContentMismatch { .. }) && broken.is_empty() {
        // A content finding without a platform: nothing can be said to run.
        return Vec::new();
    }
    report
        .built_platforms
        .iter()
        .filter(|p| !broken.contains(p))
        .cloned()
        .collect()
}

fn placeholder(kind: WorkloadKind) -> Workload {
    Workload {
        kind,
        namespace: NAMESPACE.into(),
        name: WORKLOAD.into(),
        pod_spec: Default::default(),
    }
}

fn interim_patch(image: &str, architectures: &[String]) -> Option<InterimPatch> {
    let mut patch =
        k8s::affinity_patch(&placeholder(WorkloadKind::Deployment), architectures).ok()?;
    patch.file_name = format!("{image}.affinity.yaml");
    Some(InterimPatch {
        architectures: architectures.to_vec(),
        command: patch.template_command(),
        file_name: patch.file_name,
        yaml: patch.yaml,
    })
}

fn migration(images: &[ImageChecklist]) -> Option<Migration> {
    let mut patch = k8s::toleration_patch(&placeholder(WorkloadKind::Deployment)).ok()?;
    patch.file_name = "arm64-migration.toleration.yaml".into();
    Some(Migration {
        taint_command: k8s::taint_command(),
        untaint_command: format!(
            "kubectl taint nodes -l {}=arm64 {}-",
            k8s::ARCH_LABEL,
            k8s::MIGRATION_TAINT_KEY
        ),
        images: images
            .iter()
            .filter(|i| i.covers_arm64 && i.classification == "verified-multi-arch")
            .map(|i| i.name.clone())
            .collect(),
        toleration_command: patch.template_command(),
        toleration_file: patch.file_name,
        toleration_yaml: patch.yaml,
    })
}
