//! Replica-region failover (`provider.aws.failoverRegions`): an outage of the primary region
//! moves Secrets Manager reads and version checks to the first listed replica region; access
//! denied and not found do not; the primary serves again once it answers.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_fault_proxy::{Fault, FaultKind};
use aws_sdk_secretsmanager::types::ReplicaRegionType;
use k8s_openapi::api::events::v1::Event;
use kube::api::Api;
use serde_json::json;

use crate::harness::{data_str, Env};
use arnsync::api::SecretStore;

const PRIMARY: &str = "us-east-1";
const REPLICA: &str = "us-west-2";
/// Listed after the replica: never read while the replica answers.
const SECOND: &str = "eu-west-1";
/// Not listed: holds a secret of the same name that must never be read.
const UNLISTED: &str = "eu-central-1";

fn es(name: &str, key: &str) -> serde_json::Value {
    json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": "app"},
        "spec": {"secretStoreRef": {"name": "aws"}, "refreshInterval": "1h",
                 "data": [{"secretKey": "value", "remoteRef": {"key": key}}]}
    })
}

/// Creates `name` in the primary region, replicated to [`REPLICA`]; returns its ARN.
async fn replicated(env: &Env, name: &str, value: &str) -> String {
    let out = env
        .sm
        .create_secret()
        .name(name)
        .secret_string(value)
        .add_replica_regions(ReplicaRegionType::builder().region(REPLICA).build())
        .send()
        .await
        .expect("create replicated secret");
    out.arn.expect("arn")
}

async fn serving_region(env: &Env) -> Option<String> {
    Api::<SecretStore>::namespaced(env.client.clone(), "app")
        .get("aws")
        .await
        .ok()?
        .status?
        .serving_region
}

async fn wait_serving(env: &Env, region: &str, within: Duration) {
    env.eventually(&format!("store served from {region}"), within, || async {
        (serving_region(env).await.as_deref() == Some(region)).then_some(())
    })
    .await;
}

async fn store_event(env: &Env, reason: &str) -> String {
    env.eventually(
        &format!("store event {reason}"),
        Duration::from_secs(30),
        || async {
            let events: Api<Event> = Api::namespaced(env.client.clone(), "app");
            let list = events.list(&Default::default()).await.ok()?;
            list.items.into_iter().find_map(|e| {
                let about = e.regarding.as_ref()?.kind.as_deref() == Some("SecretStore");
                (about && e.reason.as_deref() == Some(reason)).then(|| e.note.unwrap_or_default())
            })
        },
    )
    .await
}

/// Secrets Manager calls per region since the last reset.
fn regions_called(env: &Env) -> BTreeSet<String> {
    env.proxy
        .counts_by_region()
        .into_iter()
        .filter(|((_, service, _), n)| service == "secretsmanager" && *n > 0)
        .map(|((region, _, _), _)| region)
        .collect()
}

fn sm_calls_in(env: &Env, region: &str) -> u64 {
    env.proxy
        .counts_by_region()
        .into_iter()
        .filter(|((r, service, _), _)| r == region && service == "secretsmanager")
        .map(|(_, n)| n)
        .sum()
}

/// `arnsync_failed_over_sources` from the operator's /metrics.
async fn failed_over_sources(env: &Env) -> Option<u64> {
    let log = env.operator_log();
    let line = log.lines().find(|l| l.contains("arnsync started"))?;
    let rest = &line[line.find("addr=")? + "addr=".len()..];
    let addr = rest
        .split(|c: char| c.is_whitespace() || c == '"')
        .find(|s| !s.is_empty())?
        .parse()
        .ok()?;
    let (code, body) = crate::harness::http_get(addr, "/metrics").await?;
    (code == 200).then_some(())?;
    body.lines()
        .find(|l| l.starts_with("arnsync_failed_over_sources "))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_of_the_primary_region_is_served_from_the_replica_and_the_primary_returns() {
    let mut env = Env::start_without_operator().await;
    env.start_operator_with(&[
        "--rotation-check-interval",
        "1s",
        "--restart-debounce",
        "1s",
        "--failover-retry",
        "2s",
    ]);
    env.namespace("app", json!({})).await;
    let rollouts = env.rollouts("app").await;

    replicated(&env, "prod/db", "pw-Kilo-1").await;
    let arn = replicated(&env, "prod/arn", "arn-Kilo-1").await;
    assert!(arn.contains(":us-east-1:"), "{arn}");
    // The same name in a region the store does not list, and a secret only the replica region
    // has (not a replica): neither may ever be read.
    let (unlisted, _) = env.aws_in(UNLISTED);
    unlisted
        .create_secret()
        .name("prod/db")
        .secret_string("wrong-Region-9")
        .send()
        .await
        .unwrap();
    let (replica, _) = env.aws_in(REPLICA);
    replica
        .create_secret()
        .name("prod/west-only")
        .secret_string("west-Only-9")
        .send()
        .await
        .unwrap();

    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "aws", "namespace": "app"},
        "spec": {
            "provider": {"aws": {"service": "SecretsManager", "region": PRIMARY,
                                 "failoverRegions": [REPLICA, SECOND]}},
            "retrySettings": {"maxRetries": 1, "retryInterval": "100ms"},
            "arnsync": {"endpoints": env.endpoints()}
        }
    }))
    .await;
    env.apply(es("db", "prod/db")).await;
    env.apply(es("by-arn", &arn)).await;
    env.secret_value("app", "db", "value", b"pw-Kilo-1").await;
    env.secret_value("app", "by-arn", "value", b"arn-Kilo-1")
        .await;
    env.apply(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "app",
                     "annotations": {"arnsync.io/restart-on-rotation": "true"}},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "busybox:1.36",
                                  "envFrom": [{"secretRef": {"name": "db"}}]}]}}}
    }))
    .await;
    wait_serving(&env, PRIMARY, Duration::from_secs(30)).await;
    assert_eq!(failed_over_sources(&env).await, Some(0));

    // Not found in the primary is an answer, not an outage: no other region is asked.
    env.apply(es("west-only", "prod/west-only")).await;
    let msg = env.ready_reason("app", "west-only", "SecretNotFound").await;
    assert!(msg.contains("ResourceNotFoundException"), "{msg}");
    // Access denied in the primary neither.
    env.proxy.inject(
        Fault::new(FaultKind::AccessDenied)
            .service("secretsmanager")
            .region(PRIMARY),
    );
    replicated(&env, "prod/denied", "denied-Kilo-1").await;
    env.apply(es("denied", "prod/denied")).await;
    let msg = env.ready_reason("app", "denied", "AccessDenied").await;
    assert!(msg.contains("AccessDeniedException"), "{msg}");
    env.proxy.clear_faults();
    assert_eq!(
        regions_called(&env),
        BTreeSet::from([PRIMARY.to_string()]),
        "only the primary is read while it answers: {:?}",
        env.proxy.counts_by_region()
    );
    assert!(env.secret("app", "west-only").await.is_none());
    assert_eq!(serving_region(&env).await.as_deref(), Some(PRIMARY));

    // The primary's Secrets Manager goes down: 503s, and dropped connections for listings.
    let version_before = env.es("app", "db").await.status.unwrap();
    env.proxy.reset_counts();
    env.proxy.inject(
        Fault::on("secretsmanager", "ListSecrets", FaultKind::DropConnection).region(PRIMARY),
    );
    env.proxy.inject(
        Fault::new(FaultKind::ServerError(503))
            .service("secretsmanager")
            .region(PRIMARY),
    );
    // The next version check fails over; the store says so, with an event.
    wait_serving(&env, REPLICA, Duration::from_secs(60)).await;
    let note = store_event(&env, "FailedOver").await;
    assert!(note.contains("from us-east-1 to us-west-2"), "{note}");
    assert!(env
        .operator_log()
        .contains("failed over to a replica region"));
    // Same VersionIds in the replica: no rotation, no restart, the Secret as it was.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rollouts.count("web"), 0, "a region switch is no rotation");
    let db = env.es("app", "db").await.status.unwrap();
    assert_eq!(
        serde_json::to_value(&db.sources).unwrap(),
        serde_json::to_value(&version_before.sources).unwrap()
    );
    assert_eq!(
        data_str(&env.secret("app", "db").await.unwrap(), "value"),
        "pw-Kilo-1"
    );

    // A rotation during the outage (written in the primary, bypassing the proxy; moto's
    // replicas show the primary's versions) reaches the Secrets from the replica region.
    for (name, value) in [("prod/db", "pw-Kilo-2"), ("prod/arn", "arn-Kilo-2")] {
        env.sm
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    env.secret_value("app", "db", "value", b"pw-Kilo-2").await;
    env.secret_value("app", "by-arn", "value", b"arn-Kilo-2")
        .await;
    env.eventually(
        "one rollout for the rotation",
        Duration::from_secs(30),
        || async { (rollouts.count("web") == 1).then_some(()) },
    )
    .await;
    assert!(sm_calls_in(&env, REPLICA) > 0);
    for region in [SECOND, UNLISTED] {
        assert_eq!(
            sm_calls_in(&env, region),
            0,
            "{region} must not be read: {:?}",
            env.proxy.counts_by_region()
        );
    }
    // The primary keeps being probed, with backoff, while it is down.
    assert!(env.proxy.faulted("secretsmanager", "ListSecrets") > 0);
    assert_eq!(serving_region(&env).await.as_deref(), Some(REPLICA));

    // The primary answers again: it serves, the store says so.
    env.proxy.clear_faults();
    wait_serving(&env, PRIMARY, Duration::from_secs(60)).await;
    let note = store_event(&env, "PrimaryRegionServing").await;
    assert!(
        note.contains("back in the primary region us-east-1"),
        "{note}"
    );
    env.proxy.reset_counts();
    env.sm
        .put_secret_value()
        .secret_id("prod/db")
        .secret_string("pw-Kilo-3")
        .send()
        .await
        .unwrap();
    env.secret_value("app", "db", "value", b"pw-Kilo-3").await;
    assert_eq!(
        regions_called(&env),
        BTreeSet::from([PRIMARY.to_string()]),
        "{:?}",
        env.proxy.counts_by_region()
    );
    env.eventually(
        "a rollout per rotation",
        Duration::from_secs(30),
        || async { (rollouts.count("web") == 2).then_some(()) },
    )
    .await;
    env.assert_no_leaks(&[
        "pw-Kilo-1",
        "pw-Kilo-2",
        "pw-Kilo-3",
        "arn-Kilo-2",
        "wrong-Region-9",
        "west-Only-9",
    ])
    .await;
    assert!(!env.operator_log().contains("wrong-Region-9"));
}
