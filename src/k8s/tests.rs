use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodSpec};

use super::patch::migration_toleration;
use super::*;

fn workload(yaml: &str) -> Workload {
    let value: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
    Workload::from_value(&value).unwrap().unwrap()
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: prod}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      initContainers: [{name: migrate, image: "reg/migrate:1"}]
      containers:
        - {name: api, image: "reg/api:1"}
        - {name: envoy, image: "reg/envoy:1"}
      tolerations: [{key: dedicated, operator: Exists, effect: NoSchedule}]
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 1
              podAffinityTerm: {topologyKey: kubernetes.io/hostname}
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [a, b]}]
"#;

/// The pod spec a patch sets, read back through the kind's typed object.
fn patched_spec(kind: WorkloadKind, yaml: &str) -> PodSpec {
    fn spec_of<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }
    match kind {
        WorkloadKind::Deployment => spec_of::<Deployment>(yaml).spec.unwrap().template.spec,
        WorkloadKind::StatefulSet => spec_of::<StatefulSet>(yaml).spec.unwrap().template.spec,
        WorkloadKind::DaemonSet => spec_of::<DaemonSet>(yaml).spec.unwrap().template.spec,
        WorkloadKind::ReplicaSet => {
            spec_of::<ReplicaSet>(yaml)
                .spec
                .unwrap()
                .template
                .unwrap()
                .spec
        }
        WorkloadKind::Job => spec_of::<Job>(yaml).spec.unwrap().template.spec,
        WorkloadKind::CronJob => {
            spec_of::<CronJob>(yaml)
                .spec
                .unwrap()
                .job_template
                .spec
                .unwrap()
                .template
                .spec
        }
        WorkloadKind::Pod => spec_of::<Pod>(yaml).spec,
    }
    .unwrap_or_else(|| panic!("no pod spec in\n{yaml}"))
}

#[test]
fn reads_every_container_of_a_deployment() {
    let w = workload(DEPLOYMENT);
    assert_eq!(w.id(), "Deployment/prod/api");
    let names: Vec<_> = w
        .containers()
        .into_iter()
        .map(|c| (c.role, c.name, c.image.unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            (
                ContainerRole::Init,
                "migrate".into(),
                "reg/migrate:1".into()
            ),
            (ContainerRole::Main, "api".into(), "reg/api:1".into()),
            (ContainerRole::Main, "envoy".into(), "reg/envoy:1".into()),
        ]
    );
    assert_eq!(w.arch_pin(), None, "a zone affinity is not an arch pin");
}

#[test]
fn reads_the_pod_spec_of_every_kind() {
    let spec = "{containers: [{name: c, image: img}]}";
    let docs = [
        (WorkloadKind::StatefulSet, format!("kind: StatefulSet\nmetadata: {{name: s}}\nspec: {{template: {{spec: {spec}}}}}")),
        (WorkloadKind::DaemonSet, format!("kind: DaemonSet\nmetadata: {{name: s}}\nspec: {{template: {{spec: {spec}}}}}")),
        (WorkloadKind::ReplicaSet, format!("kind: ReplicaSet\nmetadata: {{name: s}}\nspec: {{template: {{spec: {spec}}}}}")),
        (WorkloadKind::Job, format!("kind: Job\nmetadata: {{name: s}}\nspec: {{template: {{spec: {spec}}}}}")),
        (WorkloadKind::CronJob, format!("apiVersion: batch/v1beta1\nkind: CronJob\nmetadata: {{name: s}}\nspec: {{schedule: '* * * * *', jobTemplate: {{spec: {{template: {{spec: {spec}}}}}}}}}")),
        (WorkloadKind::Pod, format!("kind: Pod\nmetadata: {{name: s, namespace: n}}\nspec: {spec}")),
    ];
    for (kind, doc) in docs {
        let w = workload(&doc);
        assert_eq!(w.kind, kind);
        assert_eq!(w.containers()[0].image.as_deref(), Some("img"), "{kind}");
    }
}

#[test]
fn unknown_kinds_and_bad_objects() {
    let svc: serde_json::Value =
        serde_yaml_ng::from_str("kind: Service\nmetadata: {name: x}").unwrap();
    assert_eq!(Workload::from_value(&svc).unwrap(), None);
    let bad: serde_json::Value =
        serde_yaml_ng::from_str("kind: Pod\nmetadata: {name: x}\nspec: {containers: 3}").unwrap();
    let err = Workload::from_value(&bad).unwrap_err().to_string();
    assert!(err.starts_with("Pod x: invalid type"), "{err}");
    let unnamed: serde_json::Value = serde_yaml_ng::from_str("kind: Pod\nspec: {}").unwrap();
    assert!(Workload::from_value(&unnamed)
        .unwrap_err()
        .to_string()
        .contains("no metadata.name"));
}

#[test]
fn node_selector_and_affinity_pins() {
    let w = workload("kind: DaemonSet\nmetadata: {name: agent, namespace: kube-system}\nspec:\n  template:\n    spec:\n      nodeSelector: {kubernetes.io/arch: amd64, disk: ssd}\n      containers: [{name: a, image: i}]\n");
    let pin = w.arch_pin().unwrap();
    assert!(pin.allows("amd64") && !pin.allows("arm64"));
    assert_eq!(pin.to_string(), "nodeSelector kubernetes.io/arch=amd64");

    let w = workload("kind: Pod\nmetadata: {name: p}\nspec:\n  containers: []\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n          - matchExpressions: [{key: kubernetes.io/arch, operator: NotIn, values: [arm64]}]\n          - matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [s390x]}]\n");
    let pin = w.arch_pin().unwrap();
    assert!(pin.allows("amd64") && pin.allows("s390x") && !pin.allows("arm64"));
    assert_eq!(
        pin.to_string(),
        "nodeAffinity kubernetes.io/arch NotIn (arm64) or kubernetes.io/arch In (s390x)"
    );
}

#[test]
fn affinity_patches_parse_back_for_every_kind_and_keep_other_terms() {
    let w = workload(DEPLOYMENT);
    let patch = affinity_patch(&w, &["amd64".into()]).unwrap();
    assert_eq!(patch.file_name, "deployment_prod_api.affinity.yaml");
    assert_eq!(
        patch.command(Some(std::path::Path::new("patches"))),
        "kubectl patch deployment api -n prod --type strategic --patch-file patches/deployment_prod_api.affinity.yaml"
    );
    assert!(patch
        .yaml
        .starts_with("# archbuild: keep Deployment/prod/api"));
    let spec = patched_spec(w.kind, &patch.yaml);
    let terms = spec
        .affinity
        .unwrap()
        .node_affinity
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .unwrap()
        .node_selector_terms;
    assert_eq!(terms.len(), 1);
    let exprs = terms[0].match_expressions.clone().unwrap();
    assert_eq!(
        exprs[0].key, "topology.kubernetes.io/zone",
        "the zone term is kept"
    );
    assert_eq!(exprs[1].key, ARCH_LABEL);
    assert_eq!(exprs[1].values.as_deref(), Some(&["amd64".to_string()][..]));
    assert!(!patch.yaml.contains("containers"), "{}", patch.yaml);
    assert!(!patch.yaml.contains("podAntiAffinity"), "{}", patch.yaml);

    for (kind, doc) in [
        (
            "CronJob",
            "spec: {jobTemplate: {spec: {template: {spec: {containers: []}}}}}",
        ),
        ("Pod", "spec: {containers: []}"),
        ("Job", "spec: {template: {spec: {containers: []}}}"),
        ("StatefulSet", "spec: {template: {spec: {containers: []}}}"),
    ] {
        let w = workload(&format!("kind: {kind}\nmetadata: {{name: x}}\n{doc}"));
        let patch = affinity_patch(&w, &["amd64".into(), "arm64".into()]).unwrap();
        let spec = patched_spec(w.kind, &patch.yaml);
        let pin = super::ArchPin::of(&spec).unwrap();
        assert!(
            pin.allows("arm64") && pin.allows("amd64") && !pin.allows("s390x"),
            "{kind}"
        );
        assert_eq!(
            patch.note.is_some(),
            kind == "Pod" || kind == "Job",
            "{kind}"
        );
    }
}

#[test]
fn a_wrong_node_selector_is_rewritten() {
    let w = workload("kind: Deployment\nmetadata: {name: x, namespace: n}\nspec: {template: {spec: {nodeSelector: {kubernetes.io/arch: arm64}, containers: []}}}");
    let patch = affinity_patch(&w, &["amd64".into()]).unwrap();
    let spec = patched_spec(w.kind, &patch.yaml);
    assert_eq!(spec.node_selector.unwrap()[ARCH_LABEL], "amd64");
    assert!(spec.affinity.is_none(), "{}", patch.yaml);
    assert!(affinity_patch(&w, &[])
        .unwrap_err()
        .to_string()
        .contains("no architecture runs"));
}

#[test]
fn toleration_patch_keeps_the_workloads_tolerations() {
    let w = workload(DEPLOYMENT);
    let patch = toleration_patch(&w).unwrap();
    assert_eq!(patch.file_name, "deployment_prod_api.toleration.yaml");
    let tolerations = patched_spec(w.kind, &patch.yaml).tolerations.unwrap();
    assert_eq!(tolerations.len(), 2);
    assert_eq!(tolerations[0].key.as_deref(), Some("dedicated"));
    assert_eq!(tolerations[1], migration_toleration());
    assert_eq!(
        taint_command(),
        "kubectl taint nodes -l kubernetes.io/arch=arm64 archbuild.io/arm64-migration=true:NoSchedule"
    );
}

fn pod(namespace: &str, name: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": "reg/x:1"}]}}}
    })
}

#[test]
fn distinct_workloads_get_distinct_patch_files() {
    // `prod-eu/api` and `prod/eu-api` once shared `deployment-prod-eu-api.affinity.yaml`.
    let a = Workload::from_value(&pod("prod-eu", "api"))
        .unwrap()
        .unwrap();
    let b = Workload::from_value(&pod("prod", "eu-api"))
        .unwrap()
        .unwrap();
    let pa = affinity_patch(&a, &["amd64".into()]).unwrap();
    let pb = affinity_patch(&b, &["amd64".into()]).unwrap();
    assert_ne!(pa.file_name, pb.file_name);
    assert_eq!(pa.file_name, "deployment_prod-eu_api.affinity.yaml");
    assert_eq!(pb.file_name, "deployment_prod_eu-api.affinity.yaml");
}

#[test]
fn names_outside_kubernetes_rules_are_refused_before_use() {
    for (namespace, name) in [
        ("prod", "../../etc/cron.d/x"),
        ("prod", "api\u{1b}]0;pwned\u{7}"),
        ("prod", "api; rm -rf /"),
        ("prod", "API"),
        ("a.b", "api"),
        ("prod/x", "api"),
    ] {
        let err = Workload::from_value(&pod(namespace, name))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("must be lowercase letters, digits"),
            "{namespace}/{name}: {err}"
        );
        assert!(
            !err.contains('\u{1b}'),
            "an escape reached the message: {err:?}"
        );
    }
}

#[test]
fn printed_commands_are_quoted_for_the_shell() {
    let w = workload(DEPLOYMENT);
    let patch = affinity_patch(&w, &["amd64".into()]).unwrap();
    let dir = std::path::Path::new("my patches/it's here");
    assert_eq!(
        patch.command(Some(dir)),
        "kubectl patch deployment api -n prod --type strategic --patch-file \"my patches/it's here/deployment_prod_api.affinity.yaml\""
    );
    // Nothing a shell would expand survives unquoted.
    let cmd = patch.command(Some(std::path::Path::new("p$(id)`x`")));
    assert!(
        cmd.ends_with("--patch-file 'p$(id)`x`/deployment_prod_api.affinity.yaml'"),
        "{cmd}"
    );
}
