//! Finding and loading the project file for a command: `--config`, else the nearest
//! `archbuild.toml`. Problems in the file are printed one per line on standard error
//! (`FILE:LINE:COLUMN: message`), and the command fails with a one-line summary (exit 2).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cli::Context;
use crate::config::{self, Project};

/// Locates and loads the project file of this run.
pub fn load(ctx: &Context) -> anyhow::Result<Project> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let path = config::locate(ctx.config.as_deref(), &cwd)?;
    match config::load(&shown(&path, &cwd)) {
        Ok(project) => Ok(project),
        Err(errors) => {
            for d in errors.diagnostics() {
                eprintln!("{d}");
            }
            anyhow::bail!("{}", errors.summary())
        }
    }
}

/// Like [`load`], but `None` when no `--config` was given and no `archbuild.toml` is found
/// (the `docker build` drop-in then builds from the flags alone).
pub fn load_optional(ctx: &Context) -> anyhow::Result<Option<Project>> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    match config::locate(ctx.config.as_deref(), &cwd) {
        Err(config::LocateError::NotFound { .. }) => Ok(None),
        _ => load(ctx).map(Some),
    }
}

/// The path as a user would write it from `cwd`: relative when it is inside `cwd`.
fn shown(path: &Path, cwd: &Path) -> PathBuf {
    match path.strip_prefix(cwd) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
        _ => path.to_path_buf(),
    }
}
