//! Reading manifest files: multi-document YAML or JSON, `List` objects unwrapped, each document
//! remembered with the file and line it starts on so every message can point at it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::bounded_yaml;

/// One Kubernetes object read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub file: PathBuf,
    /// The 1-based line the document starts on.
    pub line: usize,
    pub value: Value,
}

impl Document {
    /// `deploy.yaml:12`, how messages point at a document.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// The document's `kind`, or `(no kind)`.
    pub fn kind(&self) -> &str {
        self.value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("(no kind)")
    }
}

/// Why a manifest file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("cannot read {file}: {error}")]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{file}:{line}:{column}: not valid {format}: {message}")]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        format: &'static str,
        message: String,
    },
    #[error("{file}:{line}: the YAML document's aliases expand its {text} bytes to more than {limit}; refused (an alias bomb, or a file no tool should expand)")]
    Expansion {
        file: PathBuf,
        line: usize,
        text: usize,
        limit: usize,
    },
    #[error("{file}:{line}: a List whose items is not a list; expected `items: [...]`")]
    BadList { file: PathBuf, line: usize },
    #[error("{file} is larger than {limit} bytes; archbuild reads manifest files of at most that (the API server takes objects of at most 3 MiB): split it, or is it the file you meant?")]
    TooLarge { file: PathBuf, limit: u64 },
}

/// Manifest files larger than this are refused before they are held in memory (a file, a
/// link to `/dev/zero` or a pipe that never ends): the API server takes objects of at most
/// 3 MiB, and a file of many objects is rarely more than a few.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Reads a manifest file (`-` for standard input).
pub fn load(path: &Path) -> Result<Vec<Document>, DocumentError> {
    let read = if path == Path::new("-") {
        read_bounded(std::io::stdin().lock())
    } else {
        std::fs::File::open(path).and_then(read_bounded)
    };
    let unreadable = |error| DocumentError::Read {
        file: path.to_path_buf(),
        error,
    };
    let bytes = read.map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(DocumentError::TooLarge {
            file: path.to_path_buf(),
            limit: MAX_FILE_BYTES,
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let why = format!("it is not UTF-8 text ({e})");
        unreadable(std::io::Error::new(std::io::ErrorKind::InvalidData, why))
    })?;
    parse(&text, path)
}

/// At most one byte more than [`MAX_FILE_BYTES`] of `reader`.
fn read_bounded(reader: impl std::io::Read) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    reader.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Parses a file's text: JSON when it starts with `{` or `[`, else multi-document YAML.
pub fn parse(text: &str, file: &Path) -> Result<Vec<Document>, DocumentError> {
    let trimmed = text.trim_start();
    let docs = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        parse_json(text, file)?
    } else {
        parse_yaml(text, file)?
    };
    let mut out = Vec::new();
    for doc in docs {
        unwrap_lists(doc, &mut out)?;
    }
    Ok(out)
}

fn parse_json(text: &str, file: &Path) -> Result<Vec<Document>, DocumentError> {
    let mut docs = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut end = 0;
    while let Some(value) = stream.next() {
        let value = value.map_err(|e| DocumentError::Syntax {
            file: file.to_path_buf(),
            line: e.line(),
            column: e.column(),
            format: "JSON",
            message: strip_position(&e.to_string()),
        })?;
        let rest = &text[end..];
        let start = end + (rest.len() - rest.trim_start().len());
        let line = 1 + text[..start].matches('\n').count();
        end = stream.byte_offset();
        let value = match value {
            // `[obj, obj]`: a bare array of objects reads like a List.
            Value::Array(items) => serde_json::json!({"kind": "List", "items": items}),
            v => v,
        };
        docs.push(Document {
            file: file.to_path_buf(),
            line,
            value,
        });
    }
    Ok(docs)
}

/// Splits at `---` document markers (which end any block scalar, so a plain line scan is
/// exact) and parses each document, so that errors carry the line in the whole file.
fn parse_yaml(text: &str, file: &Path) -> Result<Vec<Document>, DocumentError> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut chunk = String::new();
    for (i, line) in text.lines().enumerate() {
        let marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if marker {
            push_yaml(&chunk, start, file, &mut docs)?;
            chunk.clear();
            start = i;
            // Content after the marker on the same line (`--- {a: 1}`) belongs to the document.
            chunk.push_str(line.get(3..).unwrap_or(""));
            chunk.push('\n');
        } else {
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    push_yaml(&chunk, start, file, &mut docs)?;
    Ok(docs)
}

fn push_yaml(
    chunk: &str,
    start: usize,
    file: &Path,
    docs: &mut Vec<Document>,
) -> Result<(), DocumentError> {
    let first_content = chunk
        .lines()
        .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap_or(0);
    let budget = bounded_yaml::Budget::for_text(chunk.len());
    let value: Value = bounded_yaml::from_str(chunk, &budget).map_err(|e| {
        if budget.exhausted() {
            return DocumentError::Expansion {
                file: file.to_path_buf(),
                line: start + first_content + 1,
                text: chunk.len(),
                limit: budget.limit,
            };
        }
        let (line, column) = e
            .location()
            .map_or((start + 1, 1), |l| (start + l.line(), l.column()));
        DocumentError::Syntax {
            file: file.to_path_buf(),
            line,
            column,
            format: "YAML",
            message: strip_position(&e.to_string()),
        }
    })?;
    if value.is_null() {
        return Ok(()); // an empty document (a leading `---`, comments only)
    }
    docs.push(Document {
        file: file.to_path_buf(),
        line: start + first_content + 1,
        value,
    });
    Ok(())
}

/// `List` (and `*List`, as `kubectl get -o yaml` writes) becomes its items.
fn unwrap_lists(doc: Document, out: &mut Vec<Document>) -> Result<(), DocumentError> {
    let is_list =
        doc.kind() == "List" || (doc.kind().ends_with("List") && doc.value.get("items").is_some());
    if !is_list {
        out.push(doc);
        return Ok(());
    }
    let Some(items) = doc.value.get("items").and_then(Value::as_array) else {
        if doc.value.get("items").is_none_or(Value::is_null) {
            return Ok(()); // an empty list
        }
        return Err(DocumentError::BadList {
            file: doc.file,
            line: doc.line,
        });
    };
    for item in items {
        unwrap_lists(
            Document {
                file: doc.file.clone(),
                line: doc.line,
                value: item.clone(),
            },
            out,
        )?;
    }
    Ok(())
}

/// serde's messages carry ` at line L column C`, relative to the document; the error says
/// where in the file instead.
fn strip_position(message: &str) -> String {
    let mut out = message.to_string();
    while let Some(at) = out.find(" at line ") {
        let rest = &out[at + " at line ".len()..];
        let after_line = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        let tail = match after_line.strip_prefix(" column ") {
            Some(col) => col.trim_start_matches(|c: char| c.is_ascii_digit()),
            None => after_line,
        };
        out = format!("{}{tail}", &out[..at]);
    }
    out
}
