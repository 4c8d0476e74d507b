//! A [`Source`] opened as a [`Store`]: the one way `check`, `verify`, `inspect` and the build's
//! own verification open a registry repository or an OCI layout, with the manifest to start
//! from. Daemon images and `docker save` archives are not stores (they are read whole by
//! `image`), so they open as nothing here.

use std::path::Path;

use crate::oci::Layout;
use crate::reference::ImageRef;
use crate::registry::{RegistryOptions, RegistryStore};
use crate::source::Source;
use crate::store::{BlobReader, RawManifest, Store, StoreError};

/// A registry repository or an OCI layout.
pub enum OpenedStore {
    Registry(Box<RegistryStore>),
    Layout(Layout),
}

/// An opened source: the store, and the tag, digest or layout ref name the source names
/// (`None`: a layout as a whole).
pub struct Opened {
    pub store: OpenedStore,
    pub reference: Option<String>,
}

/// Opens `source` as a store; `None` for the sources that are not stores (daemon, archive).
pub fn open(source: &Source, registry: &RegistryOptions) -> Result<Option<Opened>, StoreError> {
    Ok(Some(match source {
        Source::Registry(reference) => open_registry(reference, registry),
        Source::OciLayout { dir, reference } => open_layout(dir, reference.as_deref())?,
        Source::DockerDaemon { .. } | Source::DockerArchive { .. } => return Ok(None),
    }))
}

/// The repository of `reference`, to be read at its tag or digest.
pub fn open_registry(reference: &ImageRef, registry: &RegistryOptions) -> Opened {
    Opened {
        store: OpenedStore::Registry(Box::new(RegistryStore::new(reference, registry))),
        reference: Some(reference.tag_or_digest().to_string()),
    }
}

/// The OCI layout in `dir`, to be read at the ref name `reference` (or as a whole).
pub fn open_layout(dir: &Path, reference: Option<&str>) -> Result<Opened, StoreError> {
    Ok(Opened {
        store: OpenedStore::Layout(Layout::open(dir)?),
        reference: reference.map(str::to_string),
    })
}

impl Opened {
    /// The manifest the source names: its tag or digest, or a whole layout's `index.json`.
    pub async fn top(&self) -> Result<RawManifest, StoreError> {
        match (&self.store, &self.reference) {
            (OpenedStore::Layout(layout), reference) => layout.top(reference.as_deref()).await,
            (store, Some(reference)) => store.manifest(reference).await,
            (store, None) => store.manifest("latest").await,
        }
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
