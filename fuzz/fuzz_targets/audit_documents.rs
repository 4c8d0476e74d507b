//! Fuzz target: see `props::audit_documents`.
#![no_main]

#[path = "props.rs"]
#[allow(dead_code)]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::audit_documents(data));
