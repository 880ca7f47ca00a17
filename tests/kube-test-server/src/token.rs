//! The TokenRequest subresource: `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`
//! (authentication.k8s.io/v1 `TokenRequest`), checked in the real server's order: the body's
//! name and namespace must match the path (422), the ServiceAccount must exist (404), then
//! `spec.expirationSeconds` (default 3600) must lie in [600, 2^32] (422). The answer is 201 with
//! the request, its defaults filled in, and `status.token` (a JWT whose claims are the real
//! ones; its signature is a fixed dummy) and `status.expirationTimestamp`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::registry::ResourceType;
use crate::status::{ApiError, ApiResult};
use crate::store::Store;

/// The issuer (`iss`) of every token, and the API audience that requests without
/// `spec.audiences` get, as on a kubeadm or kind cluster.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

const GROUP: &str = "authentication.k8s.io";
const KIND: &str = "TokenRequest";
const DEFAULT_EXPIRATION: i64 = 3600;
const MIN_EXPIRATION: i64 = 10 * 60;
const MAX_EXPIRATION: i64 = 1 << 32;

/// A TokenRequest body: JSON, YAML or protobuf (`rt`: ServiceAccounts).
pub fn decode(content_type: &str, body: &[u8], rt: &ResourceType) -> ApiResult<Value> {
    match content_type {
        crate::protobuf::MEDIA_TYPE => crate::protobuf::decode_token_request(body, rt),
        "" | "application/json" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}"))),
        "application/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}"))),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// Issues a token of ServiceAccount `ns/name` for the request `body`.
pub fn create(store: &Store, ns: &str, name: &str, mut body: Value) -> ApiResult<Value> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of a TokenRequest must be a JSON object",
        ));
    }
    if let Some(kind) = body["kind"].as_str().filter(|k| *k != KIND) {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"v1\" cannot be handled as a TokenRequest: the body must be a TokenRequest"
        )));
    }
    for (field, want) in [("name", name), ("namespace", ns)] {
        match body["metadata"][field].as_str() {
            Some(given) if !given.is_empty() && given != want => {
                return Err(ApiError::invalid(
                    GROUP,
                    KIND,
                    name,
                    vec![(
                        format!("metadata.{field}"),
                        format!(
                            "Invalid value: {given:?}: must match the service account {field} if specified"
                        ),
                    )],
                ))
            }
            _ => {}
        }
    }
    let sa = store
        .get(&(String::new(), "serviceaccounts".into()), ns, name)
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
    let uid = sa["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let spec = &mut body["spec"];
    if spec.is_null() {
        *spec = json!({});
    }
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION,
        v => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: spec.expirationSeconds: expected an integer, got {v}"
            ))
        })?,
    };
    spec["expirationSeconds"] = json!(expiration);
    let audiences: Vec<String> = match &spec["audiences"] {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|a| a.as_str().map(String::from))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad_request("spec.audiences must be a list of strings"))?,
        _ => vec![ISSUER.to_string()],
    };
    spec["audiences"] = json!(audiences);
    if let Some(message) = expiration_error(expiration) {
        // The real server validates after filling in the name: the message names "".
        return Err(ApiError::invalid(
            GROUP,
            KIND,
            "",
            vec![(
                "spec.expirationSeconds".into(),
                format!("Invalid value: {expiration}: {message}"),
            )],
        ));
    }

    let now = chrono::Utc::now();
    let expires = now + chrono::Duration::seconds(expiration);
    let token = jwt(
        ns,
        name,
        &uid,
        &audiences,
        now.timestamp(),
        expires.timestamp(),
    );
    body["apiVersion"] = json!(format!("{GROUP}/v1"));
    body["kind"] = json!(KIND);
    body["metadata"]["name"] = json!(name);
    body["metadata"]["namespace"] = json!(ns);
    body["metadata"]["creationTimestamp"] = json!(seconds(now));
    body["status"] = json!({"token": token, "expirationTimestamp": seconds(expires)});
    Ok(body)
}

fn expiration_error(seconds: i64) -> Option<&'static str> {
    if seconds < MIN_EXPIRATION {
        Some("may not specify a duration less than 10 minutes")
    } else if seconds > MAX_EXPIRATION {
        Some("may not specify a duration larger than 2^32 seconds")
    } else {
        None
    }
}

fn seconds(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `header.payload.signature`, each base64url without padding; the claims a real API server
/// puts in an unbound ServiceAccount token.
fn jwt(ns: &str, name: &str, uid: &str, audiences: &[String], iat: i64, exp: i64) -> String {
    let header = json!({"alg": "RS256", "kid": "kube-test-server"});
    let claims = json!({
        "aud": audiences,
        "exp": exp,
        "iat": iat,
        "nbf": iat,
        "iss": ISSUER,
        "jti": uuid::Uuid::new_v4().to_string(),
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": uid}},
        "sub": format!("system:serviceaccount:{ns}:{name}"),
    });
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        part(&header),
        part(&claims),
        URL_SAFE_NO_PAD.encode("kube-test-server: not signed")
    )
}
