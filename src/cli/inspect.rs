//! `archbuild inspect REF [--json] [--raw]`.

use std::io::Write;

use crate::cli::{open, Context};
use crate::finding::Outcome;
use crate::inspect::{self, Inspection};
use crate::store::Store;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A registry reference (REGISTRY/REPO:TAG or @sha256:…) or oci:DIR[:REF].
    pub reference: String,
    /// Print one JSON document on standard output.
    #[arg(long)]
    pub json: bool,
    /// Print the exact manifest bytes.
    #[arg(long, conflicts_with = "json")]
    pub raw: bool,
    /// A registry host to speak plain HTTP to (loopback registries always are).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
}

pub async fn run(args: Args, _ctx: &Context) -> anyhow::Result<Outcome> {
    let (store, reference) = open::open(&args.reference, &args.insecure_registry, "inspect")?;
    show(&store, &reference, &args).await
}

async fn show<S: Store>(store: &S, reference: &str, args: &Args) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    if args.raw {
        out.write_all(&inspect::raw(store, reference).await?.bytes)?;
        return Ok(Outcome::Pass);
    }
    let inspection = inspect::inspect(store, reference).await?;
    if args.json {
        serde_json::to_writer_pretty(&mut out, &inspection)?;
        writeln!(out)?;
    } else {
        out.write_all(human(&inspection)?.as_bytes())?;
    }
    Ok(Outcome::Pass)
}

/// The human report, escaped for a terminal: media types, digests and platforms come from
/// the registry or layout, and may hold control characters.
fn human(i: &Inspection) -> std::io::Result<String> {
    let mut text = Vec::new();
    print_human(&mut text, i)?;
    let text = String::from_utf8_lossy(&text);
    Ok(crate::finding::for_terminal(&text).into_owned())
}

fn print_human(out: &mut impl Write, i: &Inspection) -> std::io::Result<()> {
    let r = &i.report;
    writeln!(out, "Name:      {}", r.reference)?;
    writeln!(out, "MediaType: {}", r.media_type)?;
    writeln!(out, "Digest:    {}", r.digest)?;
    writeln!(out, "Size:      {}", r.size)?;
    for c in &r.children {
        writeln!(out, "\n  Platform:  {}", c.platform)?;
        writeln!(out, "  Manifest:  {} ({} bytes)", c.digest, c.size)?;
        if let Some(config) = &c.config_digest {
            writeln!(out, "  Config:    {config}")?;
        }
        writeln!(
            out,
            "  Layers:    {} ({} bytes compressed)",
            c.layers, c.compressed_size
        )?;
    }
    for a in &r.attestations {
        writeln!(out, "\n  Attestation: {} (not a platform)", a.digest)?;
    }
    writeln!(out, "\n{}", i.verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_registry_says_reaches_the_terminal_escaped() {
        let report = crate::verify::VerifyReport {
            reference: "reg/api:1".into(),
            digest: "sha256:00".into(),
            media_type: "application/vnd.oci.image.index.v1+json\u{1b}]0;owned\u{7}".into(),
            size: 1,
            findings: Vec::new(),
            children: Vec::new(),
            attestations: Vec::new(),
            content: Vec::new(),
        };
        let text = human(&Inspection {
            report,
            verdict: "ok".into(),
        })
        .unwrap();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
        assert!(text.contains("\\u{1b}]0;owned\\u{7}"), "{text}");
        assert!(text.contains("Name:      reg/api:1\n"), "{text}");
    }
}
