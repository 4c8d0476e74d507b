//! Reaching a Docker daemon: a bollard client for an endpoint URL (`unix://`, `tcp://` with
//! TLS from `DOCKER_CERT_PATH`, `ssh://`, `npipe://`), the API version negotiated and checked
//! against what BuildKit sessions need, and errors that say what to do (a certificate from
//! another CA, an old daemon).

use std::time::Duration;

use bollard::{Docker, API_DEFAULT_VERSION};

use super::session;
use super::BuildError;

/// Builds can take long; bollard's default request timeout (2 minutes) would cut them off.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(6 * 60 * 60);

/// Connects to the daemon at `url` (`unix://`, `tcp://`, `http(s)://`, `ssh://`, `npipe://`)
/// and negotiates the API version. `tcp://` uses TLS when `DOCKER_TLS_VERIFY` or
/// `DOCKER_CERT_PATH` is set, with `key.pem`, `cert.pem` and `ca.pem` from `DOCKER_CERT_PATH`
/// (default `~/.docker`).
pub async fn connect(url: &str) -> Result<Docker, BuildError> {
    let unreachable = |reason: String| BuildError::Unreachable {
        endpoint: url.to_string(),
        chosen_by: None,
        reason,
    };
    let docker = client(url, REQUEST_TIMEOUT)?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| unreachable(tls_hint(url, error_chain(&e))))?;
    let version = docker.client_version();
    let (major, minor) = (version.major_version, version.minor_version);
    if (major, minor) < MIN_API {
        return Err(unreachable(format!(
            "the daemon speaks Docker API {major}.{minor}, and BuildKit builds with a session need {}.{} (Docker 18.09) or newer; upgrade Docker on that host, or build that platform elsewhere",
            MIN_API.0, MIN_API.1
        )));
    }
    Ok(docker)
}

/// A client for the daemon at `url` whose requests give up after `timeout`, not yet
/// connected (bollard connects on the first request).
pub(super) fn client(url: &str, timeout: Duration) -> Result<Docker, BuildError> {
    let unreachable = |reason: String| BuildError::Unreachable {
        endpoint: url.to_string(),
        chosen_by: None,
        reason,
    };
    let timeout = timeout.as_secs().max(1);
    let docker = if url.starts_with("unix://") {
        Docker::connect_with_unix(url, timeout, API_DEFAULT_VERSION)
    } else if url.starts_with("tcp://") || url.starts_with("http://") || url.starts_with("https://")
    {
        if url.starts_with("https://") || session::tls::wanted_for(url) {
            session::tls::install_provider();
            let dir = session::tls::cert_dir_for(url);
            Docker::connect_with_ssl(
                url,
                &dir.join("key.pem"),
                &dir.join("cert.pem"),
                &dir.join("ca.pem"),
                timeout,
                API_DEFAULT_VERSION,
            )
        } else {
            Docker::connect_with_http(url, timeout, API_DEFAULT_VERSION)
        }
    } else if url.starts_with("ssh://") {
        let bad = |reason| BuildError::BadEndpoint {
            endpoint: url.into(),
            reason,
        };
        Ok(super::ssh::docker(url, timeout).map_err(bad)?)
    } else if url.starts_with("npipe://") {
        return Err(BuildError::BadEndpoint {
            endpoint: url.into(),
            reason: "named pipes (npipe://) exist only on Windows; use unix://, tcp:// or ssh://"
                .into(),
        });
    } else {
        return Err(BuildError::BadEndpoint {
            endpoint: url.into(),
            reason: "expected unix://PATH, tcp://HOST:PORT, ssh://USER@HOST or npipe://PATH".into(),
        });
    };
    docker.map_err(|e| unreachable(tls_hint(url, e.to_string())))
}

/// The oldest Docker API archbuild builds with: BuildKit sessions came with 1.39.
const MIN_API: (usize, usize) = (1, 39);

/// A TLS refusal with what to do about it: which CA was trusted, and where it came from.
fn tls_hint(url: &str, reason: String) -> String {
    if !reason.contains("invalid peer certificate") {
        return reason;
    }
    let ca = session::tls::cert_dir_for(url).join("ca.pem");
    format!(
        "{reason}; the daemon's certificate was not issued by the CA in {} (DOCKER_CERT_PATH, default ~/.docker), or not for this address: point DOCKER_CERT_PATH at the certificates made for that daemon",
        ca.display()
    )
}

pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = cause.source();
    }
    text
}
