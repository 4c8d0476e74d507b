//! The stages overlapped per job: the build progress is watched on its way to the command
//! line, and as soon as a job's build finishes its check starts (and, when the release
//! publishes, the compression of its layers from the same export), while the other jobs still
//! build. The results wait in [`EarlyChecks`] for the check stage, which takes them instead
//! of checking those jobs again; publishing still starts only when every job is checked.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use super::stages::{check_job, CheckTarget, JobRead, PipelineError};
use crate::buildkit::{BuildEvent, BuiltImage, JobLabel};
use crate::check::CheckReport;
use crate::config::Project;
use crate::publish::convert::Slots;
use crate::publish::PublishOptions;

/// Checks at once, as the check stage runs them.
const CHECKS_AT_ONCE: usize = 2;

type Early = JoinHandle<Result<(CheckReport, JobRead), PipelineError>>;

/// The checks started while the builds ran, by job index and image ID.
#[derive(Default)]
pub struct EarlyChecks {
    started: HashMap<(usize, String), Early>,
}

impl EarlyChecks {
    /// The check started for `job`'s image, if one was.
    pub fn take(
        &mut self,
        job: &BuiltImage,
    ) -> Option<impl std::future::Future<Output = Result<(CheckReport, JobRead), PipelineError>>>
    {
        let early = self.started.remove(&(job.index, job.image_id.clone()))?;
        let (image, platform) = (job.image.clone(), job.platform.clone());
        Some(async move {
            early.await.unwrap_or_else(|e| {
                Err(PipelineError::CheckStopped {
                    image,
                    platform,
                    detail: e.to_string(),
                })
            })
        })
    }
}

/// What the watcher needs to start a check.
pub struct Watch {
    pub project: Arc<Project>,
    pub publishing: Option<PublishOptions>,
}

/// The watcher's state: where each job builds, the daemons connected, the checks started.
struct Watcher {
    watch: Watch,
    endpoints: HashMap<usize, String>,
    daemons: HashMap<String, bollard::Docker>,
    early: EarlyChecks,
    at_once: Arc<Semaphore>,
    slots: Arc<Slots>,
}

impl Watcher {
    async fn see(&mut self, event: &BuildEvent, out: &mpsc::Sender<BuildEvent>) {
        match event {
            BuildEvent::JobStarted { job, endpoint, .. } => {
                self.endpoints.insert(job.index, endpoint.clone());
            }
            BuildEvent::JobFinished { job, image_id, .. } => {
                let target = CheckTarget {
                    image: job.image.clone(),
                    platform: job.platform.clone(),
                    image_id: image_id.clone(),
                };
                if let Some(check) = self.start(job.clone(), target, out.clone()).await {
                    self.early
                        .started
                        .insert((job.index, image_id.clone()), check);
                }
            }
            _ => {}
        }
    }

    /// Starts the check of `job`'s image on the daemon that built it, unless that daemon
    /// cannot be reached (the check stage then reports it); its outcome goes to `out`.
    async fn start(
        &mut self,
        job: JobLabel,
        target: CheckTarget,
        out: mpsc::Sender<BuildEvent>,
    ) -> Option<Early> {
        let url = self.endpoints.get(&job.index)?;
        if !self.daemons.contains_key(url) {
            let docker = crate::buildkit::connect(url).await.ok()?;
            self.daemons.insert(url.clone(), docker);
        }
        let (docker, project) = (self.daemons[url].clone(), self.watch.project.clone());
        let (publishing, slots) = (self.watch.publishing.clone(), self.slots.clone());
        let at_once = self.at_once.clone();
        Some(tokio::spawn(async move {
            let _turn = at_once.acquire_owned().await.expect("never closed");
            let checked = check_job(&project, &docker, &target, publishing.as_ref(), slots).await;
            if let Ok((report, read)) = &checked {
                let errors = report.findings.iter().filter(|f| f.is_error()).count();
                let event = BuildEvent::JobChecked {
                    job,
                    errors,
                    warnings: report.findings.len() - errors,
                    remembered: !read.exported,
                    compressed: read.compressed,
                };
                let _ = out.send(event).await;
            }
            checked
        }))
    }
}

/// Passes every event of `builds` on to `out`, starting each finished job's check on the
/// daemon that built it; returns the checks started once `builds` closes (the build stage
/// ended).
pub fn watch(
    watch: Watch,
    mut builds: mpsc::Receiver<BuildEvent>,
    out: mpsc::Sender<BuildEvent>,
) -> JoinHandle<EarlyChecks> {
    tokio::spawn(async move {
        let mut watcher = Watcher {
            watch,
            endpoints: HashMap::new(),
            daemons: HashMap::new(),
            early: EarlyChecks::default(),
            at_once: Arc::new(Semaphore::new(CHECKS_AT_ONCE)),
            slots: Slots::per_core(),
        };
        while let Some(event) = builds.recv().await {
            watcher.see(&event, &out).await;
            let _ = out.send(event).await;
        }
        watcher.early
    })
}
