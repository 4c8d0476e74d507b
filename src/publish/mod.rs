//! Publishing built images: each platform image in the Docker daemon is converted (config
//! bytes kept, layers compressed and remembered), assembled into image manifests and one index
//! per image, then written to an OCI image layout (the default) or pushed to each image's
//! repository. The build pipeline calls [`publish`]; `--metadata-file` uses [`metadata`].

pub mod assemble;
pub mod cache;
pub mod convert;
pub mod push;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use serde::Serialize;

pub use assemble::{Compression, IndexFormat};

use crate::platform::Platform;
use crate::registry::{RegistryOptions, RegistryStore};
use crate::store::StoreError;

/// One image to publish: its platform images in the daemon and where it goes.
#[derive(Clone, Debug)]
pub struct PublishImage {
    /// The image's name in the project (`api`).
    pub name: String,
    /// `REGISTRY/REPO` to push to; needed for [`Target::Push`].
    pub repository: Option<crate::reference::ImageRef>,
    /// Tags to write (`1.8.0`, `latest`).
    pub tags: Vec<String>,
    /// Each platform and the daemon's image ID built for it, in index order.
    pub children: Vec<(Platform, String)>,
}

/// Which daemon holds each platform image: one daemon for every image (a `bollard::Docker`),
/// or the builder of each job ([`DaemonMap`]).
pub trait Daemons: Sync {
    /// The daemon holding project image `image`'s `platform` image.
    fn for_job(&self, image: &str, platform: &Platform) -> &bollard::Docker;
}

impl Daemons for bollard::Docker {
    fn for_job(&self, _: &str, _: &Platform) -> &bollard::Docker {
        self
    }
}

/// The daemons of a build: each job's builder (several builders of one platform build
/// different images), and the one for every other job.
#[derive(Clone, Debug)]
pub struct DaemonMap {
    pub default: bollard::Docker,
    pub by_job: BTreeMap<(String, Platform), bollard::Docker>,
}

impl Daemons for DaemonMap {
    fn for_job(&self, image: &str, platform: &Platform) -> &bollard::Docker {
        self.by_job
            .get(&(image.to_string(), platform.clone()))
            .unwrap_or(&self.default)
    }
}

/// Where images are published.
#[derive(Clone, Debug)]
pub enum Target {
    /// An OCI image layout folder; each tag becomes the ref name `NAME:TAG`.
    Layout(PathBuf),
    /// Each image's registry repository.
    Push(RegistryOptions),
}

/// How to publish.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    pub format: IndexFormat,
    pub compression: Compression,
    /// The compression cache, normally `.archbuild/cache`.
    pub cache_dir: PathBuf,
    /// Annotations on every index (OCI format only).
    pub annotations: BTreeMap<String, String>,
}

/// One platform of a published image.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PublishedChild {
    pub platform: Platform,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// What publishing did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PublishStats {
    pub layers_compressed: usize,
    pub blobs_uploaded: usize,
    pub bytes_uploaded: u64,
    pub blobs_present: usize,
    pub blobs_mounted: usize,
    /// Platform images exported from their daemons to be published (0 when the build's check
    /// already compressed them from its own export, or the cache had them).
    pub exports: usize,
    /// Every tag already named this index, so nothing was sent (a re-release of unchanged
    /// content; always false for a layout).
    pub unchanged: bool,
}

/// A published image.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Published {
    pub image: String,
    /// `REGISTRY/REPO` or `oci:DIR`.
    pub location: String,
    pub index_digest: String,
    pub index_media_type: String,
    pub index_size: u64,
    pub children: Vec<PublishedChild>,
    /// Full references written: `REGISTRY/REPO:TAG` or `oci:DIR:NAME:TAG`.
    pub tags: Vec<String>,
    pub stats: PublishStats,
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Convert(#[from] convert::ConvertError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "image {image} has no repository to push to; set `repository` for it in archbuild.toml"
    )]
    NoRepository { image: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

struct Assembled {
    children: Vec<(Platform, convert::Converted, crate::store::RawManifest)>,
    index: crate::store::RawManifest,
    compressed: usize,
    exports: usize,
}

/// Publishes `images` (each platform image in its daemon) to `target`.
pub async fn publish(
    docker: &impl Daemons,
    images: &[PublishImage],
    target: &Target,
    opts: &PublishOptions,
) -> Result<Vec<Published>, PublishError> {
    let cache = cache::BlobCache::open(&opts.cache_dir).map_err(|source| PublishError::Io {
        path: opts.cache_dir.clone(),
        source,
    })?;
    let slots = convert::Slots::per_core();
    let assembled = futures_util::future::try_join_all(
        images
            .iter()
            .map(|image| assemble_image(docker, image, opts, &cache, slots.clone())),
    )
    .await?;
    let mut published = Vec::new();
    let mut pushed_repositories: Vec<(String, String)> = Vec::new();
    for (image, built) in images.iter().zip(assembled) {
        let result = match target {
            Target::Layout(dir) => write_layout(dir, image, &built, &cache)?,
            Target::Push(registry) => {
                push_image(image, &built, &cache, registry, &mut pushed_repositories).await?
            }
        };
        published.push(result);
    }
    Ok(published)
}

async fn assemble_image(
    docker: &impl Daemons,
    image: &PublishImage,
    opts: &PublishOptions,
    cache: &cache::BlobCache,
    slots: std::sync::Arc<convert::Slots>,
) -> Result<Assembled, PublishError> {
    let converted =
        futures_util::future::try_join_all(image.children.iter().map(|(platform, id)| {
            let daemon = docker.for_job(&image.name, platform);
            convert::convert(daemon, id, opts.compression, cache, slots.clone())
        }))
        .await?;
    let no_annotations = BTreeMap::new();
    let children: Vec<_> = image
        .children
        .iter()
        .zip(converted)
        .map(|((platform, _), c)| {
            let manifest =
                assemble::image_manifest(&c.config, &c.layers, opts.format, &no_annotations);
            (platform.clone(), c, manifest)
        })
        .collect();
    let index_children: Vec<assemble::Child> = children
        .iter()
        .map(|(platform, _, manifest)| assemble::Child {
            platform: platform.clone(),
            manifest: manifest.clone(),
        })
        .collect();
    let index = assemble::index(&index_children, opts.format, &opts.annotations);
    let compressed = children.iter().map(|(_, c, _)| c.compressed).sum();
    let exports = children.iter().filter(|(_, c, _)| c.exported).count();
    Ok(Assembled {
        children,
        index,
        compressed,
        exports,
    })
}

fn published_children(built: &Assembled) -> Vec<PublishedChild> {
    built
        .children
        .iter()
        .map(|(platform, _, m)| PublishedChild {
            platform: platform.clone(),
            digest: m.digest.clone(),
            media_type: m.media_type.clone(),
            size: m.bytes.len() as u64,
        })
        .collect()
}

fn write_layout(
    dir: &std::path::Path,
    image: &PublishImage,
    built: &Assembled,
    cache: &cache::BlobCache,
) -> Result<Published, PublishError> {
    let io = |source| PublishError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let layout = crate::oci::Layout::create(dir).map_err(io)?;
    for (_, converted, manifest) in &built.children {
        for l in &converted.layers {
            layout
                .put_file(&l.digest, l.size, &cache.blob_path(&l.digest))
                .map_err(io)?;
        }
        let config_digest = crate::oci::sha256(&converted.config);
        layout
            .put_bytes(&config_digest, &converted.config)
            .map_err(io)?;
        layout
            .put_bytes(&manifest.digest, &manifest.bytes)
            .map_err(io)?;
    }
    let names: Vec<String> = image
        .tags
        .iter()
        .map(|t| format!("{}:{t}", image.name))
        .collect();
    layout.tag(&names, &built.index).map_err(io)?;
    Ok(Published {
        image: image.name.clone(),
        location: format!("oci:{}", dir.display()),
        index_digest: built.index.digest.clone(),
        index_media_type: built.index.media_type.clone(),
        index_size: built.index.bytes.len() as u64,
        children: published_children(built),
        tags: names
            .iter()
            .map(|n| format!("oci:{}:{n}", dir.display()))
            .collect(),
        stats: PublishStats {
            layers_compressed: built.compressed,
            exports: built.exports,
            ..Default::default()
        },
    })
}

async fn push_image(
    image: &PublishImage,
    built: &Assembled,
    cache: &cache::BlobCache,
    registry: &RegistryOptions,
    pushed: &mut Vec<(String, String)>,
) -> Result<Published, PublishError> {
    let reference = image
        .repository
        .as_ref()
        .ok_or_else(|| PublishError::NoRepository {
            image: image.name.clone(),
        })?;
    let store = RegistryStore::new(reference, registry);
    let mut blobs = Vec::new();
    for (_, converted, _) in &built.children {
        blobs.push(push::Blob {
            digest: crate::oci::sha256(&converted.config),
            size: converted.config.len() as u64,
            data: push::BlobData::Bytes(converted.config.clone()),
        });
        for l in &converted.layers {
            if !blobs.iter().any(|b: &push::Blob| b.digest == l.digest) {
                blobs.push(push::Blob {
                    digest: l.digest.clone(),
                    size: l.size,
                    data: push::BlobData::File(cache.blob_path(&l.digest)),
                });
            }
        }
    }
    let plan = push::PushPlan {
        blobs,
        children: built.children.iter().map(|(_, _, m)| m.clone()).collect(),
        index: built.index.clone(),
        tags: image.tags.clone(),
    };
    let mount_from: Vec<String> = pushed
        .iter()
        .filter(|(host, repo)| host == reference.registry() && repo != reference.repository())
        .map(|(_, repo)| repo.clone())
        .collect();
    let stats = push::PushStats::default();
    push::push(&store, &plan, &mount_from, &stats).await?;
    pushed.push((
        reference.registry().to_string(),
        reference.repository().to_string(),
    ));
    Ok(Published {
        image: image.name.clone(),
        location: store.repository(),
        index_digest: built.index.digest.clone(),
        index_media_type: built.index.media_type.clone(),
        index_size: built.index.bytes.len() as u64,
        children: published_children(built),
        tags: image
            .tags
            .iter()
            .map(|t| format!("{}:{t}", store.repository()))
            .collect(),
        stats: PublishStats {
            layers_compressed: built.compressed,
            blobs_uploaded: stats.uploaded(),
            bytes_uploaded: stats.bytes(),
            blobs_present: stats.blobs_present.load(Ordering::Relaxed),
            blobs_mounted: stats.blobs_mounted.load(Ordering::Relaxed),
            exports: built.exports,
            unchanged: stats.unchanged.load(Ordering::Relaxed),
        },
    })
}

/// The `--metadata-file` document, keyed by image name, in the shape of
/// `docker buildx build --metadata-file` (`containerimage.digest`, `image.name`,
/// `containerimage.descriptor`) plus each platform's manifest digest.
pub fn metadata(published: &[Published]) -> serde_json::Value {
    let mut doc = serde_json::Map::new();
    for p in published {
        let platforms: serde_json::Map<String, serde_json::Value> = p
            .children
            .iter()
            .map(|c| {
                (
                    c.platform.to_string(),
                    serde_json::json!({"mediaType": c.media_type, "digest": c.digest, "size": c.size}),
                )
            })
            .collect();
        doc.insert(
            p.image.clone(),
            serde_json::json!({
                "containerimage.digest": p.index_digest,
                "containerimage.descriptor": {
                    "mediaType": p.index_media_type,
                    "digest": p.index_digest,
                    "size": p.index_size,
                },
                "image.name": p.tags.join(","),
                "archbuild.platforms": platforms,
            }),
        );
    }
    serde_json::Value::Object(doc)
}
