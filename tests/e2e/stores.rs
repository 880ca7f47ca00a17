//! Store rules and AWS authentication.

use std::time::Duration;

use kube::api::Api;
use serde_json::json;

use crate::harness::Env;
use arnsync::api::{ClusterSecretStore, SecretStore};

fn es(ns: &str, name: &str, store_kind: &str, store: &str) -> serde_json::Value {
    json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"secretStoreRef": {"kind": store_kind, "name": store},
                 "data": [{"secretKey": "value", "remoteRef": {"key": "prod/shared"}}]}
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn store_isolation_is_enforced_with_clear_conditions() {
    let env = Env::start().await;
    env.namespace("team-a", json!({"secrets": "aws"})).await;
    env.namespace("team-b", json!({})).await;
    env.namespace("team-c", json!({})).await;
    env.put_secret("prod/shared", "val-Oscar-1").await;
    env.store("team-a").await;
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ClusterSecretStore",
        "metadata": {"name": "shared"},
        "spec": {"provider": {"aws": {"service": "SecretsManager", "region": "us-east-1"}},
                 "arnsync": {"endpoints": env.endpoints()},
                 "conditions": [{"namespaces": ["team-c"]}, {"namespaceSelector": {"matchLabels": {"secrets": "aws"}}}]}
    }))
    .await;

    // Own-namespace SecretStore works; another namespace's SecretStore is not found.
    env.apply(es("team-a", "ok", "SecretStore", "aws")).await;
    env.secret_value("team-a", "ok", "value", b"val-Oscar-1")
        .await;
    env.apply(es("team-b", "borrow", "SecretStore", "aws"))
        .await;
    let msg = env.ready_reason("team-b", "borrow", "StoreNotFound").await;
    assert!(
        msg.contains("SecretStore team-b/aws does not exist"),
        "{msg}"
    );

    // ClusterSecretStore: admitted by label (team-a) and by name (team-c), refused for team-b.
    env.apply(es("team-a", "cluster", "ClusterSecretStore", "shared"))
        .await;
    env.secret_value("team-a", "cluster", "value", b"val-Oscar-1")
        .await;
    env.apply(es("team-c", "cluster", "ClusterSecretStore", "shared"))
        .await;
    env.secret_value("team-c", "cluster", "value", b"val-Oscar-1")
        .await;
    env.apply(es("team-b", "cluster", "ClusterSecretStore", "shared"))
        .await;
    let msg = env
        .ready_reason("team-b", "cluster", "StoreNotAllowed")
        .await;
    assert!(
        msg.contains("does not admit namespace team-b") && msg.contains("spec.conditions"),
        "{msg}"
    );
    assert!(env.secret("team-b", "cluster").await.is_none());

    // A SecretStore may not read credentials from another namespace.
    env.apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": "team-a"},
        "stringData": {"id": "AKIAEXAMPLE", "secret": "sk-Papa-2"}})).await;
    // The CRD's rule refuses it at apply time (the operator refuses it again if a cluster does
    // not enforce the rule).
    let refused = env
        .try_apply(json!({
            "apiVersion": "arnsync.io/v1alpha1", "kind": "SecretStore",
            "metadata": {"name": "sneaky", "namespace": "team-b"},
            "spec": env.store_spec("SecretsManager", json!({"auth": {"secretRef": {
                "accessKeyIDSecretRef": {"name": "keys", "key": "id", "namespace": "team-a"},
                "secretAccessKeySecretRef": {"name": "keys", "key": "secret", "namespace": "team-a"}}}}))
        }))
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("reads credentials only from its own namespace"),
        "{refused}"
    );
    env.apply(es("team-b", "sneaky", "SecretStore", "sneaky"))
        .await;
    let msg = env.ready_reason("team-b", "sneaky", "StoreNotFound").await;
    assert!(
        msg.contains("SecretStore team-b/sneaky does not exist"),
        "{msg}"
    );
    assert!(env.secret("team-b", "sneaky").await.is_none());

    // Store status: Ready with the caller identity.
    let stores: Api<SecretStore> = Api::namespaced(env.client.clone(), "team-a");
    let status = env
        .eventually("store Ready", Duration::from_secs(30), || async {
            let s = stores.get("aws").await.ok()?.status?;
            s.conditions
                .iter()
                .any(|c| c.reason == "StoreValid")
                .then_some(s)
        })
        .await;
    assert!(status.identity.unwrap().starts_with("arn:aws:"));
    let cluster: Api<ClusterSecretStore> = Api::all(env.client.clone());
    env.eventually("cluster store Ready", Duration::from_secs(30), || async {
        let s = cluster.get("shared").await.ok()?.status?;
        s.conditions
            .iter()
            .any(|c| c.reason == "StoreValid")
            .then_some(())
    })
    .await;
    env.assert_no_leaks(&["val-Oscar-1", "sk-Papa-2"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn static_keys_and_assume_role_with_external_id() {
    let env = Env::start().await;
    env.namespace("app", json!({})).await;
    env.put_secret("prod/shared", "val-Quebec-1").await;
    env.apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "aws-keys", "namespace": "app"},
        "stringData": {"id": "AKIASTATICEXAMPLE", "secret": "sk-Romeo-2"}})).await;
    let auth = json!({"secretRef": {
        "accessKeyIDSecretRef": {"name": "aws-keys", "key": "id"},
        "secretAccessKeySecretRef": {"name": "aws-keys", "key": "secret"}}});
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "static", "namespace": "app"},
        "spec": env.store_spec("SecretsManager", json!({"auth": auth}))
    }))
    .await;
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "role", "namespace": "app"},
        "spec": env.store_spec("SecretsManager", json!({"auth": auth,
                 "role": "arn:aws:iam::123456789012:role/app-secrets", "externalID": "ext-123",
                 "sessionTags": [{"key": "team", "value": "a"}]}))
    }))
    .await;
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "no-keys", "namespace": "app"},
        "spec": env.store_spec("SecretsManager", json!({"auth": {"secretRef": {
            "accessKeyIDSecretRef": {"name": "missing", "key": "id"},
            "secretAccessKeySecretRef": {"name": "missing", "key": "secret"}}}}))
    }))
    .await;
    env.apply(es("app", "static", "SecretStore", "static"))
        .await;
    env.apply(es("app", "role", "SecretStore", "role")).await;
    env.apply(es("app", "no-keys", "SecretStore", "no-keys"))
        .await;
    env.secret_value("app", "static", "value", b"val-Quebec-1")
        .await;
    env.secret_value("app", "role", "value", b"val-Quebec-1")
        .await;
    assert!(
        env.proxy.count("sts", "AssumeRole") >= 1,
        "{:?}",
        env.proxy.counts()
    );
    let msg = env.ready_reason("app", "no-keys", "StoreNotReady").await;
    assert!(msg.contains("Secret app/missing does not exist"), "{msg}");

    let stores: Api<SecretStore> = Api::namespaced(env.client.clone(), "app");
    let identity = env
        .eventually("role store identity", Duration::from_secs(30), || async {
            stores.get("role").await.ok()?.status?.identity
        })
        .await;
    assert!(identity.contains("assumed-role/app-secrets"), "{identity}");
    env.assert_no_leaks(&["val-Quebec-1", "sk-Romeo-2"]).await;
}

/// The source and version watcher of a store identity are freed once nothing uses it: the
/// `arnsync_sources` gauge goes back to zero after the store is deleted, although the
/// ExternalSecret that used it stays (reporting StoreNotFound).
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_stores_source_is_freed() {
    let env = Env::start_without_operator().await;
    let op = env.spawn_operator("gc", &[]);
    env.namespace("app", json!({})).await;
    env.store("app").await;
    env.put_secret("prod/shared", "shared-Golf-1").await;
    env.apply(es("app", "db", "SecretStore", "aws")).await;
    env.secret_value("app", "db", "value", b"shared-Golf-1")
        .await;
    let sources = || async {
        let (code, body) = crate::harness::http_get(op.metrics_addr()?, "/metrics").await?;
        (code == 200).then_some(())?;
        body.lines()
            .find(|l| l.starts_with("arnsync_sources "))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
    };
    env.eventually("one source in use", Duration::from_secs(30), || async {
        (sources().await? == 1).then_some(())
    })
    .await;

    // Both of the harness's stores (Secrets Manager and Parameter Store) share one identity.
    for name in ["aws", "aws-ssm"] {
        Api::<SecretStore>::namespaced(env.client.clone(), "app")
            .delete(name, &Default::default())
            .await
            .unwrap();
    }
    env.ready_reason("app", "db", "StoreNotFound").await;
    env.eventually("the source freed", Duration::from_secs(30), || async {
        (sources().await? == 0).then_some(())
    })
    .await;
}

/// A store written as External Secrets Operator writes it, with `auth.jwt.serviceAccountRef`:
/// arnsync asks Kubernetes for a token of that ServiceAccount and exchanges it with
/// AssumeRoleWithWebIdentity for the role of its annotation, once per credentials lifetime for
/// every ExternalSecret and store check together.
#[tokio::test(flavor = "multi_thread")]
async fn a_jwt_store_reads_as_its_service_account_with_one_token_per_credentials_lifetime() {
    let env = Env::start().await;
    env.namespace("team-a", json!({})).await;
    env.put_secret("prod/shared", "val-Sierra-1").await;
    env.apply(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "reader", "namespace": "team-a",
                     "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/team-a-reader"}}
    }))
    .await;
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "tenant", "namespace": "team-a"},
        "spec": env.store_spec("SecretsManager", json!({"auth": {"jwt": {"serviceAccountRef": {"name": "reader"}}}}))
    }))
    .await;
    for i in 0..5 {
        env.apply(es("team-a", &format!("es{i}"), "SecretStore", "tenant"))
            .await;
    }
    for i in 0..5 {
        env.secret_value("team-a", &format!("es{i}"), "value", b"val-Sierra-1")
            .await;
    }
    let stores: Api<SecretStore> = Api::namespaced(env.client.clone(), "team-a");
    let identity = env
        .eventually("the store's identity", Duration::from_secs(30), || async {
            stores.get("tenant").await.ok()?.status?.identity
        })
        .await;
    assert!(
        identity.contains("assumed-role/team-a-reader"),
        "{identity}"
    );
    assert_eq!(env.kube.token_requests("team-a", "reader"), 1);
    assert_eq!(
        env.proxy.count("sts", "AssumeRoleWithWebIdentity"),
        1,
        "{:?}",
        env.proxy.counts()
    );

    // A ServiceAccount that does not exist is named, with what to do.
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "ghost", "namespace": "team-a"},
        "spec": env.store_spec("SecretsManager", json!({"auth": {"jwt": {"serviceAccountRef": {"name": "ghost"}}}}))
    }))
    .await;
    env.apply(es("team-a", "ghostly", "SecretStore", "ghost"))
        .await;
    let msg = env.ready_reason("team-a", "ghostly", "StoreNotReady").await;
    assert!(
        msg.contains("ServiceAccount team-a/ghost does not exist"),
        "{msg}"
    );
    env.assert_no_leaks(&["val-Sierra-1"]).await;
}
