//! Load figures for the test server. Prints latencies and the server's memory; asserts only
//! correctness (counts, contents, consistency), never times.
//!
//! `cargo run -q -p kube-test-server --example load -- 1000 10000` (`--release` for the
//! bench profile; default sizes 1000 and 10000).
//!
//! The server runs in a child process (this same executable with `--serve`) so that its
//! resident memory is its own. For each N, over 4 namespaces:
//! 1. N Secrets, then N custom objects of a namespaced CRD, are created by server-side apply
//!    with 32 requests in flight, while two kube-runtime reflectors watch all Secrets;
//! 2. quiet: GET, LIST all, LIST one namespace with a label selector, and a `limit=500`
//!    paginated LIST of everything (what kubectl and kube-runtime's watcher do);
//! 3. watch event latency: the time from sending a write to its event on an open watch;
//! 4. under load: every Secret is re-applied (32 in flight) while LISTs of all Secrets run;
//! 5. the reflectors must end up holding all N Secrets with their last data.
//!
//! Each figure is the client's (wall time, includes this debug-built load client), then the
//! server's own (`TestServer::latencies`, p50/p99) and the server process's CPU time per request
//! (robust to a busy machine).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Client;
use serde_json::{json, Value};

const NAMESPACES: usize = 4;
const IN_FLIGHT: usize = 32;
const SHARDS: usize = 10;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.first().map(String::as_str) == Some("--serve") {
        return rt.block_on(serve());
    }
    let sizes: Vec<usize> = if args.is_empty() {
        vec![1000, 10_000]
    } else {
        args.iter().map(|a| a.parse()).collect::<Result<_, _>>()?
    };
    for n in sizes {
        rt.block_on(run(n))?;
    }
    Ok(())
}

/// The child: serves, and answers `stats` (one JSON line of [`TestServer::latencies`], in ms)
/// and `reset` on its standard input. Ends when its input closes.
async fn serve() -> anyhow::Result<()> {
    let server = kube_test_server::TestServer::start().await?;
    println!("listening on {}", server.url());
    let server = Arc::new(server);
    let s = server.clone();
    tokio::task::spawn_blocking(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line.as_deref().map(str::trim) {
                Ok("reset") => s.reset_counters(),
                Ok("stats") => {
                    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
                    let stats: serde_json::Map<String, Value> = s
                        .latencies()
                        .into_iter()
                        .map(|((verb, res), l)| {
                            let v = json!({"count": l.count, "p50": ms(l.p50), "p99": ms(l.p99), "total": ms(l.total)});
                            (format!("{verb} {res}"), v)
                        })
                        .collect();
                    println!("{}", Value::Object(stats));
                }
                _ => break,
            }
        }
    })
    .await?;
    Ok(())
}

struct ServerProcess {
    child: Child,
    url: String,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl ServerProcess {
    fn start() -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| anyhow::anyhow!("unexpected server output {line:?}"))?
            .to_string();
        Ok(ServerProcess {
            child,
            url,
            stdin,
            stdout,
        })
    }

    /// Starts a phase: zeroes the server's latencies; returns its CPU time so far.
    fn phase(&mut self) -> Duration {
        writeln!(self.stdin, "reset").expect("server stdin");
        self.cpu()
    }

    /// The server's latencies since [`ServerProcess::phase`] for `key` ("list secrets") and
    /// the CPU it used since `cpu0`, per request.
    /// The server's latencies for `key` and the CPU it used since `cpu0` per request (of
    /// `requests` sent in the phase).
    fn report(&mut self, key: &str, cpu0: Duration, requests: usize) -> String {
        let cpu = (self.cpu() - cpu0).as_secs_f64() * 1000.0;
        format!(
            "{}, server CPU {:.1} ms per request",
            self.latency(key),
            cpu / requests.max(1) as f64
        )
    }

    /// The server's latencies since [`ServerProcess::phase`] for `key`.
    fn latency(&mut self, key: &str) -> String {
        writeln!(self.stdin, "stats").expect("server stdin");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("server stats");
        let stats: Value = serde_json::from_str(&line).expect("stats json");
        let s = &stats[key];
        if s.is_null() {
            return "server: (no latencies)".into();
        }
        format!(
            "server: p50 {:.1} ms p99 {:.1} ms (n={})",
            s["p50"].as_f64().unwrap_or(0.0),
            s["p99"].as_f64().unwrap_or(0.0),
            s["count"]
        )
    }

    /// CPU time of all the server's threads.
    fn cpu(&self) -> Duration {
        let dir = format!("/proc/{}/task", self.child.id());
        let mut ns = 0u64;
        for task in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        Duration::from_nanos(ns)
    }

    /// (current, peak) resident memory in MiB.
    fn rss_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| -> f64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn client(&self) -> Client {
        let mut cfg = kube::Config::new(self.url.parse().expect("url"));
        cfg.default_namespace = "default".into();
        cfg.read_timeout = Some(Duration::from_secs(600));
        Client::try_from(cfg).expect("client")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ns_of(i: usize) -> String {
    format!("load-{}", i % NAMESPACES)
}

fn name_of(i: usize) -> String {
    format!("s-{i:05}")
}

fn secret_body(i: usize, version: &str) -> Value {
    use base64::Engine;
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name_of(i),
            "namespace": ns_of(i),
            "labels": {"app": "load", "shard": (i % SHARDS).to_string()},
            "annotations": {"load.test/source": format!("source/{i}")},
        },
        "type": "Opaque",
        "data": {
            "password": b64(format!("password-{i}-{version}-{}", "x".repeat(32))),
            "user": b64(format!("user-{i}")),
            "version": b64(version.to_string()),
        },
    })
}

fn load_resource() -> ApiResource {
    ApiResource {
        group: "load.test".into(),
        version: "v1".into(),
        api_version: "load.test/v1".into(),
        kind: "Load".into(),
        plural: "loads".into(),
    }
}

fn custom_body(i: usize) -> Value {
    json!({
        "apiVersion": "load.test/v1",
        "kind": "Load",
        "metadata": {
            "name": format!("l-{i:05}"),
            "namespace": ns_of(i),
            "labels": {"app": "load", "shard": (i % SHARDS).to_string()},
        },
        "spec": {"size": i as i64, "target": {"name": name_of(i), "keys": ["password", "user"]}},
    })
}

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "loads.load.test"},
        "spec": {
            "group": "load.test",
            "scope": "Namespaced",
            "names": {"plural": "loads", "singular": "load", "kind": "Load", "listKind": "LoadList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "properties": {
                            "size": {"type": "integer", "minimum": 0},
                            "target": {"type": "object", "properties": {
                                "name": {"type": "string", "maxLength": 253},
                                "keys": {"type": "array", "items": {"type": "string"}},
                            }},
                        }},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
    })
}

struct Figures(Vec<Duration>);

impl Figures {
    fn new() -> Self {
        Figures(Vec::new())
    }
    fn pct(&self, p: usize) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v[(v.len() * p / 100).min(v.len() - 1)]
    }
    fn show(&self) -> String {
        format!(
            "p50 {} p99 {} max {} (n={})",
            ms(self.pct(50)),
            ms(self.pct(99)),
            ms(self.pct(100)),
            self.0.len()
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn raw_get(client: &Client, path: &str) -> anyhow::Result<(Duration, String)> {
    let req = http::Request::get(path).body(Vec::new())?;
    let t = Instant::now();
    let text = client.request_text(req).await?;
    Ok((t.elapsed(), text))
}

/// Server-side applies `bodies` with IN_FLIGHT requests at once; returns each latency.
async fn apply_all(client: &Client, bodies: Vec<(Api<DynamicObject>, String, Value)>) -> Figures {
    let times: Vec<Duration> = futures::stream::iter(bodies)
        .map(|(api, name, body)| async move {
            let pp = PatchParams::apply("load").force();
            let t = Instant::now();
            api.patch(&name, &pp, &Patch::Apply(&body))
                .await
                .unwrap_or_else(|e| panic!("apply {name}: {e}"));
            t.elapsed()
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let _ = client;
    Figures(times)
}

/// Times `kubectl get secrets -A` (the kubectl in `KUBECTL`, else the project's `.tools`), if
/// there is one.
fn kubectl_get_all(server: &mut ServerProcess, n: usize) -> anyhow::Result<()> {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../.tools/bin/kubectl").to_string()
    });
    if !std::path::Path::new(&kubectl).exists() {
        println!("kubectl get secrets -A: skipped (no kubectl at {kubectl})");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kube_test_server::kubeconfig_yaml(&server.url))?;
    let mut runs = Figures::new();
    let cpu = server.phase();
    for _ in 0..3 {
        let t = Instant::now();
        let out = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "get",
                "secrets",
                "-A",
                "--no-headers",
                "--request-timeout=600s",
            ])
            .output()?;
        runs.0.push(t.elapsed());
        assert!(
            out.status.success(),
            "kubectl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines = String::from_utf8_lossy(&out.stdout).lines().count();
        assert_eq!(lines, n, "kubectl lists every Secret");
    }
    let pages = n.div_ceil(500) * runs.0.len();
    println!(
        "kubectl get secrets -A (Tables in pages of 500): {}\n  per page {}",
        runs.show(),
        server.report("list secrets", cpu, pages)
    );
    Ok(())
}

fn secret_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<Secret>(&()))
}

async fn run(n: usize) -> anyhow::Result<()> {
    println!("== N = {n} Secrets and {n} custom objects over {NAMESPACES} namespaces ==");
    let mut server = ServerProcess::start()?;
    let client = server.client();
    let (rss0, _) = server.rss_mib();

    let namespaces: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
    );
    for i in 0..NAMESPACES {
        let name = ns_of(i);
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        namespaces
            .patch(&name, &PatchParams::apply("load"), &Patch::Apply(&body))
            .await?;
    }
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::erase::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >(&()),
    );
    crds.patch(
        "loads.load.test",
        &PatchParams::apply("load"),
        &Patch::Apply(&crd()),
    )
    .await?;

    // Two reflectors on all Secrets, as an operator and a second client would have.
    let restarts = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    let mut reflector_tasks = Vec::new();
    for _ in 0..2 {
        let (reader, writer) = reflector::store::<Secret>();
        let api: Api<Secret> = Api::all(client.clone());
        let restarts = restarts.clone();
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .inspect_ok(move |ev| {
                if matches!(ev, watcher::Event::Init) {
                    restarts.fetch_add(1, Ordering::Relaxed);
                }
            })
            .for_each(|_| async {});
        reflector_tasks.push(tokio::spawn(stream));
        readers.push(reader);
    }
    for r in &readers {
        r.wait_until_ready().await?;
    }

    // 1. Creates.
    let bodies = (0..n)
        .map(|i| {
            (
                secret_api(&client, &ns_of(i)),
                name_of(i),
                secret_body(i, "v1"),
            )
        })
        .collect();
    let t = Instant::now();
    let cpu = server.phase();
    let create_secrets = apply_all(&client, bodies).await;
    println!(
        "apply (create) Secret: {} ; {} in {:.1} s\n  {}",
        create_secrets.show(),
        n,
        t.elapsed().as_secs_f64(),
        server.report("patch secrets", cpu, n)
    );
    let bodies = (0..n)
        .map(|i| {
            (
                Api::namespaced_with(client.clone(), &ns_of(i), &load_resource()),
                format!("l-{i:05}"),
                custom_body(i),
            )
        })
        .collect();
    let cpu = server.phase();
    let create_custom = apply_all(&client, bodies).await;
    println!(
        "apply (create) custom object: {}\n  {}",
        create_custom.show(),
        server.report("patch loads", cpu, n)
    );
    let (rss, _) = server.rss_mib();
    println!(
        "server RSS with {n}+{n} objects: {rss:.0} MiB (empty: {rss0:.0} MiB, {:.1} KiB per object)",
        (rss - rss0) * 1024.0 / (2 * n) as f64
    );

    // 2. Quiet reads.
    let mut get = Figures::new();
    let cpu = server.phase();
    for k in 0..200 {
        let i = (k * 7919) % n;
        let (d, text) = raw_get(
            &client,
            &format!("/api/v1/namespaces/{}/secrets/{}", ns_of(i), name_of(i)),
        )
        .await?;
        let v: Value = serde_json::from_str(&text)?;
        assert_eq!(v["metadata"]["name"], name_of(i));
        get.0.push(d);
    }
    println!(
        "GET Secret: {}\n  {}",
        get.show(),
        server.report("get secrets", cpu, get.0.len())
    );

    let mut list_all = Figures::new();
    let mut bytes = 0;
    let cpu = server.phase();
    for _ in 0..5 {
        let (d, text) = raw_get(&client, "/api/v1/secrets").await?;
        list_all.0.push(d);
        let v: Value = serde_json::from_str(&text)?;
        assert_eq!(v["items"].as_array().map(Vec::len), Some(n), "LIST all");
        bytes = text.len();
    }
    println!(
        "LIST all Secrets ({} KiB): {}\n  {}",
        bytes / 1024,
        list_all.show(),
        server.report("list secrets", cpu, list_all.0.len())
    );

    let mut list_custom = Figures::new();
    let cpu = server.phase();
    for _ in 0..5 {
        let (d, text) = raw_get(&client, "/apis/load.test/v1/loads").await?;
        list_custom.0.push(d);
        let v: Value = serde_json::from_str(&text)?;
        assert_eq!(
            v["items"].as_array().map(Vec::len),
            Some(n),
            "LIST all custom"
        );
    }
    println!(
        "LIST all custom objects: {}\n  {}",
        list_custom.show(),
        server.report("list loads", cpu, list_custom.0.len())
    );

    let mut list_sel = Figures::new();
    let cpu = server.phase();
    let want = (0..n)
        .filter(|i| i % NAMESPACES == 1 && i % SHARDS == 3)
        .count();
    for _ in 0..20 {
        let (d, text) = raw_get(
            &client,
            "/api/v1/namespaces/load-1/secrets?labelSelector=app%3Dload%2Cshard%3D3",
        )
        .await?;
        list_sel.0.push(d);
        let v: Value = serde_json::from_str(&text)?;
        assert_eq!(
            v["items"].as_array().map(Vec::len),
            Some(want),
            "LIST selector"
        );
    }
    println!(
        "LIST one namespace, label selector ({want} items): {}\n  {}",
        list_sel.show(),
        server.report("list secrets", cpu, list_sel.0.len())
    );

    let mut paged = Figures::new();
    let mut pages = 0;
    let cpu = server.phase();
    for _ in 0..3 {
        let t = Instant::now();
        let mut names = BTreeSet::new();
        let mut token = String::new();
        let mut rv: Option<String> = None;
        loop {
            let mut path = "/api/v1/secrets?limit=500".to_string();
            if !token.is_empty() {
                path.push_str(&format!("&continue={token}"));
            }
            let (_, text) = raw_get(&client, &path).await?;
            pages += 1;
            let v: Value = serde_json::from_str(&text)?;
            let page_rv = v["metadata"]["resourceVersion"].as_str().map(String::from);
            if let Some(rv) = &rv {
                assert_eq!(
                    Some(rv),
                    page_rv.as_ref(),
                    "pages share one resourceVersion"
                );
            }
            rv = page_rv;
            for item in v["items"].as_array().into_iter().flatten() {
                names.insert(format!(
                    "{}/{}",
                    item["metadata"]["namespace"].as_str().unwrap_or_default(),
                    item["metadata"]["name"].as_str().unwrap_or_default()
                ));
            }
            token = v["metadata"]["continue"]
                .as_str()
                .unwrap_or_default()
                .into();
            if token.is_empty() {
                break;
            }
        }
        assert_eq!(names.len(), n, "paginated LIST sees every Secret once");
        paged.0.push(t.elapsed());
    }
    println!(
        "LIST all Secrets in pages of 500 (whole walk): {}\n  per page {}",
        paged.show(),
        server.report("list secrets", cpu, pages)
    );

    // kubectl's view: `get -A` asks for Tables in pages of 500.
    kubectl_get_all(&mut server, n)?;

    // 3. Watch event latency on one namespace, with everything present.
    let api0: Api<Secret> = Api::namespaced(client.clone(), "load-0");
    let (_, text) = raw_get(&client, "/api/v1/namespaces/load-0/secrets?limit=1").await?;
    let v: Value = serde_json::from_str(&text)?;
    let rv = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let mut events = api0.watch(&WatchParams::default(), &rv).await?.boxed();
    let mut watch_latency = Figures::new();
    let target = secret_api(&client, "load-0");
    let cpu = server.phase();
    for k in 0..50 {
        let version = format!("w{k}");
        let body = secret_body(0, &version);
        let t = Instant::now();
        target
            .patch(
                &name_of(0),
                &PatchParams::apply("load").force(),
                &Patch::Apply(&body),
            )
            .await?;
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(120), events.try_next())
                .await??
                .ok_or_else(|| anyhow::anyhow!("watch ended"))?;
            if let WatchEvent::Modified(s) = ev {
                let seen = s
                    .data
                    .as_ref()
                    .and_then(|d| d.get("version"))
                    .map(|b| String::from_utf8_lossy(&b.0).to_string());
                if s.metadata.name.as_deref() == Some(&name_of(0)) && seen == Some(version.clone())
                {
                    break;
                }
            }
        }
        watch_latency.0.push(t.elapsed());
    }
    println!(
        "write -> watch event (incl. the write): {}\n  the write: {}",
        watch_latency.show(),
        server.report("patch secrets", cpu, watch_latency.0.len())
    );
    drop(events);

    // 4. Under load: every Secret re-applied while LISTs run.
    let bodies = (0..n)
        .map(|i| {
            (
                secret_api(&client, &ns_of(i)),
                name_of(i),
                secret_body(i, "v2"),
            )
        })
        .collect();
    let writer_client = client.clone();
    let cpu = server.phase();
    let writes = tokio::spawn(async move { apply_all(&writer_client, bodies).await });
    let mut list_load = Figures::new();
    while !writes.is_finished() && list_load.0.len() < 20 {
        let (d, _) = raw_get(&client, "/api/v1/secrets").await?;
        list_load.0.push(d);
    }
    let update_secrets = writes.await?;
    println!(
        "apply (update) Secret under load: {}\n  {}",
        update_secrets.show(),
        server.latency("patch secrets")
    );
    let _ = cpu;
    println!(
        "LIST all Secrets during the updates: {}\n  {}",
        list_load.show(),
        server.latency("list secrets")
    );

    // 5. Reflectors converge on the last data.
    let deadline = Instant::now() + Duration::from_secs(300);
    let expected = secret_body(1, "v2")["data"]["version"].clone();
    loop {
        let done = readers.iter().all(|r| {
            let all = r.state();
            all.len() == n
                && all.iter().all(|s| {
                    let v = s.data.as_ref().and_then(|d| d.get("version"));
                    let got = v.map(|b| {
                        use base64::Engine;
                        json!(base64::engine::general_purpose::STANDARD.encode(&b.0))
                    });
                    got.as_ref() == Some(&expected)
                })
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reflectors did not converge on {n} Secrets with the last data"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "reflectors converged; watch restarts (relists) beyond the first: {}",
        restarts.load(Ordering::Relaxed).saturating_sub(2)
    );
    let (rss, hwm) = server.rss_mib();
    println!("server RSS at the end: {rss:.0} MiB (peak {hwm:.0} MiB)");
    for t in reflector_tasks {
        t.abort();
    }
    Ok(())
}
