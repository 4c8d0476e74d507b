use super::*;
use crate::elf::fixture::ElfSpec;
use crate::finding::Severity;
use crate::layers::{scan, LayerSummary, Limits};
use crate::platform::*;

use crate::layers::tests_support::{tar, T};

fn layer(entries: &[(&str, T<'_>)]) -> LayerSummary {
    scan(&tar(entries)[..], "sha256:l", Limits::default()).unwrap()
}

fn elf(machine: u16, class: ElfClass, interp: Option<&str>) -> Vec<u8> {
    let mut s = ElfSpec::new(machine, class, Endian::Little);
    if let Some(i) = interp {
        s = s.with_interp(i);
    }
    s.build()
}

fn arm64() -> Vec<u8> {
    elf(EM_AARCH64, ElfClass::Elf64, None)
}

fn config(platform: &str, entrypoint: &[&str]) -> ImageConfig {
    let p = Platform::parse(platform).unwrap();
    ImageConfig {
        os: p.os,
        architecture: p.architecture,
        variant: p.variant,
        entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
        ..ImageConfig::default()
    }
}

fn check(
    layers: &[LayerSummary],
    cfg: &ImageConfig,
    platform: &str,
    opts: &CheckOptions,
) -> Vec<Finding> {
    run(
        &Filesystem::merge(layers),
        cfg,
        &Platform::parse(platform).unwrap(),
        opts,
    )
}

fn kinds(f: &[Finding]) -> Vec<(FindingKind, Severity)> {
    f.iter().map(|f| (f.kind, f.severity)).collect()
}

#[test]
fn a_correct_image_has_no_findings() {
    let l = layer(&[("app", T::Exe(&arm64()))]);
    let f = check(
        &[l],
        &config("linux/arm64", &["/app"]),
        "linux/arm64",
        &CheckOptions::default(),
    );
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn an_amd64_program_in_an_arm64_image_is_named_as_the_contract_says() {
    let amd = elf(EM_X86_64, ElfClass::Elf64, None);
    let l = layer(&[
        ("usr/local/bin/api", T::Exe(&amd)),
        (
            "lib/libx.so",
            T::File(&{
                let mut s = ElfSpec::new(EM_X86_64, ElfClass::Elf64, Endian::Little);
                s.e_type = 3;
                s.build()
            }),
        ),
    ]);
    let f = check(
        &[l],
        &config("linux/arm64", &["/usr/local/bin/api"]),
        "linux/arm64",
        &CheckOptions::default(),
    );
    let api = f
        .iter()
        .find(|f| f.path.as_deref() == Some("/usr/local/bin/api"))
        .unwrap();
    assert_eq!(api.kind, FindingKind::ElfArchMismatch);
    assert_eq!(api.severity, Severity::Error);
    assert_eq!(api.message, "/usr/local/bin/api is an x86-64 program in the linux/arm64 image: it fails with 'exec format error' on arm64 nodes");
    assert_eq!(
        api.expected.as_deref(),
        Some("aarch64 (ELF64, little-endian)")
    );
    assert_eq!(api.actual.as_deref(), Some("x86-64 (ELF64, little-endian)"));
    assert_eq!(api.layer.as_deref(), Some("sha256:l"));
    let lib = f
        .iter()
        .find(|f| f.path.as_deref() == Some("/lib/libx.so"))
        .unwrap();
    assert!(lib.message.contains("shared library"), "{}", lib.message);
    assert_eq!(f.len(), 2, "{f:#?}");
}

#[test]
fn compatible_foreign_programs_are_warnings() {
    let i386 = elf(EM_386, ElfClass::Elf32, None);
    let amd = elf(EM_X86_64, ElfClass::Elf64, None);
    let l = layer(&[("app", T::Exe(&amd)), ("old", T::Exe(&i386))]);
    let f = check(
        &[l],
        &config("linux/amd64", &["/app"]),
        "linux/amd64",
        &CheckOptions::default(),
    );
    assert_eq!(
        kinds(&f),
        [(FindingKind::ElfArchMismatch, Severity::Warning)]
    );
    let arm = ElfSpec::new(EM_ARM, ElfClass::Elf32, Endian::Little)
        .with_flags(0x0500_0400)
        .build();
    let l = layer(&[("app", T::Exe(&arm64())), ("arm32", T::Exe(&arm))]);
    let f = check(
        &[l],
        &config("linux/arm64", &["/app"]),
        "linux/arm64",
        &CheckOptions::default(),
    );
    assert_eq!(
        kinds(&f),
        [(FindingKind::ElfArchMismatch, Severity::Warning)]
    );
    let soft = ElfSpec::new(EM_ARM, ElfClass::Elf32, Endian::Little)
        .with_flags(0x0500_0200)
        .build();
    let l = layer(&[("app", T::Exe(&soft))]);
    let f = check(
        &[l],
        &config("linux/arm/v7", &["/app"]),
        "linux/arm/v7",
        &CheckOptions::default(),
    );
    assert_eq!(
        kinds(&f),
        [(FindingKind::ElfArchMismatch, Severity::Warning)]
    );
    assert!(f[0].message.contains("soft-float"), "{}", f[0].message);
}

#[test]
fn ignore_globs_skip_foreign_data() {
    let amd = elf(EM_X86_64, ElfClass::Elf64, None);
    let l = layer(&[
        ("app", T::Exe(&arm64())),
        ("usr/share/qemu/fw.bin", T::File(&amd)),
        ("opt/x", T::File(&amd)),
    ]);
    let opts = CheckOptions::new(&["usr/share/qemu/**".into()], &[]).unwrap();
    let f = check(
        &[l],
        &config("linux/arm64", &["/app"]),
        "linux/arm64",
        &opts,
    );
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].path.as_deref(), Some("/opt/x"));
}

#[test]
fn a_deleted_wrong_arch_file_is_not_reported() {
    let amd = elf(EM_X86_64, ElfClass::Elf64, None);
    let l1 = layer(&[("app", T::Exe(&arm64())), ("tmp/build/tool", T::Exe(&amd))]);
    let l2 = layer(&[("tmp/.wh.build", T::File(b""))]);
    let f = check(
        &[l1.clone(), l2],
        &config("linux/arm64", &["/app"]),
        "linux/arm64",
        &CheckOptions::default(),
    );
    assert!(f.is_empty(), "{f:#?}");
    let f = check(
        &[l1],
        &config("linux/arm64", &["/app"]),
        "linux/arm64",
        &CheckOptions::default(),
    );
    assert_eq!(f.len(), 1);
}

#[test]
fn missing_entrypoints_name_what_is_missing() {
    let l = layer(&[
        ("bin/app", T::Exe(&arm64())),
        ("bin/dangling", T::Link("/opt/app/run")),
        ("bin/loop", T::Link("loop")),
        ("etc/conf", T::File(b"x")),
        ("srv/", T::Dir),
    ]);
    let cases: &[(&[&str], &str)] = &[
        (&["/bin/nope"], "/bin/nope does not exist"),
        (
            &["/bin/dangling"],
            "dangling symlink (/bin/dangling -> /opt/app/run), and /opt does not exist",
        ),
        (&["/bin/loop"], "symlink loop"),
        (&["/etc/conf"], "no execute permission"),
        (&["/srv"], "is a folder"),
        (&["nothere"], "not on PATH"),
        (&["/bin/sh", "-c", "app"], "/bin/sh does not exist"),
    ];
    for (argv, want) in cases {
        let f = check(
            std::slice::from_ref(&l),
            &config("linux/arm64", argv),
            "linux/arm64",
            &CheckOptions::default(),
        );
        assert_eq!(f.len(), 1, "{argv:?}: {f:#?}");
        assert_eq!(f[0].kind, FindingKind::MissingEntrypoint);
        assert!(f[0].message.contains(want), "{argv:?}: {}", f[0].message);
    }
    // Found on PATH, and relative to WorkingDir.
    let mut cfg = config("linux/arm64", &["app"]);
    assert!(check(
        std::slice::from_ref(&l),
        &cfg,
        "linux/arm64",
        &CheckOptions::default()
    )
    .is_empty());
    cfg.entrypoint = vec!["./app".into()];
    cfg.working_dir = Some("/bin".into());
    assert!(check(&[l], &cfg, "linux/arm64", &CheckOptions::default()).is_empty());
}

#[test]
fn dynamic_programs_need_their_loader() {
    let dynamic = elf(
        EM_AARCH64,
        ElfClass::Elf64,
        Some("/lib/ld-linux-aarch64.so.1"),
    );
    let l = layer(&[("app", T::Exe(&dynamic))]);
    let f = check(
        std::slice::from_ref(&l),
        &config("linux/arm64", &["/app"]),
        "linux/arm64",
        &CheckOptions::default(),
    );
    assert_eq!(kinds(&f), [(FindingKind::MissingLoader, Severity::Error)]);
    assert!(
        f[0].message
            .contains("/lib/ld-linux-aarch64.so.1, which is not in the image"),
        "{}",
        f[0].message
    );
    // The loader reached through a merged-/usr symlink is found.
    let with = layer(&[
        ("usr/lib/ld-linux-aarch64.so.1", T::Exe(&arm64())),
        ("lib", T::Link("usr/lib")),
    ]);
    let f = check(
        &[l.clone(), with],
        &config("linux/arm64", &["/app"]),
        "linux/arm64",
        &CheckOptions::default(),
    );
    assert!(f.is_empty(), "{f:#?}");
    // A dynamic program that is not the entrypoint: a warning.
    let other = layer(&[("bin/ok", T::Exe(&arm64()))]);
    let f = check(
        &[l, other],
        &config("linux/arm64", &["/bin/ok"]),
        "linux/arm64",
        &CheckOptions::default(),
    );
    assert_eq!(kinds(&f), [(FindingKind::MissingLoader, Severity::Warning)]);
}

#[test]
fn scripts_need_their_interpreter() {
    let l = layer(&[
        ("entry.sh", T::Exe(b"#!/bin/bash\necho hi\n")),
        ("py", T::Exe(b"#!/usr/bin/env -S python3 -u\n")),
    ]);
    let f = check(
        std::slice::from_ref(&l),
        &config("linux/arm64", &["/entry.sh"]),
        "linux/arm64",
        &CheckOptions::default(),
    );
    assert_eq!(
        kinds(&f),
        [(FindingKind::MissingInterpreter, Severity::Error)]
    );
    assert!(
        f[0].message
            .contains("#!/bin/bash, which is not in the image"),
        "{}",
        f[0].message
    );

    let env = layer(&[("usr/bin/env", T::Exe(&arm64()))]);
    let f = check(
        &[l.clone(), env.clone()],
        &config("linux/arm64", &["/py"]),
        "linux/arm64",
        &CheckOptions::default(),
    );
    assert_eq!(
        kinds(&f),
        [(FindingKind::MissingInterpreter, Severity::Error)]
    );
    assert!(
        f[0].message.contains("python3 cannot be found"),
        "{}",
        f[0].message
    );

    let amd = elf(EM_X86_64, ElfClass::Elf64, None);
    let py = layer(&[("usr/local/bin/python3", T::Exe(&amd))]);
    let f = check(
        &[l, env, py],
        &config("linux/arm64", &["/py"]),
        "linux/arm64",
        &CheckOptions::default(),
    );
    let interp = f
        .iter()
        .find(|f| f.kind == FindingKind::MissingInterpreter)
        .expect("wrong-arch interpreter");
    assert!(
        interp.message.contains("x86-64 program"),
        "{}",
        interp.message
    );
    assert!(f.iter().any(|f| f.kind == FindingKind::ElfArchMismatch));
}

#[test]
fn env_program_skips_options_and_settings() {
    assert_eq!(env_program("python3").as_deref(), Some("python3"));
    assert_eq!(env_program("-S python3 -u").as_deref(), Some("python3"));
    assert_eq!(env_program("-i A=1 -u B node").as_deref(), Some("node"));
    assert_eq!(env_program("-S").as_deref(), None);
}

#[test]
fn required_binaries_and_config_platform() {
    let l = layer(&[("app", T::Exe(&arm64()))]);
    let opts = CheckOptions::new(&[], &["/usr/bin/curl".into(), "app".into()]).unwrap();
    let mut cfg = config("linux/arm64", &["/app"]);
    cfg.env = vec!["PATH=/".into()];
    let f = check(std::slice::from_ref(&l), &cfg, "linux/arm64", &opts);
    assert_eq!(kinds(&f), [(FindingKind::MissingBinary, Severity::Error)]);
    assert_eq!(f[0].path.as_deref(), Some("/usr/bin/curl"));

    let mut cfg = config("linux/arm64", &["/app"]);
    cfg.variant = Some("v8".into());
    assert!(
        check(
            std::slice::from_ref(&l),
            &cfg,
            "linux/arm64",
            &CheckOptions::default()
        )
        .is_empty(),
        "arm64/v8 is arm64"
    );
    let f = check(
        &[l],
        &config("linux/amd64", &["/app"]),
        "linux/arm64",
        &CheckOptions::default(),
    );
    let mismatch = f
        .iter()
        .find(|f| f.kind == FindingKind::ConfigPlatformMismatch)
        .unwrap();
    assert_eq!(mismatch.expected.as_deref(), Some("linux/arm64"));
    assert_eq!(mismatch.actual.as_deref(), Some("linux/amd64"));
}

#[test]
fn unsafe_entries_become_findings() {
    let l = layer(&[
        ("app", T::Exe(&arm64())),
        ("../../etc/passwd", T::File(b"x")),
    ]);
    let f = check(
        &[l],
        &config("linux/arm64", &["/app"]),
        "linux/arm64",
        &CheckOptions::default(),
    );
    assert_eq!(
        kinds(&f),
        [(FindingKind::UnsafeLayerEntry, Severity::Error)]
    );
    assert!(f[0].message.contains("../../etc/passwd"));
}

#[test]
fn the_human_report_groups_by_image_and_says_what_to_do() {
    let amd = elf(EM_X86_64, ElfClass::Elf64, None);
    let l = layer(&[("app", T::Exe(&amd))]);
    let fs = Filesystem::merge(&[l]);
    let cfg = config("linux/arm64", &["/app"]);
    let platform = Platform::parse("linux/arm64").unwrap();
    let findings = run(&fs, &cfg, &platform, &CheckOptions::default());
    let report = CheckReport::new("api:dev", platform, &fs, cfg.argv(), findings);
    assert_eq!(report.findings[0].image.as_deref(), Some("api:dev"));
    let text = render(&[report]);
    assert!(
        text.starts_with("api:dev [linux/arm64]: 1 error(s), 0 warning(s)"),
        "{text}"
    );
    assert!(text.contains("what to do (elf-arch-mismatch)"), "{text}");
    assert!(
        text.contains("expected aarch64 (ELF64, little-endian), found x86-64"),
        "{text}"
    );
}

#[test]
fn findings_of_one_cause_are_one_entry_errors_first() {
    // Fourteen programs missing one loader, one missing another, and an error.
    let mut files: Vec<(String, Vec<u8>)> = (0..14)
        .map(|i| {
            let e = elf(
                EM_X86_64,
                ElfClass::Elf64,
                Some("/lib64/ld-linux-x86-64.so.2"),
            );
            (format!("usr/bin/tool{i:02}"), e)
        })
        .collect();
    files.push((
        "usr/bin/other".into(),
        elf(EM_X86_64, ElfClass::Elf64, Some("/lib/ld-musl-x86_64.so.1")),
    ));
    files.push(("app".into(), elf(EM_AARCH64, ElfClass::Elf64, None)));
    let entries: Vec<(&str, T<'_>)> = files.iter().map(|(p, b)| (p.as_str(), T::Exe(b))).collect();
    let fs = Filesystem::merge(&[layer(&entries)]);
    let cfg = config("linux/amd64", &["/app"]);
    let platform = Platform::parse("linux/amd64").unwrap();
    let findings = run(&fs, &cfg, &platform, &CheckOptions::default());
    assert_eq!(findings.len(), 16, "{findings:#?}");
    let text = render(&[CheckReport::new("x", platform, &fs, cfg.argv(), findings)]);
    let entries: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  error") || l.starts_with("  warning"))
        .collect();
    assert_eq!(entries.len(), 3, "{text}");
    assert!(
        entries[0].starts_with("  error   elf-arch-mismatch"),
        "{text}"
    );
    assert!(text.contains("and 13 more with the same cause: /usr/bin/tool01, /usr/bin/tool02, /usr/bin/tool03, /usr/bin/tool04, /usr/bin/tool05 and 8 others"), "{text}");
    assert!(entries[1].contains("/usr/bin/other"), "{text}");
    assert!(entries[2].contains("/usr/bin/tool00"), "{text}");
}

#[test]
fn x86_64_levels_beyond_the_platform_are_cpu_level_mismatches() {
    let v3 = ElfSpec::new(EM_X86_64, ElfClass::Elf64, Endian::Little)
        .with_isa_needed(0b111)
        .build();
    let l = layer(&[("app", T::Exe(&v3)), ("lib.so", T::File(&v3))]);
    let f = check(
        std::slice::from_ref(&l),
        &config("linux/amd64", &["/app"]),
        "linux/amd64",
        &CheckOptions::default(),
    );
    assert_eq!(
        kinds(&f),
        vec![(FindingKind::CpuLevelMismatch, Severity::Error); 2],
        "{f:#?}"
    );
    let paths: Vec<_> = f.iter().filter_map(|f| f.path.as_deref()).collect();
    assert_eq!(
        paths,
        ["/app", "/lib.so"],
        "every ELF file, as the machine check does"
    );
    for platform in ["linux/amd64/v3", "linux/amd64/v4"] {
        let f = check(
            std::slice::from_ref(&l),
            &config(platform, &["/app"]),
            platform,
            &CheckOptions::default(),
        );
        assert!(f.is_empty(), "{platform}: {f:#?}");
    }
    let f = check(
        &[l],
        &config("linux/amd64/v2", &["/app"]),
        "linux/amd64/v2",
        &CheckOptions::default(),
    );
    assert!(f[0].message.contains("guarantees only x86-64-v2"), "{f:#?}");
}

#[test]
fn hard_float_arm_programs_are_refused_in_arm_v5_only() {
    let program = |flags: u32| {
        ElfSpec::new(EM_ARM, ElfClass::Elf32, Endian::Little)
            .with_flags(flags)
            .build()
    };
    let (hard, soft) = (program(0x0500_0400), program(0x0500_0200));
    let run_in = |bytes: &[u8], platform: &str| {
        let l = layer(&[("app", T::Exe(bytes))]);
        kinds(&check(
            &[l],
            &config(platform, &["/app"]),
            platform,
            &CheckOptions::default(),
        ))
    };
    assert_eq!(
        run_in(&hard, "linux/arm/v5"),
        [(FindingKind::CpuLevelMismatch, Severity::Error)]
    );
    assert_eq!(run_in(&soft, "linux/arm/v5"), []);
    // arm/v6 is built both ways: nothing is said.
    assert_eq!(run_in(&hard, "linux/arm/v6"), []);
    assert_eq!(run_in(&soft, "linux/arm/v6"), []);
}
