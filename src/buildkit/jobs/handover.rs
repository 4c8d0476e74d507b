//! Handing a job over from a builder lost during its build (killed, or silent past the
//! [`super::watchdog`]'s limit) to the next of its platform's builders that answers, where it
//! is built again from its first step; and the run's record of the builders it lost, which no
//! job starts on and nothing is asked of any more.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::super::{
    BuildEngine, BuildError, BuildEvent, BuildOptions, BuiltImage, Job, JobLabel, LostBuilder,
};
use super::{build_one, probe, watchdog, Prepared};

/// What a job needs to know of the run's builders to build on one and hand over to another.
#[derive(Clone, Copy)]
pub struct Builders<'a> {
    pub semaphores: &'a HashMap<String, Arc<Semaphore>>,
    pub natives: &'a probe::Answers,
    pub lost: &'a LostBuilders,
}

/// The builders lost during the run (killed, or silent past the watchdog's limit): no job
/// starts on them any more and nothing is asked of them again.
#[derive(Default)]
pub struct LostBuilders(Mutex<HashSet<String>>);

impl LostBuilders {
    pub fn add(&self, endpoint: &str) {
        let mut lost = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lost.insert(endpoint.to_string());
    }

    pub fn contains(&self, endpoint: &str) -> bool {
        let lost = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lost.contains(endpoint)
    }
}

/// Builds `request` on its builder, and when that builder is lost during the build (or was
/// lost before the job started), builds it again from the start on the next of its
/// platform's builders that answers ([`BuildEvent::JobMoved`] with `restarted`). With no
/// builder left the job fails with the lost builder's error.
#[allow(clippy::too_many_arguments)]
pub async fn build<E: BuildEngine>(
    engine: &E,
    index: usize,
    request: &Job,
    prepared: Prepared,
    options: &BuildOptions,
    events: &mpsc::Sender<BuildEvent>,
    cancel: &CancellationToken,
    builders: Builders<'_>,
) -> Result<BuiltImage, BuildError> {
    let mut request = request.clone();
    let mut lost_on = Vec::new();
    loop {
        let endpoint = request.builder.url.clone();
        let permit = builders.semaphores[&endpoint].clone().acquire_owned().await;
        let permit = permit.expect("semaphore never closed");
        let result = if builders.lost.contains(&endpoint) {
            Err(BuildError::BuilderLost {
                endpoint: endpoint.clone(),
                step: None,
                reason: "it was lost during another job of this run".into(),
            })
        } else {
            let prepared = Prepared {
                native: builders.natives[&endpoint].clone(),
                ..prepared.clone()
            };
            build_one(engine, index, &request, prepared, options, events, cancel).await
        };
        let lost = match result {
            Ok(mut image) => {
                image.lost_builders = lost_on;
                return Ok(image);
            }
            Err(BuildError::BuilderLost {
                endpoint,
                step,
                reason,
            }) => LostBuilder {
                endpoint,
                step,
                reason,
            },
            Err(other) => return Err(other),
        };
        drop(permit);
        builders.lost.add(&lost.endpoint);
        let Some(next) = next_builder(engine, &mut request, builders).await else {
            return Err(lost.into_error());
        };
        let _ = events
            .send(BuildEvent::JobMoved {
                job: JobLabel::of(&request, index),
                from: lost.endpoint.clone(),
                to: next,
                reason: lost.what_happened(),
                restarted: true,
            })
            .await;
        lost_on.push(lost);
    }
}

/// Makes the first of `request`'s alternates that is not lost and answers a ping its builder,
/// and returns its URL; `None` when there is none.
async fn next_builder<E: BuildEngine>(
    engine: &E,
    request: &mut Job,
    builders: Builders<'_>,
) -> Option<String> {
    while !request.alternates.is_empty() {
        let candidate = request.alternates.remove(0);
        let url = candidate.url.clone();
        let usable =
            builders.natives.get(&url).is_some_and(Result::is_ok) && !builders.lost.contains(&url);
        if !usable {
            continue;
        }
        let ping = tokio::time::timeout(watchdog::PING_TIMEOUT, engine.ping(&url)).await;
        if !matches!(ping, Ok(Ok(()))) {
            builders.lost.add(&url);
            continue;
        }
        request.builder = candidate;
        return Some(url);
    }
    None
}
