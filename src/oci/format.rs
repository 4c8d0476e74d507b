//! The two encodings a project chooses for what it publishes: the index format (OCI index
//! or Docker manifest list, `index-format` in archbuild.toml) and the layer compression
//! (`--compression`), with the media types each implies. Pure.

use serde::{Deserialize, Serialize};

use super::media_types as mt;

/// Which index type to write (`index-format` in archbuild.toml).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexFormat {
    /// OCI image index with OCI image manifests (the default).
    #[default]
    Oci,
    /// Docker manifest list v2 with Docker v2 schema 2 manifests, for registries that refuse OCI.
    Docker,
}

/// How layers are compressed.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

impl Compression {
    /// Short name (`gzip`, `zstd`), used in cache keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

impl IndexFormat {
    /// The index media type.
    pub fn index_media_type(self) -> &'static str {
        match self {
            IndexFormat::Oci => mt::OCI_INDEX,
            IndexFormat::Docker => mt::DOCKER_LIST,
        }
    }

    /// The image manifest media type.
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            IndexFormat::Oci => mt::OCI_MANIFEST,
            IndexFormat::Docker => mt::DOCKER_MANIFEST,
        }
    }

    /// The config media type.
    pub fn config_media_type(self) -> &'static str {
        match self {
            IndexFormat::Oci => mt::OCI_CONFIG,
            IndexFormat::Docker => mt::DOCKER_CONFIG,
        }
    }

    /// The layer media type for a compression. Docker's schema has no zstd type; like
    /// BuildKit, zstd layers keep the OCI type.
    pub fn layer_media_type(self, compression: Compression) -> &'static str {
        match (self, compression) {
            (IndexFormat::Oci, Compression::Gzip) => mt::OCI_LAYER_GZIP,
            (IndexFormat::Docker, Compression::Gzip) => mt::DOCKER_LAYER_GZIP,
            (_, Compression::Zstd) => mt::OCI_LAYER_ZSTD,
        }
    }
}
