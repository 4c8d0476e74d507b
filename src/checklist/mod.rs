//! The rollout checklist: from a build report to the steps a platform engineer follows on a
//! mixed-architecture cluster. [`build`] computes what to say about each image (pure); the
//! minijinja templates in `templates/` say it. The templates are embedded in the binary and can
//! be replaced one by one from a folder (`--templates DIR`) so a team can adapt the wording.

mod model;

use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use crate::finding::FindingsDocument;
use crate::report::Report;

pub use model::{build, Checklist, ImageChecklist, InterimPatch, Migration, PlatformReference};

/// The template the Markdown checklist starts from.
pub const CHECKLIST_TEMPLATE: &str = "checklist.md.j2";

/// The templates built into the binary, by name.
const EMBEDDED: &[(&str, &str)] = &[(
    CHECKLIST_TEMPLATE,
    include_str!("../../templates/checklist.md.j2"),
)];

/// The output formats of `archbuild checklist`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Markdown,
    Json,
}

/// Why the checklist could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ChecklistError {
    #[error("templates folder {0} does not exist; --templates takes a folder holding {CHECKLIST_TEMPLATE} (and any templates it includes)")]
    NoTemplatesDir(PathBuf),
    #[error("template {0:#}")]
    Template(#[from] minijinja::Error),
    #[error("cannot serialise the checklist: {0}")]
    Json(#[from] serde_json::Error),
}

/// Renders the Markdown checklist of a report, with the embedded templates or, for each
/// template that `templates` holds, that folder's version.
pub fn render(report: &Report, templates: Option<&Path>) -> Result<String, ChecklistError> {
    let env = environment(templates)?;
    let checklist = build(report);
    let template = env.get_template(CHECKLIST_TEMPLATE)?;
    Ok(template.render(&checklist)?)
}

/// The checklist as the `--format json` document: every finding of the report, then the data.
pub fn render_json(report: &Report) -> Result<String, ChecklistError> {
    #[derive(Serialize)]
    struct Details {
        checklist: Checklist,
    }
    let doc = FindingsDocument {
        findings: report.all_findings(),
        details: Details {
            checklist: build(report),
        },
    };
    Ok(serde_json::to_string_pretty(&doc)? + "\n")
}

/// Renders in the chosen format.
pub fn render_as(
    report: &Report,
    format: Format,
    templates: Option<&Path>,
) -> Result<String, ChecklistError> {
    match format {
        Format::Markdown => render(report, templates),
        Format::Json => render_json(report),
    }
}

fn environment(templates: Option<&Path>) -> Result<Environment<'static>, ChecklistError> {
    let dir = match templates {
        Some(d) if !d.is_dir() => return Err(ChecklistError::NoTemplatesDir(d.to_path_buf())),
        other => other.map(Path::to_path_buf),
    };
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    // A misspelt variable in a team's template is an error, not a silently empty line.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_loader(move |name| {
        if let Some(dir) = &dir {
            let path = dir.join(name);
            if path.is_file() {
                return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("cannot read {}: {e}", path.display()),
                    )
                });
            }
        }
        Ok(EMBEDDED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| (*text).to_string()))
    });
    Ok(env)
}

#[cfg(test)]
mod tests;
