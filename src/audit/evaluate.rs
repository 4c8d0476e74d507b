//! The audit's judgement, pure: given the workloads, what each image covers and the cluster's
//! platforms, which containers would fail on which nodes, which workloads are pinned, and the
//! patches that pin the broken ones (and admit the sound ones to a tainted arm64 pool).

use std::collections::BTreeMap;

use crate::finding::{Finding, FindingKind, Severity};
use crate::k8s::{self, ContainerRef, Patch, Workload};
use crate::platform::Platform;

use super::resolver::ImagePlatforms;

/// The symptom of a pod on a node its single-arch image was not built for.
pub const EXEC_FORMAT_ERROR: &str = "exec format error";
/// The symptom of a pod on a node whose platform its image's index lacks.
pub const NO_MATCH_FOR_PLATFORM: &str = "no match for platform in manifest";

/// The judgement.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    pub findings: Vec<Finding>,
    /// Node-affinity patches for the workloads with a container that fails somewhere.
    pub affinity_patches: Vec<Patch>,
    /// Toleration patches for the workloads whose every image covers linux/arm64 (only when
    /// the cluster has arm64 nodes).
    pub toleration_patches: Vec<Patch>,
}

/// Judges every workload. `images` maps each image as written in a manifest to what it covers;
/// images missing from it (unresolvable) are left out of the judgement, not counted as sound.
pub fn evaluate(
    workloads: &[Workload],
    images: &BTreeMap<String, ImagePlatforms>,
    cluster: &[Platform],
) -> Evaluation {
    let mut out = Evaluation::default();
    let arm64 = Platform::new("linux", "arm64", None)
        .ok()
        .filter(|a| cluster.contains(a));
    for workload in workloads {
        let pin = workload.arch_pin();
        let reachable: Vec<&Platform> = cluster
            .iter()
            .filter(|p| pin.as_ref().is_none_or(|pin| pin.allows(&p.architecture)))
            .collect();
        let containers = workload.containers();
        let mut broken = false;
        for container in &containers {
            let Some(covered) = container.image.as_ref().and_then(|i| images.get(i)) else {
                continue;
            };
            for node in &reachable {
                if !covered.runs_on(node) {
                    broken = true;
                    out.findings
                        .push(failure(workload, container, covered, node));
                }
            }
        }
        if let Some(pin) = &pin {
            out.findings.push(pinned(
                workload,
                &pin.to_string(),
                reachable.is_empty(),
                broken,
            ));
        }
        if broken {
            let architectures = common_architectures(&containers, images, cluster);
            match k8s::affinity_patch(workload, &architectures) {
                Ok(patch) => out.affinity_patches.push(patch),
                Err(e) => out.findings.push(about(
                    Finding::warning(FindingKind::Pinned, e.to_string()),
                    workload,
                )),
            }
        } else if let Some(arm64) = &arm64 {
            let all_cover = containers.iter().all(|c| {
                c.image
                    .as_ref()
                    .and_then(|i| images.get(i))
                    .is_some_and(|covered| covered.runs_on(arm64))
            });
            let allowed = pin.as_ref().is_none_or(|p| p.allows("arm64"));
            if all_cover && allowed && !containers.is_empty() {
                if let Ok(patch) = k8s::toleration_patch(workload) {
                    out.toleration_patches.push(patch);
                }
            }
        }
    }
    out
}

/// The `kubernetes.io/arch` values of the cluster platforms on which every container runs.
fn common_architectures(
    containers: &[ContainerRef],
    images: &BTreeMap<String, ImagePlatforms>,
    cluster: &[Platform],
) -> Vec<String> {
    let mut archs: Vec<String> = Vec::new();
    for arch in cluster.iter().map(|p| &p.architecture) {
        if archs.contains(arch) {
            continue;
        }
        let all_run = cluster
            .iter()
            .filter(|p| &p.architecture == arch)
            .all(|node| {
                containers.iter().all(|c| {
                    c.image
                        .as_ref()
                        .and_then(|i| images.get(i))
                        .is_none_or(|covered| covered.runs_on(node))
                })
            });
        if all_run {
            archs.push(arch.clone());
        }
    }
    archs
}

fn failure(
    workload: &Workload,
    container: &ContainerRef,
    covered: &ImagePlatforms,
    node: &Platform,
) -> Finding {
    let image = container.image.clone().unwrap_or_default();
    let has = crate::report::platform_list(&covered.platforms());
    let who = format!(
        "{} {} {}",
        workload.id(),
        container.role.describe(),
        container.name
    );
    let (kind, symptom, message) = match covered {
        ImagePlatforms::Index { .. } => (
            FindingKind::PlatformMissing,
            NO_MATCH_FOR_PLATFORM,
            format!(
                "{who}: image {image} is an index without {node} (it has {has}): on {} nodes the pull fails with '{NO_MATCH_FOR_PLATFORM}' (ImagePullBackOff)",
                node.architecture
            ),
        ),
        ImagePlatforms::Single { .. } => (
            FindingKind::SingleArch,
            EXEC_FORMAT_ERROR,
            format!(
                "{who}: image {image} is a single {has} image, not an index: on {} nodes the container crashes with '{EXEC_FORMAT_ERROR}' (CrashLoopBackOff)",
                node.architecture
            ),
        ),
    };
    let mut f = Finding::error(kind, message)
        .with_platform(node)
        .with_image(image)
        .with_expected_actual(node, has);
    f.container = Some(container.name.clone());
    f.symptom = Some(symptom.to_string());
    about(f, workload)
}

/// Sets the finding's `workload` (`Kind/namespace/name`).
fn about(mut finding: Finding, workload: &Workload) -> Finding {
    finding.workload = Some(workload.id());
    finding
}

fn pinned(workload: &Workload, pin: &str, unschedulable: bool, broken: bool) -> Finding {
    let (severity, message) = if unschedulable {
        (
            Severity::Warning,
            format!("{} is pinned by {pin}, which no node of the cluster satisfies: its pods stay Pending", workload.id()),
        )
    } else if broken {
        (
            Severity::Warning,
            format!("{} is pinned by {pin}, but the pin lets it onto nodes an image lacks (see the errors)", workload.id()),
        )
    } else {
        (
            Severity::Info,
            format!(
                "{} is pinned by {pin}, and its images cover the nodes it may run on",
                workload.id()
            ),
        )
    };
    about(
        Finding::new(FindingKind::Pinned, severity, message),
        workload,
    )
}
