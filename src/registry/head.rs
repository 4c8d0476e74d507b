//! The registry requests archbuild makes itself, beside oci-client's:
//! - blob sizes by `HEAD /v2/<repository>/blobs/<digest>`, the request the distribution spec
//!   defines for "does the registry have this blob, and how big is it" (oci-client's own HEAD
//!   reports existence only, and a GET to read the size makes the registry send the blob);
//! - manifests by `GET /v2/<repository>/manifests/<reference>`, read within
//!   [`MAX_MANIFEST_BYTES`] (oci-client reads a manifest body whole, whatever its size, so a
//!   hostile registry could answer with gigabytes).
//!
//! Both carry the grant [`super::token::Authorizer`] gave for the repository; the header is
//! never logged or shown.

use reqwest::StatusCode;

use super::token::{Authorizer, Grant};
use crate::store::StoreError;

/// The largest manifest or index read: containerd's limit (4 MiB). Real ones are a few KiB.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Who asks: the registry's authorizer, the repository, the grant for reading it, and how
/// errors name the store.
pub struct Caller<'a> {
    pub authorizer: &'a Authorizer,
    pub repository: &'a str,
    pub grant: Grant,
    pub describe: &'a str,
}

impl Caller<'_> {
    /// The size of `digest` in the caller's repository, `None` when it is not there.
    pub async fn size(&self, digest: &str) -> Result<Option<u64>, StoreError> {
        let describe = self.describe;
        let request = self
            .request(reqwest::Method::HEAD, &format!("blobs/{digest}"))
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
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(self.refused(
                response.status(),
                format!("{} on HEAD of blob {digest}", response.status()),
            )),
            status => Err(StoreError::Other {
                store: describe.to_string(),
                detail: format!("HEAD of blob {digest} answered {status}"),
            }),
        }
    }

    /// The digest `reference` (a tag) points at now, from a HEAD's `Docker-Content-Digest`
    /// (a HEAD, unlike a GET, does not count against Docker Hub's pull limit); `None` when
    /// the registry does not send the header.
    pub async fn manifest_digest(
        &self,
        reference: &str,
        accept: &[&str],
    ) -> Result<Option<String>, StoreError> {
        let describe = self.describe;
        let what = format!("manifest {reference}");
        let request = self
            .request(reqwest::Method::HEAD, &format!("manifests/{reference}"))
            .await?
            .header(reqwest::header::ACCEPT, accept.join(", "));
        let response = request.send().await.map_err(|e| unreachable(describe, e))?;
        match response.status() {
            StatusCode::OK => Ok(response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .filter(|d| crate::reference::check_digest(d).is_ok())
                .map(str::to_string)),
            StatusCode::NOT_FOUND => Err(StoreError::NotFound {
                what,
                store: describe.to_string(),
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(self.refused(
                response.status(),
                format!("{} on HEAD of {what}", response.status()),
            )),
            status => Err(StoreError::Other {
                store: describe.to_string(),
                detail: format!("HEAD of {what} answered {status}"),
            }),
        }
    }

    /// The manifest `reference` (a tag or digest) of the caller's repository, read within
    /// [`MAX_MANIFEST_BYTES`]; `accept` lists the media types asked for.
    pub async fn manifest(&self, reference: &str, accept: &[&str]) -> Result<Vec<u8>, StoreError> {
        let describe = self.describe;
        let what = format!("manifest {reference}");
        let request = self
            .request(reqwest::Method::GET, &format!("manifests/{reference}"))
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
                return Err(self.refused(
                    response.status(),
                    format!("{} on GET of {what}", response.status()),
                ))
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

    /// A request for `path` under the caller's `/v2/<repository>/` with the caller's grant.
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, StoreError> {
        let url = format!("{}{}/{path}", self.authorizer.base_url(), self.repository);
        let http = self.authorizer.http().await?;
        Ok(self.grant.apply(http.request(method, &url)))
    }

    /// The error for a 401 or 403: refused credentials, or accepted ones lacking the right.
    fn refused(&self, status: StatusCode, detail: String) -> StoreError {
        let credentials = self.authorizer.credentials();
        super::errors::refused(self.describe, status.as_u16(), detail, credentials)
    }
}

fn unreachable(describe: &str, e: reqwest::Error) -> StoreError {
    StoreError::Unreachable {
        store: describe.to_string(),
        detail: e.without_url().to_string(),
    }
}
