//! The recording test double of [`BuildEngine`]: it answers builds from a script (a delay,
//! an image id made from the job) and records every call, for unit tests only.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::buildkit::events::BuildEvent;
use crate::buildkit::BuildError;
use crate::platform::Platform;

use super::{BuildEngine, EngineJob, EngineOutput};
use crate::reference::ImageRef;

/// One call the [`FakeEngine`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeCall {
    Build {
        endpoint: String,
        image: String,
        platform: Platform,
        temporary_tag: String,
    },
    Tag {
        endpoint: String,
        image_id: String,
        reference: String,
    },
    Untag {
        endpoint: String,
        reference: String,
    },
}

#[derive(Debug, Default)]
struct FakeState {
    calls: Vec<FakeCall>,
    images: BTreeSet<String>,
    failures: BTreeMap<(String, String), BuildError>,
    running: BTreeMap<String, usize>,
    peak: BTreeMap<String, usize>,
    down: BTreeSet<String>,
    /// Endpoints that stop answering once a build starts on them, the build left hanging.
    cut_off: BTreeSet<String>,
    /// Endpoints that die once a build starts on them (of any image, or of the one named),
    /// the build failing as the connection breaks.
    killed: BTreeMap<String, Option<String>>,
    pings: BTreeMap<String, usize>,
}

/// A recording engine: every build succeeds with image ID `sha256:<image>-<os>-<arch>` after
/// `delay`, unless a failure was scripted for that (image, platform).
#[derive(Debug, Clone)]
pub struct FakeEngine {
    native: Platform,
    delay: Duration,
    state: Arc<Mutex<FakeState>>,
}

impl FakeEngine {
    /// An engine whose daemons all run `native`.
    pub fn new(native: &str) -> FakeEngine {
        FakeEngine {
            native: Platform::parse(native).expect("a valid platform"),
            delay: Duration::from_millis(20),
            state: Arc::default(),
        }
    }

    /// How long each build takes.
    pub fn with_delay(mut self, delay: Duration) -> FakeEngine {
        self.delay = delay;
        self
    }

    /// Makes the build of (`image`, `platform`) fail with `error`.
    pub fn fail(&self, image: &str, platform: &str, error: BuildError) {
        let mut state = self.state.lock().unwrap();
        state
            .failures
            .insert((image.to_string(), platform.to_string()), error);
    }

    /// Makes the daemon at `endpoint` unreachable, as a builder that is switched off.
    pub fn take_down(&self, endpoint: &str) {
        self.state.lock().unwrap().down.insert(endpoint.to_string());
    }

    /// Makes the daemon at `endpoint` go silent once a build starts on it: the build never
    /// ends and pings go unanswered, as a host whose network drops every packet.
    pub fn cut_off_during_build(&self, endpoint: &str) {
        let mut state = self.state.lock().unwrap();
        state.cut_off.insert(endpoint.to_string());
    }

    /// Makes the daemon at `endpoint` die once a build starts on it: the build fails with
    /// [`BuildError::BuilderLost`] in its first step and the daemon stays down.
    pub fn kill_during_build(&self, endpoint: &str) {
        let mut state = self.state.lock().unwrap();
        state.killed.insert(endpoint.to_string(), None);
    }

    /// [`FakeEngine::kill_during_build`], once a build of `image` starts there.
    pub fn kill_during_build_of(&self, endpoint: &str, image: &str) {
        let mut state = self.state.lock().unwrap();
        state
            .killed
            .insert(endpoint.to_string(), Some(image.to_string()));
    }

    /// How many pings `endpoint` was sent.
    pub fn pings(&self, endpoint: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.pings.get(endpoint).copied().unwrap_or(0)
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The most builds that ran at once on `endpoint`.
    pub fn peak_concurrency(&self, endpoint: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .peak
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Forgets an image, as `docker rmi` or a prune would.
    pub fn forget_image(&self, image_id: &str) {
        self.state.lock().unwrap().images.remove(image_id);
    }

    /// The image ID a successful fake build of `job` produces.
    pub fn image_id_for(image: &str, platform: &Platform) -> String {
        format!("sha256:{image}-{}", platform.to_string().replace('/', "-"))
    }
}

impl BuildEngine for FakeEngine {
    async fn native_platform(&self, endpoint: &str) -> Result<Platform, BuildError> {
        if self.state.lock().unwrap().down.contains(endpoint) {
            return Err(BuildError::Unreachable {
                endpoint: endpoint.to_string(),
                chosen_by: None,
                reason: "connection refused".into(),
            });
        }
        Ok(self.native.clone())
    }

    async fn ping(&self, endpoint: &str) -> Result<(), BuildError> {
        let mut state = self.state.lock().unwrap();
        *state.pings.entry(endpoint.to_string()).or_default() += 1;
        if state.down.contains(endpoint) {
            return Err(BuildError::Unreachable {
                endpoint: endpoint.to_string(),
                chosen_by: None,
                reason: "connection refused".into(),
            });
        }
        Ok(())
    }

    async fn build(
        &self,
        job: &EngineJob,
        events: &mpsc::Sender<BuildEvent>,
        cancel: &CancellationToken,
    ) -> Result<EngineOutput, BuildError> {
        let endpoint = job.request.builder.url.clone();
        let (cut_off, killed) = {
            let mut state = self.state.lock().unwrap();
            let cut_off = state.cut_off.contains(&endpoint);
            let killed = state
                .killed
                .get(&endpoint)
                .is_some_and(|only| only.as_ref().is_none_or(|i| *i == job.request.image));
            if cut_off || killed {
                state.down.insert(endpoint.clone());
            }
            (cut_off, killed)
        };
        let failure = {
            let mut state = self.state.lock().unwrap();
            state.calls.push(FakeCall::Build {
                endpoint: endpoint.clone(),
                image: job.request.image.clone(),
                platform: job.request.platform.clone(),
                temporary_tag: job.temporary_tag.to_string(),
            });
            let running = state.running.entry(endpoint.clone()).or_default();
            *running += 1;
            let now = *running;
            let peak = state.peak.entry(endpoint.clone()).or_default();
            *peak = (*peak).max(now);
            state
                .failures
                .get(&(job.request.image.clone(), job.request.platform.to_string()))
                .cloned()
        };
        let _ = events
            .send(BuildEvent::StepStarted {
                job: job.job.clone(),
                step: 1,
                name: "[1/1] COPY . /".into(),
            })
            .await;
        if cut_off {
            // A silent host: nothing ends the build but the caller giving up on it.
            cancel.cancelled().await;
            *self
                .state
                .lock()
                .unwrap()
                .running
                .get_mut(&endpoint)
                .expect("counted") -= 1;
            return Err(BuildError::Cancelled);
        }
        let failure = match killed {
            true => Some(BuildError::BuilderLost {
                endpoint: endpoint.clone(),
                step: Some("[1/1] COPY . /".into()),
                reason: "connection reset by peer".into(),
            }),
            false => failure,
        };
        let outcome = tokio::select! {
            _ = cancel.cancelled() => Err(BuildError::Cancelled),
            _ = tokio::time::sleep(self.delay) => match failure {
                Some(err) => Err(err),
                None => Ok(()),
            },
        };
        let mut state = self.state.lock().unwrap();
        *state.running.get_mut(&endpoint).expect("counted") -= 1;
        outcome?;
        let image_id = FakeEngine::image_id_for(&job.request.image, &job.request.platform);
        state.images.insert(image_id.clone());
        Ok(EngineOutput {
            image_id,
            log_tail: vec!["built".into()],
            cached_steps: 0,
            context_bytes: 0,
        })
    }

    async fn has_image(&self, _endpoint: &str, image_id: &str) -> Result<bool, BuildError> {
        Ok(self.state.lock().unwrap().images.contains(image_id))
    }

    async fn tag(
        &self,
        endpoint: &str,
        image_id: &str,
        reference: &ImageRef,
    ) -> Result<(), BuildError> {
        self.state.lock().unwrap().calls.push(FakeCall::Tag {
            endpoint: endpoint.into(),
            image_id: image_id.into(),
            reference: reference.to_string(),
        });
        Ok(())
    }

    async fn untag(&self, endpoint: &str, reference: &ImageRef) -> Result<(), BuildError> {
        self.state.lock().unwrap().calls.push(FakeCall::Untag {
            endpoint: endpoint.into(),
            reference: reference.to_string(),
        });
        Ok(())
    }
}
