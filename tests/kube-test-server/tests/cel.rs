//! CRD validation rules (CEL `x-kubernetes-validations`) are enforced on custom objects, with the
//! real server's 422 Invalid answer naming the field and the rule's message.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube_test_server::TestServer;
use serde_json::json;

fn widget(name: &str, spec: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec
    }))
    .unwrap()
}

#[tokio::test]
async fn cel_rules_refuse_bad_objects_and_transitions() {
    let server = TestServer::start().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                    "type": "object",
                    "x-kubernetes-validations": [
                        {"rule": "!(has(self.a) && has(self.b))", "message": "set at most one of a and b"},
                        {"rule": "!has(oldSelf.size) || self.size >= oldSelf.size", "message": "size may only grow"}
                    ],
                    "properties": {
                        "a": {"type": "string"}, "b": {"type": "string"},
                        "size": {"type": "integer"},
                        "owner": {"type": "object", "properties": {"namespace": {"type": "string"}},
                                  "x-kubernetes-validations": [{"rule": "!has(self.__namespace__) || self.__namespace__ != 'kube-system'", "message": "not kube-system"}]}
                    }}}}}}]}
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let ar = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(server.client(), "default", &ar);

    api.create(
        &PostParams::default(),
        &widget("ok", json!({"a": "x", "size": 2})),
    )
    .await
    .unwrap();

    let err = api
        .create(
            &PostParams::default(),
            &widget("both", json!({"a": "x", "b": "y"})),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            assert!(
                s.message.contains("set at most one of a and b"),
                "{}",
                s.message
            );
        }
        other => panic!("{other}"),
    }
    let err = api
        .create(
            &PostParams::default(),
            &widget("ns", json!({"owner": {"namespace": "kube-system"}})),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not kube-system"), "{err}");

    // Transition rules see oldSelf on updates.
    let pp = PatchParams::default();
    api.patch("ok", &pp, &Patch::Merge(json!({"spec": {"size": 3}})))
        .await
        .unwrap();
    let err = api
        .patch("ok", &pp, &Patch::Merge(json!({"spec": {"size": 1}})))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("size may only grow"), "{err}");
    assert_eq!(api.get("ok").await.unwrap().data["spec"]["size"], 3);
}
