//! Pushing a multi-arch image to one registry repository with oci-client, in the order that
//! keeps every tag whole: blobs (skipped when the registry has them, mounted when another
//! repository of the same registry does, otherwise uploaded concurrently with retries), then
//! each child manifest by digest, then the index by digest, and the tags last. A push cut off
//! halfway leaves old tags on their old, complete content; a re-run uploads only what is
//! missing. Every manifest goes up with its media type set explicitly, and the digest the
//! registry reports is checked against the one computed here. When every tag already names
//! the index and every blob is there (a re-release of unchanged content), nothing is sent: a
//! registry stores an index only once the manifests under it are there, and the
//! verification that follows a push reads them all again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt, TryStreamExt};
use oci_client::errors::OciDistributionError;

use crate::oci::media_types as mt;
use crate::registry::errors::{is_transient, status};
use crate::registry::RegistryStore;
use crate::store::{RawManifest, Store, StoreError};

/// Where a blob's bytes are.
#[derive(Clone, Debug)]
pub enum BlobData {
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// A blob to make present in the repository.
#[derive(Clone, Debug)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub data: BlobData,
}

/// Everything one image's push consists of.
#[derive(Clone, Debug)]
pub struct PushPlan {
    /// Configs and layers of every child.
    pub blobs: Vec<Blob>,
    /// The children's image manifests (pushed by digest).
    pub children: Vec<RawManifest>,
    /// The index (pushed by digest, then under each tag).
    pub index: RawManifest,
    pub tags: Vec<String>,
}

/// What a push did, for reports and for tests that a re-run uploads nothing twice.
#[derive(Debug, Default)]
pub struct PushStats {
    pub blobs_uploaded: AtomicUsize,
    pub bytes_uploaded: AtomicU64,
    pub blobs_present: AtomicUsize,
    pub blobs_mounted: AtomicUsize,
    pub manifests_pushed: AtomicUsize,
    pub retries: AtomicUsize,
    /// Every tag already named the index: nothing was sent.
    pub unchanged: std::sync::atomic::AtomicBool,
}

impl PushStats {
    /// Blob bytes uploaded so far.
    pub fn bytes(&self) -> u64 {
        self.bytes_uploaded.load(Ordering::Relaxed)
    }
    /// Blobs uploaded so far.
    pub fn uploaded(&self) -> usize {
        self.blobs_uploaded.load(Ordering::Relaxed)
    }
}

const ATTEMPTS: u32 = 4;
const CONCURRENT_UPLOADS: usize = 4;

/// Runs `op` until it succeeds, retrying transient failures (5xx, dropped connections)
/// with exponential back-off.
async fn with_retries<T, F, Fut>(stats: &PushStats, mut op: F) -> Result<T, OciDistributionError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, OciDistributionError>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if is_transient(&e) && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                stats.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
            }
            other => return other,
        }
    }
}

/// Pushes `plan` to `store`'s repository; `mount_from` lists other repositories of the same
/// registry (`repo/name`, without the host) whose blobs may be mounted instead of uploaded.
pub async fn push(
    store: &RegistryStore,
    plan: &PushPlan,
    mount_from: &[String],
    stats: &PushStats,
) -> Result<(), StoreError> {
    if already_current(store, plan).await {
        stats.unchanged.store(true, Ordering::Relaxed);
        return Ok(());
    }
    store.authorize(true, mount_from).await?;
    // Futures collected first: a closure inside the stream would make the whole future
    // unusable with tokio::spawn (rust-lang/rust#104382).
    let uploads: Vec<_> = plan
        .blobs
        .iter()
        .map(|blob| push_blob(store, blob, mount_from, stats).boxed())
        .collect();
    futures_util::stream::iter(uploads)
        .buffer_unordered(CONCURRENT_UPLOADS)
        .try_collect::<Vec<()>>()
        .await?;
    store.authorize(true, mount_from).await?;
    for child in &plan.children {
        put_manifest(store, &child.digest, child, stats).await?;
    }
    put_manifest(store, &plan.index.digest, &plan.index, stats)
        .await
        .map_err(|e| explain_index_refusal(e, &plan.index))?;
    for tag in &plan.tags {
        put_manifest(store, tag, &plan.index, stats).await?;
    }
    Ok(())
}

/// Whether every tag of `plan` (or, without tags, the index's digest) already names its
/// index and every blob is there with its size. Any doubt (a tag missing or elsewhere, a
/// blob the registry answers 500 about, the registry not answering) is a no, and the push
/// goes the whole way, which repairs what it can.
async fn already_current(store: &RegistryStore, plan: &PushPlan) -> bool {
    let names: Vec<&str> = match plan.tags.is_empty() {
        true => vec![plan.index.digest.as_str()],
        false => plan.tags.iter().map(String::as_str).collect(),
    };
    // The tags first: on a push of new content they differ, and the blobs are not asked
    // twice (the push asks each again before uploading it).
    let tags = futures_util::future::join_all(names.iter().map(|n| store.manifest_digest(n))).await;
    if !tags
        .iter()
        .all(|a| a.as_ref().is_ok_and(|d| *d == plan.index.digest))
    {
        return false;
    }
    // Futures collected first, as in `push` (rust-lang/rust#104382).
    let heads: Vec<_> = plan
        .blobs
        .iter()
        .map(|b| {
            store
                .blob_size(&b.digest)
                .map(|size| size.ok().flatten() == Some(b.size))
        })
        .collect();
    let blobs: Vec<bool> = futures_util::stream::iter(heads)
        .buffer_unordered(CONCURRENT_UPLOADS)
        .collect()
        .await;
    blobs.iter().all(|present| *present)
}

async fn push_blob(
    store: &RegistryStore,
    blob: &Blob,
    mount_from: &[String],
    stats: &PushStats,
) -> Result<(), StoreError> {
    // A fresh token for a long push (the cached one while it lasts).
    store.authorize(true, mount_from).await?;
    let client = store.client();
    let target = store.reference_to("latest");
    let what = format!("blob {}", blob.digest);
    // A registry that keeps answering 5xx about one blob (seen after a registry was killed
    // while committing it) is told the blob again: the upload repairs it, or fails clearly.
    let exists = match with_retries(stats, || client.blob_exists(&target, &blob.digest)).await {
        Ok(exists) => exists,
        Err(e) if status(&e).is_some_and(|code| code >= 500) => false,
        Err(e) => return Err(store.error(&what, e)),
    };
    if exists {
        stats.blobs_present.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    for repository in mount_from {
        let source = oci_client::Reference::with_tag(
            target.registry().to_string(),
            repository.clone(),
            "latest".into(),
        );
        if client
            .mount_blob(&target, &source, &blob.digest)
            .await
            .is_ok()
        {
            stats.blobs_mounted.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    }
    with_retries(stats, || async {
        match &blob.data {
            BlobData::Bytes(bytes) => {
                let chunk = bytes::Bytes::from(bytes.clone());
                let stream = futures_util::stream::once(async move { Ok(chunk) });
                client
                    .push_blob_stream(&target, stream, &blob.digest, Some(blob.size))
                    .await
            }
            BlobData::File(path) => {
                let file = tokio::fs::File::open(path).await?;
                let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
                    .map_err(OciDistributionError::from);
                client
                    .push_blob_stream(&target, stream, &blob.digest, Some(blob.size))
                    .await
            }
        }
    })
    .await
    .map_err(|e| store.error(&what, e))?;
    stats.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
    stats.bytes_uploaded.fetch_add(blob.size, Ordering::Relaxed);
    Ok(())
}

/// PUTs a manifest under `reference` (tag or digest) with its own media type and checks the
/// digest the registry reports.
async fn put_manifest(
    store: &RegistryStore,
    reference: &str,
    manifest: &RawManifest,
    stats: &PushStats,
) -> Result<(), StoreError> {
    let client = store.client();
    let target = store.reference_to(reference);
    let what = format!("manifest {reference}");
    let content_type = manifest.media_type.parse().map_err(|_| StoreError::Other {
        store: store.describe(),
        detail: format!("media type {} is not a valid header", manifest.media_type),
    })?;
    let location = with_retries(stats, || {
        client.push_manifest_raw(&target, manifest.bytes.clone(), Clone::clone(&content_type))
    })
    .await
    .map_err(|e| store.error(&what, e))?;
    stats.manifests_pushed.fetch_add(1, Ordering::Relaxed);
    let reported = match location.rsplit_once('/').map(|(_, last)| last) {
        Some(last) if last.starts_with("sha256:") => last.to_string(),
        _ => store.manifest(reference).await?.digest,
    };
    if reported != manifest.digest {
        return Err(StoreError::DigestMismatch {
            what,
            store: store.describe(),
            expected: manifest.digest.clone(),
            actual: reported,
        });
    }
    Ok(())
}

/// A registry that refuses an OCI index: say how to get a Docker manifest list instead.
fn explain_index_refusal(e: StoreError, index: &RawManifest) -> StoreError {
    if index.media_type != mt::OCI_INDEX {
        return e;
    }
    match e {
        StoreError::Other { store, detail } => StoreError::Other {
            store,
            detail: format!(
                "{detail}; the registry may not accept OCI image indexes: set index-format = \"docker\" in archbuild.toml to push a Docker manifest list"
            ),
        },
        other => other,
    }
}
