//! The one Dockerfile reader, for the build pre-flight and for `audit --check-bases`: parser
//! directives (`# escape=`, `# syntax=`), global `ARG`s, the stages (`FROM [--platform=] IMAGE
//! [AS NAME]`) and their instructions, read by Docker's rules: continuation lines end with the
//! escape character (`\` or `` ` ``), comment and empty lines inside a continuation are
//! dropped, and heredoc bodies (`RUN`/`COPY`/`ADD <<EOF`) belong to their instruction.
//!
//! Pure: [`parse`] reads text; [`preflight`] turns it into warnings. Lenient: what it does not
//! understand it skips, since BuildKit reports real syntax errors in its own words.

mod preflight;
#[cfg(test)]
mod tests;

pub use preflight::preflight;

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
    /// The image (or earlier stage) as written, build arguments not substituted.
    pub base: String,
    /// The `AS` name, lower-cased as BuildKit compares it.
    pub name: Option<String>,
    /// The `--platform=` flag as written.
    pub platform_flag: Option<String>,
    pub line: usize,
    pub instructions: Vec<Instruction>,
}

/// A global `ARG` (declared before the first `FROM`), usable in `FROM` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalArg {
    pub name: String,
    pub default: Option<String>,
    pub line: usize,
}

/// The parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character from `# escape=` (`\` unless set).
    pub escape: char,
    pub global_args: Vec<GlobalArg>,
    pub stages: Vec<Stage>,
}

impl Default for Dockerfile {
    fn default() -> Self {
        Dockerfile {
            escape: '\\',
            global_args: Vec::new(),
            stages: Vec::new(),
        }
    }
}

/// The directives BuildKit knows; any other `# key=value` line is a comment.
const DIRECTIVES: &[&str] = &["syntax", "escape", "check"];

/// Heredocs are read only on these instructions, as BuildKit does.
const HEREDOC_KEYWORDS: &[&str] = &["RUN", "COPY", "ADD"];

/// Reads a Dockerfile.
pub fn parse(text: &str) -> Dockerfile {
    let lines: Vec<&str> = text.lines().collect();
    let (escape, mut i) = directives(&lines);
    let mut dockerfile = Dockerfile {
        escape,
        ..Dockerfile::default()
    };
    while i < lines.len() {
        let start = i;
        let trimmed = lines[i].trim();
        i += 1;
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut logical = String::new();
        let mut current = trimmed;
        loop {
            match continued(current, escape) {
                Some(body) if i < lines.len() => {
                    logical.push_str(body);
                    logical.push(' ');
                    // Comment and empty lines inside a continuation are dropped.
                    while i < lines.len()
                        && (lines[i].trim().is_empty() || lines[i].trim_start().starts_with('#'))
                    {
                        i += 1;
                    }
                    match lines.get(i) {
                        Some(next) => {
                            current = next.trim();
                            i += 1;
                        }
                        None => break,
                    }
                }
                Some(body) => {
                    logical.push_str(body);
                    break;
                }
                None => {
                    logical.push_str(current);
                    break;
                }
            }
        }
        let (keyword, args) = logical
            .split_once(char::is_whitespace)
            .unwrap_or((logical.as_str(), ""));
        let keyword = keyword.to_ascii_uppercase();
        let mut args = args.trim().to_string();
        if HEREDOC_KEYWORDS.contains(&keyword.as_str()) {
            for heredoc in heredocs(&args) {
                while let Some(body) = lines.get(i) {
                    i += 1;
                    if heredoc.ends_at(body) {
                        break;
                    }
                    args.push('\n');
                    args.push_str(body);
                }
            }
        }
        dockerfile.add(keyword, args, start + 1);
    }
    dockerfile
}

impl Dockerfile {
    fn add(&mut self, keyword: String, args: String, line: usize) {
        if keyword == "FROM" {
            self.stages.push(from_stage(&args, line));
        } else if let Some(stage) = self.stages.last_mut() {
            stage.instructions.push(Instruction {
                keyword,
                args,
                line,
            });
        } else if keyword == "ARG" {
            self.global_args.extend(arg_declarations(&args, line));
        }
    }

    /// The stage names, in order.
    pub fn stage_names(&self) -> Vec<String> {
        self.stages.iter().filter_map(|s| s.name.clone()).collect()
    }

    /// For each stage, the earlier stage it starts from (`FROM build`), if its base is one.
    /// Names compare case-insensitively and the latest stage of a name wins, as in BuildKit.
    pub fn parents(&self) -> Vec<Option<usize>> {
        let mut named: std::collections::HashMap<&str, usize> = Default::default();
        let mut out = Vec::with_capacity(self.stages.len());
        for (index, stage) in self.stages.iter().enumerate() {
            out.push(named.get(stage.base.to_lowercase().as_str()).copied());
            if let Some(name) = &stage.name {
                named.insert(name, index);
            }
        }
        out
    }

    /// For each stage, whether it runs on the build platform (`--platform=$BUILDPLATFORM`,
    /// directly or by starting from a stage that does). One pass in order, no recursion: a
    /// stage can only start from an earlier one.
    pub fn on_build_platform(&self) -> Vec<bool> {
        let mut out: Vec<bool> = Vec::with_capacity(self.stages.len());
        for (stage, parent) in self.stages.iter().zip(self.parents()) {
            let on_build = match &stage.platform_flag {
                Some(flag) => flag.contains("BUILDPLATFORM"),
                None => parent.is_some_and(|p| out[p]),
            };
            out.push(on_build);
        }
        out
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
        let on_build = self.on_build_platform();
        self.stages
            .iter()
            .zip(on_build)
            .take(end + 1)
            .any(|(stage, on_build)| {
                !on_build && stage.instructions.iter().any(|x| x.keyword == "RUN")
            })
    }

    /// `word` with the global `ARG` defaults substituted (`$NAME`, `${NAME}`,
    /// `${NAME:-fallback}`), as BuildKit expands a `FROM` line; an argument without a default
    /// is left as written.
    pub fn expand_global_args(&self, word: &str) -> String {
        self.expand_args(word, &std::collections::BTreeMap::new())
    }

    /// [`Dockerfile::expand_global_args`] with `build_args` given (`--build-arg`): a declared
    /// global `ARG` takes its build argument's value before its default, as in BuildKit; an
    /// undeclared one is not substituted.
    pub fn expand_args(
        &self,
        word: &str,
        build_args: &std::collections::BTreeMap<String, String>,
    ) -> String {
        let value = |name: &str| {
            let declared = self.global_args.iter().rev().find(|a| a.name == name)?;
            build_args
                .get(name)
                .cloned()
                .or_else(|| declared.default.clone())
        };
        let mut out = String::new();
        let mut rest = word;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, fallback, used) = if let Some(braced) = after.strip_prefix('{') {
                match braced.find('}') {
                    Some(end) => {
                        let inner = &braced[..end];
                        let (name, fallback) = match inner.split_once(":-") {
                            Some((n, f)) => (n, Some(f)),
                            None => (inner, None),
                        };
                        (name, fallback, end + 2)
                    }
                    None => ("", None, 0),
                }
            } else {
                let len = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..len], None, len)
            };
            match value(name).or(fallback.map(str::to_string)) {
                Some(v) if !name.is_empty() => out.push_str(&v),
                _ => out.push_str(&rest[at..at + 1 + used]),
            }
            rest = &after[used..];
        }
        out.push_str(rest);
        out
    }
}

/// The parser directives at the top of the file: the escape character and the index of the
/// first line after them. They stop at the first line that is not a known directive.
fn directives(lines: &[&str]) -> (char, usize) {
    let mut escape = '\\';
    for (i, line) in lines.iter().enumerate() {
        let Some((name, value)) = line
            .trim()
            .strip_prefix('#')
            .and_then(|d| d.split_once('='))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim()))
        else {
            return (escape, i);
        };
        if !DIRECTIVES.contains(&name.as_str()) {
            return (escape, i);
        }
        if name == "escape" {
            if let Some(c @ ('\\' | '`')) = value.chars().next().filter(|_| value.len() == 1) {
                escape = c;
            }
        }
    }
    (escape, lines.len())
}

/// A line continued on the next: its text without the escape character (and the blanks after
/// it) at its end.
fn continued(line: &str, escape: char) -> Option<&str> {
    line.trim_end().strip_suffix(escape)
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

/// `ARG A=1 B "C=two words"`: the declared names and defaults.
fn arg_declarations(args: &str, line: usize) -> Vec<GlobalArg> {
    args.split_whitespace()
        .map(|decl| {
            let (name, default) = match decl.split_once('=') {
                Some((n, v)) => (n, Some(v.trim_matches(['"', '\'']).to_string())),
                None => (decl, None),
            };
            GlobalArg {
                name: name.to_string(),
                default,
                line,
            }
        })
        .collect()
}

/// One heredoc an instruction opens: the word that ends it, and whether leading tabs are
/// stripped (`<<-`).
struct Heredoc {
    delimiter: String,
    strip_tabs: bool,
}

impl Heredoc {
    fn ends_at(&self, line: &str) -> bool {
        let line = if self.strip_tabs {
            line.trim_start_matches('\t')
        } else {
            line
        };
        line.trim_end_matches('\r') == self.delimiter
    }
}

/// The heredocs of an instruction, in order: the words `[n]<<[-]WORD`, `<<"WORD"` or
/// `<<'WORD'` (not the here-string `<<<`, not `$((1<<2))`).
fn heredocs(args: &str) -> Vec<Heredoc> {
    args.split_whitespace()
        .filter_map(|word| {
            let word = word.trim_start_matches(|c: char| c.is_ascii_digit());
            let rest = word.strip_prefix("<<")?;
            let (strip_tabs, rest) = match rest.strip_prefix('-') {
                Some(r) => (true, r),
                None => (false, rest),
            };
            let delimiter = rest.trim_matches(['"', '\'']);
            let valid = delimiter
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && delimiter
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
            valid.then(|| Heredoc {
                delimiter: delimiter.to_string(),
                strip_tabs,
            })
        })
        .collect()
}
