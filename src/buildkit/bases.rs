//! The base images a job's Dockerfile starts from, resolved to the digests their tags point
//! at now, for the no-change fingerprint: when a base tag moved in its registry, the job is
//! built again (and says which base moved), with BuildKit told to pull, since the daemon's
//! builder otherwise prefers the stale copy it already has. Naming the bases is pure; only
//! [`resolve`] asks the registries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dockerfile::Dockerfile;
use crate::reference::ImageRef;
use crate::registry::{RegistryOptions, StorePool};

/// A `FROM` image and the digest its reference resolved to (`None`: it could not be
/// resolved, e.g. an image that only exists in the builder's daemon).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedBase {
    pub reference: String,
    pub digest: Option<String>,
}

/// The images the Dockerfile's stages start from, in order and once each: build arguments
/// override the global `ARG` defaults, as BuildKit expands a `FROM` line; `scratch`, earlier
/// stages and references that still hold a `$` are left out.
pub fn references(dockerfile: &Dockerfile, build_args: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (stage, parent) in dockerfile.stages.iter().zip(dockerfile.parents()) {
        let image = dockerfile.expand_args(&stage.base, build_args);
        if parent.is_some()
            || image.is_empty()
            || image.eq_ignore_ascii_case("scratch")
            || image.contains('$')
            || out.contains(&image)
        {
            continue;
        }
        out.push(image);
    }
    out
}

/// Each reference with the digest it points at now: a digest reference is its own answer;
/// a tag is asked of its registry (one HEAD each, at the same time, the repositories of one
/// registry sharing its connection and authorization).
pub async fn resolve(references: &[String], registry: &RegistryOptions) -> Vec<ResolvedBase> {
    let mut pool = StorePool::default();
    let lookups: Vec<_> = references
        .iter()
        .map(|reference| {
            let parsed = reference.parse::<ImageRef>().ok();
            let store = parsed
                .as_ref()
                .filter(|p| p.digest().is_none())
                .map(|p| pool.store(p, registry));
            async move {
                let digest = match (&parsed, store) {
                    (Some(p), _) if p.digest().is_some() => p.digest().map(str::to_string),
                    (Some(p), Some(store)) => store.manifest_digest(p.tag_or_digest()).await.ok(),
                    _ => None,
                };
                ResolvedBase {
                    reference: reference.clone(),
                    digest,
                }
            }
        })
        .collect();
    futures_util::future::join_all(lookups).await
}

/// Why the previous build's bases no longer hold, if they do not: the first base whose
/// digest changed (`reg/library/debian:bookworm moved from sha256:… to sha256:…`).
pub fn moved(before: &[ResolvedBase], now: &[ResolvedBase]) -> Option<String> {
    now.iter().find_map(|base| {
        let old = before.iter().find(|b| b.reference == base.reference)?;
        match (&old.digest, &base.digest) {
            (Some(a), Some(b)) if a != b => Some(format!(
                "base {} moved from {} to {}",
                base.reference,
                short(a),
                short(b)
            )),
            _ => None,
        }
    })
}

fn short(digest: &str) -> &str {
    let end = digest.len().min("sha256:".len() + 12);
    &digest[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_are_named_once_with_build_arguments_applied() {
        let dockerfile = crate::dockerfile::parse(
            "ARG BASE=debian:bookworm\nARG TOOLS\nFROM --platform=$BUILDPLATFORM golang:1.22 AS build\nFROM ${BASE}\nCOPY --from=build /x /x\nFROM build AS again\nFROM scratch\nFROM $TOOLS\nFROM debian:bookworm\n",
        );
        assert_eq!(
            references(&dockerfile, &BTreeMap::new()),
            ["golang:1.22", "debian:bookworm"]
        );
        let args = BTreeMap::from([
            ("BASE".to_string(), "reg.io/base:2".to_string()),
            ("TOOLS".to_string(), "reg.io/tools:1".to_string()),
        ]);
        assert_eq!(
            references(&dockerfile, &args),
            [
                "golang:1.22",
                "reg.io/base:2",
                "reg.io/tools:1",
                "debian:bookworm"
            ]
        );
    }

    #[test]
    fn a_moved_base_is_named_with_both_digests() {
        let base = |d: Option<&str>| ResolvedBase {
            reference: "reg/debian:12".into(),
            digest: d.map(str::to_string),
        };
        let (a, b) = (
            format!("sha256:{}", "a".repeat(64)),
            format!("sha256:{}", "b".repeat(64)),
        );
        assert_eq!(
            moved(&[base(Some(&a))], &[base(Some(&b))]).unwrap(),
            "base reg/debian:12 moved from sha256:aaaaaaaaaaaa to sha256:bbbbbbbbbbbb"
        );
        assert_eq!(moved(&[base(Some(&a))], &[base(Some(&a))]), None);
        assert_eq!(moved(&[base(None)], &[base(Some(&a))]), None);
        assert_eq!(moved(&[], &[base(Some(&a))]), None);
    }
}
