//! Fuzz target: see `props::docker_archive`.
#![no_main]

#[path = "props.rs"]
#[allow(dead_code)]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::docker_archive(data));
