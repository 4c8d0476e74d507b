//! The final filesystem of an image: layers applied in order by the OCI image spec's
//! changeset rules, and path resolution through symlinks inside it (never on the host).

use std::collections::BTreeMap;

use super::{file_name, join, parent, EntryKind, FileInfo, LayerSummary, UnsafeEntry};

/// Linux's limit on symlinks followed while resolving one path (`MAXSYMLINKS`).
pub const SYMLINK_LIMIT: usize = 40;

/// A path in the final filesystem and the layer (index into `Filesystem::layers`) that put it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    pub layer: usize,
}

/// What a path is in the final filesystem. Hard links are resolved to what they link to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    File(FileInfo),
    Dir {
        mode: u32,
    },
    Symlink {
        target: String,
    },
    Special(String),
    /// A hard link whose target was not in the image when the layer was applied.
    DanglingHardlink {
        target: String,
    },
}

/// The merged view of all layers of one image.
#[derive(Clone, Debug, Default)]
pub struct Filesystem {
    nodes: BTreeMap<String, Node>,
    /// Layer names (digests), bottom first.
    pub layers: Vec<String>,
    /// Entries that were skipped as unsafe, with the index of their layer.
    pub unsafe_entries: Vec<(usize, UnsafeEntry)>,
}

/// A path resolved through symlinks: where it ends and which links it went through.
#[derive(Clone, Debug)]
pub struct Resolved<'a> {
    pub path: String,
    pub node: &'a Node,
    /// Each symlink followed, as (link path, target as written).
    pub links: Vec<(String, String)>,
}

/// Why a path does not resolve to anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// `missing` (after following `links`) does not exist.
    NotFound {
        missing: String,
        links: Vec<(String, String)>,
    },
    /// `path` is not a folder but the path goes on below it.
    NotADirectory {
        path: String,
        links: Vec<(String, String)>,
    },
    /// More than `SYMLINK_LIMIT` symlinks: a loop, as Linux's ELOOP says.
    Loop { links: Vec<(String, String)> },
}

impl Filesystem {
    /// Applies the layers bottom first.
    pub fn merge(layers: &[LayerSummary]) -> Filesystem {
        let mut fs = Filesystem::default();
        fs.nodes.insert(
            "/".into(),
            Node {
                kind: NodeKind::Dir { mode: 0o755 },
                layer: 0,
            },
        );
        for layer in layers {
            fs.apply(layer);
        }
        fs
    }

    /// Applies one layer on top. Whiteouts and opaque markers hide only what lower layers
    /// made (the spec lets them appear anywhere in the tar), so they go first.
    pub fn apply(&mut self, layer: &LayerSummary) {
        let index = self.layers.len();
        self.layers.push(layer.digest.clone());
        for u in &layer.unsafe_entries {
            self.unsafe_entries.push((index, u.clone()));
        }
        for entry in &layer.entries {
            match entry.kind {
                EntryKind::Whiteout => self.remove_tree(&entry.path),
                EntryKind::OpaqueDir => self.remove_children(&entry.path),
                _ => {}
            }
        }
        for entry in &layer.entries {
            let kind = match &entry.kind {
                EntryKind::Whiteout | EntryKind::OpaqueDir => continue,
                EntryKind::Special(s) if s == "aufs metadata" => continue,
                EntryKind::File(f) => NodeKind::File(f.clone()),
                EntryKind::Dir { mode } => NodeKind::Dir { mode: *mode },
                EntryKind::Symlink { target } => NodeKind::Symlink {
                    target: target.clone(),
                },
                EntryKind::Special(s) => NodeKind::Special(s.clone()),
                EntryKind::Hardlink { target } => match self.nodes.get(target) {
                    Some(node) if !matches!(node.kind, NodeKind::Dir { .. }) => node.kind.clone(),
                    _ => NodeKind::DanglingHardlink {
                        target: target.clone(),
                    },
                },
            };
            let path = self.place(&entry.path, index);
            self.insert(path, Node { kind, layer: index });
        }
    }

    /// Where an entry lands: its folder as the runtime would find it when extracting
    /// (following symlinked folders like a merged `/usr`'s `/lib -> usr/lib`), created
    /// when missing.
    fn place(&mut self, path: &str, layer: usize) -> String {
        let dir = parent(path);
        let dir = match self.resolve(dir, true) {
            Ok(r) if matches!(r.node.kind, NodeKind::Dir { .. }) => r.path,
            _ => {
                self.make_dirs(dir, layer);
                dir.to_string()
            }
        };
        join(&dir, file_name(path))
    }

    /// Creates `dir` and its missing ancestors, top first (iteratively: a layer decides the
    /// depth, and `normalize` bounds only the length).
    fn make_dirs(&mut self, dir: &str, layer: usize) {
        let mut missing = Vec::new();
        let mut at = dir;
        while at != "/" {
            missing.push(at);
            at = parent(at);
        }
        for dir in missing.into_iter().rev() {
            let is_dir = matches!(
                self.nodes.get(dir),
                Some(Node {
                    kind: NodeKind::Dir { .. },
                    ..
                })
            );
            if !is_dir {
                self.insert(
                    dir.to_string(),
                    Node {
                        kind: NodeKind::Dir { mode: 0o755 },
                        layer,
                    },
                );
            }
        }
    }

    /// A folder over a folder keeps the children; anything else replaces what was there,
    /// children included.
    fn insert(&mut self, path: String, node: Node) {
        let both_dirs = matches!(node.kind, NodeKind::Dir { .. })
            && matches!(
                self.nodes.get(&path),
                Some(Node {
                    kind: NodeKind::Dir { .. },
                    ..
                })
            );
        if !both_dirs {
            self.remove_children(&path);
        }
        self.nodes.insert(path, node);
    }

    fn remove_tree(&mut self, path: &str) {
        if path != "/" {
            self.nodes.remove(path);
        }
        self.remove_children(path);
    }

    fn remove_children(&mut self, path: &str) {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .filter(|k| k != "/")
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// The node at exactly this normalised path, without following symlinks.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Every path and node, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many paths the filesystem has, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether only the root exists.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// Resolves an absolute path inside the image, following symlinks in every folder
    /// component and, when `follow_final`, in the last one. Absolute link targets start
    /// again at the image root; `..` at the root stays there, as in the kernel.
    pub fn resolve(&self, path: &str, follow_final: bool) -> Result<Resolved<'_>, ResolveError> {
        let mut pending: Vec<String> = components(path).rev().map(str::to_string).collect();
        let mut current: Vec<String> = Vec::new();
        let mut links: Vec<(String, String)> = Vec::new();
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    current.pop();
                    continue;
                }
                _ => {}
            }
            current.push(part);
            let here = absolute(&current);
            let Some(node) = self.nodes.get(&here) else {
                return Err(ResolveError::NotFound {
                    missing: here,
                    links,
                });
            };
            let last = pending.is_empty();
            match &node.kind {
                NodeKind::Symlink { target } if !last || follow_final => {
                    if links.len() >= SYMLINK_LIMIT {
                        return Err(ResolveError::Loop { links });
                    }
                    links.push((here, target.clone()));
                    current.pop();
                    if target.starts_with('/') {
                        current.clear();
                    }
                    pending.extend(components(target).rev().map(str::to_string));
                }
                NodeKind::Dir { .. } => {}
                _ if !last => return Err(ResolveError::NotADirectory { path: here, links }),
                _ => {}
            }
        }
        let path = absolute(&current);
        let node = &self.nodes[&path];
        Ok(Resolved { path, node, links })
    }
}

fn components(path: &str) -> std::iter::Filter<std::str::Split<'_, char>, fn(&&str) -> bool> {
    path.split('/').filter(|c| !c.is_empty())
}

fn absolute(parts: &[String]) -> String {
    if parts.is_empty() {
        "/".to_string()
    } else {
        let mut s = String::new();
        for p in parts {
            s.push('/');
            s.push_str(p);
        }
        s
    }
}
