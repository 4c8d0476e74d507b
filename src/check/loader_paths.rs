//! Where the dynamic loaders look for libraries in one image: `LD_LIBRARY_PATH` from the
//! config's `Env`, glibc's `/etc/ld.so.conf` with its `include` globs (what `ldconfig` puts
//! in the cache, ldconfig(8)), glibc's loader cache `/etc/ld.so.cache` itself (soname →
//! path, read by [`super::ld_cache`]), the loaders' default folders (glibc's system search
//! path, multiarch folders included, as `ld.so --help` lists them; musl's
//! `/etc/ld-musl-ARCH.path` or `/lib:/usr/local/lib:/usr/lib`), and the order in which the
//! `DT_RPATH`/`DT_RUNPATH` (with `$ORIGIN`) of an object and of the objects that loaded it
//! (its chain of loaders up to the program) come among them, and the `glibc-hwcaps`
//! subfolders glibc tries in each folder before the folder itself ([`hwcaps_subdirs`]). Pure.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::ld_cache;
use crate::elf::dynamic::Dynamic;
use crate::layers::{parent, Content, Filesystem, NodeKind};
use crate::oci::ImageConfig;
use crate::platform::{amd64_level, ElfClass, Endian, Platform};

/// `include` nesting followed in `ld.so.conf` (ldconfig has no limit; real files nest once).
const MAX_INCLUDE_DEPTH: usize = 8;

/// The image-wide parts of the search.
#[derive(Clone, Debug, Default)]
pub struct SearchPaths {
    /// `LD_LIBRARY_PATH`; `None` element: one the loader would take relative to a working
    /// folder, which makes a search that fails unknown.
    pub env: Vec<Option<String>>,
    /// Folders of `/etc/ld.so.conf` and its includes, in order.
    pub conf: Vec<String>,
    /// glibc's loader cache, when the image has one: soname → the paths listed for it with
    /// flags the platform's loader takes, those of the `glibc-hwcaps` subfolders in
    /// [`Self::hwcaps`] first (most capable first), then those for no special CPU (`hwcap` 0).
    pub cache: Option<HashMap<String, Vec<String>>>,
    /// The cache's paths, by soname, in `glibc-hwcaps` subfolders of [`Self::hwcaps_beyond`]:
    /// libraries the loader takes only on some nodes of the platform.
    pub cache_beyond: HashMap<String, Vec<String>>,
    /// The `glibc-hwcaps` subfolders glibc searches on every node of the platform, most
    /// capable first ([`hwcaps_subdirs`]).
    pub hwcaps: Vec<String>,
    /// Those it searches only on some nodes (on CPUs above the platform's level).
    pub hwcaps_beyond: Vec<String>,
    /// glibc's default folders for the platform.
    pub glibc_defaults: Vec<String>,
    /// musl's folders (its path file, or its default).
    pub musl: Vec<String>,
}

/// The search paths of the image for programs of `platform`.
pub fn search_paths(fs: &Filesystem, config: &ImageConfig, platform: &Platform) -> SearchPaths {
    let configs: BTreeMap<&str, &str> = fs
        .iter()
        .filter_map(|(path, node)| match &node.kind {
            NodeKind::File(f) => match &f.content {
                Content::LoaderConfig(text) => Some((path, text.as_str())),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let env = config
        .env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("LD_LIBRARY_PATH="))
        .map(|v| v.split([':', ';']).map(absolute).collect())
        .unwrap_or_default();
    let mut conf = Vec::new();
    let mut seen = HashSet::new();
    read_conf(&configs, "/etc/ld.so.conf", 0, &mut seen, &mut conf);
    let musl = configs
        .iter()
        .find(|(path, _)| path.starts_with("/etc/ld-musl-"))
        .map(|(_, text)| {
            text.split(['\n', ':'])
                .map(str::trim)
                .filter(|d| d.starts_with('/'))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_else(|| {
            ["/lib", "/usr/local/lib", "/usr/lib"]
                .map(String::from)
                .to_vec()
        });
    let (hwcaps, hwcaps_beyond) = hwcaps_subdirs(platform);
    let (cache, cache_beyond) = match loader_cache(fs, platform, &hwcaps, &hwcaps_beyond) {
        Some((cache, beyond)) => (Some(cache), beyond),
        None => (None, HashMap::new()),
    };
    SearchPaths {
        env,
        conf,
        cache,
        cache_beyond,
        hwcaps,
        hwcaps_beyond,
        glibc_defaults: glibc_defaults(platform),
        musl,
    }
}

/// The `glibc-hwcaps` subfolder names glibc's loader (2.33 and later) tries, in each folder
/// it searches and before the folder itself, on every node of `platform`, most capable first;
/// and those it tries only on some nodes. glibc takes the names of the running CPU
/// (`_dl_important_hwcaps`, `elf/dl-hwcaps.c`; `ld.so --help` lists them) from
/// `_dl_hwcaps_subdirs` and `_dl_hwcaps_subdirs_active`: `x86-64-v4:x86-64-v3:x86-64-v2`
/// by ISA level (`sysdeps/x86_64/dl-hwcaps-subdirs.c`), `power10:power9`
/// (`sysdeps/powerpc/powerpc64/le/dl-hwcaps-subdirs.c`), `z16:z15:z14:z13`
/// (`sysdeps/s390/s390-64/dl-hwcaps-subdirs.c`). An image runs on any node of its platform,
/// so only the names every node supports are searched: those up to the level of
/// `linux/amd64/vN`; none for plain `linux/amd64` (v1), whose nodes may lack x86-64-v2, nor
/// for the POWER and Z ones, whose platforms guarantee only POWER8 and z196.
pub fn hwcaps_subdirs(platform: &Platform) -> (Vec<String>, Vec<String>) {
    let x86_64 = platform
        .elf_identity()
        .is_some_and(|i| i.machine == 62 && i.class == ElfClass::Elf64);
    let all: &[&str] = match platform.architecture.as_str() {
        "amd64" if x86_64 => &["x86-64-v4", "x86-64-v3", "x86-64-v2"],
        "ppc64le" => &["power10", "power9"],
        "s390x" => &["z16", "z15", "z14", "z13"],
        _ => &[],
    };
    let level = if x86_64 { amd64_level(platform) } else { 0 };
    let supported = |name: &str| {
        name.strip_prefix("x86-64-v")
            .and_then(|v| v.parse::<u8>().ok())
            .is_some_and(|v| v <= level)
    };
    let (used, beyond): (Vec<&str>, Vec<&str>) = all.iter().partition(|n| supported(n));
    (
        used.into_iter().map(String::from).collect(),
        beyond.into_iter().map(String::from).collect(),
    )
}

type Cache = HashMap<String, Vec<String>>;

/// The entries of the image's `/etc/ld.so.cache` the platform's loader takes, by soname, as
/// [`SearchPaths::cache`] orders them, and those of subfolders in `beyond`: glibc's
/// `search_cache` (`elf/dl-cache.c`) takes the entry of the active `glibc-hwcaps` subfolder
/// of highest priority, else one for no special CPU, and never one of an inactive subfolder.
fn loader_cache(
    fs: &Filesystem,
    platform: &Platform,
    hwcaps: &[String],
    beyond: &[String],
) -> Option<(Cache, Cache)> {
    let identity = platform.elf_identity()?;
    let r = fs.resolve(crate::layers::LOADER_CACHE, true).ok()?;
    let NodeKind::File(file) = &r.node.kind else {
        return None;
    };
    let Content::LoaderCache(bytes) = &file.content else {
        return None;
    };
    let mut entries: Vec<ld_cache::Entry> = ld_cache::parse(bytes, identity.endian)
        .into_iter()
        .filter(|e| ld_cache::accepts(e.flags, &identity))
        .collect();
    // The rank of an entry: the active subfolders by priority, then no special CPU, then
    // legacy hwcaps; `None` for a subfolder not active on every node.
    let rank = |e: &ld_cache::Entry| match &e.hwcaps {
        Some(name) => hwcaps.iter().position(|h| h == name),
        None => Some(hwcaps.len() + usize::from(e.hwcap != 0)),
    };
    entries.sort_by_key(|e| rank(e).unwrap_or(usize::MAX));
    let mut cache = Cache::new();
    let mut others = Cache::new();
    for e in entries {
        let into = match (&e.hwcaps, rank(&e)) {
            (_, Some(_)) => &mut cache,
            (Some(name), None) if beyond.contains(name) => &mut others,
            _ => continue,
        };
        let paths = into.entry(e.soname).or_default();
        if !paths.contains(&e.path) {
            paths.push(e.path);
        }
    }
    Some((cache, others))
}

/// One place the loader looks for a library: a folder, or glibc's loader cache.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    Dir(String),
    Cache,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Dir(d) => f.write_str(d),
            Place::Cache => f.write_str(crate::layers::LOADER_CACHE),
        }
    }
}

/// One object in the chain that loads a library: its dynamic section and its folder, which
/// `$ORIGIN` in its own run paths stands for.
#[derive(Clone)]
pub struct Loader<'a> {
    pub dynamic: &'a Dynamic,
    pub origin: String,
}

impl SearchPaths {
    /// The paths the loader tries for `name` in the folder `dir`: glibc (2.33 and later)
    /// tries `dir/glibc-hwcaps/NAME/name` for each of [`Self::hwcaps`] first, most capable
    /// first, then `dir/name` (`open_path` over the `capstr` list of `_dl_important_hwcaps`,
    /// `elf/dl-load.c`, `elf/dl-hwcaps.c`); musl only `dir/name`.
    pub fn in_dir(&self, dir: &str, name: &str, musl: bool) -> Vec<String> {
        let hwcaps: &[String] = if musl { &[] } else { &self.hwcaps };
        let dir = dir.trim_end_matches('/');
        hwcaps
            .iter()
            .map(|h| format!("{dir}/glibc-hwcaps/{h}/{name}"))
            .chain(std::iter::once(format!("{dir}/{name}")))
            .collect()
    }

    /// The places searched, in order, for a library needed by the last object of `chain`
    /// (the objects from the program down to that one, each loaded by the one before: its
    /// loaders), and whether the list is complete (no element the loader would expand in a
    /// way not known here).
    ///
    /// glibc (`_dl_map_object`, `elf/dl-load.c`): when the object has no `DT_RUNPATH`, the
    /// `DT_RPATH` of the object, then of the object that loaded it (`l_loader`), and on up
    /// to the program (an object with a `DT_RUNPATH` has its `DT_RPATH` ignored,
    /// `elf/get-dynamic-info.h`), each `$ORIGIN` that object's own folder; then
    /// `LD_LIBRARY_PATH`, the object's `DT_RUNPATH`, the cache (when the image has one;
    /// then the `ld.so.conf` folders, which stand for a cache not built or out of date) and
    /// the default folders.
    /// musl (`load_library`, `ldso/dynlink.c`): `LD_LIBRARY_PATH`, then the run path of the
    /// object and of each object up its `needed_by` chain (`DT_RUNPATH`, else `DT_RPATH`,
    /// `decode_dyn`), then its path file or default.
    pub fn order(&self, chain: &[Loader<'_>], musl: bool) -> (Vec<Place>, bool) {
        let mut dirs: Vec<Option<Place>> = Vec::new();
        let expand = |path: Option<&String>, origin: &str, dirs: &mut Vec<Option<Place>>| {
            if let Some(p) = path {
                dirs.extend(
                    p.split(':')
                        .map(|d| expand_origin(d, origin).map(Place::Dir)),
                );
            }
        };
        let object = chain.last();
        if musl {
            dirs.extend(self.env.iter().map(|d| d.clone().map(Place::Dir)));
            for l in chain.iter().rev() {
                let d = l.dynamic;
                expand(
                    d.runpath.as_ref().or(d.rpath.as_ref()),
                    &l.origin,
                    &mut dirs,
                );
            }
            dirs.extend(self.musl.iter().map(|d| Some(Place::Dir(d.clone()))));
        } else {
            if object.is_none_or(|o| o.dynamic.runpath.is_none()) {
                for l in chain.iter().rev() {
                    if l.dynamic.runpath.is_none() {
                        expand(l.dynamic.rpath.as_ref(), &l.origin, &mut dirs);
                    }
                }
            }
            dirs.extend(self.env.iter().map(|d| d.clone().map(Place::Dir)));
            if let Some(o) = object {
                expand(o.dynamic.runpath.as_ref(), &o.origin, &mut dirs);
            }
            if self.cache.is_some() {
                dirs.push(Some(Place::Cache));
            }
            dirs.extend(self.conf.iter().map(|d| Some(Place::Dir(d.clone()))));
            dirs.extend(
                self.glibc_defaults
                    .iter()
                    .map(|d| Some(Place::Dir(d.clone()))),
            );
        }
        let complete = dirs.iter().all(Option::is_some);
        let mut unique = Vec::new();
        for d in dirs.into_iter().flatten() {
            if !unique.contains(&d) {
                unique.push(d);
            }
        }
        (unique, complete)
    }
}

/// A search path element with `$ORIGIN` replaced; `None` for one that is relative or holds
/// another token (`$LIB`, `$PLATFORM`), whose expansion depends on the host.
fn expand_origin(dir: &str, origin: &str) -> Option<String> {
    let dir = dir.replace("${ORIGIN}", origin).replace("$ORIGIN", origin);
    absolute(&dir).filter(|d| !d.contains('$'))
}

fn absolute(dir: &str) -> Option<String> {
    let dir = dir.trim();
    dir.starts_with('/')
        .then(|| dir.trim_end_matches('/').to_string())
        .map(|d| if d.is_empty() { "/".to_string() } else { d })
}

/// One `ld.so.conf` file: folder lines and `include` globs (relative ones from the file's
/// folder), in order; `hwcap` lines and comments ignored, as ldconfig does.
fn read_conf(
    configs: &BTreeMap<&str, &str>,
    path: &str,
    depth: usize,
    seen: &mut HashSet<String>,
    out: &mut Vec<String>,
) {
    if depth > MAX_INCLUDE_DEPTH || !seen.insert(path.to_string()) {
        return;
    }
    let Some(text) = configs.get(path) else {
        return;
    };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(pattern) = line
            .strip_prefix("include")
            .filter(|r| r.starts_with([' ', '\t']))
        {
            for pattern in pattern.split_whitespace() {
                let pattern = if pattern.starts_with('/') {
                    pattern.to_string()
                } else {
                    format!("{}/{pattern}", parent(path))
                };
                let Ok(glob) = globset::Glob::new(&pattern) else {
                    continue;
                };
                let matcher = glob.compile_matcher();
                let matched: Vec<&str> = configs
                    .keys()
                    .copied()
                    .filter(|p| matcher.is_match(p))
                    .collect();
                for included in matched {
                    read_conf(configs, included, depth + 1, seen, out);
                }
            }
        } else if line.starts_with("hwcap") {
            continue;
        } else {
            for dir in line.split([' ', '\t', ',', ':']) {
                // `DIR=TYPE` is an old library type marker.
                if let Some(d) = absolute(dir.split('=').next().unwrap_or("")) {
                    if !out.contains(&d) {
                        out.push(d);
                    }
                }
            }
        }
    }
}

/// glibc's system search path: the multiarch folders of the platform's triplets (Debian,
/// Ubuntu), then `/lib` and `/usr/lib`, and `/lib64`, `/usr/lib64` for 64-bit programs
/// (Fedora, RHEL, SUSE): a folder one distribution's loader skips is searched here too, so
/// a library is never reported missing that some loader would find there.
fn glibc_defaults(platform: &Platform) -> Vec<String> {
    let Some(identity) = platform.elf_identity() else {
        return Vec::new();
    };
    let triplets: &[&str] = match (identity.machine, identity.class, identity.endian) {
        (62, ElfClass::Elf64, _) => &["x86_64-linux-gnu"],
        (62, ElfClass::Elf32, _) => &["x86_64-linux-gnux32"],
        (3, ..) => &["i386-linux-gnu", "i686-linux-gnu"],
        (183, _, Endian::Little) => &["aarch64-linux-gnu"],
        (183, _, Endian::Big) => &["aarch64_be-linux-gnu"],
        (40, ..) => &["arm-linux-gnueabihf", "arm-linux-gnueabi"],
        (21, _, Endian::Little) => &["powerpc64le-linux-gnu"],
        (21, _, Endian::Big) => &["powerpc64-linux-gnu"],
        (20, ..) => &["powerpc-linux-gnu"],
        (22, ..) => &["s390x-linux-gnu"],
        (243, ..) => &["riscv64-linux-gnu"],
        (258, ..) => &["loongarch64-linux-gnu"],
        (8, ElfClass::Elf64, Endian::Little) => &["mips64el-linux-gnuabi64"],
        (8, ElfClass::Elf64, Endian::Big) => &["mips64-linux-gnuabi64"],
        (8, ElfClass::Elf32, Endian::Little) => &["mipsel-linux-gnu"],
        (8, ElfClass::Elf32, Endian::Big) => &["mips-linux-gnu"],
        _ => &[],
    };
    let mut dirs: Vec<String> = Vec::new();
    for t in triplets {
        dirs.push(format!("/lib/{t}"));
        dirs.push(format!("/usr/lib/{t}"));
    }
    dirs.extend(["/lib", "/usr/lib"].map(String::from));
    if identity.class == ElfClass::Elf64 {
        dirs.extend(["/lib64", "/usr/lib64"].map(String::from));
    }
    dirs
}
