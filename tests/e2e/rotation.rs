//! Rotation: version moves in AWS reach the Secret within a few checks while refreshInterval is
//! an hour, and opted-in workloads roll exactly once per change.

use std::time::Duration;

use aws_fault_proxy::{Fault, FaultKind};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::harness::{data_str, Env};

const FAST: [&str; 4] = [
    "--rotation-check-interval",
    "1s",
    "--restart-debounce",
    "1s",
];

fn es(ns: &str, name: &str, data: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"secretStoreRef": {"name": "aws"}, "refreshInterval": "1h", "data": data}
    })
}

fn sm(key: &str, secret_key: &str) -> serde_json::Value {
    json!([{"secretKey": secret_key, "remoteRef": {"key": key}}])
}

/// A Deployment whose pod template uses `secret` the way `how` says.
fn deployment(name: &str, secret: &str, how: &str, opt_in: Option<&str>) -> serde_json::Value {
    let mut container = json!({"name": "app", "image": "busybox:1.36"});
    let mut pod = json!({"containers": []});
    match how {
        "env" => {
            container["env"] = json!([{"name": "P", "valueFrom": {"secretKeyRef": {"name": secret, "key": "value"}}}])
        }
        "envFrom" => container["envFrom"] = json!([{"secretRef": {"name": secret}}]),
        "volume" => {
            pod["volumes"] = json!([{"name": "s", "secret": {"secretName": secret}}]);
            container["volumeMounts"] = json!([{"name": "s", "mountPath": "/s"}]);
        }
        other => panic!("{other}"),
    }
    pod["containers"] = json!([container]);
    let mut annotations = json!({});
    if let Some(v) = opt_in {
        annotations["arnsync.io/restart-on-rotation"] = json!(v);
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "app", "annotations": annotations},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": pod}}
    })
}

async fn deploy(env: &Env, name: &str) -> Deployment {
    Api::<Deployment>::namespaced(env.client.clone(), "app")
        .get(name)
        .await
        .unwrap()
}

fn template_version(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get("arnsync.io/secret-versions")
        .cloned()
}

fn recorded(d: &Deployment) -> Option<String> {
    d.metadata
        .annotations
        .as_ref()?
        .get("arnsync.io/secret-versions")
        .cloned()
}

/// Waits until the operator has run `n` more version checks (counted at the proxy).
async fn checks(env: &Env, operation: (&str, &str), n: u64) {
    let start = env.proxy.count(operation.0, operation.1);
    env.eventually(
        &format!("{n} more version checks"),
        Duration::from_secs(30),
        || async { (env.proxy.count(operation.0, operation.1) >= start + n).then_some(()) },
    )
    .await;
}

async fn rotate(env: &Env, key: &str, value: &str) -> String {
    env.sm
        .put_secret_value()
        .secret_id(key)
        .secret_string(value)
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn stage_moves_and_new_parameter_versions_reach_the_secret() {
    let mut env = Env::start_without_operator().await;
    env.start_operator_with(&FAST);
    env.namespace("app", json!({})).await;
    env.store("app").await;
    env.put_secret("prod/db", "pw-Victor-1").await;
    let v1 = env.only_version("prod/db").await;
    env.put_param("/prod/url", "url-Whiskey-1", "String").await;
    env.apply(es(
        "app",
        "db",
        json!([
            {"secretKey": "password", "remoteRef": {"key": "prod/db"}},
            {"secretKey": "url", "remoteRef": {"key": "arn:aws:ssm:us-east-1:123456789012:parameter/prod/url"}}
        ]),
    ))
    .await;
    env.secret_value("app", "db", "password", b"pw-Victor-1")
        .await;

    let v2 = rotate(&env, "prod/db", "pw-Xray-2").await;
    env.secret_value("app", "db", "password", b"pw-Xray-2")
        .await;
    let rotation = env
        .eventually("status.lastRotation", Duration::from_secs(30), || async {
            env.es("app", "db").await.status?.last_rotation
        })
        .await;
    assert_eq!(rotation.sources[0].key, "prod/db");
    assert_eq!(rotation.sources[0].to, v2);

    // AWSCURRENT moved back by hand: the Secret follows.
    env.sm
        .update_secret_version_stage()
        .secret_id("prod/db")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&v1)
        .remove_from_version_id(&v2)
        .send()
        .await
        .unwrap();
    env.secret_value("app", "db", "password", b"pw-Victor-1")
        .await;

    env.put_param("/prod/url", "url-Yankee-2", "String").await;
    let s = env.secret_value("app", "db", "url", b"url-Yankee-2").await;
    assert_eq!(data_str(&s, "password"), "pw-Victor-1");

    // force-sync: a new annotation value reads everything at once.
    let reads = env.proxy.count("secretsmanager", "GetSecretValue");
    let api: Api<arnsync::api::ExternalSecret> = Api::namespaced(env.client.clone(), "app");
    api.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"arnsync.io/force-sync": "1"}}})),
    )
    .await
    .unwrap();
    env.eventually("a forced read", Duration::from_secs(30), || async {
        (env.proxy.count("secretsmanager", "GetSecretValue") > reads).then_some(())
    })
    .await;
    env.eventually("force-sync recorded", Duration::from_secs(30), || async {
        (env.es("app", "db").await.status?.force_sync.as_deref() == Some("1")).then_some(())
    })
    .await;
    env.assert_no_leaks(&["pw-Victor-1", "pw-Xray-2", "url-Whiskey-1", "url-Yankee-2"])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn opted_in_deployments_roll_exactly_once_per_rotation() {
    let mut env = Env::start_without_operator().await;
    env.start_operator_with(&FAST);
    env.namespace("app", json!({})).await;
    let rollouts = env.rollouts("app").await;
    env.store("app").await;
    env.put_secret("prod/db", "pw-Zulu-1").await;
    env.put_secret("prod/other", "other-1").await;
    env.apply(es("app", "db", sm("prod/db", "value"))).await;
    env.apply(es("app", "other", sm("prod/other", "value")))
        .await;
    env.secret_value("app", "db", "value", b"pw-Zulu-1").await;
    env.secret_value("app", "other", "value", b"other-1").await;
    for (name, how) in [
        ("by-env", "env"),
        ("by-envfrom", "envFrom"),
        ("by-volume", "volume"),
    ] {
        env.apply(deployment(name, "db", how, Some("true"))).await;
    }
    env.apply(deployment("not-opted-in", "db", "envFrom", None))
        .await;
    env.apply(deployment("listed-other", "db", "envFrom", Some("other")))
        .await;

    // First sighting: the fingerprint is recorded on the workload, no rollout.
    for name in ["by-env", "by-envfrom", "by-volume", "listed-other"] {
        env.eventually(
            &format!("{name} recorded"),
            Duration::from_secs(30),
            || async { recorded(&deploy(&env, name).await) },
        )
        .await;
    }
    for name in [
        "by-env",
        "by-envfrom",
        "by-volume",
        "not-opted-in",
        "listed-other",
    ] {
        let d = deploy(&env, name).await;
        assert_eq!(
            rollouts.count(name),
            0,
            "{name} must not roll when first seen"
        );
        assert!(template_version(&d).is_none());
    }

    rotate(&env, "prod/db", "pw-Alfa-2").await;
    for name in ["by-env", "by-envfrom", "by-volume"] {
        env.eventually(
            &format!("{name} rolled"),
            Duration::from_secs(30),
            || async { template_version(&deploy(&env, name).await) },
        )
        .await;
    }
    // Several more checks later: still exactly one pod-template change each.
    checks(&env, ("secretsmanager", "ListSecrets"), 3).await;
    for name in ["by-env", "by-envfrom", "by-volume"] {
        let d = deploy(&env, name).await;
        assert_eq!(rollouts.count(name), 1, "{name}: exactly one rollout");
        assert_eq!(template_version(&d), recorded(&d));
    }
    assert_eq!(rollouts.count("not-opted-in"), 0);
    assert_eq!(
        rollouts.count("listed-other"),
        0,
        "a list only reacts to the listed Secrets"
    );

    rotate(&env, "prod/other", "other-2").await;
    env.eventually("listed-other rolled", Duration::from_secs(30), || async {
        (rollouts.count("listed-other") == 1).then_some(())
    })
    .await;
    assert_eq!(rollouts.count("by-env"), 1);

    let es = env.es("app", "db").await;
    let workloads = es.status.unwrap().last_rotation.unwrap().workloads;
    let names: Vec<_> = workloads.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, vec!["by-env", "by-envfrom", "by-volume"]);

    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(env.client.clone(), "app");
    let notes: Vec<String> = env
        .eventually("SecretsRotated events", Duration::from_secs(10), || async {
            let l = events.list(&Default::default()).await.ok()?;
            let n: Vec<String> = l
                .items
                .iter()
                .filter(|e| e.reason.as_deref() == Some("SecretsRotated"))
                .filter_map(|e| e.note.clone())
                .collect();
            (n.len() >= 4).then_some(n)
        })
        .await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("by-volume") && n.contains("Secret(s) db")),
        "{notes:?}"
    );

    // Removing the opt-in stops restarts.
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), "app");
    deployments
        .patch(
            "by-env",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"arnsync.io/restart-on-rotation": null}}}),
            ),
        )
        .await
        .unwrap();
    rotate(&env, "prod/db", "pw-Bravo-3").await;
    env.eventually(
        "by-envfrom rolled again",
        Duration::from_secs(30),
        || async { (rollouts.count("by-envfrom") == 2).then_some(()) },
    )
    .await;
    assert_eq!(rollouts.count("by-env"), 1);
    env.assert_no_leaks(&["pw-Zulu-1", "pw-Alfa-2", "pw-Bravo-3"])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restarts_survive_operator_restarts_and_coalesce() {
    let mut env = Env::start_without_operator().await;
    let slow_debounce = [
        "--rotation-check-interval",
        "1s",
        "--restart-debounce",
        "3s",
    ];
    env.start_operator_with(&slow_debounce);
    env.namespace("app", json!({})).await;
    let rollouts = env.rollouts("app").await;
    env.store("app").await;
    env.put_secret("prod/a", "a-1").await;
    env.put_secret("prod/b", "b-1").await;
    env.apply(es("app", "a", sm("prod/a", "value"))).await;
    env.apply(es("app", "b", sm("prod/b", "value"))).await;
    env.secret_value("app", "a", "value", b"a-1").await;
    env.secret_value("app", "b", "value", b"b-1").await;
    let mut two = deployment("both", "a", "envFrom", Some("true"));
    two["spec"]["template"]["spec"]["containers"][0]["envFrom"] =
        json!([{"secretRef": {"name": "a"}}, {"secretRef": {"name": "b"}}]);
    env.apply(two).await;
    env.eventually("recorded", Duration::from_secs(30), || async {
        recorded(&deploy(&env, "both").await)
    })
    .await;

    // An operator restart rolls nothing.
    env.stop_operator();
    env.start_operator_with(&slow_debounce);
    checks(&env, ("secretsmanager", "ListSecrets"), 3).await;
    assert_eq!(rollouts.count("both"), 0);

    // Two Secrets rotated together: one rollout.
    rotate(&env, "prod/a", "a-2").await;
    rotate(&env, "prod/b", "b-2").await;
    env.secret_value("app", "a", "value", b"a-2").await;
    env.secret_value("app", "b", "value", b"b-2").await;
    env.eventually("one rollout", Duration::from_secs(30), || async {
        (rollouts.count("both") == 1).then_some(())
    })
    .await;
    checks(&env, ("secretsmanager", "ListSecrets"), 5).await;
    assert_eq!(rollouts.count("both"), 1, "two Secrets, one rollout");

    // A rotation while the operator is down rolls once when it is back.
    env.stop_operator();
    rotate(&env, "prod/a", "a-3").await;
    env.start_operator_with(&slow_debounce);
    env.secret_value("app", "a", "value", b"a-3").await;
    env.eventually(
        "rollout after the restart",
        Duration::from_secs(30),
        || async { (rollouts.count("both") == 2).then_some(()) },
    )
    .await;
    checks(&env, ("secretsmanager", "ListSecrets"), 5).await;
    assert_eq!(rollouts.count("both"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_cost_is_bounded_and_shared_keys_are_read_once() {
    let mut env = Env::start_without_operator().await;
    env.start_operator_with(&["--rotation-check-interval", "1s"]);
    env.namespace("app", json!({})).await;
    env.store("app").await;
    for k in 0..10 {
        env.put_secret(&format!("shared/s{k}"), &format!("s{k}-v1"))
            .await;
        env.put_param(
            &format!("/shared/p{k}"),
            &format!("p{k}-v1"),
            "SecureString",
        )
        .await;
    }
    for i in 0..50 {
        let k = i % 10;
        env.apply(es("app", &format!("es{i:02}"), json!([
            {"secretKey": "s", "remoteRef": {"key": format!("shared/s{k}")}},
            {"secretKey": "p", "remoteRef": {"key": format!("arn:aws:ssm:us-east-1:123456789012:parameter/shared/p{k}")}}
        ])))
        .await;
    }
    for i in 0..50 {
        let k = i % 10;
        env.secret_value(
            "app",
            &format!("es{i:02}"),
            "p",
            format!("p{k}-v1").as_bytes(),
        )
        .await;
    }
    // Let reconciles settle, then count only checks.
    checks(&env, ("secretsmanager", "ListSecrets"), 2).await;
    env.proxy.reset_counts();
    checks(&env, ("secretsmanager", "ListSecrets"), 4).await;
    let counts = env.proxy.counts();
    let n = env.proxy.count("secretsmanager", "ListSecrets");
    let params = env.proxy.count("ssm", "GetParameters");
    assert!(
        params + 1 >= n && params <= n + 1,
        "one GetParameters per check: {counts:?}"
    );
    assert_eq!(
        env.proxy.count("secretsmanager", "GetSecretValue"),
        0,
        "{counts:?}"
    );
    assert_eq!(env.proxy.count("ssm", "GetParameter"), 0, "{counts:?}");
    assert_eq!(
        env.proxy.count("secretsmanager", "DescribeSecret"),
        0,
        "{counts:?}"
    );

    // One rotation of a key five ExternalSecrets share: exactly one value read.
    rotate(&env, "shared/s3", "s3-v2").await;
    for i in [3, 13, 23, 33, 43] {
        env.secret_value("app", &format!("es{i:02}"), "s", b"s3-v2")
            .await;
    }
    checks(&env, ("secretsmanager", "ListSecrets"), 2).await;
    let reads: Vec<String> = env
        .operator_log()
        .lines()
        .filter(|l| {
            l.contains("aws call")
                && (l.contains("GetSecretValue") || l.contains("\"GetParameter\""))
        })
        .map(String::from)
        .collect();
    let reads = reads[reads.len().saturating_sub(6)..].to_vec();
    assert_eq!(
        env.proxy.count("secretsmanager", "GetSecretValue"),
        1,
        "{:?}\n{}",
        env.proxy.counts(),
        reads.join("\n")
    );
    assert_eq!(
        env.proxy.count("ssm", "GetParameter"),
        0,
        "{:?}\n{}",
        env.proxy.counts(),
        reads.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_checks_back_off_and_the_rotation_still_lands() {
    let mut env = Env::start_without_operator().await;
    env.start_operator_with(&FAST);
    env.namespace("app", json!({})).await;
    env.store("app").await;
    env.put_secret("prod/db", "pw-Charlie-1").await;
    env.apply(es("app", "db", sm("prod/db", "value"))).await;
    env.secret_value("app", "db", "value", b"pw-Charlie-1")
        .await;
    checks(&env, ("secretsmanager", "ListSecrets"), 1).await;

    env.proxy
        .inject(Fault::on("secretsmanager", "ListSecrets", FaultKind::Throttle).times(6));
    rotate(&env, "prod/db", "pw-Delta-2").await;
    env.eventually("throttled checks", Duration::from_secs(30), || async {
        (env.proxy.faulted("secretsmanager", "ListSecrets") >= 6).then_some(())
    })
    .await;
    // Meanwhile the Secret was never emptied or lost.
    let s = env.secret("app", "db").await.unwrap();
    assert!(!data_str(&s, "value").is_empty());
    env.secret_value("app", "db", "value", b"pw-Delta-2").await;
    env.assert_no_leaks(&["pw-Charlie-1", "pw-Delta-2"]).await;
}

/// A rotation stays pending until a read of the new version has been written: reads that fail
/// after the version moved are retried, although refreshInterval (1h) is far away.
#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_whose_reads_fail_is_retried_until_written() {
    let mut env = Env::start_without_operator().await;
    env.start_operator_with(&FAST);
    env.namespace("app", json!({})).await;
    env.store("app").await;
    env.put_param("/prod/flaky", "flaky-Echo-1", "SecureString")
        .await;
    env.apply(es(
        "app",
        "flaky",
        json!([{"secretKey": "value", "remoteRef": {"key": "arn:aws:ssm:us-east-1:123456789012:parameter/prod/flaky"}}]),
    ))
    .await;
    env.secret_value("app", "flaky", "value", b"flaky-Echo-1")
        .await;
    checks(&env, ("ssm", "GetParameters"), 1).await;

    // The check that sees the new version is slow, and the reads it triggers fail.
    env.proxy
        .inject(Fault::on("ssm", "GetParameter", FaultKind::DropConnection).times(10));
    env.proxy.inject(
        Fault::on(
            "ssm",
            "GetParameters",
            FaultKind::Latency(Duration::from_secs(3)),
        )
        .times(5),
    );
    env.put_param("/prod/flaky", "flaky-Foxtrot-2", "SecureString")
        .await;
    env.eventually("the failed reads", Duration::from_secs(60), || async {
        (env.proxy.faulted("ssm", "GetParameter") >= 10).then_some(())
    })
    .await;
    let s = env.secret("app", "flaky").await.unwrap();
    assert!(
        !data_str(&s, "value").is_empty(),
        "a failed read never empties the Secret"
    );
    env.eventually(
        "the rotated value once reads work again",
        Duration::from_secs(90),
        || async {
            let s = env.secret("app", "flaky").await?;
            (data_str(&s, "value") == "flaky-Foxtrot-2").then_some(())
        },
    )
    .await;
    env.assert_no_leaks(&["flaky-Echo-1", "flaky-Foxtrot-2"])
        .await;
}

/// `arnsync_rotation_lag_seconds` of `stage`: (count, sum).
async fn lag(op: &crate::harness::Operator, stage: &str) -> Option<(u64, f64)> {
    let (code, body) = crate::harness::http_get(op.metrics_addr()?, "/metrics").await?;
    (code == 200).then_some(())?;
    let sample = |suffix: &str| {
        let head = format!("arnsync_rotation_lag_seconds_{suffix}{{stage=\"{stage}\"}}");
        body.lines()
            .find(|l| l.starts_with(&head))
            .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Some((sample("count") as u64, sample("sum")))
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_lag_is_measured_to_the_secret_and_to_the_rollout() {
    let env = Env::start_without_operator().await;
    let op = env.spawn_operator("lag", &FAST);
    env.namespace("app", json!({})).await;
    let rollouts = env.rollouts("app").await;
    env.store("app").await;
    env.put_secret("prod/lag", "lag-Echo-1").await;
    env.put_secret("prod/calm", "calm-1").await;
    env.apply(es("app", "lag", sm("prod/lag", "value"))).await;
    env.apply(es("app", "calm", sm("prod/calm", "value"))).await;
    env.secret_value("app", "lag", "value", b"lag-Echo-1").await;
    env.secret_value("app", "calm", "value", b"calm-1").await;
    env.apply(deployment("lagged", "lag", "envFrom", Some("true")))
        .await;
    env.eventually("lagged recorded", Duration::from_secs(30), || async {
        recorded(&deploy(&env, "lagged").await)
    })
    .await;
    // First syncs and first sightings are no rotations.
    checks(&env, ("secretsmanager", "ListSecrets"), 2).await;
    for stage in ["secret_written", "workload_restarted"] {
        assert_eq!(lag(&op, stage).await.unwrap(), (0, 0.0), "{stage}");
    }

    for (n, value) in [(1, "lag-Foxtrot-2"), (2, "lag-Golf-3")] {
        rotate(&env, "prod/lag", value).await;
        env.secret_value("app", "lag", "value", value.as_bytes())
            .await;
        env.eventually("the rollout", Duration::from_secs(30), || async {
            (rollouts.count("lagged") == n).then_some(())
        })
        .await;
        for stage in ["secret_written", "workload_restarted"] {
            let (count, sum) = env
                .eventually(
                    &format!("{stage} observed"),
                    Duration::from_secs(30),
                    || async { lag(&op, stage).await.filter(|(c, _)| *c >= n as u64) },
                )
                .await;
            assert_eq!(count, n as u64, "{stage}: one observation per rotation");
            assert!((0.0..600.0 * n as f64).contains(&sum), "{stage}: {sum}");
        }
    }
    // A few checks later nothing more was counted: the other secret did not move.
    checks(&env, ("secretsmanager", "ListSecrets"), 2).await;
    let (written, written_sum) = lag(&op, "secret_written").await.unwrap();
    let (restarted, restarted_sum) = lag(&op, "workload_restarted").await.unwrap();
    eprintln!("lag sums: secret {written_sum:.3} s, rollout {restarted_sum:.3} s");
    assert_eq!((written, restarted), (2, 2));
    assert!(
        restarted_sum >= written_sum,
        "a rollout comes after its Secret: {restarted_sum} < {written_sum}"
    );
    let (_, metrics) = crate::harness::http_get(op.metrics_addr().unwrap(), "/metrics")
        .await
        .unwrap();
    let log = op.log();
    for value in ["lag-Echo-1", "lag-Foxtrot-2", "lag-Golf-3"] {
        assert!(
            !metrics.contains(value) && !log.contains(value),
            "{value} leaked"
        );
    }
}
