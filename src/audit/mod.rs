//! `archbuild audit`: before pods land on nodes of another architecture, find every workload
//! whose container images do not cover the cluster's platforms.
//!
//! The flow: read the manifests ([`documents`]), pick out the workloads ([`crate::k8s`]),
//! resolve each distinct image once, concurrently, through a [`PlatformResolver`], judge
//! ([`evaluate`], pure), and write the patches. `--check-bases` adds the `FROM` images of the
//! project's Dockerfiles ([`bases`]).

pub mod bases;
mod bounded_yaml;
pub mod documents;
pub mod evaluate;
pub mod nodes;
pub mod resolver;

use std::collections::BTreeMap;

use crate::reference::ImageRef;
use serde::Serialize;

use crate::finding::{Finding, FindingKind};
use crate::k8s::{Patch, Workload, WorkloadError};
use crate::platform::Platform;
use crate::report::platform_list;

pub use bases::BaseImage;
pub use documents::Document;
pub use evaluate::{evaluate, Evaluation, EXEC_FORMAT_ERROR, NO_MATCH_FOR_PLATFORM};
pub use resolver::{
    resolve_all, ImagePlatforms, PlatformResolver, ResolveError, StoreFactory, StoreResolver,
};

/// What an audit found.
#[derive(Debug, Default)]
pub struct Audit {
    pub findings: Vec<Finding>,
    pub workloads: Vec<Workload>,
    /// Every distinct image, what it covers or why that is not known.
    pub images: Vec<ImageSummary>,
    pub affinity_patches: Vec<Patch>,
    pub toleration_patches: Vec<Patch>,
    /// What could not be checked (an image reference that does not parse, a registry that
    /// cannot be reached): the run exits 2 after reporting the rest.
    pub errors: Vec<String>,
}

/// One distinct image of the audit.
#[derive(Clone, Debug, Serialize)]
pub struct ImageSummary {
    /// As written in the manifests (or the Dockerfile).
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<ImagePlatforms>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where it is used: `Deployment/prod/api container envoy`, `Dockerfile:3`.
    pub used_by: Vec<String>,
}

/// The workloads of parsed documents; other kinds become `unknown-kind` warnings.
pub fn workloads(docs: &[Document]) -> Result<(Vec<Workload>, Vec<Finding>), String> {
    let mut workloads = Vec::new();
    let mut findings = Vec::new();
    for doc in docs {
        match Workload::from_value(&doc.value) {
            Ok(Some(w)) => workloads.push(w),
            Ok(None) => findings.push(Finding::warning(
                FindingKind::UnknownKind,
                format!(
                    "{}: a document of kind {} runs no pods archbuild reads (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod); skipped",
                    doc.location(),
                    doc.kind()
                ),
            )),
            Err(e @ (WorkloadError::Invalid { .. } | WorkloadError::Unnamed { .. })) => {
                return Err(format!("{}: {e}", doc.location()))
            }
        }
    }
    Ok((workloads, findings))
}

/// Audits workloads and base images against the cluster's platforms.
pub async fn run<R: PlatformResolver>(
    resolver: &R,
    workloads: Vec<Workload>,
    bases: &[BaseImage],
    cluster: &[Platform],
) -> Audit {
    let mut uses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for w in &workloads {
        for c in w.containers() {
            if let Some(image) = c.image {
                let user = format!("{} {} {}", w.id(), c.role.describe(), c.name);
                uses.entry(image).or_default().push(user);
            }
        }
    }
    for b in bases {
        let user = format!("{}:{}", b.dockerfile.display(), b.line);
        uses.entry(b.image.clone()).or_default().push(user);
    }

    let mut audit = Audit::default();
    let mut parsed: BTreeMap<String, ImageRef> = BTreeMap::new();
    for (image, users) in &uses {
        match crate::source::parse_registry(image) {
            Ok(r) => {
                parsed.insert(image.clone(), r);
            }
            Err(e) => {
                audit
                    .errors
                    .push(format!("{e} (used by {})", users.join(", ")));
                audit
                    .images
                    .push(summary(image, users, None, Some(e.to_string())));
            }
        }
    }
    let references: Vec<ImageRef> = parsed.values().cloned().collect();
    let resolved = resolve_all(resolver, &references).await;

    let mut covered: BTreeMap<String, ImagePlatforms> = BTreeMap::new();
    for (image, reference) in &parsed {
        let users = &uses[image];
        match resolved.get(&reference.whole()) {
            Some(Ok(p)) => {
                covered.insert(image.clone(), p.clone());
                audit
                    .images
                    .push(summary(image, users, Some(p.clone()), None));
            }
            Some(Err(e)) => {
                audit
                    .errors
                    .push(format!("{image}: {e} (used by {})", users.join(", ")));
                audit
                    .images
                    .push(summary(image, users, None, Some(e.to_string())));
            }
            None => {}
        }
    }

    let judgement = evaluate(&workloads, &covered, cluster);
    audit.findings = judgement.findings;
    audit
        .findings
        .extend(base_findings(bases, &covered, cluster));
    audit.affinity_patches = judgement.affinity_patches;
    audit.toleration_patches = judgement.toleration_patches;
    audit.workloads = workloads;
    audit
}

fn summary(
    image: &str,
    users: &[String],
    resolved: Option<ImagePlatforms>,
    error: Option<String>,
) -> ImageSummary {
    ImageSummary {
        image: image.into(),
        resolved,
        error,
        used_by: users.to_vec(),
    }
}

/// A base image must cover every platform its Dockerfile is built for.
fn base_findings(
    bases: &[BaseImage],
    covered: &BTreeMap<String, ImagePlatforms>,
    platforms: &[Platform],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for base in bases {
        let Some(c) = covered.get(&base.image) else {
            continue;
        };
        let has = platform_list(&c.platforms());
        let required = if base.platforms.is_empty() {
            platforms
        } else {
            &base.platforms
        };
        for p in required.iter().filter(|p| !c.runs_on(p)) {
            let at = format!("{}:{}", base.dockerfile.display(), base.line);
            let (kind, message) = match c {
                ImagePlatforms::Index { .. } => (
                    FindingKind::PlatformMissing,
                    format!("{at}: base image {} is an index without {p} (it has {has}): the {p} build fails with '{NO_MATCH_FOR_PLATFORM}'", base.image),
                ),
                ImagePlatforms::Single { .. } => (
                    FindingKind::SingleArch,
                    format!("{at}: base image {} is a single {has} image: the {p} build gets {has} programs, whose RUN steps and containers fail with '{EXEC_FORMAT_ERROR}' on {p}", base.image),
                ),
            };
            out.push(
                Finding::error(kind, message)
                    .with_platform(p)
                    .with_image(&base.image)
                    .with_expected_actual(p, &has),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
