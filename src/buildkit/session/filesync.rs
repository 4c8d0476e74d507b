//! The session's `moby.filesync.v1.FileSync` provider: the sending side of tonistiigi/fsutil's
//! DiffCopy protocol. The daemon (the receiver) names the folder it wants in the `dir-name`
//! metadata and narrows it with `include-patterns`/`followpaths`/`exclude-patterns`; the
//! provider streams one `PACKET_STAT` per entry and an empty one to end the listing, then
//! answers each `PACKET_REQ` (by the entry's index in the listing) with `PACKET_DATA` chunks
//! read from disk and an empty `PACKET_DATA`, and answers the receiver's `PACKET_FIN` with
//! its own.
//!
//! The receiver keeps the previous transfer (keyed by the session's shared key), so it only
//! requests files whose metadata changed. Every data byte sent is counted.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bollard_buildkit_proto::fsutil::types::packet::PacketType;
use bollard_buildkit_proto::fsutil::types::Packet;
use bollard_buildkit_proto::moby::filesync::v1::file_sync_server::FileSync;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::listing::{self, Entry, Filter, SyncDir};

/// Size of the `PACKET_DATA` chunks files are sent in.
const DATA_CHUNK: usize = 128 * 1024;

type PacketStream = Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send>>;

/// Serves named folders over DiffCopy.
#[derive(Debug, Clone)]
pub struct FileSyncProvider {
    dirs: Arc<HashMap<String, SyncDir>>,
    sent: Arc<AtomicU64>,
}

impl FileSyncProvider {
    /// A provider of `dirs` by name, counting the file bytes it sends into `sent`.
    pub fn new(dirs: HashMap<String, SyncDir>, sent: Arc<AtomicU64>) -> FileSyncProvider {
        FileSyncProvider {
            dirs: Arc::new(dirs),
            sent,
        }
    }
}

/// All values of one metadata key (gRPC metadata may repeat a key).
fn metadata_values(request: &Request<Streaming<Packet>>, key: &str) -> Vec<String> {
    request
        .metadata()
        .get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

fn packet(kind: PacketType) -> Packet {
    Packet {
        r#type: kind as i32,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl FileSync for FileSyncProvider {
    type DiffCopyStream = PacketStream;
    type TarStreamStream = PacketStream;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        let name = metadata_values(&request, "dir-name")
            .into_iter()
            .next()
            .unwrap_or_default();
        let dir = self.dirs.get(&name).cloned().ok_or_else(|| {
            Status::not_found(format!("no folder named {name:?} in this session"))
        })?;
        // fsutil turns the paths to follow into include patterns (Docker 20.10's Dockerfile
        // frontend asks for `.dockerignore` and the Dockerfile this way).
        let mut includes = metadata_values(&request, "include-patterns");
        includes.extend(metadata_values(&request, "followpaths"));
        let excludes = metadata_values(&request, "exclude-patterns");
        let filter = Filter::new(&includes, &excludes)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let entries = tokio::task::spawn_blocking(move || listing::list(&dir, &filter, &includes))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(e.to_string()))?;

        let (out, rx) = mpsc::channel::<Result<Packet, Status>>(16);
        let (requests, wanted) = mpsc::unbounded_channel();
        tokio::spawn(read_requests(request.into_inner(), requests));
        tokio::spawn(send(entries, wanted, out, self.sent.clone()));
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(stream.boxed()))
    }

    async fn tar_stream(
        &self,
        _request: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        Err(Status::unimplemented(
            "archbuild serves folders with DiffCopy only",
        ))
    }
}

/// What the receiver asked for.
enum Wanted {
    File(u32),
    Finished,
    Failed(String),
}

/// Reads the receiver's packets into `requests` until it finishes or the stream ends.
async fn read_requests(mut incoming: Streaming<Packet>, requests: mpsc::UnboundedSender<Wanted>) {
    loop {
        let wanted = match incoming.next().await {
            None => Wanted::Failed("the receiver closed the stream".into()),
            Some(Err(status)) => Wanted::Failed(status.message().to_string()),
            Some(Ok(p)) => match PacketType::try_from(p.r#type) {
                Ok(PacketType::PacketReq) => Wanted::File(p.id),
                Ok(PacketType::PacketFin) => Wanted::Finished,
                Ok(PacketType::PacketErr) => {
                    Wanted::Failed(String::from_utf8_lossy(&p.data).into_owned())
                }
                _ => continue,
            },
        };
        let last = !matches!(wanted, Wanted::File(_));
        if requests.send(wanted).is_err() || last {
            return;
        }
    }
}

/// Sends the listing, then the requested files, then `PACKET_FIN`.
async fn send(
    entries: Vec<Entry>,
    mut wanted: mpsc::UnboundedReceiver<Wanted>,
    out: mpsc::Sender<Result<Packet, Status>>,
    sent: Arc<AtomicU64>,
) {
    let mut files: Vec<Option<PathBuf>> = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut stat = packet(PacketType::PacketStat);
        stat.stat = Some(entry.stat);
        files.push(entry.file);
        if out.send(Ok(stat)).await.is_err() {
            return;
        }
    }
    if out.send(Ok(packet(PacketType::PacketStat))).await.is_err() {
        return;
    }
    while let Some(request) = wanted.recv().await {
        match request {
            Wanted::File(id) => {
                let Some(path) = files.get(id as usize).cloned() else {
                    let _ = out
                        .send(Err(Status::invalid_argument(format!(
                            "no file with id {id} in the listing"
                        ))))
                        .await;
                    return;
                };
                if let Err(status) = send_file(id, path, &out, &sent).await {
                    let _ = out.send(Err(status)).await;
                    return;
                }
            }
            Wanted::Finished => {
                let _ = out.send(Ok(packet(PacketType::PacketFin))).await;
                return;
            }
            Wanted::Failed(message) => {
                let _ = out.send(Err(Status::aborted(message))).await;
                return;
            }
        }
    }
}

/// Streams one file in [`DATA_CHUNK`] pieces, read on a blocking thread, then the empty
/// `PACKET_DATA` that ends it (alone for entries without contents, as fsutil does).
async fn send_file(
    id: u32,
    path: Option<PathBuf>,
    out: &mpsc::Sender<Result<Packet, Status>>,
    sent: &AtomicU64,
) -> Result<(), Status> {
    let mut end = packet(PacketType::PacketData);
    end.id = id;
    let Some(path) = path else {
        return out
            .send(Ok(end))
            .await
            .map_err(|_| Status::cancelled("the receiver went away"));
    };
    let (chunks, mut rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(2);
    let reader = tokio::task::spawn_blocking(move || {
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) => return chunks.blocking_send(Err(e)),
        };
        loop {
            let mut buf = vec![0; DATA_CHUNK];
            match file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    buf.truncate(n);
                    chunks.blocking_send(Ok(buf))?;
                }
                Err(e) => return chunks.blocking_send(Err(e)),
            }
        }
    });
    while let Some(chunk) = rx.recv().await {
        let data = chunk.map_err(|e| Status::internal(format!("reading a context file: {e}")))?;
        sent.fetch_add(data.len() as u64, Ordering::Relaxed);
        let mut p = packet(PacketType::PacketData);
        p.id = id;
        p.data = data;
        if out.send(Ok(p)).await.is_err() {
            reader.abort();
            return Ok(());
        }
    }
    out.send(Ok(end))
        .await
        .map_err(|_| Status::cancelled("the receiver went away"))
}
