//! The Dockerfile pre-flight, fast and without a daemon: the two warnings that catch
//! wrong-architecture images early: a stage that compiles on the target platform instead of
//! `$BUILDPLATFORM` (slow under emulation, fails without it), and `RUN`/`ADD` lines that
//! hard-code an architecture instead of using `TARGETARCH`. Pure: findings from a parsed file.

use std::path::Path;

use super::Dockerfile;
use crate::finding::{Finding, FindingKind};

/// Commands that compile, by the words they start with.
const COMPILERS: &[&str] = &[
    "go build",
    "go install",
    "cargo build",
    "cargo install",
    "gcc",
    "g++",
    "cc",
    "c++",
    "clang",
    "make",
    "cmake",
    "ninja",
    "npm ci",
    "npm install",
    "npm run build",
    "yarn",
    "pnpm",
    "mvn",
    "gradle",
    "./gradlew",
    "dotnet build",
    "dotnet publish",
    "rustc",
    "javac",
];

/// Architecture names that should come from `TARGETARCH` instead.
const ARCH_WORDS: &[&str] = &["amd64", "x86_64", "x86-64", "aarch64", "arm64"];

/// The pre-flight warnings for `file`.
pub fn preflight(dockerfile: &Dockerfile, file: &Path) -> Vec<Finding> {
    let mut findings = Vec::new();
    let on_build_platform = dockerfile.on_build_platform();
    for (index, stage) in dockerfile.stages.iter().enumerate() {
        let stage_name = stage
            .name
            .clone()
            .unwrap_or_else(|| format!("#{}", index + 1));
        if !on_build_platform[index] {
            let compiling = stage
                .instructions
                .iter()
                .filter(|x| x.keyword == "RUN")
                .find_map(|x| compiler_in(&x.args).map(|c| (x, c)));
            if let Some((run, compiler)) = compiling {
                findings.push(Finding::warning(
                    FindingKind::DockerfileArch,
                    format!(
                        "{}:{}: stage {stage_name} compiles (`{compiler}`) on the target platform: \
                         for every other platform the compiler runs under emulation (slow, or \
                         'exec format error' without QEMU); start the stage with \
                         `FROM --platform=$BUILDPLATFORM {}` and cross-compile for $TARGETARCH",
                        file.display(),
                        run.line,
                        stage.base
                    ),
                ));
            }
        }
        for x in &stage.instructions {
            if !matches!(x.keyword.as_str(), "RUN" | "ADD") || mentions_target(&x.args) {
                continue;
            }
            if let Some(word) = hard_coded_arch(&x.args) {
                findings.push(Finding::warning(
                    FindingKind::DockerfileArch,
                    format!(
                        "{}:{}: {} hard-codes `{word}`: every platform's image gets the {word} \
                         file; use ARG TARGETARCH and ${{TARGETARCH}} instead",
                        file.display(),
                        x.line,
                        x.keyword
                    ),
                ));
            }
        }
    }
    findings
}

fn compiler_in(command: &str) -> Option<&'static str> {
    let segments = command.split(['&', ';', '|', '\n', '(', ')']);
    for segment in segments {
        let words: Vec<&str> = segment
            .split_whitespace()
            .skip_while(|w| w.contains('=') && !w.starts_with('-'))
            .collect();
        let text = words.join(" ");
        for compiler in COMPILERS {
            if text == *compiler || text.starts_with(&format!("{compiler} ")) {
                return Some(compiler);
            }
        }
    }
    None
}

fn mentions_target(args: &str) -> bool {
    [
        "TARGETARCH",
        "TARGETPLATFORM",
        "TARGETVARIANT",
        "uname",
        "dpkg --print-architecture",
    ]
    .iter()
    .any(|w| args.contains(w))
}

fn hard_coded_arch(args: &str) -> Option<&'static str> {
    let lower = args.to_lowercase();
    ARCH_WORDS.iter().copied().find(|word| {
        lower.match_indices(word).any(|(at, _)| {
            let before = lower[..at].chars().next_back();
            let after = lower[at + word.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_alphanumeric())
                && !after.is_some_and(|c| c.is_ascii_alphanumeric())
        })
    })
}
