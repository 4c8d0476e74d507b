//! The OCI and Docker image formats, in one place: media types, the JSON documents (index,
//! manifest, descriptor, config) with the attestation rule of the contract, digests, and the
//! OCI image layout folder. Everything but `layout` is pure; `layout` reads and writes files.

pub mod config;
pub mod digest;
pub mod documents;
pub mod layout;
pub mod media_types;

pub use config::ImageConfig;
pub use digest::sha256;
pub use documents::{Descriptor, DescriptorPlatform, Document, ImageManifest, Index};
pub use layout::Layout;
