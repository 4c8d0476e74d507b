use super::fixture::ElfSpec;
use super::*;
use crate::platform::*;

fn identity_of(bytes: &[u8]) -> ElfIdentity {
    match inspect(bytes) {
        ElfReport::Elf(info) => info.identity,
        other => panic!("{other:?}"),
    }
}

#[test]
fn reads_every_platform_identity_in_both_classes_and_byte_orders() {
    // Every known platform's identity, written by the fixture writer and read back: this
    // covers eleven machines, ELF32 and ELF64, little- and big-endian.
    let mut machines = std::collections::BTreeSet::new();
    let mut seen = std::collections::BTreeSet::new();
    for name in KNOWN_PLATFORMS {
        let platform = Platform::parse(name).unwrap();
        let want = platform.elf_identity().unwrap();
        let flags = match want.float_abi {
            Some(FloatAbi::Hard) => 0x0500_0400,
            Some(FloatAbi::Soft) => 0x0500_0200,
            None => 0,
        };
        let bytes = ElfSpec::new(want.machine, want.class, want.endian)
            .with_flags(flags)
            .build();
        let got = identity_of(&bytes);
        assert_eq!(got, want, "{name}");
        assert!(want.accepts(&got), "{name}");
        machines.insert(want.machine);
        seen.insert((want.class == ElfClass::Elf64, want.endian == Endian::Big));
    }
    assert!(machines.len() >= 8, "{machines:?}");
    assert_eq!(seen.len(), 4, "all class/byte-order combinations: {seen:?}");
}

#[test]
fn amd64_is_not_accepted_on_arm64() {
    let amd64 = identity_of(&ElfSpec::new(EM_X86_64, ElfClass::Elf64, Endian::Little).build());
    let arm64 = Platform::parse("linux/arm64")
        .unwrap()
        .elf_identity()
        .unwrap();
    assert!(!arm64.accepts(&amd64));
    assert_eq!(amd64.to_string(), "x86-64 (ELF64, little-endian)");
}

#[test]
fn reads_the_arm_float_abi_only_for_eabi5() {
    let arm = |flags| {
        identity_of(
            &ElfSpec::new(EM_ARM, ElfClass::Elf32, Endian::Little)
                .with_flags(flags)
                .build(),
        )
    };
    assert_eq!(arm(0x0500_0400).float_abi, Some(FloatAbi::Hard));
    assert_eq!(arm(0x0500_0200).float_abi, Some(FloatAbi::Soft));
    assert_eq!(arm(0x0500_0000).float_abi, None);
    // EABI 4 has no float ABI flags; bit 0x400 means something else there.
    assert_eq!(arm(0x0400_0400).float_abi, None);
    let armhf = Platform::parse("linux/arm/v7")
        .unwrap()
        .elf_identity()
        .unwrap();
    assert!(!armhf.accepts(&arm(0x0500_0200)));
    assert!(armhf.accepts(&arm(0x0500_0000)));
}

#[test]
fn reads_pt_interp_and_kind() {
    for (class, endian) in [
        (ElfClass::Elf64, Endian::Little),
        (ElfClass::Elf32, Endian::Big),
    ] {
        let mut spec = ElfSpec::new(EM_MIPS, class, endian).with_interp("/lib/ld.so.1");
        spec.e_type = 3;
        match inspect(&spec.build()) {
            ElfReport::Elf(info) => {
                assert_eq!(info.interp.as_deref(), Some("/lib/ld.so.1"));
                assert_eq!(info.kind, ElfKind::SharedObject);
                assert!(!info.interp_beyond_prefix);
            }
            other => panic!("{other:?}"),
        }
    }
    match inspect(&ElfSpec::new(EM_RISCV, ElfClass::Elf64, Endian::Little).build()) {
        ElfReport::Elf(info) => {
            assert_eq!(info.interp, None);
            assert_eq!(info.kind, ElfKind::Executable);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn interp_beyond_the_prefix_is_unknown_not_missing() {
    let bytes = ElfSpec::new(EM_AARCH64, ElfClass::Elf64, Endian::Little)
        .with_interp("/lib/ld-linux-aarch64.so.1")
        .build();
    let cut = &bytes[..bytes.len() - 5];
    match inspect_prefix(cut, bytes.len() as u64) {
        ElfReport::Elf(info) => {
            assert!(info.interp_beyond_prefix);
            assert_eq!(info.interp, None);
        }
        other => panic!("{other:?}"),
    }
    // The same bytes as a whole file are truncated.
    assert!(matches!(inspect(cut), ElfReport::Malformed(r) if r.contains("PT_INTERP")));
}

#[test]
fn truncated_and_malformed_files_are_never_another_architecture() {
    let bytes = ElfSpec::new(EM_X86_64, ElfClass::Elf64, Endian::Little)
        .with_interp("/lib64/ld-linux-x86-64.so.2")
        .build();
    for len in 0..bytes.len() {
        let report = inspect(&bytes[..len]);
        match report {
            ElfReport::NotElf => assert!(len < 4),
            ElfReport::Malformed(reason) => assert!(!reason.is_empty()),
            ElfReport::Elf(info) => panic!("{len} bytes read as {info:?}"),
        }
    }
    let mut bad_class = bytes.clone();
    bad_class[4] = 7;
    assert!(matches!(inspect(&bad_class), ElfReport::Malformed(r) if r.contains("class 7")));
    let mut bad_order = bytes.clone();
    bad_order[5] = 0;
    assert!(matches!(inspect(&bad_order), ElfReport::Malformed(r) if r.contains("byte order")));
    let mut huge_phnum = bytes.clone();
    huge_phnum[56] = 0xff;
    huge_phnum[57] = 0xff;
    assert!(matches!(inspect(&huge_phnum), ElfReport::Malformed(_)));
    let mut bad_phentsize = bytes;
    bad_phentsize[54] = 3;
    assert!(matches!(inspect(&bad_phentsize), ElfReport::Malformed(r) if r.contains("entries")));
    assert_eq!(inspect(b"#!/bin/sh\n"), ElfReport::NotElf);
}

#[test]
fn never_panics_on_arbitrary_bytes() {
    // A cheap deterministic fuzz: flip bytes of valid headers of both classes.
    let seeds = [
        ElfSpec::new(EM_X86_64, ElfClass::Elf64, Endian::Little)
            .with_interp("/lib/x")
            .build(),
        ElfSpec::new(EM_S390, ElfClass::Elf32, Endian::Big)
            .with_interp("/lib/y")
            .build(),
    ];
    let mut state: u32 = 0x1234_5678;
    for seed in &seeds {
        for _ in 0..20_000 {
            let mut b = seed.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let i = 4 + (state as usize) % (b.len() - 4);
                b[i] = (state >> 8) as u8;
            }
            let _ = inspect(&b);
            let _ = inspect_prefix(&b[..b.len() / 2], b.len() as u64);
        }
    }
}

#[test]
fn x86_isa_level_needed_is_read_from_the_property_note() {
    let spec = ElfSpec::new(EM_X86_64, ElfClass::Elf64, Endian::Little);
    let level = |bytes: &[u8]| match inspect(bytes) {
        ElfReport::Elf(info) => info.x86_level_needed,
        other => panic!("{other:?}"),
    };
    assert_eq!(level(&spec.build()), None, "no note, nothing guessed");
    assert_eq!(level(&spec.clone().with_isa_needed(0b1).build()), Some(1));
    assert_eq!(level(&spec.clone().with_isa_needed(0b111).build()), Some(3));
    assert_eq!(
        level(&spec.clone().with_isa_needed(0b1011).build()),
        Some(4)
    );
    assert_eq!(level(&spec.clone().with_isa_needed(0).build()), None);
    let with_loader = spec
        .clone()
        .with_interp("/lib64/ld-linux-x86-64.so.2")
        .with_isa_needed(0b11);
    assert_eq!(level(&with_loader.build()), Some(2));
    // A note cut off by the prefix is unknown, not a level.
    let whole = spec.clone().with_isa_needed(0b111).build();
    match inspect_prefix(&whole[..whole.len() - 4], whole.len() as u64) {
        ElfReport::Elf(info) => assert_eq!(info.x86_level_needed, None),
        other => panic!("{other:?}"),
    }
    // Other machines do not carry x86 levels even with the note.
    let arm = ElfSpec::new(crate::platform::EM_AARCH64, ElfClass::Elf64, Endian::Little)
        .with_isa_needed(0b111)
        .build();
    assert!(matches!(inspect(&arm), ElfReport::Elf(i) if i.x86_level_needed.is_none()));
}
