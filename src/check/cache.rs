//! Check results remembered by image ID, so that a rebuild whose images did not change does
//! not export and read them again. An image ID is the digest of the image's config, which
//! names its layers' digests: the same ID checked for the same platform, with the same
//! options, by the same archbuild, gives the same findings. Entries live under
//! `.archbuild/cache/checks/`; a missing, unreadable or stale entry only means checking again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::CheckReport;
use crate::finding::Finding;
use crate::platform::Platform;

/// What a check result depends on besides the image's content.
#[derive(Serialize)]
pub struct Key<'a> {
    pub image_id: &'a str,
    pub platform: &'a Platform,
    pub name: &'a str,
    pub ignore: &'a [String],
    pub binaries: &'a [String],
    pub page_size: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    report: CheckReport,
    findings: Vec<Finding>,
}

/// Changed whenever the rules find something new, so that remembered results of the same
/// archbuild version are not reused across it.
const RULES: &str =
    "rules-6: cpu-level-mismatch (ARM programs only), page-size, missing-library, library-version-missing (loaders' DT_RPATH chain, /etc/ld.so.cache, glibc-hwcaps subfolders)";

impl Key<'_> {
    /// The entry's file name: a digest of everything the result depends on, this archbuild's
    /// version and rule set included (a newer rule set must look again).
    fn file_name(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(env!("CARGO_PKG_VERSION").as_bytes());
        hash.update(RULES.as_bytes());
        hash.update(serde_json::to_vec(self).unwrap_or_default());
        format!("{}.json", hex::encode(hash.finalize()))
    }
}

fn path(dir: &Path, key: &Key<'_>) -> PathBuf {
    dir.join("checks").join(key.file_name())
}

/// The remembered result for `key`, if any.
pub fn load(dir: &Path, key: &Key<'_>) -> Option<CheckReport> {
    let bytes = std::fs::read(path(dir, key)).ok()?;
    let entry: Entry = serde_json::from_slice(&bytes).ok()?;
    Some(CheckReport {
        findings: entry.findings,
        ..entry.report
    })
}

/// Remembers `report` for `key` (best effort: a cache that cannot be written is not an error).
pub fn store(dir: &Path, key: &Key<'_>, report: &CheckReport) {
    let target = path(dir, key);
    let entry = Entry {
        report: report.clone(),
        findings: report.findings.clone(),
    };
    let Ok(bytes) = serde_json::to_vec(&entry) else {
        return;
    };
    if let Some(parent) = target.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = crate::atomic_file::write(&target, &bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::FindingKind;

    fn report() -> CheckReport {
        CheckReport {
            image: "api:1".into(),
            platform: Platform::parse("linux/arm64").unwrap(),
            manifest: None,
            config: Some("sha256:c".into()),
            entrypoint: vec!["/app".into()],
            layers: 1,
            files: 2,
            elf_files: 1,
            errors: 1,
            warnings: 0,
            go: Vec::new(),
            findings: vec![Finding::error(FindingKind::ElfArchMismatch, "wrong").with_path("/app")],
        }
    }

    #[test]
    fn remembers_findings_by_image_id_and_options() {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::parse("linux/arm64").unwrap();
        let ignore = vec!["/usr/share/qemu/**".to_string()];
        let key = Key {
            image_id: "sha256:abc",
            platform: &platform,
            name: "api:1",
            ignore: &ignore,
            binaries: &[],
            page_size: None,
        };
        assert!(load(dir.path(), &key).is_none());
        store(dir.path(), &key, &report());
        let back = load(dir.path(), &key).expect("remembered");
        assert_eq!(back.findings, report().findings);
        assert_eq!(back.elf_files, 1);
        // Other options or another image: not the same result.
        let paged = Key {
            page_size: Some(65536),
            ..key
        };
        assert!(load(dir.path(), &paged).is_none());
        let other = Key { ignore: &[], ..key };
        assert!(load(dir.path(), &other).is_none());
        let other = Key {
            image_id: "sha256:def",
            ..key
        };
        assert!(load(dir.path(), &other).is_none());
    }
}
