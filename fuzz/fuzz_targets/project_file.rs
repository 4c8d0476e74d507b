//! Fuzz target: see `props::project_file`.
#![no_main]

#[path = "props.rs"]
#[allow(dead_code)]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::project_file(data));
