//! archbuild: verified multi-arch container builds.
//!
//! A library with a thin binary (`src/main.rs`). The modules, by layer; each layer uses only
//! the layers above it in this list (and `cli` all of them):
//!
//! Pure core (no tokio, bollard or oci-client):
//! - [`platform`]: `os/arch[/variant]`, containerd's normalisation and matching, ELF identity.
//! - [`finding`]: the findings of the contract, severities and the exit status they give.
//! - [`oci`]: media types, index/manifest/config documents, digests, index format and
//!   compression; `oci::layout` is its one I/O part (the OCI layout folder).
//! - [`elf`]: what the kernel reads before it execs a file.
//! - [`dockerfile`]: the one Dockerfile reader (directives, global `ARG`s, stages, heredocs) and
//!   the pre-flight warnings.
//! - [`layers`]: the streamed layer walker and the whiteout-applied filesystem.
//! - [`reference`]: Docker's syntax of repositories, tags, digests, registry hosts, builder URLs.
//! - [`source`], [`store`]: the transports users type, and the `Store` trait images are read from.
//! - [`atomic_file`]: the one way a file is written (exclusive temporary, synced, renamed).
//!
//! Project:
//! - [`config`]: `archbuild.toml` into a checked `Project`, with file:line:column errors.
//! - [`endpoint`]: which daemon builds a platform, and why.
//! - [`plan`]: every image × platform as a `Job` on its builder.
//! - [`init`]: `archbuild init`'s Dockerfile discovery and rendered project file.
//!
//! Mechanisms (I/O at the edges):
//! - [`buildkit`]: BuildKit builds through bollard, the session's file sync, progress events.
//! - [`image`]: reading an image from any source once into check inputs.
//! - [`check`]: the content check of programs, entrypoint chains, loaders and interpreters.
//! - [`registry`]: a registry repository as a `Store` (oci-client, Docker credentials).
//! - [`publish`]: daemon images converted, assembled into indexes, pushed or written.
//! - [`source_store`]: a registry or layout source opened as one `Store`.
//! - [`verify`]: the release gate, generic over `Store`.
//! - [`inspect`]: what a tag or digest holds, per platform.
//! - [`report`], [`checklist`]: the build report and the rollout checklist rendered from it.
//! - [`k8s`], [`audit`]: Kubernetes workloads and the pre-migration cluster audit.
//!
//! Orchestration and edge:
//! - [`pipeline`]: the whole `archbuild build` flow in its order, as one library call.
//! - [`cli`]: flags, dispatch and printing; progress bars live only in `cli::progress`.

// Pure core.
pub mod atomic_file;
pub mod dockerfile;
pub mod elf;
pub mod finding;
pub mod layers;
pub mod oci;
pub mod platform;
pub mod reference;
pub mod source;
pub mod store;
// Project.
pub mod config;
pub mod endpoint;
pub mod init;
pub mod plan;
// Mechanisms.
pub mod audit;
pub mod buildkit;
pub mod check;
pub mod checklist;
pub mod image;
pub mod inspect;
pub mod k8s;
pub mod publish;
pub mod registry;
pub mod report;
pub mod source_store;
pub mod verify;
// Orchestration and edge.
pub mod cli;
pub mod pipeline;

#[cfg(test)]
mod test_http;

pub use finding::{Finding, FindingKind, Outcome, Severity};
pub use platform::Platform;
