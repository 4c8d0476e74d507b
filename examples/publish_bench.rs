//! Publishes images already in the Docker daemon with `archbuild::publish::publish`, without a
//! build: what `integration/bench-publish.sh` times. Prints what was published (digests and
//! upload statistics) as JSON on standard output.
//!
//! Usage: publish_bench (--push REGISTRY/REPO | --layout DIR) --name NAME --tag TAG
//!        --cache DIR [--zstd] PLATFORM=IMAGE...

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use archbuild::publish::{self, Compression, IndexFormat, PublishImage, PublishOptions, Target};
use archbuild::registry::RegistryOptions;
use archbuild::Platform;

struct Args {
    target: Target,
    repository: Option<archbuild::reference::ImageRef>,
    name: String,
    tag: String,
    cache: PathBuf,
    compression: Compression,
    children: Vec<(Platform, String)>,
}

fn parse() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let (mut target, mut repository, mut name, mut tag, mut cache) = (None, None, None, None, None);
    let mut compression = Compression::Gzip;
    let mut children = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--push" => {
                repository = Some(
                    archbuild::reference::ImageRef::parse_repository(&value()?)
                        .map_err(anyhow::Error::msg)?,
                );
                target = Some(Target::Push(RegistryOptions::default()));
            }
            "--layout" => target = Some(Target::Layout(value()?.into())),
            "--name" => name = Some(value()?),
            "--tag" => tag = Some(value()?),
            "--cache" => cache = Some(PathBuf::from(value()?)),
            "--zstd" => compression = Compression::Zstd,
            child => {
                let Some((platform, image)) = child.split_once('=') else {
                    bail!("expected PLATFORM=IMAGE, got {child}");
                };
                children.push((Platform::parse(platform)?, image.to_string()));
            }
        }
    }
    Ok(Args {
        target: target.context("--push REGISTRY/REPO or --layout DIR")?,
        repository,
        name: name.context("--name")?,
        tag: tag.context("--tag")?,
        cache: cache.context("--cache")?,
        compression,
        children,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse()?;
    let docker = archbuild::image::daemon::connect().await?;
    let image = PublishImage {
        name: args.name,
        repository: args.repository,
        tags: vec![args.tag],
        children: args.children,
    };
    let opts = PublishOptions {
        format: IndexFormat::Oci,
        compression: args.compression,
        cache_dir: args.cache,
        annotations: Default::default(),
    };
    let published = publish::publish(&docker, &[image], &args.target, &opts).await?;
    println!("{}", serde_json::to_string_pretty(&published)?);
    Ok(())
}
