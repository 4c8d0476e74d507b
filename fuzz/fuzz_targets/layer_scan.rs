//! Fuzz target: see `props::layer_scan`.
#![no_main]

#[path = "props.rs"]
#[allow(dead_code)]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::layer_scan(data));
