//! TLS to a `tcp://` daemon that asks for it (`DOCKER_TLS_VERIFY` or `DOCKER_CERT_PATH` set,
//! or an `https://` endpoint), the way the Docker CLI and bollard reach it: the daemon's
//! certificate checked against `ca.pem`, and `cert.pem`/`key.pem` presented as the client's,
//! all from `DOCKER_CERT_PATH` (default `~/.docker`). The BuildKit session and its file sync
//! then travel over the same kind of connection as the API.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Makes ring the process's TLS provider, for the libraries that ask rustls for the default
/// (bollard's `connect_with_ssl`): with both ring and aws-lc-rs in the dependency tree rustls
/// cannot choose, and panicked on the first TLS builder. Idempotent.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Whether `tcp://` endpoints are spoken to over TLS.
pub fn wanted() -> bool {
    let verify = std::env::var("DOCKER_TLS_VERIFY").unwrap_or_default();
    (!verify.is_empty() && verify != "0") || std::env::var_os("DOCKER_CERT_PATH").is_some()
}

/// The folder holding `ca.pem`, `cert.pem` and `key.pem`.
pub fn cert_dir() -> PathBuf {
    match std::env::var_os("DOCKER_CERT_PATH") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker"),
    }
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// The client configuration from the certificates in `dir`.
fn config(dir: &Path) -> std::io::Result<rustls::ClientConfig> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| invalid(format!("{}: {e}", path.display())))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read("ca.pem")?) {
        let cert = cert.map_err(|e| invalid(format!("ca.pem: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| invalid(format!("ca.pem: {e}")))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read("cert.pem")?)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("cert.pem: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&read("key.pem")?)
        .map_err(|e| invalid(format!("key.pem: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| invalid(format!("cert.pem/key.pem: {e}")))
}

/// A TLS connection to `host` (`HOST:PORT`, the name or address the certificate is for).
pub async fn connect(
    host: &str,
    dir: &Path,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let config = config(dir)?;
    let name = host
        .rsplit_once(':')
        .map_or(host, |(name, _)| name)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let server =
        ServerName::try_from(name.to_string()).map_err(|e| invalid(format!("{name}: {e}")))?;
    let tcp = tokio::net::TcpStream::connect(host).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server, tcp)
        .await
}
