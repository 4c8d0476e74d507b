//! `inspect`: what a tag or digest is — index or single image, each platform with its
//! manifest digest, config digest, layer count and compressed size, attestation entries
//! marked — and a one-line verdict. Built on [`crate::verify`] with no platform required, so
//! broken references show up here too.

use serde::Serialize;

use crate::oci::media_types as mt;
use crate::store::{RawManifest, Store, StoreError};
use crate::verify::{self, VerifyOptions, VerifyReport};

/// What `inspect` shows.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    #[serde(flatten)]
    pub report: VerifyReport,
    /// `multi-arch covering linux/amd64, linux/arm64` or `single-arch for linux/amd64`.
    pub verdict: String,
}

/// Inspects `reference` in `store`.
pub async fn inspect<S: Store>(store: &S, reference: &str) -> Result<Inspection, StoreError> {
    let report = verify::verify(store, reference, &[], &VerifyOptions::default()).await?;
    let verdict = verdict(&report);
    Ok(Inspection { report, verdict })
}

/// The exact manifest bytes (`--raw`).
pub async fn raw<S: Store>(store: &S, reference: &str) -> Result<RawManifest, StoreError> {
    store.manifest(reference).await
}

/// The one-line verdict of a report. Pure.
pub fn verdict(report: &VerifyReport) -> String {
    let platforms: Vec<String> = report
        .children
        .iter()
        .map(|c| c.platform.to_string())
        .collect();
    let mut line = if mt::is_index(&report.media_type) {
        format!("multi-arch covering {}", platforms.join(", "))
    } else {
        format!("single-arch for {}", platforms.join(", "))
    };
    if !report.attestations.is_empty() {
        line.push_str(&format!(
            " (+{} attestation entr{})",
            report.attestations.len(),
            if report.attestations.len() == 1 {
                "y"
            } else {
                "ies"
            }
        ));
    }
    if !report.findings.is_empty() {
        line.push_str(&format!(
            "; {} problem(s), see `archbuild verify`",
            report.findings.len()
        ));
    }
    line
}
