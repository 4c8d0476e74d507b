//! The registry requests archbuild makes itself, beside oci-client's:
//! - blob sizes by `HEAD /v2/<repository>/blobs/<digest>`, the request the distribution spec
//!   defines for "does the registry have this blob, and how big is it" (oci-client's own HEAD
//!   reports existence only, and a GET to read the size makes the registry send the blob);
//! - manifests by `GET /v2/<repository>/manifests/<reference>`, read within
//!   [`MAX_MANIFEST_BYTES`] (oci-client reads a manifest body whole, whatever its size, so a
//!   hostile registry could answer with gigabytes), and the digest a tag points at by a HEAD
//!   of the same path;
//! - blobs by `GET /v2/<repository>/blobs/<digest>`, streamed (following the registry's
//!   redirect to its storage, which reqwest makes without the credentials when the host
//!   changes); oci-client reads the body of a refused blob whole, so a hostile registry
//!   answering an error with gigabytes exhausted memory;
//! - the push-access check: `POST /v2/<repository>/blobs/uploads/`, then a DELETE of the
//!   upload it opened.
//!
//! An error's body is read within [`MAX_ERROR_BYTES`] (containerd reads at most 64,000
//! bytes of one) and only the registry's first error message from it is shown.
//!
//! Each carries the grant [`super::token::Authorizer`] gave for the repository; the header is
//! never logged or shown.

use reqwest::StatusCode;

use super::errors::unreachable;
use super::token::{Authorizer, Grant};
use crate::store::StoreError;

/// The largest manifest or index read: containerd's limit (4 MiB). Real ones are a few KiB.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// The most of an error answer's body read, for the registry's message.
pub const MAX_ERROR_BYTES: usize = 64 << 10;

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

    /// Opens an upload and cancels it: whether the caller's grant may write here (a registry
    /// may issue a token with fewer rights than asked and refuse only the first write).
    pub async fn open_upload(&self) -> Result<(), StoreError> {
        let describe = self.describe;
        let response = self
            .request(reqwest::Method::POST, "blobs/uploads/")
            .await?
            .header(reqwest::header::CONTENT_LENGTH, "0")
            .send()
            .await
            .map_err(|e| unreachable(describe, e))?;
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
        };
        if status.is_success() {
            let location =
                header(reqwest::header::LOCATION).and_then(|l| response.url().join(l).ok());
            if let Some(location) = location {
                // Cancelling is a courtesy: registries expire abandoned uploads anyway.
                let http = self.authorizer.http().await?;
                let _ = self.grant.apply(http.delete(location)).send().await;
            }
            return Ok(());
        }
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let insufficient = header(reqwest::header::WWW_AUTHENTICATE)
                    .is_some_and(|c| c.contains("insufficient_scope"));
                let scope_error = if insufficient {
                    " (insufficient_scope)"
                } else {
                    ""
                };
                let code = status.as_u16();
                Err(self.refused(status, format!("{code} on opening an upload{scope_error}")))
            }
            _ => Err(StoreError::Other {
                store: describe.to_string(),
                detail: format!("opening an upload answered {}", status.as_u16()),
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

    /// The blob `digest` of the caller's repository, streamed as it arrives. Its size and
    /// digest are the reader's to check (a store's blob is untrusted until verified).
    pub async fn blob(&self, digest: &str) -> Result<crate::store::BlobReader, StoreError> {
        use futures_util::TryStreamExt;
        let describe = self.describe;
        let what = format!("blob {digest}");
        let response = self
            .request(reqwest::Method::GET, &format!("blobs/{digest}"))
            .await?
            .send()
            .await
            .map_err(|e| unreachable(describe, e))?;
        match response.status() {
            StatusCode::OK => {
                let stream = response.bytes_stream().map_err(std::io::Error::other);
                Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
            }
            StatusCode::NOT_FOUND => Err(StoreError::NotFound {
                what,
                store: describe.to_string(),
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let status = response.status();
                Err(self.refused(status, format!("{status} on GET of {what}")))
            }
            status => {
                let message = error_message(response).await;
                Err(StoreError::Other {
                    store: describe.to_string(),
                    detail: format!("GET of {what} answered {status}{message}"),
                })
            }
        }
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

/// The registry's own message in an error answer (`: CODE: message` of the first entry of a
/// distribution-spec `{"errors": [...]}` body), read within [`MAX_ERROR_BYTES`]; empty when
/// the body is not that shape. Control characters are dropped: the message reaches a
/// terminal.
pub async fn error_message(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ERROR_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_ERROR_BYTES {
            break;
        }
    }
    first_error(&body).map_or_else(String::new, |m| format!(": {m}"))
}

/// `CODE: message` of the first error in a distribution-spec error body.
fn first_error(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let first = serde_json::from_slice::<Body>(body)
        .ok()?
        .errors
        .into_iter()
        .next()?;
    let text = format!("{}: {}", first.code, first.message);
    let clean: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    Some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_registry_error_is_shown_without_control_characters() {
        let body = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown \u001b[31mto registry"},{"code":"X"}]}"#;
        assert_eq!(
            first_error(body).as_deref(),
            Some("BLOB_UNKNOWN: blob unknown [31mto registry")
        );
        assert_eq!(first_error(b"<html>busy</html>"), None);
        assert_eq!(first_error(br#"{"errors":[]}"#), None);
    }
}
