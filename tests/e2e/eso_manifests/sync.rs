//! The ESO ExternalSecrets the API accepts, synced by the operator against moto: each one's
//! store (kind and name from its `secretStoreRef`, in its namespace) reaches moto, moto holds
//! every key it names, and the Secret must have what External Secrets Operator would write.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::{json, Value};

use super::cases::{Case, Seed, CASES};
use super::table::{Outcome, ROWS};
use super::{apply_doc, delete_doc, ensure_namespace, load, Doc};
use crate::harness::Env;
use arnsync::api::ExternalSecret;

#[tokio::test(flavor = "multi_thread")]
async fn accepted_eso_external_secrets_sync_as_eso_would() {
    let Some(docs) = load() else { return };
    let find = |c: &Case| {
        docs.iter()
            .find(|d| d.file.starts_with(c.file) && d.index == c.index)
            .unwrap_or_else(|| panic!("no document {} #{}", c.file, c.index))
    };
    // Every ExternalSecret the API accepts has a case, and every case is such a document (or
    // one the user must edit first, which says how).
    for (doc, row) in docs.iter().zip(ROWS) {
        let accepted = matches!(row.outcome, Outcome::Accepted) && doc.kind() == "ExternalSecret";
        let case = CASES
            .iter()
            .find(|c| doc.file.starts_with(c.file) && doc.index == c.index);
        match case {
            Some(c) => assert!(
                accepted || c.edit.is_some(),
                "{}: a case for a refused document",
                doc.label()
            ),
            None => assert!(!accepted, "{}: accepted, but no case", doc.label()),
        }
    }

    let env = Env::start().await;
    let mut failed = vec![];
    for case in CASES {
        let doc = find(case);
        match run(&env, doc, case).await {
            Ok(()) => eprintln!("{}: as ESO", doc.label()),
            Err(e) => {
                eprintln!("{}: FAILED: {e}", doc.label());
                failed.push(format!("{}: {e}", doc.label()));
            }
        }
    }
    assert!(failed.is_empty(), "\n{}", failed.join("\n"));
    env.assert_no_leaks(&[
        "pw-Delta-1",
        "re_Yankee-1",
        "pw-Romeo-1",
        "api-key-Mike-pinned",
    ])
    .await;
}

/// One document: seed, store, apply, wait, compare; then everything it made is removed.
async fn run(env: &Env, doc: &Doc, case: &Case) -> Result<(), String> {
    env.reset_moto().await;
    seed(env, case).await;
    let mut body = doc.body.clone();
    if let Some(edit) = case.edit {
        edit(&mut body);
    }
    let ns = body["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let name = body["metadata"]["name"].as_str().unwrap().to_string();
    let target = body["spec"]["target"]["name"]
        .as_str()
        .unwrap_or(&name)
        .to_string();
    ensure_namespace(env, &ns).await;
    store(env, &ns, &body["spec"]["secretStoreRef"], case).await;
    if !case.existing.is_empty() {
        let data: serde_json::Map<String, Value> = case
            .existing
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        env.apply(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": target, "namespace": ns}, "stringData": data}))
            .await;
    }
    let edited = Doc {
        file: doc.file.clone(),
        index: doc.index,
        body: body.clone(),
        duplicate: None,
    };
    apply_doc(env, &edited, &body)
        .await
        .map_err(|e| format!("apply: {e}"))?;

    let outcome = check(env, &ns, &name, &target, doc, case).await;
    delete_doc(env, &edited).await;
    // Owned Secrets go with their ExternalSecret; a merged-into one is the test's to remove.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &ns);
    let _ = secrets.delete(&target, &Default::default()).await;
    outcome
}

async fn seed(env: &Env, case: &Case) {
    let (sm, ssm) = env.aws_in(case.region);
    for s in case.seeds {
        match *s {
            Seed::Secret(name, value) | Seed::Tagged(name, value, _) => {
                let tags = match s {
                    Seed::Tagged(_, _, tags) => tags
                        .iter()
                        .map(|(k, v)| {
                            aws_sdk_secretsmanager::types::Tag::builder()
                                .key(*k)
                                .value(*v)
                                .build()
                        })
                        .collect(),
                    _ => vec![],
                };
                let created = sm
                    .create_secret()
                    .name(name)
                    .secret_string(value)
                    .set_tags(Some(tags))
                    .send()
                    .await;
                if created.is_err() {
                    sm.put_secret_value()
                        .secret_id(name)
                        .secret_string(value)
                        .send()
                        .await
                        .expect("put secret value");
                }
            }
            Seed::Version(name, version_id, value) => {
                sm.create_secret()
                    .name(name)
                    .secret_string(value)
                    .client_request_token(version_id)
                    .send()
                    .await
                    .expect("create secret with a VersionId");
            }
            Seed::Param(name, value, type_) => {
                ssm.put_parameter()
                    .name(name)
                    .value(value)
                    .r#type(type_.into())
                    .overwrite(true)
                    .send()
                    .await
                    .expect("put parameter");
            }
        }
    }
}

/// The store the document names, reaching moto: the case's service and region.
async fn store(env: &Env, ns: &str, store_ref: &Value, case: &Case) {
    let kind = store_ref["kind"].as_str().unwrap_or("SecretStore");
    let mut metadata = json!({"name": store_ref["name"]});
    if kind == "SecretStore" {
        metadata["namespace"] = json!(ns);
    }
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": kind, "metadata": metadata,
        "spec": env.store_spec(case.service, json!({"region": case.region}))
    }))
    .await;
}

/// Waits for Ready (or, for a gap, for the refusal naming it) and compares the Secret.
async fn check(
    env: &Env,
    ns: &str,
    name: &str,
    target: &str,
    doc: &Doc,
    case: &Case,
) -> Result<(), String> {
    let (status, reason, message) = ready(env, ns, name, case.gap).await?;
    if let Some(gap) = case.gap {
        return if status == "False" && message.contains(gap) {
            Ok(())
        } else {
            Err(format!(
                "expected the known gap ({gap}), got Ready {status} {reason}: {message}"
            ))
        };
    }
    let secret = env
        .secret(ns, target)
        .await
        .ok_or(format!("Ready, but no Secret {ns}/{target}"))?;
    let data = secret.data.clone().unwrap_or_default();
    let got: BTreeSet<&str> = data.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = case.keys.iter().copied().collect();
    let mut wrong = vec![];
    if got != want {
        wrong.push(format!("keys {got:?}, expected {want:?}"));
    }
    let mut values: Vec<(String, String)> = case
        .values
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(rendered) = case.rendered {
        values.extend(rendered(&doc.body));
    }
    for (k, v) in values {
        let got = data
            .get(&k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned());
        if got.as_deref() != Some(v.as_str()) {
            // Test values are made up; showing them helps whoever reads a failure.
            wrong.push(format!("{k} = {got:?}, expected {v:?}"));
        }
    }
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    if type_ != case.type_.unwrap_or("Opaque") {
        wrong.push(format!("type {type_}, expected {:?}", case.type_));
    }
    let meta = &secret.metadata;
    for (what, want, got) in [
        (
            "label",
            case.labels,
            meta.labels.clone().unwrap_or_default(),
        ),
        (
            "annotation",
            case.annotations,
            meta.annotations.clone().unwrap_or_default(),
        ),
    ] {
        for (k, v) in want {
            if got.get(*k).map(String::as_str) != Some(*v) {
                wrong.push(format!("{what} {k} = {:?}, expected {v:?}", got.get(*k)));
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// The Ready condition once it is True, once it names `gap`, or once it has been False with
/// the same message for 10 s (a refusal, not a store still being checked).
async fn ready(
    env: &Env,
    ns: &str,
    name: &str,
    gap: Option<&str>,
) -> Result<(String, String, String), String> {
    let api: Api<ExternalSecret> = Api::namespaced(env.client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut last: Option<((String, String, String), Instant)> = None;
    loop {
        let es = api.get(name).await.map_err(|e| e.to_string())?;
        let c = es
            .status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"));
        if let Some(c) = c {
            let now = (format!("{:?}", c.status), c.reason, c.message);
            if now.0 == "True" || gap.is_some_and(|g| now.2.contains(g)) {
                return Ok(now);
            }
            match &last {
                Some((seen, since)) if *seen == now => {
                    if since.elapsed() > Duration::from_secs(10) {
                        return Err(format!("Ready {} {}: {}", now.0, now.1, now.2));
                    }
                }
                _ => last = Some((now, Instant::now())),
            }
        }
        if Instant::now() > deadline {
            return Err(match last {
                Some((c, _)) => format!("timed out; Ready {} {}: {}", c.0, c.1, c.2),
                None => "timed out without a Ready condition".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// 029's ClusterExternalSecret: an ExternalSecret named `externalSecretName` in every namespace
/// labelled `addons-test-adhoc: "true"`, none elsewhere. Its ClusterSecretStore
/// aws-secrets-manager-store-adhoc is Secrets Manager (as 029's SecretStore).
#[tokio::test(flavor = "multi_thread")]
async fn eso_cluster_external_secret_syncs_in_the_namespaces_it_selects() {
    let Some(docs) = load() else { return };
    let doc = docs
        .iter()
        .find(|d| d.kind() == "ClusterExternalSecret")
        .expect("029's ClusterExternalSecret");
    let env = Env::start().await;
    // The namespaces are the test's: the document selects them by label.
    env.namespace("adhoc-a", json!({"addons-test-adhoc": "true"}))
        .await;
    env.namespace("adhoc-b", json!({})).await;
    env.put_secret("adhoc/cdo/contentful_api_key", "cf-Golf-1")
        .await;
    let case = Case {
        region: "us-east-1",
        ..super::cases::CASE
    };
    store(
        &env,
        "",
        &doc.body["spec"]["externalSecretSpec"]["secretStoreRef"],
        &case,
    )
    .await;
    apply_doc(&env, doc, &doc.body).await.expect("apply");

    let s = env
        .secret_value(
            "adhoc-a",
            "addons-test-adhoc-secret",
            "contentful_api_key",
            b"cf-Golf-1",
        )
        .await;
    let keys: Vec<&String> = s.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["contentful_api_key"]);
    let made = Api::<ExternalSecret>::namespaced(env.client.clone(), "adhoc-a")
        .get_opt("addons-test-adhoc-secret-es")
        .await
        .unwrap();
    assert!(
        made.is_some(),
        "the ExternalSecret is named externalSecretName"
    );
    let elsewhere = Api::<ExternalSecret>::namespaced(env.client.clone(), "adhoc-b")
        .list(&Default::default())
        .await
        .unwrap();
    assert!(
        elsewhere.items.is_empty(),
        "an unselected namespace has none"
    );
    assert!(env
        .secret("adhoc-b", "addons-test-adhoc-secret")
        .await
        .is_none());
}
