//! The OCI and Docker image formats, in one place: media types, the JSON documents (index,
//! manifest, descriptor, config) with the attestation rule of the contract, the index format
//! and layer compression a project chooses, digests, and the OCI image layout folder. Everything but `layout` is pure; `layout` reads and writes files.

pub mod config;
pub mod digest;
pub mod documents;
pub mod format;
pub mod layout;
pub mod media_types;
pub mod visits;

pub use config::ImageConfig;
pub use digest::sha256;
pub use documents::{Descriptor, DescriptorPlatform, Document, ImageManifest, Index};
pub use format::{Compression, IndexFormat};
pub use layout::Layout;
pub use visits::Visits;
