//! `elf::inspect` never panics, and a prefix never reads as a different architecture than
//! the whole file.
#![no_main]

use archbuild::elf::{inspect, inspect_prefix, ElfReport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = inspect(data);
    let half = inspect_prefix(&data[..data.len() / 2], data.len() as u64);
    if let (ElfReport::Elf(a), ElfReport::Elf(b)) = (&whole, &half) {
        assert_eq!(a.identity, b.identity);
    }
});
