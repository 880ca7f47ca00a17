//! The `widgets.example.com` fixture shared by the schema tests, and exact wire access.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube_test_server::TestServer;
use serde_json::{json, Value};

pub fn widget_schema() -> Value {
    json!({"type": "object", "properties": {
        "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}}},
        "spec": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "maxLength": 10, "minLength": 2, "pattern": "^[a-z]+$"},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
            "ratio": {"type": "number", "maximum": 1, "exclusiveMaximum": true},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
            "labels": {"type": "object", "maxProperties": 2,
                       "additionalProperties": {"type": "integer"}},
            "opts": {"type": "object", "minProperties": 1,
                     "x-kubernetes-preserve-unknown-fields": true},
            "port": {"x-kubernetes-int-or-string": true},
            "id": {"type": "string", "format": "uuid"},
            "enabled": {"type": "boolean"},
            "note": {"type": "string", "nullable": true},
            "plain": {"type": "string"},
            "size": {"type": "string", "default": "m"},
            "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                         "properties": {"spec": {"type": "object",
                                                 "properties": {"image": {"type": "string"}}}}}
        }},
        "status": {"type": "object", "properties": {
            "phase": {"type": "string", "enum": ["Ready", "Failed"]},
            "count": {"type": "integer"}
        }}
    }})
}

/// `widgets.example.com`, served as v1 (the schema above) and v2 (only `spec.count`).
pub async fn install_widgets(server: &TestServer) {
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let v2 = json!({"type": "object", "properties": {"spec": {"type": "object",
        "properties": {"count": {"type": "integer"}}}}});
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                 "schema": {"openAPIV3Schema": widget_schema()}},
                {"name": "v2", "served": true, "storage": false, "subresources": {"status": {}},
                 "schema": {"openAPIV3Schema": v2}}
            ]}
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
}

pub fn widgets(server: &TestServer) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    Api::namespaced_with(server.client(), "default", &ar)
}

pub fn widget(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget",
           "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

pub struct Answer {
    pub code: u16,
    pub warnings: Vec<String>,
    pub body: Value,
}

/// One request with exact wire access (kube-rs hides response headers).
pub async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Value,
) -> Answer {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", server.url()))
        .header("content-type", content_type)
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let code = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        code,
        warnings,
        body: serde_json::from_slice(&bytes).unwrap(),
    }
}

pub const WIDGETS: &str = "/apis/example.com/v1/namespaces/default/widgets";

pub fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other}"),
    }
}
