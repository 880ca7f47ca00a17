//! The binary (listening line, kubeconfig, SIGTERM) and kubectl 1.37 driving the server.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_test_server::TestServer;
use tokio::io::AsyncBufReadExt;

/// kubectl from `KUBECTL` or `<workspace>/.tools/bin/kubectl`; a missing binary is a failure,
/// never a skip.
fn kubectl_path() -> PathBuf {
    if let Ok(p) = std::env::var("KUBECTL") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/kubectl");
    assert!(
        p.exists(),
        "kubectl not found at {} (and KUBECTL is not set): run `bash tests/setup.sh` first",
        p.display()
    );
    p
}

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    /// kubectl pointed at `server`, with a kubeconfig and cache in `dir`.
    fn for_server(server: &TestServer, dir: &tempfile::TempDir) -> Kubectl {
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        Kubectl {
            bin: kubectl_path(),
            kubeconfig,
            cache: dir.path().join("cache"),
        }
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn kubectl");
        let mut sin = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            sin.write_all(s.as_bytes()).await.unwrap();
        }
        drop(sin);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finished in time")
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.run(args, stdin).await;
        assert!(ok, "kubectl {args:?} failed:\nstdout: {out}\nstderr: {err}");
        out
    }
}

const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: nginx}]
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: hunter2}
"#;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.demo.arnsync.io
spec:
  group: demo.arnsync.io
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, shortNames: [gd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Color, type: string, jsonPath: .spec.color}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drives_the_server() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl::for_server(&server, &dir);
    let client = server.client();

    // Server-side apply of a Deployment and a Secret.
    let out = k
        .ok(&["apply", "--server-side", "-f", "-"], Some(MANIFESTS))
        .await;
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    assert!(out.contains("secret/creds serverside-applied"), "{out}");
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let s = secrets.get("creds").await.unwrap();
    assert_eq!(s.data.as_ref().unwrap()["password"].0, b"hunter2");
    let mf = s.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("kubectl"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    // Re-applying is idempotent (no conflict with itself).
    k.ok(&["apply", "--server-side", "-f", "-"], Some(MANIFESTS))
        .await;

    // get -o yaml and table output.
    let yaml = k.ok(&["get", "secret", "creds", "-o", "yaml"], None).await;
    assert!(yaml.contains("password: aHVudGVyMg=="), "{yaml}");
    assert!(yaml.contains("kind: Secret"), "{yaml}");
    let table = k.ok(&["get", "deploy,secret"], None).await;
    assert!(table.contains("deployment.apps/web"), "{table}");
    assert!(
        table.contains("secret/creds") && table.contains("Opaque"),
        "{table}"
    );

    // rollout restart patches the pod template and bumps generation.
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    assert_eq!(
        deploys.get("web").await.unwrap().metadata.generation,
        Some(1)
    );
    k.ok(&["rollout", "restart", "deployment", "web"], None)
        .await;
    let d = deploys.get("web").await.unwrap();
    assert_eq!(d.metadata.generation, Some(2));
    let ann = d
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert!(ann.contains_key("kubectl.kubernetes.io/restartedAt"));

    // (Client-side) apply of a CRD, wait for it, then a custom object, twice.
    k.ok(&["apply", "-f", "-"], Some(CRD)).await;
    k.ok(
        &[
            "wait",
            "--for",
            "condition=established",
            "crd/gadgets.demo.arnsync.io",
            "--timeout=20s",
        ],
        None,
    )
    .await;
    let gadget =
        "apiVersion: demo.arnsync.io/v1\nkind: Gadget\nmetadata: {name: g1}\nspec: {color: red}\n";
    let out = k.ok(&["apply", "-f", "-"], Some(gadget)).await;
    assert!(out.contains("gadget.demo.arnsync.io/g1 created"), "{out}");
    let out = k
        .ok(&["apply", "-f", "-"], Some(&gadget.replace("red", "blue")))
        .await;
    assert!(out.contains("configured"), "{out}");
    let table = k.ok(&["get", "gd"], None).await;
    assert!(table.contains("COLOR") && table.contains("blue"), "{table}");
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("demo.arnsync.io", "v1", "Gadget"),
        "gadgets",
    );
    let gadgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let g = gadgets.get("g1").await.unwrap();
    assert_eq!(g.data["spec"]["color"], "blue");
    assert_eq!(g.metadata.generation, Some(2));

    // delete
    k.ok(&["delete", "secret", "creds"], None).await;
    assert!(secrets.get_opt("creds").await.unwrap().is_none());
    k.ok(&["delete", "gadget", "g1"], None).await;
    assert!(gadgets.get_opt("g1").await.unwrap().is_none());
    let (ok, _, err) = k.run(&["get", "secret", "creds"], None).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    server.shutdown().await;
}

/// kubectl's typed `create` commands send `application/vnd.kubernetes.protobuf` bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_sends_protobuf_the_server_stores_json() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl::for_server(&server, &dir);
    let get = |args: &'static [&'static str]| {
        let k = &k;
        async move {
            let out = k.ok(&[&["get", "-o", "json"], args].concat(), None).await;
            serde_json::from_str::<serde_json::Value>(&out).expect("kubectl -o json")
        }
    };

    let (ok, out, err) = k.run(&["create", "namespace", "demo", "-v=8"], None).await;
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "kubectl no longer sends protobuf: {err}"
    );
    let ns = get(&["namespace", "demo"]).await;
    assert_eq!(ns["metadata"]["name"], "demo");
    // Go encodes empty non-pointer fields; they are absent in JSON, as omitempty makes them.
    for absent in ["namespace", "generateName", "generation", "selfLink"] {
        assert!(ns["metadata"].get(absent).is_none(), "{ns}");
    }

    k.ok(
        &[
            "create",
            "secret",
            "generic",
            "s",
            "-n",
            "demo",
            "--from-literal=k=v",
        ],
        None,
    )
    .await;
    let s = get(&["secret", "s", "-n", "demo"]).await;
    assert_eq!(s["data"], serde_json::json!({"k": "dg=="}), "{s}");
    assert_eq!(s["type"], "Opaque");

    k.ok(
        &[
            "create",
            "configmap",
            "c",
            "-n",
            "demo",
            "--from-literal=a=b",
        ],
        None,
    )
    .await;
    let c = get(&["configmap", "c", "-n", "demo"]).await;
    assert_eq!(c["data"], serde_json::json!({"a": "b"}), "{c}");

    k.ok(
        &[
            "create",
            "deployment",
            "web",
            "-n",
            "demo",
            "--image=nginx",
            "--replicas=2",
            "--port=80",
        ],
        None,
    )
    .await;
    let d = get(&["deployment", "web", "-n", "demo"]).await;
    assert_eq!(d["metadata"]["labels"], serde_json::json!({"app": "web"}));
    assert_eq!(
        d["spec"],
        serde_json::json!({
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "nginx",
                    "image": "nginx",
                    "ports": [{"containerPort": 80}],
                    "resources": {},
                }]},
            },
        }),
        "{d}"
    );
    // `replicas` is a Go pointer: an explicit 0 survives (it would default to 1 if dropped).
    k.ok(
        &[
            "create",
            "deployment",
            "idle",
            "-n",
            "demo",
            "--image=nginx",
            "--replicas=0",
        ],
        None,
    )
    .await;
    let idle = get(&["deployment", "idle", "-n", "demo"]).await;
    assert_eq!(idle["spec"]["replicas"], 0, "{idle}");

    k.ok(&["create", "serviceaccount", "robot", "-n", "demo"], None)
        .await;
    let sa = get(&["serviceaccount", "robot", "-n", "demo"]).await;
    assert_eq!(sa["metadata"]["namespace"], "demo");

    // Services, PodDisruptionBudgets and RBAC come as protobuf too.
    k.ok(
        &[
            "create",
            "service",
            "clusterip",
            "web",
            "-n",
            "demo",
            "--tcp=80:8080",
        ],
        None,
    )
    .await;
    let svc = get(&["service", "web", "-n", "demo"]).await;
    assert_eq!(
        svc["spec"],
        serde_json::json!({
            "ports": [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app": "web"},
            "type": "ClusterIP",
        }),
        "{svc}"
    );
    k.ok(
        &[
            "create",
            "pdb",
            "web",
            "-n",
            "demo",
            "--selector=app=web",
            "--min-available=50%",
        ],
        None,
    )
    .await;
    let pdb = get(&["pdb", "web", "-n", "demo"]).await;
    assert_eq!(pdb["spec"]["minAvailable"], "50%", "{pdb}");
    k.ok(
        &[
            "create",
            "role",
            "reader",
            "-n",
            "demo",
            "--verb=get",
            "--resource=secrets",
        ],
        None,
    )
    .await;
    k.ok(
        &[
            "create",
            "rolebinding",
            "reader",
            "-n",
            "demo",
            "--role=reader",
            "--serviceaccount=demo:robot",
        ],
        None,
    )
    .await;
    let role = get(&["role", "reader", "-n", "demo"]).await;
    assert_eq!(
        role["rules"],
        serde_json::json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
    );
    let binding = get(&["rolebinding", "reader", "-n", "demo"]).await;
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "robot", "namespace": "demo"}])
    );
    assert_eq!(binding["roleRef"]["name"], "reader");

    // Server-side dry run decodes the body but stores nothing.
    let out = k
        .ok(
            &[
                "create",
                "secret",
                "generic",
                "t",
                "-n",
                "demo",
                "--from-literal=x=y",
                "--dry-run=server",
            ],
            None,
        )
        .await;
    assert!(out.contains("(server dry run)"), "{out}");
    let (ok, _, err) = k.run(&["get", "secret", "t", "-n", "demo"], None).await;
    assert!(!ok && err.contains("NotFound"), "{err}");

    // kubectl replaces with JSON; the protobuf-created object takes it like any other.
    let manifest = k
        .ok(
            &[
                "create",
                "secret",
                "generic",
                "s",
                "-n",
                "demo",
                "--from-literal=k=v2",
                "--dry-run=client",
                "-o",
                "yaml",
            ],
            None,
        )
        .await;
    k.ok(&["replace", "-f", "-"], Some(&manifest)).await;
    let s = get(&["secret", "s", "-n", "demo"]).await;
    assert_eq!(s["data"]["k"], "djI=", "{s}");
    server.shutdown().await;
}

#[tokio::test]
async fn binary_prints_address_writes_kubeconfig_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc.yaml");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-test-server"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("listening line in time")
        .unwrap()
        .unwrap();
    let url = line.strip_prefix("listening on ").expect("listening line");
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{line}"
    );

    let kc = Kubeconfig::read_from(&kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(cfg.cluster_url.to_string().trim_end_matches('/'), url);
    assert_eq!(cfg.default_namespace, "default");
    let client = kube::Client::try_from(cfg).unwrap();
    let nss: Api<Namespace> = Api::all(client);
    assert!(nss.list(&ListParams::default()).await.unwrap().items.len() >= 2);

    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("server stops after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    // Exactly one line was printed.
    assert!(lines.next_line().await.unwrap().is_none());
}

const STORE_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: stores.demo.arnsync.io
spec:
  group: demo.arnsync.io
  scope: Namespaced
  names: {plural: stores, singular: store, kind: Store}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              region: {type: string}
"#;

/// An ESO-shaped store (`spec.provider.aws.region`) against a CRD that has `spec.region`.
const MISSHAPEN_STORE: &str = r#"
apiVersion: demo.arnsync.io/v1
kind: Store
metadata: {name: s1}
spec:
  provider:
    aws: {region: eu-west-1}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_refuses_fields_the_crd_does_not_declare() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl::for_server(&server, &dir);
    k.ok(&["apply", "-f", "-"], Some(STORE_CRD)).await;
    k.ok(
        &[
            "wait",
            "--for",
            "condition=established",
            "crd/stores.demo.arnsync.io",
            "--timeout=20s",
        ],
        None,
    )
    .await;

    // kubectl validates strictly by default: the server refuses, naming the field.
    let (ok, _, err) = k.run(&["apply", "-f", "-"], Some(MISSHAPEN_STORE)).await;
    assert!(!ok, "{err}");
    assert!(
        err.contains(r#"Store in version "v1" cannot be handled as a Store: strict decoding error: unknown field "spec.provider""#),
        "{err}"
    );
    let (ok, _, err) = k
        .run(
            &["apply", "--server-side", "-f", "-"],
            Some(MISSHAPEN_STORE),
        )
        .await;
    assert!(!ok, "{err}");
    assert!(
        err.contains(".spec.provider: field not declared in schema"),
        "{err}"
    );
    let (ok, _, err) = k.run(&["get", "store", "s1"], None).await;
    assert!(!ok && err.contains("NotFound"), "{err}");

    // --validate=warn stores the object without the field and relays the server's warning.
    let (ok, out, err) = k
        .run(
            &["apply", "--validate=warn", "-f", "-"],
            Some(MISSHAPEN_STORE),
        )
        .await;
    assert!(ok, "{out}{err}");
    assert!(
        err.contains(r#"Warning: unknown field "spec.provider""#),
        "{err}"
    );
    let spec = k
        .ok(&["get", "store", "s1", "-o", "jsonpath={.spec}"], None)
        .await;
    assert_eq!(spec, "{}");
    server.shutdown().await;
}
