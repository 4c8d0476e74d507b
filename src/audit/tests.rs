use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use super::*;
use crate::finding::Severity;
use crate::store::StoreError;

/// A resolver that answers from a table and records every call.
#[derive(Default)]
struct FakeResolver {
    images: BTreeMap<String, Result<ImagePlatforms, String>>,
    calls: Mutex<Vec<String>>,
}

impl FakeResolver {
    fn with(mut self, image: &str, answer: Result<ImagePlatforms, &str>) -> Self {
        let whole = crate::source::parse_registry(image).unwrap().whole();
        self.images.insert(whole, answer.map_err(str::to_string));
        self
    }
}

impl PlatformResolver for FakeResolver {
    async fn resolve(&self, image: &ImageRef) -> Result<ImagePlatforms, ResolveError> {
        self.calls.lock().unwrap().push(image.whole());
        tokio::task::yield_now().await;
        match self.images.get(&image.whole()) {
            Some(Ok(p)) => Ok(p.clone()),
            Some(Err(detail)) => Err(StoreError::Unreachable {
                store: image.registry().into(),
                detail: detail.clone(),
            }
            .into()),
            None => Err(StoreError::NotFound {
                what: image.whole(),
                store: image.registry().into(),
            }
            .into()),
        }
    }
}

fn p(s: &str) -> Platform {
    Platform::parse(s).unwrap()
}

fn index(platforms: &[&str]) -> ImagePlatforms {
    ImagePlatforms::Index {
        digest: "sha256:1".into(),
        platforms: platforms.iter().map(|s| p(s)).collect(),
    }
}

fn single(platform: &str) -> ImagePlatforms {
    ImagePlatforms::Single {
        digest: "sha256:2".into(),
        platform: p(platform),
    }
}

fn resolver() -> FakeResolver {
    FakeResolver::default()
        .with("reg.test/api:1", Ok(index(&["linux/amd64", "linux/arm64"])))
        .with(
            "reg.test/envoy:1",
            Ok(index(&["linux/amd64", "linux/s390x"])),
        )
        .with("reg.test/migrate:1", Ok(single("linux/amd64")))
        .with("reg.test/agent:1", Ok(single("linux/amd64")))
        .with("reg.test/report:1", Ok(single("linux/amd64")))
}

const MANIFESTS: &str = r#"# the shop
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: prod}
spec:
  selector: {matchLabels: {app: api}}
  template:
    spec:
      initContainers: [{name: migrate, image: reg.test/migrate:1}]
      containers:
        - {name: api, image: reg.test/api:1}
        - {name: envoy, image: reg.test/envoy:1}
---
apiVersion: v1
kind: List
items:
  - apiVersion: batch/v1
    kind: CronJob
    metadata: {name: report, namespace: prod}
    spec:
      schedule: "0 * * * *"
      jobTemplate:
        spec:
          template:
            spec:
              containers: [{name: report, image: reg.test/report:1}]
  - apiVersion: v1
    kind: Service
    metadata: {name: api}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: kube-system}
spec:
  template:
    spec:
      nodeSelector: {kubernetes.io/arch: amd64}
      containers: [{name: agent, image: reg.test/agent:1}]
"#;

fn cluster() -> Vec<Platform> {
    vec![p("linux/amd64"), p("linux/arm64")]
}

async fn audit_manifests(resolver: &FakeResolver, text: &str) -> Audit {
    let docs = documents::parse(text, Path::new("shop.yaml")).unwrap();
    let (ws, mut skipped) = workloads(&docs).unwrap();
    let mut audit = run(resolver, ws, &[], &cluster()).await;
    skipped.append(&mut audit.findings);
    audit.findings = skipped;
    audit
}

fn errors(audit: &Audit) -> Vec<(String, String, String, String)> {
    audit
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| {
            (
                f.kind.as_str().to_string(),
                f.workload.clone().unwrap_or_default(),
                f.container.clone().unwrap_or_default(),
                f.symptom.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn broken_sidecar_and_init_container_cronjob_and_a_pinned_daemonset() {
    let resolver = resolver();
    let audit = audit_manifests(&resolver, MANIFESTS).await;
    assert!(audit.errors.is_empty(), "{:?}", audit.errors);
    let e = |k: &str, w: &str, c: &str, s: &str| (k.into(), w.into(), c.into(), s.into());
    assert_eq!(
        errors(&audit),
        [
            e(
                "single-arch",
                "Deployment/prod/api",
                "migrate",
                EXEC_FORMAT_ERROR
            ),
            e(
                "platform-missing",
                "Deployment/prod/api",
                "envoy",
                NO_MATCH_FOR_PLATFORM
            ),
            e(
                "single-arch",
                "CronJob/prod/report",
                "report",
                EXEC_FORMAT_ERROR
            ),
        ]
    );
    let envoy = audit
        .findings
        .iter()
        .find(|f| f.container.as_deref() == Some("envoy"))
        .unwrap();
    assert_eq!(
        envoy.platform.as_ref().map(ToString::to_string).as_deref(),
        Some("linux/arm64")
    );
    assert_eq!(envoy.image.as_deref(), Some("reg.test/envoy:1"));
    assert!(
        envoy.message.contains("it has linux/amd64, linux/s390x"),
        "{}",
        envoy.message
    );

    let unknown = &audit.findings[0];
    assert_eq!(unknown.kind, FindingKind::UnknownKind);
    assert_eq!(unknown.severity, Severity::Warning);
    assert!(
        unknown
            .message
            .starts_with("shop.yaml:14: a document of kind Service"),
        "{}",
        unknown.message
    );

    let pinned = audit
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Pinned)
        .unwrap();
    assert_eq!(pinned.severity, Severity::Info);
    assert_eq!(
        pinned.workload.as_deref(),
        Some("DaemonSet/kube-system/agent")
    );
    assert!(pinned
        .message
        .contains("nodeSelector kubernetes.io/arch=amd64"));

    let patched: Vec<_> = audit
        .affinity_patches
        .iter()
        .map(|p| p.workload.as_str())
        .collect();
    assert_eq!(patched, ["Deployment/prod/api", "CronJob/prod/report"]);
    assert!(audit.affinity_patches[1].yaml.contains("jobTemplate"));
    assert!(audit.affinity_patches[0].yaml.contains("- amd64"));
    assert!(!audit.affinity_patches[0].yaml.contains("arm64"));
    assert!(
        audit.toleration_patches.is_empty(),
        "no workload covers arm64 entirely"
    );
    assert_eq!(resolver.calls.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn sound_workloads_get_the_migration_toleration() {
    let resolver = resolver();
    let audit = audit_manifests(
        &resolver,
        "kind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: a, image: reg.test/api:1}]}}}\n",
    )
    .await;
    assert!(errors(&audit).is_empty());
    assert!(audit.affinity_patches.is_empty());
    assert_eq!(audit.toleration_patches.len(), 1);
    assert!(audit.toleration_patches[0]
        .yaml
        .contains("archbuild.io/arm64-migration"));
}

#[tokio::test]
async fn each_distinct_image_is_resolved_once() {
    let mut resolver = FakeResolver::default();
    let mut text = String::new();
    for i in 0..50 {
        resolver = resolver.with(
            &format!("reg.test/img{i}:1"),
            Ok(index(&["linux/amd64", "linux/arm64"])),
        );
    }
    for w in 0..500 {
        let image = format!("reg.test/img{}:1", w % 50);
        let sidecar = format!("reg.test/img{}:1", (w + 7) % 50);
        text.push_str(&format!(
            "---\nkind: Deployment\nmetadata: {{name: w{w}}}\nspec: {{template: {{spec: {{initContainers: [{{name: i, image: \"{image}\"}}], containers: [{{name: a, image: \"{image}\"}}, {{name: b, image: \"{sidecar}\"}}]}}}}}}\n"
        ));
    }
    let audit = audit_manifests(&resolver, &text).await;
    assert_eq!(audit.workloads.len(), 500);
    assert_eq!(
        resolver.calls.lock().unwrap().len(),
        50,
        "one resolution per distinct image"
    );
    assert!(errors(&audit).is_empty());
}

#[tokio::test]
async fn an_unreachable_registry_and_a_bad_reference_do_not_stop_the_rest() {
    let resolver = resolver().with("other.test/envoy:1", Err("connection refused"));
    let text = MANIFESTS
        .replace("reg.test/envoy:1", "other.test/envoy:1")
        .replace("reg.test/report:1", "reg.test/UPPER:1");
    let audit = audit_manifests(&resolver, &text).await;
    assert_eq!(audit.errors.len(), 2, "{:?}", audit.errors);
    assert!(
        audit.errors.iter().any(|e| e
            .contains("\"reg.test/UPPER:1\" is not a valid image reference")
            && e.contains("CronJob/prod/report container report")),
        "{:?}",
        audit.errors
    );
    assert!(
        audit
            .errors
            .iter()
            .any(|e| e.starts_with("other.test/envoy:1:") && e.contains("connection refused")),
        "{:?}",
        audit.errors
    );
    // The init container is still judged.
    assert_eq!(errors(&audit).len(), 1);
    assert_eq!(errors(&audit)[0].2, "migrate");
}

#[test]
fn bad_yaml_names_file_and_line() {
    let text =
        "kind: Pod\nmetadata: {name: a}\n---\nkind: Pod\nmetadata:\n  name: [unclosed\n  x: y\n";
    let err = documents::parse(text, Path::new("pods.yaml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("pods.yaml:7:"), "{err}");
    assert!(
        !err.contains("line 5"),
        "no position relative to the document: {err}"
    );
    assert!(err.contains("not valid YAML"), "{err}");
    let json = documents::parse("{\"kind\": \"Pod\",\n \"x\": }", Path::new("p.json")).unwrap_err();
    assert!(json.to_string().starts_with("p.json:2:"), "{json}");
}

#[test]
fn alias_bombs_are_refused_with_file_and_line_and_shared_anchors_still_read() {
    // The bomb is the second document; nine levels of ten aliases: 10^9 strings from ~700 bytes.
    let mut text = String::from("kind: Pod\nmetadata: {name: a}\n---\n");
    text.push_str("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let err = documents::parse(&text, Path::new("bomb.yaml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("bomb.yaml:4:"), "{err}");
    assert!(err.contains("aliases expand"), "{err}");

    // Wide rather than deep, which the YAML library's own repetition limit lets through:
    // 2,000 strings of 50 bytes, a thousand times, ten times: 1 GB from 110 KB of text.
    let leaf = vec!["x".repeat(50); 2000].join(", ");
    let wide = format!(
        "w0: &w0 [{leaf}]\nw1: &w1 [{}]\nw2: [{}]\n",
        ["*w0"; 1000].join(", "),
        ["*w1"; 10].join(", ")
    );
    assert!(wide.len() < 120_000);
    let err = documents::parse(&wide, Path::new("wide.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("wide.yaml:1:") && err.contains("aliases expand"),
        "{err}"
    );

    let shared = "kind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - &c {name: a, image: x}\n  initContainers:\n  - *c\n";
    let docs = documents::parse(shared, Path::new("ok.yaml")).unwrap();
    assert_eq!(docs[0].value["spec"]["initContainers"][0]["image"], "x");
}

#[test]
fn json_lists_and_document_lines() {
    let text =
        "{\"kind\": \"List\", \"items\": [{\"kind\": \"Pod\", \"metadata\": {\"name\": \"a\"}}]}\n";
    let docs = documents::parse(text, Path::new("l.json")).unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].kind(), "Pod");
    let docs = documents::parse("---\n# c\nkind: A\n---\n\nkind: B\n", Path::new("x")).unwrap();
    assert_eq!(docs.iter().map(|d| d.line).collect::<Vec<_>>(), [3, 6]);
    let bad = workloads(
        &documents::parse(
            "kind: Pod\nmetadata: {name: x}\nspec: {containers: 1}\n",
            Path::new("x.yaml"),
        )
        .unwrap(),
    );
    assert!(bad
        .unwrap_err()
        .starts_with("x.yaml:1: Pod x: invalid type"));
}

#[test]
fn node_lists_give_the_cluster_platforms() {
    let nodes = r#"{"apiVersion": "v1", "kind": "List", "items": [
      {"kind": "Node", "metadata": {"name": "a"}, "status": {"nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "", "osImage": "", "systemUUID": ""}}},
      {"kind": "Node", "metadata": {"name": "b", "labels": {"kubernetes.io/arch": "arm64"}}},
      {"kind": "Node", "metadata": {"name": "c", "labels": {"kubernetes.io/arch": "amd64"}}}
    ]}"#;
    let docs = documents::parse(nodes, Path::new("nodes.json")).unwrap();
    assert_eq!(
        nodes::platforms(&docs, Path::new("nodes.json")).unwrap(),
        cluster()
    );
    let docs = documents::parse(MANIFESTS, Path::new("shop.yaml")).unwrap();
    let err = nodes::platforms(&docs, Path::new("shop.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("shop.yaml:2: --nodes expects the output of `kubectl get nodes -o json`"),
        "{err}"
    );
    let docs =
        documents::parse("{\"kind\": \"List\", \"items\": []}", Path::new("e.json")).unwrap();
    assert!(nodes::platforms(&docs, Path::new("e.json"))
        .unwrap_err()
        .to_string()
        .contains("holds no nodes"));
}

#[test]
fn dockerfile_bases() {
    let text = "# syntax=docker/dockerfile:1\nARG GO=1.22\nFROM --platform=$BUILDPLATFORM golang:${GO} AS build\nRUN make\nFROM build AS test\nFROM alpine:3.20 \\\n  AS runtime\nCOPY --from=build /app /app\nFROM scratch\nFROM $UNSET\nFROM reg.test/base:1\n";
    let (bases, skipped) = bases::parse(text, Path::new("Dockerfile"));
    let got: Vec<_> = bases.iter().map(|b| (b.line, b.image.as_str())).collect();
    assert_eq!(got, [(6, "alpine:3.20"), (11, "reg.test/base:1")]);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].line, 10);
}

#[tokio::test]
async fn base_images_are_audited_against_the_platforms() {
    let resolver = resolver();
    let (bases, _) = bases::parse(
        "FROM reg.test/envoy:1\nFROM reg.test/api:1\n",
        Path::new("Dockerfile"),
    );
    let audit = run(&resolver, vec![], &bases, &cluster()).await;
    assert_eq!(audit.findings.len(), 1);
    let f = &audit.findings[0];
    assert_eq!(f.kind, FindingKind::PlatformMissing);
    assert!(
        f.message.starts_with(
            "Dockerfile:1: base image reg.test/envoy:1 is an index without linux/arm64"
        ),
        "{}",
        f.message
    );
}

#[test]
fn dockerfile_bases_skip_heredoc_bodies_and_honour_escape() {
    let text = "# escape=`\nFROM reg.test/a:1 `\n  AS one\nRUN <<EOF\nFROM reg.test/not-a-base:1\nEOF\nFROM reg.test/b:1\n";
    let (bases, _) = bases::parse(text, Path::new("Dockerfile"));
    let got: Vec<_> = bases.iter().map(|b| (b.line, b.image.as_str())).collect();
    assert_eq!(got, [(2, "reg.test/a:1"), (7, "reg.test/b:1")]);
}

#[test]
fn manifest_files_past_the_limit_are_refused_without_being_held() {
    // /dev/zero never ends: it is refused after the limit, not read until memory is gone.
    let err = documents::load(Path::new("/dev/zero"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/dev/zero is larger than 67108864 bytes"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok.yaml");
    std::fs::write(&ok, "kind: Pod\nmetadata: {name: a}\n").unwrap();
    assert_eq!(documents::load(&ok).unwrap().len(), 1);
    let latin1 = dir.path().join("latin1.yaml");
    std::fs::write(&latin1, b"kind: Pod\nmetadata: {name: caf\xe9}\n").unwrap();
    let err = documents::load(&latin1).unwrap_err().to_string();
    assert!(
        err.contains("cannot read") && err.contains("not UTF-8 text"),
        "{err}"
    );
}
