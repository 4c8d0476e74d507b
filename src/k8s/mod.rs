//! Kubernetes workloads as archbuild sees them: the pod spec inside each workload kind, the
//! containers and images it runs, how it is pinned to node architectures, and the patches
//! (built from the typed objects of `k8s-openapi`, written as YAML) that pin or admit it.
//!
//! Pure: no I/O. The audit reads files and registries; this module only reasons about objects.

pub mod names;
mod patch;
mod pin;
mod workload;

pub use patch::{affinity_patch, taint_command, toleration_patch, Patch, PatchError};
pub use pin::ArchPin;
pub use workload::{ContainerRef, ContainerRole, Workload, WorkloadError, WorkloadKind};

/// The well-known node label the kubelet sets to the node's `GOARCH`.
pub const ARCH_LABEL: &str = "kubernetes.io/arch";

/// The label older kubelets set (still honoured in selectors).
pub const BETA_ARCH_LABEL: &str = "beta.kubernetes.io/arch";

/// The taint put on arm64 nodes while workloads move over: only workloads archbuild verified
/// to cover arm64 get the toleration, so nothing else lands there by accident. A domain-scoped
/// key (`archbuild.io/…`) cannot clash with taints a cloud provider or another tool sets, and
/// removing it (`kubectl taint nodes -l kubernetes.io/arch=arm64 archbuild.io/arm64-migration-`)
/// ends the migration.
pub const MIGRATION_TAINT_KEY: &str = "archbuild.io/arm64-migration";

/// The taint's value.
pub const MIGRATION_TAINT_VALUE: &str = "true";

#[cfg(test)]
mod tests;
