//! `archbuild check SOURCE`: check the contents of an image or of every platform image of an
//! index, print the human report (or the `--json` document), exit 0 / 1 / 2.

use std::io::Write;

use anyhow::Context as _;
use serde::Serialize;

use super::Context;
use crate::check::{self, CheckOptions, CheckReport};
use crate::finding::{Finding, FindingsDocument, Outcome};
use crate::platform;
use crate::registry::RegistryOptions;
use crate::source::Source;

/// Flags of `archbuild check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to check: REGISTRY/REPO[:TAG|@DIGEST], oci:DIR[:REF], docker-daemon:NAME[:TAG]
    /// or docker-archive:FILE (`-` for standard input).
    pub source: String,
    /// Check only these platforms of an index (comma-separated, e.g. linux/amd64,linux/arm64).
    #[arg(long, value_name = "LIST")]
    pub platform: Option<String>,
    /// Print one JSON document (findings and what was checked) on standard output.
    #[arg(long)]
    pub json: bool,
    /// Skip files matching this glob (absolute paths, e.g. /usr/share/qemu/**); repeatable.
    #[arg(long = "ignore", value_name = "GLOB")]
    pub ignore: Vec<String>,
    /// Require this program in the image (a path, or a name on the image's PATH); repeatable.
    #[arg(long = "binary", value_name = "PATH")]
    pub binaries: Vec<String>,
    /// The page size of the cluster's arm64 kernels: an arm64 program that cannot be mapped
    /// with it is an error (without it, one that 16 KiB kernels cannot map is a warning).
    #[arg(long = "page-size", value_name = "BYTES", value_parser = ["4096", "16384", "65536"])]
    pub page_size: Option<String>,
    /// A registry host to speak plain HTTP to (loopback registries always are).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
}

#[derive(Serialize)]
struct Details<'a> {
    images: &'a [CheckReport],
}

/// Runs `archbuild check`.
pub async fn run(args: Args, _ctx: &Context) -> anyhow::Result<Outcome> {
    let source = Source::parse(&args.source)?;
    let wanted = args
        .platform
        .as_deref()
        .map(platform::parse_list)
        .transpose()
        .context("--platform")?;
    let opts = CheckOptions::new(&args.ignore, &args.binaries)
        .context("--ignore")?
        .with_page_size(args.page_size.as_deref().and_then(|s| s.parse().ok()));
    let registry = RegistryOptions {
        insecure_registries: args.insecure_registry.clone(),
        ..Default::default()
    };
    let reports = check::check_source(&source, wanted.as_deref(), &opts, &registry)
        .await
        .with_context(|| format!("checking {source}"))?;
    let findings: Vec<Finding> = reports
        .iter()
        .flat_map(|r| r.findings.iter().cloned())
        .collect();
    let outcome = Outcome::of(&findings);
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = FindingsDocument {
            findings,
            details: Details { images: &reports },
        };
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", check::render(&reports))?;
    }
    out.flush()?;
    Ok(outcome)
}
