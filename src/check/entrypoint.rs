//! The start-up chain: the `Entrypoint`/`Cmd` program found the way runc finds it (through
//! `WorkingDir` and the config's `PATH`, following symlinks inside the image), its `PT_INTERP`
//! loader, a script's `#!` interpreter (and `env NAME` on `PATH`), and `check.binaries`.
//! Each finding names exactly what is missing.

use std::collections::HashSet;

use super::program::{arch_finding, describe, CheckOptions};
use crate::elf::{ElfInfo, ElfReport};
use crate::finding::{Finding, FindingKind};
use crate::layers::{join, Content, Filesystem, NodeKind, ResolveError, Resolved};
use crate::oci::ImageConfig;
use crate::platform::Platform;

/// Linux follows at most this many nested `#!` interpreters (`BINPRM_MAX_RECURSION`).
const MAX_SCRIPT_DEPTH: usize = 4;

struct Ctx<'a> {
    fs: &'a Filesystem,
    config: &'a ImageConfig,
    platform: &'a Platform,
    findings: &'a mut Vec<Finding>,
    /// Resolved paths whose loader was checked here (the global pass skips them).
    chain: HashSet<String>,
}

/// Checks the entrypoint and `check.binaries`, appending findings; returns the paths whose
/// loaders were checked as part of the chain.
pub fn check(
    fs: &Filesystem,
    config: &ImageConfig,
    platform: &Platform,
    opts: &CheckOptions,
    findings: &mut Vec<Finding>,
) -> HashSet<String> {
    let mut cx = Ctx {
        fs,
        config,
        platform,
        findings,
        chain: HashSet::new(),
    };
    let argv = config.argv();
    match argv.first() {
        None => cx.push(Finding::warning(
            FindingKind::MissingEntrypoint,
            "the image has neither Entrypoint nor Cmd: `docker run` and Kubernetes need a command for it",
        )),
        Some(program) => cx.program(program, FindingKind::MissingEntrypoint, "the entrypoint"),
    }
    for binary in &opts.binaries {
        cx.program(binary, FindingKind::MissingBinary, "the required binary");
    }
    cx.chain
}

/// `missing-loader` for a dynamically linked file whose `PT_INTERP` is not in the image or
/// is not a program of the platform. `required` makes it an error (the entrypoint chain).
pub fn loader_finding(
    fs: &Filesystem,
    path: &str,
    info: &ElfInfo,
    platform: &Platform,
    required: bool,
) -> Option<Finding> {
    let loader = info.interp.as_deref()?;
    let problem = match fs.resolve(loader, true) {
        Err(e) => format!("which is not in the image ({})", explain(loader, &e)),
        Ok(r) => match &r.node.kind {
            NodeKind::File(f) => match &f.content {
                Content::Elf(ElfReport::Elf(l)) => {
                    let expected = platform.elf_identity()?;
                    if expected.accepts(&l.identity) {
                        return None;
                    }
                    format!("which is {} here", describe(r.node))
                }
                _ => format!("which is {} here, not a loader", describe(r.node)),
            },
            _ => format!("which is {} here", describe(r.node)),
        },
    };
    let message = format!(
        "{path} is dynamically linked against the loader {loader}, {problem}: running it fails with 'no such file or directory' although {path} exists"
    );
    let f = if required {
        Finding::error(FindingKind::MissingLoader, message)
    } else {
        Finding::warning(FindingKind::MissingLoader, message)
    };
    Some(f.with_platform(platform).with_path(path))
}

impl Ctx<'_> {
    fn push(&mut self, f: Finding) {
        self.findings.push(f.with_platform(self.platform));
    }

    /// Finds `name` as runc would and checks what it is.
    fn program(&mut self, name: &str, kind: FindingKind, role: &str) {
        match self.locate(name) {
            Ok(r) => {
                let path = r.path.clone();
                self.runnable(&path, name, kind, role, 0);
            }
            Err(why) => self.push(
                Finding::error(kind, format!("{role} {name} cannot be found: {why}"))
                    .with_path(name),
            ),
        }
    }

    /// A name with a `/` is a path (relative to `WorkingDir`); a bare name is searched on PATH.
    fn locate(&self, name: &str) -> Result<Resolved<'_>, String> {
        if name.contains('/') {
            let path = if name.starts_with('/') {
                name.to_string()
            } else {
                join(self.config.working_dir(), name)
            };
            return self.fs.resolve(&path, true).map_err(|e| explain(&path, &e));
        }
        let dirs = self.config.path_dirs();
        for dir in &dirs {
            if let Ok(r) = self.fs.resolve(&join(dir, name), true) {
                if matches!(&r.node.kind, NodeKind::File(f) if f.is_executable()) {
                    return Ok(r);
                }
            }
        }
        Err(format!(
            "it is not on PATH ({}) as an executable file",
            dirs.join(":")
        ))
    }

    /// Checks that the file at `path` (already resolved) can be executed.
    fn runnable(&mut self, path: &str, shown: &str, kind: FindingKind, role: &str, depth: usize) {
        let fs = self.fs;
        let node = fs.get(path).expect("resolved paths exist");
        let shown = if shown == path {
            path.to_string()
        } else {
            format!("{shown} ({path})")
        };
        let file = match &node.kind {
            NodeKind::File(f) => f,
            _ => {
                let what = describe(node);
                self.push(Finding::error(kind, format!("{role} {shown} is {what}, not a program: exec fails with 'permission denied'")).with_path(path));
                return;
            }
        };
        if !file.is_executable() {
            self.push(
                Finding::error(kind, format!("{role} {shown} has no execute permission (mode {:o}): exec fails with 'permission denied'", file.mode & 0o7777))
                    .with_path(path),
            );
            return;
        }
        match &file.content {
            Content::Elf(ElfReport::Elf(info)) => {
                self.chain.insert(path.to_string());
                if depth > 0 {
                    if let Some(expected) = self.platform.elf_identity() {
                        if let Some(f) = arch_finding(path, info, &expected, self.platform) {
                            let message = format!("{role} {shown}: {}", f.message);
                            let mut f = f;
                            f.kind = kind;
                            f.message = message;
                            self.findings.push(f);
                        }
                    }
                }
                if let Some(f) = loader_finding(fs, path, info, self.platform, true) {
                    self.findings.push(f);
                }
            }
            Content::Elf(_) => self.push(Finding::error(kind, format!("{role} {shown} is a malformed ELF file: exec fails with 'exec format error'")).with_path(path)),
            Content::Script(sb) if depth < MAX_SCRIPT_DEPTH => {
                let sb = sb.clone();
                self.interpreter(path, &sb.interpreter, sb.arg.as_deref(), depth);
            }
            Content::Script(_) => self.push(
                Finding::error(FindingKind::MissingInterpreter, format!("{role} {shown} nests #! interpreters deeper than Linux follows ({MAX_SCRIPT_DEPTH})"))
                    .with_path(path),
            ),
            Content::Other | Content::LoaderConfig(_) | Content::LoaderCache(_) => self.push(
                Finding::error(kind, format!("{role} {shown} is neither an ELF program nor a #! script: exec fails with 'exec format error'")).with_path(path),
            ),
        }
    }

    /// A script's interpreter, and for `env` the program it runs, looked up on `PATH`.
    fn interpreter(&mut self, script: &str, interp: &str, arg: Option<&str>, depth: usize) {
        let role = format!("the interpreter of {script}");
        let resolved = self.fs.resolve(interp, true).map(|r| r.path);
        let resolved = match resolved {
            Ok(p) => p,
            Err(e) => {
                let why = explain(interp, &e);
                self.push(
                    Finding::error(
                        FindingKind::MissingInterpreter,
                        format!("{script} starts with #!{interp}, which is not in the image ({why}): running it fails with 'no such file or directory'"),
                    )
                    .with_path(script),
                );
                return;
            }
        };
        self.runnable(
            &resolved,
            interp,
            FindingKind::MissingInterpreter,
            &role,
            depth + 1,
        );
        if crate::layers::file_name(interp) != "env" {
            return;
        }
        let Some(name) = arg.and_then(env_program) else {
            return;
        };
        match self.locate(&name) {
            Ok(r) => {
                let path = r.path.clone();
                self.runnable(
                    &path,
                    &name,
                    FindingKind::MissingInterpreter,
                    &format!("the interpreter of {script}"),
                    depth + 1,
                );
            }
            Err(why) => self.push(
                Finding::error(
                    FindingKind::MissingInterpreter,
                    format!(
                        "{script} runs `{interp} {}`, and {name} cannot be found: {why}",
                        arg.unwrap_or_default()
                    ),
                )
                .with_path(script),
            ),
        }
    }
}

/// The program `env` runs, from the one argument string of a `#!` line: options (`-S` splits
/// the rest, `-u NAME`/`-C DIR` take a value) and `NAME=VALUE` settings come first.
pub fn env_program(arg: &str) -> Option<String> {
    let mut words = arg.split_whitespace();
    while let Some(w) = words.next() {
        match w {
            "-u" | "--unset" | "-C" | "--chdir" => {
                words.next();
            }
            "--" => return words.next().map(str::to_string),
            w if w.starts_with('-') => {}
            w if w.contains('=') => {}
            w => return Some(w.to_string()),
        }
    }
    None
}

/// Why a path does not resolve, naming exactly what is missing.
pub fn explain(path: &str, e: &ResolveError) -> String {
    let via = |links: &[(String, String)]| -> String {
        links
            .iter()
            .map(|(l, t)| format!("{l} -> {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match e {
        ResolveError::NotFound { missing, links } if links.is_empty() => {
            if missing == path {
                format!("{path} does not exist")
            } else {
                format!("{path} does not exist: there is no {missing}")
            }
        }
        ResolveError::NotFound { missing, links } => {
            format!(
                "{path} is a dangling symlink ({}), and {missing} does not exist",
                via(links)
            )
        }
        ResolveError::NotADirectory { path: file, .. } => {
            format!("{file} is not a folder, so {path} cannot exist")
        }
        ResolveError::Loop { links } => {
            let shown: Vec<_> = links.iter().take(4).cloned().collect();
            format!("{path} is a symlink loop ({}, ...): exec fails with 'too many levels of symbolic links'", via(&shown))
        }
    }
}
