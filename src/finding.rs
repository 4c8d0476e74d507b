//! Findings: what `check`, `verify`, `build` and `audit` report, in the JSON shape of
//! `cli-contract.md`, and how a set of findings maps to an exit status.

use crate::platform::Platform;
use serde::{Deserialize, Serialize};

/// What kind of problem a finding is. The contract's kinds come first; archbuild adds a few
/// more (extensions are allowed by the contract) where a problem has no contract name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    ElfArchMismatch,
    ConfigPlatformMismatch,
    MissingEntrypoint,
    MissingLoader,
    MissingInterpreter,
    PlatformMissing,
    SingleArch,
    BrokenReference,
    CpuLevelMismatch,
    PageSize,
    /// A `DT_NEEDED` library the dynamic loader would not find in the image.
    MissingLibrary,
    /// A symbol version a program or library needs that the library picked does not define.
    LibraryVersionMissing,
    /// A file that starts with the ELF magic but cannot be read as ELF (truncated, bad header).
    MalformedElf,
    /// A path named in `check.binaries` that is not in the image.
    MissingBinary,
    /// A layer entry that could not be applied safely (path traversal, absurd size, bad tar).
    UnsafeLayerEntry,
    /// A Dockerfile line that will likely produce the wrong architecture (pre-flight).
    DockerfileArch,
    /// A `RUN` step that will run under emulation on its builder.
    Emulated,
    /// An audit document of a kind archbuild does not read.
    UnknownKind,
    /// A workload pinned by nodeSelector/nodeAffinity (informational in audits).
    Pinned,
}

impl FindingKind {
    /// The kebab-case name used in JSON and in human reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            FindingKind::ElfArchMismatch => "elf-arch-mismatch",
            FindingKind::ConfigPlatformMismatch => "config-platform-mismatch",
            FindingKind::MissingEntrypoint => "missing-entrypoint",
            FindingKind::MissingLoader => "missing-loader",
            FindingKind::MissingInterpreter => "missing-interpreter",
            FindingKind::PlatformMissing => "platform-missing",
            FindingKind::SingleArch => "single-arch",
            FindingKind::BrokenReference => "broken-reference",
            FindingKind::CpuLevelMismatch => "cpu-level-mismatch",
            FindingKind::PageSize => "page-size",
            FindingKind::MissingLibrary => "missing-library",
            FindingKind::LibraryVersionMissing => "library-version-missing",
            FindingKind::MalformedElf => "malformed-elf",
            FindingKind::MissingBinary => "missing-binary",
            FindingKind::UnsafeLayerEntry => "unsafe-layer-entry",
            FindingKind::DockerfileArch => "dockerfile-arch",
            FindingKind::Emulated => "emulated",
            FindingKind::UnknownKind => "unknown-kind",
            FindingKind::Pinned => "pinned",
        }
    }
}

/// `text` made safe for a terminal: control characters (C0 but tab, DEL, C1) and Unicode
/// direction overrides, which an image's paths, names or annotations may hold, are shown as
/// `\u{..}` escapes instead of being sent to the terminal, where they could move the cursor,
/// retitle the window or hide what follows. JSON output escapes them by itself.
pub fn for_terminal(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\t' && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// How bad a finding is: errors fail the run (exit 1), warnings and notes do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

/// One problem found, with enough context for a person to act on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symptom: Option<String>,
    pub message: String,
}

impl Finding {
    /// A finding with only its kind, severity and message; set the rest with the builders.
    pub fn new(kind: FindingKind, severity: Severity, message: impl Into<String>) -> Self {
        Finding {
            kind,
            severity,
            platform: None,
            image: None,
            path: None,
            layer: None,
            expected: None,
            actual: None,
            workload: None,
            container: None,
            symptom: None,
            message: message.into(),
        }
    }

    pub fn error(kind: FindingKind, message: impl Into<String>) -> Self {
        Finding::new(kind, Severity::Error, message)
    }

    pub fn warning(kind: FindingKind, message: impl Into<String>) -> Self {
        Finding::new(kind, Severity::Warning, message)
    }

    pub fn with_platform(mut self, platform: &Platform) -> Self {
        self.platform = Some(platform.clone());
        self
    }

    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    pub fn with_layer(mut self, layer: impl Into<String>) -> Self {
        self.layer = Some(layer.into());
        self
    }

    pub fn with_expected_actual(mut self, expected: impl ToString, actual: impl ToString) -> Self {
        self.expected = Some(expected.to_string());
        self.actual = Some(actual.to_string());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The outcome of a command that checks something, before it becomes an exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything checked passed (exit 0).
    Pass,
    /// The thing checked is wrong (exit 1).
    Findings,
}

impl Outcome {
    /// `Findings` when any finding is an error, else `Pass`.
    pub fn of(findings: &[Finding]) -> Outcome {
        if findings.iter().any(Finding::is_error) {
            Outcome::Findings
        } else {
            Outcome::Pass
        }
    }

    /// The contract's exit status: 0 pass, 1 findings (2 is for errors, see `main.rs`).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Pass => 0,
            Outcome::Findings => 1,
        }
    }
}

/// The `--json` document: `findings` first, then whatever else the command reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FindingsDocument<T: Serialize> {
    pub findings: Vec<Finding>,
    #[serde(flatten)]
    pub details: T,
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_never_reach_a_terminal() {
        assert_eq!(for_terminal("/usr/bin/ok"), "/usr/bin/ok");
        assert_eq!(
            for_terminal("/bin/\u{1b}]0;owned\u{7}x\u{9b}2J\u{202e}gpj"),
            "/bin/\\u{1b}]0;owned\\u{7}x\\u{9b}2J\\u{202e}gpj"
        );
    }

    use super::*;

    #[test]
    fn serialises_in_the_contract_shape() {
        let f = Finding::error(FindingKind::ElfArchMismatch, "wrong")
            .with_platform(&Platform::parse("linux/arm64").unwrap())
            .with_path("/app")
            .with_expected_actual("aarch64", "x86-64");
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["kind"], "elf-arch-mismatch");
        assert_eq!(v["severity"], "error");
        assert_eq!(v["platform"], "linux/arm64");
        assert_eq!(v["path"], "/app");
        assert!(v.get("workload").is_none());
        let back: Finding = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn kind_names_match_serde() {
        for kind in [
            FindingKind::ElfArchMismatch,
            FindingKind::MissingLoader,
            FindingKind::UnsafeLayerEntry,
            FindingKind::Pinned,
        ] {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
        }
    }

    #[test]
    fn outcome_counts_only_errors() {
        let warn = Finding::warning(FindingKind::MalformedElf, "x");
        assert_eq!(Outcome::of(std::slice::from_ref(&warn)), Outcome::Pass);
        let err = Finding::error(FindingKind::SingleArch, "y");
        assert_eq!(Outcome::of(&[warn, err]).exit_code(), 1);
        assert_eq!(Outcome::of(&[]).exit_code(), 0);
    }
}
