//! The real [`BuildEngine`]: BuildKit through the Docker Engine API (bollard), one connection
//! per builder endpoint. A build serves the context from a BuildKit session of archbuild's own
//! by file sync ([`super::session`], `remote=client-session`), so only changed files travel;
//! where that session cannot be used (`SOURCE_DATE_EPOCH` set, a daemon refusing it) the context goes as a streamed tar body instead, with bollard's session.
//! `platform` is set per job, the image ID comes from the `moby.image.id` aux message, and
//! BuildKit's status messages become [`BuildEvent`]s.

use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::{
    BuildImageOptions, BuilderVersion, RemoveImageOptions, TagImageOptions,
};
use bollard::Docker;
use futures_util::{Stream, StreamExt};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::platform::Platform;

use super::connect::{client, connect, error_chain};
use super::context::{self, ContextSpec};
use super::engine::{BuildEngine, EngineJob, EngineOutput};
use super::error::{classify, FailureContext};
use super::events::{BuildEvent, StepTracker};
use super::session::{self, DaemonAddr, Session, SessionError, SyncDir};
use super::BuildError;
use crate::reference::ImageRef;

/// How long the build stream must stay quiet after the image ID before it is closed.
const TRAILING_STATUS: Duration = Duration::from_millis(150);

/// How long one `/_ping` of the liveness watchdog may take on the wire: the watchdog gives up
/// on an attempt sooner (see [`super::jobs::watchdog`]), this only stops a stuck request
/// from being kept by the client.
const PING_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Docker daemons by endpoint URL, connected on first use.
#[derive(Default)]
pub struct DockerEngine {
    connections: Mutex<HashMap<String, Docker>>,
    /// Clients for the watchdog's pings, apart from `connections`: their own connection pool,
    /// never behind a build's stream, and a short request timeout.
    pingers: Mutex<HashMap<String, Docker>>,
    /// Each daemon's platform once it answered: the pre-flight asks it, and the build stage's
    /// probe would ask again.
    platforms: Mutex<HashMap<String, Platform>>,
}

impl DockerEngine {
    /// An engine with no connections yet.
    pub fn new() -> DockerEngine {
        DockerEngine::default()
    }

    /// The connection to `endpoint`, made once.
    pub async fn docker(&self, endpoint: &str) -> Result<Docker, BuildError> {
        let mut connections = self.connections.lock().await;
        if let Some(docker) = connections.get(endpoint) {
            return Ok(docker.clone());
        }
        let docker = connect(endpoint).await?;
        connections.insert(endpoint.to_string(), docker.clone());
        Ok(docker)
    }

    /// The ping client of `endpoint`, made once (no version negotiation: that would be one
    /// more request to a daemon that may not answer).
    async fn pinger(&self, endpoint: &str) -> Result<Docker, BuildError> {
        let mut pingers = self.pingers.lock().await;
        if let Some(docker) = pingers.get(endpoint) {
            return Ok(docker.clone());
        }
        let docker = client(endpoint, PING_REQUEST_TIMEOUT)?;
        pingers.insert(endpoint.to_string(), docker.clone());
        Ok(docker)
    }
}

/// The Engine API's build parameters for `job`.
fn build_options(job: &EngineJob, spec: &ContextSpec) -> BuildImageOptions {
    let request = &job.request;
    BuildImageOptions {
        dockerfile: spec.dockerfile_in_tar.clone(),
        t: Some(job.temporary_tag.to_string()),
        platform: request.platform.to_string(),
        target: request.target.clone().unwrap_or_default(),
        buildargs: Some(request.build_args.clone().into_iter().collect()),
        labels: Some(job.labels.clone().into_iter().collect()),
        nocache: job.no_cache,
        pull: job.pull.then(|| "1".to_string()),
        rm: true,
        version: BuilderVersion::BuilderBuildKit,
        session: Some(session::session_id()),
        ..Default::default()
    }
}

/// Starts the build: with the file-sync session where it can be used, else with the context
/// as a streamed tar body (and says why).
async fn start<'a>(
    docker: &'a Docker,
    endpoint: &str,
    spec: ContextSpec,
    dockerfile: &Path,
    options: BuildImageOptions,
) -> (InfoStream<'a>, Upload) {
    match sync_build(docker, endpoint, &spec, dockerfile, options.clone()).await {
        Ok((session, stream)) => (stream, Upload::Session(session)),
        Err(reason) => {
            explain_fallback(endpoint, &reason);
            let (body, writer) = context::stream(spec);
            let stream = docker.build_image(options, None, Some(bollard::body_stream(body)));
            (Box::pin(stream), Upload::Tar(writer))
        }
    }
}

/// Follows the build stream to its end, turning BuildKit's status into events: the image ID
/// and the daemon's error if the build failed; `Err` only when `cancel` fired.
async fn follow(
    stream: &mut InfoStream<'_>,
    tracker: &mut StepTracker,
    job: &EngineJob,
    events: &mpsc::Sender<BuildEvent>,
    cancel: &CancellationToken,
) -> Result<(Option<String>, Option<BuildError>), BuildError> {
    let endpoint = job.request.builder.url.as_str();
    let mut image_id = None;
    let failure = loop {
        let item = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(BuildError::Cancelled),
            item = stream.next() => item,
        };
        match item {
            None => break None,
            Some(Ok(info)) => match info.aux {
                Some(BuildInfoAux::BuildKit(status)) => {
                    for event in tracker.update(&job.job, &status) {
                        let _ = events.send(event).await;
                    }
                }
                Some(BuildInfoAux::Default(id)) => image_id = id.id.or(image_id),
                None => {}
            },
            Some(Err(err)) => break Some(daemon_error(endpoint, err)),
        }
        // The session keeps bollard's stream open after the build ended, so the stream
        // does not end by itself; the image ID comes at the end of the build.
        if image_id.is_some() {
            break None;
        }
    };
    // Status messages of cached steps may still be in flight behind the image ID: read
    // until the stream has been quiet for a moment, so every step gets its event.
    if failure.is_none() {
        while let Ok(Some(Ok(info))) = tokio::time::timeout(TRAILING_STATUS, stream.next()).await {
            if let Some(BuildInfoAux::BuildKit(status)) = info.aux {
                for event in tracker.update(&job.job, &status) {
                    let _ = events.send(event).await;
                }
            }
        }
    }
    Ok((image_id, failure))
}

/// A daemon's build error in the user's terms: which step, which platform, and why.
fn explain_failure(err: BuildError, job: &EngineJob, tracker: &StepTracker) -> BuildError {
    // The connection broke after the build had started: the builder went away (killed,
    // restarted, cut off), which is not the same as not answering at all.
    if let BuildError::Unreachable {
        endpoint, reason, ..
    } = err
    {
        return BuildError::BuilderLost {
            endpoint,
            step: tracker.running_step(),
            reason,
        };
    }
    let BuildError::Daemon { message, .. } = &err else {
        return err;
    };
    let request = &job.request;
    let ctx = FailureContext {
        dockerfile: request.dockerfile.clone(),
        platform: Some(request.platform.clone()),
        builder: job.builder_platform.clone(),
        endpoint: request.builder.url.clone(),
        failed_step: tracker.failed_step(),
        log_tail: tracker.failed_tail(),
        target: request.target.clone(),
        stages: job.stages.clone(),
    };
    classify(message, &ctx)
}

fn daemon_error(endpoint: &str, err: bollard::errors::Error) -> BuildError {
    use bollard::errors::Error as E;
    match err {
        E::DockerResponseServerError { message, .. } | E::DockerStreamError { error: message } => {
            BuildError::Daemon {
                endpoint: endpoint.into(),
                message,
            }
        }
        other => BuildError::Unreachable {
            endpoint: endpoint.into(),
            chosen_by: None,
            reason: error_chain(&other),
        },
    }
}

impl BuildEngine for DockerEngine {
    async fn native_platform(&self, endpoint: &str) -> Result<Platform, BuildError> {
        if let Some(known) = self.platforms.lock().await.get(endpoint) {
            return Ok(known.clone());
        }
        let docker = self.docker(endpoint).await?;
        let info = docker.info().await.map_err(|e| daemon_error(endpoint, e))?;
        let os = info.os_type.unwrap_or_else(|| "linux".into());
        let arch = info.architecture.unwrap_or_default();
        let platform = Platform::from_parts_lenient(&os, &arch, None);
        self.platforms
            .lock()
            .await
            .insert(endpoint.to_string(), platform.clone());
        Ok(platform)
    }

    async fn ping(&self, endpoint: &str) -> Result<(), BuildError> {
        let docker = self.pinger(endpoint).await?;
        match docker.ping().await {
            Ok(_) => Ok(()),
            // Any answer of the daemon's own (an API version it refuses, say) shows it alive.
            Err(bollard::errors::Error::DockerResponseServerError { .. }) => Ok(()),
            Err(err) => Err(daemon_error(endpoint, err)),
        }
    }

    async fn build(
        &self,
        job: &EngineJob,
        events: &mpsc::Sender<BuildEvent>,
        cancel: &CancellationToken,
    ) -> Result<EngineOutput, BuildError> {
        let request = &job.request;
        let endpoint = request.builder.url.as_str();
        let docker = self.docker(endpoint).await?;
        let (context_dir, dockerfile) = (request.context.clone(), request.dockerfile.clone());
        let spec = tokio::task::spawn_blocking(move || context::prepare(&context_dir, &dockerfile))
            .await
            .map_err(|e| BuildError::Daemon {
                endpoint: endpoint.into(),
                message: e.to_string(),
            })??;
        let options = build_options(job, &spec);
        let (mut stream, upload) =
            start(&docker, endpoint, spec, &request.dockerfile, options).await;
        let mut tracker = StepTracker::default();
        let followed = follow(&mut stream, &mut tracker, job, events, cancel).await;
        drop(stream);
        let (image_id, failure) = match followed {
            Ok(ended) => ended,
            Err(cancelled) => {
                if let Upload::Tar(writer) = &upload {
                    writer.abort();
                }
                return Err(cancelled);
            }
        };
        let written = match upload {
            Upload::Tar(writer) => writer.await.map(|r| r.map(|stats| stats.bytes)),
            Upload::Session(session) => Ok(Ok(session.bytes_sent())),
        };
        if let Some(err) = failure {
            return Err(explain_failure(err, job, &tracker));
        }
        let context_bytes = match written {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(err)) => return Err(err),
            Err(join) if join.is_cancelled() => 0,
            Err(join) => {
                return Err(BuildError::Io {
                    path: request.context.clone(),
                    message: join.to_string(),
                })
            }
        };
        let image_id = image_id.ok_or_else(|| BuildError::Daemon {
            endpoint: endpoint.into(),
            message: "the build ended without reporting an image ID".into(),
        })?;
        Ok(EngineOutput {
            image_id,
            log_tail: tracker.log_tail(),
            cached_steps: tracker.cached_steps(),
            context_bytes,
        })
    }

    async fn has_image(&self, endpoint: &str, image_id: &str) -> Result<bool, BuildError> {
        let docker = self.docker(endpoint).await?;
        match docker.inspect_image(image_id).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(err) => Err(daemon_error(endpoint, err)),
        }
    }

    async fn tag(
        &self,
        endpoint: &str,
        image_id: &str,
        reference: &ImageRef,
    ) -> Result<(), BuildError> {
        let docker = self.docker(endpoint).await?;
        let options = TagImageOptions {
            repo: Some(reference.familiar_name()),
            tag: Some(reference.tag_or_digest().to_string()),
        };
        docker
            .tag_image(image_id, Some(options))
            .await
            .map_err(|e| daemon_error(endpoint, e))
    }

    async fn untag(&self, endpoint: &str, reference: &ImageRef) -> Result<(), BuildError> {
        let docker = self.docker(endpoint).await?;
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
            ..Default::default()
        };
        let name = reference.to_string();
        match docker.remove_image(&name, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(err) => Err(daemon_error(endpoint, err)),
        }
    }
}

/// The daemon's JSON messages of one build.
type InfoStream<'a> =
    Pin<Box<dyn Stream<Item = Result<BuildInfo, bollard::errors::Error>> + Send + 'a>>;

/// How the context reaches the daemon.
enum Upload {
    /// Served by archbuild's session over file sync; open until dropped.
    Session(Session),
    /// Sent as a tar body by this writer.
    Tar(JoinHandle<Result<context::ContextStats, BuildError>>),
}

/// Starts the build with the context served by a session of archbuild's own (file sync,
/// `remote=client-session`): only what changed since the last build of this context is sent.
async fn sync_build(
    docker: &Docker,
    endpoint: &str,
    spec: &ContextSpec,
    dockerfile: &Path,
    mut options: BuildImageOptions,
) -> Result<(Session, InfoStream<'static>), SessionError> {
    if spec.source_date_epoch.is_some() {
        // File sync sends real mtimes and the daemon compares them to find changes; clamping
        // them would hide changed files, and not clamping them breaks reproducibility.
        return Err(SessionError(
            "SOURCE_DATE_EPOCH is set (the tar upload clamps file times to it)".into(),
        ));
    }
    let addr = DaemonAddr::from_url(endpoint).ok_or_else(|| {
        SessionError(
            "file sync is implemented for unix://, tcp:// (plain or TLS) and ssh:// endpoints"
                .into(),
        )
    })?;
    let version = docker.client_version();
    let version = format!("{}.{}", version.major_version, version.minor_version);
    let dockerfile_name = dockerfile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".into());
    let dockerfile_path = dockerfile
        .canonicalize()
        .map_err(|e| SessionError(format!("{}: {e}", dockerfile.display())))?;
    let dirs = HashMap::from([
        (
            "context".to_string(),
            SyncDir::Tree {
                root: spec.root.clone(),
                ignore: spec.ignore.clone(),
            },
        ),
        (
            "dockerfile".to_string(),
            SyncDir::Single {
                name: dockerfile_name.clone(),
                path: dockerfile_path,
            },
        ),
    ]);
    let id = options.session.clone().unwrap_or_else(session::session_id);
    let name = spec
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let key = session::shared_key(&spec.root);
    let session = Session::open(&addr, &version, &id, &name, &key, dirs).await?;
    options.dockerfile = dockerfile_name;
    options.remote = Some("client-session".into());
    options.session = Some(id);
    let query = serde_urlencoded::to_string(&options)
        .map_err(|e| SessionError(format!("cannot encode the build options: {e}")))?;
    let stream = session::http::build(&addr, &version, &query).await?;
    Ok((session, Box::pin(stream)))
}

/// Says once per endpoint why the context goes as a tar upload instead of by file sync.
fn explain_fallback(endpoint: &str, reason: &SessionError) {
    static TOLD: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut told = TOLD.lock().unwrap_or_else(|e| e.into_inner());
    if !told.iter().any(|e| e == endpoint) {
        told.push(endpoint.to_string());
        eprintln!(
            "archbuild: {endpoint}: sending the whole build context (no file sync: {reason})"
        );
    }
}

#[cfg(test)]
#[path = "docker_tests.rs"]
mod tests;
