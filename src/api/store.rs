//! `SecretStore` (namespaced) and `ClusterSecretStore` (cluster-scoped): how to reach AWS.

// kube's printcolumn attributes repeat `type_ = "string"` by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// How to reach AWS from a `SecretStore`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "arnsync.io",
    version = "v1alpha1",
    kind = "SecretStore",
    namespaced,
    status = "StoreStatus",
    shortname = "arnss",
    category = "arnsync",
    doc = "How arnsync reaches AWS for the ExternalSecrets of one namespace",
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
// `namespace` is a CEL reserved word: Kubernetes exposes the property as `__namespace__`.
#[x_kube(validation = Rule::new("!has(self.auth) || !has(self.auth.secretRef) || (!has(self.auth.secretRef.accessKeyIDSecretRef.__namespace__) && !has(self.auth.secretRef.secretAccessKeySecretRef.__namespace__) && (!has(self.auth.secretRef.sessionTokenSecretRef) || !has(self.auth.secretRef.sessionTokenSecretRef.__namespace__)))").message("a SecretStore reads credentials only from its own namespace: remove namespace from auth.secretRef"))]
pub struct SecretStoreSpec {
    /// AWS region, e.g. us-east-1.
    #[x_kube(validation = Rule::new("self != ''").message("region must not be empty"))]
    #[schemars(length(max = 64))]
    pub region: String,
    /// Endpoint overrides (VPC endpoints, FIPS endpoints, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// Credentials. Absent: the operator's own identity (IRSA, EKS Pod Identity, env, instance profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<StoreAuth>,
    /// A role to assume on top of `auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<AssumeRole>,
    /// How often to check AWS for rotations of the values this store's ExternalSecrets use
    /// (`60s`, `5m`). Default: the operator's `--rotation-check-interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_check_interval: Option<String>,
}

/// How to reach AWS from any namespace that `conditions` admit.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "arnsync.io",
    version = "v1alpha1",
    kind = "ClusterSecretStore",
    status = "StoreStatus",
    shortname = "arncss",
    category = "arnsync",
    doc = "How arnsync reaches AWS, shared by the namespaces its conditions admit",
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.auth) || !has(self.auth.secretRef) || (has(self.auth.secretRef.accessKeyIDSecretRef.__namespace__) && has(self.auth.secretRef.secretAccessKeySecretRef.__namespace__) && (!has(self.auth.secretRef.sessionTokenSecretRef) || has(self.auth.secretRef.sessionTokenSecretRef.__namespace__)))").message("a ClusterSecretStore must name the namespace of every auth.secretRef"))]
pub struct ClusterSecretStoreSpec {
    /// AWS region, e.g. us-east-1.
    #[x_kube(validation = Rule::new("self != ''").message("region must not be empty"))]
    #[schemars(length(max = 64))]
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<StoreAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<AssumeRole>,
    /// How often to check AWS for rotations (`60s`, `5m`). Default: `--rotation-check-interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_check_interval: Option<String>,
    /// Which namespaces may use this store. Empty: every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClusterStoreCondition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_manager: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreAuth {
    /// Static keys read from a Kubernetes Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<StaticKeysRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticKeysRef {
    #[serde(rename = "accessKeyIDSecretRef")]
    pub access_key_id_secret_ref: SecretKeySelector,
    pub secret_access_key_secret_ref: SecretKeySelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_secret_ref: Option<SecretKeySelector>,
}

/// One key of one Kubernetes Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    pub name: String,
    pub key: String,
    /// Only on a ClusterSecretStore, where it is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssumeRole {
    /// The role ARN, e.g. arn:aws:iam::123456789012:role/app-secrets.
    pub arn: String,
    #[serde(
        default,
        rename = "externalID",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<String>,
    /// Default: `arnsync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_tags: Vec<SessionTag>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SessionTag {
    pub key: String,
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStoreCondition {
    /// Namespace names admitted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces admitted by their labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The caller identity ARN in use (from sts:GetCallerIdentity); never keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What both store kinds say about reaching AWS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsSettings {
    pub region: String,
    pub endpoints: Endpoints,
    pub auth: Option<StaticKeysRef>,
    pub role: Option<AssumeRole>,
    pub rotation_check_interval: Option<String>,
}

/// Both store kinds carry the same AWS fields (a ClusterSecretStore adds `conditions`).
macro_rules! aws_settings {
    ($($spec:ty),*) => {$(
        impl $spec {
            pub fn aws(&self) -> AwsSettings {
                AwsSettings {
                    region: self.region.clone(),
                    endpoints: self.endpoints.clone().unwrap_or_default(),
                    auth: self.auth.as_ref().and_then(|a| a.secret_ref.clone()),
                    role: self.role.clone(),
                    rotation_check_interval: self.rotation_check_interval.clone(),
                }
            }
        }
    )*};
}

aws_settings!(SecretStoreSpec, ClusterSecretStoreSpec);
