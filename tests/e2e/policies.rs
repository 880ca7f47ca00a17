//! creationPolicy and deletionPolicy.

use std::time::Duration;

use kube::api::{Api, DeleteParams};
use serde_json::json;

use crate::harness::{data_str, Env};
use arnsync::api::ExternalSecret;

fn es(name: &str, target: serde_json::Value, key: &str) -> serde_json::Value {
    json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": "app"},
        "spec": {"secretStoreRef": {"name": "aws"}, "refreshInterval": "1s", "target": target,
                 "data": [{"secretKey": "value", "remoteRef": {"key": key}}]}
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn owner_merge_and_orphan() {
    let env = Env::start().await;
    env.namespace("app", json!({})).await;
    env.store("app").await;
    env.put_secret("prod/a", "val-Lima-1").await;

    env.apply(es("owned", json!({}), "prod/a")).await;
    env.secret_value("app", "owned", "value", b"val-Lima-1")
        .await;
    env.apply(es("orphan", json!({"creationPolicy": "Orphan"}), "prod/a"))
        .await;
    let s = env
        .secret_value("app", "orphan", "value", b"val-Lima-1")
        .await;
    assert!(s.metadata.owner_references.is_none());

    // Merge into a Secret someone else owns: their keys and type stay.
    env.apply(
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
        "metadata": {"name": "shared", "namespace": "app"}, "stringData": {"username": "theirs"}}),
    )
    .await;
    env.apply(es(
        "merge",
        json!({"name": "shared", "creationPolicy": "Merge"}),
        "prod/a",
    ))
    .await;
    let s = env
        .secret_value("app", "shared", "value", b"val-Lima-1")
        .await;
    assert_eq!(data_str(&s, "username"), "theirs");
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/basic-auth"));

    // Merge into a Secret that does not exist: a clear condition, nothing created.
    env.apply(es(
        "merge-missing",
        json!({"name": "nope", "creationPolicy": "Merge"}),
        "prod/a",
    ))
    .await;
    let msg = env
        .ready_reason("app", "merge-missing", "TargetNotFound")
        .await;
    assert!(
        msg.contains("Secret nope does not exist") && msg.contains("creationPolicy"),
        "{msg}"
    );
    assert!(env.secret("app", "nope").await.is_none());

    // Owner over a Secret someone else created: refused, their Secret untouched.
    env.apply(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "taken", "namespace": "app"}, "stringData": {"x": "y"}}))
        .await;
    env.apply(es("taken", json!({}), "prod/a")).await;
    let msg = env.ready_reason("app", "taken", "TargetConflict").await;
    assert!(
        msg.contains("Secret taken") && msg.contains("Merge"),
        "{msg}"
    );
    assert_eq!(
        data_str(&env.secret("app", "taken").await.unwrap(), "x"),
        "y"
    );

    // Deleting the ExternalSecrets: the owned Secret goes, the orphan stays, merged keys stay.
    let api: Api<ExternalSecret> = Api::namespaced(env.client.clone(), "app");
    for name in ["owned", "orphan", "merge"] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    env.eventually(
        "owned Secret garbage-collected",
        Duration::from_secs(30),
        || async { env.secret("app", "owned").await.is_none().then_some(()) },
    )
    .await;
    assert!(env.secret("app", "orphan").await.is_some());
    assert_eq!(
        data_str(&env.secret("app", "shared").await.unwrap(), "username"),
        "theirs"
    );
    env.assert_no_leaks(&["val-Lima-1"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_deleted_retain_keeps_and_delete_removes() {
    let env = Env::start().await;
    env.namespace("app", json!({})).await;
    env.store("app").await;
    env.put_secret("prod/keep", "val-Mike-1").await;
    env.put_secret("prod/drop", "val-November-2").await;
    env.apply(es("keep", json!({}), "prod/keep")).await;
    env.apply(es("drop", json!({"deletionPolicy": "Delete"}), "prod/drop"))
        .await;
    env.secret_value("app", "keep", "value", b"val-Mike-1")
        .await;
    env.secret_value("app", "drop", "value", b"val-November-2")
        .await;

    for name in ["prod/keep", "prod/drop"] {
        env.sm
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
            .await
            .unwrap();
    }
    let msg = env.ready_reason("app", "keep", "SecretNotFound").await;
    assert!(
        msg.contains("prod/keep")
            && msg.contains("ResourceNotFoundException")
            && msg.contains("Retain"),
        "{msg}"
    );
    assert_eq!(
        data_str(&env.secret("app", "keep").await.unwrap(), "value"),
        "val-Mike-1"
    );
    env.eventually("Secret drop deleted", Duration::from_secs(30), || async {
        env.secret("app", "drop").await.is_none().then_some(())
    })
    .await;
    let msg = env.ready_reason("app", "drop", "SecretNotFound").await;
    assert!(msg.contains("deletionPolicy Delete"), "{msg}");
    env.assert_no_leaks(&["val-Mike-1", "val-November-2"]).await;
}
