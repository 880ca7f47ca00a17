//! Scale benchmark: prints figures, asserts nothing about time.
//!
//! `cargo bench --bench scale` (env `ARNSYNC_BENCH_ES`, default 300; `ARNSYNC_BENCH_KEYS`,
//! default 30). Runs the real operator against the Kubernetes test server and moto behind the
//! call-counting proxy, and reports: time to sync N ExternalSecrets that share K Secrets Manager
//! secrets and K parameters, AWS calls by operation for that first sync, calls per idle rotation
//! check, the calls and time for one rotation to reach every Secret using the key, and the
//! operator's peak resident memory.

#[allow(dead_code)]
#[path = "common.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/e2e/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use serde_json::json;

use common::{env_usize, print_counts};
use harness::Env;

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let n = env_usize("ARNSYNC_BENCH_ES", 300);
    let k = env_usize("ARNSYNC_BENCH_KEYS", 30).max(1);
    let mut env = Env::start_without_operator().await;
    env.namespace("bench", json!({})).await;
    env.store("bench").await;
    for i in 0..k {
        env.put_secret(
            &format!("bench/s{i}"),
            &format!(r#"{{"password":"p{i}-v1","user":"u{i}"}}"#),
        )
        .await;
        env.put_param(
            &format!("/bench/p{i}"),
            &format!("param{i}-v1"),
            "SecureString",
        )
        .await;
    }
    env.start_operator_with(&[
        "--rotation-check-interval",
        "2s",
        "--restart-debounce",
        "1s",
        "--read-sharing",
        "2s",
    ]);

    let started = Instant::now();
    for i in 0..n {
        let key = i % k;
        env.apply(json!({
            "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
            "metadata": {"name": format!("es{i:04}"), "namespace": "bench"},
            "spec": {"secretStoreRef": {"name": "aws"}, "refreshInterval": "1h", "data": [
                {"secretKey": "password", "remoteRef": {"key": format!("bench/s{key}"), "property": "password"}},
                {"secretKey": "param", "remoteRef": {"key": format!("arn:aws:ssm:us-east-1:123456789012:parameter/bench/p{key}")}}
            ]}
        }))
        .await;
    }
    let applied = started.elapsed();
    for i in 0..n {
        let key = i % k;
        env.secret_value(
            "bench",
            &format!("es{i:04}"),
            "param",
            format!("param{key}-v1").as_bytes(),
        )
        .await;
    }
    let synced = started.elapsed();
    let first_sync = env.proxy.counts();

    // Idle checks.
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.proxy.reset_counts();
    let idle_start = env.proxy.count("secretsmanager", "ListSecrets");
    while env.proxy.count("secretsmanager", "ListSecrets") < idle_start + 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle = env.proxy.counts();

    // One rotation of a shared key.
    env.proxy.reset_counts();
    let rotated_at = Instant::now();
    env.sm
        .put_secret_value()
        .secret_id("bench/s0")
        .secret_string(r#"{"password":"p0-v2","user":"u0"}"#)
        .send()
        .await
        .unwrap();
    for i in (0..n).step_by(k) {
        env.secret_value("bench", &format!("es{i:04}"), "password", b"p0-v2")
            .await;
    }
    let propagated = rotated_at.elapsed();
    let rotation = env.proxy.counts();
    let rss = env.operator_pid().and_then(peak_rss_kib);

    println!("arnsync scale benchmark: {n} ExternalSecrets sharing {k} secrets and {k} parameters");
    println!(
        "  applied in {:.2}s; all Secrets synced {:.2}s after the first apply",
        applied.as_secs_f64(),
        synced.as_secs_f64()
    );
    print_counts("AWS calls for the first sync", &first_sync);
    print_counts("AWS calls for 3 idle rotation checks (interval 2s)", &idle);
    println!(
        "  rotation of one secret used by {} ExternalSecrets reached all of them in {:.2}s (check interval 2s)",
        n.div_ceil(k),
        propagated.as_secs_f64()
    );
    print_counts("AWS calls from the rotation until then", &rotation);
    match rss {
        Some(kib) => println!(
            "  operator peak resident memory: {:.1} MiB",
            kib as f64 / 1024.0
        ),
        None => println!("  operator peak resident memory: unavailable"),
    }
}
