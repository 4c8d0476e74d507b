use std::path::PathBuf;

use pretty_assertions::assert_eq;

use super::*;
use crate::finding::{Finding, FindingKind};
use crate::platform::Platform;
use crate::report::{ImageReport, Timing, REPORT_VERSION};

fn p(s: &str) -> Platform {
    Platform::parse(s).unwrap()
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn api() -> ImageReport {
    ImageReport {
        name: "api".into(),
        repository: "registry.example.com/team/api".into(),
        tags: vec!["1.8.0".into(), "latest".into()],
        required_platforms: vec![p("linux/amd64"), p("linux/arm64")],
        built_platforms: vec![p("linux/amd64"), p("linux/arm64")],
        index_digest: Some(digest('a')),
        manifests: [
            (p("linux/amd64"), digest('b')),
            (p("linux/arm64"), digest('c')),
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

fn report(images: Vec<ImageReport>) -> Report {
    Report {
        version: REPORT_VERSION,
        created: "2025-05-01T12:00:00Z".into(),
        images,
        findings: vec![],
        timings: vec![Timing {
            step: "build".into(),
            seconds: 12.0,
        }],
    }
}

fn verified_build() -> Report {
    report(vec![api()])
}

fn missing_platform_build() -> Report {
    let mut worker = api();
    worker.name = "worker".into();
    worker.repository = "registry.example.com/team/worker".into();
    worker.tags = vec!["2.0.1".into()];
    worker.built_platforms = vec![p("linux/amd64")];
    worker.manifests = [(p("linux/amd64"), digest('e'))].into();
    worker.index_digest = Some(digest('d'));
    worker.findings = vec![Finding::error(
        FindingKind::PlatformMissing,
        "the index of registry.example.com/team/worker:2.0.1 has no linux/arm64 image: pods on arm64 nodes fail to pull with 'no match for platform in manifest'",
    )
    .with_platform(&Platform::parse("linux/arm64").unwrap())
    .with_image("registry.example.com/team/worker:2.0.1")];
    report(vec![api(), worker])
}

/// Compares with `tests/expected/NAME`; `UPDATE_EXPECTED=1` rewrites the file instead.
fn assert_expected(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(name);
    if std::env::var_os("UPDATE_EXPECTED").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_EXPECTED=1 writes it)", path.display()));
    assert_eq!(expected, actual);
}

#[test]
fn verified_build_checklist() {
    let md = render(&verified_build(), None).unwrap();
    assert_expected("checklist-verified.md", &md);
}

#[test]
fn missing_platform_checklist() {
    let md = render(&missing_platform_build(), None).unwrap();
    assert_expected("checklist-missing-platform.md", &md);
}

#[test]
fn the_interim_patch_is_a_typed_deployment_patch() {
    let checklist = build(&missing_platform_build());
    let worker = &checklist.images[1];
    assert_eq!(worker.classification, "missing-platform");
    assert_eq!(worker.uncovered_architectures, ["arm64"]);
    let patch = worker.interim_patch.as_ref().unwrap();
    let d: k8s_openapi::api::apps::v1::Deployment = serde_yaml_ng::from_str(&patch.yaml).unwrap();
    let spec = d.spec.unwrap().template.spec.unwrap();
    let pin = crate::k8s::ArchPin::of(&spec).unwrap();
    assert!(pin.allows("amd64") && !pin.allows("arm64"));
    assert!(checklist.images[0].interim_patch.is_none());
    let migration = checklist.migration.unwrap();
    assert_eq!(migration.images, ["api"]);
    let t: k8s_openapi::api::apps::v1::Deployment =
        serde_yaml_ng::from_str(&migration.toleration_yaml).unwrap();
    assert!(t.spec.unwrap().template.spec.unwrap().tolerations.is_some());
}

#[test]
fn templates_can_be_overridden_from_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(CHECKLIST_TEMPLATE),
        "{% for i in images %}{{ i.name }}={{ i.classification }} {{ i.reference }}\n{% endfor %}",
    )
    .unwrap();
    let out = render(&missing_platform_build(), Some(dir.path())).unwrap();
    assert_eq!(
        out,
        format!(
            "api=verified-multi-arch registry.example.com/team/api@{}\nworker=missing-platform registry.example.com/team/worker@{}\n",
            digest('a'),
            digest('d')
        )
    );
    std::fs::write(dir.path().join(CHECKLIST_TEMPLATE), "ok\n{% if %}").unwrap();
    let err = render(&verified_build(), Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("syntax error") && err.contains("checklist.md.j2:2"),
        "{err}"
    );
    std::fs::write(dir.path().join(CHECKLIST_TEMPLATE), "{{ images[0].nmae }}").unwrap();
    let err = render(&verified_build(), Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("undefined"),
        "a misspelt field is an error: {err}"
    );
    let missing = render(&verified_build(), Some(&dir.path().join("nope"))).unwrap_err();
    assert!(missing.to_string().contains("does not exist"), "{missing}");
}

#[test]
fn json_carries_findings_and_the_checklist() {
    let doc: serde_json::Value =
        serde_json::from_str(&render_json(&missing_platform_build()).unwrap()).unwrap();
    assert_eq!(doc["findings"][0]["kind"], "platform-missing");
    assert_eq!(
        doc["checklist"]["images"][1]["classification"],
        "missing-platform"
    );
    assert_eq!(
        doc["checklist"]["images"][1]["interim_patch"]["architectures"][0],
        "amd64"
    );
}

#[test]
fn a_cpu_level_finding_names_the_node_label_that_schedules_around_it() {
    let mut api = api();
    let amd64 = Platform::parse("linux/amd64").unwrap();
    let level = |needs: &str, path: &str| {
        Finding::error(
            FindingKind::CpuLevelMismatch,
            format!("{path} needs {needs}"),
        )
        .with_platform(&amd64)
        .with_path(path)
        .with_expected_actual("x86-64 (baseline)", needs)
    };
    api.findings = vec![
        level("x86-64-v3", "/app"),
        level("x86-64-v3", "/usr/bin/tool"),
        level("x86-64-v2", "/usr/bin/other"),
    ];
    let checklist = build(&report(vec![api.clone()]));
    let levels = &checklist.images[0].cpu_levels;
    assert_eq!(levels.len(), 2, "{levels:#?}");
    assert_eq!(levels[0].needs, "x86-64-v3");
    assert_eq!(
        levels[0].label.as_deref(),
        Some("feature.node.kubernetes.io/cpu-cpuid.AVX2")
    );
    assert_eq!(levels[1].label, None);
    let md = render(&report(vec![api]), None).unwrap();
    assert!(md.contains("### CPU level"), "{md}");
    assert!(
        md.contains("`feature.node.kubernetes.io/cpu-cpuid.AVX2=true`"),
        "{md}"
    );
    assert!(md.contains("SSE4.2 and POPCNT"), "{md}");
}
