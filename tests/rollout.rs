//! End to end: images pushed to a real registry (multi-arch, single-arch, an index without
//! arm64) with skopeo from OCI layouts written here, then `archbuild audit` run on manifests
//! that use them, asserting the findings, symptoms and patches, and that each distinct image
//! is fetched once.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::*;

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn put_blob(dir: &Path, bytes: &[u8]) -> Value {
    let d = digest(bytes);
    let path = dir.join("blobs/sha256").join(&d[7..]);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    json!({"digest": d, "size": bytes.len()})
}

/// One platform's image manifest in the layout; returns its descriptor.
fn image(dir: &Path, platform: &str) -> Value {
    let mut tar = tar::Builder::new(Vec::new());
    let body = format!("built for {platform}\n");
    let mut header = tar::Header::new_gnu();
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "etc/platform", body.as_bytes())
        .unwrap();
    let layer = tar.into_inner().unwrap();
    let parts: Vec<&str> = platform.split('/').collect();
    let mut config = json!({"os": parts[0], "architecture": parts[1],
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]}, "config": {}});
    if let Some(v) = parts.get(2) {
        config["variant"] = json!(v);
    }
    let mut config_desc = put_blob(dir, config.to_string().as_bytes());
    config_desc["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let mut layer_desc = put_blob(dir, &layer);
    layer_desc["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc, "layers": [layer_desc]});
    let mut desc = put_blob(dir, manifest.to_string().as_bytes());
    desc["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
    let mut p = json!({"os": parts[0], "architecture": parts[1]});
    if let Some(v) = parts.get(2) {
        p["variant"] = json!(v);
    }
    desc["platform"] = p;
    desc
}

/// Writes an OCI layout holding an index of `platforms` (or, with `single`, one image).
fn layout(dir: &Path, platforms: &[&str], single: bool) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion": "1.0.0"}"#).unwrap();
    let top = if single {
        image(dir, platforms[0])
    } else {
        let manifests: Vec<Value> = platforms.iter().map(|p| image(dir, p)).collect();
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
        let mut desc = put_blob(dir, index.to_string().as_bytes());
        desc["mediaType"] = json!("application/vnd.oci.image.index.v1+json");
        desc
    };
    let index = json!({"schemaVersion": 2, "manifests": [top]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

/// `skopeo copy --all oci:DIR docker://REF` (plain HTTP).
fn push(dir: &Path, reference: &str) {
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--all",
            "--dest-tls-verify=false",
            "--src-tls-verify=false",
        ])
        .arg(format!("oci:{}", dir.display()))
        .arg(format!("docker://{reference}"))
        .output()
        .expect("run skopeo");
    assert!(out.status.success(), "skopeo copy: {}", describe(&out));
}

fn prerequisites() -> Option<Registry> {
    require("skopeo", which("skopeo"))?;
    Registry::start()
}

const SHOP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop, namespace: prod}
spec:
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      initContainers: [{name: migrate, image: "REG/migrate:1"}]
      containers:
        - {name: shop, image: "REG/shop:1"}
        - {name: envoy, image: "REG/envoy:1"}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: prod}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: report, image: "REG/report:1"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: kube-system}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {kubernetes.io/arch: amd64}
      containers: [{name: agent, image: "REG/agent:1"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  template:
    spec:
      containers: [{name: web, image: "REG/shop:1"}]
---
apiVersion: v1
kind: Service
metadata: {name: shop, namespace: prod}
"#;

fn push_shop(registry: &str, work: &Path) {
    layout(&work.join("multi"), &["linux/amd64", "linux/arm64"], false);
    layout(
        &work.join("no-arm64"),
        &["linux/amd64", "linux/ppc64le"],
        false,
    );
    layout(&work.join("amd64"), &["linux/amd64"], true);
    push(&work.join("multi"), &format!("{registry}/shop:1"));
    push(&work.join("no-arm64"), &format!("{registry}/envoy:1"));
    for name in ["migrate", "report", "agent"] {
        push(&work.join("amd64"), &format!("{registry}/{name}:1"));
    }
}

#[test]
fn audit_finds_the_broken_sidecar_init_container_and_cronjob_and_writes_patches() {
    let Some(registry) = prerequisites() else {
        return;
    };
    let project = Project::new();
    push_shop(&registry.addr, &project.path().join("layouts"));
    project.write("shop.yaml", SHOP.replace("REG", &registry.addr));

    let out = project.archbuild(&[
        "audit",
        "shop.yaml",
        "--platform",
        "linux/amd64,linux/arm64",
        "--patches",
        "patches",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let errors: Vec<(String, String, String, String, String)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (
                s("kind"),
                s("workload"),
                s("container"),
                s("platform"),
                s("symptom"),
            )
        })
        .collect();
    let e = |k: &str, w: &str, c: &str, sym: &str| {
        (
            k.into(),
            w.into(),
            c.into(),
            "linux/arm64".into(),
            sym.into(),
        )
    };
    assert_eq!(
        errors,
        [
            e(
                "single-arch",
                "Deployment/prod/shop",
                "migrate",
                "exec format error"
            ),
            e(
                "platform-missing",
                "Deployment/prod/shop",
                "envoy",
                "no match for platform in manifest"
            ),
            e(
                "single-arch",
                "CronJob/prod/report",
                "report",
                "exec format error"
            ),
        ],
        "{}",
        describe(&out)
    );
    let findings = doc["findings"].as_array().unwrap();
    let envoy = findings.iter().find(|f| f["container"] == "envoy").unwrap();
    assert_eq!(envoy["image"], format!("{}/envoy:1", registry.addr));
    assert!(findings
        .iter()
        .any(|f| f["kind"] == "unknown-kind"
            && f["message"].as_str().unwrap().contains("kind Service")));
    let pinned = findings.iter().find(|f| f["kind"] == "pinned").unwrap();
    assert_eq!(pinned["workload"], "DaemonSet/kube-system/agent");
    assert_eq!(pinned["severity"], "info");

    // The patches: the shop and the report pinned to amd64, the web admitted to arm64.
    let patches: Vec<(String, String)> = doc["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["workload"].as_str().unwrap().into(),
                p["purpose"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        patches,
        [
            ("Deployment/prod/shop".into(), "affinity".into()),
            ("CronJob/prod/report".into(), "affinity".into()),
            ("Deployment/prod/web".into(), "toleration".into()),
        ]
    );
    assert_eq!(
        doc["patches"][0]["command"],
        "kubectl patch deployment shop -n prod --type strategic --patch-file patches/deployment_prod_shop.affinity.yaml"
    );
    let shop: k8s_openapi::api::apps::v1::Deployment = serde_yaml_ng::from_str(
        &std::fs::read_to_string(
            project
                .path()
                .join("patches/deployment_prod_shop.affinity.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let terms = shop
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .affinity
        .unwrap()
        .node_affinity
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .unwrap()
        .node_selector_terms;
    let expr = &terms[0].match_expressions.as_ref().unwrap()[0];
    assert_eq!(
        (expr.key.as_str(), expr.operator.as_str()),
        ("kubernetes.io/arch", "In")
    );
    assert_eq!(expr.values.as_deref().unwrap(), ["amd64"]);
    let report: k8s_openapi::api::batch::v1::CronJob = serde_yaml_ng::from_str(
        &std::fs::read_to_string(
            project
                .path()
                .join("patches/cronjob_prod_report.affinity.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(report
        .spec
        .unwrap()
        .job_template
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .affinity
        .is_some());
    let web: k8s_openapi::api::apps::v1::Deployment = serde_yaml_ng::from_str(
        &std::fs::read_to_string(
            project
                .path()
                .join("patches/deployment_prod_web.toleration.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let toleration = &web
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .tolerations
        .unwrap()[0];
    assert_eq!(
        toleration.key.as_deref(),
        Some("archbuild.io/arm64-migration")
    );
    assert_eq!(
        doc["taint_command"],
        "kubectl taint nodes -l kubernetes.io/arch=arm64 archbuild.io/arm64-migration=true:NoSchedule"
    );

    // An amd64-only cluster: nothing is broken.
    let out = project.archbuild(&["audit", "shop.yaml", "--platform", "linux/amd64"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[test]
fn an_unreachable_registry_for_one_image_still_audits_the_others_and_exits_2() {
    let Some(registry) = prerequisites() else {
        return;
    };
    let project = Project::new();
    push_shop(&registry.addr, &project.path().join("layouts"));
    let text = SHOP
        .replace("REG/envoy:1", "127.0.0.1:9/envoy:1")
        .replace("REG", &registry.addr);
    project.write("shop.yaml", text);
    project.write(
        "nodes.json",
        r#"{"kind": "List", "apiVersion": "v1", "items": [
        {"kind": "Node", "metadata": {"name": "x", "labels": {"kubernetes.io/arch": "amd64"}}},
        {"kind": "Node", "metadata": {"name": "g", "labels": {"kubernetes.io/arch": "arm64"}}}]}"#,
    );
    let out = project.archbuild(&["audit", "shop.yaml", "--nodes", "nodes.json", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("127.0.0.1:9/envoy:1") && stderr.contains("cannot be reached"),
        "{stderr}"
    );
    let doc: Value =
        serde_json::from_slice(&out.stdout).expect("the JSON document is still printed");
    let containers: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["container"].as_str().unwrap())
        .collect();
    assert_eq!(containers, ["migrate", "report"]);

    let out = project.archbuild(&["audit", "shop.yaml", "--nodes", "shop.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--nodes expects the output of `kubectl get nodes -o json`"));
}

/// What clients sent on each connection the proxy relayed.
type Sent = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

/// A loopback TCP proxy in front of the registry that keeps what clients send, to count the
/// requests the audit makes.
fn counting_proxy(upstream: String) -> (String, Sent) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen: Sent = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = TcpStream::connect(&upstream).unwrap();
            // Without this, Nagle and delayed ACKs add 40 ms to every relayed request.
            let _ = (server.set_nodelay(true), client.set_nodelay(true));
            let sent: Arc<Mutex<Vec<u8>>> = Arc::default();
            record.lock().unwrap().push(sent.clone());
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n @ 1..) = c_read.read(&mut buf) {
                    sent.lock().unwrap().extend_from_slice(&buf[..n]);
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
            });
        }
    });
    (addr, seen)
}

fn count(seen: &Sent, needle: &str) -> usize {
    seen.lock()
        .unwrap()
        .iter()
        .map(|c| {
            let bytes = c.lock().unwrap();
            let text = String::from_utf8_lossy(&bytes);
            text.lines()
                .filter(|l| l.starts_with("GET ") && l.contains(needle))
                .count()
        })
        .sum()
}

#[test]
fn five_hundred_workloads_of_fifty_images_fetch_each_image_once() {
    let Some(registry) = prerequisites() else {
        return;
    };
    let project = Project::new();
    let work = project.path().join("layouts");
    layout(&work.join("multi"), &["linux/amd64", "linux/arm64"], false);
    layout(&work.join("amd64"), &["linux/amd64"], true);
    for i in 0..50 {
        let kind = if i % 2 == 0 { "multi" } else { "amd64" };
        push(&work.join(kind), &format!("{}/img{i}:1", registry.addr));
    }
    let (proxy, seen) = counting_proxy(registry.addr.clone());
    let mut text = String::new();
    for w in 0..500 {
        let (a, b) = (w % 50, (w * 7 + 3) % 50);
        text.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: w{w}, namespace: perf}}\nspec:\n  template:\n    spec:\n      initContainers: [{{name: init, image: \"{proxy}/img{b}:1\"}}]\n      containers: [{{name: app, image: \"{proxy}/img{a}:1\"}}, {{name: side, image: \"{proxy}/img{b}:1\"}}]\n"
        ));
    }
    project.write("many.yaml", text);
    let started = Instant::now();
    let out = project.archbuild(&[
        "audit",
        "many.yaml",
        "--platform",
        "linux/amd64,linux/arm64",
        "--json",
    ]);
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let manifests = count(&seen, "/manifests/");
    let blobs = count(&seen, "/blobs/");
    let all = count(&seen, "");
    eprintln!(
        "{all} requests in all over {} connections",
        seen.lock().unwrap().len()
    );
    eprintln!(
        "audit of 500 workloads (1500 containers), 50 distinct images: {manifests} manifest GETs, {blobs} config GETs, {:.2}s",
        elapsed.as_secs_f64()
    );
    assert_eq!(manifests, 50, "one manifest fetch per distinct image");
    assert_eq!(
        blobs, 25,
        "one config fetch per single-arch image, none for an index"
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["workloads"], 500);
    project.write(
        "direct.yaml",
        std::fs::read_to_string(project.path().join("many.yaml"))
            .unwrap()
            .replace(&proxy, &registry.addr),
    );
    let started = Instant::now();
    let out = project.archbuild(&[
        "audit",
        "direct.yaml",
        "--platform",
        "linux/amd64,linux/arm64",
        "--json",
    ]);
    eprintln!("direct: {:.2}s", started.elapsed().as_secs_f64());
    assert_eq!(out.status.code(), Some(1));
}
