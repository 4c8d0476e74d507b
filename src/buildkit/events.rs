//! Progress as events: what the build module reports over a channel and the command line
//! draws. [`StepTracker`] turns BuildKit's `StatusResponse` messages (vertexes, statuses,
//! logs) into [`BuildEvent`]s, numbering steps `#1`, `#2`, ... in order of appearance as
//! BuildKit's own plain progress does, and keeps the log tail of every step for errors.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use bollard::moby::buildkit::v1::StatusResponse;
use serde::Serialize;

use crate::platform::Platform;

/// How many log lines of a step are kept for error reports.
pub const LOG_TAIL_LINES: usize = 20;

/// Which job an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct JobLabel {
    /// Position of the request in the input of [`super::run`].
    pub index: usize,
    pub image: String,
    pub platform: Platform,
}

impl JobLabel {
    /// The label of `job`, the `index`-th of a run: `api linux/arm64`.
    pub fn of(job: &crate::plan::Job, index: usize) -> JobLabel {
        JobLabel {
            index,
            image: job.image.clone(),
            platform: job.platform.clone(),
        }
    }
}

impl fmt::Display for JobLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.image, self.platform)
    }
}

/// One thing that happened in a build.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum BuildEvent {
    /// The job was handed to its builder.
    JobStarted {
        job: JobLabel,
        endpoint: String,
        /// Whether its `RUN` steps will run under emulation.
        emulated: bool,
        /// Why an earlier build's image is not reused, when something outside the context
        /// changed (a base image that moved).
        rebuild_reason: Option<String>,
    },
    /// The job's own builder did not answer, or was lost while it built the job; it goes to
    /// another builder of its platform.
    JobMoved {
        job: JobLabel,
        from: String,
        to: String,
        /// Why `from` was passed over.
        reason: String,
        /// The job had started on `from` and starts again from its first step on `to`.
        restarted: bool,
    },
    StepStarted {
        job: JobLabel,
        step: usize,
        name: String,
    },
    StepCached {
        job: JobLabel,
        step: usize,
        name: String,
    },
    StepDone {
        job: JobLabel,
        step: usize,
        name: String,
        seconds: f64,
    },
    LogLine {
        job: JobLabel,
        step: usize,
        line: String,
    },
    JobFinished {
        job: JobLabel,
        image_id: String,
        seconds: f64,
        cached_steps: usize,
        /// No input changed and the previous image was reused without building.
        reused: bool,
    },
    JobFailed {
        job: JobLabel,
        error: String,
        /// The failing step's last log lines.
        log_tail: Vec<String>,
    },
    /// The job's image was checked while other jobs still built (sent by the release
    /// pipeline, not by the builds).
    JobChecked {
        job: JobLabel,
        errors: usize,
        warnings: usize,
        /// The findings came from the check cache (the image was checked before).
        remembered: bool,
        /// Its layers were compressed for publishing from the same export.
        compressed: bool,
    },
}

impl BuildEvent {
    /// The job the event is about.
    pub fn job(&self) -> &JobLabel {
        match self {
            BuildEvent::JobStarted { job, .. }
            | BuildEvent::JobMoved { job, .. }
            | BuildEvent::StepStarted { job, .. }
            | BuildEvent::StepCached { job, .. }
            | BuildEvent::StepDone { job, .. }
            | BuildEvent::LogLine { job, .. }
            | BuildEvent::JobFinished { job, .. }
            | BuildEvent::JobFailed { job, .. }
            | BuildEvent::JobChecked { job, .. } => job,
        }
    }
}

#[derive(Debug, Default)]
struct Step {
    number: usize,
    name: String,
    started: bool,
    cached: bool,
    done: bool,
    partial: String,
    tail: VecDeque<String>,
}

/// Follows one build's BuildKit status stream.
#[derive(Debug, Default)]
pub struct StepTracker {
    steps: HashMap<String, Step>,
    order: Vec<String>,
    failed: Option<String>,
    last_logged: Option<String>,
}

impl StepTracker {
    /// Reads one status message and returns the events it means for `job`.
    pub fn update(&mut self, job: &JobLabel, status: &StatusResponse) -> Vec<BuildEvent> {
        let mut events = Vec::new();
        for vertex in &status.vertexes {
            let number = self.number(&vertex.digest);
            let step = self.steps.get_mut(&vertex.digest).expect("numbered");
            if !vertex.name.is_empty() {
                step.name = vertex.name.clone();
            }
            let name = step.name.clone();
            if vertex.cached && !step.cached {
                step.cached = true;
                events.push(BuildEvent::StepCached {
                    job: job.clone(),
                    step: number,
                    name: name.clone(),
                });
            } else if (vertex.started.is_some() || vertex.completed.is_some())
                && !step.started
                && !vertex.cached
            {
                // A step seen only when it completed still gets its start line.
                step.started = true;
                events.push(BuildEvent::StepStarted {
                    job: job.clone(),
                    step: number,
                    name: name.clone(),
                });
            }
            if !vertex.error.is_empty() {
                self.failed = Some(vertex.digest.clone());
            }
            if let (Some(done), false) = (&vertex.completed, step.done) {
                step.done = true;
                if !vertex.cached && vertex.error.is_empty() {
                    let seconds = vertex
                        .started
                        .as_ref()
                        .map(|s| {
                            (done.seconds - s.seconds) as f64
                                + f64::from(done.nanos - s.nanos) / 1e9
                        })
                        .unwrap_or(0.0);
                    events.push(BuildEvent::StepDone {
                        job: job.clone(),
                        step: number,
                        name,
                        seconds: seconds.max(0.0),
                    });
                }
            }
        }
        for log in &status.logs {
            let number = self.number(&log.vertex);
            self.last_logged = Some(log.vertex.clone());
            let step = self.steps.get_mut(&log.vertex).expect("numbered");
            step.partial.push_str(&String::from_utf8_lossy(&log.msg));
            while let Some(end) = step.partial.find('\n') {
                let line: String = step.partial.drain(..=end).collect();
                let line = line.trim_end_matches(['\n', '\r']).to_string();
                if step.tail.len() == LOG_TAIL_LINES {
                    step.tail.pop_front();
                }
                step.tail.push_back(line.clone());
                events.push(BuildEvent::LogLine {
                    job: job.clone(),
                    step: number,
                    line,
                });
            }
        }
        events
    }

    fn number(&mut self, digest: &str) -> usize {
        if let Some(step) = self.steps.get(digest) {
            return step.number;
        }
        self.order.push(digest.to_string());
        let number = self.order.len();
        self.steps.insert(
            digest.to_string(),
            Step {
                number,
                ..Default::default()
            },
        );
        number
    }

    /// How many steps BuildKit answered from its cache.
    pub fn cached_steps(&self) -> usize {
        self.steps.values().filter(|s| s.cached).count()
    }

    /// The name of the step that failed (or, failing that, the last one that logged).
    pub fn failed_step(&self) -> Option<String> {
        let digest = self.failed.as_ref().or(self.last_logged.as_ref())?;
        self.steps.get(digest).map(|s| s.name.clone())
    }

    /// The step that started last and has not finished, if any (what a builder that went away
    /// was doing).
    pub fn running_step(&self) -> Option<String> {
        self.order
            .iter()
            .rev()
            .map(|d| &self.steps[d])
            .find(|s| s.started && !s.done && !s.cached)
            .map(|s| s.name.clone())
    }

    /// The failing step's last log lines (with any unterminated last line).
    pub fn failed_tail(&self) -> Vec<String> {
        let Some(step) = self
            .failed
            .as_ref()
            .or(self.last_logged.as_ref())
            .and_then(|d| self.steps.get(d))
        else {
            return Vec::new();
        };
        let mut lines: Vec<String> = step.tail.iter().cloned().collect();
        if !step.partial.trim().is_empty() {
            lines.push(step.partial.trim_end().to_string());
        }
        lines
    }

    /// The last log lines of the whole build, oldest first.
    pub fn log_tail(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for digest in &self.order {
            lines.extend(self.steps[digest].tail.iter().cloned());
        }
        let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines.split_off(skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::moby::buildkit::v1::{Vertex, VertexLog};

    /// A timestamp of `seconds` (the protobuf type is not re-exported by bollard).
    fn at(seconds: i64) -> Vertex {
        let mut v = Vertex {
            started: Some(Default::default()),
            ..Default::default()
        };
        v.started.as_mut().unwrap().seconds = seconds;
        v
    }

    fn job() -> JobLabel {
        JobLabel {
            index: 0,
            image: "api".into(),
            platform: Platform::parse("linux/arm64").unwrap(),
        }
    }

    #[test]
    fn vertexes_become_numbered_steps_and_logs_become_lines() {
        let mut tracker = StepTracker::default();
        let copy = Vertex {
            digest: "sha256:a".into(),
            name: "[1/2] COPY app /app".into(),
            ..at(10)
        };
        let run = Vertex {
            digest: "sha256:b".into(),
            name: "[2/2] RUN make".into(),
            cached: true,
            ..Default::default()
        };
        let events = tracker.update(
            &job(),
            &StatusResponse {
                vertexes: vec![copy.clone(), run],
                ..Default::default()
            },
        );
        assert_eq!(
            events,
            vec![
                BuildEvent::StepStarted {
                    job: job(),
                    step: 1,
                    name: "[1/2] COPY app /app".into()
                },
                BuildEvent::StepCached {
                    job: job(),
                    step: 2,
                    name: "[2/2] RUN make".into()
                },
            ]
        );
        // The cached step is not running; the started COPY is, until it completes.
        assert_eq!(
            tracker.running_step().as_deref(),
            Some("[1/2] COPY app /app")
        );
        let done = Vertex {
            completed: at(13).started,
            ..copy
        };
        let log = VertexLog {
            vertex: "sha256:a".into(),
            msg: b"line one\nline tw".to_vec(),
            ..Default::default()
        };
        let events = tracker.update(
            &job(),
            &StatusResponse {
                vertexes: vec![done],
                logs: vec![log],
                ..Default::default()
            },
        );
        assert_eq!(
            events,
            vec![
                BuildEvent::StepDone {
                    job: job(),
                    step: 1,
                    name: "[1/2] COPY app /app".into(),
                    seconds: 3.0
                },
                BuildEvent::LogLine {
                    job: job(),
                    step: 1,
                    line: "line one".into()
                },
            ]
        );
        assert_eq!(tracker.cached_steps(), 1);
        assert_eq!(tracker.running_step(), None);
        assert_eq!(tracker.failed_tail(), vec!["line one", "line tw"]);
        assert_eq!(
            tracker.failed_step().as_deref(),
            Some("[1/2] COPY app /app")
        );
    }
}
