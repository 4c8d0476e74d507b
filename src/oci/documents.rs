//! The JSON documents registries and OCI layouts store (index / manifest list, image
//! manifest, descriptor, the parts of an image config archbuild reads), as serde structs with
//! a fixed field order and sorted annotations so that what archbuild writes is byte-for-byte
//! reproducible. Reading is lenient (unknown fields ignored, optional fields defaulted) so a
//! broken document can still be described; [`Document`] reads either kind when the caller
//! does not know which it holds. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::platform::Platform;

/// A content descriptor: what a manifest or index points to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
}

/// The `platform` of an index entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorPlatform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl DescriptorPlatform {
    /// The descriptor platform of a normalised [`Platform`].
    pub fn of(p: &Platform) -> Self {
        DescriptorPlatform {
            architecture: p.architecture.clone(),
            os: p.os.clone(),
            os_version: None,
            variant: p.variant.clone(),
        }
    }

    /// As a normalised [`Platform`] (lenient: unknown names are kept as they are).
    pub fn platform(&self) -> Platform {
        Platform::from_parts_lenient(&self.os, &self.architecture, self.variant.as_deref())
    }
}

/// The annotation BuildKit puts on attestation manifests.
/// The largest manifest or index archbuild reads (containerd's limit): anything larger is
/// refused before it is held in memory.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// The annotation naming the manifest an attestation attests.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

impl Descriptor {
    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// The entry's platform, normalised where archbuild knows the names.
    pub fn platform(&self) -> Option<Platform> {
        self.platform.as_ref().map(DescriptorPlatform::platform)
    }

    /// Whether this entry is an attestation manifest (BuildKit's `unknown/unknown` entries
    /// or `vnd.docker.reference.type: attestation-manifest`), which is not a platform.
    pub fn is_attestation(&self) -> bool {
        self.annotation(REFERENCE_TYPE) == Some("attestation-manifest")
            || self.platform().is_some_and(|p| p.is_unknown())
    }

    /// Whether the entry points to another index.
    pub fn is_index(&self) -> bool {
        crate::oci::media_types::is_index(&self.media_type)
    }
}

/// An OCI image index or a Docker manifest list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An OCI or Docker v2 image manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An index or an image manifest, read leniently: which one it is is told by which fields
/// are present (`manifests` for an index, `config` and `layers` for an image).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Document {
    pub media_type: String,
    pub manifests: Option<Vec<Descriptor>>,
    pub config: Option<Descriptor>,
    pub layers: Option<Vec<Descriptor>>,
}

/// Serialises a document compactly in its declared field order (deterministic).
pub fn to_bytes<T: Serialize>(doc: &T) -> Vec<u8> {
    serde_json::to_vec(doc).expect("documents serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attestation_entries_are_recognised() {
        let d: Descriptor = serde_json::from_str(
            r#"{"mediaType":"x","digest":"sha256:a","size":1,
                "annotations":{"vnd.docker.reference.type":"attestation-manifest"},
                "platform":{"architecture":"unknown","os":"unknown"}}"#,
        )
        .unwrap();
        assert!(d.is_attestation());
        let p = DescriptorPlatform::of(&Platform::parse("linux/arm/v7").unwrap());
        assert_eq!(
            String::from_utf8(to_bytes(&p)).unwrap(),
            r#"{"architecture":"arm","os":"linux","variant":"v7"}"#
        );
    }
}
