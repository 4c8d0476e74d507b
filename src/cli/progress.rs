//! Drawing build progress on standard error. The build module reports [`BuildEvent`]s; this is
//! the only place that knows about terminals: an indicatif spinner per job on a terminal
//! (current step, cached steps, elapsed), one prefixed line per step in `plain` mode (the
//! default when standard error is not a terminal, as in Makefiles and CI), one JSON object per
//! line in `json` mode. A failed job's last log lines are shown under its name in every mode.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use crate::buildkit::{BuildEvent, JobLabel};

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ProgressMode {
    /// Bars on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Bars, one per job.
    Tty,
    /// One prefixed line per step.
    Plain,
    /// One JSON event per line.
    Json,
}

impl ProgressMode {
    /// `Auto` decided by whether standard error is a terminal.
    pub fn resolve(self) -> ProgressMode {
        match self {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            other => other,
        }
    }
}

/// Draws events until the channel closes.
pub async fn draw(mode: ProgressMode, mut events: mpsc::Receiver<BuildEvent>) {
    match mode.resolve() {
        ProgressMode::Tty => draw_bars(events).await,
        ProgressMode::Json => {
            while let Some(event) = events.recv().await {
                if let Ok(line) = serde_json::to_string(&event) {
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            }
        }
        _ => {
            while let Some(event) = events.recv().await {
                let text = plain_lines(&event);
                if !text.is_empty() {
                    let _ = std::io::stderr().lock().write_all(text.as_bytes());
                }
            }
        }
    }
}

/// The plain-mode lines for one event (each ending in a newline; empty for none).
pub fn plain_lines(event: &BuildEvent) -> String {
    let job = event.job();
    match event {
        BuildEvent::JobStarted {
            endpoint,
            emulated,
            rebuild_reason,
            ..
        } => format!(
            "[{job}] building on {endpoint}{}{}\n",
            if *emulated {
                " (RUN steps emulated)"
            } else {
                ""
            },
            rebuild_reason
                .as_ref()
                .map(|why| format!(" ({})", crate::finding::for_terminal(why)))
                .unwrap_or_default()
        ),
        BuildEvent::JobMoved {
            from,
            to,
            reason,
            restarted,
            ..
        } => moved_line(job, from, to, reason, *restarted),
        BuildEvent::StepStarted { step, name, .. } => format!("[{job}] #{step} {name}\n"),
        BuildEvent::StepCached { step, name, .. } => format!("[{job}] #{step} CACHED {name}\n"),
        BuildEvent::StepDone { step, seconds, .. } => {
            format!("[{job}] #{step} DONE {seconds:.1}s\n")
        }
        BuildEvent::LogLine { step, line, .. } => format!("[{job}] #{step} {line}\n"),
        BuildEvent::JobFinished {
            image_id,
            seconds,
            cached_steps,
            reused,
            ..
        } => {
            if *reused {
                format!("[{job}] unchanged: reusing {}\n", short(image_id))
            } else {
                format!(
                    "[{job}] built {} in {seconds:.1}s ({cached_steps} steps cached)\n",
                    short(image_id)
                )
            }
        }
        BuildEvent::JobFailed {
            error, log_tail, ..
        } => failure_lines(job, error, log_tail),
        BuildEvent::JobChecked {
            errors,
            warnings,
            remembered,
            compressed,
            ..
        } => checked_line(job, (*errors, *warnings), *remembered, *compressed),
    }
}

fn checked_line(
    job: &JobLabel,
    (errors, warnings): (usize, usize),
    remembered: bool,
    compressed: bool,
) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let findings = match (errors, warnings) {
        (0, 0) => "no findings".to_string(),
        (e, 0) => plural(e, "error"),
        (0, w) => plural(w, "warning"),
        (e, w) => format!("{}, {}", plural(e, "error"), plural(w, "warning")),
    };
    let how = match (remembered, compressed) {
        (true, _) => " (remembered from an earlier check)",
        (false, true) => "; layers compressed for publishing",
        (false, false) => "",
    };
    format!("[{job}] checked: {findings}{how}\n")
}

fn moved_line(job: &JobLabel, from: &str, to: &str, reason: &str, restarted: bool) -> String {
    let reason = reason.lines().next().unwrap_or_default();
    let text = if restarted {
        format!("[{job}] builder {from} was lost, building again on {to}: it {reason}\n")
    } else {
        format!("[{job}] builder {from} is down, building on {to} instead: {reason}\n")
    };
    crate::finding::for_terminal(&text).into_owned()
}

fn failure_lines(job: &JobLabel, error: &str, log_tail: &[String]) -> String {
    let first = error.lines().next().unwrap_or_default();
    let mut out = format!("[{job}] FAILED: {first}\n");
    // The error's own text already carries the tail for failed steps; show it once.
    let shown: Vec<&str> = if log_tail.is_empty() {
        error.lines().skip(1).collect()
    } else {
        log_tail.iter().map(String::as_str).collect()
    };
    for line in shown {
        let line = line.trim_start().trim_start_matches("| ");
        out.push_str(&format!("[{job}]   | {line}\n"));
    }
    out
}

fn short(image_id: &str) -> &str {
    let hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    &hex[..hex.len().min(12)]
}

async fn draw_bars(mut events: mpsc::Receiver<BuildEvent>) {
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{spinner} {prefix:.bold} [{elapsed:>4}] {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut bars: HashMap<usize, (ProgressBar, usize)> = HashMap::new();
    while let Some(event) = events.recv().await {
        let job = event.job().clone();
        let (bar, cached) = bars.entry(job.index).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(style.clone());
            bar.set_prefix(job.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            (bar, 0)
        });
        match &event {
            BuildEvent::JobStarted { endpoint, .. } => bar.set_message(format!("on {endpoint}")),
            BuildEvent::JobMoved {
                from,
                to,
                reason,
                restarted,
                ..
            } => {
                let line = moved_line(&job, from, to, reason, *restarted);
                let _ = multi.println(line.trim_end());
            }
            BuildEvent::StepStarted { step, name, .. } => {
                bar.set_message(format!("#{step} {name} ({cached} cached)"))
            }
            BuildEvent::StepCached { .. } => *cached += 1,
            BuildEvent::StepDone { .. } | BuildEvent::LogLine { .. } => {}
            BuildEvent::JobFinished {
                image_id, reused, ..
            } => {
                let what = if *reused { "unchanged" } else { "built" };
                bar.finish_with_message(format!("{what} {} ({cached} cached)", short(image_id)));
            }
            BuildEvent::JobFailed {
                error, log_tail, ..
            } => {
                bar.abandon_with_message("FAILED");
                let _ = multi.println(failure_lines(&job, error, log_tail).trim_end());
            }
            BuildEvent::JobChecked {
                errors,
                warnings,
                remembered,
                compressed,
                ..
            } => {
                let line = checked_line(&job, (*errors, *warnings), *remembered, *compressed);
                let _ = multi.println(line.trim_end());
            }
        }
    }
    for (bar, _) in bars.values() {
        if !bar.is_finished() {
            bar.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Platform;

    fn job() -> JobLabel {
        JobLabel {
            index: 0,
            image: "api".into(),
            platform: Platform::parse("linux/arm64").unwrap(),
        }
    }

    #[test]
    fn plain_lines_are_prefixed_with_the_job() {
        let started = BuildEvent::StepStarted {
            job: job(),
            step: 3,
            name: "[2/3] COPY app /app".into(),
        };
        assert_eq!(
            plain_lines(&started),
            "[api linux/arm64] #3 [2/3] COPY app /app\n"
        );
        let cached = BuildEvent::StepCached {
            job: job(),
            step: 2,
            name: "[1/3] FROM x".into(),
        };
        assert_eq!(
            plain_lines(&cached),
            "[api linux/arm64] #2 CACHED [1/3] FROM x\n"
        );
        let finished = BuildEvent::JobFinished {
            job: job(),
            image_id: "sha256:0123456789abcdef".into(),
            seconds: 2.04,
            cached_steps: 1,
            reused: false,
        };
        assert_eq!(
            plain_lines(&finished),
            "[api linux/arm64] built 0123456789ab in 2.0s (1 steps cached)\n"
        );
    }

    #[test]
    fn failures_show_the_log_tail_under_the_job() {
        let failed = BuildEvent::JobFailed {
            job: job(),
            error: "step `RUN make` failed with exit code 2\n  | make: error".into(),
            log_tail: vec!["cc: fatal".into(), "make: error".into()],
        };
        assert_eq!(
            plain_lines(&failed),
            "[api linux/arm64] FAILED: step `RUN make` failed with exit code 2\n\
             [api linux/arm64]   | cc: fatal\n\
             [api linux/arm64]   | make: error\n"
        );
    }

    #[test]
    fn a_check_during_the_builds_says_what_it_found() {
        let checked = |errors, warnings, compressed| {
            plain_lines(&BuildEvent::JobChecked {
                job: job(),
                errors,
                warnings,
                remembered: false,
                compressed,
            })
        };
        let remembered = BuildEvent::JobChecked {
            job: job(),
            errors: 0,
            warnings: 2,
            remembered: true,
            compressed: false,
        };
        assert_eq!(
            plain_lines(&remembered),
            "[api linux/arm64] checked: 2 warnings (remembered from an earlier check)\n"
        );
        assert_eq!(
            checked(0, 0, true),
            "[api linux/arm64] checked: no findings; layers compressed for publishing\n"
        );
        assert_eq!(
            checked(1, 3, false),
            "[api linux/arm64] checked: 1 error, 3 warnings\n"
        );
        assert_eq!(
            checked(0, 1, false),
            "[api linux/arm64] checked: 1 warning\n"
        );
        let v = serde_json::to_value(BuildEvent::JobChecked {
            job: job(),
            errors: 2,
            warnings: 0,
            remembered: false,
            compressed: false,
        })
        .unwrap();
        assert_eq!(
            (v["event"].as_str(), v["errors"].as_u64()),
            (Some("job-checked"), Some(2))
        );
    }

    #[test]
    fn a_job_moved_says_whether_its_builder_was_down_or_lost_mid_build() {
        let moved = |restarted| BuildEvent::JobMoved {
            job: job(),
            from: "tcp://a:2376".into(),
            to: "tcp://b:2376".into(),
            reason: "went away during step `[2/2] RUN make`: no answer".into(),
            restarted,
        };
        assert_eq!(
            plain_lines(&moved(true)),
            "[api linux/arm64] builder tcp://a:2376 was lost, building again on tcp://b:2376: \
             it went away during step `[2/2] RUN make`: no answer\n"
        );
        assert!(plain_lines(&moved(false)).contains("is down, building on tcp://b:2376 instead"));
        let v = serde_json::to_value(moved(true)).unwrap();
        assert_eq!(
            (v["event"].as_str(), v["restarted"].as_bool()),
            (Some("job-moved"), Some(true))
        );
    }

    #[test]
    fn json_events_name_their_kind() {
        let event = BuildEvent::StepCached {
            job: job(),
            step: 1,
            name: "x".into(),
        };
        let v = serde_json::to_value(&event).unwrap();
        assert_eq!(v["event"], "step-cached");
        assert_eq!(v["job"]["platform"], "linux/arm64");
    }
}
