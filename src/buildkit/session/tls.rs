//! TLS to a `tcp://` daemon that asks for it (`DOCKER_TLS_VERIFY` or `DOCKER_CERT_PATH` set,
//! or an `https://` endpoint), the way the Docker CLI and bollard reach it: the daemon's
//! certificate checked against `ca.pem`, and `cert.pem`/`key.pem` presented as the client's,
//! all from `DOCKER_CERT_PATH` (default `~/.docker`). The BuildKit session and its file sync
//! then travel over the same kind of connection as the API.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Makes ring the process's TLS provider, for the libraries that ask rustls for the default
/// (bollard's `connect_with_ssl`): with both ring and aws-lc-rs in the dependency tree rustls
/// cannot choose, and panicked on the first TLS builder. Idempotent.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Certificate folders of endpoints that have their own (Docker contexts), by URL.
fn folders() -> &'static Mutex<HashMap<String, PathBuf>> {
    static FOLDERS: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    FOLDERS.get_or_init(Default::default)
}

/// Makes `url` use the certificates in `dir` (a Docker context's TLS folder) instead of
/// `DOCKER_CERT_PATH`'s; called once per endpoint when a run's plan is known.
pub fn use_folder(url: &str, dir: &Path) {
    let mut folders = folders().lock().unwrap_or_else(|e| e.into_inner());
    folders.insert(url.to_string(), dir.to_path_buf());
}

fn folder_of(url: &str) -> Option<PathBuf> {
    let folders = folders().lock().unwrap_or_else(|e| e.into_inner());
    folders.get(url).cloned()
}

/// Whether `url` (a `tcp://` endpoint) is spoken to over TLS: it has a folder of its own,
/// or the process settings ask for TLS.
pub fn wanted_for(url: &str) -> bool {
    folder_of(url).is_some() || wanted()
}

/// The certificate folder for `url`: its own, else [`cert_dir`].
pub fn cert_dir_for(url: &str) -> PathBuf {
    folder_of(url).unwrap_or_else(cert_dir)
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
