use super::*;

fn p(s: &str) -> Platform {
    Platform::parse(s).unwrap()
}

fn verified() -> ImageReport {
    ImageReport {
        name: "api".into(),
        repository: "registry.example.com/team/api".into(),
        tags: vec!["1.8.0".into()],
        required_platforms: vec![p("linux/amd64"), p("linux/arm64")],
        built_platforms: vec![p("linux/amd64"), p("linux/arm64")],
        index_digest: Some(format!("sha256:{}", "a".repeat(64))),
        manifests: [
            (p("linux/amd64"), format!("sha256:{}", "b".repeat(64))),
            (p("linux/arm64"), format!("sha256:{}", "c".repeat(64))),
        ]
        .into(),
        pushed: true,
        output: "registry.example.com/team/api:1.8.0".into(),
        verified: true,
        exports: 0,
        findings: vec![],
        handovers: Vec::new(),
    }
}

#[test]
fn a_complete_verified_index_is_verified_multi_arch() {
    let image = verified();
    assert_eq!(image.classification(), Classification::VerifiedMultiArch);
    assert_eq!(
        image.pinned_reference().unwrap(),
        format!("registry.example.com/team/api@sha256:{}", "a".repeat(64))
    );
}

#[test]
fn a_required_platform_not_built_is_missing_platform() {
    let mut image = verified();
    image.built_platforms.pop();
    image.manifests.remove(&p("linux/arm64"));
    let c = image.classification();
    match &c {
        Classification::MissingPlatform { missing, finding } => {
            assert_eq!(missing, &[p("linux/arm64")]);
            assert_eq!(finding.kind, FindingKind::PlatformMissing);
            assert!(
                finding.message.contains("no match for platform"),
                "{}",
                finding.message
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.as_str(), "missing-platform");
}

#[test]
fn content_findings_win_over_everything_else() {
    let mut image = verified();
    image.built_platforms.pop();
    let wrong = Finding::error(
        FindingKind::ElfArchMismatch,
        "x86-64 program in arm64 image",
    )
    .with_platform(&Platform::parse("linux/arm64").unwrap())
    .with_path("/app");
    image.findings.push(wrong.clone());
    assert_eq!(
        image.classification(),
        Classification::ContentMismatch { finding: wrong }
    );
}

#[test]
fn one_manifest_without_an_index_is_single_arch() {
    let mut image = verified();
    image.index_digest = None;
    image.required_platforms = vec![p("linux/amd64")];
    image.built_platforms = vec![p("linux/amd64")];
    image.manifests.remove(&p("linux/arm64"));
    match image.classification() {
        Classification::SingleArch { platform, finding } => {
            assert_eq!(platform, p("linux/amd64"));
            assert!(finding.message.contains("exec format error"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        image.pinned_reference().unwrap(),
        format!("registry.example.com/team/api@sha256:{}", "b".repeat(64))
    );
}

#[test]
fn an_unverified_index_says_so() {
    let mut image = verified();
    image.verified = false;
    assert_eq!(image.classification().as_str(), "unverified");
}

#[test]
fn round_trips_and_loads_with_clear_errors() {
    let report = Report {
        version: REPORT_VERSION,
        created: "2025-05-01T12:00:00Z".into(),
        images: vec![verified()],
        findings: vec![],
        timings: vec![Timing {
            step: "build api linux/arm64".into(),
            seconds: 1.5,
        }],
    };
    let json = serde_json::to_string_pretty(&report).unwrap();
    assert!(json.contains("\"linux/arm64\": \"sha256:"), "{json}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    std::fs::write(&path, &json).unwrap();
    assert_eq!(Report::load(&path).unwrap(), report);

    let missing = Report::load(&dir.path().join("nope.json")).unwrap_err();
    assert!(
        missing.to_string().contains("run `archbuild build` first"),
        "{missing}"
    );

    std::fs::write(&path, "{\n  \"version\": 1,\n  \"created\": 3\n}").unwrap();
    let bad = Report::load(&path).unwrap_err().to_string();
    assert!(bad.contains("report.json:3:"), "{bad}");

    std::fs::write(&path, json.replace("\"version\": 1", "\"version\": 9")).unwrap();
    let version = Report::load(&path).unwrap_err().to_string();
    assert!(version.contains("version 9 is not supported"), "{version}");
}
