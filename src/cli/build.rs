//! `archbuild build`: the project file and its plan, then the release the library runs
//! ([`pipeline::release`]: build, check, publish or write the layout, verify, report), with
//! progress drawn on standard error. Ctrl-C (or SIGTERM) cancels the builds and exits 2.
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::buildkit::{BuildOptions, DockerEngine};
use crate::cli::progress::{self, ProgressMode};
use crate::cli::{build_output, project, Context};
use crate::config::overrides::{self, Overrides};
use crate::config::Project;
use crate::endpoint::EndpointEnv;
use crate::finding::Outcome;
use crate::oci::Compression;
use crate::pipeline::{self, Output, ReleaseOptions};
use crate::plan;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these images (the NAME of [images.NAME]); all when none are given. Without an
    /// archbuild.toml: the build context folder, as `docker build CONTEXT`.
    #[arg(value_name = "IMAGE|CONTEXT")]
    pub images: Vec<String>,
    /// As `docker build -t`: the image's [REGISTRY/]REPOSITORY[:TAG] (repeatable, one
    /// repository); overrides the project file's repository and tags for this run.
    #[arg(short = 't', long = "tag", value_name = "REF")]
    pub tags: Vec<String>,
    /// As `docker build -f`: the Dockerfile, relative to the current folder.
    #[arg(short = 'f', long = "file", value_name = "DOCKERFILE")]
    pub file: Option<PathBuf>,
    /// A build argument KEY=VALUE (KEY alone: from the environment), added to the project's.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// The Dockerfile stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// A label KEY=VALUE for the image, added to the project's.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// The platforms to build, comma-separated (default without a project file:
    /// linux/amd64,linux/arm64).
    #[arg(long, value_name = "LIST")]
    pub platform: Option<String>,
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
    let (project, images) = project_of(&args, ctx)?;
    let plan = plan::expand(&project, &EndpointEnv::from_process(), &images)?;
    for job in &plan.jobs {
        if let Some(dir) = &job.builder.tls {
            crate::buildkit::session::tls::use_folder(&job.builder.url, dir);
        }
    }
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

/// The project of this run and the images selected: the project file with the `docker
/// build` flags applied, or, without a project file, the one image the flags and the context
/// describe.
fn project_of(args: &Args, ctx: &Context) -> anyhow::Result<(Project, Vec<String>)> {
    let cwd = std::env::current_dir()?;
    let overrides = Overrides {
        tags: args.tags.clone(),
        dockerfile: args.file.clone(),
        build_args: args.build_args.clone(),
        target: args.target.clone(),
        labels: args.labels.clone(),
        platforms: args.platform.clone(),
    };
    let env = |key: &str| std::env::var(key).ok();
    match project::load_optional(ctx)? {
        Some(mut project) => {
            overrides::apply(&mut project, &args.images, &cwd, &overrides, &env)
                .map_err(anyhow::Error::msg)?;
            Ok((project, args.images.clone()))
        }
        None => {
            let [context] = args.images.as_slice() else {
                anyhow::bail!(
                    "no {} in {} or any parent folder; give the build context as `docker build` takes it (`archbuild build -t REF .`), or run `archbuild init` to write a project file",
                    crate::config::FILE_NAME,
                    cwd.display()
                );
            };
            let project =
                overrides::project_for_context(Path::new(context), &cwd, &overrides, &env)
                    .map_err(anyhow::Error::msg)?;
            Ok((project, Vec::new()))
        }
    }
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
            registry: pipeline::registry_options(project, &args.insecure_registries),
        },
        compression: args.compression,
        allow_findings: args.allow_findings,
        metadata_file: args.metadata_file.clone(),
    }
}
