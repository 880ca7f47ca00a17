//! Plan tests: build objects with small `mk_*` helpers, plan, assert on the result.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde_json::json;

use super::test_input::{plan, Fetched, PlanInput};
use super::*;
use crate::api::ExternalSecret;
use crate::source::{ErrorKind, SecretBytes, Service, SourceError, Value};

fn mk_es(spec: serde_json::Value) -> ExternalSecret {
    serde_json::from_value(json!({
        "apiVersion": "arnsync.io/v1alpha1",
        "kind": "ExternalSecret",
        "metadata": {"name": "db", "namespace": "app", "uid": "uid-1", "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

fn mk_sm(name: &str, value: &str, version: &str) -> Value {
    Value {
        service: Service::SecretsManager,
        name: name.into(),
        data: SecretBytes(value.as_bytes().to_vec()),
        binary: false,
        version: version.into(),
        created: None,
    }
}

fn mk_param(name: &str, value: &str, version: &str) -> Value {
    Value {
        service: Service::ParameterStore,
        ..mk_sm(name, value, version)
    }
}

fn mk_gone(key: &str) -> SourceError {
    SourceError {
        kind: ErrorKind::NotFound,
        service: Service::SecretsManager.into(),
        operation: "GetSecretValue",
        key: key.into(),
        code: "ResourceNotFoundException".into(),
        message: "Secrets Manager can't find the specified secret.".into(),
    }
}

/// Plans `es` with `data` fetched for its `spec.data` entries and no `dataFrom`.
fn plan_data(
    es: &ExternalSecret,
    data: Vec<Fetched>,
    existing: Option<&Secret>,
) -> Result<Plan, PlanError> {
    plan(PlanInput {
        es,
        data,
        data_from: vec![],
        existing,
        templates: Default::default(),
    })
}

fn applied(p: &Plan) -> (&Secret, bool) {
    match &p.action {
        Action::Apply { secret, changed } => (secret, *changed),
        other => panic!("expected Apply, got {other:?}"),
    }
}

fn data_of(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).unwrap()))
        .collect()
}

fn one_key_es() -> ExternalSecret {
    mk_es(json!({
        "secretStoreRef": {"name": "aws"},
        "data": [
            {"secretKey": "password", "remoteRef": {"key": "prod/db", "property": "password"}},
            {"secretKey": "url", "remoteRef": {"key": "arn:aws:ssm:us-east-1:123456789012:parameter/prod/url"}}
        ]
    }))
}

fn db_values() -> Vec<Fetched> {
    vec![
        Fetched::One(mk_sm(
            "prod/db",
            r#"{"username":"app","password":"s3cret"}"#,
            "v1",
        )),
        Fetched::One(mk_param("/prod/url", "postgres://db", "3")),
    ]
}

#[test]
fn data_items_become_keys_with_owner_labels_annotations_and_sources() {
    let es = one_key_es();
    let p = plan_data(&es, db_values(), None).unwrap();
    let (s, changed) = applied(&p);
    assert!(changed);
    assert_eq!(
        data_of(s),
        BTreeMap::from([
            ("password".into(), "s3cret".into()),
            ("url".into(), "postgres://db".into())
        ])
    );
    assert_eq!(s.metadata.name.as_deref(), Some("db"));
    assert_eq!(s.metadata.namespace.as_deref(), Some("app"));
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    let labels = s.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[MANAGED_LABEL], "true");
    let ann = s.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann[OWNER_ANNOTATION], "db");
    assert_eq!(Some(&ann[HASH_ANNOTATION]), p.data_hash.as_ref());
    let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("ExternalSecret", "uid-1", Some(true))
    );
    assert_eq!(p.sources.len(), 2);
    assert_eq!(p.sources[0].version_id.as_deref(), Some("v1"));
    assert_eq!(p.sources[1].version.as_deref(), Some("3"));
    assert!(p.gone.is_none());
}

#[test]
fn unchanged_data_is_not_rewritten_but_a_hand_edit_is() {
    let es = one_key_es();
    let first = plan_data(&es, db_values(), None).unwrap();
    let (written, _) = applied(&first);
    let mut current = written.clone();
    current.metadata.resource_version = Some("7".into());
    let again = plan_data(&es, db_values(), Some(&current)).unwrap();
    assert!(!applied(&again).1, "same data must not be written again");

    current
        .data
        .as_mut()
        .unwrap()
        .insert("password".into(), ByteString(b"edited".to_vec()));
    let repaired = plan_data(&es, db_values(), Some(&current)).unwrap();
    assert!(applied(&repaired).1, "a hand edit must be put back");
}

#[test]
fn missing_property_and_invalid_json_name_the_entry_and_never_the_value() {
    let es = one_key_es();
    let mut vals = db_values();
    vals[0] = Fetched::One(mk_sm("prod/db", r#"{"username":"app"}"#, "v1"));
    let e = plan_data(&es, vals, None).unwrap_err();
    assert_eq!(e.reason(), "PropertyNotFound");
    let msg = e.to_string();
    assert!(
        msg.contains("ExternalSecret app/db")
            && msg.contains("data[0]")
            && msg.contains("prod/db")
            && msg.contains("password"),
        "{msg}"
    );

    let mut vals = db_values();
    vals[0] = Fetched::One(mk_sm("prod/db", "plain-hunter2", "v1"));
    let e = plan_data(&es, vals, None).unwrap_err();
    assert_eq!(e.reason(), "InvalidJSON");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn binary_values_and_base64_decoding() {
    let es = mk_es(json!({
        "secretStoreRef": {"name": "aws"},
        "data": [
            {"secretKey": "bin", "remoteRef": {"key": "bin"}},
            {"secretKey": "dec", "remoteRef": {"key": "enc", "decodingStrategy": "Base64"}}
        ]
    }));
    let mut bin = mk_sm("bin", "", "v1");
    bin.data = SecretBytes(vec![0, 159, 146, 150]);
    bin.binary = true;
    let p = plan(PlanInput {
        es: &es,
        data: vec![
            Fetched::One(bin),
            Fetched::One(mk_sm("enc", "aGVsbG8=", "v2")),
        ],
        data_from: vec![],
        existing: None,
        templates: Default::default(),
    })
    .unwrap();
    let s = applied(&p).0;
    assert_eq!(s.data.as_ref().unwrap()["bin"].0, vec![0, 159, 146, 150]);
    assert_eq!(s.data.as_ref().unwrap()["dec"].0, b"hello");
}

#[test]
fn extract_find_and_rewrite() {
    let es = mk_es(json!({
        "secretStoreRef": {"name": "aws"},
        "dataFrom": [
            {"extract": {"key": "prod/db"}},
            {"find": {"path": "/prod/app/"},
             "rewrite": [{"regexp": {"source": "^/prod/app/(.*)$", "target": "$1"}}]}
        ]
    }));
    let p = plan(PlanInput {
        es: &es,
        data: vec![],
        data_from: vec![
            Fetched::One(mk_sm("prod/db", r#"{"username":"app","port":5432}"#, "v1")),
            Fetched::Many(vec![
                mk_param("/prod/app/LOG_LEVEL", "debug", "1"),
                mk_param("/prod/app/db/host", "db.internal", "2"),
            ]),
        ],
        existing: None,
        templates: Default::default(),
    })
    .unwrap();
    assert_eq!(
        data_of(applied(&p).0),
        BTreeMap::from([
            ("LOG_LEVEL".into(), "debug".into()),
            ("db_host".into(), "db.internal".into()),
            ("port".into(), "5432".into()),
            ("username".into(), "app".into()),
        ])
    );
    assert_eq!(p.sources.len(), 3);
}

#[test]
fn a_collision_between_data_and_data_from_names_both_sources() {
    let es = mk_es(json!({
        "secretStoreRef": {"name": "aws"},
        "data": [{"secretKey": "username", "remoteRef": {"key": "other", "property": "u"}}],
        "dataFrom": [{"extract": {"key": "prod/db"}}]
    }));
    let e = plan(PlanInput {
        es: &es,
        data: vec![Fetched::One(mk_sm("other", r#"{"u":"x"}"#, "v9"))],
        data_from: vec![Fetched::One(mk_sm(
            "prod/db",
            r#"{"username":"app"}"#,
            "v1",
        ))],
        existing: None,
        templates: Default::default(),
    })
    .unwrap_err();
    assert_eq!(e.reason(), "KeyCollision");
    let msg = e.to_string();
    assert!(
        msg.contains("data[0]") && msg.contains("dataFrom[0]") && msg.contains("\"username\""),
        "{msg}"
    );
}

#[test]
fn an_invalid_key_from_find_asks_for_a_rewrite() {
    let es = mk_es(json!({
        "secretStoreRef": {"name": "aws"},
        "dataFrom": [{"find": {"name": {"regexp": "^prod/"}}}]
    }));
    let e = plan(PlanInput {
        es: &es,
        data: vec![],
        data_from: vec![Fetched::Many(vec![mk_sm("prod/a b", "x", "v1")])],
        existing: None,
        templates: Default::default(),
    })
    .unwrap_err();
    assert_eq!(e.reason(), "InvalidKey");
    assert!(e.to_string().contains("rewrite"), "{e}");
}

#[test]
fn template_renders_dockerconfigjson_with_type_labels_and_annotations() {
    let es = mk_es(json!({
        "secretStoreRef": {"name": "aws"},
        "target": {"name": "regcred", "template": {
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
            "data": {".dockerconfigjson": "{{ dict \"auths\" (dict \"r.example\" (dict \"auth\" (printf \"%s:%s\" .user .token | b64enc))) | toJson }}"}
        }},
        "dataFrom": [{"extract": {"key": "registry"}}]
    }));
    let p = plan(PlanInput {
        es: &es,
        data: vec![],
        data_from: vec![Fetched::One(mk_sm(
            "registry",
            r#"{"user":"u","token":"t"}"#,
            "v1",
        ))],
        existing: None,
        templates: Default::default(),
    })
    .unwrap();
    let s = applied(&p).0;
    assert_eq!(s.metadata.name.as_deref(), Some("regcred"));
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    assert_eq!(s.metadata.labels.as_ref().unwrap()["team"], "a");
    assert_eq!(s.metadata.annotations.as_ref().unwrap()["note"], "x");
    let data = data_of(s);
    assert_eq!(data.keys().collect::<Vec<_>>(), vec![".dockerconfigjson"]);
    let cfg: serde_json::Value = serde_json::from_str(&data[".dockerconfigjson"]).unwrap();
    assert_eq!(cfg["auths"]["r.example"]["auth"], "dTp0");
}

#[test]
fn merge_needs_an_existing_secret_and_sends_neither_type_nor_owner() {
    let es = mk_es(json!({
        "secretStoreRef": {"name": "aws"},
        "target": {"name": "shared", "creationPolicy": "Merge"},
        "data": [{"secretKey": "k", "remoteRef": {"key": "prod/db", "property": "password"}}]
    }));
    let vals = || vec![Fetched::One(mk_sm("prod/db", r#"{"password":"p"}"#, "v1"))];
    let e = plan_data(&es, vals(), None).unwrap_err();
    assert_eq!(e.reason(), "TargetNotFound");
    assert!(
        e.to_string().contains("Secret shared does not exist"),
        "{e}"
    );

    let theirs: Secret = serde_json::from_value(json!({
        "metadata": {"name": "shared", "namespace": "app"}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": "Y3J0"}
    }))
    .unwrap();
    let p = plan_data(&es, vals(), Some(&theirs)).unwrap();
    let s = applied(&p).0;
    assert!(s.type_.is_none() && s.metadata.owner_references.is_none());
    assert_eq!(data_of(s).keys().collect::<Vec<_>>(), vec!["k"]);
}

#[test]
fn owner_and_orphan_refuse_a_secret_someone_else_created() {
    let es = one_key_es();
    let theirs: Secret =
        serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "app"}})).unwrap();
    let e = plan_data(&es, db_values(), Some(&theirs)).unwrap_err();
    assert_eq!(e.reason(), "TargetConflict");
    assert!(e.to_string().contains("creationPolicy Merge"), "{e}");

    let orphan = mk_es(json!({
        "secretStoreRef": {"name": "aws"},
        "target": {"creationPolicy": "Orphan"},
        "data": [{"secretKey": "k", "remoteRef": {"key": "prod/db"}}]
    }));
    let p = plan_data(
        &orphan,
        vec![Fetched::One(mk_sm("prod/db", "v", "v1"))],
        None,
    )
    .unwrap();
    assert!(applied(&p).0.metadata.owner_references.is_none());
}

#[test]
fn a_remote_that_is_gone_keeps_the_secret_under_retain() {
    let es = one_key_es();
    let first = plan_data(&es, db_values(), None).unwrap();
    let current = applied(&first).0.clone();
    let mut vals = db_values();
    vals[0] = Fetched::Gone(mk_gone("prod/db"));
    let p = plan_data(&es, vals, Some(&current)).unwrap();
    assert_eq!(p.action, Action::Keep);
    let (reason, msg) = p.gone.unwrap();
    assert_eq!(reason, "SecretNotFound");
    assert!(
        msg.contains("ResourceNotFoundException")
            && msg.contains("prod/db")
            && msg.contains("Retain"),
        "{msg}"
    );
}

#[test]
fn a_remote_that_is_gone_under_delete_drops_its_keys_or_the_secret() {
    let mut es = one_key_es();
    es.spec.target.deletion_policy = crate::api::DeletionPolicy::Delete;
    let first = plan_data(&es, db_values(), None).unwrap();
    let current = applied(&first).0.clone();

    let mut vals = db_values();
    vals[0] = Fetched::Gone(mk_gone("prod/db"));
    let p = plan_data(&es, vals, Some(&current)).unwrap();
    let (s, changed) = applied(&p);
    assert!(changed);
    assert_eq!(data_of(s).keys().collect::<Vec<_>>(), vec!["url"]);
    assert!(p.gone.is_some());

    let p = plan(PlanInput {
        es: &es,
        data: vec![
            Fetched::Gone(mk_gone("prod/db")),
            Fetched::Gone(mk_gone("/prod/url")),
        ],
        data_from: vec![],
        existing: Some(&current),
        templates: Default::default(),
    })
    .unwrap();
    assert_eq!(p.action, Action::Delete);
}

#[test]
fn template_type_cannot_change_on_an_existing_secret() {
    let es = one_key_es();
    let first = plan_data(&es, db_values(), None).unwrap();
    let current = applied(&first).0.clone();
    let mut es2 = es.clone();
    es2.spec.target.template = Some(crate::api::Template {
        type_: Some("kubernetes.io/basic-auth".into()),
        ..Default::default()
    });
    let e = plan_data(&es2, db_values(), Some(&current)).unwrap_err();
    assert_eq!(e.reason(), "TargetConflict");
    assert!(e.to_string().contains("type"), "{e}");
}

#[test]
fn data_over_one_mib_is_refused_before_any_write_without_the_values() {
    let es = mk_es(json!({
        "secretStoreRef": {"name": "aws"},
        "data": [
            {"secretKey": "a", "remoteRef": {"key": "big/a"}},
            {"secretKey": "b", "remoteRef": {"key": "big/b"}}
        ]
    }));
    let half = "x".repeat(MAX_SECRET_BYTES / 2);
    let exactly = vec![
        Fetched::One(mk_sm("big/a", &half, "v1")),
        Fetched::One(mk_sm("big/b", &half, "v1")),
    ];
    assert!(plan_data(&es, exactly, None).is_ok(), "exactly 1 MiB fits");
    let over = vec![
        Fetched::One(mk_sm("big/a", &half, "v1")),
        Fetched::One(mk_sm("big/b", &format!("{half}y"), "v1")),
    ];
    let e = plan_data(&es, over, None).unwrap_err();
    assert_eq!(e.reason(), "SecretTooLarge");
    let msg = e.to_string();
    assert!(
        msg.contains("ExternalSecret app/db")
            && msg.contains("1048577 bytes")
            && msg.contains("1048576"),
        "{msg}"
    );
    assert!(!msg.contains("xxxx"), "no values in the message: {msg}");
}
