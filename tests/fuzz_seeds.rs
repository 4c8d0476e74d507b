//! Replays the fuzzing seeds (`fuzz/seeds/TARGET/*`: hand-made inputs and what the campaigns
//! found reaching new code) through the same properties the fuzz targets check, on the
//! stable toolchain, so that every run of the test suite re-checks what fuzzing established.

use std::path::Path;

#[path = "../fuzz/fuzz_targets/props.rs"]
mod props;

fn replay(target: &str, property: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| property(&bytes));
        assert!(outcome.is_ok(), "{target} fails on seed {}", path.display());
        count += 1;
    }
    assert!(count > 0, "no seeds in {}", dir.display());
}

#[test]
fn elf_inspect_seeds() {
    replay("elf_inspect", props::elf_inspect);
}

#[test]
fn layer_scan_seeds() {
    replay("layer_scan", props::layer_scan);
}

#[test]
fn docker_archive_seeds() {
    replay("docker_archive", props::docker_archive);
}

#[test]
fn project_file_seeds() {
    replay("project_file", props::project_file);
}

#[test]
fn dockerfile_seeds() {
    replay("dockerfile", props::dockerfile);
}

#[test]
fn audit_documents_seeds() {
    replay("audit_documents", props::audit_documents);
}
