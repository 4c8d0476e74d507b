//! What platforms an image reference covers: the seam between the audit and the registry.
//!
//! [`PlatformResolver`] is the trait the audit is written against; [`StoreResolver`] is the real
//! one, over any [`Store`] opened per repository (a registry, an OCI layout). It reads the
//! manifest the reference points to and, only for a single image, that image's config (the one
//! place a plain image manifest records its platform).

use std::collections::BTreeMap;

use crate::reference::ImageRef;
use futures_util::{stream, StreamExt};
use serde::Serialize;

use crate::oci::config::MAX_CONFIG_BYTES;
use crate::oci::{Document, ImageConfig};
use crate::platform::Platform;
use crate::store::{self, Store, StoreError};

/// What a reference points to, as far as platforms go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ImagePlatforms {
    /// An index (OCI index or Docker manifest list); attestation entries are not platforms.
    Index {
        digest: String,
        platforms: Vec<Platform>,
    },
    /// A single image manifest, of the platform its config names.
    Single { digest: String, platform: Platform },
}

impl ImagePlatforms {
    /// Whether a node of `node` platform runs this image: for an index, whether the kubelet
    /// finds an entry it can run (containerd's matcher); for a single image, whether the node
    /// runs that image's platform.
    pub fn runs_on(&self, node: &Platform) -> bool {
        match self {
            ImagePlatforms::Index { platforms, .. } => platforms.iter().any(|p| node.runs(p)),
            ImagePlatforms::Single { platform, .. } => node.runs(platform),
        }
    }

    /// The platforms it covers.
    pub fn platforms(&self) -> Vec<Platform> {
        match self {
            ImagePlatforms::Index { platforms, .. } => platforms.clone(),
            ImagePlatforms::Single { platform, .. } => vec![platform.clone()],
        }
    }
}

/// Why an image's platforms could not be learnt.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{image}: {detail}")]
    Malformed { image: String, detail: String },
}

/// Resolves image references to the platforms they cover.
#[allow(async_fn_in_trait)]
pub trait PlatformResolver {
    async fn resolve(&self, image: &ImageRef) -> Result<ImagePlatforms, ResolveError>;
}

/// How many images are resolved at once.
pub const CONCURRENCY: usize = 16;

/// Resolves each distinct reference once, [`CONCURRENCY`] at a time, keyed by `whole()`.
pub async fn resolve_all<R: PlatformResolver>(
    resolver: &R,
    images: &[ImageRef],
) -> BTreeMap<String, Result<ImagePlatforms, ResolveError>> {
    let mut distinct: Vec<&ImageRef> = Vec::new();
    for image in images {
        if !distinct.iter().any(|d| d.whole() == image.whole()) {
            distinct.push(image);
        }
    }
    stream::iter(distinct)
        .map(|image| async move { (image.whole(), resolver.resolve(image).await) })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

/// Opens the store that holds a reference's repository.
pub trait StoreFactory {
    type Store: Store;
    fn open(&self, image: &ImageRef) -> Result<Self::Store, StoreError>;
}

impl<S: Store, F: Fn(&ImageRef) -> Result<S, StoreError>> StoreFactory for F {
    type Store = S;
    fn open(&self, image: &ImageRef) -> Result<S, StoreError> {
        self(image)
    }
}

/// The real resolver: reads manifests (and a single image's config) from stores.
pub struct StoreResolver<F> {
    factory: F,
}

impl<F: StoreFactory> StoreResolver<F> {
    pub fn new(factory: F) -> Self {
        StoreResolver { factory }
    }
}

impl<F: StoreFactory> PlatformResolver for StoreResolver<F> {
    async fn resolve(&self, image: &ImageRef) -> Result<ImagePlatforms, ResolveError> {
        let store = self.factory.open(image)?;
        let reference = image.tag_or_digest();
        let raw = store.manifest(reference).await?;
        let malformed = |detail: String| ResolveError::Malformed {
            image: image.whole(),
            detail,
        };
        let doc: Document = serde_json::from_slice(&raw.bytes)
            .map_err(|e| malformed(format!("the manifest is not valid JSON: {e}")))?;
        if let Some(entries) = doc.manifests {
            let mut platforms: Vec<Platform> = Vec::new();
            for entry in entries.iter().filter(|e| !e.is_attestation()) {
                let Some(platform) = entry.platform() else {
                    continue;
                };
                if !platforms.contains(&platform) {
                    platforms.push(platform);
                }
            }
            return Ok(ImagePlatforms::Index {
                digest: raw.digest,
                platforms,
            });
        }
        let config = doc.config.ok_or_else(|| {
            malformed(format!(
                "a {} manifest that is neither an index nor an image",
                raw.media_type
            ))
        })?;
        let bytes =
            store::read_small_blob(&store, &config.digest, "image config", MAX_CONFIG_BYTES)
                .await?;
        let cfg = ImageConfig::parse(&bytes)
            .map_err(|e| malformed(format!("its config {} is not valid: {e}", config.digest)))?;
        Ok(ImagePlatforms::Single {
            digest: raw.digest,
            platform: cfg.platform(),
        })
    }
}
