use std::io::Write;

use super::tests_support::{tar, T};
use super::*;
use crate::elf::fixture::ElfSpec;
use crate::platform::{ElfClass, Endian, EM_AARCH64, EM_X86_64};

fn layer(entries: &[(&str, T<'_>)]) -> LayerSummary {
    scan(&tar(entries)[..], "sha256:test", Limits::default()).unwrap()
}

fn amd64() -> Vec<u8> {
    ElfSpec::new(EM_X86_64, ElfClass::Elf64, Endian::Little)
        .with_interp("/lib64/ld-linux-x86-64.so.2")
        .build()
}

#[test]
fn scans_files_dirs_links_and_content() {
    let arm = ElfSpec::new(EM_AARCH64, ElfClass::Elf64, Endian::Little).build();
    let s = layer(&[
        ("./usr/", T::Dir),
        ("./usr/bin/app", T::Exe(&arm)),
        (
            "usr/bin/run.sh",
            T::Exe(b"#!/usr/bin/env -S python3 -u\nprint(1)\n"),
        ),
        ("usr/bin/sh", T::Link("busybox")),
        ("usr/bin/hard", T::Hard("./usr/bin/app")),
        ("etc/motd", T::File(b"hello")),
    ]);
    assert_eq!(s.compression, Compression::None);
    let paths: Vec<&str> = s.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/usr",
            "/usr/bin/app",
            "/usr/bin/run.sh",
            "/usr/bin/sh",
            "/usr/bin/hard",
            "/etc/motd"
        ]
    );
    match &s.entries[1].kind {
        EntryKind::File(f) => {
            assert!(f.is_executable());
            assert!(
                matches!(&f.content, Content::Elf(crate::elf::ElfReport::Elf(i)) if i.identity.machine == EM_AARCH64)
            );
        }
        other => panic!("{other:?}"),
    }
    match &s.entries[2].kind {
        EntryKind::File(FileInfo {
            content: Content::Script(sb),
            ..
        }) => {
            assert_eq!(sb.interpreter, "/usr/bin/env");
            assert_eq!(sb.arg.as_deref(), Some("-S python3 -u"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.entries[4].kind,
        EntryKind::Hardlink {
            target: "/usr/bin/app".into()
        }
    );
    assert_eq!(
        s.entries[5].kind,
        EntryKind::File(FileInfo {
            size: 5,
            mode: 0o644,
            content: Content::Other
        })
    );
}

#[test]
fn detects_gzip_and_zstd_by_magic_bytes() {
    let raw = tar(&[("bin/app", T::Exe(&amd64()))]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&raw[..], 1).unwrap();
    for (bytes, want) in [(gz, Compression::Gzip), (zst, Compression::Zstd)] {
        let s = scan(&bytes[..], "l", Limits::default()).unwrap();
        assert_eq!(s.compression, want);
        assert_eq!(s.entries.len(), 1);
        assert_eq!(s.tar_bytes, raw.len() as u64);
    }
}

#[test]
fn truncated_and_corrupt_layers_say_where() {
    let raw = tar(&[("bin/a", T::Exe(&[7u8; 5000])), ("bin/b", T::File(b"x"))]);
    let cut = &raw[..3000];
    let err = scan(cut, "sha256:abc", Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sha256:abc") && err.contains("corrupt or truncated"),
        "{err}"
    );
    assert!(err.contains("after entry /bin/a"), "{err}");

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let err = scan(&gz[..gz.len() - 6], "sha256:gz", Limits::default()).unwrap_err();
    assert!(matches!(err, LayerError::Corrupt { .. }), "{err}");
    let err = scan(&b"BZh91AY&SY"[..], "sha256:bz", Limits::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("bzip2"), "{err}");
}

#[test]
fn path_traversal_is_recorded_not_applied() {
    let s = layer(&[
        ("../../etc/passwd", T::File(b"root::0:0")),
        ("a/../../b", T::File(b"x")),
        ("/etc/ok", T::File(b"x")),
        ("etc/link", T::Hard("../../../etc/shadow")),
    ]);
    assert_eq!(s.unsafe_entries.len(), 3, "{:?}", s.unsafe_entries);
    assert!(s.unsafe_entries[0].reason.contains("path traversal"));
    assert_eq!(s.entries.len(), 1);
    assert_eq!(s.entries[0].path, "/etc/ok");
    let fs = Filesystem::merge(&[s]);
    assert!(fs.get("/etc/passwd").is_none());
    assert_eq!(fs.unsafe_entries.len(), 3);
}

#[test]
fn absurd_sizes_are_refused() {
    let mut h = tar::Header::new_gnu();
    h.set_path("big").unwrap();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(1 << 43);
    h.set_cksum();
    let mut raw = h.as_bytes().to_vec();
    raw.extend_from_slice(&[0; 4096]);
    let err = scan(&raw[..], "l", Limits::default()).unwrap_err();
    assert!(
        matches!(err, LayerError::AbsurdSize { ref name, .. } if name == "big"),
        "{err}"
    );
}

#[test]
fn file_whiteout_removes_only_lower_layers() {
    let lower = layer(&[("bin/app", T::Exe(&amd64())), ("bin/keep", T::File(b"k"))]);
    // The whiteout comes after a re-add in the same tar: it must not hide the re-added file.
    let upper = layer(&[
        ("bin/new", T::File(b"n")),
        ("bin/.wh.app", T::File(b"")),
        ("bin/.wh.new", T::File(b"")),
    ]);
    assert_eq!(
        upper.entries[1],
        Entry {
            path: "/bin/app".into(),
            kind: EntryKind::Whiteout
        }
    );
    let fs = Filesystem::merge(&[lower, upper]);
    assert!(fs.get("/bin/app").is_none());
    assert!(fs.get("/bin/keep").is_some());
    assert!(
        fs.get("/bin/new").is_some(),
        "a whiteout hides only lower layers"
    );
    assert!(fs.get("/bin/.wh.app").is_none());
}

#[test]
fn whiteout_of_a_folder_removes_its_tree_and_re_add_comes_back() {
    let l1 = layer(&[
        ("opt/tool/", T::Dir),
        ("opt/tool/bin/x", T::Exe(&amd64())),
        ("opt/other", T::File(b"o")),
    ]);
    let l2 = layer(&[("opt/.wh.tool", T::File(b""))]);
    let l3 = layer(&[("opt/tool/fresh", T::File(b"f"))]);
    let fs = Filesystem::merge(&[l1.clone(), l2.clone()]);
    assert!(fs.get("/opt/tool").is_none());
    assert!(fs.get("/opt/tool/bin/x").is_none());
    assert!(fs.get("/opt/other").is_some());
    let fs = Filesystem::merge(&[l1, l2, l3]);
    assert!(fs.get("/opt/tool/fresh").is_some());
    assert!(
        fs.get("/opt/tool/bin/x").is_none(),
        "re-adding a folder does not bring back its old content"
    );
    assert!(matches!(
        fs.get("/opt/tool").unwrap().kind,
        NodeKind::Dir { .. }
    ));
}

#[test]
fn opaque_folder_hides_lower_content_but_keeps_its_own() {
    let l1 = layer(&[
        ("app/old", T::File(b"1")),
        ("app/sub/deep", T::File(b"2")),
        ("keep", T::File(b"3")),
    ]);
    let l2 = layer(&[
        ("app/new", T::File(b"4")),
        ("app/.wh..wh..opq", T::File(b"")),
    ]);
    assert_eq!(
        l2.entries[1],
        Entry {
            path: "/app".into(),
            kind: EntryKind::OpaqueDir
        }
    );
    let fs = Filesystem::merge(&[l1, l2]);
    assert!(fs.get("/app").is_some());
    assert!(fs.get("/app/old").is_none());
    assert!(fs.get("/app/sub/deep").is_none());
    assert!(fs.get("/app/new").is_some());
    assert!(fs.get("/keep").is_some());
}

#[test]
fn files_replace_folders_and_folders_merge() {
    let l1 = layer(&[("a/x", T::File(b"1")), ("b", T::File(b"2"))]);
    let l2 = layer(&[
        ("a", T::File(b"now a file")),
        ("b/", T::Dir),
        ("b/y", T::File(b"3")),
    ]);
    let l3 = layer(&[("b/", T::Dir)]);
    let fs = Filesystem::merge(&[l1, l2, l3]);
    assert!(matches!(fs.get("/a").unwrap().kind, NodeKind::File(_)));
    assert!(fs.get("/a/x").is_none());
    assert!(
        fs.get("/b/y").is_some(),
        "a later folder entry replaces nothing"
    );
    assert_eq!(fs.get("/b").unwrap().layer, 2);
}

#[test]
fn hard_links_take_their_target_and_survive_its_deletion() {
    let l1 = layer(&[
        ("bin/app", T::Exe(&amd64())),
        ("bin/alias", T::Hard("bin/app")),
        ("bin/dangling", T::Hard("bin/nope")),
    ]);
    let l2 = layer(&[("bin/.wh.app", T::File(b""))]);
    let fs = Filesystem::merge(&[l1, l2]);
    assert!(matches!(&fs.get("/bin/alias").unwrap().kind, NodeKind::File(f) if f.is_executable()));
    assert!(matches!(
        fs.get("/bin/dangling").unwrap().kind,
        NodeKind::DanglingHardlink { .. }
    ));
}

#[test]
fn resolves_absolute_and_relative_symlinks_across_layers() {
    let l1 = layer(&[
        ("usr/lib/ld.so", T::Exe(&amd64())),
        ("lib", T::Link("usr/lib")),
    ]);
    let l2 = layer(&[
        ("lib64", T::Link("/lib")),
        ("usr/bin/x", T::Link("../lib/./ld.so")),
    ]);
    // Written through the symlinked folder, as an extractor following it would.
    let l3 = layer(&[("lib/extra.so", T::File(b"e"))]);
    let fs = Filesystem::merge(&[l1, l2, l3]);
    let r = fs.resolve("/lib64/ld.so", true).unwrap();
    assert_eq!(r.path, "/usr/lib/ld.so");
    assert_eq!(r.links.len(), 2);
    assert_eq!(
        fs.resolve("/usr/bin/x", true).unwrap().path,
        "/usr/lib/ld.so"
    );
    assert!(matches!(
        fs.resolve("/usr/bin/x", false).unwrap().node.kind,
        NodeKind::Symlink { .. }
    ));
    assert!(fs.get("/usr/lib/extra.so").is_some());
    assert!(matches!(
        fs.get("/lib").unwrap().kind,
        NodeKind::Symlink { .. }
    ));
    assert_eq!(
        fs.resolve("/../../lib/ld.so", true).unwrap().path,
        "/usr/lib/ld.so"
    );
}

#[test]
fn dangling_links_loops_and_files_as_folders_are_named() {
    let s = layer(&[
        ("bin/dangling", T::Link("/opt/gone/app")),
        ("bin/a", T::Link("b")),
        ("bin/b", T::Link("/bin/a")),
        ("bin/self", T::Link("self")),
        ("etc/file", T::File(b"x")),
    ]);
    let fs = Filesystem::merge(&[s]);
    match fs.resolve("/bin/dangling", true).unwrap_err() {
        ResolveError::NotFound { missing, links } => {
            assert_eq!(missing, "/opt");
            assert_eq!(
                links,
                vec![("/bin/dangling".to_string(), "/opt/gone/app".to_string())]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(fs.resolve("/bin/a", true), Err(ResolveError::Loop { links }) if links.len() == SYMLINK_LIMIT)
    );
    assert!(matches!(
        fs.resolve("/bin/self", true),
        Err(ResolveError::Loop { .. })
    ));
    assert!(
        matches!(fs.resolve("/etc/file/x", true), Err(ResolveError::NotADirectory { path, .. }) if path == "/etc/file")
    );
    assert!(
        matches!(fs.resolve("/nope", true), Err(ResolveError::NotFound { missing, .. }) if missing == "/nope")
    );
}

#[test]
fn parses_shebang_lines_like_linux() {
    let sb = parse_shebang(b"#! /bin/sh -e -x\r\necho").unwrap();
    assert_eq!(sb.interpreter, "/bin/sh");
    assert_eq!(sb.arg.as_deref(), Some("-e -x"));
    assert_eq!(parse_shebang(b"#!\n"), None);
    assert_eq!(parse_shebang(b"#!/bin/bash").unwrap().arg, None);
}

#[test]
fn never_panics_on_garbage_streams() {
    let raw = tar(&[
        ("bin/app", T::Exe(&amd64())),
        ("x/.wh..wh..opq", T::File(b"")),
    ]);
    let mut state: u32 = 99;
    for _ in 0..2000 {
        let mut b = raw.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let i = state as usize % b.len();
            b[i] = (state >> 9) as u8;
        }
        if let Ok(s) = scan(&b[..], "fuzz", Limits::default()) {
            let fs = Filesystem::merge(&[s]);
            let _ = fs.resolve("/bin/app", true);
        }
    }
}

#[test]
fn seeking_scan_sees_what_the_streaming_scan_sees() {
    let big_elf = {
        let mut b = amd64();
        b.resize(300_000, 0x5a);
        b
    };
    let script = b"#!/usr/bin/env python3\nprint(1)\n".to_vec();
    let raw = tar(&[
        ("bin", T::Dir),
        ("bin/big", T::Exe(&big_elf)),
        ("bin/data", T::File(&[1u8; 70_000])),
        ("bin/run", T::Exe(&script)),
        ("bin/sh", T::Link("big")),
        ("../../escape", T::File(b"x")),
        ("opt/.wh.gone", T::File(b"")),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    for bytes in [&raw, &gz] {
        let streamed = scan(&bytes[..], "l", Limits::default()).unwrap();
        let seeked =
            scan_seekable(std::io::Cursor::new(&bytes[..]), "l", Limits::default()).unwrap();
        assert_eq!(seeked.entries, streamed.entries);
        assert_eq!(seeked.unsafe_entries.len(), 1);
        assert_eq!(seeked.compression, streamed.compression);
        assert_eq!(seeked.tar_bytes, raw.len() as u64);
    }
    let s = scan_seekable(std::io::Cursor::new(&raw[..]), "l", Limits::default()).unwrap();
    assert!(
        matches!(&s.entries[1].kind, EntryKind::File(f) if matches!(f.content, Content::Elf(_)) && f.size == 300_000)
    );
}

#[test]
fn seeking_scan_never_panics_on_garbage() {
    let raw = tar(&[("bin/app", T::Exe(&amd64())), ("x", T::File(&[0; 3000]))]);
    let mut state: u32 = 7;
    for _ in 0..2000 {
        let mut b = raw.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let i = state as usize % b.len();
            b[i] = (state >> 9) as u8;
        }
        let _ = scan_seekable(std::io::Cursor::new(&b[..]), "fuzz", Limits::default());
    }
}

/// A tar whose first member is an extension header (`x` PAX or `L` GNU long name) of
/// `size` bytes, followed by one small file.
fn with_extension(kind: u8, size: usize) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(size as u64);
    h.as_old_mut().name[..7].copy_from_slice(b"ext_hdr");
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, std::io::repeat(b'a').take(size as u64))
        .unwrap();
    let mut f = tar::Header::new_ustar();
    f.set_path("after").unwrap();
    f.set_mode(0o644);
    f.set_size(1);
    f.set_cksum();
    b.append(&f, &b"x"[..]).unwrap();
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

use std::io::Read as _;

#[test]
fn oversized_extension_headers_are_refused_not_allocated() {
    for kind in [b'x', b'L', b'K'] {
        let raw = with_extension(kind, 5 << 20);
        let packed = gzip(&raw);
        assert!(packed.len() < 64 << 10, "a small blob claims megabytes");
        for err in [
            scan(&packed[..], "sha256:bomb", Limits::default()).unwrap_err(),
            scan_seekable(
                std::io::Cursor::new(&raw[..]),
                "sha256:bomb",
                Limits::default(),
            )
            .unwrap_err(),
        ] {
            assert!(matches!(err, LayerError::OverLimit { .. }), "{err:?}");
            let text = err.to_string();
            assert!(text.contains("sha256:bomb"), "{text}");
            assert!(text.contains(&MAX_HEADER_BYTES.to_string()), "{text}");
        }
    }
    // Real extension headers, a few KiB, still pass.
    let fine = with_extension(b'L', 3000);
    let s = scan(&fine[..], "l", Limits::default()).unwrap();
    assert_eq!(s.entries.len(), 1);
    assert!(
        s.entries[0].path.starts_with("/aaa"),
        "{:?}",
        s.entries[0].path
    );
}

#[test]
fn big_files_between_entries_are_not_mistaken_for_headers() {
    let big = vec![0u8; (MAX_HEADER_BYTES as usize) * 2];
    let raw = tar(&[("big", T::File(&big)), ("small", T::File(b"x"))]);
    for s in [
        scan(&raw[..], "l", Limits::default()).unwrap(),
        scan_seekable(std::io::Cursor::new(&raw[..]), "l", Limits::default()).unwrap(),
    ] {
        let paths: Vec<_> = s.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/big", "/small"]);
    }
}

#[test]
fn entry_and_expansion_limits_stop_the_walk_with_the_limit_named() {
    let names: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    let entries: Vec<(&str, T<'_>)> = names.iter().map(|n| (n.as_str(), T::File(b"1"))).collect();
    let raw = tar(&entries);
    let few = Limits {
        entries: 10,
        ..Limits::default()
    };
    let err = scan(&raw[..], "sha256:many", few).unwrap_err().to_string();
    assert!(err.contains("more than 10 entries"), "{err}");
    assert!(err.contains(Limits::ENTRIES_VAR), "{err}");
    assert!(scan(&raw[..], "l", Limits { entries: 20, ..few }).is_ok());

    let zeros = gzip(&tar(&[("z", T::File(&vec![0u8; 1 << 20]))]));
    let small = Limits {
        tar_bytes: 100_000,
        ..Limits::default()
    };
    let err = scan(&zeros[..], "sha256:zeros", small)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expands to more than 100000 bytes"), "{err}");
    assert!(err.contains(Limits::BYTES_VAR), "{err}");
}

#[test]
fn limits_come_from_the_environment_and_bad_values_are_named() {
    let get = |pairs: &'static [(&'static str, &'static str)]| {
        move |var: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(Limits::from_vars(get(&[])).unwrap(), Limits::default());
    let l = Limits::from_vars(get(&[
        ("ARCHBUILD_MAX_LAYER_ENTRIES", "12"),
        ("ARCHBUILD_MAX_LAYER_BYTES", " 4096 "),
    ]))
    .unwrap();
    assert_eq!((l.entries, l.tar_bytes), (12, 4096));
    for bad in ["0", "-1", "10GB", ""] {
        let pairs: &'static [(&'static str, &'static str)] =
            Box::leak(vec![("ARCHBUILD_MAX_LAYER_BYTES", bad)].into_boxed_slice());
        let err = Limits::from_vars(get(pairs)).unwrap_err().to_string();
        assert!(
            err.contains("ARCHBUILD_MAX_LAYER_BYTES") && err.contains("positive whole number"),
            "{err}"
        );
    }
}

#[test]
fn names_longer_than_path_max_are_unsafe_and_deep_paths_merge() {
    let long = "d/".repeat(PATH_MAX / 2) + "f";
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, &long, &b"1"[..]).unwrap();
    let deep = "d/".repeat(PATH_MAX / 2 - 2) + "f";
    b.append_data(&mut h, &deep, &b"1"[..]).unwrap();
    let s = scan(&b.into_inner().unwrap()[..], "l", Limits::default()).unwrap();
    assert_eq!(s.unsafe_entries.len(), 1);
    assert!(
        s.unsafe_entries[0].reason.contains("PATH_MAX"),
        "{:?}",
        s.unsafe_entries
    );
    let fs = Filesystem::merge(&[s]);
    let path = format!("/{deep}");
    assert!(matches!(
        fs.get(&path).map(|n| &n.kind),
        Some(NodeKind::File(_))
    ));
    assert!(fs.resolve(&path, true).is_ok());
    assert_eq!(
        fs.len(),
        2 + PATH_MAX / 2 - 2,
        "every folder of the deep path, the root, the file"
    );
}

#[test]
fn pax_global_headers_describe_the_archive_not_a_file() {
    let mut b = tar::Builder::new(Vec::new());
    let mut g = tar::Header::new_ustar();
    g.set_entry_type(tar::EntryType::XGlobalHeader);
    let record = b"52 comment=2f4cbd0e2a1d2c4e9c1a0d0b6e0f8a9b7c6d5e4f\n";
    g.set_size(record.len() as u64);
    g.as_old_mut().name[..17].copy_from_slice(b"pax_global_header");
    g.set_cksum();
    b.append(&g, &record[..]).unwrap();
    let mut f = tar::Header::new_ustar();
    f.set_path("app").unwrap();
    f.set_mode(0o644);
    f.set_size(1);
    f.set_cksum();
    b.append(&f, &b"1"[..]).unwrap();
    let s = scan(&b.into_inner().unwrap()[..], "l", Limits::default()).unwrap();
    let paths: Vec<_> = s.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["/app"]);
}

#[test]
fn the_loader_cache_is_kept_whole_up_to_its_bound_and_other_files_are_not() {
    let big = vec![7u8; LOADER_CACHE_LEN as usize + 100];
    let s = layer(&[
        ("etc/ld.so.cache", T::File(b"glibc-ld.so.cache1.1")),
        ("./etc/ld.so.cache", T::File(&big)),
        ("etc/ld.so.cache.old", T::File(b"glibc-ld.so.cache1.1")),
    ]);
    let contents: Vec<&Content> = s
        .entries
        .iter()
        .map(|e| match &e.kind {
            EntryKind::File(f) => &f.content,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        contents[0],
        &Content::LoaderCache(b"glibc-ld.so.cache1.1".to_vec())
    );
    assert!(matches!(contents[1], Content::LoaderCache(b) if b.len() as u64 == LOADER_CACHE_LEN));
    assert_eq!(contents[2], &Content::Other);
}
