//! `application/vnd.kubernetes.protobuf` request bodies for the built-in kinds except CRDs (what
//! kubectl's typed `create namespace|secret|configmap|deployment|service|role|...` send).
//!
//! The wire form (k8s.io/apimachinery `runtime/serializer/protobuf`): the magic `k8s\0`, then a
//! `runtime.Unknown` message whose `typeMeta` names the kind and whose `raw` is the object's own
//! message. k8s-pb's prost structs decode both; [`convert`] turns the object into the
//! k8s-openapi value whose JSON the store keeps, so the rest of the server sees what a JSON
//! client would have sent. Responses stay JSON (clients list JSON in `Accept`).

mod convert;
mod kinds;
mod meta;
mod pod;
mod services_rbac;
mod volumes;
mod wire;

use k8s_openapi::api::authentication::v1 as authentication;
use k8s_openapi::api::events::v1 as events;
use k8s_openapi::api::{apps::v1 as apps, coordination::v1 as coordination, core::v1 as core};
use k8s_openapi::api::{networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta_v1;
use k8s_pb::api::authentication::v1 as pb_authentication;
use k8s_pb::api::events::v1 as pb_events;
use k8s_pb::api::{apps::v1 as pb_apps, coordination::v1 as pb_coordination, core::v1 as pb_core};
use k8s_pb::api::{networking::v1 as pb_networking, policy::v1 as pb_policy, rbac::v1 as pb_rbac};
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::Value;

use crate::registry::ResourceType;
use crate::status::{ApiError, ApiResult};
use convert::{Conv, Refusal};

pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// `k8s` and encoding style 0 (a `runtime.Unknown`); Go prints it as `[107 56 115 0]`.
const MAGIC: [u8; 4] = [0x6b, 0x38, 0x73, 0x00];

type Decoder = fn(&[u8]) -> Result<Value, String>;

fn object<P, O>(raw: &[u8]) -> Result<Value, String>
where
    P: Message + Default + Conv<O>,
    O: serde::Serialize,
{
    let msg = P::decode(raw).map_err(|e| e.to_string())?;
    if let Some(path) = wire::skipped(raw, &msg.encode_to_vec()) {
        return Err(unknown_field(&path));
    }
    let obj = msg.conv().map_err(|Refusal(m)| m)?;
    Ok(serde_json::to_value(obj).expect("k8s-openapi values serialize"))
}

/// A set field the k8s-pb messages lack (newer than Kubernetes 1.35): refused, not dropped.
fn unknown_field(path: &str) -> String {
    format!("protobuf field {path} is unknown to this server (its messages are Kubernetes 1.35's)")
}

fn decoder(api_version: &str, kind: &str) -> Option<Decoder> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => object::<pb_core::Namespace, core::Namespace>,
        ("v1", "Secret") => object::<pb_core::Secret, core::Secret>,
        ("v1", "ConfigMap") => object::<pb_core::ConfigMap, core::ConfigMap>,
        ("v1", "ServiceAccount") => object::<pb_core::ServiceAccount, core::ServiceAccount>,
        ("v1", "Event") => object::<pb_core::Event, core::Event>,
        ("events.k8s.io/v1", "Event") => object::<pb_events::Event, events::Event>,
        ("coordination.k8s.io/v1", "Lease") => {
            object::<pb_coordination::Lease, coordination::Lease>
        }
        ("apps/v1", "Deployment") => object::<pb_apps::Deployment, apps::Deployment>,
        ("apps/v1", "StatefulSet") => object::<pb_apps::StatefulSet, apps::StatefulSet>,
        ("apps/v1", "DaemonSet") => object::<pb_apps::DaemonSet, apps::DaemonSet>,
        ("v1", "Service") => object::<pb_core::Service, core::Service>,
        ("policy/v1", "PodDisruptionBudget") => {
            object::<pb_policy::PodDisruptionBudget, policy::PodDisruptionBudget>
        }
        ("networking.k8s.io/v1", "NetworkPolicy") => {
            object::<pb_networking::NetworkPolicy, networking::NetworkPolicy>
        }
        ("rbac.authorization.k8s.io/v1", "Role") => object::<pb_rbac::Role, rbac::Role>,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            object::<pb_rbac::ClusterRole, rbac::ClusterRole>
        }
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            object::<pb_rbac::RoleBinding, rbac::RoleBinding>
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            object::<pb_rbac::ClusterRoleBinding, rbac::ClusterRoleBinding>
        }
        ("authentication.k8s.io/v1", "TokenRequest") => {
            object::<pb_authentication::TokenRequest, authentication::TokenRequest>
        }
        // Registered in every group version, like on the real server.
        (_, "DeleteOptions") => object::<pb_meta::DeleteOptions, meta_v1::DeleteOptions>,
        _ => return None,
    })
}

/// Whether `rt` takes protobuf bodies here; custom resources never do (as on the real server).
fn decodable(rt: &ResourceType, version: &str) -> bool {
    !rt.custom && decoder(&rt.api_version(version), &rt.kind).is_some()
}

/// Decodes a body sent to an endpoint of `rt` (at `version`) into its JSON form. Errors read
/// like the real server's (`transformDecodeError`): before the envelope is understood
/// "the object provided is unrecognized", after it "X in version V cannot be handled as a K".
pub fn decode(body: &[u8], rt: &ResourceType, version: &str) -> ApiResult<Value> {
    decode_as(body, rt, version, &rt.kind)
}

/// TokenRequest bodies of `serviceaccounts/{name}/token` (`rt`: ServiceAccounts).
pub fn decode_token_request(body: &[u8], rt: &ResourceType) -> ApiResult<Value> {
    decode_as(body, rt, "v1", "TokenRequest")
}

/// DeleteOptions bodies of delete and deletecollection.
pub fn decode_delete_options(body: &[u8], rt: &ResourceType, version: &str) -> ApiResult<Value> {
    decode_as(body, rt, version, "DeleteOptions")
}

fn decode_as(body: &[u8], rt: &ResourceType, version: &str, want: &str) -> ApiResult<Value> {
    let delete_options = want == "DeleteOptions";
    if rt.custom || (!delete_options && !decodable(rt, version)) {
        return Err(ApiError::unsupported_media_type(MEDIA_TYPE));
    }
    let unrecognized = |why: &str| {
        ApiError::bad_request(if delete_options {
            // The delete handlers pass decoding errors through as they are.
            why.to_string()
        } else {
            format!(
                "the object provided is unrecognized (must be of type {want}): {why} ({})",
                summarize(body)
            )
        })
    };
    let envelope = match body {
        [] => return Err(unrecognized("empty data")),
        b if !b.starts_with(&MAGIC) => {
            return Err(unrecognized(
                "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]",
            ))
        }
        [_, _, _, _] => return Err(unrecognized("empty body")),
        b => {
            let b = &b[MAGIC.len()..];
            let envelope = Unknown::decode(b).map_err(|e| unrecognized(&e.to_string()))?;
            if let Some(path) = wire::skipped(b, &envelope.encode_to_vec()) {
                return Err(unrecognized(&unknown_field(&path)));
            }
            envelope
        }
    };
    let type_meta = envelope.type_meta.unwrap_or_default();
    // Missing parts default to the endpoint's (Go's copyKindDefaults).
    let kind = type_meta
        .kind
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| want.to_string());
    let api_version = type_meta
        .api_version
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| rt.api_version(version));
    let kind_version = api_version
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let cannot = |why: String| {
        ApiError::bad_request(if delete_options {
            why
        } else {
            format!("{kind} in version {kind_version:?} cannot be handled as a {want}: {why}")
        })
    };
    if delete_options && kind != want {
        // The real delete handler's answer when the body decodes to another kind.
        return Err(ApiError::bad_request(
            "decoded object cannot be converted to DeleteOptions",
        ));
    }
    let decode = decoder(&api_version, &kind).ok_or_else(|| {
        cannot(format!(
            "no kind {kind:?} is registered for version {api_version:?} in scheme \"pkg/api/legacyscheme/scheme.go:30\""
        ))
    })?;
    let mut obj = decode(&envelope.raw.unwrap_or_default()).map_err(cannot)?;
    // k8s-openapi writes apiVersion/kind for resources; DeleteOptions gets the envelope's.
    obj["apiVersion"] = Value::String(api_version);
    obj["kind"] = Value::String(kind);
    Ok(obj)
}

/// The start of a body for error messages, like the real server's `summarizeData` (text for
/// what looks like JSON, else hex).
fn summarize(body: &[u8]) -> String {
    const MAX: usize = 30;
    let text = body.first() == Some(&b'{');
    let head = if text {
        String::from_utf8_lossy(&body[..body.len().min(MAX)]).into_owned()
    } else {
        body.iter().take(MAX).map(|b| format!("{b:02x}")).collect()
    };
    match body.len() {
        0 => "<empty>".into(),
        n if n > MAX => format!("{head} ..."),
        _ => head,
    }
}

#[cfg(test)]
mod tests;
