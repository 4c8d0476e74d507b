//! The cluster's platforms from `kubectl get nodes -o json` (or `-o yaml`): each node's
//! `status.nodeInfo.operatingSystem`/`architecture`, else its `kubernetes.io/os` and
//! `kubernetes.io/arch` labels.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Node;

use super::documents::{self, DocumentError};
use crate::k8s::ARCH_LABEL;
use crate::platform::Platform;

/// Why a `--nodes` file gave no platforms.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error("{location}: --nodes expects the output of `kubectl get nodes -o json`, a list of Node objects, but found {found}")]
    NotNodes { location: String, found: String },
    #[error("{file}: --nodes holds no nodes; expected the output of `kubectl get nodes -o json`")]
    Empty { file: PathBuf },
    #[error("{location}: node {node} has no architecture (neither status.nodeInfo.architecture nor the {ARCH_LABEL} label)")]
    NoArchitecture { location: String, node: String },
    #[error("{location}: node {node}: {detail}")]
    BadNode {
        location: String,
        node: String,
        detail: String,
    },
}

/// The distinct platforms of the nodes in a file, in the order first seen.
pub fn load(path: &Path) -> Result<Vec<Platform>, NodesError> {
    let docs = documents::load(path)?;
    platforms(&docs, path)
}

/// The distinct platforms of parsed node documents.
pub fn platforms(docs: &[documents::Document], file: &Path) -> Result<Vec<Platform>, NodesError> {
    let mut out: Vec<Platform> = Vec::new();
    for doc in docs {
        if doc.kind() != "Node" {
            return Err(NodesError::NotNodes {
                location: doc.location(),
                found: format!("a document of kind {}", doc.kind()),
            });
        }
        let node: Node =
            serde_json::from_value(doc.value.clone()).map_err(|e| NodesError::BadNode {
                location: doc.location(),
                node: node_name(&doc.value),
                detail: e.to_string(),
            })?;
        let platform = node_platform(&node).ok_or_else(|| NodesError::NoArchitecture {
            location: doc.location(),
            node: node_name(&doc.value),
        })?;
        if !out.contains(&platform) {
            out.push(platform);
        }
    }
    if out.is_empty() {
        return Err(NodesError::Empty {
            file: file.to_path_buf(),
        });
    }
    Ok(out)
}

fn node_name(v: &serde_json::Value) -> String {
    v.pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("(unnamed)")
        .to_string()
}

fn node_platform(node: &Node) -> Option<Platform> {
    let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
    let labels = node.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).cloned();
    let arch = info
        .map(|i| i.architecture.clone())
        .filter(|a| !a.is_empty())
        .or_else(|| label(ARCH_LABEL))?;
    let os = info
        .map(|i| i.operating_system.clone())
        .filter(|o| !o.is_empty())
        .or_else(|| label("kubernetes.io/os"))
        .unwrap_or_else(|| "linux".into());
    Some(Platform::from_parts_lenient(&os, &arch, None))
}
