//! Scale benchmark: prints figures, asserts nothing about time.
//!
//! `cargo bench --bench scale` runs the release operator against the Kubernetes test server (in
//! this process) and moto behind the call-counting proxy, for N = 1,000 and 10,000
//! ExternalSecrets (env `ARNSYNC_BENCH_ES`, a comma-separated list). Each ExternalSecret reads two
//! keys: one property of one of N/10 Secrets Manager secrets and one of N/10 parameters, so every
//! value is shared by 10 ExternalSecrets, over 10 namespaces with a SecretStore each.
//!
//! For each N it reports: the time from the operator's start to every ExternalSecret Ready (all
//! objects applied beforehand: an empty cache); AWS calls by operation for that first sync, per
//! idle rotation check, and for a rotation of 10 secrets until every dependent Secret holds the
//! new value; Kubernetes API requests by verb during a full resync of unchanged objects; the
//! operator's peak and steady resident memory; the test server's list, get, apply and watch
//! latencies with those objects in it. Beside arnsync's figures, the same table gives the calls
//! an ESO-style controller makes for the same objects, computed from the manifests: one
//! GetSecretValue or GetParameter per reference per refresh, no batching, no sharing, and with a
//! role one new STS session per reconcile.

#[allow(dead_code)]
#[path = "common.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/e2e/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::Api;
use serde_json::json;

use arnsync::api::{ExternalSecret, SecretStore};
use common::print_counts;
use harness::{Env, Operator};

type Counts = BTreeMap<(String, String), u64>;

/// Namespaces the ExternalSecrets are spread over, one SecretStore each.
const NAMESPACES: usize = 10;
/// ExternalSecrets reading each value.
const SHARING: usize = 10;
/// The rotation check interval the operator runs with.
const CHECK_SECONDS: u64 = 5;
/// The refresh interval of every ExternalSecret (ESO's default).
const REFRESH_SECONDS: u64 = 3600;

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sizes: Vec<usize> = std::env::var("ARNSYNC_BENCH_ES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut results = vec![];
    for n in sizes {
        results.push(rt.block_on(scenario(n.max(SHARING))));
    }
    print_table(&results);
}

/// What one scenario measured.
struct Figures {
    n: usize,
    distinct_secrets: usize,
    distinct_params: usize,
    all_ready: Duration,
    first_sync: Counts,
    /// BatchGetSecretValue, GetSecretValue, GetParameter and decrypted GetParameters (a version
    /// check's GetParameters asks for no decryption).
    first_sync_values: u64,
    idle_per_check: Counts,
    idle_checks: u64,
    rotation: Counts,
    rotation_time: Duration,
    rotated_secrets: usize,
    resync: Counts,
    resync_reconciles: u64,
    peak_kib: Option<u64>,
    steady_kib: Option<u64>,
    latencies: Vec<(String, Duration, Duration)>,
    eso: EsoModel,
}

/// The manifest of ExternalSecret `i`.
fn external_secret(i: usize, secrets: usize, params: usize) -> serde_json::Value {
    let s = i % secrets;
    let p = i % params;
    json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": format!("es{i:05}"), "namespace": format!("bench-{}", i % NAMESPACES)},
        "spec": {"secretStoreRef": {"name": "aws"}, "refreshInterval": format!("{REFRESH_SECONDS}s"), "data": [
            {"secretKey": "password", "remoteRef": {"key": format!("bench/s{s:04}"), "property": "password"}},
            {"secretKey": "param", "remoteRef": {"key": format!("arn:aws:ssm:us-east-1:{}:parameter/bench/p{p:04}", harness::MOTO_ACCOUNT)}}
        ]}
    })
}

/// The AWS calls an ESO-style controller makes for `manifests`, per refresh of every object:
/// each `data[].remoteRef` is one GetSecretValue (Secrets Manager) or GetParameter (an SSM ARN),
/// and a store with a role costs one AssumeRole per reconcile.
#[derive(Default)]
struct EsoModel {
    get_secret_value: u64,
    get_parameter: u64,
    reconciles: u64,
}

impl EsoModel {
    fn of(manifests: &[serde_json::Value]) -> EsoModel {
        let mut m = EsoModel::default();
        for es in manifests {
            m.reconciles += 1;
            for d in es["spec"]["data"].as_array().into_iter().flatten() {
                let key = d["remoteRef"]["key"].as_str().unwrap_or_default();
                if key.starts_with("arn:aws:ssm:") {
                    m.get_parameter += 1;
                } else {
                    m.get_secret_value += 1;
                }
            }
        }
        m
    }

    fn value_calls(&self) -> u64 {
        self.get_secret_value + self.get_parameter
    }
}

fn diff(after: &Counts, before: &Counts) -> Counts {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// The sum of a counter family on the operator's /metrics.
async fn metric_sum(op: &Operator, family: &str) -> u64 {
    let Some(addr) = op.metrics_addr() else {
        return 0;
    };
    let Some((_, body)) = harness::http_get(addr, "/metrics").await else {
        return 0;
    };
    body.lines()
        .filter(|l| l.starts_with(family) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn count_ready(api: &Api<ExternalSecret>) -> usize {
    let Ok(list) = api.list(&ListParams::default()).await else {
        return 0;
    };
    list.items
        .iter()
        .filter(|es| {
            es.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == arnsync::api::ConditionStatus::True)
            })
        })
        .count()
}

async fn scenario(n: usize) -> Figures {
    let secrets = (n / SHARING).max(1);
    let params = (n / SHARING).max(1);
    eprintln!(
        "scale: N={n}: preparing {secrets} secrets, {params} parameters, {n} ExternalSecrets"
    );
    let env = Env::start_without_operator().await;
    for ns in 0..NAMESPACES {
        env.namespace(&format!("bench-{ns}"), json!({})).await;
        env.store(&format!("bench-{ns}")).await;
    }
    futures::stream::iter(0..secrets.max(params))
        .for_each_concurrent(8, |i| {
            let env = &env;
            async move {
                if i < secrets {
                    env.put_secret(
                        &format!("bench/s{i:04}"),
                        &format!(r#"{{"password":"p{i}-v1","user":"u{i}"}}"#),
                    )
                    .await;
                }
                if i < params {
                    env.put_param(
                        &format!("/bench/p{i:04}"),
                        &format!("param{i}-v1"),
                        "String",
                    )
                    .await;
                }
            }
        })
        .await;
    let manifests: Vec<serde_json::Value> = (0..n)
        .map(|i| external_secret(i, secrets, params))
        .collect();
    futures::stream::iter(manifests.iter().cloned())
        .for_each_concurrent(8, |m| env.apply(m))
        .await;
    env.proxy.reset_counts();
    env.kube.reset_counters();

    // First sync from an empty cache.
    eprintln!("scale: N={n}: starting the operator");
    let op = env.spawn_operator_logging(
        "bench",
        // The defaults, which the test harness otherwise shortens or turns off.
        &[
            "--rotation-check-interval",
            &format!("{CHECK_SECONDS}s"),
            "--read-sharing",
            "2s",
            "--tracked-read-sharing",
            "15m",
        ],
        "info",
    );
    let started = Instant::now();
    let es_api: Api<ExternalSecret> = Api::all(env.client.clone());
    loop {
        if count_ready(&es_api).await >= n {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            panic!("N={n}: not every ExternalSecret Ready after 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_ready = started.elapsed();
    let first_sync = env.proxy.counts();
    let first_sync_values = ["BatchGetSecretValue", "GetSecretValue"]
        .iter()
        .map(|op| env.proxy.count("secretsmanager", op))
        .sum::<u64>()
        + env.proxy.count("ssm", "GetParameter")
        + env.proxy.count_decrypted("ssm", "GetParameters");
    eprintln!(
        "scale: N={n}: all Ready after {:.1}s",
        all_ready.as_secs_f64()
    );

    // Idle rotation checks: the calls between two ListSecrets rounds, over 3 checks.
    tokio::time::sleep(Duration::from_secs(CHECK_SECONDS + 1)).await;
    env.proxy.reset_counts();
    let idle_checks = 3;
    tokio::time::sleep(Duration::from_secs(CHECK_SECONDS * idle_checks)).await;
    let idle = env.proxy.counts();
    let idle_per_check = idle
        .into_iter()
        .map(|(k, v)| (k, v.div_ceil(idle_checks)))
        .collect();
    let steady_kib = proc_status_kib(op.pid(), "VmRSS:");

    // A rotation of 10 secrets, until every Secret using them holds the new value.
    let rotated_secrets = 10.min(secrets);
    env.proxy.reset_counts();
    let rotated_at = Instant::now();
    for s in 0..rotated_secrets {
        env.sm
            .put_secret_value()
            .secret_id(format!("bench/s{s:04}"))
            .secret_string(format!(r#"{{"password":"p{s}-v2","user":"u{s}"}}"#))
            .send()
            .await
            .unwrap();
    }
    for i in (0..n).filter(|i| i % secrets < rotated_secrets) {
        let want = format!("p{}-v2", i % secrets);
        env.eventually("rotated Secret", Duration::from_secs(300), || async {
            let s =
                Api::<Secret>::namespaced(env.client.clone(), &format!("bench-{}", i % NAMESPACES))
                    .get_opt(&format!("es{i:05}"))
                    .await
                    .ok()??;
            (s.data?.get("password")?.0 == want.as_bytes()).then_some(())
        })
        .await;
    }
    let rotation_time = rotated_at.elapsed();
    let rotation = env.proxy.counts();

    // A full resync of unchanged objects: a label on every store wakes all its ExternalSecrets
    // (its generation does not move, so nothing needs reading).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reconciles_before = metric_sum(&op, "arnsync_reconciles_total").await;
    let kube_before = env.kube.request_counts();
    for ns in 0..NAMESPACES {
        Api::<SecretStore>::namespaced(env.client.clone(), &format!("bench-{ns}"))
            .patch(
                "aws",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"bench/resync": "1"}}})),
            )
            .await
            .unwrap();
    }
    let resync_started = Instant::now();
    while metric_sum(&op, "arnsync_reconciles_total").await < reconciles_before + n as u64
        && resync_started.elapsed() < Duration::from_secs(300)
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resync_reconciles = metric_sum(&op, "arnsync_reconciles_total").await - reconciles_before;
    let mut resync = diff(&env.kube.request_counts(), &kube_before);
    // The bench's own store patches.
    if let Some(v) = resync.get_mut(&("patch".to_string(), "secretstores".to_string())) {
        *v -= NAMESPACES as u64;
    }
    resync.retain(|_, v| *v > 0);
    let peak_kib = proc_status_kib(op.pid(), "VmHWM:");

    let latencies = server_latencies(&env).await;
    drop(op);
    Figures {
        n,
        distinct_secrets: secrets,
        distinct_params: params,
        all_ready,
        first_sync,
        first_sync_values,
        idle_per_check,
        idle_checks,
        rotation,
        rotation_time,
        rotated_secrets,
        resync,
        resync_reconciles,
        peak_kib,
        steady_kib,
        latencies,
        eso: EsoModel::of(&manifests),
    }
}

/// The test server's latencies with the scenario's objects in it: (what, median, max) of 20.
async fn server_latencies(env: &Env) -> Vec<(String, Duration, Duration)> {
    async fn time<F, Fut>(what: &str, mut f: F) -> (String, Duration, Duration)
    where
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut samples = vec![];
        for i in 0..20 {
            let t = Instant::now();
            f(i).await;
            samples.push(t.elapsed());
        }
        samples.sort();
        (
            what.to_string(),
            samples[samples.len() / 2],
            samples[samples.len() - 1],
        )
    }
    let secrets: Api<Secret> = Api::all(env.client.clone());
    let in_ns: Api<Secret> = Api::namespaced(env.client.clone(), "bench-0");
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "bench-0");
    let apply = PatchParams::apply("bench").force();
    let mut out = vec![
        time("LIST all Secrets", |_| async {
            secrets.list(&ListParams::default()).await.unwrap();
        })
        .await,
        time("LIST Secrets of a namespace by label", |_| async {
            in_ns
                .list(&ListParams::default().labels("arnsync.io/managed=true"))
                .await
                .unwrap();
        })
        .await,
        time("GET a Secret", |_| async {
            in_ns.get("es00000").await.unwrap();
        })
        .await,
        time("server-side apply a ConfigMap", |i| {
            let cms = cms.clone();
            let apply = apply.clone();
            async move {
                cms.patch(
                    &format!("bench-{i}"),
                    &apply,
                    &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"i": i.to_string()}})),
                )
                .await
                .unwrap();
            }
        })
        .await,
    ];
    // Watch delivery: from a write to its event on a watch opened with every object present.
    let mut samples = vec![];
    for i in 0..20 {
        let list = cms.list(&ListParams::default()).await.unwrap();
        let rv = list.metadata.resource_version.unwrap_or_default();
        let mut stream = cms
            .watch(&WatchParams::default(), &rv)
            .await
            .unwrap()
            .boxed();
        let t = Instant::now();
        cms.patch(
            &format!("bench-{i}"),
            &apply,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"i": "watched"}}),
            ),
        )
        .await
        .unwrap();
        while let Some(ev) = stream.next().await {
            if matches!(ev, Ok(WatchEvent::Modified(_))) {
                break;
            }
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    out.push((
        "a write reaching an open watch".to_string(),
        samples[10],
        samples[19],
    ));
    out
}

fn ops_line(c: &Counts) -> String {
    if c.is_empty() {
        return "none".into();
    }
    c.iter()
        .map(|((_, op), n)| format!("{n} {op}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verbs_line(c: &Counts) -> String {
    let mut by_verb: BTreeMap<&str, u64> = BTreeMap::new();
    for ((verb, _), n) in c {
        *by_verb.entry(verb).or_default() += n;
    }
    if by_verb.is_empty() {
        return "none".into();
    }
    by_verb
        .iter()
        .map(|(v, n)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_table(results: &[Figures]) {
    for f in results {
        println!(
            "\n## N = {} ExternalSecrets (2 keys each over {} secrets and {} parameters, {} namespaces)",
            f.n, f.distinct_secrets, f.distinct_params, NAMESPACES
        );
        print_counts("AWS calls, first sync", &f.first_sync);
        print_counts(
            &format!("AWS calls per idle check (mean of {})", f.idle_checks),
            &f.idle_per_check,
        );
        print_counts("AWS calls, rotation of 10 secrets", &f.rotation);
        print_counts("Kubernetes requests, full resync", &f.resync);
        println!("  test server with these objects (median / max of 20):");
        for (what, p50, max) in &f.latencies {
            println!(
                "    {what:<40} {:>8.1} ms / {:>8.1} ms",
                p50.as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3
            );
        }
    }
    println!(
        "\n| | {} |",
        results
            .iter()
            .map(|f| format!("arnsync, N = {} | ESO-style, N = {}", f.n, f.n))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|---|".repeat(results.len()));
    let row = |name: &str, cells: &dyn Fn(&Figures) -> (String, String)| {
        let cols: Vec<String> = results
            .iter()
            .map(|f| {
                let (a, e) = cells(f);
                format!("{a} | {e}")
            })
            .collect();
        println!("| {name} | {} |", cols.join(" | "));
    };
    row("time to all Ready (empty cache)", &|f| {
        (
            format!("{:.1} s", f.all_ready.as_secs_f64()),
            "not modeled".into(),
        )
    });
    row("first sync: value calls", &|f| {
        (
            format!(
                "{} (all calls: {})",
                f.first_sync_values,
                ops_line(&f.first_sync)
            ),
            format!(
                "{} ({} GetSecretValue, {} GetParameter)",
                f.eso.value_calls(),
                f.eso.get_secret_value,
                f.eso.get_parameter
            ),
        )
    });
    row("physical limit (distinct values / batch size)", &|f| {
        let limit = f.distinct_secrets.div_ceil(20) + f.distinct_params.div_ceil(10);
        (format!("{limit}"), format!("{limit}"))
    });
    row("STS sessions per refresh, store with a role", &|f| {
        (
            "1 per identity, renewed before expiry".into(),
            format!("{}", f.eso.reconciles),
        )
    });
    row(&format!("per idle check ({CHECK_SECONDS} s here)"), &|f| {
        (ops_line(&f.idle_per_check), "none (no checks)".into())
    });
    row(
        "AWS calls per hour, idle (checks every 60 s; refresh 1 h)",
        &|f| {
            let per_check: u64 = f.idle_per_check.values().sum();
            (
                format!("{}", per_check * 60),
                format!("{}", f.eso.value_calls()),
            )
        },
    );
    row("rotation of 10 secrets: calls", &|f| {
        (ops_line(&f.rotation), "0 until the next refresh".into())
    });
    row("rotation of 10 secrets: time to every Secret", &|f| {
        (
            format!(
                "{:.1} s ({} Secrets)",
                f.rotation_time.as_secs_f64(),
                f.n / f.distinct_secrets * f.rotated_secrets
            ),
            format!("up to {REFRESH_SECONDS} s (refreshInterval)"),
        )
    });
    row(
        "Kubernetes requests, full resync of unchanged objects",
        &|f| {
            (
                format!(
                    "{} ({} reconciles)",
                    verbs_line(&f.resync),
                    f.resync_reconciles
                ),
                "not modeled".into(),
            )
        },
    );
    row("operator memory: peak / steady RSS", &|f| {
        (
            format!("{} / {}", mib(f.peak_kib), mib(f.steady_kib)),
            "not modeled".into(),
        )
    });
}
