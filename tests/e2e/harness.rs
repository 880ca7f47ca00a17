//! End-to-end harness: the Kubernetes test server (in process), moto behind the fault proxy,
//! and the real `arnsync` binary talking to both over loopback. Everything stops on Drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_fault_proxy::moto::Moto;
use aws_fault_proxy::FaultProxy;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt};
use kube_test_server::TestServer;
use serde_json::json;

use arnsync::api::{ClusterExternalSecret, ClusterSecretStore, ExternalSecret, SecretStore};

pub struct Env {
    pub kube: TestServer,
    pub client: Client,
    /// Kept alive for the test; stopped on Drop.
    _moto: Moto,
    pub proxy: FaultProxy,
    pub sm: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
    operator: Option<Child>,
    dir: tempfile::TempDir,
}

fn aws_config(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("test", "test", None, None, "e2e"),
            ),
        )
        .http_client(arnsync::source::aws::http_client())
        .build()
}

/// The account moto answers as.
pub const MOTO_ACCOUNT: &str = "123456789012";

impl Env {
    /// Starts everything and the operator.
    pub async fn start() -> Env {
        let env = Env::start_without_operator().await;
        let mut env = env;
        env.start_operator();
        env
    }

    pub async fn start_without_operator() -> Env {
        let kube = TestServer::start().await.expect("kube test server");
        let client = kube.client();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in [
            SecretStore::crd(),
            ClusterSecretStore::crd(),
            ExternalSecret::crd(),
            ClusterExternalSecret::crd(),
        ] {
            crds.create(&PostParams::default(), &crd)
                .await
                .expect("create CRD");
        }
        let moto = Moto::start().expect("moto (run tests/setup.sh)");
        let proxy = FaultProxy::start(&moto.url()).expect("fault proxy");
        let direct = aws_config(&moto.url(), "us-east-1");
        Env {
            sm: aws_sdk_secretsmanager::Client::new(&direct),
            ssm: aws_sdk_ssm::Client::new(&direct),
            kube,
            client,
            _moto: moto,
            proxy,
            operator: None,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("operator.log")
    }

    /// `arnsync run` against this environment, with `extra` flags, logging to `log`. AWS
    /// credentials are dummies and instance metadata is off: nothing leaves loopback.
    fn operator_command(&self, extra: &[&str], log: std::fs::File) -> Command {
        let kubeconfig = self.dir.path().join("kubeconfig");
        self.kube.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_arnsync"));
        cmd.args(["run", "--metrics-addr", "127.0.0.1:0"])
            .args(
                (!extra.contains(&"--read-sharing"))
                    .then_some(["--read-sharing", "200ms"])
                    .into_iter()
                    .flatten(),
            )
            // Tests that count refresh and force-sync reads expect each to reach AWS: wave
            // sharing only where a test asks for it.
            .args(
                (!extra.contains(&"--tracked-read-sharing"))
                    .then_some(["--tracked-read-sharing", "0s"])
                    .into_iter()
                    .flatten(),
            )
            .args(extra)
            .env("KUBECONFIG", &kubeconfig)
            .env("AWS_ACCESS_KEY_ID", "operator")
            .env("AWS_SECRET_ACCESS_KEY", "operator")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null());
        cmd
    }

    pub fn start_operator(&mut self) {
        self.start_operator_with(&[]);
    }

    /// Starts the operator with extra `arnsync run` flags.
    pub fn start_operator_with(&mut self, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let child = self
            .operator_command(extra, log)
            .env("RUST_LOG", "info,arnsync=debug,kube=debug")
            .spawn()
            .expect("spawn arnsync");
        self.operator = Some(child);
    }

    pub fn stop_operator(&mut self) {
        if let Some(mut c) = self.operator.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Process id of the operator started with `start_operator*` (benches/scale.rs reads its
    /// peak memory).
    #[allow(dead_code)]
    pub fn operator_pid(&self) -> Option<u32> {
        self.operator.as_ref().map(|c| c.id())
    }

    pub fn operator_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub async fn namespace(&self, name: &str, labels: serde_json::Value) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels}
        }))
        .unwrap();
        api.create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
    }

    /// Server-side applies a manifest (as a test user would with kubectl apply --server-side).
    pub async fn apply(&self, manifest: serde_json::Value) {
        let what = format!("{} {}", manifest["kind"], manifest["metadata"]["name"]);
        if let Err(e) = self.try_apply(manifest).await {
            panic!("apply {what}: {e}");
        }
    }

    /// Server-side applies a manifest; the API server's refusal is returned.
    pub async fn try_apply(&self, manifest: serde_json::Value) -> Result<(), kube::Error> {
        let kind = manifest["kind"].as_str().unwrap().to_string();
        let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
        let ns = manifest["metadata"]["namespace"].as_str().map(String::from);
        let pp = PatchParams::apply("e2e-test").force();
        let r = match (kind.as_str(), ns) {
            ("ExternalSecret", Some(ns)) => {
                Api::<ExternalSecret>::namespaced(self.client.clone(), &ns)
                    .patch(&name, &pp, &Patch::Apply(&manifest))
                    .await
                    .map(|_| ())
            }
            ("SecretStore", Some(ns)) => Api::<SecretStore>::namespaced(self.client.clone(), &ns)
                .patch(&name, &pp, &Patch::Apply(&manifest))
                .await
                .map(|_| ()),
            ("ClusterSecretStore", None) => Api::<ClusterSecretStore>::all(self.client.clone())
                .patch(&name, &pp, &Patch::Apply(&manifest))
                .await
                .map(|_| ()),
            ("Deployment", Some(ns)) => {
                Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(self.client.clone(), &ns)
                    .patch(&name, &pp, &Patch::Apply(&manifest))
                    .await
                    .map(|_| ())
            }
            ("Namespace", None) => Api::<Namespace>::all(self.client.clone())
                .patch(&name, &pp, &Patch::Apply(&manifest))
                .await
                .map(|_| ()),
            ("Secret", Some(ns)) => Api::<Secret>::namespaced(self.client.clone(), &ns)
                .patch(&name, &pp, &Patch::Apply(&manifest))
                .await
                .map(|_| ()),
            ("ServiceAccount", Some(ns)) => {
                Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
                    self.client.clone(),
                    &ns,
                )
                .patch(&name, &pp, &Patch::Apply(&manifest))
                .await
                .map(|_| ())
            }
            ("ConfigMap", Some(ns)) => {
                Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(self.client.clone(), &ns)
                    .patch(&name, &pp, &Patch::Apply(&manifest))
                    .await
                    .map(|_| ())
            }
            other => panic!("apply: unsupported {other:?}"),
        };
        r
    }

    /// SecretStores in `ns` that reach moto through the proxy: `aws` for Secrets Manager and
    /// `aws-ssm` for Parameter Store.
    pub async fn store(&self, ns: &str) {
        for (name, service) in [("aws", "SecretsManager"), ("aws-ssm", "ParameterStore")] {
            self.apply(json!({
                "apiVersion": "arnsync.io/v1alpha1", "kind": "SecretStore",
                "metadata": {"name": name, "namespace": ns},
                "spec": self.store_spec(service, json!({}))
            }))
            .await;
        }
    }

    /// A store spec for `service` reaching moto, with `aws` merged into `provider.aws`
    /// (auth, role, ...).
    pub fn store_spec(&self, service: &str, aws: serde_json::Value) -> serde_json::Value {
        let mut provider = json!({"service": service, "region": "us-east-1"});
        for (k, v) in aws.as_object().into_iter().flatten() {
            provider[k] = v.clone();
        }
        json!({"provider": {"aws": provider}, "arnsync": {"endpoints": self.endpoints()}})
    }

    pub fn endpoints(&self) -> serde_json::Value {
        json!({"secretsManager": self.proxy.url(), "ssm": self.proxy.url(), "sts": self.proxy.url(),
               "sqs": self.proxy.url()})
    }

    pub async fn secret(&self, ns: &str, name: &str) -> Option<Secret> {
        Api::<Secret>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .unwrap()
    }

    pub async fn es(&self, ns: &str, name: &str) -> ExternalSecret {
        Api::<ExternalSecret>::namespaced(self.client.clone(), ns)
            .get(name)
            .await
            .unwrap()
    }

    /// Polls until `check` returns Some, or panics after `timeout` with `what` and the
    /// operator's log tail.
    pub async fn eventually<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if Instant::now() > deadline {
                let log = self.operator_log();
                let tail: String = log
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                panic!("timed out waiting for {what}\n--- operator log tail ---\n{tail}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the Secret to hold `key` = `value`.
    pub async fn secret_value(&self, ns: &str, name: &str, key: &str, value: &[u8]) -> Secret {
        self.eventually(
            &format!("Secret {ns}/{name} key {key}"),
            Duration::from_secs(30),
            || async {
                let s = self.secret(ns, name).await?;
                (s.data.as_ref()?.get(key).map(|b| b.0.as_slice()) == Some(value)).then_some(s)
            },
        )
        .await
    }

    /// Waits for the ExternalSecret's Ready condition to have `reason`; returns its message.
    pub async fn ready_reason(&self, ns: &str, name: &str, reason: &str) -> String {
        self.ready_reason_within(ns, name, reason, Duration::from_secs(30))
            .await
    }

    /// Like `ready_reason`, for outcomes that wait on a retry backoff (which grows up to
    /// minutes while errors persist).
    pub async fn ready_reason_within(
        &self,
        ns: &str,
        name: &str,
        reason: &str,
        timeout: Duration,
    ) -> String {
        self.eventually(
            &format!("ExternalSecret {ns}/{name} reason {reason}"),
            timeout,
            || async {
                let es = Api::<ExternalSecret>::namespaced(self.client.clone(), ns)
                    .get_opt(name)
                    .await
                    .ok()??;
                let c = es
                    .status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == "Ready")?;
                (c.reason == reason).then_some(c.message)
            },
        )
        .await
    }

    pub async fn put_secret(&self, name: &str, value: &str) {
        let r = self
            .sm
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await;
        if r.is_err() {
            self.sm
                .put_secret_value()
                .secret_id(name)
                .secret_string(value)
                .send()
                .await
                .expect("put secret");
        }
    }

    /// The VersionId of a secret that has exactly one version.
    pub async fn only_version(&self, name: &str) -> String {
        let d = self
            .sm
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .unwrap();
        let versions = d.version_ids_to_stages().expect("versions");
        assert_eq!(versions.len(), 1, "{name} has more than one version");
        versions.keys().next().unwrap().clone()
    }

    pub async fn put_param(&self, name: &str, value: &str, type_: &str) {
        self.ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(type_.into())
            .overwrite(true)
            .send()
            .await
            .expect("put parameter");
    }

    /// Asserts that none of `values` appear in the operator log or in any event.
    pub async fn assert_no_leaks(&self, values: &[&str]) {
        // The "reconciled" line follows the status write a test may have just seen.
        let log = self
            .eventually(
                "a reconcile in the operator log",
                Duration::from_secs(10),
                || async {
                    let log = self.operator_log();
                    log.contains("reconciled").then_some(log)
                },
            )
            .await;
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(self.client.clone());
        let events =
            serde_json::to_string(&events.list(&Default::default()).await.unwrap()).unwrap();
        let ess = serde_json::to_string(
            &Api::<ExternalSecret>::all(self.client.clone())
                .list(&Default::default())
                .await
                .unwrap(),
        )
        .unwrap();
        for v in values {
            assert!(
                !log.contains(v),
                "secret value {v:?} leaked into the operator log"
            );
            assert!(
                !events.contains(v),
                "secret value {v:?} leaked into an event"
            );
            assert!(
                !ess.contains(v),
                "secret value {v:?} leaked into an ExternalSecret status"
            );
        }
    }
}

impl Env {
    /// Forgets everything moto holds, in every service and region.
    pub async fn reset_moto(&self) {
        self._moto.reset().await.expect("moto reset");
    }

    /// Secrets Manager and Parameter Store clients that reach moto directly in `region`.
    /// An EventBridge rule on the default bus with `pattern`, targeting the SQS queue `queue`
    /// (in moto's account, us-east-1), as the README's event set-up has it.
    pub async fn event_rule(&self, rule: &str, queue: &str, pattern: serde_json::Value) {
        let events = aws_sdk_eventbridge::Client::new(&self.moto_config());
        events
            .put_rule()
            .name(rule)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .unwrap();
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("queue")
            .arn(format!("arn:aws:sqs:us-east-1:{MOTO_ACCOUNT}:{queue}"))
            .build()
            .unwrap();
        events
            .put_targets()
            .rule(rule)
            .targets(target)
            .send()
            .await
            .unwrap();
    }

    /// Puts one event on the default bus, as an AWS service would (moto's Secrets Manager and
    /// Parameter Store emit none themselves).
    pub async fn put_event(
        &self,
        source: &str,
        detail_type: &str,
        resource: Option<String>,
        detail: serde_json::Value,
    ) {
        let events = aws_sdk_eventbridge::Client::new(&self.moto_config());
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source(source)
            .detail_type(detail_type)
            .set_resources(resource.map(|r| vec![r]))
            .detail(detail.to_string())
            .build();
        let out = events.put_events().entries(entry).send().await.unwrap();
        assert_eq!(out.failed_entry_count, 0);
    }

    /// What Secrets Manager puts on the bus when AWSCURRENT of secret `name` moves.
    pub async fn label_updated(&self, name: &str, version: &str) {
        self.put_event(
            "aws.secretsmanager",
            "Secret Label Updated",
            Some(format!(
                "arn:aws:secretsmanager:us-east-1:{MOTO_ACCOUNT}:secret:{name}-AbC123"
            )),
            json!({"name": name, "labelUpdated": "AWSCURRENT", "versionId": version}),
        )
        .await;
    }

    /// SDK config for moto directly (not through the proxy), in us-east-1.
    pub fn moto_config(&self) -> aws_config::SdkConfig {
        aws_config(&self._moto.url(), "us-east-1")
    }

    pub fn aws_in(&self, region: &str) -> (aws_sdk_secretsmanager::Client, aws_sdk_ssm::Client) {
        let config = aws_config(&self._moto.url(), region);
        (
            aws_sdk_secretsmanager::Client::new(&config),
            aws_sdk_ssm::Client::new(&config),
        )
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop_operator();
    }
}

pub fn data_str(s: &Secret, key: &str) -> String {
    String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

/// Another operator process with its own flags, `POD_NAME` and log file, for tests with several
/// replicas. Killed on Drop.
pub struct Operator {
    pub name: String,
    child: std::sync::Mutex<Child>,
    log: PathBuf,
}

impl Env {
    /// Starts an operator named `name` (its `POD_NAME`) with `args` after the usual flags.
    pub fn spawn_operator(&self, name: &str, args: &[&str]) -> Operator {
        self.spawn_operator_logging(name, args, "info,arnsync=debug")
    }

    /// Like [`Env::spawn_operator`], logging at `rust_log` (benchmarks log at `info`).
    pub fn spawn_operator_logging(&self, name: &str, args: &[&str], rust_log: &str) -> Operator {
        let log_path = self.dir.path().join(format!("operator-{name}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = self
            .operator_command(args, log)
            .env("POD_NAME", name)
            .env("RUST_LOG", rust_log)
            .spawn()
            .expect("spawn arnsync");
        Operator {
            name: name.to_string(),
            child: std::sync::Mutex::new(child),
            log: log_path,
        }
    }
}

impl Operator {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The /metrics address, from the `arnsync started ... addr=` log line.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        let log = self.log();
        let line = log.lines().find(|l| l.contains("arnsync started"))?;
        let rest = &line[line.find("addr=")? + "addr=".len()..];
        rest.split(|c: char| c.is_whitespace() || c == '"')
            .find(|s| !s.is_empty())?
            .parse()
            .ok()
    }

    /// Sends a signal (`KILL`, `TERM`, ...).
    pub fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill");
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().expect("child").id()
    }

    /// The exit status once the process has ended.
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child.lock().expect("child").try_wait().ok().flatten()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let child = self.child.get_mut().expect("child");
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A plain HTTP/1.0 GET: (status code, body), or None when the server does not answer.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await.ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// Counts rollouts of the Deployments in one namespace: changes of each pod template, seen
/// through a watch. `metadata.generation` is no rollout counter: a real API server also bumps
/// it when a Deployment's own annotations change.
pub struct Rollouts {
    templates:
        std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<serde_json::Value>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Env {
    /// Starts counting; call it before the Deployments are created.
    pub async fn rollouts(&self, ns: &str) -> Rollouts {
        use futures::StreamExt;
        use kube::runtime::watcher;
        let api: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(self.client.clone(), ns);
        let templates = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
            String,
            Vec<serde_json::Value>,
        >::new()));
        let seen = templates.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut events = watcher(api, watcher::Config::default()).boxed();
            while let Some(Ok(ev)) = events.next().await {
                let d = match ev {
                    watcher::Event::Apply(d) | watcher::Event::InitApply(d) => d,
                    watcher::Event::InitDone => {
                        ready.take().map(|r| r.send(()));
                        continue;
                    }
                    _ => continue,
                };
                let template = serde_json::to_value(d.spec.map(|s| s.template)).unwrap();
                let mut seen = seen.lock().expect("rollouts");
                let history = seen.entry(d.metadata.name.unwrap_or_default()).or_default();
                if history.last() != Some(&template) {
                    history.push(template);
                }
            }
        });
        let _ = ready_rx.await;
        Rollouts { templates, task }
    }
}

impl Rollouts {
    /// Pod-template changes of Deployment `name` since it was first seen.
    pub fn count(&self, name: &str) -> usize {
        let seen = self.templates.lock().expect("rollouts");
        seen.get(name).map_or(0, |h| h.len().saturating_sub(1))
    }
}

impl Drop for Rollouts {
    fn drop(&mut self) {
        self.task.abort();
    }
}
