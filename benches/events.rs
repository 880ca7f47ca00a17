//! Rotation-by-event benchmark: prints figures, asserts nothing about time.
//!
//! `cargo bench --bench events` (env `ARNSYNC_BENCH_ES`, default 50; `ARNSYNC_BENCH_KEYS`,
//! default 10; `ARNSYNC_BENCH_ROTATIONS`, default 5). Runs the real operator against the
//! Kubernetes test server and moto behind the call-counting proxy, with one store reading an SQS
//! queue that an EventBridge rule fills and polling at a one-hour safety interval, and reports:
//! for each rotation (PutSecretValue, then its `Secret Label Updated` event), the time from the
//! event's `put_events` to every Secret using the key holding the new value, the AWS calls it
//! cost, and the calls of an idle queue over 30 seconds.

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

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let n = env_usize("ARNSYNC_BENCH_ES", 50);
    let k = env_usize("ARNSYNC_BENCH_KEYS", 10).max(1);
    let rotations = env_usize("ARNSYNC_BENCH_ROTATIONS", 5).max(1);
    let mut env = Env::start_without_operator().await;
    let config = env.moto_config();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = sqs
        .create_queue()
        .queue_name("bench-events")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    env.event_rule(
        "labels",
        "bench-events",
        json!({"source": ["aws.secretsmanager"], "detail-type": ["Secret Label Updated"]}),
    )
    .await;
    env.namespace("bench", json!({})).await;
    let mut spec = env.store_spec("SecretsManager", json!({}));
    spec["arnsync"]["eventQueue"] = json!(queue);
    env.apply(
        json!({"apiVersion": "arnsync.io/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "aws", "namespace": "bench"}, "spec": spec}),
    )
    .await;
    for i in 0..k {
        env.put_secret(&format!("bench/s{i}"), &format!("s{i}-v0"))
            .await;
    }
    env.start_operator_with(&[
        "--rotation-check-interval",
        "1h",
        "--event-safety-interval",
        "1h",
    ]);
    for i in 0..n {
        env.apply(json!({
            "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
            "metadata": {"name": format!("es{i:04}"), "namespace": "bench"},
            "spec": {"secretStoreRef": {"name": "aws"}, "refreshInterval": "1h", "data": [
                {"secretKey": "value", "remoteRef": {"key": format!("bench/s{}", i % k)}}]}
        }))
        .await;
    }
    for i in 0..n {
        let v = format!("s{}-v0", i % k);
        env.secret_value("bench", &format!("es{i:04}"), "value", v.as_bytes())
            .await;
    }
    // The queue is read once the store's consumer answered; give it a moment, then idle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.proxy.reset_counts();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let idle = env.proxy.counts();

    println!(
        "arnsync event benchmark: {n} ExternalSecrets over {k} secrets, polling at 1h, {rotations} rotations by event"
    );
    print_counts(
        "AWS calls of an idle queue over 30 s (long polls of 20 s)",
        &idle,
    );
    let mut times = vec![];
    for r in 1..=rotations {
        let key = (r - 1) % k;
        let value = format!("s{key}-v{r}");
        let version = env
            .sm
            .put_secret_value()
            .secret_id(format!("bench/s{key}"))
            .secret_string(&value)
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        env.proxy.reset_counts();
        env.label_updated(&format!("bench/s{key}"), &version).await;
        let sent = Instant::now();
        for i in (key..n).step_by(k) {
            env.secret_value("bench", &format!("es{i:04}"), "value", value.as_bytes())
                .await;
        }
        let took = sent.elapsed();
        times.push(took);
        let users = (key..n).step_by(k).count();
        println!("  rotation {r}: event to all {users} Secrets using bench/s{key}: {took:?}");
        print_counts("    AWS calls", &env.proxy.counts());
    }
    times.sort();
    println!(
        "  event to Secrets: median {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
}
