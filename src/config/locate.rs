//! Finding the project file: `--config FILE`, else `archbuild.toml` in the current folder or
//! the nearest parent that has one (the way git finds `.git`).

use std::path::{Path, PathBuf};

/// The project file's name.
pub const FILE_NAME: &str = "archbuild.toml";

/// Why no project file was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocateError {
    #[error("--config {}: no such file", .0.display())]
    ExplicitMissing(PathBuf),
    #[error(
        "no {FILE_NAME} in {} or any parent folder (looked in {}); run `archbuild init` to write one, or pass --config FILE",
        .cwd.display(),
        .looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound { cwd: PathBuf, looked: Vec<PathBuf> },
}

/// The project file to use: `explicit` (relative to `cwd`) if given, else the nearest
/// `archbuild.toml` from `cwd` upwards.
pub fn locate(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf, LocateError> {
    if let Some(path) = explicit {
        let full = cwd.join(path);
        return if full.is_file() {
            Ok(full)
        } else {
            Err(LocateError::ExplicitMissing(path.to_path_buf()))
        };
    }
    let mut looked = Vec::new();
    for dir in cwd.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(dir.to_path_buf());
    }
    Err(LocateError::NotFound {
        cwd: cwd.to_path_buf(),
        looked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_parent_and_prefers_explicit() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(root.path().join(FILE_NAME), "").unwrap();
        assert_eq!(locate(None, &deep).unwrap(), root.path().join(FILE_NAME));

        std::fs::write(deep.join("other.toml"), "").unwrap();
        let explicit = locate(Some(Path::new("other.toml")), &deep).unwrap();
        assert_eq!(explicit, deep.join("other.toml"));

        let missing = locate(Some(Path::new("nope.toml")), &deep).unwrap_err();
        assert_eq!(missing.to_string(), "--config nope.toml: no such file");
    }

    #[test]
    fn not_found_says_where_it_looked_and_suggests_init() {
        let root = tempfile::tempdir().unwrap();
        let err = locate(None, root.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("looked in {}", root.path().display())),
            "{err}"
        );
        assert!(err.contains("run `archbuild init`"), "{err}");
    }
}
