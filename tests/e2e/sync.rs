//! What ends up in the Secret for each kind of source.

use std::time::Duration;

use aws_sdk_secretsmanager::primitives::Blob;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::harness::{data_str, Env};
use k8s_openapi::api::core::v1::Secret;

#[tokio::test(flavor = "multi_thread")]
async fn secrets_manager_values_templates_and_finds() {
    let env = Env::start().await;
    env.namespace("app", json!({})).await;
    env.store("app").await;
    env.put_secret(
        "prod/db",
        r#"{"username":"app","password":"pw-Alpha-1","nested":{"host":"db.internal"}}"#,
    )
    .await;
    env.put_secret("prod/plain", "plain-Bravo-2").await;
    env.sm
        .create_secret()
        .name("prod/bin")
        .secret_binary(Blob::new(vec![0u8, 159, 146, 150]))
        .send()
        .await
        .unwrap();
    let first_version = env.only_version("prod/plain").await;
    env.put_secret("prod/plain", "plain-Charlie-3").await;
    env.sm
        .create_secret()
        .name("prod/app/one")
        .secret_string("find-Delta-4")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("a")
                .build(),
        )
        .send()
        .await
        .unwrap();
    env.sm
        .create_secret()
        .name("prod/app/two")
        .secret_string("find-Echo-5")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("b")
                .build(),
        )
        .send()
        .await
        .unwrap();
    env.put_secret("registry", r#"{"user":"robot","token":"tok-Foxtrot-6"}"#)
        .await;

    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": "db", "namespace": "app"},
        "spec": {
            "secretStoreRef": {"name": "aws"},
            "data": [
                {"secretKey": "password", "remoteRef": {"key": "prod/db", "property": "password"}},
                {"secretKey": "dbhost", "remoteRef": {"key": "prod/db", "property": "nested.host"}},
                {"secretKey": "plain", "remoteRef": {"key": "prod/plain"}},
                {"secretKey": "previous", "remoteRef": {"key": "prod/plain", "version": "AWSPREVIOUS"}},
                {"secretKey": "pinned", "remoteRef": {"key": "prod/plain", "version": format!("uuid/{first_version}")}},
                {"secretKey": "bin", "remoteRef": {"key": "prod/bin"}}
            ],
            "dataFrom": [
                {"extract": {"key": "prod/db", "property": "nested"}},
                {"find": {"name": {"regexp": "^prod/app/"}, "tags": {"team": "a"}},
                 "rewrite": [{"regexp": {"source": "^prod/app/(.*)$", "target": "found-$1"}}]}
            ]
        }
    }))
    .await;
    let s = env
        .secret_value("app", "db", "password", b"pw-Alpha-1")
        .await;
    assert_eq!(data_str(&s, "dbhost"), "db.internal");
    assert_eq!(
        data_str(&s, "host"),
        "db.internal",
        "extract of the nested object"
    );
    assert_eq!(data_str(&s, "plain"), "plain-Charlie-3");
    assert_eq!(data_str(&s, "previous"), "plain-Bravo-2");
    assert_eq!(data_str(&s, "pinned"), "plain-Bravo-2");
    assert_eq!(s.data.as_ref().unwrap()["bin"].0, vec![0u8, 159, 146, 150]);
    let keys: Vec<_> = s.data.as_ref().unwrap().keys().cloned().collect();
    assert!(
        keys.contains(&"found-one".to_string()) && !keys.contains(&"found-two".to_string()),
        "{keys:?}"
    );
    assert_eq!(data_str(&s, "found-one"), "find-Delta-4");
    assert_eq!(
        s.metadata.labels.as_ref().unwrap()["arnsync.io/managed"],
        "true"
    );
    assert_eq!(
        s.metadata.annotations.as_ref().unwrap()["arnsync.io/external-secret"],
        "db"
    );
    assert_eq!(
        s.metadata.owner_references.as_ref().unwrap()[0].kind,
        "ExternalSecret"
    );
    let msg = env.ready_reason("app", "db", "SecretSynced").await;
    assert!(msg.contains("app/db"), "{msg}");
    let es = env.es("app", "db").await;
    let status = es.status.unwrap();
    assert_eq!(status.data_hash.as_ref().unwrap().len(), 64);
    assert!(status
        .sources
        .iter()
        .any(|s| s.key == "prod/plain" && s.version_id.as_deref() == Some(first_version.as_str())));
    assert!(status.refresh_time.is_some());
    assert_eq!(status.observed_generation, Some(1));

    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": "regcred", "namespace": "app"},
        "spec": {
            "secretStoreRef": {"name": "aws"},
            "target": {"template": {
                "type": "kubernetes.io/dockerconfigjson",
                "metadata": {"labels": {"team": "a"}, "annotations": {"owner": "platform"}},
                "data": {".dockerconfigjson": "{\"auths\": {\"registry.example\": {\"auth\": \"{{ printf \"%s:%s\" .user .token | b64enc }}\"}}}"}
            }},
            "dataFrom": [{"extract": {"key": "registry"}}]
        }
    }))
    .await;
    let s = env
        .eventually("regcred Secret", Duration::from_secs(30), || async {
            env.secret("app", "regcred").await
        })
        .await;
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    assert_eq!(s.metadata.labels.as_ref().unwrap()["team"], "a");
    assert_eq!(
        s.metadata.annotations.as_ref().unwrap()["owner"],
        "platform"
    );
    let cfg: serde_json::Value = serde_json::from_str(&data_str(&s, ".dockerconfigjson")).unwrap();
    assert_eq!(
        cfg["auths"]["registry.example"]["auth"],
        "cm9ib3Q6dG9rLUZveHRyb3QtNg=="
    );

    env.assert_no_leaks(&[
        "pw-Alpha-1",
        "plain-Bravo-2",
        "plain-Charlie-3",
        "find-Delta-4",
        "find-Echo-5",
        "tok-Foxtrot-6",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn parameter_store_values_versions_labels_and_paths() {
    let env = Env::start().await;
    env.namespace("app", json!({})).await;
    env.store("app").await;
    env.put_param("/prod/app/url", "url-Golf-1", "String").await;
    env.put_param("/prod/app/hosts", "a,b,c", "StringList")
        .await;
    env.put_param("/prod/app/db/password", "pw-Hotel-2", "SecureString")
        .await;
    env.put_param("/prod/app/db/password", "pw-India-3", "SecureString")
        .await;
    env.ssm
        .label_parameter_version()
        .name("/prod/app/db/password")
        .parameter_version(1)
        .labels("stable")
        .send()
        .await
        .unwrap();
    for i in 0..12 {
        env.put_param(
            &format!("/prod/app/many/k{i:02}"),
            &format!("many-{i}"),
            "String",
        )
        .await;
    }
    env.put_param("/prod/other/x", "not-found-by-path", "String")
        .await;

    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": "params", "namespace": "app"},
        "spec": {
            "secretStoreRef": {"name": "aws"},
            "data": [
                {"secretKey": "url", "remoteRef": {"key": "arn:aws:ssm:us-east-1:123456789012:parameter/prod/app/url"}},
                {"secretKey": "hosts", "remoteRef": {"key": "arn:aws:ssm:us-east-1:123456789012:parameter/prod/app/hosts"}},
                {"secretKey": "password", "remoteRef": {"key": "arn:aws:ssm:us-east-1:123456789012:parameter/prod/app/db/password"}},
                {"secretKey": "password-v1", "remoteRef": {"key": "arn:aws:ssm:us-east-1:123456789012:parameter/prod/app/db/password", "version": "1"}},
                {"secretKey": "password-stable", "remoteRef": {"key": "arn:aws:ssm:us-east-1:123456789012:parameter/prod/app/db/password", "version": "stable"}}
            ]
        }
    }))
    .await;
    let s = env
        .secret_value("app", "params", "url", b"url-Golf-1")
        .await;
    assert_eq!(data_str(&s, "hosts"), "a,b,c");
    assert_eq!(data_str(&s, "password"), "pw-India-3");
    assert_eq!(data_str(&s, "password-v1"), "pw-Hotel-2");
    assert_eq!(data_str(&s, "password-stable"), "pw-Hotel-2");
    // The status is written after the Secret: wait for it rather than read it once.
    env.eventually(
        "status.sources to list /prod/app/db/password at version 2",
        Duration::from_secs(20),
        || async {
            let status = env.es("app", "params").await.status?;
            status
                .sources
                .iter()
                .any(|s| s.key == "/prod/app/db/password" && s.version.as_deref() == Some("2"))
                .then_some(())
        },
    )
    .await;

    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": "path", "namespace": "app"},
        "spec": {
            "secretStoreRef": {"name": "aws-ssm"},
            "dataFrom": [{"find": {"path": "/prod/app/"},
                          "rewrite": [{"regexp": {"source": "^/prod/app/(.*)$", "target": "$1"}}]}]
        }
    }))
    .await;
    let s = env.secret_value("app", "path", "url", b"url-Golf-1").await;
    let data = s.data.as_ref().unwrap();
    assert_eq!(data_str(&s, "db_password"), "pw-India-3");
    assert_eq!(data_str(&s, "many_k11"), "many-11");
    assert_eq!(data.len(), 3 + 12, "{:?}", data.keys().collect::<Vec<_>>());
    assert!(!data.values().any(|v| v.0 == b"not-found-by-path"));
    env.assert_no_leaks(&["url-Golf-1", "pw-Hotel-2", "pw-India-3"])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_picks_up_changes_and_hand_edits_and_deletes_are_repaired() {
    let env = Env::start().await;
    env.namespace("app", json!({})).await;
    env.store("app").await;
    env.put_secret("prod/token", "tok-Juliet-1").await;
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": "token", "namespace": "app"},
        "spec": {"secretStoreRef": {"name": "aws"}, "refreshInterval": "1s",
                 "data": [{"secretKey": "token", "remoteRef": {"key": "prod/token"}}]}
    }))
    .await;
    env.secret_value("app", "token", "token", b"tok-Juliet-1")
        .await;
    env.put_secret("prod/token", "tok-Kilo-2").await;
    env.secret_value("app", "token", "token", b"tok-Kilo-2")
        .await;

    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), "app");
    secrets
        .patch(
            "token",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"token": "ZWRpdGVk"}})),
        )
        .await
        .unwrap();
    env.secret_value("app", "token", "token", b"tok-Kilo-2")
        .await;
    secrets
        .delete("token", &DeleteParams::default())
        .await
        .unwrap();
    env.secret_value("app", "token", "token", b"tok-Kilo-2")
        .await;

    // With nothing changing, refreshes do not rewrite the Secret.
    let before = env
        .secret("app", "token")
        .await
        .unwrap()
        .metadata
        .resource_version;
    env.kube.reset_counters();
    let start = env.proxy.count("secretsmanager", "GetSecretValue");
    env.eventually("two more refreshes", Duration::from_secs(30), || async {
        (env.proxy.count("secretsmanager", "GetSecretValue") >= start + 2).then_some(())
    })
    .await;
    let after = env
        .secret("app", "token")
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_eq!(
        before, after,
        "an unchanged refresh must not write the Secret"
    );
    assert_eq!(env.kube.request_count("patch", "secrets"), 0);
    env.assert_no_leaks(&["tok-Juliet-1", "tok-Kilo-2"]).await;
}
