//! `archbuild init [--force] [--stdout]`: writes a commented `archbuild.toml` with one image
//! per Dockerfile found under the current folder (or the folder of `--config FILE`).

use std::io::Write;

use anyhow::Context as _;

use crate::cli::Context;
use crate::config;
use crate::finding::Outcome;
use crate::init;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Replace an existing project file.
    #[arg(long)]
    pub force: bool,
    /// Print the project file on standard output instead of writing it.
    #[arg(long)]
    pub stdout: bool,
}

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<Outcome> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let target = ctx
        .config
        .clone()
        .unwrap_or_else(|| config::FILE_NAME.into());
    let root = cwd.join(&target);
    let root = root.parent().unwrap_or(&cwd);
    if !args.stdout && target.exists() && !args.force {
        return Err(init::InitError::Exists(target).into());
    }
    let images = init::scan(root)?;
    let text = init::render(&images)?;
    if args.stdout {
        std::io::stdout().lock().write_all(text.as_bytes())?;
        return Ok(Outcome::Pass);
    }
    init::write(&target, &text, args.force)?;
    let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
    eprintln!(
        "wrote {} with {} image(s): {}; `archbuild plan` shows what a build would do",
        target.display(),
        images.len(),
        names.join(", ")
    );
    Ok(Outcome::Pass)
}
