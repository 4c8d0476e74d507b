//! The workload kinds archbuild reads, and the pod spec and containers inside each.

use std::fmt;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::names;
use super::pin::ArchPin;

/// A kind of object that runs pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
    Pod,
}

impl WorkloadKind {
    /// The kind for a document's `kind` field, if archbuild reads it.
    pub fn from_kind(kind: &str) -> Option<WorkloadKind> {
        Some(match kind {
            "Deployment" => WorkloadKind::Deployment,
            "StatefulSet" => WorkloadKind::StatefulSet,
            "DaemonSet" => WorkloadKind::DaemonSet,
            "ReplicaSet" => WorkloadKind::ReplicaSet,
            "Job" => WorkloadKind::Job,
            "CronJob" => WorkloadKind::CronJob,
            "Pod" => WorkloadKind::Pod,
            _ => return None,
        })
    }

    /// The `kind` as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::Pod => "Pod",
        }
    }

    /// The field path from the object to its pod spec.
    pub fn pod_spec_path(self) -> &'static [&'static str] {
        match self {
            WorkloadKind::Pod => &["spec"],
            WorkloadKind::CronJob => &["spec", "jobTemplate", "spec", "template", "spec"],
            _ => &["spec", "template", "spec"],
        }
    }

    /// Whether `kubectl patch` can change the pod template in place. A Job's template and a
    /// Pod's scheduling fields are immutable: those are recreated from a patched manifest.
    pub fn patchable_in_place(self) -> bool {
        !matches!(self, WorkloadKind::Job | WorkloadKind::Pod)
    }

    /// Whether `kubectl rollout` applies to this kind.
    pub fn has_rollout(self) -> bool {
        matches!(
            self,
            WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet
        )
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which list of the pod spec a container is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContainerRole {
    Init,
    Main,
    Ephemeral,
}

impl ContainerRole {
    /// How the role is named in messages (`init container`).
    pub fn describe(self) -> &'static str {
        match self {
            ContainerRole::Init => "init container",
            ContainerRole::Main => "container",
            ContainerRole::Ephemeral => "ephemeral container",
        }
    }
}

/// One container of a workload and the image it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRef {
    pub role: ContainerRole,
    pub name: String,
    /// The image as written; `None` when the manifest leaves it out.
    pub image: Option<String>,
}

/// A workload: its identity and its pod spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub kind: WorkloadKind,
    /// `metadata.namespace`, `default` when the manifest gives none.
    pub namespace: String,
    pub name: String,
    pub pod_spec: PodSpec,
}

/// Why a document of a known kind could not be read as that kind.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkloadError {
    #[error("{kind} {name}: {message}")]
    Invalid {
        kind: &'static str,
        name: String,
        message: String,
    },
    #[error("{kind} has no metadata.name; every workload needs a name")]
    Unnamed { kind: &'static str },
}

impl Workload {
    /// Reads a workload from a parsed document. `Ok(None)` when the document's kind is not a
    /// workload kind (the caller reports it); `apiVersion` is not checked, so `batch/v1beta1`
    /// CronJobs and other served versions with the same pod spec read the same.
    pub fn from_value(doc: &Value) -> Result<Option<Workload>, WorkloadError> {
        let Some(kind) = doc.get("kind").and_then(Value::as_str) else {
            return Ok(None);
        };
        let Some(kind) = WorkloadKind::from_kind(kind) else {
            return Ok(None);
        };
        let mut doc = doc.clone();
        if let Some(map) = doc.as_object_mut() {
            map.remove("apiVersion");
            map.remove("kind");
        }
        let (metadata, pod_spec) = match kind {
            WorkloadKind::Deployment => {
                let o: Deployment = typed(kind, &doc)?;
                (o.metadata, o.spec.and_then(|s| s.template.spec))
            }
            WorkloadKind::StatefulSet => {
                let o: StatefulSet = typed(kind, &doc)?;
                (o.metadata, o.spec.and_then(|s| s.template.spec))
            }
            WorkloadKind::DaemonSet => {
                let o: DaemonSet = typed(kind, &doc)?;
                (o.metadata, o.spec.and_then(|s| s.template.spec))
            }
            WorkloadKind::ReplicaSet => {
                let o: ReplicaSet = typed(kind, &doc)?;
                (o.metadata, o.spec.and_then(|s| s.template?.spec))
            }
            WorkloadKind::Job => {
                let o: Job = typed(kind, &doc)?;
                (o.metadata, o.spec.and_then(|s| s.template.spec))
            }
            WorkloadKind::CronJob => {
                let o: CronJob = typed(kind, &doc)?;
                (
                    o.metadata,
                    o.spec.and_then(|s| s.job_template.spec?.template.spec),
                )
            }
            WorkloadKind::Pod => {
                let o: Pod = typed(kind, &doc)?;
                (o.metadata, o.spec)
            }
        };
        Ok(Some(Workload::new(kind, metadata, pod_spec)?))
    }

    fn new(
        kind: WorkloadKind,
        metadata: ObjectMeta,
        pod_spec: Option<PodSpec>,
    ) -> Result<Workload, WorkloadError> {
        let name = metadata
            .name
            .filter(|n| !n.is_empty())
            .ok_or(WorkloadError::Unnamed {
                kind: kind.as_str(),
            })?;
        // An empty namespace is the default one, as kubectl reads it.
        let namespace = metadata
            .namespace
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let invalid = |what: &str, value: &str, why: String| WorkloadError::Invalid {
            kind: kind.as_str(),
            name: names::shown(&name),
            message: format!("{what} {} {why}", names::shown(value)),
        };
        names::check_subdomain(&name).map_err(|why| invalid("metadata.name", &name, why))?;
        names::check_label(&namespace)
            .map_err(|why| invalid("metadata.namespace", &namespace, why))?;
        Ok(Workload {
            kind,
            namespace,
            name,
            pod_spec: pod_spec.unwrap_or_default(),
        })
    }

    /// `Kind/namespace/name`, as audit findings name a workload.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }

    /// Every container: init containers first, then containers, then ephemeral containers.
    pub fn containers(&self) -> Vec<ContainerRef> {
        let spec = &self.pod_spec;
        let init = spec.init_containers.iter().flatten().map(|c| ContainerRef {
            role: ContainerRole::Init,
            name: c.name.clone(),
            image: c.image.clone(),
        });
        let main = spec.containers.iter().map(|c| ContainerRef {
            role: ContainerRole::Main,
            name: c.name.clone(),
            image: c.image.clone(),
        });
        let ephemeral = spec
            .ephemeral_containers
            .iter()
            .flatten()
            .map(|c| ContainerRef {
                role: ContainerRole::Ephemeral,
                name: c.name.clone(),
                image: c.image.clone(),
            });
        init.chain(main).chain(ephemeral).collect()
    }

    /// How the pod spec restricts node architectures, if it does.
    pub fn arch_pin(&self) -> Option<ArchPin> {
        ArchPin::of(&self.pod_spec)
    }
}

fn typed<T: DeserializeOwned>(kind: WorkloadKind, doc: &Value) -> Result<T, WorkloadError> {
    serde_json::from_value(doc.clone()).map_err(|e| WorkloadError::Invalid {
        kind: kind.as_str(),
        name: doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)")
            .to_string(),
        message: e.to_string(),
    })
}
