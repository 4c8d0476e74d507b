//! Content-addressed stores that images and indexes are read from: a registry repository
//! or an OCI image layout. `check`, `verify`, `inspect` and `audit` are written against this
//! trait so that each works on every store; `registry` and `oci::layout` implement it. Reading
//! a small blob whole and checking bytes against their digest are shared here.

use std::pin::Pin;

use tokio::io::AsyncRead;

/// A manifest as stored: the exact bytes (so digests stay right), its media type and digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
}

/// A blob's content, streamed.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send + Unpin>>;

/// Why a store could not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found in {store}")]
    NotFound { what: String, store: String },
    #[error(
        "{store} refused access ({detail}); credentials consulted: {tried}; to log in, run `docker login {}`",
        registry_of(store)
    )]
    Unauthorized {
        store: String,
        detail: String,
        tried: String,
    },
    #[error(
        "{store}: the credentials from {tried} were accepted, but they do not allow this: {detail}; ask for push rights to the repository, or log in as an account that has them (`docker login {}`)",
        registry_of(store)
    )]
    Forbidden {
        store: String,
        detail: String,
        tried: String,
    },
    #[error("{store} cannot be reached: {detail}")]
    Unreachable { store: String, detail: String },
    #[error("{what} in {store} has digest {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        store: String,
        expected: String,
        actual: String,
    },
    #[error("{store}: {detail}")]
    Other { store: String, detail: String },
    #[error("{store}: {source}")]
    Io {
        store: String,
        #[source]
        source: std::io::Error,
    },
}

/// The registry host of a store description (`host[:port]/repository` or `host[:port]`).
fn registry_of(store: &str) -> &str {
    store.split('/').next().unwrap_or(store)
}

/// A repository-like store: manifests by tag or digest, blobs by digest.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// The manifest a tag (or `sha256:` digest) points to, fetched fresh.
    async fn manifest(&self, reference: &str) -> Result<RawManifest, StoreError>;
    /// The size of a blob if the store has it, `None` if it does not.
    async fn blob_size(&self, digest: &str) -> Result<Option<u64>, StoreError>;
    /// A blob's content as a stream (the caller verifies the digest as it reads).
    async fn blob(&self, digest: &str) -> Result<BlobReader, StoreError>;
    /// How to name this store in messages (`localhost:5000/team/api`, `oci:out`).
    fn describe(&self) -> String;
}

/// Checks `bytes` against the digest they were asked for by (`what` names them in the error).
pub fn verify_digest(
    bytes: &[u8],
    expected: &str,
    what: &str,
    store: &str,
) -> Result<(), StoreError> {
    let Some(actual) = crate::oci::digest::digest_like(expected, bytes) else {
        return Err(StoreError::Other {
            store: store.to_string(),
            detail: format!("{what}: archbuild cannot verify a digest like {expected:?}"),
        });
    };
    if actual != expected {
        return Err(StoreError::DigestMismatch {
            what: what.to_string(),
            store: store.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Reads a small blob (an image config) whole, refusing more than `max` bytes, and checks it
/// against its digest. `what` names it in errors (`config blob`).
pub async fn read_small_blob<S: Store>(
    store: &S,
    digest: &str,
    what: &str,
    max: u64,
) -> Result<Vec<u8>, StoreError> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    store
        .blob(digest)
        .await?
        .take(max + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|source| StoreError::Io {
            store: store.describe(),
            source,
        })?;
    if bytes.len() as u64 > max {
        return Err(StoreError::Other {
            store: store.describe(),
            detail: format!("{what} {digest} is larger than {max} bytes"),
        });
    }
    verify_digest(
        &bytes,
        digest,
        &format!("{what} {digest}"),
        &store.describe(),
    )?;
    Ok(bytes)
}
