use super::super::fixture::{DynSpec, ElfSpec};
use super::*;
use crate::platform::{ElfClass, Endian};

fn spec() -> DynSpec {
    DynSpec {
        needed: vec!["libssl.so.3".into(), "libc.so.6".into()],
        soname: Some("libapp.so.1".into()),
        rpath: None,
        runpath: Some("$ORIGIN/../lib".into()),
        version_needs: vec![(
            "libc.so.6".into(),
            vec![("GLIBC_2.34".into(), false), ("GLIBC_2.99".into(), true)],
        )],
        version_defs: vec!["APP_1.0".into(), "APP_1.1".into()],
    }
}

fn dynamic_of(bytes: &[u8]) -> Option<Dynamic> {
    let layout = locate(bytes, bytes.len() as u64)?;
    read(&layout, Known::contiguous(bytes))
}

#[test]
fn reads_needed_names_paths_and_versions_in_both_classes_and_byte_orders() {
    for class in [ElfClass::Elf32, ElfClass::Elf64] {
        for endian in [Endian::Little, Endian::Big] {
            let bytes = ElfSpec::new(62, class, endian)
                .with_interp("/lib64/ld-linux-x86-64.so.2")
                .with_dynamic(spec())
                .build();
            let d = dynamic_of(&bytes).unwrap_or_else(|| panic!("{class:?} {endian:?}"));
            assert_eq!(
                d.needed,
                ["libssl.so.3", "libc.so.6"],
                "{class:?} {endian:?}"
            );
            assert_eq!(d.soname.as_deref(), Some("libapp.so.1"));
            assert_eq!(d.runpath.as_deref(), Some("$ORIGIN/../lib"));
            assert_eq!(d.rpath, None);
            // The weak need is left out, as the loader does not fail on it.
            assert_eq!(
                d.version_needs.unwrap(),
                [VersionNeed {
                    file: "libc.so.6".into(),
                    versions: vec!["GLIBC_2.34".into()]
                }]
            );
            // The base entry (the file's own name) is not a version.
            assert_eq!(d.version_defs.unwrap(), ["APP_1.0", "APP_1.1"]);
        }
    }
}

#[test]
fn a_file_without_version_tables_has_no_needs_and_unknown_definitions() {
    let bytes = ElfSpec::new(183, ElfClass::Elf64, Endian::Little)
        .with_dynamic(DynSpec {
            needed: vec!["libc.so.6".into()],
            ..DynSpec::default()
        })
        .build();
    let d = dynamic_of(&bytes).unwrap();
    assert_eq!(d.needed, ["libc.so.6"]);
    assert_eq!(d.version_needs, Some(vec![]));
    assert_eq!(d.version_defs, None);
}

#[test]
fn a_static_program_has_no_dynamic_segment() {
    let bytes = ElfSpec::new(62, ElfClass::Elf64, Endian::Little).build();
    let layout = locate(&bytes, bytes.len() as u64).unwrap();
    assert_eq!(layout.dynamic, None);
    assert_eq!(read(&layout, Known::contiguous(&bytes)), None);
}

#[test]
fn tables_outside_the_bytes_read_are_not_known_never_guessed() {
    let bytes = ElfSpec::new(62, ElfClass::Elf64, Endian::Little)
        .with_dynamic(spec())
        .build();
    let layout = locate(&bytes, bytes.len() as u64).unwrap();
    let (offset, _) = layout.dynamic.unwrap();
    // Only the dynamic array, not the string table before it.
    let chunks = [(offset, bytes[offset as usize..].to_vec())];
    let known = Known {
        head: &bytes[..200],
        chunks: &chunks,
    };
    assert_eq!(read(&layout, known), None);
    // The string table in the head and the array in a chunk: all known.
    let known = Known {
        head: &bytes[..offset as usize],
        chunks: &chunks,
    };
    assert_eq!(read(&layout, known).unwrap().needed.len(), 2);
    // Every truncation of the file reads as `None` or a subset, never a panic.
    for len in 0..bytes.len() {
        let _ = read(&layout, Known::contiguous(&bytes[..len]));
    }
}

/// The real files of the machine running the tests (Debian's glibc): `ls` needs `libc.so.6`
/// at versions `libc.so.6` itself defines.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn reads_the_real_glibc_and_a_program_linked_against_it() {
    let libc = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").expect("Debian's libc");
    let ls = std::fs::read("/bin/ls").expect("coreutils");
    let libc = dynamic_of(&libc).unwrap();
    let ls = dynamic_of(&ls).unwrap();
    assert_eq!(libc.soname.as_deref(), Some("libc.so.6"));
    assert!(libc.needed.iter().any(|n| n.starts_with("ld-linux-x86-64")));
    let defs = libc.version_defs.unwrap();
    assert!(defs.contains(&"GLIBC_2.2.5".to_string()), "{defs:?}");
    assert!(ls.needed.contains(&"libc.so.6".to_string()));
    let needs = ls.version_needs.unwrap();
    let from_libc = needs.iter().find(|n| n.file == "libc.so.6").unwrap();
    assert!(!from_libc.versions.is_empty());
    for v in &from_libc.versions {
        assert!(defs.contains(v), "{v} not defined by libc");
    }
}
