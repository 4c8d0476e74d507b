//! archbuild: verified multi-arch container builds.
//!
//! The crate is a library with a thin binary (`src/main.rs`). Dependencies point inward:
//! `cli` wires commands to `build`, `check`, `publish`, `registry`, `audit` and `checklist`,
//! which stand on `plan` and `config`, which stand on the pure core (`platform`, `finding`,
//! `source`, and `oci`'s documents, media types, digests and configs). The pure modules
//! import neither tokio, bollard nor oci-client; `oci::layout` is the one I/O part of `oci`.

pub mod audit;
pub mod buildkit;
pub mod check;
pub mod checklist;
pub mod cli;
pub mod config;
pub mod elf;
pub mod endpoint;
pub mod finding;
pub mod image;
pub mod init;
pub mod inspect;
pub mod k8s;
pub mod layers;
pub mod oci;
pub mod pipeline;
pub mod plan;
pub mod platform;
pub mod publish;
pub mod registry;
pub mod report;
pub mod source;
pub mod store;
pub mod verify;

pub use finding::{Finding, FindingKind, Outcome, Severity};
pub use platform::Platform;
