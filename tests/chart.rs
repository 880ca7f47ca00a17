//! The Helm chart `charts/arnsync` and the rendered `deploy/arnsync.yaml`: lint, schema
//! validation of every rendering against the Kubernetes API schemas, the RBAC and pod settings
//! users rely on, the values schema, and drift of the generated files.
//!
//! Needs `helm` and `kubectl` in `.tools/bin/` and `kubernetes-validate` in `.venv/bin/`, all
//! installed by `bash tests/setup.sh`.
//!
//! `ARNSYNC_REGENERATE=1 cargo test --test chart` rewrites `deploy/arnsync.yaml`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml::Value;

/// Namespace of the rendered manifest and of every test rendering.
const NAMESPACE: &str = "arnsync";
/// The arnsync CRDs: SecretStore, ClusterSecretStore, ExternalSecret, ClusterExternalSecret.
const CRDS: usize = 4;
/// Kubernetes versions the renderings are validated against: the chart's minimum
/// (`kubeVersion` in Chart.yaml) and the newest that kubernetes-validate bundles here.
const KUBE_VERSIONS: [&str; 2] = ["1.29.0", "1.37.0"];

const DEPLOY_HEADER: &str = "\
# arnsync for `kubectl apply`: the Helm chart charts/arnsync rendered with its default values into
# namespace arnsync (CRDs included), after a Namespace object. Generated: do not edit.
#
# Regenerate (tests/chart.rs fails when this file drifts from the chart):
#   ARNSYNC_REGENERATE=1 cargo test --test chart
# which writes this header, the Namespace below, and the output of
#   helm template arnsync charts/arnsync --namespace arnsync --include-crds
#
# Install:
#   kubectl apply --server-side -f deploy/arnsync.yaml
---
apiVersion: v1
kind: Namespace
metadata:
  name: arnsync
  labels:
    app.kubernetes.io/name: arnsync
    app.kubernetes.io/part-of: arnsync
    pod-security.kubernetes.io/enforce: restricted
";

/// Value sets rendered by the tests besides the defaults.
const WATCH_NAMESPACE: &str = "watchNamespace: team-a\n";
const SINGLE_REPLICA: &str = "\
replicaCount: 1
leaderElection:
  enabled: false
";
const EVERYTHING_ON: &str = "\
image:
  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
serviceAccount:
  annotations:
    eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/arnsync
resources:
  requests: {cpu: 100m, memory: 128Mi}
  limits: {cpu: '1', memory: 512Mi}
extraEnv:
  - {name: AWS_REGION, value: eu-west-1}
extraArgs: [--aws-timeout, 5s]
awsPrices: secretsmanager=0.04,sqs=0
ssmHigherThroughput: true
logFormat: text
rbac:
  argoRollouts: false
serviceMonitor:
  enabled: true
  labels: {release: prometheus}
networkPolicy:
  enabled: true
  kubernetesApi:
    ports: [443]
    cidrs: [10.0.0.0/16]
  metricsFrom:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: monitoring}
tolerations:
  - {key: dedicated, operator: Equal, value: platform, effect: NoSchedule}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels: {app.kubernetes.io/name: arnsync}
extraObjects:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: arnsync-extra, namespace: arnsync}
    data: {note: extra}
";
const EXISTING_ACCOUNT_NO_PDB: &str = "\
podDisruptionBudget:
  enabled: false
serviceAccount:
  create: false
  name: platform-arnsync
rbac:
  create: false
";

fn value_sets() -> [(&'static str, &'static str); 5] {
    [
        ("default", ""),
        ("watchNamespace", WATCH_NAMESPACE),
        ("single replica without leader election", SINGLE_REPLICA),
        (
            "ServiceMonitor + NetworkPolicy + IRSA + resources",
            EVERYTHING_ON,
        ),
        (
            "existing service account, no PDB, no RBAC",
            EXISTING_ACCOUNT_NO_PDB,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Tools and rendering

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    root().join("charts/arnsync")
}

fn tool(relative: &str) -> PathBuf {
    let path = root().join(relative);
    assert!(
        path.is_file(),
        "{} is missing: run `bash tests/setup.sh` (installs helm, kubectl and kubernetes-validate)",
        path.display()
    );
    path
}

fn helm() -> Command {
    let mut cmd = Command::new(tool(".tools/bin/helm"));
    // Keep helm away from the user's repositories, plugins and caches.
    let home = std::env::temp_dir().join("arnsync-chart-test-helm");
    cmd.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .current_dir(root());
    cmd
}

fn run(mut cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.output()
        .unwrap_or_else(|e| panic!("could not run {shown}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn values_file(dir: &tempfile::TempDir, values: &str) -> PathBuf {
    let path = dir.path().join("values.yaml");
    std::fs::write(&path, values).expect("write values file");
    path
}

/// `helm template arnsync charts/arnsync --namespace arnsync --include-crds [-f values]`.
fn template(values: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = helm();
    cmd.args([
        "template",
        "arnsync",
        "charts/arnsync",
        "--namespace",
        NAMESPACE,
    ])
    .arg("--include-crds");
    if !values.is_empty() {
        cmd.arg("--values").arg(values_file(&dir, values));
    }
    run(cmd)
}

fn render(values: &str) -> String {
    let out = template(values);
    assert!(
        out.status.success(),
        "helm template failed with values:\n{values}\n{}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

fn namespace(doc: &Value) -> &str {
    doc["metadata"]["namespace"].as_str().unwrap_or("")
}

fn of_kind<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

fn one<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    let found = of_kind(docs, k);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {k}, found {}: {:?}",
        found.len(),
        found.iter().map(|d| name(d)).collect::<Vec<_>>()
    );
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| x.as_str().expect("string item").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn container(docs: &[Value]) -> &Value {
    let containers = &one(docs, "Deployment")["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        containers.as_sequence().map(Vec::len),
        Some(1),
        "one container"
    );
    &containers[0]
}

fn args(docs: &[Value]) -> Vec<String> {
    strings(&container(docs)["args"])
}

/// True when `needle` appears in `hay` as a contiguous run.
fn has_run(hay: &[String], needle: &[&str]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.iter().zip(needle).all(|(a, b)| a == b))
}

type Rules = BTreeMap<(String, String), BTreeSet<String>>;

/// RBAC rules as (apiGroup, resource) → verbs; fails on wildcards and resourceNames.
fn rules(role: &Value) -> Rules {
    let mut out = Rules::new();
    for rule in role["rules"].as_sequence().expect("rules") {
        let groups = strings(&rule["apiGroups"]);
        let resources = strings(&rule["resources"]);
        let verbs = strings(&rule["verbs"]);
        for list in [&groups, &resources, &verbs] {
            assert!(
                !list.iter().any(|x| x.contains('*')),
                "{} {} has a wildcard: {rule:?}",
                kind(role),
                name(role)
            );
        }
        assert!(
            rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none(),
            "unexpected rule shape: {rule:?}"
        );
        for g in &groups {
            for r in &resources {
                out.entry((g.clone(), r.clone()))
                    .or_default()
                    .extend(verbs.iter().cloned());
            }
        }
    }
    out
}

fn expected_rules(cluster: bool, argo: bool) -> Rules {
    let read = ["get", "list", "watch"].as_slice();
    let status = ["get", "patch", "update"].as_slice();
    let mut kinds = vec!["externalsecrets", "secretstores"];
    if cluster {
        kinds.push("clustersecretstores");
        kinds.push("clusterexternalsecrets");
    }
    let mut want: Vec<(&str, String, &[&str])> = vec![];
    for k in &kinds {
        want.push(("arnsync.io", k.to_string(), read));
        want.push(("arnsync.io", format!("{k}/status"), status));
    }
    want.push((
        "arnsync.io",
        "externalsecrets/finalizers".into(),
        &["update"],
    ));
    if cluster {
        want.push((
            "arnsync.io",
            "clusterexternalsecrets/finalizers".into(),
            &["update"],
        ));
        // ClusterExternalSecrets write ExternalSecrets (this entry replaces the read-only one).
        want.push((
            "arnsync.io",
            "externalsecrets".into(),
            &["get", "list", "watch", "create", "patch", "delete"],
        ));
    }
    want.push((
        "",
        "secrets".into(),
        &[
            "get", "list", "watch", "create", "patch", "update", "delete",
        ],
    ));
    // templateFrom reads ConfigMaps; auth.jwt reads ServiceAccounts and asks for their tokens.
    want.push(("", "configmaps".into(), &["get"]));
    want.push(("", "serviceaccounts".into(), read));
    want.push(("", "serviceaccounts/token".into(), &["create"]));
    if cluster {
        want.push(("", "namespaces".into(), read));
    }
    want.push(("", "events".into(), &["create", "patch"]));
    want.push(("events.k8s.io", "events".into(), &["create", "patch"]));
    for w in ["deployments", "statefulsets", "daemonsets"] {
        want.push(("apps", w.into(), &["get", "list", "watch", "patch"]));
    }
    if argo {
        want.push((
            "argoproj.io",
            "rollouts".into(),
            &["get", "list", "watch", "patch"],
        ));
    }
    want.into_iter()
        .map(|(g, r, v)| {
            (
                (g.to_string(), r),
                v.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect()
}

fn lease_rules() -> Rules {
    [(
        ("coordination.k8s.io".to_string(), "leases".to_string()),
        ["get", "create", "update", "patch"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )]
    .into_iter()
    .collect()
}

fn subject_is_operator(binding: &Value, account: &str) {
    let subjects = binding["subjects"].as_sequence().expect("subjects");
    assert_eq!(subjects.len(), 1, "{}: {subjects:?}", name(binding));
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], account, "{}", name(binding));
    assert_eq!(subjects[0]["namespace"], NAMESPACE, "{}", name(binding));
}

// ---------------------------------------------------------------------------------------------
// Lint and schema validation

#[test]
fn helm_lint_strict_passes_for_every_value_set() {
    for (label, values) in value_sets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = helm();
        cmd.args([
            "lint",
            "--strict",
            "charts/arnsync",
            "--namespace",
            NAMESPACE,
        ]);
        if !values.is_empty() {
            cmd.arg("--values").arg(values_file(&dir, values));
        }
        let out = run(cmd);
        assert!(
            out.status.success(),
            "helm lint --strict failed ({label}):\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

/// Runs kubernetes-validate --strict over `docs` (one file) for every version in
/// KUBE_VERSIONS and requires an INFO "passed" line per document and version: an unknown kind
/// prints only a WARN and exits 0, so the exit code alone proves nothing.
fn kubernetes_validate(label: &str, docs: &[Value]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rendered.yaml");
    let mut yaml = String::new();
    for d in docs {
        yaml.push_str("---\n");
        yaml.push_str(&serde_yaml::to_string(d).expect("serialize"));
    }
    std::fs::write(&path, yaml).expect("write rendering");
    let mut cmd = Command::new(tool(".venv/bin/kubernetes-validate"));
    cmd.arg("--strict");
    for v in KUBE_VERSIONS {
        cmd.args(["--kubernetes-version", v]);
    }
    cmd.arg(&path);
    let out = run(cmd);
    let stdout = text(&out.stdout);
    let passed = stdout
        .lines()
        .filter(|l| l.starts_with("INFO") && l.contains(" passed for resource "))
        .count();
    assert!(
        out.status.success() && passed == docs.len() * KUBE_VERSIONS.len(),
        "kubernetes-validate --strict ({label}): {passed} of {} checks passed\n{stdout}{}",
        docs.len() * KUBE_VERSIONS.len(),
        text(&out.stderr)
    );
}

#[test]
fn every_rendering_validates_against_the_kubernetes_schemas() {
    for (label, values) in value_sets() {
        let docs = documents(&render(values));
        // ServiceMonitor is a Prometheus Operator CRD kind kubernetes-validate has no schema
        // for; it is checked field by field in `optional_objects_render_when_enabled`.
        let (monitors, rest): (Vec<Value>, Vec<Value>) =
            docs.into_iter().partition(|d| kind(d) == "ServiceMonitor");
        for m in &monitors {
            assert_eq!(m["apiVersion"], "monitoring.coreos.com/v1", "{label}");
        }
        assert!(
            of_kind(&rest, "CustomResourceDefinition").len() == CRDS,
            "{label}: every CRD is rendered with --include-crds"
        );
        kubernetes_validate(label, &rest);
    }
    let deploy = std::fs::read_to_string(root().join("deploy/arnsync.yaml"))
        .expect("read deploy/arnsync.yaml");
    kubernetes_validate("deploy/arnsync.yaml", &documents(&deploy));
}

#[test]
fn cost_estimate_prices_become_run_flags() {
    let a = args(&documents(&render("")));
    assert!(
        !a.iter()
            .any(|x| x == "--aws-prices" || x == "--ssm-higher-throughput"),
        "the defaults need no flags: {a:?}"
    );
    let a = args(&documents(&render(
        "awsPrices: secretsmanager=0.04,sqs=0\nssmHigherThroughput: true\n",
    )));
    assert!(
        has_run(&a, &["--aws-prices", "secretsmanager=0.04,sqs=0"]),
        "{a:?}"
    );
    assert!(has_run(&a, &["--ssm-higher-throughput"]), "{a:?}");
}

#[test]
fn values_schema_rejects_unknown_keys_and_wrong_types() {
    let cases = [
        ("unknown top-level key", "replicas: 2\n", "replicas"),
        ("wrong type", "replicaCount: two\n", "replicaCount"),
        ("unknown nested key", "image:\n  tagg: v1\n", "tagg"),
        (
            "wrong nested type",
            "leaderElection:\n  enabled: \"yes\"\n",
            "enabled",
        ),
        (
            "bad duration",
            "restartDebounce: 5 seconds\n",
            "restartDebounce",
        ),
        ("bad enum", "logFormat: yaml\n", "logFormat"),
        ("bad prices", "awsPrices: cheap\n", "awsPrices"),
    ];
    for (label, values, mentioned) in cases {
        let out = template(values);
        let stderr = text(&out.stderr);
        assert!(
            !out.status.success(),
            "helm template accepted {label}:\n{values}"
        );
        assert!(
            stderr.contains("schema") && stderr.contains(mentioned),
            "{label}: the error should come from values.schema.json and name {mentioned:?}:\n{stderr}"
        );
    }
}

#[test]
fn several_replicas_without_leader_election_are_refused() {
    let out = template("leaderElection:\n  enabled: false\n");
    assert!(
        !out.status.success(),
        "2 replicas without leader election rendered"
    );
    assert!(
        text(&out.stderr).contains("leaderElection.enabled"),
        "{}",
        text(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// What users rely on

#[test]
fn default_rbac_is_cluster_wide_least_privilege_plus_a_lease_role() {
    let docs = documents(&render(""));
    let cluster_role = one(&docs, "ClusterRole");
    assert_eq!(
        rules(cluster_role),
        expected_rules(true, true),
        "ClusterRole rules"
    );
    let binding = one(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], name(cluster_role));
    subject_is_operator(binding, "arnsync");

    // The only namespaced Role: leases, in the release namespace.
    let role = one(&docs, "Role");
    assert_eq!(namespace(role), NAMESPACE);
    assert_eq!(rules(role), lease_rules(), "leader-election Role rules");
    let rb = one(&docs, "RoleBinding");
    assert_eq!(namespace(rb), NAMESPACE);
    assert_eq!(rb["roleRef"]["name"], name(role));
    subject_is_operator(rb, "arnsync");

    // Argo Rollouts can be left out.
    let docs = documents(&render("rbac:\n  argoRollouts: false\n"));
    assert_eq!(
        rules(one(&docs, "ClusterRole")),
        expected_rules(true, false)
    );
}

#[test]
fn watch_namespace_mode_renders_only_namespaced_roles() {
    let docs = documents(&render(WATCH_NAMESPACE));
    assert!(
        of_kind(&docs, "ClusterRole").is_empty() && of_kind(&docs, "ClusterRoleBinding").is_empty(),
        "watchNamespace mode must not render cluster-wide RBAC"
    );
    let roles = of_kind(&docs, "Role");
    let watched: Vec<_> = roles.iter().filter(|r| namespace(r) == "team-a").collect();
    assert_eq!(watched.len(), 1, "one Role in team-a");
    assert_eq!(
        rules(watched[0]),
        expected_rules(false, true),
        "team-a Role"
    );
    let leases: Vec<_> = roles.iter().filter(|r| namespace(r) == NAMESPACE).collect();
    assert_eq!(leases.len(), 1, "one Role in the release namespace");
    assert_eq!(rules(leases[0]), lease_rules());
    assert_eq!(roles.len(), 2, "no other Roles");

    let bindings = of_kind(&docs, "RoleBinding");
    assert_eq!(bindings.len(), 2);
    for b in bindings {
        assert_eq!(b["roleRef"]["kind"], "Role");
        subject_is_operator(b, "arnsync");
    }
    assert!(
        has_run(&args(&docs), &["--namespace", "team-a"]),
        "{:?}",
        args(&docs)
    );
}

#[test]
fn leader_election_is_on_by_default_and_off_with_one_replica() {
    let docs = documents(&render(""));
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let a = args(&docs);
    assert_eq!(a[0], "run", "{a:?}");
    for run in [
        &["--metrics-addr", "0.0.0.0:8080"][..],
        &["--log-format", "json"],
        &["--rotation-check-interval", "60s"],
        &["--restart-debounce", "5s"],
        &[
            "--leader-election",
            "--leader-election-namespace",
            NAMESPACE,
            "--leader-election-id",
            "arnsync",
            "--lease-duration",
            "15s",
        ],
    ] {
        assert!(has_run(&a, run), "missing {run:?} in {a:?}");
    }
    assert!(!a.iter().any(|x| x == "--namespace"), "{a:?}");
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );

    let docs = documents(&render(SINGLE_REPLICA));
    assert_eq!(one(&docs, "Deployment")["spec"]["replicas"], 1);
    let a = args(&docs);
    assert!(
        !a.iter()
            .any(|x| x.starts_with("--leader-election") || x == "--lease-duration"),
        "leader election flags with leaderElection.enabled=false: {a:?}"
    );
    assert!(
        of_kind(&docs, "PodDisruptionBudget").is_empty(),
        "no PDB with one replica"
    );
    assert!(
        of_kind(&docs, "Role").is_empty(),
        "no lease Role without leader election"
    );
}

#[test]
fn pod_is_hardened_and_probed() {
    let docs = documents(&render(""));
    let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "arnsync");
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );

    let c = container(&docs);
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{sc:?}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{sc:?}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{sc:?}");
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{sc:?}");
    assert!(sc["capabilities"].get("add").is_none(), "{sc:?}");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{sc:?}");

    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml parses");
    assert_eq!(
        chart["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "Chart.yaml appVersion should be the crate version"
    );
    assert_eq!(
        c["image"],
        format!("ghcr.io/arnsync/arnsync:{}", env!("CARGO_PKG_VERSION"))
    );

    assert_eq!(c["ports"][0]["name"], "http-metrics");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "http-metrics", "{probe}");
    }
    assert!(
        c["resources"]["requests"]["memory"].is_string()
            && c["resources"]["limits"]["memory"].is_string(),
        "memory request and limit: {:?}",
        c["resources"]
    );
    let env = c["env"].as_sequence().expect("env");
    for (var, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let e = env
            .iter()
            .find(|e| e["name"] == var)
            .unwrap_or_else(|| panic!("env {var} missing"));
        assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], field, "{var}");
    }

    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http-metrics");
    assert_eq!(
        service["spec"]["selector"],
        one(&docs, "Deployment")["spec"]["selector"]["matchLabels"]
    );
    let sa = one(&docs, "ServiceAccount");
    assert_eq!((name(sa), namespace(sa)), ("arnsync", NAMESPACE));
    for doc in &docs {
        let cluster_scoped = matches!(
            kind(doc),
            "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding"
        );
        assert_eq!(
            namespace(doc).is_empty(),
            cluster_scoped,
            "{} {} namespace: kubectl apply users need it set on namespaced objects",
            kind(doc),
            name(doc)
        );
    }
    assert!(
        of_kind(&docs, "ServiceMonitor").is_empty() && of_kind(&docs, "NetworkPolicy").is_empty(),
        "ServiceMonitor and NetworkPolicy are opt-in"
    );
}

#[test]
fn optional_objects_render_when_enabled() {
    let docs = documents(&render(EVERYTHING_ON));
    let c = container(&docs);
    assert_eq!(
        c["image"],
        "ghcr.io/arnsync/arnsync@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
    let a = args(&docs);
    assert!(has_run(&a, &["--aws-timeout", "5s"]), "{a:?}");
    assert!(has_run(&a, &["--log-format", "text"]), "{a:?}");
    assert!(
        c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "AWS_REGION"),
        "extraEnv"
    );
    assert_eq!(
        one(&docs, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/arnsync"
    );
    assert!(!rules(one(&docs, "ClusterRole"))
        .keys()
        .any(|(g, _)| g == "argoproj.io"));
    assert_eq!(one(&docs, "ConfigMap")["data"]["note"], "extra");

    // ServiceMonitor: scrapes the metrics Service's named port.
    let service = one(&docs, "Service");
    let monitor = one(&docs, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(namespace(monitor), NAMESPACE);
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .expect("ServiceMonitor selector");
    for (k, v) in selector {
        assert_eq!(
            &service["metadata"]["labels"][k], v,
            "ServiceMonitor selector {k:?} does not match the Service"
        );
    }
    assert_eq!(
        strings(&monitor["spec"]["namespaceSelector"]["matchNames"]),
        [NAMESPACE]
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(endpoint["path"], "/metrics");

    // NetworkPolicy: ingress to metrics only; egress to DNS, the API server and HTTPS.
    let np = one(&docs, "NetworkPolicy");
    assert_eq!(strings(&np["spec"]["policyTypes"]), ["Ingress", "Egress"]);
    let ingress = np["spec"]["ingress"].as_sequence().expect("ingress");
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0]["ports"][0]["port"], "http-metrics");
    assert_eq!(
        ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    let egress = np["spec"]["egress"].as_sequence().expect("egress");
    let allows = |port: u64, proto: &str, cidr: Option<&str>| {
        egress.iter().any(|rule| {
            let port_ok = rule["ports"].as_sequence().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["port"].as_u64() == Some(port) && p["protocol"] == proto)
            });
            let to_ok = match cidr {
                None => rule.get("to").is_none(),
                Some(c) => rule["to"]
                    .as_sequence()
                    .is_some_and(|to| to.iter().any(|t| t["ipBlock"]["cidr"] == c)),
            };
            port_ok && to_ok
        })
    };
    assert!(allows(53, "UDP", None), "DNS over UDP: {egress:?}");
    assert!(allows(53, "TCP", None), "DNS over TCP: {egress:?}");
    assert!(
        allows(443, "TCP", Some("10.0.0.0/16")),
        "Kubernetes API: {egress:?}"
    );
    assert!(allows(443, "TCP", Some("0.0.0.0/0")), "HTTPS: {egress:?}");
    assert_eq!(egress.len(), 3, "no other egress: {egress:?}");
}

#[test]
fn existing_service_account_without_pdb_or_rbac() {
    let docs = documents(&render(EXISTING_ACCOUNT_NO_PDB));
    assert!(of_kind(&docs, "ServiceAccount").is_empty());
    assert_eq!(
        one(&docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
        "platform-arnsync"
    );
    for k in [
        "PodDisruptionBudget",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ] {
        assert!(of_kind(&docs, k).is_empty(), "{k} rendered");
    }
    let out = template("serviceAccount:\n  create: false\n");
    assert!(
        !out.status.success() && text(&out.stderr).contains("serviceAccount.name"),
        "serviceAccount.create=false without a name must fail: {}",
        text(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Generated files

#[test]
fn chart_crds_match_the_generated_crds() {
    let generated =
        std::fs::read_to_string(root().join("crds/arnsync.io.yaml")).expect("crds/arnsync.io.yaml");
    let chart = std::fs::read_to_string(chart_dir().join("crds/arnsync.io.yaml"))
        .expect("charts/arnsync/crds/arnsync.io.yaml");
    assert!(
        chart == generated,
        "charts/arnsync/crds/arnsync.io.yaml differs from crds/arnsync.io.yaml: run \
         `cp crds/arnsync.io.yaml charts/arnsync/crds/arnsync.io.yaml`, then \
         `ARNSYNC_REGENERATE=1 cargo test --test chart`"
    );
    let names: Vec<_> = std::fs::read_dir(chart_dir().join("crds"))
        .expect("charts/arnsync/crds")
        .map(|e| e.expect("dir entry").file_name())
        .collect();
    assert_eq!(
        names,
        ["arnsync.io.yaml"],
        "charts/arnsync/crds holds only the generated file"
    );
}

#[test]
fn deploy_manifest_is_the_default_rendering() {
    let fresh = format!("{DEPLOY_HEADER}{}", render(""));
    let path = root().join("deploy/arnsync.yaml");
    if std::env::var_os("ARNSYNC_REGENERATE").is_some() {
        // Write then rename, so that tests reading the file at the same time see a whole one.
        let tmp = path.with_extension("yaml.tmp");
        std::fs::write(&tmp, &fresh).expect("write deploy/arnsync.yaml.tmp");
        std::fs::rename(&tmp, &path).expect("replace deploy/arnsync.yaml");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "deploy/arnsync.yaml is out of date: run `ARNSYNC_REGENERATE=1 cargo test --test chart`"
    );
    let docs = documents(&committed);
    let ns = &docs[0];
    assert_eq!((kind(ns), name(ns)), ("Namespace", NAMESPACE));
}

/// kubectl against one Kubernetes test server, with a kubeconfig and cache of its own.
struct Kubectl {
    server: kube_test_server::TestServer,
    kubectl: PathBuf,
    dir: tempfile::TempDir,
}

impl Kubectl {
    async fn start() -> Kubectl {
        let server = kube_test_server::TestServer::start()
            .await
            .expect("start the Kubernetes test server");
        let dir = tempfile::tempdir().expect("tempdir");
        server
            .write_kubeconfig(&dir.path().join("kubeconfig"))
            .expect("write kubeconfig");
        Kubectl {
            server,
            kubectl: tool(".tools/bin/kubectl"),
            dir,
        }
    }

    /// A server with arnsync's CRDs installed from crds/arnsync.io.yaml.
    async fn with_arnsync_crds() -> Kubectl {
        let k = Kubectl::start().await;
        let crds = std::fs::read_to_string(root().join("crds/arnsync.io.yaml")).expect("CRDs");
        k.apply("crds.yaml", &documents(&crds).iter().collect::<Vec<_>>())
            .await;
        k
    }

    /// Writes `manifest` into the scratch folder; returns its path.
    fn file(&self, name: &str, manifest: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, manifest).expect("write manifest");
        path.display().to_string()
    }

    /// Runs kubectl; panics with its output when it fails.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args);
        tokio::task::spawn_blocking(move || run(cmd))
            .await
            .expect("kubectl task")
    }

    /// Writes `docs` to a file and `kubectl apply --server-side`s it.
    async fn apply(&self, file: &str, docs: &[&Value]) -> String {
        let mut yaml = String::new();
        for d in docs {
            yaml.push_str("---\n");
            yaml.push_str(&serde_yaml::to_string(d).expect("serialize"));
        }
        let path = self.dir.path().join(file);
        std::fs::write(&path, yaml).expect("write manifest");
        let out = self
            .ok(&["apply", "--server-side", "-f", &path.display().to_string()])
            .await;
        for d in docs {
            assert!(
                out.contains(name(d)),
                "kubectl did not apply {} {}:\n{out}",
                kind(d),
                name(d)
            );
        }
        out
    }

    /// Installs a rendering as a user would: CRDs first (the API server must accept them),
    /// then everything else into its namespaces.
    async fn install(&self, docs: &[Value]) {
        let (crds, rest): (Vec<&Value>, Vec<&Value>) = docs
            .iter()
            .partition(|d| kind(d) == "CustomResourceDefinition");
        assert_eq!(crds.len(), CRDS, "the rendering carries every CRD");
        self.apply("crds.yaml", &crds).await;
        for crd in &crds {
            self.ok(&[
                "wait",
                "--for",
                "condition=established",
                &format!("crd/{}", name(crd)),
                "--timeout=20s",
            ])
            .await;
        }
        // Namespaces the rendering does not create itself (`helm install --create-namespace`).
        let missing: Vec<Value> = rest
            .iter()
            .map(|d| namespace(d))
            .filter(|ns| !ns.is_empty())
            .filter(|ns| {
                !docs
                    .iter()
                    .any(|d| kind(d) == "Namespace" && name(d) == *ns)
            })
            .collect::<BTreeSet<&str>>()
            .into_iter()
            .map(|ns| {
                serde_yaml::from_str(&format!(
                    "{{apiVersion: v1, kind: Namespace, metadata: {{name: {ns}}}}}"
                ))
                .expect("namespace document")
            })
            .collect();
        let mut all: Vec<&Value> = missing.iter().collect();
        all.extend(rest);
        self.apply("objects.yaml", &all).await;
    }
}

/// The Prometheus operator's ServiceMonitor kind, as present on clusters that enable the chart's
/// `serviceMonitor` (its schema is not ours to check).
const SERVICE_MONITOR_CRD: &str = "
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {plural: servicemonitors, singular: servicemonitor, kind: ServiceMonitor, listKind: ServiceMonitorList}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
";

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_applies_the_deploy_manifest_and_the_examples() {
    let k = Kubectl::start().await;
    let deploy = std::fs::read_to_string(root().join("deploy/arnsync.yaml"))
        .expect("read deploy/arnsync.yaml");
    k.install(&documents(&deploy)).await;
    let crds = k.ok(&["get", "crd", "-o", "name"]).await;
    for crd in [
        "externalsecrets.arnsync.io",
        "secretstores.arnsync.io",
        "clustersecretstores.arnsync.io",
    ] {
        assert!(crds.contains(crd), "{crd} not served:\n{crds}");
    }
    let image = k
        .ok(&[
            "get",
            "deployment",
            "arnsync",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await;
    assert_eq!(
        image,
        format!("ghcr.io/arnsync/arnsync:{}", env!("CARGO_PKG_VERSION"))
    );
    // The example manifests apply on top of the installed CRDs.
    let examples = root().join("deploy/examples").display().to_string();
    let out = k.ok(&["apply", "--server-side", "-f", &examples]).await;
    assert!(out.contains("externalsecret"), "{out}");
    k.server.shutdown().await;
}

/// Every rendering of the chart installs (CRDs first) on the Kubernetes test server, which
/// refuses CRDs as kube-apiserver does (CEL cost budget, structural schema): a CRD that a real
/// cluster would refuse fails CI here.
#[tokio::test(flavor = "multi_thread")]
async fn every_rendering_installs_crds_first() {
    for (label, values) in value_sets() {
        let k = Kubectl::start().await;
        let docs = documents(&render(values));
        if docs.iter().any(|d| kind(d) == "ServiceMonitor") {
            let crd = documents(SERVICE_MONITOR_CRD);
            k.apply("servicemonitor-crd.yaml", &crd.iter().collect::<Vec<_>>())
                .await;
        }
        k.install(&docs).await;
        let listed = k.ok(&["get", "deployments", "-A", "-o", "name"]).await;
        assert!(
            listed.contains("deployment.apps/arnsync"),
            "{label}: {listed}"
        );
        k.server.shutdown().await;
    }
}

/// A store for a provider arnsync does not read (here ESO's Vault provider) is refused at
/// `kubectl apply` (kubectl asks for strict field validation), naming the field, as a real API
/// server refuses it; nothing is stored.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_refuses_a_store_of_another_provider_naming_the_field() {
    let k = Kubectl::with_arnsync_crds().await;
    let store = "\
apiVersion: arnsync.io/v1alpha1
kind: SecretStore
metadata: {name: vault, namespace: default}
spec:
  provider:
    aws: {service: SecretsManager, region: eu-west-1}
    vault: {server: 'https://vault.example', path: secret}
";
    let file = k.file("store.yaml", store);
    // Client-side apply gets the strict decoding error; server-side apply the typed-patch
    // error a real server gives for a field its schema does not declare.
    for (args, expected) in [
        (
            vec!["apply", "-f", file.as_str()],
            r#"unknown field "spec.provider.vault""#,
        ),
        (
            vec!["apply", "--server-side", "-f", file.as_str()],
            ".spec.provider.vault: field not declared in schema",
        ),
    ] {
        let out = k.run(&args).await;
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let listed = k.ok(&["get", "secretstores", "-A", "-o", "name"]).await;
    assert!(listed.trim().is_empty(), "nothing stored: {listed}");
    k.server.shutdown().await;
}

/// ESO fields arnsync declares only to refuse them are refused by the API server at `kubectl
/// apply`, naming them (not pruned, which would drop them silently); nothing is stored.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_refuses_declared_but_unsupported_eso_fields_by_name() {
    let k = Kubectl::with_arnsync_crds().await;
    let docs = [
        (
            "\
apiVersion: arnsync.io/v1alpha1
kind: ExternalSecret
metadata: {name: windows, namespace: default}
spec:
  secretStoreRef: {name: aws}
  syncWindows: {kind: Allow, windows: [{schedule: '* * * * *', duration: 1h}]}
  target: {template: {metadata: {finalizers: [example.com/keep]}}}
  data: [{secretKey: a, remoteRef: {key: k}}]
",
            &[
                "spec.syncWindows is not supported",
                "target.template.metadata.finalizers is not supported",
            ][..],
        ),
        (
            "\
apiVersion: arnsync.io/v1alpha1
kind: SecretStore
metadata: {name: tags, namespace: default}
spec:
  provider:
    aws: {service: SecretsManager, region: eu-west-1, sessionTagsPolicy: Custom, customSessionTags: {team: a}}
",
            &["sessionTagsPolicy and customSessionTags are not supported"][..],
        ),
    ];
    for (i, (doc, expected)) in docs.iter().enumerate() {
        let file = k.file(&format!("doc{i}.yaml"), doc);
        let out = k
            .run(&["apply", "--server-side", "-f", file.as_str()])
            .await;
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{doc} was accepted");
        for e in *expected {
            assert!(stderr.contains(e), "{e:?} not in: {stderr}");
        }
    }
    let listed = k
        .ok(&["get", "externalsecrets,secretstores", "-A", "-o", "name"])
        .await;
    assert!(listed.trim().is_empty(), "nothing stored: {listed}");
    k.server.shutdown().await;
}

/// The documented limits are what the API server enforces: one `data` entry too many, or a key
/// one character too long, is refused at `kubectl apply` with the field and the limit.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_refuses_an_external_secret_over_the_documented_limits() {
    let k = Kubectl::with_arnsync_crds().await;
    let es = |entries: usize, key_len: usize| {
        let data: Vec<String> = (0..entries)
            .map(|i| {
                format!(
                    "  - {{secretKey: k{i}, remoteRef: {{key: {}}}}}",
                    "k".repeat(key_len)
                )
            })
            .collect();
        format!(
            "apiVersion: arnsync.io/v1alpha1\nkind: ExternalSecret\nmetadata: {{name: big, namespace: default}}\nspec:\n  secretStoreRef: {{name: aws}}\n  data:\n{}\n",
            data.join("\n")
        )
    };
    for (manifest, expected) in [
        (
            es(1001, 10),
            "spec.data: Too many: 1001: must have at most 1000 items",
        ),
        (
            es(1, 2049),
            "spec.data[0].remoteRef.key: Too long: may not be more than 2048 bytes",
        ),
    ] {
        let file = k.file("es.yaml", &manifest);
        let out = k.run(&["apply", "--server-side", "-f", &file]).await;
        let stderr = text(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expected),
            "{stderr}"
        );
    }
    let file = k.file("es.yaml", &es(1000, 2048));
    k.ok(&["apply", "--server-side", "-f", &file]).await;
    k.server.shutdown().await;
}

/// `failoverRegions` is bounded and checked by the API server at `kubectl apply`: at most five
/// regions, none empty, none twice, and not the primary; five distinct replicas are accepted.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_refuses_failover_regions_over_their_limits() {
    let k = Kubectl::with_arnsync_crds().await;
    let store = |regions: &str| {
        format!(
            "apiVersion: arnsync.io/v1alpha1\nkind: SecretStore\nmetadata: {{name: dr, namespace: default}}\nspec:\n  provider:\n    aws: {{service: SecretsManager, region: us-east-1, failoverRegions: [{regions}]}}\n"
        )
    };
    for (regions, expected) in [
        (
            "a, b, c, d, e, f",
            "spec.provider.aws.failoverRegions: Too many: 6: must have at most 5 items",
        ),
        ("''", "should be at least 1 chars long"),
        (
            "us-west-2, us-west-2",
            "provider.aws.failoverRegions must not repeat a region",
        ),
        (
            "us-east-1",
            "provider.aws.failoverRegions must not list provider.aws.region itself",
        ),
    ] {
        let file = k.file("store.yaml", &store(regions));
        let out = k.run(&["apply", "--server-side", "-f", &file]).await;
        let stderr = text(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expected),
            "[{regions}]: {stderr}"
        );
    }
    let listed = k.ok(&["get", "secretstores", "-A", "-o", "name"]).await;
    assert!(listed.trim().is_empty(), "nothing stored: {listed}");
    let file = k.file(
        "store.yaml",
        &store("us-west-2, us-west-1, eu-west-1, eu-central-1, ap-south-1"),
    );
    k.ok(&["apply", "--server-side", "-f", &file]).await;
    k.server.shutdown().await;
}

/// `helm install --create-namespace` and `helm uninstall` against the test server, as a user
/// runs them: the CRDs are accepted and installed first, the release is stored, and uninstall
/// removes the workload but keeps the CRDs (Helm never deletes them).
#[tokio::test(flavor = "multi_thread")]
async fn helm_installs_and_uninstalls_on_the_test_server() {
    let k = Kubectl::start().await;
    let kubeconfig = k.dir.path().join("kubeconfig");
    let helm_run = |args: Vec<&'static str>| {
        let mut cmd = helm();
        cmd.env("KUBECONFIG", &kubeconfig).args(&args);
        async move {
            let out = tokio::task::spawn_blocking(move || run(cmd))
                .await
                .expect("helm task");
            assert!(
                out.status.success(),
                "helm {args:?} failed:\n{}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
    };
    helm_run(vec![
        "install",
        "arnsync",
        "charts/arnsync",
        "--namespace",
        NAMESPACE,
        "--create-namespace",
    ])
    .await;
    let crds = k.ok(&["get", "crd", "-o", "name"]).await;
    assert_eq!(crds.matches("arnsync.io").count(), CRDS, "{crds}");
    k.ok(&["get", "deployment", "arnsync", "-n", NAMESPACE])
        .await;
    helm_run(vec!["uninstall", "arnsync", "--namespace", NAMESPACE]).await;
    let deployments = k
        .ok(&["get", "deployments", "-n", NAMESPACE, "-o", "name"])
        .await;
    assert!(deployments.trim().is_empty(), "{deployments}");
    let crds = k.ok(&["get", "crd", "-o", "name"]).await;
    assert_eq!(
        crds.matches("arnsync.io").count(),
        CRDS,
        "CRDs kept: {crds}"
    );
    k.server.shutdown().await;
}

/// The binary parses the arguments every rendering passes (flag names and values: durations,
/// addresses, log format): `arnsync <rendered args> --help` parses everything before `--help`
/// and exits 0 only when all of it is valid.
#[test]
fn arnsync_accepts_the_arguments_the_chart_passes() {
    for (label, values) in value_sets() {
        let rendered = args(&documents(&render(values)));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_arnsync"));
        cmd.args(&rendered).arg("--help");
        let out = run(cmd);
        assert!(
            out.status.success(),
            "arnsync rejects the arguments rendered for {label}: {rendered:?}\n{}",
            text(&out.stderr)
        );
    }
}
