//! How a pod spec restricts the node architectures it schedules on: a `nodeSelector` on
//! `kubernetes.io/arch` and the required `nodeAffinity` terms that test that label.
//!
//! The scheduler's rules, applied to the one label: the node selector must match, and at least
//! one node-selector term must match (terms are ORed, the expressions within a term ANDed).

use std::fmt;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, PodSpec};

use super::{ARCH_LABEL, BETA_ARCH_LABEL};

/// A pod spec's restriction on `kubernetes.io/arch`.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchPin {
    /// The architecture the `nodeSelector` demands, if it names one.
    pub node_selector: Option<String>,
    /// The arch expressions of each required node-affinity term (empty when the term does
    /// not test the label, which then lets every architecture through).
    pub terms: Vec<Vec<NodeSelectorRequirement>>,
}

fn is_arch_key(key: &str) -> bool {
    key == ARCH_LABEL || key == BETA_ARCH_LABEL
}

/// The required node-affinity terms of a pod spec
/// (`requiredDuringSchedulingIgnoredDuringExecution`), empty when it has none.
pub(super) fn required_terms(spec: &PodSpec) -> &[NodeSelectorTerm] {
    spec.affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map_or(&[], |r| r.node_selector_terms.as_slice())
}

impl ArchPin {
    /// The pin of a pod spec, `None` when nothing in it tests the architecture label.
    pub fn of(spec: &PodSpec) -> Option<ArchPin> {
        let node_selector = spec.node_selector.as_ref().and_then(|s| {
            s.iter()
                .find(|(k, _)| is_arch_key(k))
                .map(|(_, v)| v.clone())
        });
        let terms: Vec<Vec<NodeSelectorRequirement>> = required_terms(spec)
            .iter()
            .map(|t| {
                t.match_expressions
                    .iter()
                    .flatten()
                    .filter(|e| is_arch_key(&e.key))
                    .cloned()
                    .collect()
            })
            .collect();
        let affinity_pins = terms.iter().any(|t: &Vec<_>| !t.is_empty());
        if node_selector.is_none() && !affinity_pins {
            return None;
        }
        Some(ArchPin {
            node_selector,
            terms: if affinity_pins { terms } else { Vec::new() },
        })
    }

    /// Whether a node of this architecture (`GOARCH`, as in the label) may run the pod.
    pub fn allows(&self, arch: &str) -> bool {
        if self.node_selector.as_deref().is_some_and(|a| a != arch) {
            return false;
        }
        self.terms.is_empty()
            || self
                .terms
                .iter()
                .any(|term| term.iter().all(|e| expression_allows(e, arch)))
    }
}

fn expression_allows(e: &NodeSelectorRequirement, arch: &str) -> bool {
    let values = e.values.as_deref().unwrap_or_default();
    let listed = values.iter().any(|v| v == arch);
    match e.operator.as_str() {
        "In" => listed,
        "NotIn" => !listed,
        // Every node carries the label; Gt/Lt do not apply to a name.
        "Exists" => true,
        _ => false,
    }
}

impl fmt::Display for ArchPin {
    /// `nodeSelector kubernetes.io/arch=amd64` or `nodeAffinity kubernetes.io/arch In (amd64)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(arch) = &self.node_selector {
            parts.push(format!("nodeSelector {ARCH_LABEL}={arch}"));
        }
        let terms: Vec<String> = self
            .terms
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.iter()
                    .map(|e| {
                        let values = e.values.as_deref().unwrap_or_default().join(", ");
                        format!("{} {} ({values})", e.key, e.operator)
                    })
                    .collect::<Vec<_>>()
                    .join(" and ")
            })
            .collect();
        if !terms.is_empty() {
            parts.push(format!("nodeAffinity {}", terms.join(" or ")));
        }
        f.write_str(&parts.join(" and "))
    }
}
