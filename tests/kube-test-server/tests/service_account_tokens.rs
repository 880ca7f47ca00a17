//! The TokenRequest subresource of ServiceAccounts: shapes, defaults, the real status codes and
//! messages, counting, faults and discovery.

#[allow(dead_code)]
mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube_test_server::{Fault, TestServer, TOKEN_ISSUER};
use serde_json::{json, Value};

use common::{api_error, send};

const TOKEN_PATH: &str = "/api/v1/namespaces/default/serviceaccounts/app/token";

async fn server_with_app() -> (TestServer, Api<ServiceAccount>) {
    let server = TestServer::start().await.unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(server.client(), "default");
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "app"}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    (server, sas)
}

fn request(audiences: &[&str], expiration: Option<i64>) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            expiration_seconds: expiration,
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    }
}

/// The header and claims of a `header.payload.signature` token.
fn decode(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {token}");
    let part = |p: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("base64url")).expect("json")
    };
    (part(parts[0]), part(parts[1]))
}

#[tokio::test]
async fn issues_a_jwt_with_the_service_accounts_claims() {
    let (_server, sas) = server_with_app().await;
    let uid = sas.get("app").await.unwrap().metadata.uid.unwrap();
    let issued = sas
        .create_token_request(
            "app",
            &PostParams::default(),
            &request(&["sts.amazonaws.com"], None),
        )
        .await
        .unwrap();
    assert_eq!(issued.metadata.name.as_deref(), Some("app"));
    assert_eq!(issued.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(issued.spec.expiration_seconds, Some(3600), "the v1 default");
    assert_eq!(issued.spec.audiences, ["sts.amazonaws.com"]);
    let status = issued.status.unwrap();
    let (header, claims) = decode(&status.token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], TOKEN_ISSUER);
    assert_eq!(claims["sub"], "system:serviceaccount:default:app");
    assert_eq!(claims["aud"], json!(["sts.amazonaws.com"]));
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["uid"], json!(uid));
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);
    let now = chrono::Utc::now().timestamp();
    assert!((iat - now).abs() <= 5, "iat {iat} is now ({now})");
    assert_eq!(status.expiration_timestamp.0.as_second(), exp);

    // Each request gets a new token.
    let again = sas
        .create_token_request("app", &PostParams::default(), &request(&[], Some(600)))
        .await
        .unwrap();
    let again_status = again.status.unwrap();
    assert_ne!(again_status.token, status.token);
    let (_, claims) = decode(&again_status.token);
    assert_eq!(
        claims["aud"],
        json!([TOKEN_ISSUER]),
        "defaults to the API audience"
    );
    assert_eq!(again.spec.audiences, [TOKEN_ISSUER]);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
}

#[tokio::test]
async fn answers_201_with_a_token_request() {
    let (server, _) = server_with_app().await;
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                      "spec": {"audiences": ["a", "b"], "expirationSeconds": 7200}});
    let answer = send(&server, "POST", TOKEN_PATH, "application/json", &body).await;
    assert_eq!(answer.code, 201, "{}", answer.body);
    assert_eq!(answer.body["kind"], "TokenRequest");
    assert_eq!(answer.body["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(answer.body["spec"]["expirationSeconds"], 7200);
    assert!(answer.body["metadata"]["creationTimestamp"].is_string());
    let expires = answer.body["status"]["expirationTimestamp"]
        .as_str()
        .unwrap();
    assert!(expires.ends_with('Z'), "{expires}");
    let (_, claims) = decode(answer.body["status"]["token"].as_str().unwrap());
    assert_eq!(claims["aud"], json!(["a", "b"]));
}

#[tokio::test]
async fn refuses_what_a_real_server_refuses() {
    let (server, sas) = server_with_app().await;
    let pp = PostParams::default();

    let short = api_error(
        sas.create_token_request("app", &pp, &request(&[], Some(599)))
            .await
            .unwrap_err(),
    );
    assert_eq!((short.code, short.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        short.message,
        "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"
    );
    let long = api_error(
        sas.create_token_request("app", &pp, &request(&[], Some((1 << 32) + 1)))
            .await
            .unwrap_err(),
    );
    assert_eq!(long.code, 422);
    assert!(
        long.message
            .ends_with("may not specify a duration larger than 2^32 seconds"),
        "{}",
        long.message
    );

    let missing = api_error(
        sas.create_token_request("ghost", &pp, &request(&[], None))
            .await
            .unwrap_err(),
    );
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "serviceaccounts \"ghost\" not found");
    // A missing ServiceAccount is reported before a bad expiration, as on the real server.
    let both = api_error(
        sas.create_token_request("ghost", &pp, &request(&[], Some(1)))
            .await
            .unwrap_err(),
    );
    assert_eq!(both.code, 404);

    let renamed = send(
        &server,
        "POST",
        TOKEN_PATH,
        "application/json",
        &json!({"metadata": {"name": "other"}, "spec": {}}),
    )
    .await;
    assert_eq!(renamed.code, 422);
    assert_eq!(
        renamed.body["message"],
        "TokenRequest.authentication.k8s.io \"app\" is invalid: metadata.name: Invalid value: \"other\": must match the service account name if specified"
    );
    assert_eq!(
        renamed.body["details"]["causes"][0]["field"],
        "metadata.name"
    );

    let elsewhere = send(
        &server,
        "POST",
        TOKEN_PATH,
        "application/json",
        &json!({"metadata": {"namespace": "kube-system"}, "spec": {}}),
    )
    .await;
    assert_eq!(elsewhere.code, 422);
    assert_eq!(
        elsewhere.body["details"]["causes"][0]["field"],
        "metadata.namespace"
    );

    let not_a_number = send(
        &server,
        "POST",
        TOKEN_PATH,
        "application/json",
        &json!({"spec": {"expirationSeconds": "soon"}}),
    )
    .await;
    assert_eq!(not_a_number.code, 400);

    let get = send(&server, "GET", TOKEN_PATH, "application/json", &json!({})).await;
    assert_eq!(get.code, 405);
}

#[tokio::test]
async fn counts_token_requests_per_service_account() {
    let (server, sas) = server_with_app().await;
    let pp = PostParams::default();
    for _ in 0..3 {
        sas.create_token_request("app", &pp, &request(&[], None))
            .await
            .unwrap();
    }
    let _ = sas
        .create_token_request("ghost", &pp, &request(&[], None))
        .await;
    assert_eq!(server.token_requests("default", "app"), 3);
    assert_eq!(server.token_requests("default", "ghost"), 1);
    assert_eq!(server.token_requests("other", "app"), 0);
    assert_eq!(server.request_count("create", "serviceaccounts/token"), 4);
    assert_eq!(server.request_count("create", "serviceaccounts"), 1);
    server.reset_counters();
    assert_eq!(server.token_requests("default", "app"), 0);

    server.inject(
        Fault::default()
            .verb("create")
            .resource("serviceaccounts/token")
            .status(403)
            .times(1),
    );
    let failed = api_error(
        sas.create_token_request("app", &pp, &request(&[], None))
            .await
            .unwrap_err(),
    );
    assert_eq!(failed.code, 403);
    sas.create_token_request("app", &pp, &request(&[], None))
        .await
        .unwrap();
    assert_eq!(server.token_requests("default", "app"), 2);
}

#[tokio::test]
async fn discovery_lists_the_token_subresource() {
    let server = TestServer::start().await.unwrap();
    let list = send(&server, "GET", "/api/v1", "application/json", &json!({})).await;
    let token = list.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "serviceaccounts/token")
        .cloned()
        .expect("serviceaccounts/token is listed");
    assert_eq!(token["kind"], "TokenRequest");
    assert_eq!(token["group"], "authentication.k8s.io");
    assert_eq!(token["verbs"], json!(["create"]));
}

/// kubectl from `KUBECTL` or `<workspace>/.tools/bin/kubectl` against `server`; a missing
/// binary is a failure, never a skip.
async fn kubectl(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let bin = std::env::var("KUBECTL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/kubectl")
        });
    assert!(
        bin.exists(),
        "kubectl not found at {}: run `bash tests/setup.sh`",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let out = tokio::process::Command::new(bin)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("kubectl runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// `kubectl create token` sends a protobuf TokenRequest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_token() {
    let (server, _) = server_with_app().await;
    let (ok, out, err) = kubectl(
        &server,
        &[
            "create",
            "token",
            "app",
            "--duration=20m",
            "--audience=a",
            "--audience=b",
            "-v=8",
        ],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "kubectl no longer sends protobuf: {err}"
    );
    let (_, claims) = decode(out.trim());
    assert_eq!(claims["aud"], json!(["a", "b"]));
    assert_eq!(claims["sub"], "system:serviceaccount:default:app");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1200
    );

    let (ok, _, err) = kubectl(&server, &["create", "token", "app", "--duration=5m"]).await;
    assert!(!ok);
    assert!(
        err.contains("spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"),
        "{err}"
    );
    let (ok, _, err) = kubectl(&server, &["create", "token", "ghost"]).await;
    assert!(!ok);
    assert!(err.contains("serviceaccounts \"ghost\" not found"), "{err}");
    assert_eq!(server.token_requests("default", "app"), 2);
}
