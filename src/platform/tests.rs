use super::*;

fn p(s: &str) -> String {
    Platform::parse(s).unwrap().to_string()
}

#[test]
fn aliases_normalise_like_containerd() {
    let cases = [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/x86-64", "linux/amd64"),
        ("LINUX/AMD64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/aarch64/8", "linux/arm64"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("linux/armv7l", "linux/arm/v7"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/7", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6"),
        ("linux/arm/6", "linux/arm/v6"),
        ("linux/arm/v5", "linux/arm/v5"),
        ("linux/i386", "linux/386"),
        ("linux/i686", "linux/386"),
        ("linux/386", "linux/386"),
        ("linux/ppc64le", "linux/ppc64le"),
        ("linux/s390x", "linux/s390x"),
        ("linux/riscv64", "linux/riscv64"),
        ("linux/mips64le", "linux/mips64le"),
        ("linux/loong64", "linux/loong64"),
        ("arm64", "linux/arm64"),
        ("x86_64", "linux/amd64"),
        ("windows/amd64", "windows/amd64"),
    ];
    for (given, want) in cases {
        assert_eq!(p(given), want, "normalising {given}");
    }
}

#[test]
fn unknown_platforms_are_refused_with_a_suggestion() {
    let err = Platform::parse("linux/amd46").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown platform \"linux/amd46\"; did you mean \"linux/amd64\"?"
    );
    let err = Platform::parse("linux/arm/v9").unwrap_err();
    assert!(err
        .to_string()
        .starts_with("unknown platform \"linux/arm/v9\""));
    assert!(matches!(
        Platform::parse("linux/amd64/v2/x"),
        Err(PlatformError::TooManyParts(_))
    ));
    assert_eq!(Platform::parse(" "), Err(PlatformError::Empty));
    assert!(Platform::parse("linux/ppc64le/v9").is_err());
    let far = Platform::parse("plan10/zz80").unwrap_err().to_string();
    assert!(far.contains("expected one of \"linux/amd64\""), "{far}");
}

#[test]
fn lists_drop_repeats_after_normalising() {
    let list = parse_list("linux/amd64, linux/x86_64,linux/aarch64").unwrap();
    let names: Vec<String> = list.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["linux/amd64", "linux/arm64"]);
    assert_eq!(parse_list(" , "), Err(PlatformError::Empty));
}

#[test]
fn matching_follows_containerd_only() {
    let amd64 = Platform::parse("linux/amd64").unwrap();
    let arm64 = Platform::parse("linux/arm64").unwrap();
    let v7 = Platform::parse("linux/arm/v7").unwrap();
    let v6 = Platform::parse("linux/arm/v6").unwrap();
    let i386 = Platform::parse("linux/386").unwrap();
    let amd64v3 = Platform::parse("linux/amd64/v3").unwrap();
    assert!(amd64.runs(&i386));
    assert!(!i386.runs(&amd64));
    assert!(arm64.runs(&v7));
    assert!(v7.runs(&v6));
    assert!(!v6.runs(&v7));
    assert!(!amd64.runs(&arm64));
    assert!(!arm64.runs(&amd64));
    assert!(amd64v3.runs(&amd64));
    assert!(!amd64.runs(&amd64v3));
    assert!(!amd64.runs(&Platform::parse("windows/amd64").unwrap()));
}

#[test]
fn every_platform_has_its_elf_identity() {
    use ElfClass::*;
    use Endian::*;
    let table = [
        ("linux/amd64", EM_X86_64, Elf64, Little, None),
        ("linux/arm64", EM_AARCH64, Elf64, Little, None),
        ("linux/arm/v7", EM_ARM, Elf32, Little, Some(FloatAbi::Hard)),
        ("linux/arm/v6", EM_ARM, Elf32, Little, None),
        ("linux/arm/v5", EM_ARM, Elf32, Little, None),
        ("linux/386", EM_386, Elf32, Little, None),
        ("linux/ppc64le", EM_PPC64, Elf64, Little, None),
        ("linux/ppc64", EM_PPC64, Elf64, Big, None),
        ("linux/s390x", EM_S390, Elf64, Big, None),
        ("linux/riscv64", EM_RISCV, Elf64, Little, None),
        ("linux/mips64le", EM_MIPS, Elf64, Little, None),
        ("linux/mips64", EM_MIPS, Elf64, Big, None),
        ("linux/mipsle", EM_MIPS, Elf32, Little, None),
        ("linux/mips", EM_MIPS, Elf32, Big, None),
        ("linux/loong64", EM_LOONGARCH, Elf64, Little, None),
    ];
    for (name, machine, class, endian, float_abi) in table {
        let id = Platform::parse(name).unwrap().elf_identity().unwrap();
        assert_eq!(
            id,
            ElfIdentity {
                machine,
                class,
                endian,
                float_abi
            },
            "{name}"
        );
    }
    assert_eq!(table.len(), KNOWN_PLATFORMS.len());
    assert!(Platform::parse("windows/amd64")
        .unwrap()
        .elf_identity()
        .is_none());
}

#[test]
fn identities_compare_and_print() {
    let arm64 = Platform::parse("linux/arm64")
        .unwrap()
        .elf_identity()
        .unwrap();
    let amd64 = Platform::parse("linux/amd64")
        .unwrap()
        .elf_identity()
        .unwrap();
    assert!(!arm64.accepts(&amd64));
    assert_eq!(arm64.to_string(), "aarch64 (ELF64, little-endian)");
    assert_eq!(amd64.to_string(), "x86-64 (ELF64, little-endian)");
    let v7 = Platform::parse("linux/arm/v7")
        .unwrap()
        .elf_identity()
        .unwrap();
    let soft = ElfIdentity {
        float_abi: Some(FloatAbi::Soft),
        ..v7
    };
    let unstated = ElfIdentity {
        float_abi: None,
        ..v7
    };
    assert!(!v7.accepts(&soft));
    assert!(v7.accepts(&unstated));
    assert_eq!(soft.to_string(), "ARM (ELF32, little-endian, soft-float)");
    let names = |id: &ElfIdentity| {
        id.platforms()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&amd64), ["linux/amd64"]);
    assert_eq!(names(&v7), ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]);
}

#[test]
fn serde_round_trips_normalised() {
    let p: Platform = serde_json::from_str("\"linux/aarch64\"").unwrap();
    assert_eq!(serde_json::to_string(&p).unwrap(), "\"linux/arm64\"");
    let lenient = Platform::from_parts_lenient("unknown", "unknown", Some(""));
    assert!(lenient.is_unknown());
    assert_eq!(lenient.to_string(), "unknown/unknown");
}

#[test]
fn platforms_megabytes_long_cost_no_more_than_reading_them() {
    // An index may name any platform; its suggestion compared a 3 MB architecture with every
    // known platform, character by character (a check ran for minutes).
    let long = "a".repeat(4 << 20);
    let started = std::time::Instant::now();
    assert_eq!(suggest(&long), None);
    let kept = Platform::from_parts_lenient("linux", &long, Some("v1"));
    assert_eq!(kept.architecture.len(), long.len());
    assert!(Platform::parse(&format!("linux/{long}")).is_err());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(suggest("linux/amd46").as_deref(), Some("linux/amd64"));
}
