//! Plain HTTP/1.1 to the Docker daemon for the two requests bollard cannot make here: the
//! `/session` upgrade to h2c that carries the BuildKit session, and a `/build` that names that
//! session instead of uploading a tar. Its JSON message stream is decoded into bollard's
//! [`BuildInfo`] so the caller reads it exactly like `Docker::build_image`'s stream.

use std::path::PathBuf;

use bollard::models::BuildInfo;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use http::header::{CONNECTION, HOST, UPGRADE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Why the session route could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SessionError(pub String);

impl SessionError {
    fn new(what: &str, err: impl std::fmt::Display) -> SessionError {
        SessionError(format!("{what}: {err}"))
    }
}

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonAddr {
    Unix(PathBuf),
    Tcp(String),
    /// `HOST:PORT` over TLS with the certificates of the folder.
    Tls(String, PathBuf),
    /// The daemon's socket through `ssh HOST docker system dial-stdio`.
    Ssh(crate::buildkit::ssh::SshTarget),
}

impl DaemonAddr {
    /// `unix://PATH`, `tcp://HOST:PORT` (over TLS when the Docker client settings ask for
    /// it, see [`super::tls::wanted`]), `http://`, `https://` and `ssh://`; `None` for the rest.
    pub fn from_url(url: &str) -> Option<DaemonAddr> {
        if url.starts_with("ssh://") {
            return crate::buildkit::ssh::SshTarget::parse(url)
                .ok()
                .map(DaemonAddr::Ssh);
        }
        if let Some(path) = url.strip_prefix("unix://") {
            return Some(DaemonAddr::Unix(PathBuf::from(path)));
        }
        if let Some(host) = url.strip_prefix("https://") {
            let host = host.trim_end_matches('/').to_string();
            return Some(DaemonAddr::Tls(host, super::tls::cert_dir_for(url)));
        }
        if let Some(host) = url.strip_prefix("tcp://") {
            let host = host.trim_end_matches('/').to_string();
            return Some(match super::tls::wanted_for(url) {
                true => DaemonAddr::Tls(host, super::tls::cert_dir_for(url)),
                false => DaemonAddr::Tcp(host),
            });
        }
        let host = url.strip_prefix("http://")?;
        Some(DaemonAddr::Tcp(host.trim_end_matches('/').to_string()))
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

async fn dial(addr: &DaemonAddr) -> std::io::Result<Box<dyn Io>> {
    Ok(match addr {
        DaemonAddr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
        DaemonAddr::Tcp(host) => Box::new(tokio::net::TcpStream::connect(host.as_str()).await?),
        DaemonAddr::Tls(host, dir) => Box::new(super::tls::connect(host, dir).await?),
        DaemonAddr::Ssh(target) => Box::new(crate::buildkit::ssh::dial(target)?),
    })
}

/// Sends one request on a new connection (which allows upgrades).
pub async fn send(
    addr: &DaemonAddr,
    request: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, SessionError> {
    let io = dial(addr)
        .await
        .map_err(|e| SessionError::new("cannot connect", e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| SessionError::new("HTTP handshake failed", e))?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| SessionError::new("request failed", e))
}

/// A request to the daemon's API `path` (`/session`, `/build?...`) at API `version` (`1.41`).
pub fn request(version: &str, path: &str) -> http::request::Builder {
    Request::post(format!("/v{version}{path}")).header(HOST, "docker")
}

/// Opens the session: `POST /session` upgraded to h2c; returns the upgraded connection.
pub async fn upgrade(
    addr: &DaemonAddr,
    request: http::request::Builder,
) -> Result<hyper::upgrade::Upgraded, SessionError> {
    let request = request
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "h2c")
        .body(Full::new(Bytes::new()))
        .map_err(|e| SessionError::new("bad session request", e))?;
    let response = send(addr, request).await?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = response.status();
        let body = response.into_body().collect().await.map(|b| b.to_bytes());
        let text = body.map(|b| String::from_utf8_lossy(&b).into_owned());
        return Err(SessionError(format!(
            "the daemon answered /session with {status}: {}",
            text.unwrap_or_default().trim()
        )));
    }
    hyper::upgrade::on(response)
        .await
        .map_err(|e| SessionError::new("session upgrade failed", e))
}

/// `POST /build?query` with an empty body; the daemon's JSON messages as [`BuildInfo`]s.
/// An HTTP error status becomes one `DockerResponseServerError`, an `errorDetail` message a
/// `DockerStreamError`, as with bollard.
pub async fn build(
    addr: &DaemonAddr,
    version: &str,
    query: &str,
) -> Result<impl Stream<Item = Result<BuildInfo, bollard::errors::Error>>, SessionError> {
    let request = request(version, &format!("/build?{query}"))
        .header(http::header::CONTENT_TYPE, "application/x-tar")
        .body(Full::new(Bytes::new()))
        .map_err(|e| SessionError::new("bad build request", e))?;
    let response = send(addr, request).await?;
    let status = response.status();
    let body = response.into_body();
    let state = (
        body,
        BytesMut::new(),
        (!status.is_success()).then_some(status),
    );
    Ok(futures_util::stream::unfold(
        Some(state),
        |state| async move {
            let (mut body, mut buffer, failed) = state?;
            if let Some(status) = failed {
                let bytes = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("message")?.as_str().map(str::to_string))
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
                let err = bollard::errors::Error::DockerResponseServerError {
                    status_code: status.as_u16(),
                    message,
                };
                return Some((Err(err), None));
            }
            loop {
                if let Some(item) = next_message(&mut buffer) {
                    return Some((item, Some((body, buffer, None))));
                }
                match body.frame().await {
                    None => return None,
                    Some(Err(e)) => {
                        // The connection broke (the daemon went away), which is not a
                        // message of the daemon's: an I/O error, as bollard gives one.
                        let err = bollard::errors::Error::IOError {
                            err: std::io::Error::new(
                                std::io::ErrorKind::ConnectionAborted,
                                format!("reading the build output: {e}"),
                            ),
                        };
                        return Some((Err(err), None));
                    }
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            buffer.extend_from_slice(&data);
                        }
                    }
                }
            }
        },
    ))
}

/// Takes the next complete line of `buffer` that holds a message.
fn next_message(buffer: &mut BytesMut) -> Option<Result<BuildInfo, bollard::errors::Error>> {
    while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
        let line = buffer.split_to(end + 1);
        let line = line.chunk().trim_ascii();
        if line.is_empty() {
            continue;
        }
        return Some(match serde_json::from_slice::<BuildInfo>(line) {
            Ok(BuildInfo {
                error_detail: Some(detail),
                ..
            }) => Err(bollard::errors::Error::DockerStreamError {
                error: detail.message.unwrap_or_default(),
            }),
            Ok(info) => Ok(info),
            Err(e) => Err(bollard::errors::Error::DockerStreamError {
                error: format!("unreadable build output: {e}"),
            }),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_without_tls_or_ssh_are_reachable_directly() {
        assert_eq!(
            DaemonAddr::from_url("unix:///run/docker.sock"),
            Some(DaemonAddr::Unix("/run/docker.sock".into()))
        );
        assert_eq!(
            DaemonAddr::from_url("tcp://127.0.0.1:2375"),
            Some(DaemonAddr::Tcp("127.0.0.1:2375".into()))
        );
        assert_eq!(
            DaemonAddr::from_url("ssh://me@host:2222"),
            Some(DaemonAddr::Ssh(crate::buildkit::ssh::SshTarget {
                user: Some("me".into()),
                host: "host".into(),
                port: Some(2222)
            }))
        );
        assert_eq!(DaemonAddr::from_url("npipe:////./pipe/docker_engine"), None);
    }

    #[test]
    fn messages_are_split_at_line_ends_and_errors_recognised() {
        let mut buffer = BytesMut::from(
            &b"{\"stream\":\"a\"}\r\n\r\n{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\r\n{\"str"[..],
        );
        let first = next_message(&mut buffer).unwrap().unwrap();
        assert_eq!(first.stream.as_deref(), Some("a"));
        let second = next_message(&mut buffer).unwrap().unwrap_err();
        assert!(second.to_string().contains("boom"), "{second}");
        assert!(next_message(&mut buffer).is_none());
        assert_eq!(&buffer[..], b"{\"str");
    }
}
