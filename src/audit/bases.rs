//! `--check-bases`: the `FROM` images of the project's Dockerfiles, which must cover every
//! platform the project builds for. Parsing is pure; finding the Dockerfiles walks a folder.
//!
//! Not audited: `scratch`, a stage of the same Dockerfile, and a stage pinned to
//! `--platform=$BUILDPLATFORM` (it runs on the build host and only hands files over).

use std::path::{Path, PathBuf};

use crate::platform::Platform;

/// A base image named by a `FROM` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseImage {
    pub dockerfile: PathBuf,
    /// 1-based line of the `FROM` instruction.
    pub line: usize,
    /// The image, with global `ARG` defaults substituted.
    pub image: String,
    /// The platforms it must cover (the project's for that Dockerfile); empty: the audit's.
    pub platforms: Vec<Platform>,
}

/// A `FROM` that could not be audited, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub dockerfile: PathBuf,
    pub line: usize,
    pub reason: String,
}

/// The base images of one Dockerfile's text, and the `FROM`s left unaudited for a reason
/// worth telling (an unresolved `ARG`).
pub fn parse(text: &str, dockerfile: &Path) -> (Vec<BaseImage>, Vec<Skipped>) {
    let parsed = crate::dockerfile::parse(text);
    let mut bases = Vec::new();
    let mut skipped = Vec::new();
    for (stage, parent) in parsed.stages.iter().zip(parsed.parents()) {
        let image = parsed.expand_global_args(&stage.base);
        let pinned_to_build = stage
            .platform_flag
            .as_deref()
            .is_some_and(|p| p.contains("BUILDPLATFORM"));
        if image.is_empty()
            || pinned_to_build
            || image.eq_ignore_ascii_case("scratch")
            || parent.is_some()
        {
            continue;
        }
        if image.contains('$') {
            skipped.push(Skipped {
                dockerfile: dockerfile.to_path_buf(),
                line: stage.line,
                reason: format!("FROM {image} uses a build argument without a default"),
            });
            continue;
        }
        bases.push(BaseImage {
            dockerfile: dockerfile.to_path_buf(),
            line: stage.line,
            image,
            platforms: Vec::new(),
        });
    }
    (bases, skipped)
}

/// The Dockerfiles under a folder (`Dockerfile`, `Dockerfile.*`, `*.Dockerfile`,
/// `Containerfile`), skipping `.git`, `target` and `node_modules`.
pub fn find_dockerfiles(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            !(e.file_type().is_dir() && matches!(name.as_ref(), ".git" | "target" | "node_modules"))
        })
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let name = e.file_name().to_string_lossy();
            name == "Dockerfile"
                || name == "Containerfile"
                || name.starts_with("Dockerfile.")
                || name.ends_with(".Dockerfile")
        })
        .map(|e| e.into_path())
        .collect();
    out.sort();
    out
}
