//! Blob sizes by `HEAD /v2/<repository>/blobs/<digest>`, the request the distribution spec
//! defines for "does the registry have this blob, and how big is it". oci-client's own HEAD
//! (`blob_exists`) reports existence only, and a GET to read the size makes the registry
//! start sending the blob. Authorization is obtained once through oci-client (a bearer token
//! when the registry asks for one, the configured Basic credentials otherwise) and reused for
//! every HEAD; the header is never logged or shown.

use std::sync::Arc;

use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use reqwest::StatusCode;
use tokio::sync::OnceCell;

use crate::store::StoreError;

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

    /// The size of `digest` in `repository`'s registry, `None` when it is not there.
    /// `describe` names the store in errors; `tried` names the credentials' source.
    pub async fn size(
        &self,
        client: &Client,
        repository: &Reference,
        auth: &RegistryAuth,
        digest: &str,
        describe: &str,
        tried: &str,
    ) -> Result<Option<u64>, StoreError> {
        let unreachable = |e: reqwest::Error| StoreError::Unreachable {
            store: describe.to_string(),
            detail: e.without_url().to_string(),
        };
        let http = self
            .inner
            .http
            .get_or_try_init(|| async { self.build_client() })
            .await
            .map_err(unreachable)?;
        let authorization = self
            .inner
            .authorization
            .get_or_try_init(|| async { authorization(client, repository, auth).await })
            .await
            .map_err(|e| super::errors::map(e, describe, &format!("blob {digest}"), tried))?;
        let url = format!(
            "{}://{}/v2/{}/blobs/{digest}",
            self.inner.scheme,
            repository.resolve_registry(),
            repository.repository()
        );
        let request = match authorization {
            Authorization::Bearer(token) => http.head(&url).bearer_auth(token),
            Authorization::Basic(user, password) => {
                http.head(&url).basic_auth(user, Some(password))
            }
            Authorization::None => http.head(&url),
        };
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

    /// A client for the HEADs: over plain HTTP no TLS roots are loaded (that alone took a
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
