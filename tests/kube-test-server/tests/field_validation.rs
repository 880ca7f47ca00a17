//! Unknown fields of custom resources: pruned from what is stored, and refused, warned about or
//! ignored per `fieldValidation` as the real server does for each kind of write.

mod common;

use common::{api_error, install_widgets, send, widget, widgets, WIDGETS};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube_test_server::TestServer;
use serde_json::{json, Value};

#[tokio::test]
async fn unknown_fields_follow_the_field_validation_directive() {
    let server = TestServer::start().await.unwrap();
    install_widgets(&server).await;
    let api = widgets(&server);
    let body = |name: &str| {
        let mut w = widget(
            name,
            json!({"name": "ok", "provider": {"aws": {"region": "x"}}, "extra": 1}),
        );
        w["metadata"]["bogus"] = json!("b");
        w
    };

    let a = send(
        &server,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Strict"),
        "application/json",
        &body("strict"),
    )
    .await;
    assert_eq!(
        (a.code, a.body["reason"].as_str()),
        (400, Some("BadRequest"))
    );
    assert_eq!(
        a.body["message"],
        r#"Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "metadata.bogus", unknown field "spec.extra", unknown field "spec.provider""#
    );
    assert!(api.get_opt("strict").await.unwrap().is_none());

    // Warn is also what a request without the parameter gets (kube-rs sends none).
    for (name, query) in [("warn", "?fieldValidation=Warn"), ("default", "")] {
        let a = send(
            &server,
            "POST",
            &format!("{WIDGETS}{query}"),
            "application/json",
            &body(name),
        )
        .await;
        assert_eq!(a.code, 201, "{}", a.body);
        assert_eq!(
            a.warnings,
            [
                r#"299 - "unknown field \"metadata.bogus\"""#,
                r#"299 - "unknown field \"spec.extra\"""#,
                r#"299 - "unknown field \"spec.provider\"""#,
            ]
        );
        assert!(a.body["metadata"].get("bogus").is_none());
        let stored = api.get(name).await.unwrap();
        assert_eq!(stored.data["spec"], json!({"name": "ok", "size": "m"}));
    }

    let a = send(
        &server,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Ignore"),
        "application/json",
        &body("ignore"),
    )
    .await;
    assert_eq!((a.code, a.warnings.len()), (201, 0));
    assert_eq!(a.body["spec"], json!({"name": "ok", "size": "m"}));

    // Updates are decoded the same way.
    let mut current = a.body.clone();
    current["spec"]["provider"] = json!("p");
    let a = send(
        &server,
        "PUT",
        &format!("{WIDGETS}/ignore?fieldValidation=Strict"),
        "application/json",
        &current,
    )
    .await;
    assert_eq!(a.code, 400);
    assert_eq!(
        a.body["message"],
        r#"Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.provider""#
    );

    let a = send(
        &server,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Loose"),
        "application/json",
        &body("x"),
    )
    .await;
    assert_eq!(a.code, 422);
    assert_eq!(
        a.body["message"],
        r#"CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Loose": supported values: "", "Ignore", "Strict", "Warn""#
    );
}

#[tokio::test]
async fn patches_are_checked_on_the_patched_object() {
    let server = TestServer::start().await.unwrap();
    install_widgets(&server).await;
    let api = widgets(&server);
    let w: DynamicObject = serde_json::from_value(widget("w", json!({"name": "ok"}))).unwrap();
    api.create(&PostParams::default(), &w).await.unwrap();
    let path = format!("{WIDGETS}/w?fieldValidation=Strict");

    let merge = json!({"spec": {"provider": "aws"}});
    let a = send(
        &server,
        "PATCH",
        &path,
        "application/merge-patch+json",
        &merge,
    )
    .await;
    assert_eq!((a.code, a.body["reason"].as_str()), (422, Some("Invalid")));
    let message = a.body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            r#" "" is invalid: patch: Invalid value: "{\"apiVersion\":\"example.com/v1\","#
        ) && message.ends_with(r#"}": strict decoding error: unknown field "spec.provider""#),
        "{message}"
    );
    assert_eq!(a.body["details"]["causes"][0]["field"], "patch");

    let json_patch = json!([{"op": "add", "path": "/spec/provider", "value": "aws"}]);
    let a = send(
        &server,
        "PATCH",
        &path,
        "application/json-patch+json",
        &json_patch,
    )
    .await;
    assert_eq!(a.code, 422);
    assert!(a.body["message"]
        .as_str()
        .unwrap()
        .ends_with(r#"strict decoding error: unknown field "spec.provider""#));

    let a = send(
        &server,
        "PATCH",
        &format!("{WIDGETS}/w"),
        "application/merge-patch+json",
        &merge,
    )
    .await;
    assert_eq!(a.code, 200);
    assert_eq!(a.warnings, [r#"299 - "unknown field \"spec.provider\"""#]);
    assert_eq!(a.body["spec"], json!({"name": "ok", "size": "m"}));

    let err = api_error(
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": "two"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        err.message,
        r#"Widget.example.com "w" is invalid: spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
    );
}

#[tokio::test]
async fn server_side_apply_refuses_undeclared_fields_whatever_the_directive() {
    let server = TestServer::start().await.unwrap();
    install_widgets(&server).await;
    let api = widgets(&server);
    let applied = widget("w", json!({"name": "ok", "provider": {"aws": {}}}));
    for pp in [
        PatchParams::apply("me"),
        PatchParams::apply("me").validation_ignore(),
    ] {
        let err = api_error(
            api.patch("w", &pp, &Patch::Apply(&applied))
                .await
                .unwrap_err(),
        );
        assert_eq!(err.code, 500);
        assert_eq!(
            err.message,
            "failed to create typed patch object (default/w; example.com/v1, Kind=Widget): .spec.provider: field not declared in schema"
        );
    }
    assert!(api.get_opt("w").await.unwrap().is_none());

    let err = api_error(
        api.patch(
            "w",
            &PatchParams::apply("me"),
            &Patch::Apply(widget("w", json!({"name": "ok", "tags": "x"}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        err.message,
        r#"Widget.example.com "w" is invalid: spec.tags: Invalid value: "string": spec.tags in body must be of type array: "string""#
    );
    let w = api
        .patch(
            "w",
            &PatchParams::apply("me"),
            &Patch::Apply(widget("w", json!({"name": "ok"}))),
        )
        .await
        .unwrap();
    assert_eq!(w.data["spec"], json!({"name": "ok", "size": "m"}));
}

#[tokio::test]
async fn status_writes_are_validated_and_pruned() {
    let server = TestServer::start().await.unwrap();
    install_widgets(&server).await;
    let api = widgets(&server);
    let w: DynamicObject = serde_json::from_value(widget("w", json!({"name": "ok"}))).unwrap();
    api.create(&PostParams::default(), &w).await.unwrap();

    let pp = PatchParams::default();
    let err = api_error(
        api.patch_status(
            "w",
            &pp,
            &Patch::Merge(json!({"status": {"phase": "Bogus"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        err.message,
        r#"Widget.example.com "w" is invalid: status.phase: Unsupported value: "Bogus": supported values: "Ready", "Failed""#
    );
    let w = api
        .patch_status(
            "w",
            &pp,
            &Patch::Merge(json!({"status": {"phase": "Ready", "extra": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(w.data["status"], json!({"phase": "Ready"}));

    let apply = PatchParams::apply("operator").force();
    let status = |s: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "status": s});
    let err = api_error(
        api.patch_status(
            "w",
            &apply,
            &Patch::Apply(status(json!({"phase": "Ready", "extra": 1}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 500);
    assert!(
        err.message
            .ends_with(".status.extra: field not declared in schema"),
        "{}",
        err.message
    );
    let w = api
        .patch_status(
            "w",
            &apply,
            &Patch::Apply(status(json!({"phase": "Failed", "count": 2}))),
        )
        .await
        .unwrap();
    assert_eq!(w.data["status"], json!({"phase": "Failed", "count": 2}));
}
