//! The liveness watchdog of a build: while a job builds, its builder is asked `/_ping` on a
//! connection of its own every [`PING_EVERY`], and a builder that has not answered for
//! [`SILENT_FOR`] is taken as lost. A builder that dies closes its connections and the build
//! fails at once; one cut off without its connections closing (a network that drops every
//! packet, a stopped daemon) would otherwise keep the build waiting for the request timeout,
//! hours. The step the build was on is read from its own progress events on the way through.

use tokio::sync::mpsc;
use tokio::time::{Duration, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::super::engine::{BuildEngine, EngineJob, EngineOutput};
use super::super::events::BuildEvent;
use super::super::BuildError;

/// How often the builder is asked: often enough that a lost builder is noticed within a few
/// seconds of [`SILENT_FOR`], rarely enough that the pings cost a busy daemon nothing.
pub const PING_EVERY: Duration = Duration::from_secs(2);

/// How long one ping may take: `/_ping` is the daemon's cheapest request, and 3 s leaves room
/// for a host busy with a build and, over `ssh://`, for the first ping opening its ssh
/// connection.
pub const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the builder may go without answering before its job fails: several missed pings
/// in a row, so one lost packet or a daemon pausing for garbage collection does not fail a
/// long build, yet far below the request timeout the build would otherwise wait for.
pub const SILENT_FOR: Duration = Duration::from_secs(10);

/// Runs `engine.build(job)` under the watchdog: the build's own result, or
/// [`BuildError::BuilderLost`] naming the step it was on once the builder has been silent for
/// [`SILENT_FOR`]. Events are passed on to `events` as they come.
pub async fn build<E: BuildEngine>(
    engine: &E,
    job: &EngineJob,
    events: &mpsc::Sender<BuildEvent>,
    cancel: &CancellationToken,
) -> Result<EngineOutput, BuildError> {
    let endpoint = job.request.builder.url.as_str();
    let (tx, mut rx) = mpsc::channel(64);
    let stop = cancel.child_token();
    let build = engine.build(job, &tx, &stop);
    tokio::pin!(build);
    let silence = silence(engine, endpoint);
    tokio::pin!(silence);
    let mut steps = RunningSteps::default();
    loop {
        tokio::select! {
            result = &mut build => {
                while let Ok(event) = rx.try_recv() {
                    steps.pass_on(event, events).await;
                }
                return result;
            }
            Some(event) = rx.recv() => steps.pass_on(event, events).await,
            reason = &mut silence => {
                // Let the engine let go of the build (its upload, its session) before the
                // job moves on; a connection that carries nothing cannot hold it long.
                stop.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(1), &mut build).await;
                return Err(BuildError::BuilderLost {
                    endpoint: endpoint.to_string(),
                    step: steps.running(),
                    reason,
                });
            }
        }
    }
}

/// Resolves once `endpoint` has not answered a ping for [`SILENT_FOR`], with the reason in
/// words; never while it answers.
pub async fn silence<E: BuildEngine>(engine: &E, endpoint: &str) -> String {
    let mut answered = Instant::now();
    let mut ticks = tokio::time::interval(PING_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is at once; the builder has just answered the probe or a build request.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let last = match tokio::time::timeout(PING_TIMEOUT, engine.ping(endpoint)).await {
            Ok(Ok(())) => {
                answered = Instant::now();
                continue;
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no answer within {} s", PING_TIMEOUT.as_secs()),
        };
        let silent = answered.elapsed();
        if silent >= SILENT_FOR {
            return format!(
                "it has not answered /_ping for {} s (last try: {last}); check its host and network",
                silent.as_secs()
            );
        }
    }
}

/// The build's steps that started and have not ended, in order, from its events.
#[derive(Default)]
struct RunningSteps(Vec<(usize, String)>);

impl RunningSteps {
    async fn pass_on(&mut self, event: BuildEvent, events: &mpsc::Sender<BuildEvent>) {
        match &event {
            BuildEvent::StepStarted { step, name, .. } => self.0.push((*step, name.clone())),
            BuildEvent::StepDone { step, .. } | BuildEvent::StepCached { step, .. } => {
                self.0.retain(|(s, _)| s != step)
            }
            _ => {}
        }
        let _ = events.send(event).await;
    }

    /// The step that started last of those still running.
    fn running(&self) -> Option<String> {
        self.0.last().map(|(_, name)| name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildkit::engine::FakeEngine;

    #[tokio::test(start_paused = true)]
    async fn a_silent_builder_is_given_up_after_the_silence_limit() {
        let engine = FakeEngine::new("linux/amd64");
        engine.take_down("tcp://cut:2376");
        let started = Instant::now();
        let reason = silence(&engine, "tcp://cut:2376").await;
        let waited = started.elapsed();
        assert!(
            waited >= SILENT_FOR && waited < SILENT_FOR + PING_EVERY + PING_TIMEOUT,
            "{waited:?}"
        );
        assert!(
            reason.contains("has not answered /_ping for 10 s"),
            "{reason}"
        );
        assert!(reason.contains("connection refused"), "{reason}");
        assert_eq!(engine.pings("tcp://cut:2376"), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_builder_that_answers_is_never_given_up() {
        let engine = FakeEngine::new("linux/amd64");
        let watched = tokio::time::timeout(SILENT_FOR * 6, silence(&engine, "tcp://up:2376"));
        assert!(watched.await.is_err(), "a live builder was given up");
        assert!(engine.pings("tcp://up:2376") >= 29);
    }
}
