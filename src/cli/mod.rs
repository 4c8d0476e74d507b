//! The command line: argument structs (clap derive) and the dispatch to each command's
//! handler. Each `cli/<command>.rs` owns its flags and is a short function that calls into
//! the library; only this module and `cli::progress` know about terminals.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::finding::Outcome;

/// Verified multi-arch container builds: build every platform through BuildKit, check every
/// program's architecture, publish one index, verify it from the registry.
#[derive(Parser, Debug)]
#[command(name = "archbuild", version, about, long_about = None)]
pub struct Cli {
    /// The project file (default: archbuild.toml in the current folder or the nearest parent).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a commented archbuild.toml for the Dockerfiles found under the current folder.
    Init(init::Args),
    /// Show the images x platforms matrix, each job's builder endpoint and output tags.
    Plan(plan::Args),
    /// Build every platform through BuildKit, check the contents, publish the index, verify it.
    Build(build::Args),
    /// Check the contents of an image or of every platform image of an index.
    Check(check::Args),
    /// Verify that a pushed tag is an index covering the required platforms and is complete.
    Verify(verify::Args),
    /// Show what a tag or digest is: index or single image, platforms, digests, sizes.
    Inspect(inspect::Args),
    /// Find Kubernetes workloads whose container images do not cover the cluster's platforms.
    Audit(audit::Args),
    /// Render the rollout checklist from the last build's report (or --report FILE).
    Checklist(checklist::Args),
}

/// What every command handler gets besides its own flags.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `--config`, when given.
    pub config: Option<PathBuf>,
}

/// Parses the process arguments and runs the command.
pub fn main() -> anyhow::Result<Outcome> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let ctx = Context { config: cli.config };
    match cli.command {
        Command::Init(args) => init::run(args, &ctx).await,
        Command::Plan(args) => plan::run(args, &ctx).await,
        Command::Build(args) => build::run(args, &ctx).await,
        Command::Check(args) => check::run(args, &ctx).await,
        Command::Verify(args) => verify::run(args, &ctx).await,
        Command::Inspect(args) => inspect::run(args, &ctx).await,
        Command::Audit(args) => audit::run(args, &ctx).await,
        Command::Checklist(args) => checklist::run(args, &ctx).await,
    }
}

/// The error as printed: its chain joined with `: `, each cause left out when the text
/// before it already says it (an error that quotes its source would otherwise print the
/// same sentence twice).
pub fn message(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Whether an error is a closed standard output (`archbuild plan | head`), which exits quietly.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub mod audit;
pub mod build;
pub mod build_output;
pub mod check;
pub mod checklist;
pub mod init;
pub mod inspect;
pub mod open;
pub mod plan;
pub mod progress;
pub mod project;
pub mod table;
pub mod verify;

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("reading back r:1: {0}")]
    struct Quoting(#[source] std::io::Error);

    #[test]
    fn a_cause_the_message_already_quotes_is_printed_once() {
        let err = anyhow::Error::new(Quoting(std::io::Error::other("401 refused")));
        assert_eq!(super::message(&err), "reading back r:1: 401 refused");
        let err = anyhow::Error::new(std::io::Error::other("inner")).context("outer");
        assert_eq!(super::message(&err), "outer: inner");
    }
}
