//! `arnsync iam-policy` in cluster mode against the Kubernetes test server, with
//! `--resolve-kms` asking moto which keys encrypt the values read.

use std::process::Command;

use serde_json::{json, Value};

use crate::harness::{Env, MOTO_ACCOUNT};

const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee";
const PARAMETER_KEY: &str = "2222bbbb-33cc-44dd-55ee-666666ffffff";

fn statement<'a>(policy: &'a Value, sid: &str) -> Option<&'a Value> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == sid)
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_objects_and_their_kms_keys_make_the_policy() {
    let env = Env::start_without_operator().await;
    env.sm
        .create_secret()
        .name("iam/db")
        .secret_string("pw-Kilo-7")
        .kms_key_id(KEY)
        .send()
        .await
        .expect("create secret");
    env.put_secret("iam/plain", "pw-Lima-8").await;
    env.ssm
        .put_parameter()
        .name("/iam/token")
        .value("pw-Mike-9")
        .r#type("SecureString".into())
        .key_id(PARAMETER_KEY)
        .send()
        .await
        .expect("put parameter");
    env.put_param("/iam/managed", "pw-November-10", "SecureString")
        .await;
    env.namespace("iam", json!({})).await;
    env.store("iam").await;
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": "app", "namespace": "iam"},
        "spec": {"secretStoreRef": {"name": "aws"}, "data": [
            {"secretKey": "db", "remoteRef": {"key": "iam/db"}},
            {"secretKey": "plain", "remoteRef": {"key": "iam/plain"}},
        ]}
    }))
    .await;
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": "params", "namespace": "iam"},
        "spec": {"secretStoreRef": {"name": "aws-ssm"}, "data": [
            {"secretKey": "token", "remoteRef": {"key": "/iam/token"}},
            {"secretKey": "managed", "remoteRef": {"key": "/iam/managed"}},
        ]}
    }))
    .await;

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    env.kube.write_kubeconfig(&kubeconfig).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_arnsync"))
        .args(["iam-policy", "--resolve-kms", "--account", MOTO_ACCOUNT])
        .env("KUBECONFIG", &kubeconfig)
        .env("AWS_ACCESS_KEY_ID", "operator")
        .env("AWS_SECRET_ACCESS_KEY", "operator")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    for value in ["pw-Kilo-7", "pw-Lima-8", "pw-Mike-9", "pw-November-10"] {
        assert!(!stdout.contains(value) && !stderr.contains(value));
    }
    let policy: Value = serde_json::from_str(&stdout).expect("JSON");
    let read = statement(&policy, "ReadSecrets").expect("ReadSecrets");
    assert_eq!(
        read["Resource"],
        json!([
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:iam/db-??????",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:iam/plain-??????"
        ])
    );
    assert!(statement(&policy, "BatchReadSecrets").is_some());
    let decrypt = statement(&policy, "DecryptSecrets").expect("DecryptSecrets");
    assert_eq!(decrypt["Action"], "kms:Decrypt");
    assert_eq!(decrypt["Resource"], KEY);
    assert_eq!(
        decrypt["Condition"],
        json!({"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}})
    );
    // A key id becomes the key's ARN in the account (moto's DescribeParameters leaves out the
    // parameter's ARN, so --account is the one used); the AWS-managed key of
    // /iam/managed needs no statement.
    let decrypt = statement(&policy, "DecryptParameters").expect("DecryptParameters");
    assert_eq!(
        decrypt["Resource"],
        format!("arn:aws:kms:us-east-1:{MOTO_ACCOUNT}:key/{PARAMETER_KEY}")
    );
    assert_eq!(
        decrypt["Condition"]["StringEquals"]["kms:ViaService"],
        "ssm.us-east-1.amazonaws.com"
    );
}
