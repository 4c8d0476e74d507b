//! The OCI annotations every built image carries as labels: `org.opencontainers.image.created`
//! from `SOURCE_DATE_EPOCH` (so reproducible builds stay reproducible), `revision` and `source`
//! from the context's git checkout when there is one. The user's own labels win.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// `org.opencontainers.image.created`
pub const CREATED: &str = "org.opencontainers.image.created";
/// `org.opencontainers.image.revision`
pub const REVISION: &str = "org.opencontainers.image.revision";
/// `org.opencontainers.image.source`
pub const SOURCE: &str = "org.opencontainers.image.source";

/// The labels for a build of `context`: the OCI ones, overridden by `own`.
pub fn for_context(context: &Path, own: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok());
    let revision = git(context, &["rev-parse", "HEAD"]);
    let source = git(context, &["config", "--get", "remote.origin.url"]);
    let mut labels = oci_labels(epoch, revision, source);
    labels.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

/// The OCI labels from their inputs (pure).
pub fn oci_labels(
    source_date_epoch: Option<i64>,
    revision: Option<String>,
    source: Option<String>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if let Some(created) = source_date_epoch.and_then(rfc3339) {
        labels.insert(CREATED.to_string(), created);
    }
    if let Some(revision) = revision.filter(|r| !r.is_empty()) {
        labels.insert(REVISION.to_string(), revision);
    }
    if let Some(source) = source.filter(|s| !s.is_empty()) {
        labels.insert(SOURCE.to_string(), without_credentials(&source));
    }
    labels
}

fn rfc3339(epoch: i64) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp(epoch).ok()?;
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// `https://user:token@host/x.git` → `https://host/x.git`: a label must not leak a token.
fn without_credentials(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            if !userinfo.contains('/') {
                return format!("{scheme}://{host}");
            }
        }
    }
    url.to_string()
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_epoch_and_git() {
        let labels = oci_labels(
            Some(1_700_000_000),
            Some("abc123".into()),
            Some("https://user:secret@example.com/team/api.git".into()),
        );
        assert_eq!(labels[CREATED], "2023-11-14T22:13:20Z");
        assert_eq!(labels[REVISION], "abc123");
        assert_eq!(labels[SOURCE], "https://example.com/team/api.git");
    }

    #[test]
    fn nothing_known_means_no_labels() {
        assert!(oci_labels(None, None, Some(String::new())).is_empty());
    }

    #[test]
    fn own_labels_win() {
        let dir = tempfile::tempdir().unwrap();
        let own = BTreeMap::from([(REVISION.to_string(), "mine".to_string())]);
        let labels = for_context(dir.path(), &own);
        assert_eq!(labels[REVISION], "mine");
    }
}
