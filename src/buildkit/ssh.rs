//! Docker over ssh, as the Docker CLI reaches an `ssh://[USER@]HOST[:PORT]` daemon: every
//! connection is the machine's own `ssh` client running `docker system dial-stdio` on the
//! host, whose standard input and output are the daemon's socket. The user's ssh
//! configuration, agent and known hosts apply unchanged; `BatchMode` makes a refused key an
//! error instead of a password prompt. API requests go through a pooled HTTP client over such
//! connections ([`docker`]); the BuildKit session dials its own ([`dial`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use bollard::Docker;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::task::JoinHandle;

/// Where an `ssh://` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshTarget {
    /// `ssh://[USER@]HOST[:PORT]` (a path after the host is refused, as the Docker CLI does).
    pub fn parse(url: &str) -> Result<SshTarget, String> {
        let rest = url
            .strip_prefix("ssh://")
            .ok_or_else(|| format!("{url} is not an ssh:// URL"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err("an ssh:// URL takes no path: write ssh://USER@HOST[:PORT]".into());
        }
        let (user, host_port) = match rest.rsplit_once('@') {
            Some((user, hp)) => (Some(user.to_string()), hp),
            None => (None, rest),
        };
        let (host, port) = match host_port.strip_prefix('[') {
            Some(inner) => {
                let (host, after) = inner
                    .split_once(']')
                    .ok_or_else(|| format!("{url}: an IPv6 address needs its closing ]"))?;
                (host, after.strip_prefix(':'))
            }
            None => match host_port.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            },
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| format!("ssh port \"{p}\" is not a number"))
            })
            .transpose()?;
        if host.is_empty() || host.starts_with('-') {
            return Err("an ssh:// URL needs a host: ssh://USER@HOST[:PORT]".into());
        }
        Ok(SshTarget {
            user,
            host: host.to_string(),
            port,
        })
    }

    /// The `ssh` arguments that run `docker system dial-stdio` on the host.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["-o".into(), "BatchMode=yes".into(), "-T".into()];
        if let Some(user) = &self.user {
            args.extend(["-l".into(), user.clone()]);
        }
        if let Some(port) = self.port {
            args.extend(["-p".into(), port.to_string()]);
        }
        args.extend(["--", &self.host, "docker", "system", "dial-stdio"].map(String::from));
        args
    }
}

/// One connection to the daemon: the `ssh` process and its pipes. Killed when dropped.
pub struct SshStream {
    host: String,
    _child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// Whatever ssh printed to standard error, ready when it exits.
    stderr: Option<JoinHandle<String>>,
    received: bool,
}

/// Starts `ssh` for one connection to the daemon of `target`.
pub fn dial(target: &SshTarget) -> io::Result<SshStream> {
    let mut child = tokio::process::Command::new("ssh")
        .args(target.args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run ssh: {e}")))?;
    let (Some(stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(io::Error::other("ssh started without its pipes"));
    };
    let stderr = tokio::spawn(async move {
        let mut text = Vec::new();
        // A few KiB say why; more is not read into memory.
        let _ = (&mut stderr).take(8 << 10).read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).trim().to_string()
    });
    Ok(SshStream {
        host: target.host.clone(),
        _child: child,
        stdin,
        stdout,
        stderr: Some(stderr),
        received: false,
    })
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        std::task::ready!(Pin::new(&mut this.stdout).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.received = true;
            return Poll::Ready(Ok(()));
        }
        // The connection ended before the daemon said anything: ssh failed (a refused key,
        // an unknown host, no docker there); its own words are the error.
        match (this.received, this.stderr.as_mut()) {
            (false, Some(stderr)) => {
                let said = std::task::ready!(Pin::new(stderr).poll(cx)).unwrap_or_default();
                this.stderr = None;
                let said = said.lines().last().unwrap_or("it exited").to_string();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("ssh to {} failed: {said}", this.host),
                )))
            }
            _ => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

impl Connection for SshStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Dials `target` for each new connection of the pooled client.
#[derive(Clone)]
struct Connector(SshTarget);

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<SshStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let stream = dial(&self.0).map(TokioIo::new);
        Box::pin(async move { stream })
    }
}

/// A bollard client for the daemon at `url` over ssh: connections are kept open and reused,
/// so the API calls of a run cost one ssh handshake per concurrent request, not one each.
pub fn docker(url: &str, timeout: u64) -> Result<Docker, String> {
    let target = SshTarget::parse(url)?;
    let client =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(Connector(target));
    let transport = move |request: bollard::BollardRequest| {
        let client = client.clone();
        async move {
            let (mut parts, body) = request.into_parts();
            // The connector ignores the URI; the pool needs an http one to key connections.
            let path = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            parts.uri =
                format!("http://docker{path}")
                    .parse()
                    .map_err(|e: http::uri::InvalidUri| bollard::errors::Error::IOError {
                        err: io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
                    })?;
            client
                .request(bollard::BollardRequest::from_parts(parts, body))
                .await
                .map_err(|e| bollard::errors::Error::IOError {
                    err: io::Error::other(crate::buildkit::connect::error_chain(&e)),
                })
        }
    };
    Docker::connect_with_custom_transport(
        transport,
        Some("http://docker"),
        timeout,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_the_docker_cli_takes_them() {
        let t = SshTarget::parse("ssh://ci@arm1.example:2222").unwrap();
        assert_eq!(
            t,
            SshTarget {
                user: Some("ci".into()),
                host: "arm1.example".into(),
                port: Some(2222)
            }
        );
        assert_eq!(
            t.args().join(" "),
            "-o BatchMode=yes -T -l ci -p 2222 -- arm1.example docker system dial-stdio"
        );
        let t = SshTarget::parse("ssh://arm1/").unwrap();
        assert_eq!((t.user, t.host.as_str(), t.port), (None, "arm1", None));
        let t = SshTarget::parse("ssh://me@[fd00::2]:22").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("fd00::2", Some(22)));
        for bad in [
            "ssh://h/var/run/docker.sock",
            "ssh://me@",
            "ssh://h:port",
            "ssh://-oProxyCommand=x",
        ] {
            assert!(SshTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_connection_that_ends_before_any_answer_carries_sshs_words() {
        // Nothing listens on loopback port 1: ssh says so on standard error and exits.
        let target = SshTarget {
            user: None,
            host: "127.0.0.1".into(),
            port: Some(1),
        };
        let Ok(mut stream) = dial(&target) else {
            return; // no ssh client here
        };
        let mut buf = Vec::new();
        let err = stream.read_to_end(&mut buf).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("ssh to 127.0.0.1 failed: ") && text.contains("refused"),
            "{text}"
        );
    }
}
