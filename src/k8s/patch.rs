//! Strategic-merge patches built from the typed Kubernetes objects: a node affinity on
//! `kubernetes.io/arch` that keeps a workload on the architectures its images cover, and the
//! toleration that admits a verified workload onto the tainted arm64 pool.
//!
//! Two facts of strategic merge shape these patches. `nodeSelectorTerms` and `tolerations` have
//! no merge key, so a patch replaces the whole list: each patch therefore carries the workload's
//! other terms and tolerations along with the new one. Maps merge key by key, so the rest of the
//! pod spec (containers, pod anti-affinity, preferred terms) is left as it is.

use std::path::Path;

use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Toleration,
};
use serde_json::{Map, Value};

use super::workload::{Workload, WorkloadKind};
use super::{ARCH_LABEL, MIGRATION_TAINT_KEY, MIGRATION_TAINT_VALUE};

/// A patch for one workload, ready to write to a file and apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    /// `Kind/namespace/name` of the workload it patches.
    pub workload: String,
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// A file name for it: `deployment_prod_api.affinity.yaml`. Kinds, namespaces and names
    /// never hold `_` or `/` (see [`super::names`]), so distinct workloads get distinct names
    /// and a name never leaves the folder it is written to.
    pub file_name: String,
    /// The patch document, YAML.
    pub yaml: String,
    /// Why `kubectl patch` cannot apply it in place, when it cannot (Jobs, Pods).
    pub note: Option<String>,
}

/// Why no patch could be built.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("{workload}: no architecture runs every container's image, so no node affinity can place it; rebuild the images for a common platform")]
    NoArchitecture { workload: String },
    #[error("{workload}: cannot serialise the patch: {detail}")]
    Serialise { workload: String, detail: String },
}

impl Patch {
    /// `kubectl patch deployment api -n prod --type strategic --patch-file DIR/FILE`, every
    /// word quoted for a POSIX shell where it needs it.
    pub fn command(&self, dir: Option<&Path>) -> String {
        let file = match dir {
            Some(d) => d.join(&self.file_name).display().to_string(),
            None => self.file_name.clone(),
        };
        self.render(&file, shell_word)
    }

    /// The command as a template, for a patch of a placeholder workload (`<workload>`) that a
    /// person fills in: the words as they are, unquoted.
    pub fn template_command(&self) -> String {
        self.render(&self.file_name, str::to_string)
    }

    fn render(&self, file: &str, word: fn(&str) -> String) -> String {
        format!(
            "kubectl patch {} {} -n {} --type strategic --patch-file {}",
            self.kind.as_str().to_ascii_lowercase(),
            word(&self.name),
            word(&self.namespace),
            word(file)
        )
    }
}

/// `word` as one POSIX shell word: unchanged when no shell treats any of it specially, else
/// quoted (shlex). A NUL, which no argument can hold, is dropped.
pub fn shell_word(word: &str) -> String {
    let word = word.replace('\0', "");
    shlex::try_quote(&word).map_or(word.clone(), |q| q.into_owned())
}

/// The node-affinity patch that keeps `workload` on `architectures` (label values: `amd64`).
///
/// A `nodeSelector` that already names an architecture is changed to the first of
/// `architectures` (a selector holds one value, and it would otherwise keep overriding the
/// affinity); else each required node-selector term gets the arch
/// expression (replacing any arch expression it had), or one term is added.
pub fn affinity_patch(workload: &Workload, architectures: &[String]) -> Result<Patch, PatchError> {
    if architectures.is_empty() {
        return Err(PatchError::NoArchitecture {
            workload: workload.id(),
        });
    }
    let spec = &workload.pod_spec;
    let mut fragment = Map::new();
    let selector_arch = spec.node_selector.as_ref().is_some_and(|s| {
        s.keys()
            .any(|k| k == ARCH_LABEL || k == super::BETA_ARCH_LABEL)
    });
    if selector_arch {
        let selector: std::collections::BTreeMap<String, String> = spec
            .node_selector
            .iter()
            .flatten()
            .filter(|(k, _)| k.as_str() == super::BETA_ARCH_LABEL || k.as_str() == ARCH_LABEL)
            .map(|(k, _)| (k.clone(), architectures[0].clone()))
            .collect();
        fragment.insert("nodeSelector".into(), to_value(workload, &selector)?);
    }
    if !selector_arch || has_arch_terms(workload) {
        let affinity = Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: arch_terms(workload, architectures),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        fragment.insert("affinity".into(), to_value(workload, &affinity)?);
    }
    let header = format!(
        "# archbuild: keep {} on nodes where every container's image runs ({ARCH_LABEL} in {})",
        workload.id(),
        architectures.join(", ")
    );
    build(workload, "affinity", &header, fragment)
}

fn has_arch_terms(workload: &Workload) -> bool {
    workload.arch_pin().is_some_and(|p| !p.terms.is_empty())
}

fn arch_terms(workload: &Workload, architectures: &[String]) -> Vec<NodeSelectorTerm> {
    let requirement = NodeSelectorRequirement {
        key: ARCH_LABEL.into(),
        operator: "In".into(),
        values: Some(architectures.to_vec()),
    };
    let existing = super::pin::required_terms(&workload.pod_spec).to_vec();
    if existing.is_empty() {
        return vec![NodeSelectorTerm {
            match_expressions: Some(vec![requirement]),
            match_fields: None,
        }];
    }
    existing
        .into_iter()
        .map(|mut term| {
            let mut expressions: Vec<NodeSelectorRequirement> = term
                .match_expressions
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|e| e.key != ARCH_LABEL && e.key != super::BETA_ARCH_LABEL)
                .collect();
            expressions.push(requirement.clone());
            term.match_expressions = Some(expressions);
            term
        })
        .collect()
}

/// The toleration of the migration taint, added to the workload's own tolerations.
pub fn toleration_patch(workload: &Workload) -> Result<Patch, PatchError> {
    let toleration = migration_toleration();
    let mut tolerations = workload.pod_spec.tolerations.clone().unwrap_or_default();
    if !tolerations.contains(&toleration) {
        tolerations.push(toleration);
    }
    let mut fragment = Map::new();
    fragment.insert("tolerations".into(), to_value(workload, &tolerations)?);
    let header = format!(
        "# archbuild: admit {} onto arm64 nodes tainted {MIGRATION_TAINT_KEY}={MIGRATION_TAINT_VALUE}:NoSchedule (its images cover linux/arm64)",
        workload.id()
    );
    build(workload, "toleration", &header, fragment)
}

/// The toleration of [`MIGRATION_TAINT_KEY`].
pub fn migration_toleration() -> Toleration {
    Toleration {
        key: Some(MIGRATION_TAINT_KEY.into()),
        operator: Some("Equal".into()),
        value: Some(MIGRATION_TAINT_VALUE.into()),
        effect: Some("NoSchedule".into()),
        toleration_seconds: None,
    }
}

/// The command that taints the arm64 pool for the migration.
pub fn taint_command() -> String {
    format!(
        "kubectl taint nodes -l {ARCH_LABEL}=arm64 {MIGRATION_TAINT_KEY}={MIGRATION_TAINT_VALUE}:NoSchedule"
    )
}

fn to_value<T: serde::Serialize>(workload: &Workload, v: &T) -> Result<Value, PatchError> {
    serde_json::to_value(v).map_err(|e| PatchError::Serialise {
        workload: workload.id(),
        detail: e.to_string(),
    })
}

/// Wraps a pod-spec fragment in the workload kind's path and writes the YAML.
fn build(
    workload: &Workload,
    what: &str,
    header: &str,
    fragment: Map<String, Value>,
) -> Result<Patch, PatchError> {
    let mut doc = Value::Object(fragment);
    for key in workload.kind.pod_spec_path().iter().rev() {
        let mut outer = Map::new();
        outer.insert((*key).to_string(), doc);
        doc = Value::Object(outer);
    }
    let body = serde_yaml_ng::to_string(&doc).map_err(|e| PatchError::Serialise {
        workload: workload.id(),
        detail: e.to_string(),
    })?;
    let note = (!workload.kind.patchable_in_place()).then(|| {
        format!(
            "a {}'s pod template cannot be changed in place: apply this patch to its manifest and recreate it",
            workload.kind
        )
    });
    Ok(Patch {
        workload: workload.id(),
        kind: workload.kind,
        namespace: workload.namespace.clone(),
        name: workload.name.clone(),
        file_name: format!(
            "{}_{}_{}.{what}.yaml",
            workload.kind.as_str().to_ascii_lowercase(),
            workload.namespace,
            workload.name
        ),
        yaml: format!("{header}\n{body}"),
        note,
    })
}
