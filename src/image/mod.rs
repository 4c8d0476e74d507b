//! Reading images for `check`: each source (a `docker save` stream, the Docker daemon's
//! export, an OCI layout, any `Store`) is read once into `ImageInput`s: the config bytes and
//! one `LayerSummary` per layer, bottom first. Layer contents are summarised as they stream.

use std::sync::Arc;

use crate::layers::{LayerError, LayerSummary};
use crate::oci::Descriptor;
use crate::platform::Platform;
use crate::store::StoreError;

pub mod archive;
pub mod daemon;
pub mod store;

/// One image, read: what `check::run` needs, plus where it came from.
#[derive(Clone, Debug)]
pub struct ImageInput {
    /// How to name the image in reports.
    pub name: String,
    /// The platform the index lists it for, when it came from an index.
    pub listed_platform: Option<Platform>,
    pub manifest_digest: Option<String>,
    pub config_digest: Option<String>,
    /// Shared: an index may list one image, or one config, under many platforms.
    pub config: Arc<[u8]>,
    pub layers: Vec<Arc<LayerSummary>>,
}

/// A platform an index was asked for (`--platform`) but does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingPlatform {
    pub name: String,
    pub platform: Platform,
    pub available: Vec<Platform>,
}

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{source_name}: {detail}")]
    Invalid { source_name: String, detail: String },
    #[error(
        "image {name} is not in the Docker daemon ({detail}); `docker images` lists what is there"
    )]
    NotInDaemon { name: String, detail: String },
    #[error("the Docker daemon cannot be reached or refused the export: {0}")]
    Daemon(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    pub(crate) fn invalid(source_name: &str, detail: impl Into<String>) -> ImageError {
        ImageError::Invalid {
            source_name: source_name.to_string(),
            detail: detail.into(),
        }
    }
}

/// Which entries of an index to check: the `--platform` ones (or all), attestations skipped.
/// Returns the chosen entries and the asked-for platforms the index does not have.
pub fn select<'a>(
    entries: &'a [Descriptor],
    wanted: Option<&[Platform]>,
) -> (Vec<&'a Descriptor>, Vec<Platform>) {
    let images: Vec<&Descriptor> = entries.iter().filter(|d| !d.is_attestation()).collect();
    let Some(wanted) = wanted else {
        return (images, Vec::new());
    };
    let chosen: Vec<&Descriptor> = images
        .iter()
        .copied()
        .filter(|d| d.is_index() || d.platform().is_some_and(|p| wanted.contains(&p)))
        .collect();
    let missing = wanted
        .iter()
        .filter(|w| {
            !images
                .iter()
                .any(|d| d.is_index() || d.platform().as_ref() == Some(*w))
        })
        .cloned()
        .collect();
    (chosen, missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::DescriptorPlatform;

    fn entry(platform: &str, attestation: bool) -> Descriptor {
        let p = Platform::from_parts_lenient(
            platform.split('/').next().unwrap(),
            platform.split('/').nth(1).unwrap(),
            platform.split('/').nth(2),
        );
        let mut d = Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: format!("sha256:{platform}"),
            platform: Some(DescriptorPlatform::of(&p)),
            ..Descriptor::default()
        };
        if attestation {
            d.annotations = Some(
                [(
                    "vnd.docker.reference.type".to_string(),
                    "attestation-manifest".to_string(),
                )]
                .into(),
            );
        }
        d
    }

    #[test]
    fn selects_platforms_and_skips_attestations() {
        let entries = vec![
            entry("linux/amd64", false),
            entry("linux/arm64", false),
            entry("unknown/unknown", true),
        ];
        let (all, missing) = select(&entries, None);
        assert_eq!(all.len(), 2);
        assert!(missing.is_empty());
        let wanted = crate::platform::parse_list("arm64,linux/s390x").unwrap();
        let (some, missing) = select(&entries, Some(&wanted));
        assert_eq!(some.len(), 1);
        assert_eq!(some[0].digest, "sha256:linux/arm64");
        assert_eq!(missing, vec![Platform::parse("linux/s390x").unwrap()]);
    }
}
