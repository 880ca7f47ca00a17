//! Kubernetes API traffic of the operator: a reconcile that finds nothing to do reads nothing
//! from the API server and writes nothing (stores, namespaces, credentials Secrets and target
//! Secrets come from watched caches).

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::harness::{http_get, Env, Operator};
use arnsync::api::{ClusterSecretStore, SecretStore};

const NS: &str = "reads";
/// ExternalSecrets per store kind.
const EACH: usize = 4;

/// `arnsync_reconciles_total` of ExternalSecrets, all reasons.
async fn reconciles(op: &Operator) -> Option<u64> {
    let (code, body) = http_get(op.metrics_addr()?, "/metrics").await?;
    (code == 200).then_some(())?;
    Some(
        body.lines()
            .filter(|l| {
                l.starts_with("arnsync_reconciles_total{") && l.contains("kind=\"ExternalSecret\"")
            })
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum::<f64>() as u64,
    )
}

type Counts = BTreeMap<(String, String), u64>;

/// The requests in `after` that were not in `before`, without watches (long-lived; a watch
/// that reconnects is no read of an unchanged object).
fn new_requests(before: &Counts, after: &Counts) -> Counts {
    after
        .iter()
        .filter(|((verb, _), _)| verb != "watch")
        .filter_map(|(k, n)| {
            let d = n - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Waits until neither the API server's request counters nor the operator's reconcile count
/// move between several looks in a row; returns both.
async fn settled(env: &Env, op: &Operator) -> (Counts, u64) {
    let mut last = (env.kube.request_counts(), reconciles(op).await.unwrap_or(0));
    let mut quiet = 0;
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = (env.kube.request_counts(), reconciles(op).await.unwrap_or(0));
        let calm = new_requests(&last.0, &now.0).is_empty() && now.1 == last.1;
        quiet = if calm { quiet + 1 } else { 0 };
        last = now;
        if quiet >= 10 {
            return last;
        }
    }
    panic!("the operator never went quiet\n--- log ---\n{}", op.log());
}

/// AWS reads of secret values, through the proxy.
fn value_reads(env: &Env) -> u64 {
    env.proxy.count("secretsmanager", "GetSecretValue")
        + env.proxy.count("secretsmanager", "BatchGetSecretValue")
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciles_of_unchanged_objects_make_no_api_requests() {
    let env = Env::start_without_operator().await;
    let op = env.spawn_operator("reads", &[]);
    env.namespace(NS, json!({"team": "a"})).await;
    env.put_secret("prod/reads", "reads-Quebec-1").await;

    // Static keys from a Secret, for both stores (moto takes any keys).
    env.apply(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "aws-keys", "namespace": NS},
        "stringData": {"id": "AKIAREADS", "secret": "sk-Romeo-2"}}))
        .await;
    let secret_ref = |ns: Option<&str>| {
        let mut sel = json!({"accessKeyIDSecretRef": {"name": "aws-keys", "key": "id"},
                             "secretAccessKeySecretRef": {"name": "aws-keys", "key": "secret"}});
        if let Some(ns) = ns {
            sel["accessKeyIDSecretRef"]["namespace"] = json!(ns);
            sel["secretAccessKeySecretRef"]["namespace"] = json!(ns);
        }
        json!({"auth": {"secretRef": sel}})
    };
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "keys", "namespace": NS},
        "spec": env.store_spec("SecretsManager", secret_ref(None))
    }))
    .await;
    let mut cluster_spec = env.store_spec("SecretsManager", secret_ref(Some(NS)));
    cluster_spec["conditions"] = json!([{"namespaceSelector": {"matchLabels": {"team": "a"}}}]);
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ClusterSecretStore",
        "metadata": {"name": "shared"}, "spec": cluster_spec
    }))
    .await;
    env.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dsn", "namespace": NS},
        "data": {"dsn": "postgres://app:{{ .value }}@db"}}))
        .await;

    let mut names = vec![];
    for (kind, store) in [("SecretStore", "keys"), ("ClusterSecretStore", "shared")] {
        for i in 0..EACH {
            let name = format!("{}-{i}", store);
            let mut spec = json!({
                "secretStoreRef": {"kind": kind, "name": store},
                "refreshInterval": "1h",
                "data": [{"secretKey": "value", "remoteRef": {"key": "prod/reads"}}]
            });
            if i == 0 {
                spec["target"] = json!({"template": {"templateFrom": [
                    {"configMap": {"name": "dsn", "items": [{"key": "dsn"}]}}]}});
            }
            env.apply(json!({
                "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
                "metadata": {"name": name, "namespace": NS}, "spec": spec
            }))
            .await;
            names.push((name, i == 0));
        }
    }
    for (name, templated) in &names {
        if *templated {
            env.secret_value(NS, name, "dsn", b"postgres://app:reads-Quebec-1@db")
                .await;
        } else {
            env.secret_value(NS, name, "value", b"reads-Quebec-1").await;
        }
        env.ready_reason(NS, name, "SecretSynced").await;
    }
    let (before, reconciled) = settled(&env, &op).await;
    let (reads_before, log_before) = (value_reads(&env), op.log().len());

    // A label on each store changes neither generation: every ExternalSecret of both is
    // reconciled again, and finds nothing to do.
    let label = json!({"metadata": {"labels": {"resync": "1"}}});
    let pp = PatchParams::default();
    Api::<SecretStore>::namespaced(env.client.clone(), NS)
        .patch("keys", &pp, &Patch::Merge(&label))
        .await
        .unwrap();
    Api::<ClusterSecretStore>::all(env.client.clone())
        .patch("shared", &pp, &Patch::Merge(&label))
        .await
        .unwrap();
    let all = names.len() as u64;
    env.eventually(
        "every ExternalSecret reconciled again",
        Duration::from_secs(30),
        || async { (reconciles(&op).await? >= reconciled + all).then_some(()) },
    )
    .await;
    let (after, _) = settled(&env, &op).await;
    // Each ExternalSecret was reconciled again (the operator's log says so, per object).
    let log = op.log();
    let since = &log[log_before..];
    for (name, _) in &names {
        let line = format!("ExternalSecret {NS}/{name} ");
        assert!(
            since
                .lines()
                .any(|l| l.contains("reconciled") && l.contains(&line)),
            "{name} was not reconciled after the store labels changed\n--- log ---\n{since}"
        );
    }

    let mut requests = new_requests(&before, &after);
    // The test's own two label patches.
    for (resource, n) in [("secretstores", 1), ("clustersecretstores", 1)] {
        let k = ("patch".to_string(), resource.to_string());
        let left = requests.get(&k).copied().unwrap_or(0).saturating_sub(n);
        if left == 0 {
            requests.remove(&k);
        } else {
            requests.insert(k, left);
        }
    }
    assert!(
        requests.is_empty(),
        "the operator made Kubernetes API requests while reconciling unchanged objects: {requests:?}\n--- log ---\n{}",
        op.log()
    );
    // Nothing was read from AWS either.
    assert_eq!(value_reads(&env), reads_before, "secret values read again");
}
