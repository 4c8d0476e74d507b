//! The stages after the build: connect to the builders' daemons, check each platform image
//! in the daemon that built it, publish one index per image (OCI layout or push), and read
//! the result back as a release gate would. Each stage returns what the next one needs.

use std::collections::BTreeMap;

use crate::buildkit::BuiltImage;
use crate::check::{self, CheckOptions, CheckReport};
use crate::config::{Image, Project};
use crate::finding::{Finding, FindingKind};
use crate::platform::Platform;
use crate::publish::{
    self, DaemonMap, PublishError, PublishImage, PublishOptions, Published, Target,
};
use crate::registry::RegistryOptions;
use crate::source_store;
use crate::verify::{self, VerifyOptions, VerifyReport};

/// Why a stage after the build could not run (as opposed to findings about the images).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("builder {url} for {platform}: {detail}")]
    Daemon {
        url: String,
        platform: Platform,
        detail: String,
    },
    #[error("image {image}: check.ignore has a bad glob: {detail}")]
    Glob { image: String, detail: String },
    #[error("checking {image} {platform}: {source}")]
    Check {
        image: String,
        platform: Platform,
        #[source]
        source: Box<check::CheckError>,
    },
    #[error("checking {image} {platform}: the check stopped before its end: {detail}")]
    CheckStopped {
        image: String,
        platform: Platform,
        detail: String,
    },
    #[error("publishing: {0}")]
    Publish(#[from] publish::PublishError),
    #[error("push access, checked before building")]
    PushAccess {
        repository: String,
        #[source]
        source: crate::store::StoreError,
    },
    #[error("reading back {reference}: {source}")]
    Verify {
        reference: String,
        #[source]
        source: crate::store::StoreError,
    },
}

/// Connects to every builder the jobs used, once per endpoint.
pub async fn daemons(built: &[BuiltImage]) -> Result<DaemonMap, PipelineError> {
    let mut by_url: BTreeMap<String, bollard::Docker> = BTreeMap::new();
    let mut by_job = BTreeMap::new();
    for job in built {
        if !by_url.contains_key(&job.endpoint_url) {
            let docker = crate::buildkit::connect(&job.endpoint_url)
                .await
                .map_err(|e| PipelineError::Daemon {
                    url: job.endpoint_url.clone(),
                    platform: job.platform.clone(),
                    detail: e.to_string(),
                })?;
            by_url.insert(job.endpoint_url.clone(), docker);
        }
        let key = (job.image.clone(), job.platform.clone());
        by_job.insert(key, by_url[&job.endpoint_url].clone());
    }
    let default = match by_url.values().next() {
        Some(d) => d.clone(),
        None => crate::buildkit::connect(crate::endpoint::DEFAULT_SOCKET)
            .await
            .map_err(|e| PipelineError::Daemon {
                url: crate::endpoint::DEFAULT_SOCKET.into(),
                platform: Platform::parse("linux/amd64").expect("known platform"),
                detail: e.to_string(),
            })?,
    };
    Ok(DaemonMap { default, by_job })
}

/// What the check stage did: one report per built job, in the jobs' order, and for each
/// whether its image was exported from its daemon (not when the check cache knew it).
#[derive(Debug, Default)]
pub struct Checked {
    pub reports: Vec<CheckReport>,
    pub exported: Vec<bool>,
}

/// The content check of every built image, in its builder's daemon, two at a time. When the
/// images are to be published (`publishing`), the export the check reads also feeds the
/// compression of their layers into the publish cache, so that publishing finds every image
/// there and a release exports each image once. Jobs whose check `early` already ran (see
/// [`super::overlap`]) are not checked again.
pub async fn check_built(
    project: &Project,
    daemons: &DaemonMap,
    built: &[BuiltImage],
    publishing: Option<&PublishOptions>,
    mut early: super::overlap::EarlyChecks,
) -> Result<Checked, PipelineError> {
    use futures_util::{StreamExt, TryStreamExt};
    let slots = publish::convert::Slots::per_core();
    let mut jobs = Vec::new();
    for job in built {
        let done = early.take(job);
        let slots = slots.clone();
        jobs.push(async move {
            if let Some(done) = done {
                return done.await;
            }
            let docker = publish::Daemons::for_job(daemons, &job.image, &job.platform);
            check_job(project, docker, &CheckTarget::of(job), publishing, slots).await
        });
    }
    let results: Vec<(CheckReport, JobRead)> = futures_util::stream::iter(jobs)
        .buffered(2)
        .try_collect()
        .await?;
    let (reports, reads): (Vec<_>, Vec<JobRead>) = results.into_iter().unzip();
    let exported = reads.iter().map(|r| r.exported).collect();
    Ok(Checked { reports, exported })
}

/// Which image a check reads: the project image, its platform and its ID in the daemon.
#[derive(Clone, Debug)]
pub struct CheckTarget {
    pub image: String,
    pub platform: Platform,
    pub image_id: String,
}

impl CheckTarget {
    fn of(job: &BuiltImage) -> CheckTarget {
        CheckTarget {
            image: job.image.clone(),
            platform: job.platform.clone(),
            image_id: job.image_id.clone(),
        }
    }
}

/// How a job's check read its image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobRead {
    /// The daemon exported the image (not when the check cache knew it).
    pub exported: bool,
    /// The same read compressed its layers into the publish cache.
    pub compressed: bool,
}

/// The check of one job's image (from the check cache when it has it) and how it was read.
pub async fn check_job(
    project: &Project,
    docker: &bollard::Docker,
    job: &CheckTarget,
    publishing: Option<&PublishOptions>,
    slots: std::sync::Arc<publish::convert::Slots>,
) -> Result<(CheckReport, JobRead), PipelineError> {
    let image = &project.images[&job.image];
    let opts = check_options(image)?;
    let name = format!("{}:{}", image.reference_base(), image.tags[0]);
    let cache_dir = project.dir.join(".archbuild/cache");
    let key = check::cache::Key {
        image_id: &job.image_id,
        platform: &job.platform,
        name: &name,
        ignore: &image.check.ignore,
        binaries: &image.check.binaries,
        page_size: image.check.page_size,
    };
    if let Some(report) = check::cache::load(&cache_dir, &key) {
        let read = JobRead {
            exported: false,
            compressed: false,
        };
        return Ok((report, read));
    }
    let failed = |source| PipelineError::Check {
        image: job.image.clone(),
        platform: job.platform.clone(),
        source: Box::new(source),
    };
    let read = (job.image_id.as_str(), name.as_str(), &job.platform);
    let tap = match publishing {
        Some(publish) => publish::convert::tap_for(docker, &job.image_id, publish, slots)
            .await
            .map_err(PublishError::from)?,
        None => None,
    };
    let compressed = tap.is_some();
    let report = match tap {
        None => check::check_daemon_image(docker, read.0, read.2, &opts, read.1)
            .await
            .map_err(failed)?,
        Some(tap) => {
            let (report, input, tap) = check::check_daemon_image_tapped(docker, read, &opts, tap)
                .await
                .map_err(failed)?;
            let diff_ids: Vec<String> = input.layers.iter().map(|l| l.digest.clone()).collect();
            let finish = move || tap.finish(&input.config, &diff_ids);
            let io = |source| publish::convert::ConvertError::Io {
                image: job.image_id.clone(),
                source,
            };
            let finished = tokio::task::spawn_blocking(finish).await;
            finished
                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                .map_err(io)
                .map_err(PublishError::from)?;
            report
        }
    };
    check::cache::store(&cache_dir, &key, &report);
    let read = JobRead {
        exported: true,
        compressed,
    };
    Ok((report, read))
}

/// The `check` table of an image as check options.
pub fn check_options(image: &Image) -> Result<CheckOptions, PipelineError> {
    CheckOptions::new(&image.check.ignore, &image.check.binaries)
        .map(|o| o.with_page_size(image.check.page_size))
        .map_err(|e| PipelineError::Glob {
            image: image.name.clone(),
            detail: e.to_string(),
        })
}

/// What to publish: per image, its platform images in the project's platform order.
pub fn publish_images(project: &Project, built: &[BuiltImage]) -> Vec<PublishImage> {
    let mut images: Vec<PublishImage> = Vec::new();
    for job in built {
        let spec = &project.images[&job.image];
        let child = (job.platform.clone(), job.image_id.clone());
        match images.iter_mut().find(|i| i.name == job.image) {
            Some(image) => image.children.push(child),
            None => images.push(PublishImage {
                name: job.image.clone(),
                repository: spec.repository.clone(),
                tags: spec.tags.clone(),
                children: vec![child],
            }),
        }
    }
    images
}

/// Before anything is built: every repository `jobs` push to accepts a push with the
/// configured credentials (each checked once, all at the same time), so that a missing login
/// fails the release in a second instead of after the builds.
pub async fn check_push_access(
    project: &Project,
    jobs: &[crate::plan::Job],
    registry: &RegistryOptions,
) -> Result<(), PipelineError> {
    let mut repositories: Vec<&crate::reference::ImageRef> = jobs
        .iter()
        .filter_map(|job| project.images.get(&job.image)?.repository.as_ref())
        .collect();
    repositories.sort_by_key(|r| r.to_string());
    repositories.dedup_by_key(|r| r.to_string());
    let checks = repositories.iter().map(|repository| async move {
        crate::registry::RegistryStore::new(repository, registry)
            .check_push_access()
            .await
            .map_err(|source| PipelineError::PushAccess {
                repository: repository.to_string(),
                source,
            })
    });
    futures_util::future::try_join_all(checks).await?;
    Ok(())
}

/// Publishes every image to `target`.
pub async fn publish_all(
    daemons: &DaemonMap,
    images: &[PublishImage],
    target: &Target,
    opts: &PublishOptions,
) -> Result<Vec<Published>, PipelineError> {
    Ok(publish::publish(daemons, images, target, opts).await?)
}

/// Reads every published image back from where it went, fresh, and verifies it against the
/// platforms the project requires; every other tag must name the same index.
pub async fn verify_published(
    project: &Project,
    published: &[Published],
    target: &Target,
) -> Result<Vec<VerifyReport>, PipelineError> {
    let mut reports = Vec::new();
    for p in published {
        let spec = &project.images[&p.image];
        let report = match target {
            Target::Layout(dir) => {
                let opened = source_store::open_layout(dir, None).map_err(|source| {
                    PipelineError::Verify {
                        reference: format!("oci:{}", dir.display()),
                        source,
                    }
                })?;
                verify_tags(&opened.store, spec, |tag| format!("{}:{tag}", spec.name)).await?
            }
            Target::Push(registry) => {
                let reference = spec
                    .repository
                    .as_ref()
                    .ok_or_else(|| PipelineError::Verify {
                        reference: spec.name.clone(),
                        source: crate::store::StoreError::Other {
                            store: spec.name.clone(),
                            detail: "the image has no repository to verify".into(),
                        },
                    })?;
                let opened = source_store::open_registry(reference, registry);
                verify_tags(&opened.store, spec, str::to_string).await?
            }
        };
        reports.push(report);
    }
    Ok(reports)
}

async fn verify_tags<S: crate::store::Store>(
    store: &S,
    spec: &Image,
    name_of: impl Fn(&str) -> String,
) -> Result<VerifyReport, PipelineError> {
    let first = name_of(&spec.tags[0]);
    let err = |reference: String| {
        move |source| PipelineError::Verify {
            reference: format!("{}:{reference}", store.describe()),
            source,
        }
    };
    let mut report = verify::verify(store, &first, &spec.platforms, &VerifyOptions::default())
        .await
        .map_err(err(first.clone()))?;
    for tag in &spec.tags[1..] {
        let name = name_of(tag);
        let other = store.manifest(&name).await.map_err(err(name.clone()))?;
        if other.digest != report.digest {
            report.findings.push(
                Finding::error(
                    FindingKind::BrokenReference,
                    format!(
                        "tag {name} points to {} while {first} points to {}: the tags of one build disagree",
                        other.digest, report.digest
                    ),
                )
                .with_image(format!("{}:{name}", store.describe())),
            );
        }
    }
    Ok(report)
}

/// The registry options of a project plus `--insecure-registry` flags.
pub fn registry_options(project: &Project, extra_insecure: &[String]) -> RegistryOptions {
    let mut insecure = project.insecure_registries.clone();
    insecure.extend(extra_insecure.iter().cloned());
    RegistryOptions {
        insecure_registries: insecure,
        docker_config: None,
    }
}
