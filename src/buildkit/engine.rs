//! The seam between the build logic and a Docker daemon: [`BuildEngine`]. The real
//! implementation is [`super::DockerEngine`]; the test-only `fake::FakeEngine` records every
//! call and answers from a script, so job scheduling, reuse, tagging and cancellation are
//! unit-tested without a daemon.

use std::collections::BTreeMap;
use std::future::Future;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::platform::Platform;

use super::events::{BuildEvent, JobLabel};
use super::{BuildError, Job};
use crate::reference::ImageRef;

#[cfg(test)]
pub mod fake;
#[cfg(test)]
pub use fake::{FakeCall, FakeEngine};

/// One build as the engine runs it: the request with its labels completed and the temporary
/// tag the result is to carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineJob {
    pub job: JobLabel,
    pub request: Job,
    /// Labels to set: the request's own plus the OCI ones.
    pub labels: BTreeMap<String, String>,
    /// `archbuild-tmp/<image>:<os>-<arch>-<random>`.
    pub temporary_tag: ImageRef,
    pub no_cache: bool,
    /// Ask BuildKit to pull the `FROM` images even if the daemon has them (a base moved).
    pub pull: bool,
    /// The builder's own platform, for error messages.
    pub builder_platform: Option<Platform>,
    /// The stages the Dockerfile declares, for the unknown-target error.
    pub stages: Vec<String>,
}

/// What a finished build left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOutput {
    pub image_id: String,
    pub log_tail: Vec<String>,
    pub cached_steps: usize,
    /// Context bytes sent to the daemon: the tar's size, or the file data the session's file
    /// sync sent (only what changed since the previous build of the same context).
    pub context_bytes: u64,
}

/// A Docker daemon (or several, by endpoint URL) that builds images.
pub trait BuildEngine: Send + Sync {
    /// The platform the daemon at `endpoint` runs natively (`docker info`).
    fn native_platform(
        &self,
        endpoint: &str,
    ) -> impl Future<Output = Result<Platform, BuildError>> + Send;

    /// Whether the daemon at `endpoint` answers `/_ping`, asked on a connection other than the
    /// builds' (a build's stream may be stuck on a connection that no longer carries
    /// anything). The caller bounds how long it waits.
    fn ping(&self, endpoint: &str) -> impl Future<Output = Result<(), BuildError>> + Send;

    /// Builds one job, sending progress to `events`; stops with [`BuildError::Cancelled`] when
    /// `cancel` fires.
    fn build(
        &self,
        job: &EngineJob,
        events: &mpsc::Sender<BuildEvent>,
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<EngineOutput, BuildError>> + Send;

    /// Whether the daemon still has the image `image_id`.
    fn has_image(
        &self,
        endpoint: &str,
        image_id: &str,
    ) -> impl Future<Output = Result<bool, BuildError>> + Send;

    /// Points `reference` (`REPO:TAG`) at `image_id`.
    fn tag(
        &self,
        endpoint: &str,
        image_id: &str,
        reference: &ImageRef,
    ) -> impl Future<Output = Result<(), BuildError>> + Send;

    /// Removes the tag `reference` (the image stays if anything else names it).
    fn untag(
        &self,
        endpoint: &str,
        reference: &ImageRef,
    ) -> impl Future<Output = Result<(), BuildError>> + Send;
}
