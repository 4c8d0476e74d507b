//! `archbuild build`: the project file and its plan, then the release the library runs
//! ([`pipeline::release`]: build, check, publish or write the layout, verify, report), with
//! progress drawn on standard error. Ctrl-C (or SIGTERM) cancels the builds and exits 2.
use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::buildkit::{BuildOptions, DockerEngine};
use crate::cli::progress::{self, ProgressMode};
use crate::cli::{build_output, project, Context};
use crate::config::Project;
use crate::endpoint::EndpointEnv;
use crate::finding::Outcome;
use crate::oci::Compression;
use crate::pipeline::{self, Output, ReleaseOptions};
use crate::plan;

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
    #[arg(long, value_enum, default_value_t = Compression::Gzip)]
    pub compression: Compression,
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

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<Outcome> {
    let project = project::load(ctx)?;
    let plan = plan::expand(&project, &EndpointEnv::from_process(), &args.images)?;
    let engine = DockerEngine::new();
    let general = pipeline::preflight(&engine, &plan).await;
    if !args.json {
        for finding in &general {
            eprintln!(
                "warning: {}",
                crate::finding::for_terminal(&finding.message)
            );
        }
    }
    let (events, received) = mpsc::channel(256);
    let drawer = tokio::spawn(progress::draw(args.progress, received));
    let options = release_options(&args, &project);
    let release = pipeline::release(&engine, &project, &plan, general, &options, events).await;
    let _ = drawer.await;
    let release = release?;
    if release.blocked {
        eprintln!(
            "archbuild: not publishing: the content check found errors (--allow-findings publishes anyway)"
        );
    }
    build_output::print(&release, args.json)?;
    Ok(release.outcome())
}

fn release_options(args: &Args, project: &Project) -> ReleaseOptions {
    let output = if args.push {
        Output::Push(pipeline::registry_options(
            project,
            &args.insecure_registries,
        ))
    } else if args.no_output {
        Output::None
    } else {
        Output::Layout
    };
    ReleaseOptions {
        output,
        build: BuildOptions {
            jobs_per_endpoint: args.jobs.map(usize::from),
            no_cache: args.no_cache,
            cache_dir: Some(project.dir.join(".archbuild/cache")),
            keep_temporary_tags: false,
        },
        compression: args.compression,
        allow_findings: args.allow_findings,
        metadata_file: args.metadata_file.clone(),
    }
}
