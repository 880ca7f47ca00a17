//! `application/vnd.kubernetes.protobuf` bodies for update and delete, the way Go clients with a
//! protobuf content type send them (kubectl itself uses protobuf only for typed creates: see
//! binary_and_kubectl.rs).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_pb::api::core::v1 as pb_core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use kube::api::{Api, PostParams};
use kube_test_server::TestServer;
use prost::Message;
use serde_json::{json, Value};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

fn body(kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some("v1".into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        ..Default::default()
    };
    [b"k8s\0".to_vec(), unknown.encode_to_vec()].concat()
}

fn secret(resource_version: &str, value: &str) -> Vec<u8> {
    let s = pb_core::Secret {
        metadata: Some(pb_meta::ObjectMeta {
            name: Some("s".into()),
            namespace: Some("demo".into()),
            resource_version: Some(resource_version.into()),
            ..Default::default()
        }),
        data: BTreeMap::from([("k".into(), value.as_bytes().to_vec())]),
        ..Default::default()
    };
    body("Secret", s.encode_to_vec())
}

async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<Value, (u16, String)> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", PROTOBUF)
        .header("accept", format!("{PROTOBUF},application/json"))
        .body(body)
        .unwrap();
    match client.request_text(req).await {
        Ok(text) => Ok(serde_json::from_str(&text).unwrap()),
        Err(kube::Error::Api(s)) => Err((s.code, s.message)),
        Err(e) => panic!("request failed: {e}"),
    }
}

#[tokio::test]
async fn create_update_and_delete_with_protobuf_bodies() {
    let server = TestServer::start().await.unwrap();
    let client = server.client();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "demo"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "demo");
    let path = "/api/v1/namespaces/demo/secrets";

    let created = send(&client, "POST", path, secret("", "v")).await.unwrap();
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(created["data"], json!({"k": "dg=="}));

    let named = format!("{path}/s");
    let updated = send(&client, "PUT", &named, secret(&rv, "v2"))
        .await
        .unwrap();
    assert_ne!(updated["metadata"]["resourceVersion"], json!(rv));
    assert_eq!(secrets.get("s").await.unwrap().data.unwrap()["k"].0, b"v2");
    // Optimistic concurrency applies as for JSON bodies.
    let (code, msg) = send(&client, "PUT", &named, secret(&rv, "v3"))
        .await
        .unwrap_err();
    assert_eq!(code, 409, "{msg}");

    let delete = |uid: &str| {
        let opts = pb_meta::DeleteOptions {
            preconditions: Some(pb_meta::Preconditions {
                uid: Some(uid.into()),
                resource_version: None,
            }),
            ..Default::default()
        };
        body("DeleteOptions", opts.encode_to_vec())
    };
    let (code, msg) = send(&client, "DELETE", &named, delete("not-the-uid"))
        .await
        .unwrap_err();
    assert_eq!(code, 409, "{msg}");
    assert!(secrets.get_opt("s").await.unwrap().is_some());
    send(&client, "DELETE", &named, delete(&uid)).await.unwrap();
    assert!(secrets.get_opt("s").await.unwrap().is_none());

    let (code, msg) = send(&client, "POST", path, b"not protobuf".to_vec())
        .await
        .unwrap_err();
    assert_eq!(code, 400);
    assert_eq!(
        msg,
        "the object provided is unrecognized (must be of type Secret): provided data does not \
         appear to be a protobuf message, expected prefix [107 56 115 0] (6e6f742070726f746f627566)"
    );
    server.shutdown().await;
}
