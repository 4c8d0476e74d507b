//! `--check-bases`: the `FROM` images of the project's Dockerfiles, which must cover every
//! platform the project builds for. Parsing is pure; finding the Dockerfiles walks a folder.
//!
//! Not audited: `scratch`, a stage of the same Dockerfile, and a stage pinned to
//! `--platform=$BUILDPLATFORM` (it runs on the build host and only hands files over).

use std::collections::BTreeMap;
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
    let mut bases = Vec::new();
    let mut skipped = Vec::new();
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut seen_from = false;
    for (line, instruction) in instructions(text) {
        let mut words = instruction.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        let rest: Vec<&str> = words.collect();
        if keyword.eq_ignore_ascii_case("ARG") && !seen_from {
            for decl in &rest {
                if let Some((name, value)) = decl.split_once('=') {
                    args.insert(name.into(), value.trim_matches('"').into());
                }
            }
            continue;
        }
        if !keyword.eq_ignore_ascii_case("FROM") {
            continue;
        }
        seen_from = true;
        let platform = rest.iter().find_map(|w| w.strip_prefix("--platform="));
        let Some(image) = rest.iter().find(|w| !w.starts_with("--")) else {
            continue;
        };
        let alias = rest
            .iter()
            .position(|w| w.eq_ignore_ascii_case("AS"))
            .and_then(|i| rest.get(i + 1))
            .map(|a| a.to_ascii_lowercase());
        let image = substitute(image, &args);
        let is_stage = stages.contains(&image.to_ascii_lowercase());
        stages.extend(alias);
        if platform.is_some_and(|p| p.contains("BUILDPLATFORM"))
            || image.eq_ignore_ascii_case("scratch")
            || is_stage
        {
            continue;
        }
        if image.contains('$') {
            skipped.push(Skipped {
                dockerfile: dockerfile.to_path_buf(),
                line,
                reason: format!("FROM {image} uses a build argument without a default"),
            });
            continue;
        }
        bases.push(BaseImage {
            dockerfile: dockerfile.to_path_buf(),
            line,
            image,
            platforms: Vec::new(),
        });
    }
    (bases, skipped)
}

/// Instructions with their first line, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') && current.is_none() {
            continue;
        }
        let (body, continued) = match trimmed.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (trimmed, false),
        };
        let entry = current.get_or_insert_with(|| (i + 1, String::new()));
        entry.1.push_str(body);
        entry.1.push(' ');
        if !continued {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

/// `$NAME` and `${NAME}` replaced by global `ARG` defaults.
fn substitute(word: &str, args: &BTreeMap<String, String>) -> String {
    let mut s = word.to_string();
    for (name, value) in args {
        s = s
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    s
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
