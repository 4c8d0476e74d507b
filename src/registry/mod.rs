//! A registry repository as a [`Store`]: manifests fetched fresh with their exact bytes (the
//! digest is recomputed and checked) and blobs streamed, by archbuild's own bounded requests
//! ([`head`]), since images read from a registry may be anyone's; pushes go through
//! oci-client (`publish::push`) to the registry the user publishes to. Transport
//! (plain HTTP only for loopback registries and `--insecure-registry` hosts) and credentials
//! (the Docker client configuration) are decided here; errors name the registry and the
//! credential source tried, never a secret.

pub mod credentials;
pub mod errors;
mod head;
mod pool;
pub mod token;

use std::path::PathBuf;
use std::sync::Arc;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::oci::{digest, media_types};
use crate::reference::ImageRef;
use crate::source::is_loopback_registry;
use crate::store::{BlobReader, RawManifest, Store, StoreError};

pub use credentials::Credentials;
pub use pool::StorePool;
use token::{Authorizer, Grant};

/// How to reach registries: which may be spoken to over plain HTTP, and where the Docker
/// client configuration lives.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Hosts (`host[:port]`) allowed over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// The folder holding `config.json`; `None` means `$DOCKER_CONFIG` or `~/.docker`.
    pub docker_config: Option<PathBuf>,
}

impl RegistryOptions {
    /// Whether `registry` is spoken to over plain HTTP.
    pub fn is_plain_http(&self, registry: &str) -> bool {
        is_loopback_registry(registry) || self.insecure_registries.iter().any(|h| h == registry)
    }
}

/// A reference's repository in oci-client's terms (tagged `latest`, the tag a store ignores):
/// the one place archbuild's [`ImageRef`] meets the client's own type.
fn repository_of(reference: &ImageRef) -> Reference {
    Reference::with_tag(
        reference.registry().to_string(),
        reference.repository().to_string(),
        "latest".to_string(),
    )
}

/// One repository of a registry, read (and, for `publish::push`, written) through oci-client.
#[derive(Clone)]
pub struct RegistryStore {
    client: Client,
    reference: Reference,
    /// Shared by every repository of the registry (one connection pool, one token cache).
    authorizer: Arc<Authorizer>,
}

impl RegistryStore {
    /// A store for the repository of `reference` (its tag or digest is ignored).
    pub fn new(reference: &ImageRef, opts: &RegistryOptions) -> RegistryStore {
        let reference = repository_of(reference);
        let registry = reference.resolve_registry().to_string();
        let protocol = if opts.is_plain_http(&registry) {
            ClientProtocol::HttpsExcept(vec![registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            // Blobs are streamed from temp files with a known size: one PUT each.
            use_monolithic_push: true,
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            user_agent: concat!("archbuild/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let config_dir = opts
            .docker_config
            .clone()
            .or_else(crate::endpoint::docker_config_dir);
        let credentials = credentials::lookup(&registry, config_dir.as_deref());
        let authorizer = Authorizer::new(&registry, opts.is_plain_http(&registry), credentials);
        RegistryStore {
            client: Client::new(config),
            reference,
            authorizer: Arc::new(authorizer),
        }
    }

    /// A store for another repository, sharing this one's client (connection pool and
    /// tokens) when it is on the same registry; a fresh store otherwise. Audits that read
    /// many repositories of one registry use it to avoid a new client per image.
    pub fn with_repository(&self, reference: &ImageRef, opts: &RegistryOptions) -> RegistryStore {
        let other = repository_of(reference);
        if other.resolve_registry() != self.reference.resolve_registry() {
            return RegistryStore::new(reference, opts);
        }
        RegistryStore {
            client: self.client.clone(),
            reference: other,
            authorizer: self.authorizer.clone(),
        }
    }

    /// The oci-client client; [`RegistryStore::authorize`] gives it a token first.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The credentials used and where they came from.
    pub fn credentials(&self) -> &Credentials {
        self.authorizer.credentials()
    }

    /// `registry/repository`.
    pub fn repository(&self) -> String {
        format!(
            "{}/{}",
            self.reference.registry(),
            self.reference.repository()
        )
    }

    /// A reference into this repository by tag (or `sha256:` digest).
    pub fn reference_to(&self, tag_or_digest: &str) -> Reference {
        let (registry, repository) = (
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
        );
        if tag_or_digest.contains(':') {
            Reference::with_digest(registry, repository, tag_or_digest.to_string())
        } else {
            Reference::with_tag(registry, repository, tag_or_digest.to_string())
        }
    }

    /// Maps an oci-client error about `what` to a [`StoreError`].
    pub fn error(&self, what: &str, e: oci_client::errors::OciDistributionError) -> StoreError {
        errors::map(e, &self.describe(), what, self.credentials())
    }

    /// The grant for reading this repository or, with `push`, for writing it and reading
    /// each of `mount_from` (other repositories of the registry, `repo/name`).
    async fn grant(&self, push: bool, mount_from: &[String]) -> Result<Grant, StoreError> {
        let mut scopes = vec![token::scope(self.reference.repository(), push)];
        scopes.extend(mount_from.iter().map(|r| token::scope(r, false)));
        self.authorizer.grant(&scopes).await
    }

    /// Gives oci-client the token for what comes next (reading, or pushing with mounts from
    /// `mount_from`); cheap while the token is fresh, so it is called before each request
    /// group and a long push gets a new token before the old one expires.
    pub async fn authorize(&self, push: bool, mount_from: &[String]) -> Result<(), StoreError> {
        let grant = self.grant(push, mount_from).await?;
        let registry = self.reference.resolve_registry();
        // What oci-client falls back to if a token of ours expires in its hands.
        self.client
            .store_auth_if_needed(registry, &self.credentials().fallback())
            .await;
        if let Grant::Bearer(token) = grant {
            let op = if push {
                RegistryOperation::Push
            } else {
                RegistryOperation::Pull
            };
            // With a bearer given, oci-client only files it in its cache (no request).
            let _ = self
                .client
                .auth(&self.reference, &RegistryAuth::Bearer(token), op)
                .await;
        }
        Ok(())
    }

    /// Checks, before anything is built, that this repository can be pushed to: a token for
    /// the push scope, then an upload opened and cancelled, since a registry may issue a
    /// token with fewer rights than asked and only refuse at the first write.
    pub async fn check_push_access(&self) -> Result<(), StoreError> {
        let describe = self.describe();
        self.caller(&describe, true).await?.open_upload().await
    }

    /// The digest the tag (or digest) `reference` points at now: a HEAD where the registry
    /// says it, else the manifest fetched and hashed.
    pub async fn manifest_digest(&self, reference: &str) -> Result<String, StoreError> {
        let describe = self.describe();
        let caller = self.caller(&describe, false).await?;
        if let Some(digest) = caller
            .manifest_digest(reference, media_types::ACCEPTED_MANIFESTS)
            .await?
        {
            return Ok(digest);
        }
        Ok(self.manifest(reference).await?.digest)
    }

    /// This store as the one asking, for the requests of [`head`], with the grant for
    /// reading or, with `push`, writing.
    async fn caller<'a>(
        &'a self,
        describe: &'a str,
        push: bool,
    ) -> Result<head::Caller<'a>, StoreError> {
        Ok(head::Caller {
            authorizer: &self.authorizer,
            repository: self.reference.repository(),
            grant: self.grant(push, &[]).await?,
            describe,
        })
    }
}

impl Store for RegistryStore {
    async fn manifest(&self, reference: &str) -> Result<RawManifest, StoreError> {
        let what = format!("manifest {reference}");
        let describe = self.describe();
        let bytes = self
            .caller(&describe, false)
            .await?
            .manifest(reference, media_types::ACCEPTED_MANIFESTS)
            .await?;
        let digest = digest::sha256(&bytes);
        if reference.starts_with("sha256:") && digest != reference {
            return Err(StoreError::DigestMismatch {
                what,
                store: self.describe(),
                expected: reference.to_string(),
                actual: digest,
            });
        }
        let media_type = media_types::detect(&bytes).ok_or_else(|| StoreError::Other {
            store: self.describe(),
            detail: format!("{what} is not a JSON manifest"),
        })?;
        Ok(RawManifest {
            bytes: bytes.to_vec(),
            media_type,
            digest,
        })
    }

    async fn blob_size(&self, digest: &str) -> Result<Option<u64>, StoreError> {
        let describe = self.describe();
        self.caller(&describe, false).await?.size(digest).await
    }

    async fn blob(&self, digest: &str) -> Result<BlobReader, StoreError> {
        let describe = self.describe();
        self.caller(&describe, false).await?.blob(digest).await
    }

    fn describe(&self) -> String {
        self.repository()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_http::{self, Reply};

    /// A registry stand-in on loopback that refuses every request with 401 (Basic).
    async fn refusing_registry() -> String {
        test_http::serve(|_| {
            Reply::whole(
                "401 Unauthorized",
                "WWW-Authenticate: Basic realm=\"test\"\r\n",
                "",
            )
        })
        .await
    }

    /// A hostile registry on loopback: `/v2/` answers 200 (no authentication), and every
    /// manifest is an endless chunked body (`declared` false) or declares 10 GB.
    async fn endless_registry(declared: bool) -> String {
        fn answer(request: &str, declared: bool) -> Reply {
            if !request.contains("/manifests/") {
                return Reply::whole("200 OK", "", "{}");
            }
            let index = "Content-Type: application/vnd.oci.image.index.v1+json\r\n";
            match declared {
                true => Reply {
                    head: format!("HTTP/1.1 200 OK\r\n{index}Content-Length: 10000000000\r\n\r\n"),
                    endless: Some(" ".repeat(0x10000)),
                },
                false => Reply {
                    head: format!("HTTP/1.1 200 OK\r\n{index}Transfer-Encoding: chunked\r\n\r\n"),
                    endless: Some(format!("10000\r\n{}\r\n", " ".repeat(0x10000))),
                },
            }
        }
        match declared {
            true => test_http::serve(|r| answer(r, true)).await,
            false => test_http::serve(|r| answer(r, false)).await,
        }
    }

    #[tokio::test]
    async fn a_manifest_larger_than_containerds_limit_is_refused_while_reading() {
        for declared in [false, true] {
            let addr = endless_registry(declared).await;
            let reference: ImageRef = format!("{addr}/team/api:1.0").parse().unwrap();
            let store = RegistryStore::new(&reference, &RegistryOptions::default());
            let err =
                tokio::time::timeout(std::time::Duration::from_secs(20), store.manifest("1.0"))
                    .await
                    .expect("a bounded read ends")
                    .unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, StoreError::Other { .. }), "{text}");
            assert!(text.contains("over the limit of 4194304 bytes"), "{text}");
            assert!(text.contains("manifest 1.0"), "{text}");
        }
    }

    /// A hostile registry on loopback that refuses every blob with a 500 whose body starts
    /// as a distribution error and never ends.
    async fn endless_error_registry() -> String {
        test_http::serve(|request| {
            if !request.contains("/blobs/") {
                return Reply::whole("200 OK", "", "{}");
            }
            let start = r#"{"errors":[{"code":"UNKNOWN","message":"storage down"}]}"#;
            Reply {
                head: format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{start}\r\n",
                    start.len()
                ),
                endless: Some(format!("10000\r\n{}\r\n", " ".repeat(0x10000))),
            }
        })
        .await
    }

    #[tokio::test]
    async fn a_refused_blobs_endless_error_body_is_read_within_a_bound() {
        let addr = endless_error_registry().await;
        let reference: ImageRef = format!("{addr}/team/api:1.0").parse().unwrap();
        let store = RegistryStore::new(&reference, &RegistryOptions::default());
        let digest = format!("sha256:{}", "a".repeat(64));
        let err = tokio::time::timeout(std::time::Duration::from_secs(20), store.blob(&digest))
            .await
            .expect("a bounded read ends")
            .err()
            .expect("a 500 is an error");
        let text = err.to_string();
        assert!(text.contains("answered 500"), "{text}");
        assert!(text.contains(&format!("blob {digest}")), "{text}");
        // The registry's own message is shown; the endless padding after it is not.
        assert!(text.contains("UNKNOWN: storage down"), "{text}");
        assert!(text.len() < 1000, "{} bytes of error", text.len());
    }

    fn options_with_secret(registry: &str) -> (RegistryOptions, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        // base64("builder:hunter2-SECRET")
        let config = format!(
            r#"{{"auths":{{"{registry}":{{"auth":"YnVpbGRlcjpodW50ZXIyLVNFQ1JFVA=="}}}}}}"#
        );
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        let opts = RegistryOptions {
            docker_config: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        (opts, dir)
    }

    #[tokio::test]
    async fn refused_credentials_are_named_but_never_shown() {
        let addr = refusing_registry().await;
        let (opts, _dir) = options_with_secret(&addr);
        let reference: ImageRef = format!("{addr}/team/api:1.0").parse().unwrap();
        let store = RegistryStore::new(&reference, &opts);
        let err = store.manifest("1.0").await.unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(matches!(err, StoreError::Unauthorized { .. }), "{text}");
        assert!(text.contains(&format!("auths entry for {addr}")), "{text}");
        assert!(!text.contains("hunter2"), "secret leaked: {text}");
        assert!(
            !text.contains("YnVpbGRlcjpodW50ZXIy"),
            "secret leaked: {text}"
        );
        assert!(!format!("{:?}", store.credentials()).contains("hunter2"));
    }

    #[tokio::test]
    async fn unreachable_registry_is_named() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr = format!("127.0.0.1:{port}");
        let (opts, _dir) = options_with_secret(&addr);
        let reference: ImageRef = format!("{addr}/team/api:1.0").parse().unwrap();
        let err = RegistryStore::new(&reference, &opts)
            .manifest("1.0")
            .await
            .unwrap_err();
        let text = format!("{err}");
        assert!(matches!(err, StoreError::Unreachable { .. }), "{text}");
        assert!(text.contains(&addr), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn plain_http_only_for_loopback_and_named_hosts() {
        let opts = RegistryOptions {
            insecure_registries: vec!["reg.lan:5000".into()],
            ..Default::default()
        };
        assert!(opts.is_plain_http("127.0.0.1:5000"));
        assert!(opts.is_plain_http("reg.lan:5000"));
        assert!(!opts.is_plain_http("reg.lan"));
        assert!(!opts.is_plain_http("ghcr.io"));
    }
}
