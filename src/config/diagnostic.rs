//! Diagnostics for the project file: one `FILE:LINE:COLUMN: message` per problem, collected
//! while validating so that a user sees every problem of `archbuild.toml` in one run.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in the project file, at a 1-based line and column (both 0 when the problem
/// concerns the whole file, such as a file that cannot be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            let (file, line, column) = (self.file.display(), self.line, self.column);
            write!(f, "{file}:{line}:{column}: {}", self.message)
        }
    }
}

/// Every problem found in a project file, in the order they appear in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl ConfigErrors {
    /// A single problem that concerns the whole file.
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigErrors(vec![Diagnostic {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: message.into(),
        }])
    }

    /// The problems, in file order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.0
    }

    /// A one-line summary (`archbuild.toml: 3 problems`), for the end of an error report.
    pub fn summary(&self) -> String {
        let file = self.0.first().map(|d| d.file.display().to_string());
        let file = file.unwrap_or_else(|| "project file".to_string());
        match self.0.len() {
            1 => format!("{file}: 1 problem"),
            n => format!("{file}: {n} problems"),
        }
    }
}

impl fmt::Display for ConfigErrors {
    /// One diagnostic per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics against one file's text, turning byte offsets into lines and columns.
pub(crate) struct Report<'a> {
    file: &'a Path,
    text: &'a str,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        Report {
            file,
            text,
            diagnostics: Vec::new(),
        }
    }

    /// Records a problem at the start of `span`.
    pub(crate) fn at(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let (line, column) = self.position(span.start);
        self.diagnostics.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        });
    }

    /// `line N, column M` of a byte offset, for messages that point back at another place.
    pub(crate) fn describe(&self, offset: usize) -> String {
        let (line, column) = self.position(offset);
        format!("line {line}, column {column}")
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// The problems in file order, or `Ok` when there were none.
    pub(crate) fn finish(mut self) -> Result<(), ConfigErrors> {
        if self.diagnostics.is_empty() {
            return Ok(());
        }
        // A stable sort keeps two problems at one place in the order they were found.
        self.diagnostics.sort_by_key(|d| (d.line, d.column));
        self.diagnostics.dedup();
        Err(ConfigErrors(self.diagnostics))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        let report = Report::new(Path::new("f.toml"), text);
        assert_eq!(report.position(0), (1, 1));
        assert_eq!(report.position(6), (2, 1));
        // "bé = " is 6 bytes but 5 characters: the quote is column 6.
        assert_eq!(report.position(text.find('"').unwrap()), (2, 6));
        assert_eq!(report.position(text.len()), (3, 1));
    }

    #[test]
    fn problems_print_one_per_line_in_file_order() {
        let text = "a\nb\nc\n";
        let mut report = Report::new(Path::new("archbuild.toml"), text);
        report.at(&(4..5), "third");
        report.at(&(0..1), "first");
        let err = report.finish().unwrap_err();
        assert_eq!(
            err.to_string(),
            "archbuild.toml:1:1: first\narchbuild.toml:3:1: third"
        );
        assert_eq!(err.summary(), "archbuild.toml: 2 problems");
    }
}
