//! Dockerfile pre-flight, fast and without a daemon: the stages (`FROM [--platform=] IMAGE
//! [AS NAME]`) and their `RUN`/`ADD`/`COPY` lines (continuations joined, heredoc bodies kept
//! with their instruction), and the two warnings that catch wrong-architecture images early:
//! a stage that compiles on the target platform instead of `$BUILDPLATFORM` (slow under
//! emulation, fails without it), and `RUN`/`ADD` lines that hard-code an architecture instead
//! of using `TARGETARCH`.
//!
//! Pure: [`parse`] reads text; [`preflight`] returns findings.

use std::path::Path;

use crate::finding::{Finding, FindingKind};

/// One instruction, with the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Upper-case keyword: `RUN`, `COPY`, ...
    pub keyword: String,
    /// Everything after the keyword, continuation lines joined, heredoc bodies appended.
    pub args: String,
    pub line: usize,
}

/// One `FROM` and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub base: String,
    pub name: Option<String>,
    /// The `--platform=` flag as written.
    pub platform_flag: Option<String>,
    pub line: usize,
    pub instructions: Vec<Instruction>,
}

/// The stages of a Dockerfile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dockerfile {
    pub stages: Vec<Stage>,
}

/// Reads a Dockerfile's instructions. Lenient: what it does not understand it skips, since
/// BuildKit will report real syntax errors with its own words.
pub fn parse(text: &str) -> Dockerfile {
    let lines: Vec<&str> = text.lines().collect();
    let mut stages: Vec<Stage> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let trimmed = lines[i].trim();
        i += 1;
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut logical = trimmed.to_string();
        while logical.ends_with('\\') && i < lines.len() {
            logical.pop();
            let next = lines[i].trim();
            i += 1;
            if next.starts_with('#') {
                continue;
            }
            logical.push(' ');
            logical.push_str(next);
        }
        for delimiter in heredoc_delimiters(&logical) {
            while i < lines.len() {
                let body = lines[i];
                i += 1;
                if body.trim() == delimiter {
                    break;
                }
                logical.push('\n');
                logical.push_str(body);
            }
        }
        let (keyword, args) = logical
            .split_once(char::is_whitespace)
            .unwrap_or((logical.as_str(), ""));
        let keyword = keyword.to_ascii_uppercase();
        let args = args.trim().to_string();
        if keyword == "FROM" {
            stages.push(from_stage(&args, start + 1));
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(Instruction {
                keyword,
                args,
                line: start + 1,
            });
        }
    }
    Dockerfile { stages }
}

fn from_stage(args: &str, line: usize) -> Stage {
    let mut platform_flag = None;
    let mut words = Vec::new();
    for word in args.split_whitespace() {
        if let Some(value) = word.strip_prefix("--platform=") {
            platform_flag = Some(value.to_string());
        } else if !word.starts_with("--") {
            words.push(word);
        }
    }
    let name = match words.as_slice() {
        [_, as_word, name, ..] if as_word.eq_ignore_ascii_case("as") => Some(name.to_lowercase()),
        _ => None,
    };
    Stage {
        base: words.first().unwrap_or(&"").to_string(),
        name,
        platform_flag,
        line,
        instructions: Vec::new(),
    }
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"` in an instruction: the words that end its heredocs.
fn heredoc_delimiters(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("<<") {
        let after = rest[at + 2..].trim_start_matches('-');
        let word: String = after
            .trim_matches(|c| c == '"' || c == '\'')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !word.is_empty()
            && after.starts_with(|c: char| c.is_ascii_uppercase() || c == '"' || c == '\'')
        {
            found.push(word);
        }
        rest = &rest[at + 2..];
    }
    found
}

impl Dockerfile {
    /// The stage names, in order.
    pub fn stage_names(&self) -> Vec<String> {
        self.stages.iter().filter_map(|s| s.name.clone()).collect()
    }

    /// Whether stage `index` runs on the build platform (`--platform=$BUILDPLATFORM`, directly
    /// or by starting from a stage that does).
    pub fn on_build_platform(&self, index: usize) -> bool {
        let stage = &self.stages[index];
        if let Some(flag) = &stage.platform_flag {
            return flag.contains("BUILDPLATFORM");
        }
        let base = stage.base.to_lowercase();
        self.stages[..index]
            .iter()
            .rposition(|s| s.name.as_deref() == Some(base.as_str()))
            .is_some_and(|parent| self.on_build_platform(parent))
    }

    /// Whether building `target` (or the last stage) runs any `RUN` step on the target
    /// platform, which needs emulation when the builder is another architecture.
    pub fn runs_on_target(&self, target: Option<&str>) -> bool {
        let end = target
            .and_then(|t| {
                self.stages
                    .iter()
                    .position(|s| s.name.as_deref() == Some(&t.to_lowercase()))
            })
            .unwrap_or(self.stages.len().saturating_sub(1));
        (0..self.stages.len().min(end + 1)).any(|i| {
            !self.on_build_platform(i)
                && self.stages[i]
                    .instructions
                    .iter()
                    .any(|x| x.keyword == "RUN")
        })
    }
}

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
    for (index, stage) in dockerfile.stages.iter().enumerate() {
        let stage_name = stage
            .name
            .clone()
            .unwrap_or_else(|| format!("#{}", index + 1));
        if !dockerfile.on_build_platform(index) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const CROSS: &str = "\
# syntax=docker/dockerfile:1
FROM --platform=$BUILDPLATFORM golang:1.22 AS build
ARG TARGETOS TARGETARCH
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH \\
    go build -o /out/app .
FROM scratch
COPY --from=build /out/app /app
";

    #[test]
    fn stages_names_and_lines() {
        let df = parse(CROSS);
        assert_eq!(df.stages.len(), 2);
        assert_eq!(df.stage_names(), vec!["build"]);
        assert_eq!(
            df.stages[0].platform_flag.as_deref(),
            Some("$BUILDPLATFORM")
        );
        assert_eq!(df.stages[0].instructions[1].line, 4);
        assert_eq!(
            df.stages[0].instructions[1].args,
            "GOOS=$TARGETOS GOARCH=$TARGETARCH  go build -o /out/app ."
        );
        assert_eq!(df.stages[1].line, 6);
        assert!(!df.runs_on_target(None));
        assert!(preflight(&df, Path::new("Dockerfile")).is_empty());
    }

    #[test]
    fn compiling_on_the_target_platform_is_flagged_with_file_and_line() {
        let df = parse("FROM golang:1.22 AS build\nCOPY . .\nRUN go build -o /app .\nFROM scratch\nCOPY --from=build /app /app\n");
        assert!(df.runs_on_target(None));
        let findings = preflight(&df, Path::new("docker/Dockerfile"));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].kind, FindingKind::DockerfileArch);
        assert!(findings[0]
            .message
            .starts_with("docker/Dockerfile:3: stage build compiles (`go build`)"));
    }

    #[test]
    fn inherited_build_platform_counts() {
        let df = parse("FROM --platform=$BUILDPLATFORM rust AS base\nFROM base AS build\nRUN cargo build --release\n");
        assert!(df.on_build_platform(1));
        assert!(preflight(&df, Path::new("Dockerfile")).is_empty());
    }

    #[test]
    fn hard_coded_architectures_are_flagged_unless_target_arch_decides() {
        let df = parse(
            "FROM alpine\n\
             RUN wget https://example.com/tool-linux-amd64.tar.gz\n\
             ADD https://example.com/x_Linux_x86_64.tgz /tmp/\n\
             RUN if [ \"$TARGETARCH\" = arm64 ]; then echo ok; fi\n\
             RUN echo darwin64\n",
        );
        let findings = preflight(&df, Path::new("Dockerfile"));
        let lines: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(findings.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("Dockerfile:2: RUN hard-codes `amd64`"));
        assert!(lines[1].starts_with("Dockerfile:3: ADD hard-codes `x86_64`"));
    }

    #[test]
    fn heredoc_bodies_belong_to_their_run() {
        let df = parse("FROM debian\nRUN <<EOF\nset -e\nmake all\nEOF\nCOPY x /x\n");
        let stage = &df.stages[0];
        assert_eq!(stage.instructions.len(), 2);
        assert_eq!(stage.instructions[1].keyword, "COPY");
        assert_eq!(stage.instructions[1].line, 6);
        let findings = preflight(&df, Path::new("Dockerfile"));
        assert!(findings[0].message.contains("`make`"), "{findings:?}");
    }
}
