//! The loader's library search and version checks, on fixture ELF files in layer tars.

use super::*;
use crate::check::program::CheckOptions;
use crate::check::rules;
use crate::elf::fixture::{DynSpec, ElfSpec};
use crate::finding::Severity;
use crate::layers::tests_support::{tar, T};
use crate::layers::{scan, Limits};
use crate::platform::{ElfClass, Endian, EM_X86_64};

pub(super) const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

pub(super) fn object(class: ElfClass, e_type: u16, interp: Option<&str>, d: DynSpec) -> Vec<u8> {
    let mut s = ElfSpec::new(EM_X86_64, class, Endian::Little).with_dynamic(d);
    s.e_type = e_type;
    if let Some(i) = interp {
        s = s.with_interp(i);
    }
    s.build()
}

pub(super) fn program(d: DynSpec) -> Vec<u8> {
    object(ElfClass::Elf64, 3, Some(LOADER), d)
}

pub(super) fn library(soname: &str, needed: &[&str], defs: &[&str]) -> Vec<u8> {
    object(
        ElfClass::Elf64,
        3,
        None,
        dynspec(Some(soname), needed, defs),
    )
}

pub(super) fn dynspec(soname: Option<&str>, needed: &[&str], defs: &[&str]) -> DynSpec {
    DynSpec {
        needed: needed.iter().map(|s| s.to_string()).collect(),
        soname: soname.map(String::from),
        version_defs: defs.iter().map(|s| s.to_string()).collect(),
        ..DynSpec::default()
    }
}

pub(super) fn needs(names: &[&str]) -> DynSpec {
    dynspec(None, names, &[])
}

/// The loader and libc, as Debian's libc6 lays them out.
pub(super) fn libc_layer() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into(),
            library("ld-linux-x86-64.so.2", &[], &["GLIBC_2.2.5", "GLIBC_2.3"]),
        ),
        (
            "lib/x86_64-linux-gnu/libc.so.6".into(),
            library(
                "libc.so.6",
                &["ld-linux-x86-64.so.2"],
                &["GLIBC_2.2.5", "GLIBC_2.34", "GLIBC_2.36"],
            ),
        ),
    ]
}

pub(super) fn run_on(
    files: &[(&str, &[u8])],
    links: &[(&str, &str)],
    env: &[&str],
    ep: &str,
) -> Vec<Finding> {
    let base = libc_layer();
    let mut entries: Vec<(&str, T<'_>)> =
        base.iter().map(|(p, b)| (p.as_str(), T::File(b))).collect();
    entries.push((
        "lib64/ld-linux-x86-64.so.2",
        T::Link("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
    ));
    entries.extend(files.iter().map(|(p, b)| (*p, T::Exe(b))));
    entries.extend(links.iter().map(|(p, t)| (*p, T::Link(t))));
    run_layer(&entries, env, ep, "linux/amd64")
}

/// The library findings for one layer of `entries` checked for `platform`.
pub(super) fn run_layer(
    entries: &[(&str, T<'_>)],
    env: &[&str],
    ep: &str,
    platform: &str,
) -> Vec<Finding> {
    let layer = scan(&tar(entries)[..], "sha256:l", Limits::default()).unwrap();
    let platform = Platform::parse(platform).unwrap();
    let config = ImageConfig {
        os: "linux".into(),
        architecture: platform.architecture.clone(),
        variant: platform.variant.clone(),
        entrypoint: vec![ep.to_string()],
        env: env.iter().map(|s| s.to_string()).collect(),
        ..ImageConfig::default()
    };
    let f = rules::run(
        &Filesystem::merge(&[layer]),
        &config,
        &platform,
        &CheckOptions::default(),
    );
    f.into_iter()
        .filter(|f| {
            matches!(
                f.kind,
                FindingKind::MissingLibrary | FindingKind::LibraryVersionMissing
            )
        })
        .collect()
}

pub(super) fn summary(f: &[Finding]) -> Vec<(FindingKind, Severity, String)> {
    f.iter()
        .map(|f| (f.kind, f.severity, f.path.clone().unwrap_or_default()))
        .collect()
}

#[test]
fn a_program_whose_libraries_are_all_there_is_clean() {
    let app = program(needs(&["libc.so.6"]));
    assert_eq!(run_on(&[("app", &app)], &[], &[], "/app"), vec![]);
}

#[test]
fn a_missing_library_is_an_error_for_the_entrypoint_and_a_warning_elsewhere() {
    let app = program(needs(&["libssl.so.3", "libc.so.6"]));
    let f = run_on(&[("app", &app), ("usr/bin/tool", &app)], &[], &[], "/app");
    assert_eq!(
        summary(&f),
        [
            (FindingKind::MissingLibrary, Severity::Error, "/app".into()),
            (
                FindingKind::MissingLibrary,
                Severity::Warning,
                "/usr/bin/tool".into()
            ),
        ]
    );
    assert!(
        f[0].message.contains("'/app: error while loading shared libraries: libssl.so.3: cannot open shared object file: No such file or directory'"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message.contains("/usr/lib/x86_64-linux-gnu"),
        "{}",
        f[0].message
    );
}

#[test]
fn libraries_needed_by_libraries_are_followed_through_symlinks() {
    let app = program(needs(&["liba.so.1", "libc.so.6"]));
    let liba = library("liba.so.1", &["libb.so.2", "libc.so.6"], &[]);
    let f = run_on(
        &[
            ("app", &app),
            ("usr/lib/x86_64-linux-gnu/liba.so.1.0.0", &liba),
        ],
        &[("usr/lib/x86_64-linux-gnu/liba.so.1", "liba.so.1.0.0")],
        &[],
        "/app",
    );
    assert_eq!(
        summary(&f),
        [(FindingKind::MissingLibrary, Severity::Error, "/app".into())]
    );
    assert!(
        f[0].message
            .contains("libb.so.2 (needed by /usr/lib/x86_64-linux-gnu/liba.so.1.0.0)"),
        "{}",
        f[0].message
    );
    let libb = library("libb.so.2", &[], &[]);
    let f = run_on(
        &[
            ("app", &app),
            ("usr/lib/x86_64-linux-gnu/liba.so.1.0.0", &liba),
            ("usr/lib/libb.so.2", &libb),
        ],
        &[("usr/lib/x86_64-linux-gnu/liba.so.1", "liba.so.1.0.0")],
        &[],
        "/app",
    );
    assert_eq!(f, vec![]);
}

#[test]
fn a_library_of_the_other_class_is_skipped_as_the_loader_skips_it() {
    let app = program(needs(&["libfoo.so", "libc.so.6"]));
    let foo32 = object(
        ElfClass::Elf32,
        3,
        None,
        dynspec(Some("libfoo.so"), &[], &[]),
    );
    let foo64 = library("libfoo.so", &[], &[]);
    let env = ["LD_LIBRARY_PATH=/opt/lib32:/opt/lib64"];
    let only32 = run_on(
        &[("app", &app), ("opt/lib32/libfoo.so", &foo32)],
        &[],
        &env,
        "/app",
    );
    assert_eq!(only32.len(), 1, "{only32:#?}");
    let both = run_on(
        &[
            ("app", &app),
            ("opt/lib32/libfoo.so", &foo32),
            ("opt/lib64/libfoo.so", &foo64),
        ],
        &[],
        &env,
        "/app",
    );
    assert_eq!(both, vec![]);
}

#[test]
fn runpath_with_origin_and_ld_so_conf_includes_are_searched() {
    let app = program(DynSpec {
        runpath: Some("$ORIGIN/../lib".into()),
        ..needs(&["libapp.so", "libc.so.6"])
    });
    let lib = library("libapp.so", &[], &[]);
    let found = run_on(
        &[("opt/app/bin/app", &app), ("opt/app/lib/libapp.so", &lib)],
        &[],
        &[],
        "/opt/app/bin/app",
    );
    assert_eq!(found, vec![]);
    let elsewhere = run_on(
        &[("opt/app/bin/app", &app), ("opt/other/libapp.so", &lib)],
        &[],
        &[],
        "/opt/app/bin/app",
    );
    assert_eq!(elsewhere.len(), 1);
    assert!(
        elsewhere[0].message.contains("/opt/app/bin/../lib"),
        "{}",
        elsewhere[0].message
    );
    let conf = b"include /etc/ld.so.conf.d/*.conf\n";
    let custom = b"# a comment\n/opt/other\n";
    let listed = run_on(
        &[
            ("opt/app/bin/app", &app),
            ("opt/other/libapp.so", &lib),
            ("etc/ld.so.conf", conf),
            ("etc/ld.so.conf.d/other.conf", custom),
        ],
        &[],
        &[],
        "/opt/app/bin/app",
    );
    assert_eq!(listed, vec![]);
}

#[test]
fn a_search_path_the_loader_expands_by_host_is_unknown_not_missing() {
    let app = program(DynSpec {
        rpath: Some("/opt/$LIB".into()),
        ..needs(&["libx.so", "libc.so.6"])
    });
    assert_eq!(run_on(&[("app", &app)], &[], &[], "/app"), vec![]);
}

#[test]
fn a_version_the_picked_library_does_not_define_is_reported_in_the_loaders_words() {
    let app = program(DynSpec {
        version_needs: vec![(
            "libc.so.6".into(),
            vec![
                ("GLIBC_2.34".into(), false),
                ("GLIBC_2.38".into(), false),
                ("GLIBC_2.99".into(), true),
            ],
        )],
        ..needs(&["libc.so.6"])
    });
    let f = run_on(&[("app", &app)], &[], &[], "/app");
    assert_eq!(
        summary(&f),
        [(
            FindingKind::LibraryVersionMissing,
            Severity::Error,
            "/app".into()
        )]
    );
    assert!(
        f[0].message.contains("/app: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not found (required by /app)"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message.contains("versions up to GLIBC_2.36"),
        "{}",
        f[0].message
    );
}

#[test]
fn musl_programs_search_the_musl_path_file() {
    let musl = "/lib/ld-musl-x86_64.so.1";
    let app = object(ElfClass::Elf64, 3, Some(musl), needs(&["libz.so.1"]));
    let ld = library("libc.musl-x86_64.so.1", &[], &[]);
    let z = library("libz.so.1", &[], &[]);
    let files: [(&str, &[u8]); 3] = [
        ("app", &app),
        ("lib/ld-musl-x86_64.so.1", &ld),
        ("opt/z/libz.so.1", &z),
    ];
    let missing = run_on(&files, &[], &[], "/app");
    assert_eq!(missing.len(), 1);
    assert!(
        missing[0].message.contains(
            "Error loading shared library libz.so.1: No such file or directory (needed by /app)"
        ),
        "{}",
        missing[0].message
    );
    let path_file: &[u8] = b"/lib:/usr/lib\n/opt/z\n";
    let mut with_path = files.to_vec();
    with_path.push(("etc/ld-musl-x86_64.path", path_file));
    assert_eq!(run_on(&with_path, &[], &[], "/app"), vec![]);
}
