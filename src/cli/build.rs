//! `archbuild build`: the project file, its plan, a Dockerfile pre-flight, one BuildKit build
//! per (image, platform) on its builder with progress on standard error, then the content
//! check of every image, one index per image written to the OCI layout (or pushed with
//! `--push`), read back and verified, and the report and rollout checklist written.
//! Ctrl-C (or SIGTERM) cancels the builds, removes their temporary tags and exits 2.
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::buildkit::{self, dockerfile, BuildOptions, BuildRequest, BuiltImage, DockerEngine};
use crate::check::{self, CheckReport};
use crate::checklist;
use crate::cli::progress::{self, ProgressMode};
use crate::cli::{project, Context};
use crate::config::Project;
use crate::endpoint::EndpointEnv;
use crate::finding::{Finding, FindingsDocument, Outcome};
use crate::pipeline::{self, Stopwatch};
use crate::plan::{self, Plan};
use crate::publish::{self, Compression, IndexFormat, PublishOptions, Published, Target};
use crate::report::Report;
use crate::verify::VerifyReport;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these images (the NAME of [images.NAME]); all when none are given.
    #[arg(value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Push each image's index to its repository instead of writing the OCI layout.
    #[arg(long)]
    pub push: bool,
    /// Build and check only: the images stay in their builders' daemons (the daemon's own
    /// platform tagged REPO:TAG, as after `docker build`); no OCI layout is written.
    #[arg(long, conflicts_with = "push")]
    pub no_output: bool,
    /// Publish even when the content check finds errors (the exit status is still 1).
    #[arg(long)]
    pub allow_findings: bool,
    /// Write the digests of what was published as JSON, as `docker buildx build
    /// --metadata-file` does (`containerimage.digest`, `image.name`).
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Layer compression of published images.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub compression: CompressionArg,
    /// A registry (HOST[:PORT]) spoken to over plain HTTP; loopback registries always are.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// Concurrent builds per builder endpoint (default 2).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// How progress is shown on standard error.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Build every step again and ignore unchanged-input reuse.
    #[arg(long)]
    pub no_cache: bool,
    /// Print the result as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// `--compression`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CompressionArg {
    Gzip,
    Zstd,
}

/// The `--json` details next to `findings`.
#[derive(Serialize)]
struct Details<'a> {
    images: &'a [BuiltImage],
    checks: &'a [CheckReport],
    published: &'a [Published],
    verified: &'a [VerifyReport],
    report: Option<PathBuf>,
    checklist: Option<PathBuf>,
}

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<Outcome> {
    let project = project::load(ctx)?;
    let plan = plan::expand(&project, &EndpointEnv::from_process(), &args.images)?;
    let engine = DockerEngine::new();
    let mut general = preflight(&plan);
    general.extend(buildkit::emulation_findings(&engine, &requests(&plan)).await);
    if !args.json {
        for finding in &general {
            eprintln!("warning: {}", finding.message);
        }
    }
    let options = BuildOptions {
        jobs_per_endpoint: args.jobs.map(usize::from),
        no_cache: args.no_cache,
        cache_dir: Some(project.dir.join(".archbuild/cache")),
        keep_temporary_tags: false,
    };
    let mut timings = Vec::new();
    let watch = Stopwatch::start();
    let built = build_plan(&engine, &plan, &options, args.progress).await?;
    watch.stop("build", &mut timings);

    let daemons = pipeline::daemons(&built).await?;
    let watch = Stopwatch::start();
    let checks = pipeline::check_built(&project, &daemons, &built).await?;
    watch.stop("check", &mut timings);
    let check_findings: Vec<Finding> = checks.iter().flat_map(|c| c.findings.clone()).collect();
    let blocked = Outcome::of(&check_findings) == Outcome::Findings && !args.allow_findings;

    let target = if args.push {
        Target::Push(pipeline::registry_options(
            &project,
            &args.insecure_registries,
        ))
    } else {
        Target::Layout(project.output.clone())
    };
    let (published, verified) = if blocked {
        eprintln!(
            "archbuild: not publishing: the content check found errors (--allow-findings publishes anyway)"
        );
        (Vec::new(), Vec::new())
    } else if args.no_output {
        (Vec::new(), Vec::new())
    } else {
        let watch = Stopwatch::start();
        let images = pipeline::publish_images(&project, &built);
        let opts = publish_options(&project, args.compression);
        let published = pipeline::publish_all(&daemons, &images, &target, &opts).await?;
        watch.stop(
            if args.push { "push" } else { "write layout" },
            &mut timings,
        );
        let watch = Stopwatch::start();
        let verified = pipeline::verify_published(&project, &published, &target).await?;
        watch.stop("verify", &mut timings);
        (published, verified)
    };

    let outcomes = pipeline::Outcomes {
        built: &built,
        checks: &checks,
        published: &published,
        verified: &verified,
        general: general.clone(),
        pushed: args.push,
        timings,
    };
    let report = pipeline::report(&project, &outcomes, now_rfc3339());
    let (report_path, checklist_path) = write_report(&project, &report)?;
    if let Some(file) = &args.metadata_file {
        let text = serde_json::to_string_pretty(&publish::metadata(&published))?;
        crate::oci::layout::write_atomic(file, format!("{text}\n").as_bytes())
            .with_context(|| format!("writing the metadata file {}", file.display()))?;
    }

    let mut findings = general;
    findings.extend(check_findings);
    findings.extend(verified.iter().flat_map(|v| v.findings.clone()));
    let mut out = std::io::stdout().lock();
    if args.json {
        let document = FindingsDocument {
            findings: findings.clone(),
            details: Details {
                images: &built,
                checks: &checks,
                published: &published,
                verified: &verified,
                report: Some(report_path),
                checklist: Some(checklist_path),
            },
        };
        serde_json::to_writer_pretty(&mut out, &document)?;
        writeln!(out)?;
    } else {
        out.write_all(table(&built).as_bytes())?;
        writeln!(out)?;
        out.write_all(check::render(&checks).as_bytes())?;
        writeln!(out)?;
        out.write_all(summary(&published, &verified).as_bytes())?;
        writeln!(
            out,
            "report: {}\nrollout checklist: {}",
            shown(&report_path).display(),
            shown(&checklist_path).display()
        )?;
    }
    Ok(Outcome::of(&findings))
}

fn publish_options(project: &Project, compression: CompressionArg) -> PublishOptions {
    PublishOptions {
        format: match project.index_format {
            crate::config::IndexFormat::Oci => IndexFormat::Oci,
            crate::config::IndexFormat::Docker => IndexFormat::Docker,
        },
        compression: match compression {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
        },
        cache_dir: project.dir.join(".archbuild/cache"),
        annotations: BTreeMap::new(),
    }
}

/// Writes `.archbuild/report.json` and `.archbuild/checklist.md` (each atomically).
fn write_report(project: &Project, report: &Report) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = project.dir.join(".archbuild");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let report_path = dir.join("report.json");
    let checklist_path = dir.join("checklist.md");
    let json = serde_json::to_string_pretty(report)?;
    crate::oci::layout::write_atomic(&report_path, format!("{json}\n").as_bytes())
        .with_context(|| format!("writing {}", report_path.display()))?;
    let markdown = checklist::render(report, None)?;
    crate::oci::layout::write_atomic(&checklist_path, markdown.as_bytes())
        .with_context(|| format!("writing {}", checklist_path.display()))?;
    Ok((report_path, checklist_path))
}

/// One line per published image: where it went, its digest, its verdict.
fn summary(published: &[Published], verified: &[VerifyReport]) -> String {
    let mut out = String::new();
    for (p, v) in published.iter().zip(verified) {
        let platforms: Vec<String> = p.children.iter().map(|c| c.platform.to_string()).collect();
        let verdict = if v.findings.iter().any(Finding::is_error) {
            "NOT verified"
        } else {
            "verified"
        };
        out.push_str(&format!(
            "{}: {} {} ({verdict}: {})\n",
            p.image,
            p.tags.join(", "),
            p.index_digest,
            platforms.join(", ")
        ));
    }
    out
}

/// A path relative to the current folder when it is inside it.
fn shown(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
}

fn now_rfc3339() -> String {
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The plan's jobs as build requests.
pub fn requests(plan: &Plan) -> Vec<BuildRequest> {
    plan.jobs
        .iter()
        .map(|job| BuildRequest {
            image: job.image.clone(),
            platform: job.platform.clone(),
            context: job.context.clone(),
            dockerfile: job.dockerfile.clone(),
            target: job.target.clone(),
            build_args: job.build_args.clone(),
            labels: job.labels.clone(),
            tags: job.references.clone(),
            endpoint_url: job.builder.url.clone(),
            chosen_by: Some(job.builder.chosen_by.clone()),
            keep_tag: Some(job.platform_tag.clone()),
        })
        .collect()
}

/// Builds every job of `plan` with progress drawn in `mode`, cancelled by SIGINT/SIGTERM.
pub async fn build_plan(
    engine: &DockerEngine,
    plan: &Plan,
    options: &BuildOptions,
    mode: ProgressMode,
) -> anyhow::Result<Vec<BuiltImage>> {
    let cancel = CancellationToken::new();
    let signals = tokio::spawn(cancel_on_signal(cancel.clone()));
    let (tx, rx) = mpsc::channel(256);
    let drawer = tokio::spawn(progress::draw(mode, rx));
    let result = buildkit::run(engine, requests(plan), options, tx, cancel.clone()).await;
    let _ = drawer.await;
    signals.abort();
    match result {
        Ok(built) => Ok(built),
        Err(buildkit::BuildError::Cancelled) => {
            anyhow::bail!("interrupted: the builds were cancelled and their temporary tags removed")
        }
        Err(err) => Err(err).context("build failed"),
    }
}

async fn cancel_on_signal(cancel: CancellationToken) {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return,
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("archbuild: interrupted; cancelling the builds");
    cancel.cancel();
}

/// The Dockerfile warnings of every Dockerfile in the plan, each reported once.
pub fn preflight(plan: &Plan) -> Vec<Finding> {
    let mut seen = BTreeSet::new();
    let mut findings = Vec::new();
    let cwd = std::env::current_dir().unwrap_or_default();
    for job in &plan.jobs {
        if !seen.insert(job.dockerfile.clone()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&job.dockerfile) else {
            continue;
        };
        let shown = job.dockerfile.strip_prefix(&cwd).unwrap_or(&job.dockerfile);
        for finding in dockerfile::preflight(&dockerfile::parse(&text), shown) {
            findings.push(finding.with_image(&job.image));
        }
    }
    findings
}

/// The built images as a table: IMAGE, PLATFORM, ID, RESULT, TAGGED.
pub fn table(built: &[BuiltImage]) -> String {
    let mut rows = vec![["IMAGE", "PLATFORM", "ID", "RESULT", "TAGGED"].map(String::from)];
    for image in built {
        let id = image.image_id.trim_start_matches("sha256:");
        let result = if image.reused {
            "unchanged".to_string()
        } else {
            format!(
                "built in {:.1}s, {} cached",
                image.duration.as_secs_f64(),
                image.cached_steps
            )
        };
        rows.push([
            image.image.clone(),
            image.platform.to_string(),
            id[..id.len().min(12)].to_string(),
            result,
            image.tagged.join(", "),
        ]);
    }
    crate::cli::table::render(&rows)
}
