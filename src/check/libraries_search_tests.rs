//! The loader's search order on fixture ELF files: the run paths of every object up the chain
//! of loaders, glibc's `/etc/ld.so.cache`, and the `glibc-hwcaps` subfolders each platform
//! searches. The fixtures' makers are in `libraries_tests.rs`.

use super::tests::*;
use super::*;
use crate::elf::fixture::{DynSpec, ElfSpec};
use crate::finding::Severity;
use crate::layers::tests_support::T;
use crate::platform::{ElfClass, Endian, EM_PPC64};

/// A library with its own run paths.
fn library_with(
    soname: &str,
    needed: &[&str],
    rpath: Option<&str>,
    runpath: Option<&str>,
) -> Vec<u8> {
    object(
        ElfClass::Elf64,
        3,
        None,
        DynSpec {
            rpath: rpath.map(String::from),
            runpath: runpath.map(String::from),
            ..dynspec(Some(soname), needed, &[])
        },
    )
}

/// app → /usr/lib/liba.so.1 (`DT_RPATH` `$ORIGIN/../../opt/a`, `DT_RUNPATH` `a_runpath`) →
/// libb.so.2 (in the multiarch folder, `DT_RUNPATH` `libb_runpath`) → libz.so.1, only in
/// /opt/a.
fn chain_files(
    interp: &str,
    a_runpath: Option<&str>,
    libb_runpath: Option<&str>,
) -> Vec<(&'static str, Vec<u8>)> {
    let app = object(
        ElfClass::Elf64,
        3,
        Some(interp),
        needs(&["liba.so.1", "libc.so.6"]),
    );
    vec![
        ("app", app),
        (
            "usr/lib/liba.so.1",
            library_with(
                "liba.so.1",
                &["libb.so.2"],
                Some("$ORIGIN/../../opt/a"),
                a_runpath,
            ),
        ),
        (
            "usr/lib/x86_64-linux-gnu/libb.so.2",
            library_with("libb.so.2", &["libz.so.1"], None, libb_runpath),
        ),
        ("opt/a/libz.so.1", library("libz.so.1", &[], &[])),
    ]
}

fn run_chain(files: &[(&str, Vec<u8>)]) -> Vec<Finding> {
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, &b[..])).collect();
    run_on(&files, &[], &[], "/app")
}

#[test]
fn glibc_searches_the_rpath_of_every_loader_up_the_chain() {
    // libz.so.1 is found through liba's DT_RPATH, its $ORIGIN liba's folder (libb's would
    // give /usr/opt/a).
    assert_eq!(run_chain(&chain_files(LOADER, None, None)), vec![]);
    // An object with a DT_RUNPATH takes no DT_RPATH, its own or its loaders'.
    let f = run_chain(&chain_files(LOADER, None, Some("/nowhere")));
    assert_eq!(
        summary(&f),
        [(FindingKind::MissingLibrary, Severity::Error, "/app".into())]
    );
    assert!(
        f[0].message
            .contains("libz.so.1 (needed by /usr/lib/x86_64-linux-gnu/libb.so.2)"),
        "{}",
        f[0].message
    );
    assert!(!f[0].message.contains("/opt/a"), "{}", f[0].message);
    // A loader with a DT_RUNPATH has its DT_RPATH ignored.
    let f = run_chain(&chain_files(LOADER, Some("/nowhere"), None));
    assert_eq!(f.len(), 1, "{f:#?}");
}

#[test]
fn musl_searches_the_run_path_of_every_object_up_the_chain() {
    let musl = "/lib/ld-musl-x86_64.so.1";
    let mut files = chain_files(musl, None, Some("/nowhere"));
    files.push((
        "lib/ld-musl-x86_64.so.1",
        library("libc.musl-x86_64.so.1", &[], &[]),
    ));
    files.push(("lib/libc.so.6", library("libc.so.6", &[], &[])));
    files.push((
        "etc/ld-musl-x86_64.path",
        b"/lib\n/usr/lib\n/usr/lib/x86_64-linux-gnu\n".to_vec(),
    ));
    // musl takes a DT_RUNPATH as it takes a DT_RPATH, and walks up `needed_by` past it.
    assert_eq!(run_chain(&files), vec![]);
    let mut without = files.clone();
    without.retain(|(p, _)| *p != "usr/lib/liba.so.1");
    without.push((
        "usr/lib/liba.so.1",
        library_with("liba.so.1", &["libb.so.2"], None, None),
    ));
    assert_eq!(run_chain(&without).len(), 1);
}

#[test]
fn a_library_reached_through_different_chains_is_searched_for_each() {
    let mut files = chain_files(LOADER, None, None);
    // /usr/bin/tool loads libb.so.2 itself: no liba in its chain, no /opt/a.
    files.push(("usr/bin/tool", program(needs(&["libb.so.2", "libc.so.6"]))));
    files.push(("usr/bin/atool", program(needs(&["liba.so.1", "libc.so.6"]))));
    let f = run_chain(&files);
    assert_eq!(
        summary(&f),
        [(
            FindingKind::MissingLibrary,
            Severity::Warning,
            "/usr/bin/tool".into()
        )]
    );
}

/// A cache made by glibc's ldconfig: libodd.so.1 → /opt/odd/lib/libodd.so.1 and
/// libeven.so.2 → /usr/lib/x86_64-linux-gnu/libeven.so.2, x86-64 libc6 (see `ld_cache`).
const LD_SO_CACHE: &[u8] = include_bytes!("fixtures/ld.so.cache.new");

#[test]
fn a_library_listed_in_ld_so_cache_is_found_in_a_folder_searched_nowhere_else() {
    let app = program(needs(&["libodd.so.1", "libc.so.6"]));
    let odd = library("libodd.so.1", &[], &[]);
    let files: Vec<(&str, &[u8])> = vec![("app", &app), ("opt/odd/lib/libodd.so.1", &odd)];
    let without = run_on(&files, &[], &[], "/app");
    assert_eq!(without.len(), 1, "{without:#?}");
    assert!(
        !without[0].message.contains("/etc/ld.so.cache"),
        "{}",
        without[0].message
    );
    let mut with = files.clone();
    with.push(("etc/ld.so.cache", LD_SO_CACHE));
    assert_eq!(run_on(&with, &[], &[], "/app"), vec![]);
    // The path the cache gives must still hold a library of the program's class.
    let odd32 = object(
        ElfClass::Elf32,
        3,
        None,
        dynspec(Some("libodd.so.1"), &[], &[]),
    );
    let wrong: Vec<(&str, &[u8])> = vec![
        ("app", &app),
        ("opt/odd/lib/libodd.so.1", &odd32),
        ("etc/ld.so.cache", LD_SO_CACHE),
    ];
    let f = run_on(&wrong, &[], &[], "/app");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].message
            .contains("/etc/ld.so.cache, /lib/x86_64-linux-gnu"),
        "{}",
        f[0].message
    );
    // A cache that is not one: ignored, as the loader ignores it.
    let garbage: Vec<(&str, &[u8])> = vec![
        ("app", &app),
        ("opt/odd/lib/libodd.so.1", &odd),
        ("etc/ld.so.cache", &LD_SO_CACHE[..60]),
    ];
    assert_eq!(run_on(&garbage, &[], &[], "/app").len(), 1);
}

#[test]
fn the_cache_comes_before_the_default_folders() {
    let app = program(DynSpec {
        version_needs: vec![("libodd.so.1".into(), vec![("ODD_2".into(), false)])],
        ..needs(&["libodd.so.1", "libc.so.6"])
    });
    let new = library("libodd.so.1", &[], &["ODD_1", "ODD_2"]);
    let old = library("libodd.so.1", &[], &["ODD_1"]);
    let files: Vec<(&str, &[u8])> = vec![
        ("app", &app),
        ("opt/odd/lib/libodd.so.1", &new),
        ("usr/lib/libodd.so.1", &old),
    ];
    let f = run_on(&files, &[], &[], "/app");
    assert_eq!(
        summary(&f),
        [(
            FindingKind::LibraryVersionMissing,
            Severity::Error,
            "/app".into()
        )]
    );
    let mut with = files.clone();
    with.push(("etc/ld.so.cache", LD_SO_CACHE));
    assert_eq!(run_on(&with, &[], &[], "/app"), vec![]);
}

/// `files` over the x86-64 libc layer, checked for `platform`.
fn run_for(platform: &str, files: &[(&str, &[u8])]) -> Vec<Finding> {
    let base = libc_layer();
    let mut entries: Vec<(&str, T<'_>)> =
        base.iter().map(|(p, b)| (p.as_str(), T::File(b))).collect();
    entries.push((
        "lib64/ld-linux-x86-64.so.2",
        T::Link("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
    ));
    entries.extend(files.iter().map(|(p, b)| (*p, T::Exe(b))));
    run_layer(&entries, &[], "/app", platform)
}

const HWCAPS: &str = "usr/lib/x86_64-linux-gnu/glibc-hwcaps";

#[test]
fn a_library_only_in_a_glibc_hwcaps_folder_is_found_where_every_node_has_that_level() {
    let app = program(needs(&["libfast.so.1", "libc.so.6"]));
    let fast = library("libfast.so.1", &[], &[]);
    let v3 = format!("{HWCAPS}/x86-64-v3/libfast.so.1");
    let files: Vec<(&str, &[u8])> = vec![("app", &app), (&v3, &fast)];
    assert_eq!(run_for("linux/amd64/v3", &files), vec![]);
    assert_eq!(run_for("linux/amd64/v4", &files), vec![]);
    for platform in ["linux/amd64", "linux/amd64/v2"] {
        let f = run_for(platform, &files);
        assert_eq!(
            summary(&f),
            [(FindingKind::MissingLibrary, Severity::Error, "/app".into())],
            "{platform}"
        );
        assert!(
            f[0].message.contains(
                "The image has it only in /usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libfast.so.1"
            ),
            "{}",
            f[0].message
        );
    }
    // What v3 nodes search is said.
    let app = program(needs(&["libnone.so.1", "libc.so.6"]));
    let f = run_for("linux/amd64/v3", &[("app", &app)]);
    assert!(
        f[0].message
            .contains("; in each folder first glibc-hwcaps/x86-64-v3, glibc-hwcaps/x86-64-v2)"),
        "{}",
        f[0].message
    );
    assert!(!f[0].message.contains("only in"), "{}", f[0].message);
}

#[test]
fn an_x86_64_v2_library_is_found_for_v2_and_v3() {
    let app = program(needs(&["libfast.so.1", "libc.so.6"]));
    let fast = library("libfast.so.1", &[], &[]);
    let v2 = format!("{HWCAPS}/x86-64-v2/libfast.so.1");
    let files: Vec<(&str, &[u8])> = vec![("app", &app), (&v2, &fast)];
    assert_eq!(run_for("linux/amd64/v2", &files), vec![]);
    assert_eq!(run_for("linux/amd64/v3", &files), vec![]);
    assert_eq!(run_for("linux/amd64", &files).len(), 1);
}

#[test]
fn the_most_capable_subfolder_comes_before_the_folder_itself() {
    let app = program(DynSpec {
        version_needs: vec![("libfast.so.1".into(), vec![("FAST_2".into(), false)])],
        ..needs(&["libfast.so.1", "libc.so.6"])
    });
    let new = library("libfast.so.1", &[], &["FAST_1", "FAST_2"]);
    let old = library("libfast.so.1", &[], &["FAST_1"]);
    let v3 = format!("{HWCAPS}/x86-64-v3/libfast.so.1");
    let v2 = format!("{HWCAPS}/x86-64-v2/libfast.so.1");
    let plain = "usr/lib/x86_64-linux-gnu/libfast.so.1";
    // v3 nodes load the v3 copy; v1 nodes the plain one, which lacks FAST_2.
    let files: Vec<(&str, &[u8])> = vec![("app", &app), (&v3, &new), (plain, &old)];
    assert_eq!(run_for("linux/amd64/v3", &files), vec![]);
    let f = run_for("linux/amd64", &files);
    assert_eq!(
        summary(&f),
        [(
            FindingKind::LibraryVersionMissing,
            Severity::Error,
            "/app".into()
        )]
    );
    // x86-64-v3 before x86-64-v2.
    let files: Vec<(&str, &[u8])> = vec![("app", &app), (&v3, &new), (&v2, &old)];
    assert_eq!(run_for("linux/amd64/v3", &files), vec![]);
    assert_eq!(run_for("linux/amd64/v2", &files).len(), 1);
    // A copy of the other class in the subfolder is skipped, as the loader skips it.
    let new32 = object(
        ElfClass::Elf32,
        3,
        None,
        dynspec(Some("libfast.so.1"), &[], &["FAST_1", "FAST_2"]),
    );
    let files: Vec<(&str, &[u8])> = vec![("app", &app), (&v3, &new32), (plain, &new)];
    assert_eq!(run_for("linux/amd64/v3", &files), vec![]);
}

/// A cache listing /opt/hw (see `ld_cache`'s `HWCAPS`): libhw3.so.1 only in its
/// glibc-hwcaps/x86-64-v3, libhw2.so.1 only in glibc-hwcaps/x86-64-v2, libboth.so.1 in
/// glibc-hwcaps/x86-64-v3 and /opt/hw itself.
const LD_SO_CACHE_HWCAPS: &[u8] = include_bytes!("fixtures/ld.so.cache.hwcaps");

#[test]
fn the_caches_glibc_hwcaps_entries_are_taken_where_every_node_has_that_level() {
    let app = program(DynSpec {
        version_needs: vec![("libboth.so.1".into(), vec![("BOTH_2".into(), false)])],
        ..needs(&["libhw3.so.1", "libhw2.so.1", "libboth.so.1", "libc.so.6"])
    });
    let hw3 = library("libhw3.so.1", &[], &[]);
    let hw2 = library("libhw2.so.1", &[], &[]);
    let new = library("libboth.so.1", &[], &["BOTH_1", "BOTH_2"]);
    let old = library("libboth.so.1", &[], &["BOTH_1"]);
    let files: Vec<(&str, &[u8])> = vec![
        ("app", &app),
        ("etc/ld.so.cache", LD_SO_CACHE_HWCAPS),
        ("opt/hw/glibc-hwcaps/x86-64-v3/libhw3.so.1", &hw3),
        ("opt/hw/glibc-hwcaps/x86-64-v2/libhw2.so.1", &hw2),
        ("opt/hw/glibc-hwcaps/x86-64-v3/libboth.so.1", &new),
        ("opt/hw/libboth.so.1", &old),
    ];
    assert_eq!(run_for("linux/amd64/v3", &files), vec![]);
    let f = run_for("linux/amd64/v2", &files);
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(f[0].message.contains("libhw3.so.1"), "{}", f[0].message);
    assert!(
        f[0].message
            .contains("only in /opt/hw/glibc-hwcaps/x86-64-v3/libhw3.so.1"),
        "{}",
        f[0].message
    );
    assert_eq!(f[1].kind, FindingKind::LibraryVersionMissing);
    let f = run_for("linux/amd64", &files);
    assert_eq!(f.len(), 3, "{f:#?}");
}

#[test]
fn power_glibc_hwcaps_folders_are_not_searched_for_ppc64le() {
    let ppc = |e_type: u16, interp: Option<&str>, d: DynSpec| {
        let mut s = ElfSpec::new(EM_PPC64, ElfClass::Elf64, Endian::Little).with_dynamic(d);
        s.e_type = e_type;
        if let Some(i) = interp {
            s = s.with_interp(i);
        }
        s.build()
    };
    let lib = |soname: &str| ppc(3, None, dynspec(Some(soname), &[], &[]));
    let app = ppc(
        3,
        Some("/lib64/ld64.so.2"),
        needs(&["libfast.so.1", "libc.so.6"]),
    );
    let (ld, libc, fast) = (lib("ld64.so.2"), lib("libc.so.6"), lib("libfast.so.1"));
    let run = |folder: &str| {
        let path = format!("usr/lib/powerpc64le-linux-gnu/{folder}libfast.so.1");
        let entries: Vec<(&str, T<'_>)> = vec![
            ("app", T::Exe(&app)),
            ("lib64/ld64.so.2", T::File(&ld)),
            ("lib/powerpc64le-linux-gnu/libc.so.6", T::File(&libc)),
            (&path, T::File(&fast)),
        ];
        run_layer(&entries, &[], "/app", "linux/ppc64le")
    };
    assert_eq!(run(""), vec![]);
    let f = run("glibc-hwcaps/power9/");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].message
            .contains("only in /usr/lib/powerpc64le-linux-gnu/glibc-hwcaps/power9/libfast.so.1"),
        "{}",
        f[0].message
    );
}

#[test]
fn the_glibc_hwcaps_subfolders_searched_are_those_every_node_supports() {
    let subdirs = |p: &str| loader_paths::hwcaps_subdirs(&Platform::parse(p).unwrap());
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let v = |n: &[&str]| n.iter().map(|l| format!("x86-64-{l}")).collect::<Vec<_>>();
    assert_eq!(subdirs("linux/amd64"), (vec![], v(&["v4", "v3", "v2"])));
    assert_eq!(subdirs("linux/amd64/v2"), (v(&["v2"]), v(&["v4", "v3"])));
    assert_eq!(subdirs("linux/amd64/v3"), (v(&["v3", "v2"]), v(&["v4"])));
    assert_eq!(subdirs("linux/amd64/v4"), (v(&["v4", "v3", "v2"]), vec![]));
    assert_eq!(
        subdirs("linux/ppc64le"),
        (vec![], names(&["power10", "power9"]))
    );
    assert_eq!(
        subdirs("linux/s390x"),
        (vec![], names(&["z16", "z15", "z14", "z13"]))
    );
    assert_eq!(subdirs("linux/arm64"), (vec![], vec![]));
    assert_eq!(subdirs("linux/386"), (vec![], vec![]));
}
