//! The build report and what is written from it: `.archbuild/report.json`, the rollout
//! checklist beside it, and `--metadata-file`. [`report`] assembles the report by one pure
//! function from what the stages returned; the writers replace each file atomically.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;

use crate::buildkit::BuiltImage;
use crate::check::CheckReport;
use crate::checklist;
use crate::config::Project;
use crate::finding::Finding;
use crate::publish::{self, Published};
use crate::report::{Handover, ImageReport, Report, Timing, REPORT_VERSION};
use crate::verify::VerifyReport;

/// Everything the stages produced, for the report.
#[derive(Default)]
pub struct Outcomes<'a> {
    pub built: &'a [BuiltImage],
    pub checks: &'a [CheckReport],
    /// Per built job, whether its check exported the image from its daemon.
    pub check_exports: &'a [bool],
    pub published: &'a [Published],
    pub verified: &'a [VerifyReport],
    /// Findings that belong to no image (pre-flight, emulation).
    pub general: Vec<Finding>,
    pub pushed: bool,
    pub timings: Vec<Timing>,
}

/// The build report: per image, what was required, built, published and verified, and the
/// findings of each stage. Pure.
pub fn report(project: &Project, outcomes: &Outcomes<'_>, created: String) -> Report {
    let mut images = Vec::new();
    for (name, spec) in &project.images {
        let built: Vec<&BuiltImage> = outcomes.built.iter().filter(|b| &b.image == name).collect();
        if built.is_empty() {
            continue;
        }
        let published = outcomes.published.iter().find(|p| &p.image == name);
        let position = outcomes.published.iter().position(|p| &p.image == name);
        let verified = position.and_then(|i| outcomes.verified.get(i));
        // `check_built` returns one report per built job, in the jobs' order.
        let mut findings: Vec<Finding> = outcomes
            .built
            .iter()
            .zip(outcomes.checks)
            .filter(|(b, _)| &b.image == name)
            .flat_map(|(_, c)| c.findings.iter().cloned())
            .collect();
        if let Some(v) = verified {
            findings.extend(v.findings.iter().cloned());
        }
        let check_exports = outcomes
            .built
            .iter()
            .zip(outcomes.check_exports)
            .filter(|(b, exported)| &b.image == name && **exported)
            .count();
        let exports = check_exports + published.map_or(0, |p| p.stats.exports);
        images.push(ImageReport {
            name: name.clone(),
            repository: spec.reference_base(),
            tags: spec.tags.clone(),
            required_platforms: spec.platforms.clone(),
            built_platforms: built.iter().map(|b| b.platform.clone()).collect(),
            index_digest: published.map(|p| p.index_digest.clone()),
            manifests: published
                .map(|p| {
                    p.children
                        .iter()
                        .map(|c| (c.platform.clone(), c.digest.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            pushed: outcomes.pushed && published.is_some(),
            output: published.map(|p| p.location.clone()).unwrap_or_default(),
            verified: verified.is_some_and(|v| !v.findings.iter().any(Finding::is_error)),
            exports,
            findings,
            handovers: built.iter().flat_map(|b| handovers(b)).collect(),
        });
    }
    Report {
        version: REPORT_VERSION,
        created,
        images,
        findings: outcomes.general.clone(),
        timings: outcomes.timings.clone(),
    }
}

/// The builders `built` was handed over from, each to the next it went to.
fn handovers(built: &BuiltImage) -> Vec<Handover> {
    let lost = &built.lost_builders;
    lost.iter()
        .enumerate()
        .map(|(at, from)| Handover {
            platform: built.platform.clone(),
            from: from.endpoint.clone(),
            to: lost
                .get(at + 1)
                .map_or(&built.endpoint_url, |next| &next.endpoint)
                .clone(),
            step: from.step.clone(),
            reason: from.reason.clone(),
        })
        .collect()
}

/// Times a stage into `timings`.
pub struct Stopwatch {
    started: Instant,
}

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch {
            started: Instant::now(),
        }
    }

    pub fn stop(self, step: impl Into<String>, timings: &mut Vec<Timing>) {
        timings.push(Timing {
            step: step.into(),
            seconds: (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        });
    }
}

/// Where [`write_report`] put the report and the checklist.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub report: PathBuf,
    pub checklist: PathBuf,
}

/// Writes `.archbuild/report.json` and `.archbuild/checklist.md` (each atomically).
pub fn write_report(project: &Project, report: &Report) -> anyhow::Result<ReportFiles> {
    let dir = project.dir.join(".archbuild");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = ReportFiles {
        report: dir.join("report.json"),
        checklist: dir.join("checklist.md"),
    };
    let json = serde_json::to_string_pretty(report)?;
    write_file(&files.report, format!("{json}\n").as_bytes())?;
    write_file(
        &files.checklist,
        checklist::render(report, None)?.as_bytes(),
    )?;
    Ok(files)
}

/// Writes the digests of what was published as `docker buildx build --metadata-file` does.
pub fn write_metadata(file: &Path, published: &[Published]) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&publish::metadata(published))?;
    crate::atomic_file::write(file, format!("{text}\n").as_bytes())
        .with_context(|| format!("writing the metadata file {}", file.display()))
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::atomic_file::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The report's creation time: `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.
pub fn now_rfc3339() -> String {
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildkit::LostBuilder;
    use crate::platform::Platform;

    #[test]
    fn each_lost_builder_hands_over_to_the_next_one_the_job_went_to() {
        let lost = |endpoint: &str| LostBuilder {
            endpoint: endpoint.into(),
            step: Some("[2/2] RUN make".into()),
            reason: "connection reset by peer".into(),
        };
        let amd64 = Platform::parse("linux/amd64").unwrap();
        let built = BuiltImage {
            index: 0,
            image: "api".into(),
            platform: amd64.clone(),
            image_id: "sha256:1".into(),
            endpoint_url: "ssh://c".into(),
            temporary_tag: crate::buildkit::jobs::keep_tag("api", &amd64),
            tagged: Vec::new(),
            log_tail: Vec::new(),
            duration: std::time::Duration::ZERO,
            cached_steps: 0,
            reused: false,
            emulated: false,
            context_bytes: 0,
            lost_builders: vec![lost("ssh://a"), lost("ssh://b")],
        };
        let chain: Vec<(String, String)> = handovers(&built)
            .into_iter()
            .map(|h| (h.from, h.to))
            .collect();
        assert_eq!(
            chain,
            vec![
                ("ssh://a".to_string(), "ssh://b".to_string()),
                ("ssh://b".to_string(), "ssh://c".to_string())
            ]
        );
    }
}
