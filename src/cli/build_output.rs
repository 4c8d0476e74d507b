//! How `archbuild build` prints a [`Release`]: the built images as a table, the content
//! check, one line per published image and where the report went; or one JSON document.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::buildkit::BuiltImage;
use crate::check::{self, CheckReport};
use crate::finding::{Finding, FindingsDocument};
use crate::pipeline::Release;
use crate::publish::Published;
use crate::verify::VerifyReport;

/// The `--json` details next to `findings`.
#[derive(Serialize)]
struct Details<'a> {
    images: &'a [BuiltImage],
    checks: &'a [CheckReport],
    published: &'a [Published],
    verified: &'a [VerifyReport],
    report: Option<PathBuf>,
    checklist: Option<PathBuf>,
}

/// Prints `release` on standard output, as JSON or as tables.
pub fn print(release: &Release, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let document = FindingsDocument {
            findings: release.findings(),
            details: Details {
                images: &release.built,
                checks: &release.checks,
                published: &release.published,
                verified: &release.verified,
                report: Some(release.files.report.clone()),
                checklist: Some(release.files.checklist.clone()),
            },
        };
        serde_json::to_writer_pretty(&mut out, &document)?;
        writeln!(out)?;
        return Ok(());
    }
    out.write_all(table(&release.built).as_bytes())?;
    writeln!(out)?;
    out.write_all(check::render(&release.checks).as_bytes())?;
    writeln!(out)?;
    out.write_all(summary(&release.published, &release.verified).as_bytes())?;
    writeln!(
        out,
        "report: {}\nrollout checklist: {}",
        shown(&release.files.report).display(),
        shown(&release.files.checklist).display()
    )?;
    Ok(())
}

/// One line per published image: where it went, its digest, its verdict.
fn summary(published: &[Published], verified: &[VerifyReport]) -> String {
    let mut out = String::new();
    for (p, v) in published.iter().zip(verified) {
        let platforms: Vec<String> = p.children.iter().map(|c| c.platform.to_string()).collect();
        let verdict = if v.findings.iter().any(Finding::is_error) {
            "NOT verified"
        } else {
            "verified"
        };
        out.push_str(&format!(
            "{}: {} {} ({verdict}: {})\n",
            p.image,
            p.tags.join(", "),
            p.index_digest,
            platforms.join(", ")
        ));
    }
    out
}

/// A path relative to the current folder when it is inside it.
fn shown(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
}

/// The built images as a table: IMAGE, PLATFORM, ID, RESULT, TAGGED.
pub fn table(built: &[BuiltImage]) -> String {
    let mut rows = vec![["IMAGE", "PLATFORM", "ID", "RESULT", "TAGGED"].map(String::from)];
    for image in built {
        let id = image.image_id.trim_start_matches("sha256:");
        let result = if image.reused {
            "unchanged".to_string()
        } else {
            format!(
                "built in {:.1}s, {} cached",
                image.duration.as_secs_f64(),
                image.cached_steps
            )
        };
        rows.push([
            image.image.clone(),
            image.platform.to_string(),
            id[..id.len().min(12)].to_string(),
            result,
            crate::reference::list(&image.tagged),
        ]);
    }
    crate::cli::table::render(&rows)
}
