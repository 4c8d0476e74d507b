//! `archbuild verify REF --platform LIST [--deep] [--json]`.

use anyhow::Context as _;

use crate::check::CheckOptions;
use crate::cli::{open, Context};
use crate::finding::{FindingsDocument, Outcome};
use crate::platform;
use crate::store::Store;
use crate::verify::{self, VerifyOptions, VerifyReport};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A registry reference (REGISTRY/REPO:TAG or @sha256:…) or oci:DIR[:REF].
    pub reference: String,
    /// The platforms the tag must cover, e.g. linux/amd64,linux/arm64.
    #[arg(long, value_name = "LIST")]
    pub platform: String,
    /// Also run the content check on every platform's layers.
    #[arg(long)]
    pub deep: bool,
    /// With --deep: skip files matching this glob (e.g. /usr/share/qemu/**); repeatable.
    #[arg(long = "ignore", value_name = "GLOB")]
    pub ignore: Vec<String>,
    /// Print one JSON document on standard output.
    #[arg(long)]
    pub json: bool,
    /// A registry host to speak plain HTTP to (loopback registries always are).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
}

pub async fn run(args: Args, _ctx: &Context) -> anyhow::Result<Outcome> {
    let required = platform::parse_list(&args.platform).context("--platform")?;
    let deep = args
        .deep
        .then(|| CheckOptions::new(&args.ignore, &[]))
        .transpose()
        .context("--ignore")?;
    let opts = VerifyOptions { deep };
    let (store, reference) = open::open(&args.reference, &args.insecure_registry, "verify")?;
    let report = run_on(&store, &reference, &required, &opts).await?;
    print(&report, args.json)?;
    Ok(Outcome::of(&report.findings))
}

async fn run_on<S: Store>(
    store: &S,
    reference: &str,
    required: &[crate::Platform],
    opts: &VerifyOptions,
) -> anyhow::Result<VerifyReport> {
    verify::verify(store, reference, required, opts)
        .await
        .with_context(|| format!("verifying {}", store.describe()))
}

fn print(report: &VerifyReport, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        let doc = FindingsDocument {
            findings: report.findings.clone(),
            details: report,
        };
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    for f in &report.findings {
        writeln!(
            out,
            "{}: {}",
            f.kind.as_str(),
            crate::finding::for_terminal(&f.message)
        )?;
    }
    for c in &report.content {
        writeln!(
            out,
            "content of {} ({}): {} files, {} ELF, {} errors, {} warnings",
            c.platform,
            c.manifest.as_deref().unwrap_or("?"),
            c.files,
            c.elf_files,
            c.errors,
            c.warnings
        )?;
    }
    for a in &report.attestations {
        writeln!(out, "attestation {} (not a platform)", a.digest)?;
    }
    let platforms: Vec<String> = report
        .children
        .iter()
        .map(|c| c.platform.to_string())
        .collect();
    let verdict = if report.findings.iter().any(|f| f.is_error()) {
        "NOT verified"
    } else {
        "verified"
    };
    writeln!(
        out,
        "{verdict} {} {} ({}; {})",
        report.reference,
        report.digest,
        report.media_type,
        platforms.join(", ")
    )?;
    Ok(())
}
