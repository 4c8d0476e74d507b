//! Running the jobs: every request concurrently, at most `jobs_per_endpoint` at once on each
//! builder endpoint, each ending with its image named by a namespaced temporary tag. Only when
//! every job succeeded are the final names applied: the builder's own platform's image gets the
//! request's `REPOSITORY:TAG`s (so `docker run` works as after `docker build`), and every image
//! gets its keep tag `archbuild/<image>:<os>-<arch>` so the daemon keeps it for the next
//! no-change rebuild. On failure or cancellation the temporary tags are removed and nothing is
//! named like a finished result.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::finding::{Finding, FindingKind};
use crate::platform::Platform;
use crate::reference::ImageRef;

use super::engine::{BuildEngine, EngineJob, EngineOutput};
use super::events::{BuildEvent, JobLabel};
use super::fingerprint::{self, CacheEntry};
use super::{bases, BuildError, BuildOptions, BuiltImage, Job};
use crate::dockerfile::{self, Dockerfile};
use inputs::{context_inputs, context_key, inputs, resolve_bases, ContextInputs, Inputs};

/// Two builds per endpoint: one build mostly waits on one thing at a time (the context upload,
/// a compiler on one core, layer export), so two keep a daemon busy without making every job
/// wait on the others' disk and CPU; `--jobs` raises it for big builders.
pub const DEFAULT_JOBS_PER_ENDPOINT: usize = 2;

/// A per-job tag for jobs made without a plan (the plan names them `archbuild-local/...`, see
/// [`crate::plan::platform_tag`]): `archbuild/<image>:<os>-<arch>[-<variant>]`.
pub fn keep_tag(image: &str, platform: &Platform) -> ImageRef {
    ImageRef::local(
        &format!("archbuild/{}", repo_name(image)),
        &platform_slug(platform),
    )
}

/// A fresh temporary tag: `archbuild-tmp/<image>:<os>-<arch>[-<variant>]-<random>`.
pub fn temporary_tag(image: &str, platform: &Platform) -> ImageRef {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    ImageRef::local(
        &format!("archbuild-tmp/{}", repo_name(image)),
        &format!(
            "{}-{:x}{:x}",
            platform_slug(platform),
            std::process::id(),
            nanos
        ),
    )
}

fn repo_name(image: &str) -> String {
    image
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-/".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn platform_slug(platform: &Platform) -> String {
    platform.to_string().replace('/', "-")
}

/// What is known about a request before it is built.
#[derive(Clone)]
struct Prepared {
    dockerfile: Dockerfile,
    native: Result<Platform, BuildError>,
    /// The job's base images as resolved for this run.
    bases: Vec<bases::ResolvedBase>,
    /// What the job shares with every job on its context.
    context: ContextInputs,
}

/// Builds every request; the result has one [`BuiltImage`] per request, in request order.
/// Progress goes to `events`; `cancel` stops all jobs, removes their temporary tags and
/// returns [`BuildError::Cancelled`]. When some jobs fail, the others are finished but not
/// named, and the error is [`BuildError::Failed`] listing every failed job.
pub async fn run<E: BuildEngine>(
    engine: &E,
    requests: Vec<Job>,
    options: &BuildOptions,
    events: mpsc::Sender<BuildEvent>,
    cancel: CancellationToken,
) -> Result<Vec<BuiltImage>, BuildError> {
    run_after(engine, requests, options, events, cancel, async { true }).await
}

/// [`run`], with `gate` (a check that must pass before anything is built, such as the push
/// access) awaited while the builders are asked and the contexts walked: no job starts until
/// it answers `true`; on `false` nothing is started and the result is
/// [`BuildError::Cancelled`].
pub async fn run_after<E: BuildEngine>(
    engine: &E,
    requests: Vec<Job>,
    options: &BuildOptions,
    events: mpsc::Sender<BuildEvent>,
    cancel: CancellationToken,
    gate: impl std::future::Future<Output = bool>,
) -> Result<Vec<BuiltImage>, BuildError> {
    // The builders are asked while the contexts are walked and the gate is passed; a cancel
    // does not wait for the gate.
    let gate = async {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => false,
            open = gate => open,
        }
    };
    let (natives, contexts, open) = tokio::join!(
        probe::native_platforms(engine, &requests),
        context_inputs(&requests, options),
        gate
    );
    if !open || cancel.is_cancelled() {
        return Err(BuildError::Cancelled);
    }
    // Every builder answers before any build starts: a job whose builder is down goes to one
    // of its platform's other builders, or, when it has none that answers, fails the run now,
    // instead of after the other builders' long builds.
    let (requests, moves, down) = probe::failover(requests, &natives);
    for moved in moves {
        let _ = events.send(moved).await;
    }
    if !down.is_empty() {
        for (job, err) in &down {
            report_failure(&events, job.clone(), err).await;
        }
        return Err(BuildError::Failed(down));
    }
    let limit = options
        .jobs_per_endpoint
        .unwrap_or(DEFAULT_JOBS_PER_ENDPOINT)
        .max(1);
    let semaphores: HashMap<String, Arc<Semaphore>> = natives
        .keys()
        .map(|endpoint| (endpoint.clone(), Arc::new(Semaphore::new(limit))))
        .collect();
    let dockerfiles: Vec<Dockerfile> = requests.iter().map(read_dockerfile).collect();
    let mut job_bases = resolve_bases(&requests, &dockerfiles, options)
        .await
        .into_iter();
    let lost = handover::LostBuilders::default();
    let jobs =
        requests
            .iter()
            .zip(dockerfiles)
            .enumerate()
            .map(|(index, (request, dockerfile))| {
                let prepared = Prepared {
                    dockerfile,
                    native: natives[&request.builder.url].clone(),
                    bases: job_bases.next().unwrap_or_default(),
                    context: contexts[&context_key(request)].clone(),
                };
                let (events, cancel) = (events.clone(), cancel.clone());
                let (semaphores, natives, lost) = (&semaphores, &natives, &lost);
                async move {
                    let result = tokio::select! {
                        biased;
                        _ = cancel.cancelled() => Err(BuildError::Cancelled),
                        result = handover::build(
                            engine, index, request, prepared, options, &events, &cancel,
                            handover::Builders { semaphores, natives, lost },
                        ) => result,
                    };
                    if let Err(err) = &result {
                        if *err != BuildError::Cancelled {
                            report_failure(&events, JobLabel::of(request, index), err).await;
                        }
                    }
                    result
                }
            });
    let results = join_all(jobs).await;

    let mut built = Vec::new();
    let mut failures = Vec::new();
    for (index, result) in results.into_iter().enumerate() {
        match result {
            Ok(image) => built.push(image),
            Err(err) => failures.push((JobLabel::of(&requests[index], index), err)),
        }
    }
    // A job that finished on a builder lost later cannot be named or published from it, and
    // a lost builder is not asked to remove anything: one cut off would keep the run waiting
    // for the request timeout.
    let (gone, kept): (Vec<BuiltImage>, Vec<BuiltImage>) = built
        .into_iter()
        .partition(|image| lost.contains(&image.endpoint_url));
    built = kept;
    for image in gone {
        let job = JobLabel::of(&requests[image.index], image.index);
        let err = BuildError::BuilderLost {
            endpoint: image.endpoint_url,
            step: None,
            reason: "the job had finished on it, but its image can no longer be named and published from it".into(),
        };
        if !cancel.is_cancelled() {
            report_failure(&events, job.clone(), &err).await;
        }
        failures.push((job, err));
    }
    if cancel.is_cancelled() || !failures.is_empty() {
        release(engine, &built).await;
        if cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        return Err(BuildError::Failed(failures));
    }
    // Every image named at once (each a few daemon requests), as the temporary tags are
    // removed below.
    let named = join_all(
        built
            .iter_mut()
            .zip(&requests)
            .map(|(image, request)| name_result(engine, image, request, &natives)),
    )
    .await;
    named.into_iter().collect::<Result<Vec<()>, BuildError>>()?;
    if !options.keep_temporary_tags {
        release(engine, &built).await;
    }
    Ok(built)
}

/// Tells the progress that `job` failed, with the failing step's last log lines.
async fn report_failure(events: &mpsc::Sender<BuildEvent>, job: JobLabel, err: &BuildError) {
    let log_tail = match err {
        BuildError::StepFailed { log_tail, .. } => log_tail.clone(),
        _ => Vec::new(),
    };
    let error = err.to_string();
    let _ = events
        .send(BuildEvent::JobFailed {
            job,
            error,
            log_tail,
        })
        .await;
}

fn read_dockerfile(request: &Job) -> Dockerfile {
    std::fs::read_to_string(&request.dockerfile)
        .map(|text| dockerfile::parse(&text))
        .unwrap_or_default()
}

/// The warning for a job whose `RUN` steps will run under emulation, if they will.
pub fn emulation_finding(
    request: &Job,
    dockerfile: &Dockerfile,
    native: &Platform,
) -> Option<Finding> {
    if native.runs(&request.platform) || !dockerfile.runs_on_target(request.target.as_deref()) {
        return None;
    }
    Some(
        Finding::warning(
            FindingKind::Emulated,
            format!(
                "{} {}: RUN steps will run under emulation on the {native} builder at {} \
                 (slow, and 'exec format error' without a binfmt/QEMU handler); give {} a \
                 native builder in [builders] or cross-compile from FROM --platform=$BUILDPLATFORM",
                request.image, request.platform, request.builder.url, request.platform
            ),
        )
        .with_platform(&request.platform)
        .with_image(&request.image),
    )
}

/// The emulation warnings for `requests`, asking each endpoint for its native platform
/// (unreachable endpoints are left to the build to report).
pub async fn emulation_findings<E: BuildEngine>(engine: &E, requests: &[Job]) -> Vec<Finding> {
    let natives = probe::native_platforms(engine, requests).await;
    requests
        .iter()
        .filter_map(|request| {
            let native = natives[&request.builder.url].as_ref().ok()?;
            emulation_finding(request, &read_dockerfile(request), native)
        })
        .collect()
}

async fn build_one<E: BuildEngine>(
    engine: &E,
    index: usize,
    request: &Job,
    prepared: Prepared,
    options: &BuildOptions,
    events: &mpsc::Sender<BuildEvent>,
    cancel: &CancellationToken,
) -> Result<BuiltImage, BuildError> {
    let started = Instant::now();
    let native = prepared.native?;
    let job = JobLabel::of(request, index);
    let emulated = emulation_finding(request, &prepared.dockerfile, &native).is_some();
    let mut labels = prepared.context.labels;
    labels.extend(request.labels.clone());
    let Inputs {
        bases,
        fingerprint,
        previous,
    } = inputs(
        request,
        prepared.bases,
        &labels,
        prepared.context.files,
        options,
    )?;
    let rebuild_reason = previous
        .as_ref()
        .and_then(|entry| bases::moved(&entry.bases, &bases));
    let reused = reusable(engine, request, previous, fingerprint.as_deref()).await?;
    let _ = events
        .send(BuildEvent::JobStarted {
            job: job.clone(),
            endpoint: request.builder.url.clone(),
            emulated,
            rebuild_reason: rebuild_reason.clone(),
        })
        .await;
    let engine_job = EngineJob {
        job: job.clone(),
        request: request.clone(),
        labels: labels.clone(),
        temporary_tag: temporary_tag(&request.image, &request.platform),
        no_cache: options.no_cache,
        pull: rebuild_reason.is_some(),
        builder_platform: Some(native),
        stages: prepared.dockerfile.stage_names(),
    };
    let output = build_or_reuse(engine, &engine_job, reused.as_deref(), events, cancel).await?;
    if let (Some(dir), Some(fingerprint), None) = (&options.cache_dir, fingerprint, &reused) {
        let entry = CacheEntry {
            image: request.image.clone(),
            platform: request.platform.to_string(),
            endpoint: request.builder.url.clone(),
            fingerprint,
            image_id: output.image_id.clone(),
            bases,
        };
        // A cache that cannot be written costs the next build time, not this one its result.
        let _ = fingerprint::store(dir, request, &entry);
    }
    let duration = started.elapsed();
    let _ = events
        .send(BuildEvent::JobFinished {
            job,
            image_id: output.image_id.clone(),
            seconds: duration.as_secs_f64(),
            cached_steps: output.cached_steps,
            reused: reused.is_some(),
        })
        .await;
    Ok(BuiltImage {
        index,
        image: request.image.clone(),
        platform: request.platform.clone(),
        image_id: output.image_id,
        endpoint_url: request.builder.url.clone(),
        temporary_tag: engine_job.temporary_tag,
        tagged: Vec::new(),
        log_tail: output.log_tail,
        duration,
        cached_steps: output.cached_steps,
        reused: reused.is_some(),
        emulated,
        context_bytes: output.context_bytes,
        lost_builders: Vec::new(),
    })
}

/// The engine's output for `job`: the reused image, tagged with the job's temporary tag, or a
/// fresh build (whose temporary tag is removed again if the build fails).
async fn build_or_reuse<E: BuildEngine>(
    engine: &E,
    job: &EngineJob,
    reused: Option<&str>,
    events: &mpsc::Sender<BuildEvent>,
    cancel: &CancellationToken,
) -> Result<EngineOutput, BuildError> {
    let endpoint = &job.request.builder.url;
    if let Some(image_id) = reused {
        engine.tag(endpoint, image_id, &job.temporary_tag).await?;
        return Ok(EngineOutput {
            image_id: image_id.to_string(),
            log_tail: Vec::new(),
            cached_steps: 0,
            context_bytes: 0,
        });
    }
    match watchdog::build(engine, job, events, cancel).await {
        Ok(output) => Ok(output),
        // A lost builder is not asked anything more: one cut off would not answer.
        Err(err @ BuildError::BuilderLost { .. }) => Err(err),
        Err(err) => {
            // A build cut off late may already carry its temporary tag.
            let _ = engine.untag(endpoint, &job.temporary_tag).await;
            Err(err)
        }
    }
}

/// The previous image's ID when nothing changed and the daemon still has it.
async fn reusable<E: BuildEngine>(
    engine: &E,
    request: &Job,
    previous: Option<CacheEntry>,
    fingerprint: Option<&str>,
) -> Result<Option<String>, BuildError> {
    let (Some(entry), Some(fingerprint)) = (previous, fingerprint) else {
        return Ok(None);
    };
    if entry.fingerprint != fingerprint {
        return Ok(None);
    }
    let present = engine
        .has_image(&request.builder.url, &entry.image_id)
        .await?;
    Ok(present.then_some(entry.image_id))
}

async fn name_result<E: BuildEngine>(
    engine: &E,
    image: &mut BuiltImage,
    request: &Job,
    natives: &HashMap<String, Result<Platform, BuildError>>,
) -> Result<(), BuildError> {
    // The builder that built it: the job's own, or the one it was handed to.
    let endpoint = &image.endpoint_url;
    engine
        .tag(endpoint, &image.image_id, &request.platform_tag)
        .await?;
    if natives[endpoint].as_ref().ok() == Some(&request.platform) {
        for reference in &request.references {
            engine.tag(endpoint, &image.image_id, reference).await?;
            image.tagged.push(reference.clone());
        }
    }
    Ok(())
}

/// Removes the temporary tags of `images` (best effort: a tag already gone is fine).
pub async fn release<E: BuildEngine>(engine: &E, images: &[BuiltImage]) {
    join_all(
        images
            .iter()
            .map(|image| engine.untag(&image.endpoint_url, &image.temporary_tag)),
    )
    .await;
}

mod handover;
mod inputs;
mod probe;
#[cfg(test)]
mod tests;
pub mod watchdog;
