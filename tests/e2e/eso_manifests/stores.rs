//! The ESO store documents the API accepts, checked by the operator against moto: each one as
//! written, plus only what reaching moto needs (`spec.arnsync.endpoints`), its placeholders
//! filled as a user's envsubst would, and the objects it names (the keys' Secret, the
//! ServiceAccount with its IRSA role annotation, as the source repositories create them).

use std::time::Duration;

use serde_json::{json, Value};

use super::table::{Outcome, ROWS};
use super::{apply_doc, delete_doc, ensure_namespace, load, Doc};
use crate::harness::Env;

/// (file, index, what the store check must report in `status.identity`).
const STORES: &[(&str, usize, &str)] = &[
    ("001", 0, "assumed-role/external-secrets"),
    ("002", 0, "assumed-role/external-secrets"),
    ("003", 0, "assumed-role/external-secrets"),
    // `role: team-b` (a short name, from ESO's documentation) is not an ARN, which STS needs:
    // the store says so (the third field is then the expected message).
    ("004", 0, "provider.aws role \"team-b\" is not an ARN"),
    ("004", 1, "provider.aws role \"team-b\" is not an ARN"),
    ("004", 2, "assumed-role/team-b"),
    ("004", 4, "assumed-role/team-b"),
    // No auth, no role: the operator's own identity.
    ("004", 5, "arn:aws:"),
    ("017", 0, "arn:aws:"),
    ("022", 0, "assumed-role/external-secrets-sa"),
    ("024", 0, "assumed-role/external_secrets_role"),
    ("028", 0, "assumed-role/aws-secrets-manager"),
    ("035", 0, "assumed-role/user-service-sa"),
];

#[tokio::test(flavor = "multi_thread")]
async fn accepted_eso_stores_become_ready() {
    let Some(docs) = load() else { return };
    for (doc, row) in docs.iter().zip(ROWS) {
        let store = matches!(row.outcome, Outcome::Accepted)
            && ["SecretStore", "ClusterSecretStore"].contains(&doc.kind());
        let listed = STORES
            .iter()
            .any(|(f, i, _)| doc.file.starts_with(f) && doc.index == *i);
        assert_eq!(store, listed, "{}: accepted store vs STORES", doc.label());
    }
    let env = Env::start().await;
    let mut failed = vec![];
    for (file, index, identity) in STORES {
        let doc = docs
            .iter()
            .find(|d| d.file.starts_with(file) && d.index == *index)
            .unwrap();
        match check(&env, doc, identity).await {
            Ok(id) => eprintln!("{}: Ready as {id}", doc.label()),
            Err(e) => {
                eprintln!("{}: FAILED: {e}", doc.label());
                failed.push(format!("{}: {e}", doc.label()));
            }
        }
    }
    assert!(failed.is_empty(), "\n{}", failed.join("\n"));
    // The static keys and session token appear nowhere the operator writes.
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::all(env.client.clone());
    let events = serde_json::to_string(&events.list(&Default::default()).await.unwrap()).unwrap();
    for v in ["sk-Foxtrot-1", "st-Foxtrot-2"] {
        assert!(!env.operator_log().contains(v), "{v} in the operator log");
        assert!(!events.contains(v), "{v} in an event");
    }
}

async fn check(env: &Env, doc: &Doc, identity: &str) -> Result<String, String> {
    let mut body = doc.body.clone();
    body["spec"]["arnsync"] = json!({"endpoints": env.endpoints()});
    let aws = &mut body["spec"]["provider"]["aws"];
    if matches!(aws["region"].as_str(), Some("$AWS_REGION" | "AWS_REGION")) {
        aws["region"] = json!("us-east-1");
    }
    let home = doc.namespace().to_string();
    if !doc.cluster_scoped() {
        ensure_namespace(env, &home).await;
    }
    if let Some(keys) = aws["auth"].get("secretRef") {
        let ns = keys["accessKeyIDSecretRef"]["namespace"]
            .as_str()
            .unwrap_or(&home);
        ensure_namespace(env, ns).await;
        env.apply(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": keys["accessKeyIDSecretRef"]["name"], "namespace": ns},
            "stringData": {"access-key": "AKIAESOTEST", "secret-access-key": "sk-Foxtrot-1",
                           "session-token": "st-Foxtrot-2"}}))
            .await;
    }
    if let Some(sa) = aws["auth"]["jwt"].get("serviceAccountRef") {
        let ns = sa["namespace"].as_str().unwrap_or(&home);
        let name = sa["name"].as_str().unwrap();
        ensure_namespace(env, ns).await;
        env.apply(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": ns, "annotations":
                {"eks.amazonaws.com/role-arn": format!("arn:aws:iam::123456789012:role/{name}")}}}))
            .await;
    }
    apply_doc(env, doc, &body)
        .await
        .map_err(|e| format!("apply: {e}"))?;
    let outcome = ready(env, doc, identity).await;
    delete_doc(env, doc).await;
    outcome
}

/// The store's identity once Ready is True (and names `identity`), its message once Ready is
/// False with `InvalidSpec` naming `identity` (a store the operator refuses), or what it says
/// instead.
async fn ready(env: &Env, doc: &Doc, identity: &str) -> Result<String, String> {
    let api = super::dynamic_api(env, doc);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let obj = api.get(doc.name()).await.map_err(|e| e.to_string())?;
        let status: &Value = &obj.data["status"];
        let ready = status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
        let id = status["identity"].as_str().unwrap_or_default();
        if let Some(c) = ready {
            if c["status"] == "True" && id.contains(identity) {
                return Ok(id.to_string());
            }
            let message = c["message"].as_str().unwrap_or_default();
            if c["status"] == "False" && c["reason"] == "InvalidSpec" && message.contains(identity)
            {
                return Ok(message.to_string());
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "Ready {} {}: {} (identity {id:?}, expected {identity:?})",
                    c["status"], c["reason"], c["message"]
                ));
            }
        } else if std::time::Instant::now() > deadline {
            return Err("no Ready condition".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
