//! Build errors a caller can branch on, and the reading of BuildKit's error text into them
//! ([`classify`]): Dockerfile syntax errors with file:line, failing `RUN` steps with their exit
//! code, unknown target stages, and `exec format error`, which gets its two real fixes.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::platform::Platform;

use super::events::JobLabel;

/// Why a build did not produce an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("cannot reach the Docker daemon at {endpoint}{}: {reason}", chosen(.chosen_by))]
    Unreachable {
        endpoint: String,
        chosen_by: Option<String>,
        reason: String,
    },
    #[error("unsupported builder endpoint \"{endpoint}\": {reason}")]
    BadEndpoint { endpoint: String, reason: String },
    #[error("build context {} does not exist or is not a folder", .path.display())]
    MissingContext { path: PathBuf },
    #[error("Dockerfile {} not found", .path.display())]
    MissingDockerfile { path: PathBuf },
    #[error("{} (context {})", .source, .path.display())]
    Ignore {
        path: PathBuf,
        source: super::dockerignore::PatternError,
    },
    #[error("{}: {message}", location(.file, *.line))]
    DockerfileSyntax {
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{}: no stage named \"{target}\" (the --target / target setting){}", .file.display(), stage_list(.stages))]
    UnknownTarget {
        file: PathBuf,
        target: String,
        stages: Vec<String>,
    },
    #[error("step `{step}` failed{}{}", exit(*.exit_code), tail(.log_tail))]
    StepFailed {
        step: String,
        exit_code: Option<i32>,
        log_tail: Vec<String>,
    },
    #[error("{}", exec_format_message(.platform, .builder.as_deref(), .step))]
    ExecFormat {
        platform: Platform,
        /// The builder's own platform (`linux/amd64`), when known.
        builder: Option<String>,
        step: String,
    },
    #[error("the builder at {endpoint} cannot build {platform}: {message}")]
    UnsupportedPlatform {
        endpoint: String,
        platform: Platform,
        message: String,
    },
    #[error("the daemon at {endpoint} reported: {message}")]
    Daemon { endpoint: String, message: String },
    #[error("the builder at {endpoint} went away during {}: {reason}; nothing was published; when the builder is back, run the build again (the steps it finished are in its cache)", during(.step))]
    BuilderLost {
        endpoint: String,
        /// The step that was running, when one was.
        step: Option<String>,
        reason: String,
    },
    #[error("{}: {message}", .path.display())]
    Io { path: PathBuf, message: String },
    #[error("cancelled")]
    Cancelled,
    #[error("{}", failures_message(.0))]
    Failed(Vec<(JobLabel, BuildError)>),
}

impl BuildError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> BuildError {
        BuildError::Io {
            path: path.into(),
            message: err.to_string(),
        }
    }

    /// The failed jobs, when this is [`BuildError::Failed`].
    pub fn failures(&self) -> &[(JobLabel, BuildError)] {
        match self {
            BuildError::Failed(list) => list,
            _ => &[],
        }
    }
}

fn chosen(by: &Option<String>) -> String {
    by.as_ref()
        .map(|b| format!(" (chosen by {b})"))
        .unwrap_or_default()
}

fn during(step: &Option<String>) -> String {
    step.as_ref()
        .map(|s| format!("step `{s}`"))
        .unwrap_or_else(|| "the build".into())
}

fn location(file: &std::path::Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", file.display()),
        None => file.display().to_string(),
    }
}

fn stage_list(stages: &[String]) -> String {
    if stages.is_empty() {
        "; the Dockerfile names no stages (use FROM ... AS NAME)".into()
    } else {
        format!("; its stages are: {}", stages.join(", "))
    }
}

fn exit(code: Option<i32>) -> String {
    code.map(|c| format!(" with exit code {c}"))
        .unwrap_or_default()
}

fn tail(lines: &[String]) -> String {
    let mut out = String::new();
    for line in lines {
        let _ = write!(out, "\n  | {line}");
    }
    out
}

fn failures_message(list: &[(JobLabel, BuildError)]) -> String {
    let mut out = format!(
        "{} of the build jobs failed:",
        if list.len() == 1 {
            "one".to_string()
        } else {
            list.len().to_string()
        }
    );
    for (job, err) in list {
        let _ = write!(out, "\n[{job}] {}", err.to_string().replace('\n', "\n  "));
    }
    out
}

fn exec_format_message(platform: &Platform, builder: Option<&str>, step: &str) -> String {
    let builder = builder
        .map(|b| format!("a {b} builder"))
        .unwrap_or_else(|| "the builder".into());
    let arch = &platform.architecture;
    format!(
        "step `{step}` failed with 'exec format error': {builder} cannot run {platform} programs \
         (no binfmt/QEMU handler is registered for them).\nTwo ways to fix it:\n  \
         1. build {platform} on a native builder: in archbuild.toml add\n       \
         [builders]\n       \"{platform}\" = \"ssh://user@{arch}-host\"\n  \
         2. cross-compile on the build platform, so no {arch} program runs during the build:\n       \
         FROM --platform=$BUILDPLATFORM golang:1.22 AS build\n       \
         ARG TARGETOS TARGETARCH\n       \
         RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /out/app .\n       \
         FROM scratch\n       \
         COPY --from=build /out/app /app"
    )
}

/// What a failed build was doing, as far as the progress stream told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureContext {
    pub dockerfile: PathBuf,
    pub platform: Option<Platform>,
    pub builder: Option<Platform>,
    pub endpoint: String,
    /// The name of the vertex that failed (`[build 3/4] RUN make`), if known.
    pub failed_step: Option<String>,
    /// Its last log lines.
    pub log_tail: Vec<String>,
    pub target: Option<String>,
    pub stages: Vec<String>,
}

/// Turns BuildKit's error text (as the Docker API reports it) into a typed error.
pub fn classify(message: &str, ctx: &FailureContext) -> BuildError {
    let lower = message.to_lowercase();
    let exec_format = lower.contains("exec format error")
        || ctx
            .log_tail
            .iter()
            .any(|l| l.to_lowercase().contains("exec format error"));
    if exec_format {
        if let Some(platform) = &ctx.platform {
            return BuildError::ExecFormat {
                platform: platform.clone(),
                builder: ctx.builder.as_ref().map(Platform::to_string),
                step: step_name(message, ctx),
            };
        }
    }
    if let Some(target) = unknown_target(message) {
        return BuildError::UnknownTarget {
            file: ctx.dockerfile.clone(),
            target,
            stages: ctx.stages.clone(),
        };
    }
    if let Some(pos) = lower.find("dockerfile parse error") {
        let detail = &message[pos..];
        let line = detail
            .split("line ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok());
        let text = detail.split_once(": ").map_or(detail, |(_, t)| t).trim();
        return BuildError::DockerfileSyntax {
            file: ctx.dockerfile.clone(),
            line,
            message: text.to_string(),
        };
    }
    if lower.contains("no build stage in current context")
        || lower.contains("file with no instructions")
    {
        return BuildError::DockerfileSyntax {
            file: ctx.dockerfile.clone(),
            line: None,
            message: "no FROM instruction (a Dockerfile must start its stages with FROM)".into(),
        };
    }
    if let Some(code) = exit_code(message) {
        return BuildError::StepFailed {
            step: step_name(message, ctx),
            exit_code: Some(code),
            log_tail: ctx.log_tail.clone(),
        };
    }
    if lower.contains("no match for platform") || lower.contains("not supported") {
        if let Some(platform) = &ctx.platform {
            return BuildError::UnsupportedPlatform {
                endpoint: ctx.endpoint.clone(),
                platform: platform.clone(),
                message: message.to_string(),
            };
        }
    }
    if ctx.failed_step.is_some() {
        return BuildError::StepFailed {
            step: step_name(message, ctx),
            exit_code: None,
            log_tail: with_message(&ctx.log_tail, message),
        };
    }
    BuildError::Daemon {
        endpoint: ctx.endpoint.clone(),
        message: message.to_string(),
    }
}

fn with_message(tail: &[String], message: &str) -> Vec<String> {
    let mut lines = tail.to_vec();
    lines.push(message.to_string());
    lines
}

fn step_name(message: &str, ctx: &FailureContext) -> String {
    if let Some(step) = &ctx.failed_step {
        return step.clone();
    }
    // "executor failed running [/bin/sh -c make]: exit code: 2" (BuildKit in Docker 20.10)
    // or "process \"/bin/sh -c make\" did not complete successfully: exit code: 2" (newer).
    if let Some(start) = message.find("running [") {
        if let Some(end) = message[start..].find("]:") {
            return format!("RUN {}", &message[start + 9..start + end]);
        }
    }
    if let Some(start) = message.find("process \"") {
        if let Some(end) = message[start + 9..].find('"') {
            return format!("RUN {}", &message[start + 9..start + 9 + end]);
        }
    }
    "RUN".into()
}

fn exit_code(message: &str) -> Option<i32> {
    let at = message.rfind("exit code: ")?;
    message[at + 11..]
        .split(|c: char| !c.is_ascii_digit() && c != '-')
        .next()?
        .parse()
        .ok()
}

fn unknown_target(message: &str) -> Option<String> {
    // "target stage foo could not be found" (BuildKit's dockerfile frontend).
    let at = message.find("target stage ")?;
    let rest = &message[at + 13..];
    let end = rest.find(" could not be found")?;
    Some(rest[..end].trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> FailureContext {
        FailureContext {
            dockerfile: "Dockerfile".into(),
            platform: Some(Platform::parse("linux/arm64").unwrap()),
            builder: Some(Platform::parse("linux/amd64").unwrap()),
            endpoint: "unix:///var/run/docker.sock".into(),
            ..Default::default()
        }
    }

    #[test]
    fn dockerfile_parse_error_names_file_and_line() {
        let msg = "failed to solve with frontend dockerfile.v0: failed to create LLB definition: \
                   dockerfile parse error line 3: unknown instruction: FORM";
        let err = classify(msg, &ctx());
        assert_eq!(
            err,
            BuildError::DockerfileSyntax {
                file: "Dockerfile".into(),
                line: Some(3),
                message: "unknown instruction: FORM".into()
            }
        );
        assert_eq!(err.to_string(), "Dockerfile:3: unknown instruction: FORM");
    }

    #[test]
    fn failing_run_keeps_exit_code_and_tail() {
        let mut c = ctx();
        c.log_tail = vec!["make: *** [all] Error 2".into()];
        let msg = "executor failed running [/bin/sh -c make]: exit code: 2";
        let err = classify(msg, &c);
        assert_eq!(
            err,
            BuildError::StepFailed {
                step: "RUN /bin/sh -c make".into(),
                exit_code: Some(2),
                log_tail: vec!["make: *** [all] Error 2".into()]
            }
        );
        assert!(err.to_string().contains("exit code 2"));
        assert!(err.to_string().contains("| make: *** [all] Error 2"));
    }

    #[test]
    fn exec_format_error_names_both_fixes() {
        let mut c = ctx();
        c.log_tail = vec!["exec /bin/sh: exec format error".into()];
        let err = classify(
            "executor failed running [/bin/sh -c true]: exit code: 1",
            &c,
        );
        let text = err.to_string();
        assert!(matches!(err, BuildError::ExecFormat { .. }));
        assert!(text.contains("cannot run linux/arm64 programs"), "{text}");
        assert!(text.contains("[builders]"), "{text}");
        assert!(text.contains("FROM --platform=$BUILDPLATFORM"), "{text}");
        assert!(text.contains("TARGETARCH"), "{text}");
    }

    #[test]
    fn unknown_target_lists_stages() {
        let mut c = ctx();
        c.stages = vec!["build".into(), "runtime".into()];
        let err = classify(
            "failed to create LLB definition: target stage tset could not be found",
            &c,
        );
        assert_eq!(
            err.to_string(),
            "Dockerfile: no stage named \"tset\" (the --target / target setting); its stages are: build, runtime"
        );
    }

    #[test]
    fn unreachable_names_endpoint_and_choice() {
        let err = BuildError::Unreachable {
            endpoint: "tcp://127.0.0.1:1".into(),
            chosen_by: Some("[builders] \"linux/arm64\"".into()),
            reason: "connection refused".into(),
        };
        assert_eq!(
            err.to_string(),
            "cannot reach the Docker daemon at tcp://127.0.0.1:1 (chosen by [builders] \"linux/arm64\"): connection refused"
        );
    }
}
