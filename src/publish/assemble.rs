//! Assembling the documents of a multi-arch image from parts already built: an image
//! manifest from a config (kept byte for byte, so its digest does not change) and compressed
//! layer descriptors, and the index (OCI index or Docker manifest list) from the children's
//! exact bytes, digests and sizes. Pure: no I/O, same input → same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::oci::digest;
use crate::oci::documents::{self, Descriptor, DescriptorPlatform, ImageManifest, Index};
pub use crate::oci::format::{Compression, IndexFormat};
use crate::platform::Platform;
use crate::store::RawManifest;

/// A compressed layer as stored: digest and size of the compressed blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub digest: String,
    pub size: u64,
    pub compression: Compression,
}

/// One platform's image manifest, ready to be an index entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    pub platform: Platform,
    pub manifest: RawManifest,
}

/// The image manifest for a config (exact bytes) and its compressed layers, in order.
pub fn image_manifest(
    config: &[u8],
    layers: &[Layer],
    format: IndexFormat,
    annotations: &BTreeMap<String, String>,
) -> RawManifest {
    let doc = ImageManifest {
        schema_version: 2,
        media_type: Some(format.manifest_media_type().to_string()),
        config: Descriptor {
            media_type: format.config_media_type().to_string(),
            digest: digest::sha256(config),
            size: config.len() as u64,
            ..Default::default()
        },
        layers: layers
            .iter()
            .map(|l| Descriptor {
                media_type: format.layer_media_type(l.compression).to_string(),
                digest: l.digest.clone(),
                size: l.size,
                ..Default::default()
            })
            .collect(),
        annotations: non_empty(annotations, format),
    };
    raw(documents::to_bytes(&doc), format.manifest_media_type())
}

/// The index of `children`, in the order given, each entry carrying the child's exact
/// media type, digest, size and platform.
pub fn index(
    children: &[Child],
    format: IndexFormat,
    annotations: &BTreeMap<String, String>,
) -> RawManifest {
    let doc = Index {
        schema_version: 2,
        media_type: Some(format.index_media_type().to_string()),
        manifests: children
            .iter()
            .map(|c| Descriptor {
                media_type: c.manifest.media_type.clone(),
                digest: c.manifest.digest.clone(),
                size: c.manifest.bytes.len() as u64,
                annotations: None,
                platform: Some(DescriptorPlatform::of(&c.platform)),
            })
            .collect(),
        annotations: non_empty(annotations, format),
    };
    raw(documents::to_bytes(&doc), format.index_media_type())
}

/// Docker's schema has no annotations; OCI documents carry them when there are any.
fn non_empty(
    annotations: &BTreeMap<String, String>,
    format: IndexFormat,
) -> Option<BTreeMap<String, String>> {
    (format == IndexFormat::Oci && !annotations.is_empty()).then(|| annotations.clone())
}

fn raw(bytes: Vec<u8>, media_type: &str) -> RawManifest {
    RawManifest {
        digest: digest::sha256(&bytes),
        media_type: media_type.to_string(),
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::media_types as mt;

    fn layer(n: u8) -> Layer {
        Layer {
            digest: format!("sha256:{}", hex::encode([n; 32])),
            size: 100 + n as u64,
            compression: Compression::Gzip,
        }
    }

    #[test]
    fn manifest_keeps_config_bytes_and_layer_order() {
        let config =
            br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let m = image_manifest(
            config,
            &[layer(1), layer(2)],
            IndexFormat::Oci,
            &BTreeMap::new(),
        );
        let doc: ImageManifest = serde_json::from_slice(&m.bytes).unwrap();
        assert_eq!(doc.config.digest, digest::sha256(config));
        assert_eq!(doc.config.size, config.len() as u64);
        assert_eq!(doc.layers[0].digest, layer(1).digest);
        assert_eq!(doc.layers[1].media_type, mt::OCI_LAYER_GZIP);
        assert_eq!(m.digest, digest::sha256(&m.bytes));
        // Deterministic: the same input gives the same bytes.
        let again = image_manifest(
            config,
            &[layer(1), layer(2)],
            IndexFormat::Oci,
            &BTreeMap::new(),
        );
        assert_eq!(m, again);
        let docker = image_manifest(config, &[layer(1)], IndexFormat::Docker, &BTreeMap::new());
        assert_eq!(docker.media_type, mt::DOCKER_MANIFEST);
        assert!(String::from_utf8_lossy(&docker.bytes).contains(mt::DOCKER_LAYER_GZIP));
    }

    #[test]
    fn index_lists_children_with_exact_digests_and_platforms() {
        let children: Vec<Child> = ["linux/amd64", "linux/arm/v7"]
            .iter()
            .map(|p| Child {
                platform: Platform::parse(p).unwrap(),
                manifest: image_manifest(
                    p.as_bytes(),
                    &[layer(3)],
                    IndexFormat::Oci,
                    &BTreeMap::new(),
                ),
            })
            .collect();
        let mut ann = BTreeMap::new();
        ann.insert(
            "org.opencontainers.image.version".to_string(),
            "1.0".to_string(),
        );
        let idx = index(&children, IndexFormat::Oci, &ann);
        assert_eq!(idx.media_type, mt::OCI_INDEX);
        let text = String::from_utf8(idx.bytes.clone()).unwrap();
        let doc: Index = serde_json::from_str(&text).unwrap();
        assert_eq!(doc.manifests.len(), 2);
        assert_eq!(doc.manifests[1].digest, children[1].manifest.digest);
        assert_eq!(
            doc.manifests[1].size,
            children[1].manifest.bytes.len() as u64
        );
        assert_eq!(
            doc.manifests[1]
                .platform
                .as_ref()
                .unwrap()
                .variant
                .as_deref(),
            Some("v7")
        );
        assert!(text.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"#), "{text}");
        assert!(text.contains("org.opencontainers.image.version"));
        let list = index(&children, IndexFormat::Docker, &ann);
        assert_eq!(list.media_type, mt::DOCKER_LIST);
        assert!(!String::from_utf8_lossy(&list.bytes).contains("annotations"));
    }
}
