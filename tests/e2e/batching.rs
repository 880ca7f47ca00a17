//! Batched first reads and wave sharing, end to end: ExternalSecrets that share 50 secrets and
//! 50 parameters sync with ceil(50/20) + ceil(50/10) value calls, and ExternalSecrets added
//! after the read-sharing window cost no value call at all while the version watcher follows
//! those values.

use std::time::Duration;

use serde_json::json;

use crate::harness::Env;

const KEYS: usize = 50;

/// ExternalSecret `name` reading `keys` from store `store` into keys `v0`, `v1`, ...
fn es(name: &str, store: &str, keys: &[String]) -> serde_json::Value {
    let data: Vec<serde_json::Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"secretKey": format!("v{i}"), "remoteRef": {"key": k}}))
        .collect();
    json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": "app"},
        "spec": {"secretStoreRef": {"name": store}, "refreshInterval": "1h", "data": data}
    })
}

fn secret_name(i: usize) -> String {
    format!("wave/s{:02}", i % KEYS)
}

fn param_name(i: usize) -> String {
    format!("/wave/p{:02}", i % KEYS)
}

fn secret_value(i: usize) -> String {
    format!("sv-{i}-Quebec")
}

fn param_value(i: usize) -> String {
    format!("pv-{i}-Romeo")
}

/// Value reads the proxy saw: BatchGetSecretValue, GetSecretValue, GetParameters with
/// decryption (a version check's GetParameters asks for none), GetParameter.
fn value_calls(env: &Env) -> u64 {
    let p = &env.proxy;
    p.count("secretsmanager", "BatchGetSecretValue")
        + p.count("secretsmanager", "GetSecretValue")
        + p.count_decrypted("ssm", "GetParameters")
        + p.count("ssm", "GetParameter")
}

/// 75 ExternalSecrets per service, each reading two of 50 keys (every key read by three).
fn wave(first: usize, count: usize) -> Vec<(String, serde_json::Value, [usize; 2])> {
    (first..first + count)
        .flat_map(|i| {
            let keys = [i % KEYS, (i + KEYS / 2) % KEYS];
            [
                (
                    format!("sm-{i:03}"),
                    es(&format!("sm-{i:03}"), "aws", &keys.map(secret_name)),
                    keys,
                ),
                (
                    format!("ps-{i:03}"),
                    es(&format!("ps-{i:03}"), "aws-ssm", &keys.map(param_name)),
                    keys,
                ),
            ]
        })
        .collect()
}

async fn synced(env: &Env, ess: &[(String, serde_json::Value, [usize; 2])]) {
    for (name, _, keys) in ess {
        let value: fn(usize) -> String = if name.starts_with("sm-") {
            secret_value
        } else {
            param_value
        };
        for (slot, k) in keys.iter().enumerate() {
            env.secret_value("app", name, &format!("v{slot}"), value(*k).as_bytes())
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_wave_reads_each_value_once_in_batches() {
    let mut env = Env::start_without_operator().await;
    env.namespace("app", json!({})).await;
    env.store("app").await;
    for i in 0..KEYS {
        env.put_secret(&secret_name(i), &secret_value(i)).await;
        env.put_param(&param_name(i), &param_value(i), "SecureString")
            .await;
    }
    let first = wave(0, 75);
    for (_, manifest, _) in &first {
        env.apply(manifest.clone()).await;
    }
    // Every ExternalSecret is there when the operator starts: its first sync is one wave. A
    // batch window as wide as the start of that wave (full batches go at once; only the last,
    // partial one waits for it; 10 s, so that a loaded CI machine still starts the wave inside
    // it), and no rotation checks but the first.
    env.proxy.reset_counts();
    env.start_operator_with(&[
        "--read-batch-window",
        "10s",
        "--rotation-check-interval",
        "1h",
        "--tracked-read-sharing",
        "15m",
    ]);
    synced(&env, &first).await;
    let counts = env.proxy.counts();
    let sm_batches = env.proxy.count("secretsmanager", "BatchGetSecretValue");
    let ssm_batches = env.proxy.count_decrypted("ssm", "GetParameters");
    assert_eq!(
        value_calls(&env),
        (KEYS.div_ceil(20) + KEYS.div_ceil(10)) as u64,
        "one read per distinct value, in full batches: {counts:?}"
    );
    assert_eq!((sm_batches, ssm_batches), (3, 5), "{counts:?}");

    // ExternalSecrets added well after the read-sharing window (200 ms here) that read the same
    // AWSCURRENT and latest values: the version watcher follows those values and has seen no
    // move, so no value is read again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = wave(75, 30);
    for (_, manifest, _) in &later {
        env.apply(manifest.clone()).await;
    }
    synced(&env, &later).await;
    assert_eq!(
        value_calls(&env),
        (KEYS.div_ceil(20) + KEYS.div_ceil(10)) as u64,
        "{:?}",
        env.proxy.counts()
    );
    env.assert_no_leaks(&[&secret_value(1), &param_value(1)])
        .await;
}

/// An identity allowed GetSecretValue but not BatchGetSecretValue still syncs, one secret per
/// call, and its store says why (and how to get the batches back).
#[tokio::test(flavor = "multi_thread")]
async fn denied_batch_reads_fall_back_to_single_reads_and_the_store_says_so() {
    use aws_fault_proxy::{Fault, FaultKind};
    use kube::api::{Api, Patch, PatchParams};

    let mut env = Env::start_without_operator().await;
    env.namespace("app", json!({})).await;
    env.store("app").await;
    for i in 0..4 {
        env.put_secret(&secret_name(i), &secret_value(i)).await;
    }
    env.proxy.inject(Fault::on(
        "secretsmanager",
        "BatchGetSecretValue",
        FaultKind::AccessDenied,
    ));
    let ess: Vec<_> = (0..2)
        .map(|i| {
            let keys = [2 * i, 2 * i + 1];
            let name = format!("sm-{i:03}");
            (name.clone(), es(&name, "aws", &keys.map(secret_name)), keys)
        })
        .collect();
    for (_, manifest, _) in &ess {
        env.apply(manifest.clone()).await;
    }
    env.start_operator_with(&["--read-batch-window", "1s"]);
    synced(&env, &ess).await;
    assert!(env.proxy.count("secretsmanager", "GetSecretValue") >= 4);

    // The store's next check (a label wakes it) reports the fallback.
    let stores: Api<arnsync::api::SecretStore> = Api::namespaced(env.client.clone(), "app");
    stores
        .patch(
            "aws",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"checked": "again"}}})),
        )
        .await
        .unwrap();
    let message = env
        .eventually(
            "the store's BatchReads condition",
            Duration::from_secs(30),
            || async {
                let store = stores.get("aws").await.ok()?;
                let c = store
                    .status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == "BatchReads")?;
                (c.reason == "BatchGetSecretValueDenied").then_some(c.message)
            },
        )
        .await;
    assert!(
        message.contains("secretsmanager:BatchGetSecretValue") && message.contains("allow it"),
        "{message}"
    );
}

/// Wave sharing never answers a force-sync: a value changed in AWS that no rotation check has
/// seen yet (checks hourly here) reaches the Secret when the ExternalSecret asks for it.
#[tokio::test(flavor = "multi_thread")]
async fn force_sync_reads_aws_even_while_a_value_is_shared() {
    use kube::api::{Api, Patch, PatchParams};

    let mut env = Env::start_without_operator().await;
    env.namespace("app", json!({})).await;
    env.store("app").await;
    env.put_secret(&secret_name(0), &secret_value(0)).await;
    env.apply(es("forced", "aws", &[secret_name(0)])).await;
    env.start_operator_with(&[
        "--rotation-check-interval",
        "1h",
        "--tracked-read-sharing",
        "15m",
    ]);
    env.secret_value("app", "forced", "v0", secret_value(0).as_bytes())
        .await;
    env.sm
        .put_secret_value()
        .secret_id(secret_name(0))
        .secret_string("sv-0-Tango")
        .send()
        .await
        .unwrap();
    Api::<arnsync::api::ExternalSecret>::namespaced(env.client.clone(), "app")
        .patch(
            "forced",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"arnsync.io/force-sync": "1"}}})),
        )
        .await
        .unwrap();
    env.secret_value("app", "forced", "v0", b"sv-0-Tango").await;
}
