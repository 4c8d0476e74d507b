//! The registry requests archbuild makes itself, beside oci-client's:
//! - blob sizes by `HEAD /v2/<repository>/blobs/<digest>`, the request the distribution spec
//!   defines for "does the registry have this blob, and how big is it" (oci-client's own HEAD
//!   reports existence only, and a GET to read the size makes the registry send the blob);
//! - manifests by `GET /v2/<repository>/manifests/<reference>`, read within
//!   [`MAX_MANIFEST_BYTES`] (oci-client reads a manifest body whole, whatever its size, so a
//!   hostile registry could answer with gigabytes).
//!
//! Authorization is obtained once through oci-client (a bearer token when the registry asks
//! for one, the configured Basic credentials otherwise) and reused for every request; the
//! header is never logged or shown.

use std::sync::Arc;

use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use reqwest::StatusCode;
use tokio::sync::OnceCell;

use crate::store::StoreError;

/// The largest manifest or index read: containerd's limit (4 MiB). Real ones are a few KiB.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Who asks: one repository's client and credentials, and how errors name the store
/// (`describe`) and the credentials' source (`tried`).
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub client: &'a Client,
    pub repository: &'a Reference,
    pub auth: &'a RegistryAuth,
    pub describe: &'a str,
    pub tried: &'a str,
}

/// The HEAD side of a [`super::RegistryStore`] for one repository; cheap to clone.
#[derive(Clone)]
pub struct BlobHeads {
    inner: Arc<Inner>,
}

struct Inner {
    scheme: &'static str,
    /// Shared by every repository of the registry (one connection pool).
    http: Arc<OnceCell<reqwest::Client>>,
    /// Per repository: a bearer token's scope is one repository.
    authorization: OnceCell<Authorization>,
}

/// What a HEAD carries to prove who is asking.
enum Authorization {
    Bearer(String),
    Basic(String, String),
    None,
}

impl BlobHeads {
    /// HEADs over plain HTTP or HTTPS.
    pub fn new(plain_http: bool) -> BlobHeads {
        BlobHeads {
            inner: Arc::new(Inner {
                scheme: if plain_http { "http" } else { "https" },
                http: Arc::new(OnceCell::new()),
                authorization: OnceCell::new(),
            }),
        }
    }

    /// HEADs for another repository of the same registry, over the same connections.
    pub fn for_other_repository(&self) -> BlobHeads {
        BlobHeads {
            inner: Arc::new(Inner {
                scheme: self.inner.scheme,
                http: self.inner.http.clone(),
                authorization: OnceCell::new(),
            }),
        }
    }

    /// The size of `digest` in the caller's repository, `None` when it is not there.
    pub async fn size(&self, who: &Caller<'_>, digest: &str) -> Result<Option<u64>, StoreError> {
        let (describe, tried) = (who.describe, who.tried);
        let request = self
            .request(reqwest::Method::HEAD, who, &format!("blobs/{digest}"))
            .await?;
        let unreachable = |e| unreachable(describe, e);
        let response = request.send().await.map_err(unreachable)?;
        match response.status() {
            StatusCode::OK => Ok(response
                .headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(StoreError::Unauthorized {
                store: describe.to_string(),
                detail: format!("{} on HEAD of blob {digest}", response.status()),
                tried: tried.to_string(),
            }),
            status => Err(StoreError::Other {
                store: describe.to_string(),
                detail: format!("HEAD of blob {digest} answered {status}"),
            }),
        }
    }

    /// The manifest `reference` (a tag or digest) of the caller's repository, read within
    /// [`MAX_MANIFEST_BYTES`]; `accept` lists the media types asked for.
    pub async fn manifest(
        &self,
        who: &Caller<'_>,
        reference: &str,
        accept: &[&str],
    ) -> Result<Vec<u8>, StoreError> {
        let (describe, tried) = (who.describe, who.tried);
        let what = format!("manifest {reference}");
        let request = self
            .request(reqwest::Method::GET, who, &format!("manifests/{reference}"))
            .await?
            .header(reqwest::header::ACCEPT, accept.join(", "));
        let unreachable = |e| unreachable(describe, e);
        let mut response = request.send().await.map_err(unreachable)?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(StoreError::NotFound {
                    what,
                    store: describe.to_string(),
                })
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(StoreError::Unauthorized {
                    store: describe.to_string(),
                    detail: format!("{} on GET of {what}", response.status()),
                    tried: tried.to_string(),
                })
            }
            status => {
                return Err(StoreError::Other {
                    store: describe.to_string(),
                    detail: format!("GET of {what} answered {status}"),
                })
            }
        }
        let too_big = |size: u64| {
            StoreError::Other {
            store: describe.to_string(),
            detail: format!(
                "{what} is {size} bytes or more, over the limit of {MAX_MANIFEST_BYTES} bytes (containerd's); real manifests are a few KiB"
            ),
        }
        };
        if let Some(size) = response
            .content_length()
            .filter(|s| *s > MAX_MANIFEST_BYTES)
        {
            return Err(too_big(size));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if (body.len() + chunk.len()) as u64 > MAX_MANIFEST_BYTES {
                return Err(too_big((body.len() + chunk.len()) as u64));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// A request for `path` under the caller's `/v2/<repository>/`, carrying the
    /// repository's authorization (obtained once).
    async fn request(
        &self,
        method: reqwest::Method,
        who: &Caller<'_>,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, StoreError> {
        let Caller {
            client,
            repository,
            auth,
            describe,
            tried,
        } = *who;
        let url = format!(
            "{}://{}/v2/{}/{path}",
            self.inner.scheme,
            repository.resolve_registry(),
            repository.repository()
        );
        let http = self
            .inner
            .http
            .get_or_try_init(|| async { self.build_client() })
            .await
            .map_err(|e| unreachable(describe, e))?;
        let authorization = self
            .inner
            .authorization
            .get_or_try_init(|| async { authorization(client, repository, auth).await })
            .await
            .map_err(|e| super::errors::map(e, describe, path, tried))?;
        let request = http.request(method, &url);
        Ok(match authorization {
            Authorization::Bearer(token) => request.bearer_auth(token),
            Authorization::Basic(user, password) => request.basic_auth(user, Some(password)),
            Authorization::None => request,
        })
    }

    /// A client for these requests: over plain HTTP no TLS roots are loaded (that alone took a
    /// quarter of a `verify`'s CPU time).
    fn build_client(&self) -> reqwest::Result<reqwest::Client> {
        let builder = reqwest::Client::builder()
            .user_agent(concat!("archbuild/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10));
        let builder = if self.inner.scheme == "http" {
            builder.tls_certs_only(std::iter::empty())
        } else {
            builder
        };
        builder.build()
    }
}

fn unreachable(describe: &str, e: reqwest::Error) -> StoreError {
    StoreError::Unreachable {
        store: describe.to_string(),
        detail: e.without_url().to_string(),
    }
}

/// How to authorize pulls from `repository`: a bearer token if the registry issues one,
/// Basic credentials if configured and no token is issued, else nothing.
async fn authorization(
    client: &Client,
    repository: &Reference,
    auth: &RegistryAuth,
) -> Result<Authorization, oci_client::errors::OciDistributionError> {
    if let Some(token) = client
        .auth(repository, auth, RegistryOperation::Pull)
        .await?
    {
        return Ok(Authorization::Bearer(token));
    }
    Ok(match auth {
        RegistryAuth::Basic(user, password) => Authorization::Basic(user.clone(), password.clone()),
        _ => Authorization::None,
    })
}
