//! The build stage of a release: the Dockerfile pre-flight and the emulation warnings before
//! anything runs, then every job of the plan built through BuildKit, cancelled as a whole by
//! SIGINT or SIGTERM (the builds stop and their temporary tags are removed).

use std::collections::BTreeSet;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::buildkit::{self, BuildEngine, BuildEvent, BuildOptions, BuiltImage};
use crate::dockerfile;
use crate::finding::Finding;
use crate::plan::Plan;

/// The findings known before any build: Dockerfile warnings (each Dockerfile read once) and
/// the jobs that would run under emulation.
pub async fn preflight<E: BuildEngine>(engine: &E, plan: &Plan) -> Vec<Finding> {
    let mut findings = dockerfile_warnings(plan);
    findings.extend(buildkit::emulation_findings(engine, &plan.jobs).await);
    findings
}

/// The Dockerfile warnings of every Dockerfile in the plan, each reported once.
fn dockerfile_warnings(plan: &Plan) -> Vec<Finding> {
    let mut seen = BTreeSet::new();
    let mut findings = Vec::new();
    let cwd = std::env::current_dir().unwrap_or_default();
    for job in &plan.jobs {
        if !seen.insert(job.dockerfile.clone()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&job.dockerfile) else {
            continue;
        };
        let shown = job.dockerfile.strip_prefix(&cwd).unwrap_or(&job.dockerfile);
        for finding in dockerfile::preflight(&dockerfile::parse(&text), shown) {
            findings.push(finding.with_image(&job.image));
        }
    }
    findings
}

/// Builds every job of `plan`, reporting progress on `events`; SIGINT or SIGTERM cancels.
/// `first` must succeed before any job starts (the push access); it runs while the builders
/// are asked and the contexts walked, and its error is the run's.
pub async fn build_plan<E: BuildEngine>(
    engine: &E,
    plan: &Plan,
    options: &BuildOptions,
    events: mpsc::Sender<BuildEvent>,
    first: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<Vec<BuiltImage>> {
    let cancel = CancellationToken::new();
    let signals = tokio::spawn(cancel_on_signal(cancel.clone()));
    let mut refused = None;
    let gate = async {
        let passed = first.await;
        let open = passed.is_ok();
        refused = passed.err();
        open
    };
    let result =
        buildkit::run_after(engine, plan.jobs.clone(), options, events, cancel, gate).await;
    signals.abort();
    if let Some(err) = refused {
        return Err(err);
    }
    match result {
        Ok(built) => Ok(built),
        Err(buildkit::BuildError::Cancelled) => {
            anyhow::bail!("interrupted: the builds were cancelled and their temporary tags removed")
        }
        Err(err) => Err(err).context("build failed"),
    }
}

/// Runs `work` until it ends or SIGINT/SIGTERM arrives; on a signal `work` is dropped (its
/// uploads cancelled, its temporary files removed by their own `Drop`) and the error says
/// `interrupted: {what}`. Once tokio handles these signals the default action no longer ends
/// the process, so every stage after the builds must listen for them itself.
pub async fn until_signal<T>(
    work: impl std::future::Future<Output = T>,
    what: &str,
) -> anyhow::Result<T> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        done = work => Ok(done),
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted: {what}"),
        _ = terminate.recv() => anyhow::bail!("interrupted: {what}"),
    }
}

async fn cancel_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("archbuild: interrupted; cancelling the builds");
    cancel.cancel();
}
