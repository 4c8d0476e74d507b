//! The `docker build` flags of `archbuild build` (`-t`, `-f`, `--build-arg`, `--target`,
//! `--label`, `--platform`): without a project file they describe the one image to build
//! from a context folder, with the defaults of a one-image `archbuild.toml`; with one they
//! override the selected image's values for that run, as `docker buildx bake --set` does.
//! Pure: the file system is only asked whether the Dockerfile exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Builders, CheckSpec, Image, Project, DEFAULT_OUTPUT, DEFAULT_PLATFORMS};
use crate::platform::Platform;
use crate::reference::ImageRef;

/// The flags as given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `-t REF`, each `[REGISTRY/]REPOSITORY[:TAG]`.
    pub tags: Vec<String>,
    /// `-f FILE`, relative to the current folder as `docker build` has it.
    pub dockerfile: Option<PathBuf>,
    /// `--build-arg K=V`, or `K` alone for the value of the environment variable `K`.
    pub build_args: Vec<String>,
    pub target: Option<String>,
    /// `--label K=V` (`K` alone: an empty value).
    pub labels: Vec<String>,
    /// `--platform LIST`, comma-separated.
    pub platforms: Option<String>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }
}

/// The project `docker build [flags] CONTEXT` stands for, run from `cwd`; `env` looks up
/// `--build-arg K` without a value. Errors say which flag is wrong and what would be right.
pub fn project_for_context(
    context: &Path,
    cwd: &Path,
    o: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Project, String> {
    let context = super::resolve::clean_join(cwd, context);
    if !context.is_dir() {
        return Err(format!(
            "the build context {} is not a folder; give the folder holding the Dockerfile (`archbuild build .`)",
            context.display()
        ));
    }
    let (repository, tags) = references(&o.tags)?;
    let name = image_name(repository.as_ref(), &context);
    let platforms = match &o.platforms {
        Some(list) => platforms(list)?,
        None => DEFAULT_PLATFORMS
            .iter()
            .map(|p| Platform::parse(p).expect("the default platforms parse"))
            .collect(),
    };
    let mut image = Image {
        name: name.clone(),
        dockerfile: context.join("Dockerfile"),
        context,
        target: None,
        repository,
        tags: if tags.is_empty() {
            vec!["latest".into()]
        } else {
            tags
        },
        platforms: platforms.clone(),
        build_args: BTreeMap::new(),
        labels: BTreeMap::new(),
        check: CheckSpec::default(),
    };
    let overrides = Overrides {
        tags: Vec::new(),
        platforms: None,
        ..o.clone()
    };
    apply_to(&mut image, cwd, &overrides, env)?;
    Ok(Project {
        file: cwd.join("(command line)"),
        dir: cwd.to_path_buf(),
        registry: None,
        default_platforms: platforms,
        images: BTreeMap::from([(name, image)]),
        builders: Builders::default(),
        index_format: Default::default(),
        output: cwd.join(DEFAULT_OUTPUT),
        insecure_registries: Vec::new(),
    })
}

/// Applies the flags to the images `selected` (all when empty) of `project`. `-t` names one
/// image's repository and tags, so it needs exactly one image.
pub fn apply(
    project: &mut Project,
    selected: &[String],
    cwd: &Path,
    o: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let names: Vec<String> = if selected.is_empty() {
        project.images.keys().cloned().collect()
    } else {
        selected.to_vec()
    };
    if !o.tags.is_empty() && names.len() != 1 {
        return Err(format!(
            "-t names the repository of one image, and this run builds {} ({}); name the image to build (`archbuild build IMAGE -t REF`)",
            names.len(),
            names.join(", ")
        ));
    }
    for name in &names {
        // Unknown names are reported by the plan, with a suggestion.
        let Some(image) = project.images.get_mut(name) else {
            continue;
        };
        if !o.tags.is_empty() {
            let (repository, tags) = references(&o.tags)?;
            image.repository = repository;
            image.tags = tags;
        }
        if let Some(list) = &o.platforms {
            image.platforms = platforms(list)?;
        }
        apply_to(image, cwd, o, env)?;
    }
    Ok(())
}

/// `-f`, `--build-arg`, `--target` and `--label` on one image.
fn apply_to(
    image: &mut Image,
    cwd: &Path,
    o: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    if let Some(file) = &o.dockerfile {
        image.dockerfile = super::resolve::clean_join(cwd, file);
    }
    if !image.dockerfile.is_file() {
        return Err(format!(
            "no Dockerfile at {}; give its path with -f FILE",
            image.dockerfile.display()
        ));
    }
    if let Some(target) = &o.target {
        image.target = Some(target.clone());
    }
    for arg in &o.build_args {
        let (key, value) = pair("--build-arg", arg)?;
        // As docker: `--build-arg K` takes K from the environment, and is left out if unset.
        if let Some(value) = value.map(str::to_string).or_else(|| env(key)) {
            image.build_args.insert(key.to_string(), value);
        }
    }
    for label in &o.labels {
        let (key, value) = pair("--label", label)?;
        image
            .labels
            .insert(key.to_string(), value.unwrap_or("").to_string());
    }
    Ok(())
}

/// `K=V` or `K`.
fn pair<'a>(flag: &str, text: &'a str) -> Result<(&'a str, Option<&'a str>), String> {
    let (key, value) = match text.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (text, None),
    };
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(format!(
            "{flag} {text:?}: expected KEY=VALUE, with a key that is not empty and has no spaces"
        ));
    }
    Ok((key, value))
}

/// The repository and tags of the `-t` flags, which must share one repository.
fn references(refs: &[String]) -> Result<(Option<ImageRef>, Vec<String>), String> {
    let mut repository: Option<ImageRef> = None;
    let mut tags = Vec::new();
    for text in refs {
        let parsed: ImageRef = text
            .parse()
            .map_err(|e| format!("-t {text}: {e}; expected [REGISTRY/]REPOSITORY[:TAG]"))?;
        if parsed.digest().is_some() {
            return Err(format!(
                "-t {text}: a digest cannot be a tag; expected [REGISTRY/]REPOSITORY[:TAG]"
            ));
        }
        let base =
            ImageRef::parse_repository(&parsed.name()).map_err(|e| format!("-t {text}: {e}"))?;
        match &repository {
            Some(r) if *r != base => {
                return Err(format!(
                    "-t {text}: every -t of one build names the same repository ({}); to publish to several, write an archbuild.toml with one image per repository",
                    r.familiar_name()
                ))
            }
            _ => repository = Some(base),
        }
        let tag = parsed.tag().unwrap_or("latest").to_string();
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Ok((repository, tags))
}

fn platforms(list: &str) -> Result<Vec<Platform>, String> {
    let mut out = Vec::new();
    for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let platform = Platform::parse(p).map_err(|e| format!("--platform {p}: {e}"))?;
        if !out.contains(&platform) {
            out.push(platform);
        }
    }
    if out.is_empty() {
        return Err(
            "--platform: no platform given; e.g. --platform linux/amd64,linux/arm64".into(),
        );
    }
    Ok(out)
}

/// The image's NAME: the repository's last component, else the context folder's name, made
/// of the characters a NAME may have.
fn image_name(repository: Option<&ImageRef>, context: &Path) -> String {
    let source = match repository {
        Some(r) => r.repository().rsplit('/').next().unwrap_or("").to_string(),
        None => context
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default(),
    };
    let name: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if name.is_empty() {
        "image".into()
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_share_one_repository_and_default_to_latest() {
        let refs = |r: &[&str]| references(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let (repo, tags) = refs(&["app:1", "app", "docker.io/library/app:2"]).unwrap();
        assert_eq!(repo.unwrap().name(), "docker.io/library/app");
        assert_eq!(tags, ["1", "latest", "2"]);
        let err = refs(&["reg.io/a:1", "reg.io/b:1"]).unwrap_err();
        assert!(err.contains("same repository (reg.io/a)"), "{err}");
        let digest = format!("app@sha256:{}", "a".repeat(64));
        assert!(refs(&[&digest])
            .unwrap_err()
            .contains("a digest cannot be a tag"));
        assert!(refs(&["team/UPPER"])
            .unwrap_err()
            .starts_with("-t team/UPPER: "));
    }

    #[test]
    fn names_come_from_the_repository_or_the_context_folder() {
        let r: ImageRef = "reg.io/team/web-app:1".parse().unwrap();
        assert_eq!(image_name(Some(&r), Path::new("/x")), "web-app");
        assert_eq!(image_name(None, Path::new("/src/My Service")), "my-service");
        assert_eq!(image_name(None, Path::new("/")), "image");
    }

    #[test]
    fn build_args_and_labels_take_docker_forms() {
        assert_eq!(pair("--label", "a=b=c").unwrap(), ("a", Some("b=c")));
        assert_eq!(
            pair("--build-arg", "HTTP_PROXY").unwrap(),
            ("HTTP_PROXY", None)
        );
        assert!(pair("--build-arg", "=x").unwrap_err().contains("KEY=VALUE"));
        assert!(pair("--label", "a b=c").is_err());
        assert_eq!(
            platforms("linux/arm64, linux/amd64,linux/arm64")
                .unwrap()
                .len(),
            2
        );
        assert!(platforms(",").unwrap_err().contains("no platform given"));
    }

    #[test]
    fn a_context_becomes_a_one_image_project() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("svc")).unwrap();
        std::fs::write(dir.path().join("svc/Dockerfile"), "FROM scratch\n").unwrap();
        let o = Overrides {
            build_args: vec!["FROM_ENV".into(), "UNSET".into(), "V=1".into()],
            labels: vec!["team".into()],
            ..Default::default()
        };
        let env = |k: &str| (k == "FROM_ENV").then(|| "yes".to_string());
        let p = project_for_context(Path::new("svc"), dir.path(), &o, &env).unwrap();
        let image = &p.images["svc"];
        assert_eq!(image.tags, ["latest"]);
        assert_eq!(image.repository, None);
        assert_eq!(image.platforms.len(), 2);
        assert_eq!(image.dockerfile, dir.path().join("svc/Dockerfile"));
        let args: Vec<(&str, &str)> = image
            .build_args
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(args, [("FROM_ENV", "yes"), ("V", "1")]);
        assert_eq!(image.labels["team"], "");
        assert_eq!(p.output, dir.path().join(".archbuild/oci"));
    }
}
