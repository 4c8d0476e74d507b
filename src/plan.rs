//! The build plan: every image × platform of the project as a [`Job`], each with the daemon
//! that builds it (and why), its inputs, and the references it ends up under. Pure apart from
//! reading the Docker context store through [`EndpointEnv`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::{Image, Project};
use crate::endpoint::{self, Endpoint, EndpointEnv, EndpointError};
use crate::platform::Platform;
use crate::reference::ImageRef;

/// Every build job, image by image (in name order), platform by platform (as listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub jobs: Vec<Job>,
}

/// One image built for one platform: what `plan` shows and what `buildkit` builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    /// The NAME of `[images.NAME]`.
    pub image: String,
    pub platform: Platform,
    /// The daemon that builds it, and which setting chose that daemon.
    pub builder: Endpoint,
    /// The platform's other builders, in the order they take this job when `builder` does not
    /// answer (empty unless `[builders]` lists several URLs for the platform).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternates: Vec<Endpoint>,
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// `REPOSITORY:TAG` for each tag: where the multi-platform index ends up.
    pub references: Vec<ImageRef>,
    /// The name this platform's image gets in the builder daemon
    /// (`archbuild-local/NAME:TAG-linux-arm64`), before the index is assembled.
    pub platform_tag: ImageRef,
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("no image \"{name}\" in {file}{}; the images are: {}", suggestion(.name, .known), .known.join(", "))]
    UnknownImage {
        name: String,
        file: String,
        known: Vec<String>,
    },
    #[error("cannot choose a builder for {image} {platform}: {source}")]
    Endpoint {
        image: String,
        platform: Platform,
        #[source]
        source: Box<EndpointError>,
    },
}

fn suggestion(name: &str, known: &[String]) -> String {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!(" (did you mean \"{k}\"?)"))
        .unwrap_or_default()
}

/// Expands the project into jobs: every image (or only those named in `only`) for each of its
/// platforms, each with its builder endpoint resolved.
pub fn expand(project: &Project, env: &EndpointEnv, only: &[String]) -> Result<Plan, PlanError> {
    let file_label = project.file.file_name().map_or_else(
        || project.file.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    for name in only {
        if !project.images.contains_key(name) {
            return Err(PlanError::UnknownImage {
                name: name.clone(),
                file: file_label,
                known: project.images.keys().cloned().collect(),
            });
        }
    }
    let mut jobs = Vec::new();
    let mut seen: BTreeMap<Platform, usize> = BTreeMap::new();
    for image in project.images.values() {
        if !only.is_empty() && !only.contains(&image.name) {
            continue;
        }
        for platform in &image.platforms {
            let builders = endpoint::resolve(&project.builders, &file_label, platform, env)
                .map_err(|source| PlanError::Endpoint {
                    image: image.name.clone(),
                    platform: platform.clone(),
                    source: Box::new(source),
                })?;
            let turn = seen.entry(platform.clone()).or_default();
            jobs.push(job(image, platform, in_turn(builders, *turn)));
            *turn += 1;
        }
    }
    Ok(Plan { jobs })
}

/// The builders of a platform as its `turn`-th job uses them: the platform's jobs go to its
/// builders in turn (round-robin, in image order), and each job's alternates follow its own
/// builder in the same rotation, so a builder that is down spreads its jobs over the others.
fn in_turn(mut builders: Vec<Endpoint>, turn: usize) -> (Endpoint, Vec<Endpoint>) {
    let count = builders.len();
    builders.rotate_left(turn % count.max(1));
    let mut builders = builders.into_iter();
    let first = builders
        .next()
        .expect("endpoint::resolve returns at least one builder");
    (first, builders.collect())
}

fn job(
    image: &Image,
    platform: &Platform,
    (builder, alternates): (Endpoint, Vec<Endpoint>),
) -> Job {
    Job {
        image: image.name.clone(),
        platform: platform.clone(),
        builder,
        alternates,
        context: image.context.clone(),
        dockerfile: image.dockerfile.clone(),
        target: image.target.clone(),
        build_args: image.build_args.clone(),
        labels: image.labels.clone(),
        references: image.references(),
        platform_tag: platform_tag(image, platform),
    }
}

/// `archbuild-local/NAME:TAG-os-arch[-variant]`: a valid, per-job name for the daemon, whatever
/// the image is called, so that jobs never overwrite each other's tags.
pub fn platform_tag(image: &Image, platform: &Platform) -> ImageRef {
    let name = path_component(&image.name);
    let suffix = platform.to_string().replace('/', "-");
    let first = image.tags.first().map_or("latest", String::as_str);
    let room = 128 - suffix.len() - 1;
    let tag: String = first.chars().take(room).collect();
    ImageRef::local(
        &format!("archbuild-local/{name}"),
        &format!("{tag}-{suffix}"),
    )
}

/// The image name folded into a repository path component: lowercase letters and digits
/// joined by single `-`.
fn path_component(name: &str) -> String {
    let folded: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let joined = folded
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if joined.is_empty() {
        "image".to_string()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Disk};
    use std::path::Path;

    struct Everything;
    impl Disk for Everything {
        fn is_dir(&self, _: &Path) -> bool {
            true
        }
        fn is_file(&self, _: &Path) -> bool {
            true
        }
    }

    fn project() -> Project {
        let text = r#"
[images.api]
repository = "ghcr.io/acme/api"
tags = ["1.8.0", "latest"]
platforms = ["linux/amd64", "linux/arm64"]
[images.Web_UI]
repository = "ghcr.io/acme/web"
platforms = ["linux/arm/v7"]
[builders]
"linux/arm64" = "ssh://ci@arm-builder"
"#;
        config::parse_with(text, Path::new("/p/archbuild.toml"), &Everything).unwrap()
    }

    fn env() -> EndpointEnv {
        EndpointEnv {
            docker_host: Some("tcp://127.0.0.1:2375".into()),
            ..EndpointEnv::default()
        }
    }

    #[test]
    fn jobs_cover_every_image_and_platform_with_their_builders() {
        let plan = expand(&project(), &env(), &[]).unwrap();
        let rows: Vec<(String, String, String, String)> = plan
            .jobs
            .iter()
            .map(|j| {
                let b = &j.builder;
                (
                    j.image.clone(),
                    j.platform.to_string(),
                    b.url.clone(),
                    j.platform_tag.to_string(),
                )
            })
            .collect();
        let row = |a: &str, b: &str, c: &str, d: &str| (a.into(), b.into(), c.into(), d.into());
        assert_eq!(
            rows,
            vec![
                row(
                    "Web_UI",
                    "linux/arm/v7",
                    "tcp://127.0.0.1:2375",
                    "archbuild-local/web-ui:latest-linux-arm-v7"
                ),
                row(
                    "api",
                    "linux/amd64",
                    "tcp://127.0.0.1:2375",
                    "archbuild-local/api:1.8.0-linux-amd64"
                ),
                row(
                    "api",
                    "linux/arm64",
                    "ssh://ci@arm-builder",
                    "archbuild-local/api:1.8.0-linux-arm64"
                ),
            ]
        );
        assert_eq!(
            plan.jobs[2].builder.chosen_by,
            "archbuild.toml [builders] \"linux/arm64\""
        );
        assert_eq!(
            crate::reference::list(&plan.jobs[1].references),
            "ghcr.io/acme/api:1.8.0, ghcr.io/acme/api:latest"
        );
    }

    #[test]
    fn only_filters_and_unknown_names_are_refused() {
        let plan = expand(&project(), &env(), &["api".to_string()]).unwrap();
        assert_eq!(plan.jobs.len(), 2);
        let err = expand(&project(), &env(), &["apii".to_string()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no image \"apii\" in archbuild.toml (did you mean \"api\"?); the images are: Web_UI, api"
        );
    }

    #[test]
    fn a_platforms_jobs_go_to_its_builders_in_turn() {
        let text = r#"
[defaults]
platforms = ["linux/arm64", "linux/amd64"]
[images.a]
[images.b]
[images.c]
[builders]
"linux/arm64" = ["ssh://ci@arm1", "ssh://ci@arm2"]
"#;
        let project =
            config::parse_with(text, Path::new("/p/archbuild.toml"), &Everything).unwrap();
        let plan = expand(&project, &env(), &[]).unwrap();
        let arm: Vec<(&str, &str, Vec<&str>)> = plan
            .jobs
            .iter()
            .filter(|j| j.platform.to_string() == "linux/arm64")
            .map(|j| {
                let alternates = j.alternates.iter().map(|e| e.url.as_str()).collect();
                (j.image.as_str(), j.builder.url.as_str(), alternates)
            })
            .collect();
        assert_eq!(
            arm,
            vec![
                ("a", "ssh://ci@arm1", vec!["ssh://ci@arm2"]),
                ("b", "ssh://ci@arm2", vec!["ssh://ci@arm1"]),
                ("c", "ssh://ci@arm1", vec!["ssh://ci@arm2"]),
            ]
        );
        assert_eq!(
            plan.jobs[0].builder.chosen_by,
            "archbuild.toml [builders] \"linux/arm64\", builder 1 of 2"
        );
        let amd = plan
            .jobs
            .iter()
            .filter(|j| j.platform.to_string() == "linux/amd64");
        assert!(amd
            .into_iter()
            .all(|j| j.alternates.is_empty() && j.builder.url == "tcp://127.0.0.1:2375"));
    }
}
