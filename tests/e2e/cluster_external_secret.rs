//! ClusterExternalSecret: one ExternalSecret per selected namespace, following the namespaces'
//! labels, never over an ExternalSecret it did not create, gone with the ClusterExternalSecret.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::json;

use crate::harness::{data_str, Env};
use arnsync::api::{ClusterExternalSecret, ClusterExternalSecretStatus, ExternalSecret};

const LABEL: &str = "arnsync.io/cluster-external-secret";
const WAIT: Duration = Duration::from_secs(30);

fn ces_api(env: &Env) -> Api<ClusterExternalSecret> {
    Api::all(env.client.clone())
}

async fn set_label(env: &Env, ns: &str, value: Option<&str>) {
    Api::<Namespace>::all(env.client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"secrets": value}}})),
        )
        .await
        .expect("label namespace");
}

/// Waits for the status to list exactly `provisioned` (and the failures `failed`).
async fn status_lists(
    env: &Env,
    provisioned: &[&str],
    failed: &[&str],
) -> ClusterExternalSecretStatus {
    env.eventually(
        &format!("status provisioned {provisioned:?} failed {failed:?}"),
        WAIT,
        || async {
            let s = ces_api(env).get("shared-db").await.ok()?.status?;
            let f: Vec<&str> = s
                .failed_namespaces
                .iter()
                .map(|f| f.namespace.as_str())
                .collect();
            (s.provisioned_namespaces == provisioned && f == failed).then_some(s)
        },
    )
    .await
}

async fn es_opt(env: &Env, ns: &str, name: &str) -> Option<ExternalSecret> {
    Api::<ExternalSecret>::namespaced(env.client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

async fn gone(env: &Env, ns: &str) {
    env.eventually(&format!("ExternalSecret {ns}/db gone"), WAIT, || async {
        es_opt(env, ns, "db").await.is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn follows_namespace_labels_and_leaves_foreign_external_secrets_alone() {
    let env = Env::start().await;
    env.put_secret("shared/db", "pw-Golf-7").await;
    env.put_secret("other/db", "pw-Hotel-8").await;
    for ns in ["team-a", "team-b", "other"] {
        env.namespace(ns, json!({"secrets": "shared"})).await;
        env.store(ns).await;
    }
    env.namespace("team-c", json!({})).await;
    env.store("team-c").await;
    // Someone else's ExternalSecret of the same name, in a selected namespace.
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": "db", "namespace": "other"},
        "spec": {"secretStoreRef": {"name": "aws"},
                 "data": [{"secretKey": "password", "remoteRef": {"key": "other/db"}}]}
    }))
    .await;
    env.secret_value("other", "db", "password", b"pw-Hotel-8")
        .await;

    let ces: ClusterExternalSecret = serde_json::from_value(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ClusterExternalSecret",
        "metadata": {"name": "shared-db"},
        "spec": {
            "externalSecretName": "db",
            "externalSecretMetadata": {"labels": {"owner": "platform"}, "annotations": {"note": "shared"}},
            "namespaceSelectors": [{"matchLabels": {"secrets": "shared"}}],
            "refreshTime": "1h",
            "externalSecretSpec": {
                "secretStoreRef": {"name": "aws"},
                "data": [{"secretKey": "password", "remoteRef": {"key": "shared/db"}}]
            }
        }
    }))
    .unwrap();
    ces_api(&env)
        .patch(
            "shared-db",
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(&ces),
        )
        .await
        .expect("apply ClusterExternalSecret");

    // Two labelled namespaces: an ExternalSecret each, and their Secrets synced.
    for ns in ["team-a", "team-b"] {
        env.secret_value(ns, "db", "password", b"pw-Golf-7").await;
        let es = env.es(ns, "db").await;
        assert_eq!(
            es.labels().get(LABEL).map(String::as_str),
            Some("shared-db")
        );
        assert_eq!(
            es.labels().get("owner").map(String::as_str),
            Some("platform")
        );
        assert_eq!(
            es.annotations().get("note").map(String::as_str),
            Some("shared")
        );
        let owner = &es.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ClusterExternalSecret", "shared-db")
        );
        assert_eq!(owner.controller, Some(true));
    }
    // The foreign one is reported and left as it was.
    let status = status_lists(&env, &["team-a", "team-b"], &["other"]).await;
    assert_eq!(status.external_secret_name.as_deref(), Some("db"));
    let reason = &status.failed_namespaces[0].reason;
    assert!(
        reason.contains("not created by ClusterExternalSecret shared-db"),
        "{reason}"
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason, "NamespacesFailed", "{}", ready.message);
    let foreign = env.es("other", "db").await;
    assert!(foreign.labels().get(LABEL).is_none());
    assert!(foreign.metadata.owner_references.is_none());
    assert_eq!(foreign.spec.data[0].remote_ref.key, "other/db");
    assert_eq!(
        data_str(&env.secret("other", "db").await.unwrap(), "password"),
        "pw-Hotel-8"
    );

    // A namespace labelled later gets one; the foreign one's namespace unlabelled is no failure.
    set_label(&env, "team-c", Some("shared")).await;
    set_label(&env, "other", None).await;
    env.secret_value("team-c", "db", "password", b"pw-Golf-7")
        .await;
    let status = status_lists(&env, &["team-a", "team-b", "team-c"], &[]).await;
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason, "Provisioned", "{}", ready.message);
    assert!(
        es_opt(&env, "other", "db").await.is_some(),
        "foreign ExternalSecret kept"
    );

    // Unlabelling removes its ExternalSecret (and the Secret that ExternalSecret owned).
    set_label(&env, "team-b", None).await;
    gone(&env, "team-b").await;
    status_lists(&env, &["team-a", "team-c"], &[]).await;
    env.eventually("Secret team-b/db gone", WAIT, || async {
        env.secret("team-b", "db").await.is_none().then_some(())
    })
    .await;

    let all =
        serde_json::to_string(&ces_api(&env).list(&Default::default()).await.unwrap()).unwrap();
    assert!(
        !all.contains("pw-Golf-7"),
        "a value leaked into the ClusterExternalSecret"
    );
    env.assert_no_leaks(&["pw-Golf-7", "pw-Hotel-8"]).await;

    // Deleting the ClusterExternalSecret removes its ExternalSecrets, not the foreign one.
    ces_api(&env)
        .delete("shared-db", &DeleteParams::default())
        .await
        .expect("delete ClusterExternalSecret");
    gone(&env, "team-a").await;
    gone(&env, "team-c").await;
    assert!(
        es_opt(&env, "other", "db").await.is_some(),
        "foreign ExternalSecret kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn selects_by_name_undoes_edits_and_moves_when_the_external_secret_name_changes() {
    let env = Env::start().await;
    env.put_secret("shared/db", "pw-India-9").await;
    env.namespace("named", json!({})).await;
    env.store("named").await;
    let apply = |es_name: &'static str| {
        let ces: ClusterExternalSecret = serde_json::from_value(json!({
            "apiVersion": "arnsync.io/v1alpha1", "kind": "ClusterExternalSecret",
            "metadata": {"name": "shared-db"},
            "spec": {
                "externalSecretName": es_name,
                "namespaces": ["named"],
                "externalSecretSpec": {
                    "secretStoreRef": {"name": "aws"},
                    "data": [{"secretKey": "password", "remoteRef": {"key": "shared/db"}}]
                }
            }
        }))
        .unwrap();
        let api = ces_api(&env);
        async move {
            api.patch(
                "shared-db",
                &PatchParams::apply("e2e-test").force(),
                &Patch::Apply(&ces),
            )
            .await
            .expect("apply ClusterExternalSecret");
        }
    };
    apply("first").await;
    env.secret_value("named", "first", "password", b"pw-India-9")
        .await;
    status_lists(&env, &["named"], &[]).await;

    // A hand edit of what it wrote is undone.
    Api::<ExternalSecret>::namespaced(env.client.clone(), "named")
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"data": [{"secretKey": "edited", "remoteRef": {"key": "shared/db"}}]}})),
        )
        .await
        .expect("edit ExternalSecret");
    env.eventually("the edit undone", WAIT, || async {
        let es = es_opt(&env, "named", "first").await?;
        (es.spec.data.len() == 1 && es.spec.data[0].secret_key == "password").then_some(())
    })
    .await;

    apply("second").await;
    env.secret_value("named", "second", "password", b"pw-India-9")
        .await;
    env.eventually("ExternalSecret named/first gone", WAIT, || async {
        es_opt(&env, "named", "first").await.is_none().then_some(())
    })
    .await;
    let status = status_lists(&env, &["named"], &[]).await;
    assert_eq!(status.external_secret_name.as_deref(), Some("second"));
}
