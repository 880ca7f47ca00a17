//! The manifests in deploy/examples/ work as written (only the AWS endpoints are pointed at
//! the local emulator).

use std::path::Path;

use serde::Deserialize;
use serde_json::json;

use crate::harness::{data_str, Env};

#[tokio::test(flavor = "multi_thread")]
async fn deploy_examples_sync() {
    let env = Env::start().await;
    env.put_secret(
        "demo/db",
        r#"{"username":"app","password":"pw-Uniform-1","host":"db.demo"}"#,
    )
    .await;
    env.put_param("/demo/app/LOG_LEVEL", "debug", "String")
        .await;
    env.put_param("/demo/app/feature/checkout", "on", "String")
        .await;

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut kinds = vec![];
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let mut manifest = serde_json::Value::deserialize(doc).unwrap();
            if manifest.is_null() {
                continue;
            }
            if manifest["kind"] == "SecretStore" {
                manifest["spec"]["arnsync"] = json!({"endpoints": env.endpoints()});
            }
            kinds.push(manifest["kind"].as_str().unwrap().to_string());
            if manifest["kind"] == "Deployment" {
                continue;
            }
            env.apply(manifest).await;
        }
    }
    assert!(kinds.contains(&"ExternalSecret".to_string()), "{kinds:?}");

    let s = env
        .secret_value("demo", "db-credentials", "username", b"app")
        .await;
    assert_eq!(
        data_str(&s, "url"),
        "postgres://app:pw-Uniform-1@db.demo:5432/app"
    );
    let s = env
        .secret_value("demo", "app-config", "LOG_LEVEL", b"debug")
        .await;
    assert_eq!(data_str(&s, "feature_checkout"), "on");
    env.assert_no_leaks(&["pw-Uniform-1"]).await;
}
