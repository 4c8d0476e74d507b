//! Fuzz target: see `props::elf_inspect`.
#![no_main]

#[path = "props.rs"]
#[allow(dead_code)]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::elf_inspect(data));
