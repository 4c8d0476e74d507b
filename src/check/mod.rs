//! The content check: every program's ELF architecture, the entrypoint chain, loaders and
//! interpreters, for an image from any source.
//!
//! The rules (`rules`, `entrypoint`) are pure functions of the merged filesystem and the
//! config; this module wires them to the sources in `crate::image` and returns one
//! `CheckReport` per image and platform.

use bollard::Docker;

use crate::finding::{Finding, FindingKind};
use crate::image::archive::LayerTap;
use crate::image::{self, ImageError, ImageInput, MissingPlatform};
use crate::layers::Filesystem;
use crate::platform::Platform;
use crate::registry::RegistryOptions;
use crate::source::Source;
use crate::source_store;
use crate::store::{RawManifest, Store};

pub mod cache;
mod entrypoint;
mod ld_cache;
mod libraries;
mod loader_paths;
mod program;
mod report;
mod rules;
#[cfg(test)]
mod tests;

pub use crate::oci::config::{ImageConfig, DEFAULT_PATH};
pub use entrypoint::env_program;
pub use program::CheckOptions;
pub use report::{render, CheckReport};
pub use rules::run;

/// Why a check could not be done (as opposed to findings, which say the image is wrong).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{image}: the image config is not valid JSON: {detail}")]
    Config { image: String, detail: String },
}

/// Checks one image already read. `expected` is the platform it is listed or built for;
/// without one, the `wanted` platforms (`--platform`) or else the config's own platform.
pub fn check_input(
    input: &ImageInput,
    wanted: Option<&[Platform]>,
    opts: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    let config = ImageConfig::parse(&input.config).map_err(|e| CheckError::Config {
        image: input.name.clone(),
        detail: e.to_string(),
    })?;
    let claimed = config.platform();
    let expected = match (&input.listed_platform, wanted) {
        (Some(listed), _) => listed.clone(),
        (None, Some(w)) if !w.is_empty() && !w.contains(&claimed) => w[0].clone(),
        _ => claimed,
    };
    let mut fs = Filesystem::merge(&[]);
    for layer in &input.layers {
        fs.apply(layer);
    }
    let findings = run(&fs, &config, &expected, opts);
    let mut report = CheckReport::new(&input.name, expected, &fs, config.argv(), findings);
    report.manifest = input.manifest_digest.clone();
    report.config = input.config_digest.clone();
    Ok(report)
}

/// Checks an image in the Docker daemon (what `archbuild build` calls for each job's image
/// before anything is pushed). `platform` is the platform it was built for.
pub async fn check_daemon_image(
    docker: &Docker,
    image_id: &str,
    platform: &Platform,
    opts: &CheckOptions,
    image_name: &str,
) -> Result<CheckReport, CheckError> {
    let read = (image_id, image_name, platform);
    Ok(
        check_daemon_image_tapped(docker, read, opts, image::archive::NoTap)
            .await?
            .0,
    )
}

/// Checks an image in the Docker daemon as [`check_daemon_image`] does, from one export
/// whose layers are also handed to `tap` as they are read; returns the report, the image as
/// read (its config and verified diffIDs) and the tap.
pub async fn check_daemon_image_tapped<T: LayerTap + Send + 'static>(
    docker: &Docker,
    (image_id, image_name, platform): (&str, &str, &Platform),
    opts: &CheckOptions,
    tap: T,
) -> Result<(CheckReport, ImageInput, T), CheckError> {
    let (images, tap) = image::daemon::read_tapped(docker, image_id, tap).await?;
    let Some(input) = images.into_iter().next() else {
        return Err(ImageError::invalid(image_id, "the daemon exported no image").into());
    };
    let input = ImageInput {
        name: image_name.to_string(),
        listed_platform: Some(platform.clone()),
        ..input
    };
    let report = check_input(&input, None, opts)?;
    Ok((report, input, tap))
}

/// Checks every image a source holds (for an index, every platform child, or the `wanted`
/// ones). `registry` says how to reach registries for a registry reference.
pub async fn check_source(
    source: &Source,
    wanted: Option<&[Platform]>,
    opts: &CheckOptions,
    registry: &RegistryOptions,
) -> Result<Vec<CheckReport>, CheckError> {
    match source {
        Source::DockerArchive { path } => {
            let path = path.clone();
            let read = tokio::task::spawn_blocking(move || read_archive_file(&path)).await;
            let inputs = read.map_err(|e| {
                ImageError::invalid("docker-archive", format!("reading stopped: {e}"))
            })??;
            inputs
                .iter()
                .map(|i| check_input(i, wanted, opts))
                .collect()
        }
        Source::DockerDaemon { name } => {
            let docker = image::daemon::connect().await?;
            let inputs = image::daemon::read(&docker, name).await?;
            inputs
                .iter()
                .map(|i| check_input(i, wanted, opts))
                .collect()
        }
        Source::OciLayout { dir, reference } => {
            let opened = source_store::open_layout(dir, reference.as_deref());
            check_opened(&opened.map_err(ImageError::from)?, source, wanted, opts).await
        }
        Source::Registry(reference) => {
            let opened = source_store::open_registry(reference, registry);
            check_opened(&opened, source, wanted, opts).await
        }
    }
}

async fn check_opened(
    opened: &source_store::Opened,
    source: &Source,
    wanted: Option<&[Platform]>,
    opts: &CheckOptions,
) -> Result<Vec<CheckReport>, CheckError> {
    let top = opened.top().await.map_err(ImageError::from)?;
    check_store(&opened.store, top, &source.to_string(), wanted, opts).await
}

/// Checks everything under `top` in any store (a registry repository, an OCI layout).
pub async fn check_store<S: Store>(
    store: &S,
    top: RawManifest,
    name: &str,
    wanted: Option<&[Platform]>,
    opts: &CheckOptions,
) -> Result<Vec<CheckReport>, CheckError> {
    let read = image::store::read(store, top, name, wanted).await?;
    let mut reports: Vec<CheckReport> = read
        .images
        .iter()
        .map(|i| check_input(i, wanted, opts))
        .collect::<Result<_, _>>()?;
    reports.extend(read.missing.iter().map(missing_report));
    Ok(reports)
}

/// Checks the image manifest `top` for each of `platforms` (the platforms an index lists
/// it under): read and scanned once, checked once per platform, the reports in the order of
/// `platforms`. `verify --deep` uses it so that an index listing one image under thousands
/// of platforms reads it once.
pub async fn check_image_for<S: Store>(
    store: &S,
    top: RawManifest,
    name: &str,
    platforms: &[Platform],
    opts: &CheckOptions,
) -> Result<Vec<Vec<CheckReport>>, CheckError> {
    let read = image::store::read(store, top, name, None).await?;
    let listings: usize = read.images.iter().map(|i| i.layers.len()).sum();
    if listings.saturating_mul(platforms.len()) > image::store::MAX_LAYERS_PER_READ {
        return Err(image::store::too_many_layers(name, &store.describe()).into());
    }
    platforms
        .iter()
        .map(|platform| {
            let wanted = std::slice::from_ref(platform);
            read.images
                .iter()
                .map(|i| check_input(i, Some(wanted), opts))
                .collect()
        })
        .collect()
}

/// Reads a `docker save` file, or standard input for `-`.
fn read_archive_file(path: &std::path::Path) -> Result<Vec<ImageInput>, ImageError> {
    let label = path.display().to_string();
    if label == "-" {
        return image::archive::read(std::io::stdin().lock(), "standard input");
    }
    image::archive::read_file(path, &label)
}

fn missing_report(m: &MissingPlatform) -> CheckReport {
    let available: Vec<String> = m.available.iter().map(Platform::to_string).collect();
    let finding = Finding::error(
        FindingKind::PlatformMissing,
        format!(
            "{} has no {} image (it has: {}): nodes of that platform cannot pull it",
            m.name,
            m.platform,
            available.join(", ")
        ),
    )
    .with_platform(&m.platform);
    CheckReport::new(
        &m.name,
        m.platform.clone(),
        &Filesystem::default(),
        Vec::new(),
        vec![finding],
    )
}
