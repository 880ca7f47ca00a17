//! Custom resources are pruned, defaulted and validated against their CRD's structural schema,
//! with the real server's causes and messages.

mod common;

use common::{api_error, install_widgets, send, widget, widgets, WIDGETS};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube_test_server::TestServer;
use serde_json::{json, Value};

#[tokio::test]
async fn each_keyword_is_refused_with_the_real_cause() {
    let server = TestServer::start().await.unwrap();
    install_widgets(&server).await;
    let cases: Vec<(Value, &str, &str, &str)> = vec![
        (
            json!({"replicas": "three"}),
            "spec.replicas",
            "FieldValueTypeInvalid",
            r#"Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
        ),
        (
            json!({"enabled": "yes"}),
            "spec.enabled",
            "FieldValueTypeInvalid",
            r#"Invalid value: "string": spec.enabled in body must be of type boolean: "string""#,
        ),
        (
            json!({"mode": "c"}),
            "spec.mode",
            "FieldValueNotSupported",
            r#"Unsupported value: "c": supported values: "a", "b""#,
        ),
        (
            json!({"name": "abcdefghijk"}),
            "spec.name",
            "FieldValueTooLong",
            "Too long: may not be more than 10 bytes",
        ),
        (
            json!({"name": "a"}),
            "spec.name",
            "FieldValueInvalid",
            r#"Invalid value: "a": spec.name in body should be at least 2 chars long"#,
        ),
        (
            json!({"name": "ABC"}),
            "spec.name",
            "FieldValueInvalid",
            r#"Invalid value: "ABC": spec.name in body should match '^[a-z]+$'"#,
        ),
        (
            json!({"replicas": 9}),
            "spec.replicas",
            "FieldValueInvalid",
            "Invalid value: 9: spec.replicas in body should be less than or equal to 5",
        ),
        (
            json!({"replicas": 0}),
            "spec.replicas",
            "FieldValueInvalid",
            "Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
        ),
        (
            json!({"ratio": 1.0}),
            "spec.ratio",
            "FieldValueInvalid",
            "Invalid value: 1: spec.ratio in body should be less than 1",
        ),
        (
            json!({"tags": ["a", "b", "c"]}),
            "spec.tags",
            "FieldValueTooMany",
            "Too many: 3: must have at most 2 items",
        ),
        (
            json!({"tags": []}),
            "spec.tags",
            "FieldValueInvalid",
            "Invalid value: 0: spec.tags in body should have at least 1 items",
        ),
        // The real server reports the bound as the count for properties.
        (
            json!({"labels": {"a": 1, "b": 2, "c": 3}}),
            "spec.labels",
            "FieldValueTooMany",
            "Too many: 2: must have at most 2 items",
        ),
        (
            json!({"labels": {"a": "x"}}),
            "spec.labels.a",
            "FieldValueTypeInvalid",
            r#"Invalid value: "string": spec.labels.a in body must be of type integer: "string""#,
        ),
        (
            json!({"opts": {}}),
            "spec.opts",
            "FieldValueInvalid",
            "Invalid value: 1: spec.opts in body should have at least 1 properties",
        ),
        (
            json!({"port": true}),
            "spec.port",
            "FieldValueTypeInvalid",
            r#"Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
        ),
        (
            json!({"id": "nope"}),
            "spec.id",
            "FieldValueTypeInvalid",
            r#"Invalid value: "nope": spec.id in body must be of type uuid: "nope""#,
        ),
        (
            json!({"note": 5}),
            "spec.note",
            "FieldValueTypeInvalid",
            r#"Invalid value: "integer": spec.note in body must be of type string: "integer""#,
        ),
    ];
    for (extra, field, reason, message) in cases {
        let mut spec = json!({"name": "ok"});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let a = send(
            &server,
            "POST",
            WIDGETS,
            "application/json",
            &widget("w", spec),
        )
        .await;
        assert_eq!(
            (a.code, a.body["reason"].as_str()),
            (422, Some("Invalid")),
            "{field}: {}",
            a.body
        );
        assert_eq!(
            a.body["message"],
            format!("Widget.example.com \"w\" is invalid: {field}: {message}")
        );
        assert_eq!(
            a.body["details"]["causes"],
            json!([{"reason": reason, "field": field, "message": message}])
        );
        assert_eq!(a.body["details"]["kind"], "Widget");
    }

    // Required fields, several causes at once, embedded resources, and the root metadata.
    let api = widgets(&server);
    let pp = PostParams::default();
    let obj = |name: &str, spec: Value| -> DynamicObject {
        serde_json::from_value(widget(name, spec)).unwrap()
    };
    let err = api_error(
        api.create(&pp, &obj("w", json!({"template": {}})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Widget.example.com \"w\" is invalid: [spec.name: Required value, spec.template.apiVersion: Required value, spec.template.kind: Required value]"
    );
    let err = api_error(
        api.create(&pp, &obj("far-too-long", json!({"name": "ok"})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Widget.example.com \"far-too-long\" is invalid: metadata.name: Too long: may not be more than 8 bytes"
    );
    assert!(api.get_opt("w").await.unwrap().is_none());
}

#[tokio::test]
async fn valid_objects_are_stored_coerced_to_the_schema() {
    let server = TestServer::start().await.unwrap();
    install_widgets(&server).await;
    let api = widgets(&server);
    let spec = json!({
        "name": "ok", "port": 8080, "note": null, "plain": null,
        "opts": {"anything": {"deep": [1, {"x": true}]}},
        "template": {"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "p", "labels": {"a": "b"}, "bogus": 1},
                     "spec": {"image": "nginx", "other": 1}}
    });
    let a = send(
        &server,
        "POST",
        WIDGETS,
        "application/json",
        &widget("w", spec),
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
    // Only the embedded resource's undeclared fields are unknown; dropped nulls are not.
    assert_eq!(
        a.warnings,
        [
            r#"299 - "unknown field \"spec.template.spec.other\"""#,
            r#"299 - "unknown field \"spec.template.metadata.bogus\"""#,
        ]
    );
    let s = &api.get("w").await.unwrap().data["spec"];
    // preserve-unknown-fields keeps what it holds; int-or-string takes both.
    assert_eq!(s["opts"], json!({"anything": {"deep": [1, {"x": true}]}}));
    assert_eq!(s["port"], 8080);
    // A null where the schema allows none is dropped; nullable keeps it; defaults fill in.
    assert_eq!(s["note"], Value::Null);
    assert!(s.as_object().unwrap().contains_key("note"));
    assert!(!s.as_object().unwrap().contains_key("plain"));
    assert_eq!(s["size"], "m");
    // Embedded resources keep their type and ObjectMeta, nothing undeclared.
    assert_eq!(
        s["template"],
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
               "spec": {"image": "nginx"}})
    );
    let w2: DynamicObject =
        serde_json::from_value(widget("w2", json!({"name": "ok", "port": "http"}))).unwrap();
    assert_eq!(
        api.create(&PostParams::default(), &w2).await.unwrap().data["spec"]["port"],
        "http"
    );
}

#[tokio::test]
async fn each_version_is_checked_against_its_own_schema() {
    let server = TestServer::start().await.unwrap();
    install_widgets(&server).await;
    let v2 = "/apis/example.com/v2/namespaces/default/widgets?fieldValidation=Strict";
    let body = json!({"apiVersion": "example.com/v2", "kind": "Widget",
                      "metadata": {"name": "w"}, "spec": {"count": 3}});
    let a = send(&server, "POST", v2, "application/json", &body).await;
    assert_eq!(a.code, 201, "{}", a.body);
    assert_eq!(a.body["spec"], json!({"count": 3}));
    let mut v1_body = body.clone();
    v1_body["apiVersion"] = json!("example.com/v1");
    v1_body["metadata"]["name"] = json!("w1");
    v1_body["spec"]["name"] = json!("ok");
    let a = send(
        &server,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Strict"),
        "application/json",
        &v1_body,
    )
    .await;
    assert_eq!(a.code, 400);
    assert!(a.body["message"]
        .as_str()
        .unwrap()
        .ends_with(r#"unknown field "spec.count""#));
}

#[tokio::test]
async fn type_errors_leave_cel_rules_unchecked_with_the_real_note() {
    let server = TestServer::start().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                    "type": "object",
                    "x-kubernetes-validations": [{"rule": "self.size > 1", "message": "too small"}],
                    "properties": {"size": {"type": "integer"}}}}}}}]}
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let body = json!({"apiVersion": "example.com/v1", "kind": "Gizmo",
                      "metadata": {"name": "g"}, "spec": {"size": "big"}});
    let a = send(
        &server,
        "POST",
        "/apis/example.com/v1/namespaces/default/gizmos",
        "application/json",
        &body,
    )
    .await;
    assert_eq!(a.code, 422);
    assert_eq!(
        a.body["message"],
        r#"Gizmo.example.com "g" is invalid: [spec.size: Invalid value: "string": spec.size in body must be of type integer: "string", <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"#
    );
}
