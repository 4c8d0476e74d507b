//! `archbuild checklist`: renders the rollout checklist of the last build's report.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::checklist::{self, Format};
use crate::cli::Context;
use crate::finding::Outcome;
use crate::report::{Report, DEFAULT_REPORT_PATH};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The build report (default: .archbuild/report.json of the project).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Markdown for people, JSON (the findings and the checklist's data) for tools.
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: Format,
    /// A folder whose templates (checklist.md.j2, ...) replace the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

/// Renders to standard output. The checklist describes the build; it does not judge it, so
/// the exit status is 0 whatever the report found (`build` and `verify` exit 1 for that).
pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<Outcome> {
    let path = match args.report {
        Some(p) => p,
        None => project_dir(ctx).join(DEFAULT_REPORT_PATH),
    };
    let report = Report::load(&path)?;
    let text = checklist::render_as(&report, args.format, args.templates.as_deref())
        .with_context(|| format!("cannot render the checklist of {}", path.display()))?;
    use std::io::Write as _;
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(Outcome::Pass)
}

/// The project's folder (that of `--config` or the nearest `archbuild.toml`), else the
/// current folder.
fn project_dir(ctx: &Context) -> PathBuf {
    let cwd = PathBuf::from(".");
    crate::config::locate(ctx.config.as_deref(), &cwd)
        .ok()
        .and_then(|file| file.parent().map(PathBuf::from))
        .unwrap_or(cwd)
}
