//! From the sections as written to a checked [`Project`]: platforms parsed, names and tags
//! checked, paths made absolute, defaults filled in. Every problem is reported, not just the
//! first; a value with a problem is left out of the result (which is then discarded).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde_spanned::Spanned;

use super::diagnostic::Report;
use super::raw::{RawCheck, RawImage, RawProject, SpannedList};
use super::{
    Builders, CheckSpec, Disk, Image, IndexFormat, Project, DEFAULT_OUTPUT, DEFAULT_PLATFORMS,
};
use crate::platform::Platform;
use crate::reference;
use crate::reference::ImageRef;

pub(crate) fn resolve(
    raw: RawProject,
    file: &Path,
    dir: &Path,
    disk: &dyn Disk,
    report: &mut Report,
) -> Project {
    let d = raw.defaults;
    let default_platforms = match &d.platforms {
        Some(list) => platforms(list, "[defaults] platforms", report),
        None => DEFAULT_PLATFORMS
            .iter()
            .filter_map(|p| Platform::parse(p).ok())
            .collect(),
    };
    let registry = d.registry.as_ref().and_then(|r| {
        let value = r.get_ref().trim_end_matches('/').to_string();
        checked(report, &r.span(), reference::check_registry(r.get_ref())).map(|_| value)
    });
    let index_format = d
        .index_format
        .as_ref()
        .map_or(IndexFormat::Oci, |f| index_format(f, report));
    let output = d
        .output
        .as_ref()
        .map_or(Path::new(DEFAULT_OUTPUT), |o| Path::new(o.get_ref()));
    let insecure_registries = d
        .insecure_registries
        .iter()
        .filter_map(|h| {
            checked(
                report,
                &h.span(),
                reference::check_insecure_host(h.get_ref()),
            )
            .map(|_| h.get_ref().clone())
        })
        .collect();

    if raw.images_declared == 0 {
        let span = raw.images_span.clone().unwrap_or(0..0);
        report.at(
            &span,
            "no images: add an [images.NAME] table with context = \"FOLDER\" (`archbuild init` writes one per Dockerfile)",
        );
    }
    let settings = Settings {
        dir,
        disk,
        registry: registry.as_deref(),
        default_platforms: &default_platforms,
    };
    let images = settings.images(raw.images, report);

    Project {
        file: file.to_path_buf(),
        dir: dir.to_path_buf(),
        registry,
        default_platforms,
        images,
        builders: builders(raw.builders, report),
        index_format,
        output: clean_join(dir, output),
        insecure_registries,
    }
}

/// Where each tag of an image is first written (the default tag has no place of its own).
fn tag_spans(image: &RawImage, name: &Spanned<String>) -> HashMap<String, Range<usize>> {
    let mut spans = HashMap::new();
    for tag in image.tags.iter().flat_map(|t| t.get_ref()) {
        spans.entry(tag.get_ref().clone()).or_insert(tag.span());
    }
    spans.entry("latest".to_string()).or_insert(name.span());
    spans
}

/// What every image inherits from `[defaults]`.
struct Settings<'a> {
    dir: &'a Path,
    disk: &'a dyn Disk,
    registry: Option<&'a str>,
    default_platforms: &'a [Platform],
}

impl Settings<'_> {
    /// Every image, each reference written by one image only.
    fn images(
        &self,
        raw: Vec<(Spanned<String>, RawImage)>,
        report: &mut Report,
    ) -> BTreeMap<String, Image> {
        let mut images = BTreeMap::new();
        let mut written: HashMap<ImageRef, (String, usize)> = HashMap::new();
        for (name, raw_image) in raw {
            let tag_spans = tag_spans(&raw_image, &name);
            let image = self.image(&name, raw_image, report);
            for (tag, reference) in image.tags.iter().zip(image.references()) {
                let span = tag_spans.get(tag).cloned().unwrap_or(name.span());
                if let Some((other, at)) = written.get(&reference) {
                    let msg = format!(
                        "\"{reference}\" is also written by [images.{other}] ({}); give each image its own repository or tags",
                        report.describe(*at)
                    );
                    report.at(&span, msg);
                } else {
                    written.insert(reference, (image.name.clone(), span.start));
                }
            }
            images.insert(image.name.clone(), image);
        }
        images
    }

    fn image(&self, name: &Spanned<String>, raw: RawImage, report: &mut Report) -> Image {
        let title = format!("[images.{}]", name.get_ref());
        let context_rel = raw.context.as_ref().map_or(".", |c| c.get_ref().as_str());
        let context = clean_join(self.dir, Path::new(context_rel));
        let dockerfile_rel = raw
            .dockerfile
            .as_ref()
            .map_or("Dockerfile", |d| d.get_ref().as_str());
        let dockerfile = clean_join(&context, Path::new(dockerfile_rel));
        if !self.disk.is_dir(&context) {
            let at = raw.context.as_ref().map_or(name.span(), |c| c.span());
            report.at(
                &at,
                format!(
                    "{title} context folder \"{context_rel}\" does not exist ({} is not a folder); context is relative to the folder of the project file",
                    context.display()
                ),
            );
        } else if !self.disk.is_file(&dockerfile) {
            let at = raw.dockerfile.as_ref().map_or(name.span(), |d| d.span());
            report.at(
                &at,
                format!(
                    "{title} Dockerfile \"{dockerfile_rel}\" not found at {}; dockerfile is relative to the context folder",
                    dockerfile.display()
                ),
            );
        }
        let target = raw.target.as_ref().and_then(|t| {
            if t.get_ref().trim().is_empty() {
                report.at(&t.span(), format!("{title} target is empty; name a build stage (FROM ... AS NAME) or leave target out"));
                None
            } else {
                Some(t.get_ref().clone())
            }
        });
        let repository = self.repository(name, &title, raw.repository.as_ref(), report);
        let platforms = match &raw.platforms {
            Some(list) => platforms(list, &format!("{title} platforms"), report),
            None => self.default_platforms.to_vec(),
        };
        Image {
            name: name.get_ref().clone(),
            context,
            dockerfile,
            target,
            repository,
            tags: tags(raw.tags.as_ref(), &title, report),
            platforms,
            build_args: raw.build_args,
            labels: raw.labels,
            check: check(raw.check, &title, report),
        }
    }

    fn repository(
        &self,
        name: &Spanned<String>,
        title: &str,
        explicit: Option<&Spanned<String>>,
        report: &mut Report,
    ) -> Option<ImageRef> {
        if let Some(repo) = explicit {
            let result = ImageRef::parse_repository(repo.get_ref());
            let result = result.map_err(|why| format!("{title} {why}"));
            return checked(report, &repo.span(), result);
        }
        let derived = self.registry.map(|r| format!("{r}/{}", name.get_ref()));
        let shown = derived.as_deref().unwrap_or(name.get_ref());
        if !reference::is_path_component(name.get_ref()) {
            let fix = "set repository = \"...\" for it, or rename the image with lowercase letters, digits, \".\", \"_\" or \"-\"";
            report.at(
                &name.span(),
                format!(
                    "{title} image name \"{}\" cannot be used in the repository \"{shown}\"; {fix}",
                    name.get_ref()
                ),
            );
        }
        derived.and_then(|d| ImageRef::parse_repository(&d).ok())
    }
}

fn tags(raw: Option<&SpannedList>, title: &str, report: &mut Report) -> Vec<String> {
    let Some(list) = raw else {
        return vec!["latest".to_string()];
    };
    if list.get_ref().is_empty() {
        report.at(
            &list.span(),
            format!(
                "{title} tags is empty; list at least one tag, or leave tags out for [\"latest\"]"
            ),
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for tag in list.get_ref() {
        let value = tag.get_ref().as_str();
        if let Some(first) = seen.get(value) {
            let msg = format!(
                "{title} tag \"{value}\" is listed twice (first at {}); remove one",
                report.describe(*first)
            );
            report.at(&tag.span(), msg);
            continue;
        }
        seen.insert(value, tag.span().start);
        let result = reference::check_tag(value).map_err(|why| format!("{title} {why}"));
        if checked(report, &tag.span(), result).is_some() {
            out.push(value.to_string());
        }
    }
    out
}

/// Parses a platform list, reporting unknown, empty and repeated entries.
fn platforms(list: &SpannedList, what: &str, report: &mut Report) -> Vec<Platform> {
    if list.get_ref().is_empty() {
        report.at(
            &list.span(),
            format!("{what} is empty; list at least one platform, e.g. [\"linux/amd64\", \"linux/arm64\"]"),
        );
    }
    let mut out: Vec<(Platform, usize)> = Vec::new();
    for entry in list.get_ref() {
        let written = entry.get_ref();
        match Platform::parse(written) {
            Err(e) => report.at(&entry.span(), e.to_string()),
            Ok(p) => match out.iter().find(|(q, _)| *q == p) {
                Some((_, first)) => {
                    let first = report.describe(*first);
                    let msg = if *written == p.to_string() {
                        format!("platform \"{p}\" is listed twice (first at {first}); remove one")
                    } else {
                        format!(
                            "platform \"{written}\" is {p}, already listed at {first}; remove one"
                        )
                    };
                    report.at(&entry.span(), msg);
                }
                None => out.push((p, entry.span().start)),
            },
        }
    }
    out.into_iter().map(|(p, _)| p).collect()
}

fn index_format(value: &Spanned<String>, report: &mut Report) -> IndexFormat {
    match value.get_ref().as_str() {
        "oci" => IndexFormat::Oci,
        "docker" => IndexFormat::Docker,
        other => {
            let guess = ["oci", "docker"]
                .into_iter()
                .find(|k| strsim::damerau_levenshtein(&other.to_ascii_lowercase(), k) <= 2)
                .map(|k| format!("did you mean \"{k}\"? "))
                .unwrap_or_default();
            report.at(
                &value.span(),
                format!(
                    "index-format \"{other}\" is not supported; {guess}use \"oci\" or \"docker\""
                ),
            );
            IndexFormat::Oci
        }
    }
}

fn check(raw: RawCheck, title: &str, report: &mut Report) -> CheckSpec {
    let mut spec = CheckSpec::default();
    for pattern in raw.ignore {
        match globset::Glob::new(pattern.get_ref()) {
            Ok(_) => spec.ignore.push(pattern.into_inner()),
            Err(e) => report.at(
                &pattern.span(),
                format!(
                    "{title} check.ignore pattern \"{}\" is not a valid glob: {}",
                    pattern.get_ref(),
                    e.kind()
                ),
            ),
        }
    }
    for binary in raw.binaries {
        if binary.get_ref().starts_with('/') {
            spec.binaries.push(binary.into_inner());
        } else {
            let value = binary.get_ref();
            report.at(
                &binary.span(),
                format!("{title} check.binaries entry \"{value}\" is not an absolute path; did you mean \"/{value}\"?"),
            );
        }
    }
    if let Some(size) = raw.page_size {
        match *size.get_ref() {
            n @ (4096 | 16384 | 65536) => spec.page_size = Some(n as u64),
            n => report.at(
                &size.span(),
                format!("{title} check.page-size {n} is not a page size arm64 kernels use; expected 4096, 16384 or 65536"),
            ),
        }
    }
    spec
}

fn builders(raw: Vec<(Spanned<String>, Vec<Spanned<String>>)>, report: &mut Report) -> Builders {
    let mut out = Builders::default();
    let mut keys: Vec<(Platform, usize)> = Vec::new();
    for (key, urls) in raw {
        let urls = builder_urls(key.get_ref(), urls, report);
        if key.get_ref() == "default" {
            out.default = urls;
            continue;
        }
        match Platform::parse(key.get_ref()) {
            Err(e) => report.at(
                &key.span(),
                format!("[builders] key: {e}; a key is a platform or \"default\""),
            ),
            Ok(p) => {
                if let Some((_, first)) = keys.iter().find(|(q, _)| *q == p) {
                    let msg = format!(
                        "[builders] \"{}\" is {p}, which already has a builder at {}; remove one",
                        key.get_ref(),
                        report.describe(*first)
                    );
                    report.at(&key.span(), msg);
                    continue;
                }
                keys.push((p.clone(), key.span().start));
                if let Some(urls) = urls {
                    out.by_platform.insert(p, urls);
                }
            }
        }
    }
    out
}

/// The checked URLs of one `[builders]` entry; `None` when one of them is wrong (reported).
fn builder_urls(key: &str, urls: Vec<Spanned<String>>, report: &mut Report) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for url in urls {
        if checked(
            report,
            &url.span(),
            reference::check_builder_url(url.get_ref()),
        )
        .is_none()
        {
            ok = false;
        } else if out.contains(url.get_ref()) {
            let msg = format!(
                "[builders] \"{key}\" lists {} twice; remove one",
                url.get_ref()
            );
            report.at(&url.span(), msg);
            ok = false;
        } else {
            out.push(url.into_inner());
        }
    }
    ok.then_some(out)
}

/// Reports an error result at `span`; `Some(())` when there was none.
fn checked<T>(report: &mut Report, span: &Range<usize>, result: Result<T, String>) -> Option<T> {
    result.map_err(|message| report.at(span, message)).ok()
}

/// `base` joined with `rel` (unless `rel` is absolute), with `.` and `..` folded lexically so
/// that messages show the path a user would write.
pub(crate) fn clean_join(base: &Path, rel: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in base.join(rel).components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}
