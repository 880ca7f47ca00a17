//! AWS and data errors: the right condition, and the Secret left exactly as it was.

use std::time::Duration;

use aws_fault_proxy::{Fault, FaultKind};
use serde_json::json;

use crate::harness::{data_str, Env};

fn es(name: &str, generation_note: &str, data: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": "app", "annotations": {"note": generation_note}},
        "spec": {"secretStoreRef": {"name": "aws"}, "data": data}
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_give_the_right_condition_and_leave_the_secret_untouched() {
    let env = Env::start().await;
    env.namespace("app", json!({})).await;
    env.store("app").await;
    env.put_secret("prod/db", r#"{"password":"pw-Sierra-1"}"#)
        .await;
    // The synced ExternalSecret below reads a key no other one reads, so that no shared read
    // (a cached success of another ExternalSecret) can stand in for the failing one.
    env.put_secret("prod/app", r#"{"password":"pw-Sierra-1"}"#)
        .await;
    env.put_secret("prod/text", "not-json-Tango-2").await;

    // Not found, missing property, invalid JSON: each names the key.
    env.apply(es(
        "missing",
        "",
        json!([{"secretKey": "v", "remoteRef": {"key": "prod/nope"}}]),
    ))
    .await;
    let msg = env.ready_reason("app", "missing", "SecretNotFound").await;
    assert!(
        msg.contains("prod/nope")
            && msg.contains("GetSecretValue")
            && msg.contains("ResourceNotFoundException"),
        "{msg}"
    );
    env.apply(es(
        "noprop",
        "",
        json!([{"secretKey": "v", "remoteRef": {"key": "prod/db", "property": "user"}}]),
    ))
    .await;
    let msg = env.ready_reason("app", "noprop", "PropertyNotFound").await;
    assert!(msg.contains("\"user\"") && msg.contains("prod/db"), "{msg}");
    env.apply(es(
        "badjson",
        "",
        json!([{"secretKey": "v", "remoteRef": {"key": "prod/text", "property": "x"}}]),
    ))
    .await;
    let msg = env.ready_reason("app", "badjson", "InvalidJSON").await;
    assert!(msg.contains("prod/text") && !msg.contains("Tango"), "{msg}");

    // A synced Secret, then AccessDenied and throttling on the next read: kept as it was.
    let data = json!([{"secretKey": "password", "remoteRef": {"key": "prod/app", "property": "password"}}]);
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": "db", "namespace": "app"},
        "spec": {"secretStoreRef": {"name": "aws"}, "data": data}
    }))
    .await;
    let before = env
        .secret_value("app", "db", "password", b"pw-Sierra-1")
        .await;
    env.ready_reason("app", "db", "SecretSynced").await;

    env.proxy.inject(Fault::on(
        "secretsmanager",
        "GetSecretValue",
        FaultKind::AccessDenied,
    ));
    let msg = bump_until(&env, 10, "AccessDenied").await;
    assert!(
        msg.contains("GetSecretValue")
            && msg.contains("AccessDeniedException")
            && msg.contains("prod/app"),
        "{msg}"
    );
    let after = env.secret("app", "db").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );

    env.proxy.clear_faults();
    env.proxy.inject(Fault::on(
        "secretsmanager",
        "GetSecretValue",
        FaultKind::Throttle,
    ));
    let msg = bump_until(&env, 100, "Throttled").await;
    assert!(msg.contains("ThrottlingException"), "{msg}");
    let after = env.secret("app", "db").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_eq!(data_str(&after, "password"), "pw-Sierra-1");

    // When AWS recovers, the retry with backoff brings it back to Ready.
    env.proxy.clear_faults();
    env.ready_reason_within("app", "db", "SecretSynced", Duration::from_secs(180))
        .await;
    let events =
        kube::Api::<k8s_openapi::api::events::v1::Event>::namespaced(env.client.clone(), "app");
    let reasons: Vec<String> = env
        .eventually("events", Duration::from_secs(10), || async {
            let l = events.list(&Default::default()).await.ok()?;
            let r: Vec<String> = l.items.iter().filter_map(|e| e.reason.clone()).collect();
            r.contains(&"Throttled".to_string()).then_some(r)
        })
        .await;
    assert!(
        reasons.contains(&"AccessDenied".to_string())
            && reasons.contains(&"SecretSynced".to_string()),
        "{reasons:?}"
    );
    env.assert_no_leaks(&["pw-Sierra-1", "not-json-Tango-2", "Tango"])
        .await;
}

/// Changes the spec until the Ready reason becomes `reason`, and returns its message. A spec
/// change reads again at once, but a read within the operator's read-sharing window may be
/// answered by the previous one, so one change is not always enough.
async fn bump_until(env: &Env, mut n: u32, reason: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        bump(env, n).await;
        let ready = env
            .eventually(
                "status after a spec change",
                Duration::from_secs(10),
                || async {
                    let es = env.es("app", "db").await;
                    let status = es.status?;
                    (status.observed_generation == es.metadata.generation).then_some(())?;
                    status.conditions.into_iter().find(|c| c.type_ == "Ready")
                },
            )
            .await;
        if ready.reason == reason {
            return ready.message;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Ready reason stayed {}",
            ready.reason
        );
        n += 1;
    }
}

/// Changes the spec (a new refreshInterval) so the operator reads again at once.
async fn bump(env: &Env, n: u32) {
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": "db", "namespace": "app"},
        "spec": {"secretStoreRef": {"name": "aws"}, "refreshInterval": format!("{}h", 1 + n),
                 "data": [{"secretKey": "password", "remoteRef": {"key": "prod/app", "property": "password"}}]}
    }))
    .await;
}

/// Values over the Kubernetes Secret limit: a reason of their own that gives the size, and no
/// write is sent to the API server.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_over_one_mib_is_reported_as_too_large_and_not_sent() {
    let env = Env::start().await;
    env.namespace("app", json!({})).await;
    env.store("app").await;
    let big = "Kilo".repeat(150_000);
    env.put_secret("big/a", &big).await;
    env.put_secret("big/b", &big).await;
    env.kube.reset_counters();
    env.apply(es(
        "huge",
        "",
        json!([
            {"secretKey": "a", "remoteRef": {"key": "big/a"}},
            {"secretKey": "b", "remoteRef": {"key": "big/b"}}
        ]),
    ))
    .await;
    let msg = env.ready_reason("app", "huge", "SecretTooLarge").await;
    assert!(
        msg.contains("ExternalSecret app/huge")
            && msg.contains("1200000 bytes")
            && msg.contains("1048576"),
        "{msg}"
    );
    assert!(env.secret("app", "huge").await.is_none());
    assert_eq!(
        env.kube.request_count("patch", "secrets"),
        0,
        "nothing sent to the API server"
    );
    env.eventually("the reconcile logged", Duration::from_secs(10), || async {
        env.operator_log().contains("SecretTooLarge").then_some(())
    })
    .await;
    env.assert_no_leaks(&["KiloKiloKilo"]).await;
}
