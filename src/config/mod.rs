//! The project file, `archbuild.toml`: finding it, reading it, and turning it into a checked
//! [`Project`] whose paths are absolute and whose defaults are filled in.
//!
//! Reading reports every problem at once, each as `FILE:LINE:COLUMN: message` (see
//! [`ConfigErrors`]). Parsing is pure except for asking whether the context folders and
//! Dockerfiles exist, which goes through [`Disk`] so that tests need no files.

mod diagnostic;
mod locate;
pub mod overrides;
mod raw;
pub use crate::reference;
mod resolve;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::platform::Platform;
use crate::reference::ImageRef;

pub use crate::oci::IndexFormat;
pub use diagnostic::{ConfigErrors, Diagnostic};
pub use locate::{locate, LocateError, FILE_NAME};

/// Platforms built when neither the image nor `[defaults]` lists any.
pub const DEFAULT_PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64"];

/// The OCI layout folder written when `[defaults] output` is not set, relative to the project.
pub const DEFAULT_OUTPUT: &str = ".archbuild/oci";

/// A checked project file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
    /// The project file, as it was given to [`load`] or [`parse_str`].
    pub file: PathBuf,
    /// The absolute folder of the project file; relative paths in it start here.
    pub dir: PathBuf,
    /// `[defaults] registry`: the prefix for images that name no repository.
    pub registry: Option<String>,
    /// `[defaults] platforms`, or [`DEFAULT_PLATFORMS`].
    pub default_platforms: Vec<Platform>,
    /// The images by name, each with its settings resolved.
    pub images: BTreeMap<String, Image>,
    /// `[builders]`: which daemon builds which platform.
    pub builders: Builders,
    /// `[defaults] index-format`.
    pub index_format: IndexFormat,
    /// `[defaults] output`, absolute: the OCI image layout folder.
    pub output: PathBuf,
    /// `[defaults] insecure-registries`: hosts spoken to over plain HTTP (loopback always is).
    pub insecure_registries: Vec<String>,
}

/// One `[images.NAME]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    /// The NAME of `[images.NAME]`.
    pub name: String,
    /// The build context folder, absolute.
    pub context: PathBuf,
    /// The Dockerfile, absolute (written relative to the context).
    pub dockerfile: PathBuf,
    /// The Dockerfile stage to build, if not the last.
    pub target: Option<String>,
    /// The repository pushed to: `repository`, else `REGISTRY/NAME`; `None` when the image
    /// has neither and is only ever named locally (by its NAME).
    pub repository: Option<ImageRef>,
    /// The tags, `["latest"]` by default.
    pub tags: Vec<String>,
    /// The platforms built: the image's, else `[defaults]`'s, else [`DEFAULT_PLATFORMS`].
    pub platforms: Vec<Platform>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub check: CheckSpec,
}

impl Image {
    /// The repository, or the image's NAME for an image that is only named locally.
    pub fn reference_base(&self) -> String {
        self.repository
            .as_ref()
            .map_or_else(|| self.name.clone(), ImageRef::familiar_name)
    }

    /// `REPOSITORY:TAG` for every tag (the NAME standing for the repository of an image that
    /// is only named locally, as `docker build -t NAME:TAG` names it).
    pub fn references(&self) -> Vec<ImageRef> {
        let base = match &self.repository {
            Some(repository) => repository.clone(),
            // The NAME was checked to be a path component when the project was read.
            None => ImageRef::local(&format!("library/{}", self.name), "latest"),
        };
        self.tags.iter().map(|t| base.with_tag(t)).collect()
    }
}

/// `check = { ignore = [...], binaries = [...] }` of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckSpec {
    /// Glob patterns of paths (as seen inside the image) that the content check skips.
    pub ignore: Vec<String>,
    /// Absolute paths of programs that must be in every platform's image.
    pub binaries: Vec<String>,
    /// `check.page-size`: the page size of the cluster's arm64 kernels (4096, 16384 or 65536).
    pub page_size: Option<u64>,
}

/// `[builders]`: daemon URLs by platform, and the ones for every other platform. An entry
/// with several URLs spreads its platform's jobs over them (see [`crate::plan`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Builders {
    pub by_platform: BTreeMap<Platform, Vec<String>>,
    pub default: Option<Vec<String>>,
}

/// What parsing asks of the file system: whether the context folders and Dockerfiles exist.
pub trait Disk {
    fn is_dir(&self, path: &Path) -> bool;
    fn is_file(&self, path: &Path) -> bool;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealDisk;

impl Disk for RealDisk {
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
}

/// Reads and checks a project file.
pub fn load(path: &Path) -> Result<Project, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::whole_file(path, format!("cannot read the project file: {e}"))
    })?;
    parse_str(&text, path)
}

/// Checks the text of a project file found at `file`, looking on disk for its context folders
/// and Dockerfiles.
pub fn parse_str(text: &str, file: &Path) -> Result<Project, ConfigErrors> {
    parse_with(text, file, &RealDisk)
}

/// Checks the text of a project file found at `file`, asking `disk` whether the context
/// folders and Dockerfiles exist. Relative paths start at the folder of `file` (made absolute
/// against the current folder if `file` is relative).
pub fn parse_with(text: &str, file: &Path, disk: &dyn Disk) -> Result<Project, ConfigErrors> {
    let parent = file.parent().unwrap_or(Path::new(""));
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let dir = std::path::absolute(parent)
        .map(|d| resolve::clean_join(&d, Path::new(".")))
        .unwrap_or_else(|_| parent.to_path_buf());
    let mut report = diagnostic::Report::new(file, text);
    let project = raw::read(text, &mut report)
        .map(|raw| resolve::resolve(raw, file, &dir, disk, &mut report));
    report.finish()?;
    project.ok_or_else(|| ConfigErrors::whole_file(file, "the project file could not be read"))
}

#[cfg(test)]
mod tests;
