//! The properties each fuzz target checks, shared with the stable test that replays the
//! committed seeds (`tests/fuzz_seeds.rs`): whatever the bytes, the readers return a value
//! or an error, never panic, never loop, and stay within their limits.

use std::path::Path;

use archbuild::elf::{inspect, inspect_prefix, ElfReport};
use archbuild::layers::{scan, scan_seekable, Filesystem, Limits};

/// `elf::inspect` never panics, and a prefix never reads as a different identity than the
/// whole file.
pub fn elf_inspect(data: &[u8]) {
    let whole = inspect(data);
    let half = inspect_prefix(&data[..data.len() / 2], data.len() as u64);
    if let (ElfReport::Elf(a), ElfReport::Elf(b)) = (&whole, &half) {
        assert_eq!(a.identity, b.identity);
    }
}

/// Small limits, so that the fuzzer reaches them.
fn small_limits() -> Limits {
    Limits {
        entries: 500,
        tar_bytes: 8 << 20,
    }
}

/// The streaming and the seeking layer scans never panic, agree when both succeed, and the
/// merged filesystem resolves every path to an answer.
pub fn layer_scan(data: &[u8]) {
    let streamed = scan(data, "fuzz", small_limits());
    let seeked = scan_seekable(std::io::Cursor::new(data), "fuzz", small_limits());
    if let (Ok(a), Ok(b)) = (&streamed, &seeked) {
        assert_eq!(a.entries, b.entries);
    }
    if let Ok(summary) = streamed {
        let paths: Vec<String> = summary.entries.iter().map(|e| e.path.clone()).collect();
        let fs = Filesystem::merge(&[summary]);
        for p in paths {
            let _ = fs.resolve(&p, true);
        }
    }
}

/// A `docker save` archive (both layouts Docker writes) reads to images or an error.
pub fn docker_archive(data: &[u8]) {
    let _ = archbuild::image::archive::read(data, "fuzz.tar");
}

/// `archbuild.toml` parses to a project or to errors that each name a line.
pub fn project_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = archbuild::config::parse_str(text, Path::new("/fuzz/archbuild.toml")) {
        assert!(!errors.to_string().is_empty());
    }
}

/// The Dockerfile reader returns stages whose parents come before them.
pub fn dockerfile(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let file = archbuild::dockerfile::parse(&text);
    let parents = file.parents();
    for (i, parent) in parents.iter().enumerate() {
        if let Some(p) = parent {
            assert!(*p < i, "stage {i} has parent {p}");
        }
    }
    let _ = file.on_build_platform();
    let _ = file.stage_names();
}

/// Kubernetes documents parse or fail with the file named.
pub fn audit_documents(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/fuzz/cluster.yaml");
    if let Err(e) = archbuild::audit::documents::parse(text, file) {
        assert!(e.to_string().contains("cluster.yaml"), "{e}");
    }
}
