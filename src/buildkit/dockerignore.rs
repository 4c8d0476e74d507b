//! `.dockerignore` with Docker's own rules (moby's `patternmatcher` and the CLI's
//! `ignorefile` reader): one pattern per line, `#` comments, `!` exceptions, `filepath.Match`
//! syntax (`*`, `?`, `[a-z]`, `\` escapes) plus `**` for any number of folders, leading `/` and
//! `./` cleaned away. The last pattern that matches a path decides, and a pattern that matches
//! a parent folder matches everything under it.
//!
//! Pure: patterns are parsed from a string and matched against slash-separated relative paths.

use regex::Regex;

/// One compiled `.dockerignore` line.
#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned text, for error messages and for the prefix test of [`Ignore::may_include_under`].
    text: String,
    regex: Regex,
    exclusion: bool,
}

/// A compiled `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

/// A `.dockerignore` line that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(".dockerignore line {line}: bad pattern \"{pattern}\": {reason}")]
pub struct PatternError {
    pub line: usize,
    pub pattern: String,
    pub reason: String,
}

impl Ignore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Ignore, PatternError> {
        let mut patterns = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, rest) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let text = clean(rest);
            if text.is_empty() {
                continue;
            }
            let regex = compile(&text).map_err(|reason| PatternError {
                line: index + 1,
                pattern: line.to_string(),
                reason,
            })?;
            patterns.push(Pattern {
                text,
                regex,
                exclusion,
            });
        }
        Ok(Ignore { patterns })
    }

    /// Adds a `!path` exception: the Dockerfile and `.dockerignore` are always sent.
    pub fn always_include(&mut self, path: &str) {
        let text = clean(path);
        if let Ok(regex) = compile(&regex_escape_glob(&text)) {
            self.patterns.push(Pattern {
                text,
                regex,
                exclusion: true,
            });
        }
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative to the context, `/`-separated) is left out of the context:
    /// moby's `MatchesOrParentMatches`.
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        let parents: Vec<&str> = path.split('/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            // An exception only matters once something matched, a pattern only when nothing did.
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.regex.is_match(&path);
            if !hit && parents.len() > 1 {
                for end in 1..parents.len() {
                    if pattern.regex.is_match(&parents[..end].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether an excluded folder must still be walked because an exception might bring back
    /// something inside it (Docker walks such folders instead of skipping them).
    pub fn may_include_under(&self, dir: &str) -> bool {
        let dir = clean(dir);
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            let literal: String = p
                .text
                .chars()
                .take_while(|c| !matches!(c, '*' | '?' | '[' | '\\'))
                .collect();
            literal.starts_with(&format!("{dir}/")) || format!("{dir}/").starts_with(&literal)
        })
    }
}

/// `filepath.Clean` on a slash path, without the leading `/` or `./` that Docker strips.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Escapes glob metacharacters so that a literal path can be used as a pattern.
fn regex_escape_glob(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Translates one cleaned pattern into an anchored regular expression, as moby does.
fn compile(pattern: &str) -> Result<Regex, String> {
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                if chars.get(i + 1) == Some(&'/') {
                    i += 1;
                }
                if i + 1 >= chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => {
                i += 1;
                let escaped = chars
                    .get(i)
                    .ok_or_else(|| "a trailing \\ escapes nothing".to_string())?;
                re.push_str(&regex::escape(&escaped.to_string()));
            }
            '[' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == ']')
                    .ok_or_else(|| "a [ without its closing ]".to_string())?;
                // Go's classes (`[a-z]`, `[^a]`) read the same as the regex crate's.
                let class: String = chars[i + 1..i + 1 + end].iter().collect();
                re.push('[');
                re.push_str(&class);
                re.push(']');
                i += end + 1;
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Regex::new(&re).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> Ignore {
        Ignore::parse(text).unwrap()
    }

    #[test]
    fn docs_example_star_in_subfolders() {
        // From Docker's documentation of .dockerignore.
        let rules = ignore("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
        assert!(rules.excludes("somedir/temporary.txt"));
        assert!(rules.excludes("somedir/temp"));
        assert!(rules.excludes("somedir/subdir/temporary.txt"));
        assert!(rules.excludes("tempa"));
        assert!(rules.excludes("tempb"));
        assert!(!rules.excludes("temporary.txt"));
        assert!(!rules.excludes("a/b/c/temp.txt"));
        assert!(!rules.excludes("# comment"));
    }

    #[test]
    fn double_star_matches_any_depth() {
        let rules = ignore("**/*.go\n");
        assert!(rules.excludes("main.go"));
        assert!(rules.excludes("a/b/c/main.go"));
        assert!(!rules.excludes("a/b/main.rs"));
    }

    #[test]
    fn exceptions_bring_files_back_and_order_matters() {
        let rules = ignore("*.md\n!README.md\n");
        assert!(rules.excludes("CHANGELOG.md"));
        assert!(!rules.excludes("README.md"));

        let rules = ignore("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(rules.excludes("README-secret.md"));
        assert!(!rules.excludes("README-public.md"));

        let rules = ignore("*.md\nREADME-secret.md\n!README*.md\n");
        assert!(!rules.excludes("README-secret.md"));
    }

    #[test]
    fn folder_pattern_excludes_its_contents() {
        let rules = ignore("node_modules\n/target/\n./build\n");
        assert!(rules.excludes("node_modules"));
        assert!(rules.excludes("node_modules/x/index.js"));
        assert!(rules.excludes("target/debug/app"));
        assert!(rules.excludes("build/out"));
        assert!(!rules.excludes("src/node_modules_notes.txt"));
        // Patterns are anchored at the context root.
        assert!(!rules.excludes("src/node_modules/x.js"));
    }

    #[test]
    fn exclude_everything_but_a_few() {
        let rules = ignore("*\n!app-*\n!Dockerfile\n");
        assert!(rules.excludes("secret.key"));
        assert!(rules.excludes("docs/readme"));
        assert!(!rules.excludes("app-amd64"));
        assert!(!rules.excludes("Dockerfile"));
    }

    #[test]
    fn always_included_files_survive_a_catch_all() {
        let mut rules = ignore("*\n");
        rules.always_include("docker/Dockerfile.prod");
        rules.always_include(".dockerignore");
        assert!(!rules.excludes("docker/Dockerfile.prod"));
        assert!(!rules.excludes(".dockerignore"));
        assert!(rules.excludes("docker/other"));
    }

    #[test]
    fn classes_question_marks_and_escapes() {
        let rules = ignore("log[0-9].txt\nfile\\*\n[^a]x\n");
        assert!(rules.excludes("log7.txt"));
        assert!(!rules.excludes("logx.txt"));
        assert!(rules.excludes("file*"));
        assert!(!rules.excludes("filex"));
        assert!(rules.excludes("bx"));
        assert!(!rules.excludes("ax"));
    }

    #[test]
    fn walking_into_excluded_folders_only_when_an_exception_reaches_in() {
        let rules = ignore("vendor\n!vendor/keep/**\n");
        assert!(rules.may_include_under("vendor"));
        assert!(!rules.may_include_under("docs"));
        assert!(!rules.excludes("vendor/keep/a.txt"));
        assert!(rules.excludes("vendor/drop/a.txt"));
    }

    #[test]
    fn bad_pattern_names_the_line() {
        let err = Ignore::parse("ok\n[abc\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("[abc"), "{err}");
    }
}
