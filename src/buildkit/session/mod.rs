//! A BuildKit session of archbuild's own on the Docker daemon, serving the build context by
//! file sync instead of a tar upload (`remote=client-session`), as the docker CLI does.
//!
//! The session is a `POST /session` upgraded to h2c; on that connection the daemon is the
//! gRPC client and archbuild serves `moby.filesync.v1.FileSync` ([`filesync`]) and the health
//! check the daemon polls. The daemon keeps each synced folder between builds under the
//! session's shared key (derived from the context folder), so a rebuild transfers only the
//! files whose size, mode or mtime changed. The Dockerfile is offered as a folder of its own
//! (`dockerfile`), holding just that file.

use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bollard_buildkit_proto::health::health_check_response::ServingStatus;
use bollard_buildkit_proto::health::health_server::{Health, HealthServer};
use bollard_buildkit_proto::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use bollard_buildkit_proto::moby::filesync::v1::file_sync_server::FileSyncServer;
use futures_util::Stream;
use hyper_util::rt::TokioExecutor;
use hyper_util::service::TowerToHyperService;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

pub mod filesync;
pub mod http;
pub mod listing;
pub mod tls;

pub use self::http::{DaemonAddr, SessionError};
pub use listing::SyncDir;

/// The gRPC methods the session serves, announced to the daemon when it is opened.
const METHODS: [&str; 3] = [
    "/grpc.health.v1.Health/Check",
    "/moby.filesync.v1.FileSync/DiffCopy",
    "/moby.filesync.v1.FileSync/TarStream",
];

/// An open session; closed when dropped.
#[derive(Debug)]
pub struct Session {
    id: String,
    sent: Arc<AtomicU64>,
    server: JoinHandle<()>,
}

impl Session {
    /// Opens a session on the daemon at `addr` (API `version`) serving `dirs` by name.
    /// `shared_key` names the folders' previous transfer on the daemon: the same key (the
    /// same context folder) lets a rebuild send only what changed.
    pub async fn open(
        addr: &DaemonAddr,
        version: &str,
        id: &str,
        name: &str,
        shared_key: &str,
        dirs: HashMap<String, SyncDir>,
    ) -> Result<Session, SessionError> {
        let mut request = http::request(version, "/session")
            .header("X-Docker-Expose-Session-Uuid", id)
            .header("X-Docker-Expose-Session-Name", name)
            .header("X-Docker-Expose-Session-Sharedkey", shared_key);
        for method in METHODS {
            request = request.header("X-Docker-Expose-Session-Grpc-Method", method);
        }
        let connection = http::upgrade(addr, request).await?;
        let sent = Arc::new(AtomicU64::new(0));
        let provider = filesync::FileSyncProvider::new(dirs, sent.clone());
        let routes = tonic::service::Routes::new(HealthServer::new(Healthy))
            .add_service(FileSyncServer::new(provider));
        let server = tokio::spawn(async move {
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(connection, TowerToHyperService::new(routes))
                .await;
        });
        Ok(Session {
            id: id.to_string(),
            sent,
            server,
        })
    }

    /// The session ID the build request names.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// File bytes sent so far (DiffCopy `PACKET_DATA` payloads).
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A session ID unique to this process and build.
pub fn session_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "archbuild-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The shared key of a context folder: the same folder gets the same key, so the daemon
/// reuses what it received for it before.
pub fn shared_key(context: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(context.to_string_lossy().as_bytes());
    hex::encode(&digest[..16])
}

/// The health service the daemon polls to know the session is alive.
struct Healthy;

type HealthStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for Healthy {
    type WatchStream = HealthStream;

    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("only Check is served"))
    }

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthStream>, Status> {
        Err(Status::unimplemented("only Check is served"))
    }
}
