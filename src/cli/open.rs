//! Opening what `verify` and `inspect` read, a registry reference or `oci:DIR[:REF]`, as one
//! [`Store`] and the reference to ask it for.

use crate::oci::Layout;
use crate::registry::{RegistryOptions, RegistryStore};
use crate::source::Source;
use crate::store::{BlobReader, RawManifest, Store, StoreError};

/// A registry repository or an OCI layout.
pub enum OpenedStore {
    Registry(Box<RegistryStore>),
    Layout(Layout),
}

/// Opens the store `text` names, with the tag or digest to read from it (empty for the only
/// image of a layout). `command` names the command in the error for other sources.
pub fn open(
    text: &str,
    insecure_registries: &[String],
    command: &str,
) -> anyhow::Result<(OpenedStore, String)> {
    match Source::parse(text)? {
        Source::Registry(reference) => {
            let options = RegistryOptions {
                insecure_registries: insecure_registries.to_vec(),
                ..Default::default()
            };
            let tag = reference.tag_or_digest().to_string();
            let store = RegistryStore::new(&reference, &options);
            Ok((OpenedStore::Registry(Box::new(store)), tag))
        }
        Source::OciLayout { dir, reference } => Ok((
            OpenedStore::Layout(Layout::open(&dir)?),
            reference.unwrap_or_default(),
        )),
        other => anyhow::bail!(
            "{command} reads a registry reference or oci:DIR[:REF]; {other} is neither (use `archbuild check` for daemon images and archives)"
        ),
    }
}

impl Store for OpenedStore {
    async fn manifest(&self, reference: &str) -> Result<RawManifest, StoreError> {
        match self {
            OpenedStore::Registry(s) => s.manifest(reference).await,
            OpenedStore::Layout(s) => s.manifest(reference).await,
        }
    }

    async fn blob_size(&self, digest: &str) -> Result<Option<u64>, StoreError> {
        match self {
            OpenedStore::Registry(s) => s.blob_size(digest).await,
            OpenedStore::Layout(s) => s.blob_size(digest).await,
        }
    }

    async fn blob(&self, digest: &str) -> Result<BlobReader, StoreError> {
        match self {
            OpenedStore::Registry(s) => s.blob(digest).await,
            OpenedStore::Layout(s) => s.blob(digest).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            OpenedStore::Registry(s) => s.describe(),
            OpenedStore::Layout(s) => s.describe(),
        }
    }
}
