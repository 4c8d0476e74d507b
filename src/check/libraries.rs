//! Shared libraries as the dynamic loader finds them inside the image: every `DT_NEEDED` of
//! a dynamically linked program, and of the libraries it loads, searched the way glibc's
//! `ld.so` (ld.so(8), `elf/dl-load.c`) or musl's loader (`ldso/dynlink.c`) searches, and the
//! GNU symbol versions each object needs checked against the library the loader would pick
//! (`elf/dl-version.c`). Pure: the image's filesystem and config in, findings out.
//!
//! glibc's order: an object's `DT_RPATH` (when it has no `DT_RUNPATH`) and that of each
//! object up its chain of loaders to the program (each `$ORIGIN` its own folder),
//! `LD_LIBRARY_PATH`, the object's `DT_RUNPATH`, the cache (`/etc/ld.so.cache`, each path
//! it lists for the name with the platform's flags; and the folders `ldconfig` builds it
//! from, `/etc/ld.so.conf` and its includes), then the default folders. musl's:
//! `LD_LIBRARY_PATH`, the run path of the object and of each object up its chain, then
//! `/etc/ld-musl-ARCH.path` or its default. Each loaded object remembers the one whose need
//! brought it in (objects are loaded breadth first, as both loaders do), which gives the
//! chain; lookups are cached by name and the folders searched. In every folder glibc first
//! tries the `glibc-hwcaps` subfolders every node of the platform supports (x86-64-v3 and
//! x86-64-v2 for `linux/amd64/v3`, none for `linux/amd64`; see
//! [`loader_paths::hwcaps_subdirs`]); a missing library that only a subfolder of a higher
//! level holds has that copy named in the finding. In every folder a file of another class
//! or machine is skipped, as the loaders do. Anything not known (a
//! `$LIB` token, a table the walker did not read) makes the result unknown, never a finding.

use std::collections::{HashMap, HashSet};

use super::loader_paths::{self, Loader, Place, SearchPaths};
use crate::elf::dynamic::Dynamic;
use crate::elf::{ElfInfo, ElfReport};
use crate::finding::{Finding, FindingKind};
use crate::layers::{file_name, parent, Content, Filesystem, NodeKind};
use crate::oci::ImageConfig;
use crate::platform::{ElfIdentity, Platform};

/// The most objects one program loads that are followed (real programs load tens).
const MAX_OBJECTS: usize = 1024;

/// One loaded object: where it is, the names it answers to, what it needs, and which
/// loaded object's need brought it in (glibc's `l_loader`, musl's `needed_by`).
struct Loaded<'a> {
    path: String,
    names: Vec<String>,
    dynamic: Option<&'a Dynamic>,
    loader: Option<usize>,
}

/// What one `DT_NEEDED` name resolves to from one object.
#[derive(Clone)]
enum Found {
    At(String),
    /// Not found: the places searched, and the copies in `glibc-hwcaps` subfolders the loader
    /// searches only on CPUs above the platform's level.
    Missing {
        searched: Vec<String>,
        beyond: Vec<String>,
    },
    Unknown,
}

/// The loader's view of one image: its search paths and the lookups made so far.
pub struct Libraries<'a> {
    fs: &'a Filesystem,
    paths: SearchPaths,
    /// (name, the places searched in order, whether that list is complete) → what the
    /// search found: all the result depends on, whichever object and chain of loaders the
    /// places came from.
    lookups: HashMap<(String, Vec<Place>, bool), Found>,
}

impl<'a> Libraries<'a> {
    pub fn new(fs: &'a Filesystem, config: &ImageConfig, platform: &Platform) -> Self {
        Libraries {
            fs,
            paths: loader_paths::search_paths(fs, config, platform),
            lookups: HashMap::new(),
        }
    }

    /// `missing-library` and `library-version-missing` for the program at `path`; errors
    /// when `required` (the entrypoint chain, `check.binaries`), warnings otherwise.
    pub fn check(
        &mut self,
        path: &str,
        info: &'a ElfInfo,
        platform: &Platform,
        required: bool,
    ) -> Vec<Finding> {
        let (Some(interp), Some(dynamic)) = (&info.interp, &info.dynamic) else {
            return Vec::new();
        };
        let musl = interp.contains("ld-musl");
        let Some(loader) = self.object(interp, &info.identity) else {
            return Vec::new(); // the missing or wrong loader is `missing-loader`'s finding
        };
        let mut loaded = vec![
            Loaded {
                path: path.to_string(),
                names: Vec::new(),
                dynamic: Some(dynamic),
                loader: None,
            },
            Loaded {
                names: vec![file_name(interp).to_string()],
                loader: Some(0),
                ..loader
            },
        ];
        if let Some(soname) = loaded[1].dynamic.and_then(|d| d.soname.clone()) {
            loaded[1].names.push(soname);
        }
        let mut findings = Vec::new();
        let mut next = 0;
        while next < loaded.len() && loaded.len() < MAX_OBJECTS {
            let Some(object) = loaded[next].dynamic else {
                next += 1;
                continue;
            };
            let from = loaded[next].path.clone();
            let chain = chain(&loaded, next);
            for name in &object.needed {
                if loaded.iter().any(|l| l.names.contains(name)) {
                    continue;
                }
                match self.find(name, &chain, musl, &info.identity) {
                    Found::At(lib) => {
                        if let Some(l) = loaded.iter_mut().find(|l| l.path == lib) {
                            l.names.push(name.clone());
                            continue;
                        }
                        let mut object = self.object(&lib, &info.identity).unwrap_or(Loaded {
                            path: lib,
                            names: Vec::new(),
                            dynamic: None,
                            loader: None,
                        });
                        object.loader = Some(next);
                        object.names.push(name.clone());
                        object
                            .names
                            .extend(object.dynamic.and_then(|d| d.soname.clone()));
                        loaded.push(object);
                    }
                    Found::Missing { searched, beyond } => findings.push(missing(
                        Need {
                            program: path,
                            name,
                            from: &from,
                        },
                        &searched,
                        &beyond,
                        &self.paths.hwcaps,
                        musl,
                        platform,
                        required,
                    )),
                    Found::Unknown => {}
                }
            }
            next += 1;
        }
        if !musl {
            findings.extend(versions(path, &loaded, platform, required));
        }
        findings
    }

    /// The loadable ELF object at `path` (symlinks followed), if it is one of `identity`.
    fn object(&self, path: &str, identity: &ElfIdentity) -> Option<Loaded<'a>> {
        let r = self.fs.resolve(path, true).ok()?;
        let NodeKind::File(file) = &r.node.kind else {
            return None;
        };
        let Content::Elf(ElfReport::Elf(info)) = &file.content else {
            return None;
        };
        compatible(&info.identity, identity).then(|| Loaded {
            path: r.path.clone(),
            names: Vec::new(),
            dynamic: info.dynamic.as_deref(),
            loader: None,
        })
    }

    /// Searches `name`, needed by the last object of `chain` (the program first), in the
    /// loader's order.
    fn find(
        &mut self,
        name: &str,
        chain: &[Loader<'_>],
        musl: bool,
        identity: &ElfIdentity,
    ) -> Found {
        let (dirs, complete) = self.paths.order(chain, musl);
        let key = (name.to_string(), dirs, complete);
        if let Some(found) = self.lookups.get(&key) {
            return found.clone();
        }
        let dirs = &key.1;
        let found = if name.contains('/') {
            let path = if name.starts_with('/') {
                name.to_string()
            } else {
                format!("/{name}") // relative to the working folder; `/` when unset
            };
            self.candidate(&path, identity).unwrap_or(Found::Missing {
                searched: vec![path],
                beyond: Vec::new(),
            })
        } else {
            dirs.iter()
                .find_map(|place| match place {
                    Place::Dir(dir) => self
                        .paths
                        .in_dir(dir, name, musl)
                        .iter()
                        .find_map(|path| self.candidate(path, identity)),
                    Place::Cache => self
                        .paths
                        .cache
                        .as_ref()
                        .and_then(|c| c.get(name))
                        .into_iter()
                        .flatten()
                        .find_map(|path| self.candidate(path, identity)),
                })
                .unwrap_or_else(|| {
                    if complete {
                        Found::Missing {
                            searched: dirs.iter().map(Place::to_string).collect(),
                            beyond: if musl {
                                Vec::new()
                            } else {
                                self.beyond(name, dirs, identity)
                            },
                        }
                    } else {
                        Found::Unknown
                    }
                })
        };
        self.lookups.insert(key, found.clone());
        found
    }

    /// The libraries named `name` in the `glibc-hwcaps` subfolders of `dirs` (and in the
    /// cache's entries for them) that the loader searches only on CPUs above the platform's
    /// level.
    fn beyond(&self, name: &str, dirs: &[Place], identity: &ElfIdentity) -> Vec<String> {
        let mut found = Vec::new();
        for place in dirs {
            let paths: Vec<String> = match place {
                Place::Dir(dir) => self
                    .paths
                    .hwcaps_beyond
                    .iter()
                    .map(|h| format!("{}/glibc-hwcaps/{h}/{name}", dir.trim_end_matches('/')))
                    .collect(),
                Place::Cache => self
                    .paths
                    .cache_beyond
                    .get(name)
                    .cloned()
                    .unwrap_or_default(),
            };
            for path in paths {
                if let Some(Found::At(p)) = self.candidate(&path, identity) {
                    if !found.contains(&p) {
                        found.push(p);
                    }
                }
            }
        }
        found
    }

    /// What the loader makes of the file at `path`: a library of the right class and
    /// machine; `None` (search on) when it is absent or of another class or machine. Any
    /// other file there stops the search with no finding (the loader's error is its own).
    fn candidate(&self, path: &str, identity: &ElfIdentity) -> Option<Found> {
        let r = self.fs.resolve(path, true).ok()?;
        match &r.node.kind {
            NodeKind::File(file) => match &file.content {
                Content::Elf(ElfReport::Elf(info)) if !compatible(&info.identity, identity) => None,
                Content::Elf(ElfReport::Elf(_)) => Some(Found::At(r.path.clone())),
                _ => Some(Found::Unknown),
            },
            _ => None,
        }
    }
}

/// The objects from the program down to `loaded[index]`, each the loader of the next, with
/// their folders (`$ORIGIN`); cut at `MAX_OBJECTS` links, as a guard.
fn chain<'a>(loaded: &[Loaded<'a>], index: usize) -> Vec<Loader<'a>> {
    let mut chain = Vec::new();
    let mut at = Some(index);
    while let Some(i) = at.filter(|_| chain.len() < MAX_OBJECTS) {
        let l = &loaded[i];
        if let Some(dynamic) = l.dynamic {
            chain.push(Loader {
                dynamic,
                origin: parent(&l.path).to_string(),
            });
        }
        at = l.loader;
    }
    chain.reverse();
    chain
}

/// glibc's `elf_machine_matches_host` and class check: same machine, class and byte order.
fn compatible(a: &ElfIdentity, b: &ElfIdentity) -> bool {
    a.machine == b.machine && a.class == b.class && a.endian == b.endian
}

/// One `DT_NEEDED` entry: the program checked, the library's name, the object needing it.
struct Need<'a> {
    program: &'a str,
    name: &'a str,
    from: &'a str,
}

/// `missing-library` for `need`, not found in `searched` (each folder with its `hwcaps`
/// subfolders) but present in the `beyond` paths, subfolders for CPUs above the platform's.
fn missing(
    need: Need<'_>,
    searched: &[String],
    beyond: &[String],
    hwcaps: &[String],
    musl: bool,
    platform: &Platform,
    required: bool,
) -> Finding {
    let Need {
        program,
        name,
        from,
    } = need;
    let via = if from == program {
        String::new()
    } else {
        format!(" (needed by {from})")
    };
    let loader_says = if musl {
        format!("Error loading shared library {name}: No such file or directory (needed by {from})")
    } else {
        format!("{program}: error while loading shared libraries: {name}: cannot open shared object file: No such file or directory")
    };
    let subfolders = if musl || hwcaps.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = hwcaps.iter().map(|h| format!("glibc-hwcaps/{h}")).collect();
        format!("; in each folder first {}", names.join(", "))
    };
    let mut message = format!(
        "{program} needs the shared library {name}{via}, which is not in the image where the loader looks ({}{subfolders}): running it fails with '{loader_says}'",
        searched.join(", ")
    );
    if !beyond.is_empty() {
        message.push_str(&format!(
            ". The image has it only in {}, a glibc-hwcaps folder the loader searches only on CPUs of a higher level than {platform} guarantees, so it runs on some nodes only: install a build for the platform's level where the loader looks, or publish the image for a variant of that level",
            beyond.join(", ")
        ));
    }
    severity(FindingKind::MissingLibrary, message, required)
        .with_platform(platform)
        .with_path(program)
}

/// `library-version-missing`: each version an object needs (`.gnu.version_r`) that the
/// library the loader picked for that file does not define (`.gnu.version_d`).
fn versions(
    program: &str,
    loaded: &[Loaded<'_>],
    platform: &Platform,
    required: bool,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut seen = HashSet::new();
    for object in loaded {
        let Some(needs) = object.dynamic.and_then(|d| d.version_needs.as_ref()) else {
            continue;
        };
        for need in needs {
            let Some(lib) = loaded.iter().find(|l| l.names.contains(&need.file)) else {
                continue;
            };
            let Some(defs) = lib.dynamic.and_then(|d| d.version_defs.as_ref()) else {
                continue; // no definitions: the loader checks nothing against it
            };
            for v in need.versions.iter().filter(|v| !defs.contains(v)) {
                if !seen.insert((object.path.clone(), lib.path.clone(), v.clone())) {
                    continue;
                }
                let message = format!(
                    "{} needs version {v} of {} ({}), which defines {}: running {program} fails with '{program}: {}: version `{v}' not found (required by {})'",
                    object.path,
                    need.file,
                    lib.path,
                    newest(defs),
                    lib.path,
                    object.path
                );
                findings.push(
                    severity(FindingKind::LibraryVersionMissing, message, required)
                        .with_platform(platform)
                        .with_path(program),
                );
            }
        }
    }
    findings
}

/// "versions up to GLIBC_2.36" for the definitions of a versioned library, by the last one
/// defined (linkers write them in order).
fn newest(defs: &[String]) -> String {
    match defs.last() {
        Some(last) => format!("versions up to {last}"),
        None => "no versions".into(),
    }
}

fn severity(kind: FindingKind, message: String, required: bool) -> Finding {
    if required {
        Finding::error(kind, message)
    } else {
        Finding::warning(kind, message)
    }
}

#[cfg(test)]
#[path = "libraries_search_tests.rs"]
mod search_tests;
#[cfg(test)]
#[path = "libraries_tests.rs"]
mod tests;
