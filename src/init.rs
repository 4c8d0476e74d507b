//! `archbuild init`'s library half: find the Dockerfiles under a folder, name an image after
//! each, and render a commented `archbuild.toml` from `templates/archbuild.toml.j2`.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// The template of the project file, compiled into the binary.
const TEMPLATE: &str = include_str!("../templates/archbuild.toml.j2");

/// Folders never searched for Dockerfiles.
pub const SKIPPED_DIRS: &[&str] = &[".git", "target", "node_modules", ".archbuild"];

/// A Dockerfile found, as an image of the project file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundImage {
    /// The NAME of `[images.NAME]`: lowercase letters, digits and `-`.
    pub name: String,
    /// The Dockerfile relative to the scanned folder, with `/`.
    pub path: String,
    /// The context folder relative to the scanned folder (`.` for itself).
    pub context: String,
    /// The Dockerfile relative to the context.
    pub dockerfile: String,
}

/// Why `init` could not write a project file.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("no Dockerfile found under {} (looked for Dockerfile, Dockerfile.*, *.Dockerfile; skipped {}); run init in the folder that holds your Dockerfiles", .0.display(), SKIPPED_DIRS.join(", "))]
    NoDockerfiles(PathBuf),
    #[error("{} already exists; pass --force to overwrite it, or --stdout to print the new one instead", .0.display())]
    Exists(PathBuf),
    #[error("cannot search {}: {source}", .path.display())]
    Scan {
        path: PathBuf,
        source: walkdir::Error,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot render the project file template: {0}")]
    Template(#[from] minijinja::Error),
}

/// Whether a file name is a Dockerfile: `Dockerfile`, `Dockerfile.NAME` or `NAME.Dockerfile`
/// (not the `.dockerignore` files BuildKit pairs with them).
pub fn is_dockerfile(file_name: &str) -> bool {
    !file_name.ends_with(".dockerignore")
        && (file_name == "Dockerfile"
            || file_name.starts_with("Dockerfile.")
            || file_name.ends_with(".Dockerfile"))
}

/// Finds the Dockerfiles under `root`, sorted by path, each named after its folder or its
/// suffix, names made unique.
pub fn scan(root: &Path) -> Result<Vec<FoundImage>, InitError> {
    let walker = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !(e.file_type().is_dir()
                    && SKIPPED_DIRS.contains(&e.file_name().to_string_lossy().as_ref()))
        });
    let root_name = root
        .file_name()
        .map_or("app".to_string(), |n| n.to_string_lossy().into_owned());
    let mut found: Vec<FoundImage> = Vec::new();
    for entry in walker {
        let entry = entry.map_err(|e| InitError::Scan {
            path: root.to_path_buf(),
            source: e,
        })?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if !entry.file_type().is_file() || !is_dockerfile(&file_name) {
            continue;
        }
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let folder = rel.parent().unwrap_or(Path::new(""));
        let context = slashes(folder);
        let mut name = image_name(&root_name, folder, &file_name);
        let base = name.clone();
        let mut n = 2;
        while found.iter().any(|f| f.name == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        found.push(FoundImage {
            name,
            path: slashes(rel),
            context: if context.is_empty() {
                ".".into()
            } else {
                context
            },
            dockerfile: file_name,
        });
    }
    if found.is_empty() {
        return Err(InitError::NoDockerfiles(root.to_path_buf()));
    }
    Ok(found)
}

/// `api/Dockerfile` → `api`; `Dockerfile.worker` → `worker`; `api/Dockerfile.dev` → `api-dev`;
/// `Dockerfile` at the top → the scanned folder's name.
pub fn image_name(root_name: &str, folder: &Path, file_name: &str) -> String {
    let suffix = file_name
        .strip_prefix("Dockerfile.")
        .or_else(|| file_name.strip_suffix(".Dockerfile"));
    let folder_name = folder.file_name().map(|n| n.to_string_lossy().into_owned());
    let raw = match (folder_name, suffix) {
        (None, Some(suffix)) => suffix.to_string(),
        (Some(folder), Some(suffix)) => format!("{folder}-{suffix}"),
        (Some(folder), None) => folder,
        (None, None) => root_name.to_string(),
    };
    let words: Vec<String> = raw
        .to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    if words.is_empty() {
        "app".to_string()
    } else {
        words.join("-")
    }
}

fn slashes(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The commented project file for these images.
pub fn render(images: &[FoundImage]) -> Result<String, InitError> {
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(true);
    // Strings go through TOML's own quoting, so any folder name stays a valid value.
    env.add_filter("toml", |s: String| toml::Value::String(s).to_string());
    env.add_template("archbuild.toml", TEMPLATE)?;
    let text = env
        .get_template("archbuild.toml")?
        .render(minijinja::context! { images => images })?;
    Ok(text)
}

/// Writes `text` to `path` whole or not at all; refuses to replace a file unless `force`.
pub fn write(path: &Path, text: &str, force: bool) -> Result<(), InitError> {
    if path.exists() && !force {
        return Err(InitError::Exists(path.to_path_buf()));
    }
    crate::atomic_file::write(path, text.as_bytes()).map_err(|source| InitError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_folders_and_suffixes() {
        assert_eq!(image_name("shop", Path::new(""), "Dockerfile"), "shop");
        assert_eq!(
            image_name("shop", Path::new("services/api"), "Dockerfile"),
            "api"
        );
        assert_eq!(
            image_name("shop", Path::new(""), "Dockerfile.worker"),
            "worker"
        );
        assert_eq!(
            image_name("shop", Path::new(""), "Cron_Job.Dockerfile"),
            "cron-job"
        );
        assert_eq!(
            image_name("shop", Path::new("web"), "Dockerfile.dev"),
            "web-dev"
        );
        assert!(is_dockerfile("Dockerfile.prod"));
        assert!(!is_dockerfile("Dockerfile.dockerignore"));
        assert!(!is_dockerfile("dockerfile-notes.md"));
    }

    #[test]
    fn scan_skips_build_folders_and_renders_a_valid_project() {
        let root = tempfile::tempdir().unwrap();
        let write = |rel: &str| {
            let p = root.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "FROM scratch\n").unwrap();
        };
        write("Dockerfile");
        write("api/Dockerfile");
        write("tools/x/api/Dockerfile");
        write("node_modules/pkg/Dockerfile");
        write("target/Dockerfile");
        write(".git/Dockerfile");
        let found = scan(root.path()).unwrap();
        let names: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.name.as_str(), f.path.as_str()))
            .collect();
        let top = image_name("", Path::new(""), "Dockerfile");
        assert_eq!(top, "app");
        let root_name = image_name(
            &root.path().file_name().unwrap().to_string_lossy(),
            Path::new(""),
            "Dockerfile",
        );
        assert_eq!(
            names,
            vec![
                (root_name.as_str(), "Dockerfile"),
                ("api", "api/Dockerfile"),
                ("api-2", "tools/x/api/Dockerfile"),
            ]
        );

        let text = render(&found).unwrap();
        let project = crate::config::parse_str(&text, &root.path().join("archbuild.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(project.images.len(), 3);
        assert_eq!(
            project.images["api-2"].context,
            root.path().join("tools/x/api")
        );
    }

    #[test]
    fn write_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archbuild.toml");
        write(&path, "a", false).unwrap();
        assert!(matches!(
            write(&path, "b", false),
            Err(InitError::Exists(_))
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a");
        write(&path, "c", true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "c");
    }
}
