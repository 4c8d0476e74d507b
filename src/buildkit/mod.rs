//! The build half of archbuild: one BuildKit build per (image, platform) job, sent through the
//! Docker Engine API of the job's builder endpoint, run concurrently, reported as events.
//!
//! The daemon is reached through the [`BuildEngine`] seam: [`DockerEngine`] is the real one
//! (bollard), a recording fake (tests only) serves the unit tests. [`run`] is the whole build
//! step as a library function: the command line maps the plan's jobs onto [`Job`]s, hands over a
//! channel for [`BuildEvent`]s and a cancellation token, and gets one [`BuiltImage`] per request.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::platform::Platform;

pub mod bases;
pub mod connect;
pub mod context;
pub mod docker;
pub mod dockerignore;
pub mod engine;
pub mod error;
pub mod events;
pub mod fingerprint;
pub mod jobs;
pub mod labels;
pub mod session;
pub mod ssh;

pub use connect::connect;
pub use docker::DockerEngine;
pub use engine::{BuildEngine, EngineJob, EngineOutput};
pub use error::BuildError;
pub use events::{BuildEvent, JobLabel};
pub use jobs::{emulation_findings, run, run_after};

/// One (image, platform) build is the plan's [`Job`]: it already carries everything the
/// engine needs (context, Dockerfile, arguments, builder, references, the per-job tag).
pub use crate::plan::Job;

/// How [`run`] builds.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Concurrent builds per endpoint; `None` picks [`jobs::DEFAULT_JOBS_PER_ENDPOINT`].
    pub jobs_per_endpoint: Option<usize>,
    /// Build every step again (`--no-cache`); also skips the fingerprint reuse.
    pub no_cache: bool,
    /// Where input fingerprints are kept (`<project>/.archbuild/cache`); `None` disables reuse.
    pub cache_dir: Option<PathBuf>,
    /// Keep the temporary tags after a successful run, so later stages can still name the
    /// images; the caller then removes them with [`jobs::release`].
    pub keep_temporary_tags: bool,
    /// How the `FROM` images' registries are reached, to resolve their tags for the
    /// fingerprint.
    pub registry: crate::registry::RegistryOptions,
}

/// One finished job: the image in its builder's daemon, by ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuiltImage {
    /// Position of the request in the input of [`run`].
    pub index: usize,
    /// The project image name.
    pub image: String,
    pub platform: Platform,
    /// `sha256:...` image ID in the builder's daemon.
    pub image_id: String,
    pub endpoint_url: String,
    /// The namespaced temporary tag naming the image while later stages use it (removed unless
    /// [`BuildOptions::keep_temporary_tags`]).
    pub temporary_tag: crate::reference::ImageRef,
    /// The final references applied (only for the builder's own platform).
    pub tagged: Vec<crate::reference::ImageRef>,
    /// The last log lines of the build.
    pub log_tail: Vec<String>,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// Steps BuildKit answered from its cache.
    pub cached_steps: usize,
    /// Whether the previous image was reused because no input changed (no upload, no build).
    pub reused: bool,
    /// Whether the job's `RUN` steps ran under emulation on its builder.
    pub emulated: bool,
    /// Context bytes sent to the builder (with file sync, only the files that changed).
    pub context_bytes: u64,
    /// The builders this job started on and lost before it finished elsewhere, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost_builders: Vec<LostBuilder>,
}

/// A builder lost while it built a job (killed, or silent past the liveness watchdog's
/// limit), which handed the job to another builder of its platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostBuilder {
    pub endpoint: String,
    /// The step that was running, when one was.
    pub step: Option<String>,
    /// Why it counts as lost: the broken connection, or how long it has not answered.
    pub reason: String,
}

impl LostBuilder {
    /// What happened, for the progress: `went away during step `[3/3] RUN make`: …`.
    pub fn what_happened(&self) -> String {
        match &self.step {
            Some(step) => format!("went away during step `{step}`: {}", self.reason),
            None => format!("went away during the build: {}", self.reason),
        }
    }

    /// The job's error when no other builder is left for it.
    pub fn into_error(self) -> BuildError {
        BuildError::BuilderLost {
            endpoint: self.endpoint,
            step: self.step,
            reason: self.reason,
        }
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}
