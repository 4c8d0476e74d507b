//! The whole `archbuild build` flow as one library call, in its order: build every job of the
//! plan, check each image in the daemon that built it, publish one index per image (OCI
//! layout or push) unless the check blocks it, read the result back, and write the report and
//! the rollout checklist. The command line only draws progress and prints the [`Release`].

use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::buildkit::{BuildEngine, BuildEvent, BuildOptions, BuiltImage};
use crate::check::CheckReport;
use crate::config::Project;
use crate::finding::{Finding, Outcome};
use crate::oci::Compression;
use crate::plan::Plan;
use crate::publish::{PublishOptions, Published, Target};
use crate::registry::RegistryOptions;
use crate::verify::VerifyReport;

pub mod build;
pub mod overlap;
pub mod report;
pub mod stages;

pub use build::{build_plan, preflight};
pub use report::{
    now_rfc3339, report, write_metadata, write_report, Outcomes, ReportFiles, Stopwatch,
};
pub use stages::{
    check_built, check_options, daemons, publish_all, publish_images, registry_options,
    verify_published, PipelineError,
};

/// Where a release puts the checked images.
#[derive(Debug, Clone)]
pub enum Output {
    /// The project's OCI layout folder.
    Layout,
    /// Each image's repository (`--push`).
    Push(RegistryOptions),
    /// Nowhere: the images stay in their builders' daemons (`--no-output`).
    None,
}

/// How one release runs.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    pub output: Output,
    pub build: BuildOptions,
    pub compression: Compression,
    /// Publish even when the content check finds errors.
    pub allow_findings: bool,
    /// `--metadata-file`.
    pub metadata_file: Option<PathBuf>,
}

/// What a release did, stage by stage.
#[derive(Debug)]
pub struct Release {
    /// Findings that belong to no image (pre-flight, emulation).
    pub general: Vec<Finding>,
    pub built: Vec<BuiltImage>,
    pub checks: Vec<CheckReport>,
    pub published: Vec<Published>,
    pub verified: Vec<VerifyReport>,
    /// The check found errors and nothing was published.
    pub blocked: bool,
    pub files: ReportFiles,
}

impl Release {
    /// Every finding of every stage, general ones first.
    pub fn findings(&self) -> Vec<Finding> {
        let mut findings = self.general.clone();
        findings.extend(self.checks.iter().flat_map(|c| c.findings.iter().cloned()));
        findings.extend(
            self.verified
                .iter()
                .flat_map(|v| v.findings.iter().cloned()),
        );
        findings
    }

    /// The exit outcome.
    pub fn outcome(&self) -> Outcome {
        Outcome::of(&self.findings())
    }
}

/// Runs the release of `plan` after the pre-flight that gave `general`; progress of the
/// builds goes to `events`.
pub async fn release<E: BuildEngine>(
    engine: &E,
    project: &Project,
    plan: &Plan,
    general: Vec<Finding>,
    options: &ReleaseOptions,
    events: mpsc::Sender<BuildEvent>,
) -> anyhow::Result<Release> {
    let mut timings = Vec::new();
    // Checked before anything is built, while the builders are asked and the contexts walked.
    let access = async {
        if let Output::Push(registry) = &options.output {
            stages::check_push_access(project, &plan.jobs, registry).await?;
        }
        Ok(())
    };
    let publish_opts = publish_options(project, options.compression);
    let publishing = match options.output {
        Output::None => None,
        _ => Some(&publish_opts),
    };
    // Each job's check starts as soon as its build finishes (`overlap`).
    let (builds, watched) = mpsc::channel(64);
    let watching = overlap::Watch {
        project: std::sync::Arc::new(project.clone()),
        publishing: publishing.cloned(),
    };
    let early = overlap::watch(watching, watched, events);
    let watch = Stopwatch::start();
    let built = build_plan(engine, plan, &options.build, builds, access).await;
    let early = early.await.unwrap_or_default();
    let built = built?;
    watch.stop("build", &mut timings);

    let daemons = daemons(&built).await?;
    let watch = Stopwatch::start();
    let stages::Checked {
        reports: checks,
        exported: check_exports,
    } = build::until_signal(
        check_built(project, &daemons, &built, publishing, early),
        "checking was stopped; nothing was published",
    )
    .await??;
    watch.stop("check", &mut timings);
    let check_findings: Vec<Finding> = checks.iter().flat_map(|c| c.findings.clone()).collect();
    let blocked = Outcome::of(&check_findings) == Outcome::Findings && !options.allow_findings;

    let target = match &options.output {
        Output::Layout => Some(Target::Layout(project.output.clone())),
        Output::Push(registry) => Some(Target::Push(registry.clone())),
        Output::None => None,
    };
    let (published, verified) = match target.filter(|_| !blocked) {
        None => (Vec::new(), Vec::new()),
        Some(target) => {
            let watch = Stopwatch::start();
            let images = publish_images(project, &built);
            let published = build::until_signal(
                publish_all(&daemons, &images, &target, &publish_opts),
                "publishing was stopped; tags are written only after every image's content is confirmed, and the temporary files were removed",
            )
            .await??;
            let step = match target {
                Target::Push(_) => "push",
                Target::Layout(_) => "write layout",
            };
            watch.stop(step, &mut timings);
            let watch = Stopwatch::start();
            let verified = build::until_signal(
                verify_published(project, &published, &target),
                "verification was stopped; the tags were already written",
            )
            .await??;
            watch.stop("verify", &mut timings);
            (published, verified)
        }
    };

    let outcomes = Outcomes {
        built: &built,
        checks: &checks,
        check_exports: &check_exports,
        published: &published,
        verified: &verified,
        general: general.clone(),
        pushed: matches!(options.output, Output::Push(_)),
        timings,
    };
    let files = write_report(project, &report(project, &outcomes, now_rfc3339()))?;
    if let Some(file) = &options.metadata_file {
        write_metadata(file, &published)?;
    }
    Ok(Release {
        general,
        built,
        checks,
        published,
        verified,
        blocked,
        files,
    })
}

/// The publish settings of a project with the run's compression.
fn publish_options(project: &Project, compression: Compression) -> PublishOptions {
    PublishOptions {
        format: project.index_format,
        compression,
        cache_dir: project.dir.join(".archbuild/cache"),
        annotations: Default::default(),
    }
}
