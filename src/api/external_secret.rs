//! `ExternalSecret`: what to read from AWS and which Kubernetes Secret to write.

// kube's printcolumn attributes repeat `type_ = "string"` by design.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// Reads values from AWS Secrets Manager and Parameter Store into one Kubernetes Secret.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "arnsync.io",
    version = "v1alpha1",
    kind = "ExternalSecret",
    namespaced,
    status = "ExternalSecretStatus",
    shortname = "arnes",
    category = "arnsync",
    doc = "Values read from AWS Secrets Manager and Parameter Store, written to one Kubernetes Secret",
    printcolumn(
        name = "Store",
        type_ = "string",
        json_path = ".spec.secretStoreRef.name"
    ),
    printcolumn(
        name = "Refresh",
        type_ = "string",
        json_path = ".spec.refreshInterval"
    ),
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
#[x_kube(validation = Rule::new("(has(self.data) && size(self.data) > 0) || (has(self.dataFrom) && size(self.dataFrom) > 0) || (has(self.target) && has(self.target.template) && has(self.target.template.data) && size(self.target.template.data) > 0)").message("nothing to sync: set data, dataFrom or target.template.data"))]
pub struct ExternalSecretSpec {
    pub secret_store_ref: StoreRef,
    /// How often to re-read everything: `1h` (default), `30m`, `90s`; `0` reads once.
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: String,
    #[serde(default)]
    pub target: Target,
    /// At most 1000 entries.
    #[serde(default)]
    #[schemars(length(max = MAX_DATA_ITEMS))]
    pub data: Vec<DataItem>,
    /// At most 100 entries.
    #[serde(default)]
    #[schemars(length(max = MAX_DATA_FROM_ITEMS))]
    pub data_from: Vec<DataFrom>,
}

/// Most `spec.data` entries in one ExternalSecret. Lists and strings that CEL rules read are
/// bounded so that a real API server's rule cost estimate stays within its budget.
pub const MAX_DATA_ITEMS: u32 = 1000;
/// Most `spec.dataFrom` entries in one ExternalSecret.
pub const MAX_DATA_FROM_ITEMS: u32 = 100;
/// Longest `remoteRef.key`: an ARN is at most 2048 characters.
pub const MAX_KEY_LENGTH: u32 = 2048;
/// Most tags in a `find`: AWS allows 50 tags on a secret.
pub const MAX_FIND_TAGS: u32 = 50;

fn default_refresh_interval() -> String {
    "1h".into()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StoreKind {
    #[default]
    SecretStore,
    ClusterSecretStore,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreRef {
    #[serde(default)]
    pub kind: StoreKind,
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CreationPolicy {
    /// arnsync creates the Secret and owns it: it is deleted with the ExternalSecret.
    #[default]
    Owner,
    /// Add keys to a Secret that exists and is owned by someone else; keep its other keys.
    Merge,
    /// Create the Secret without an owner: it stays when the ExternalSecret goes.
    Orphan,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// The remote secret is gone: keep the last good data and report it.
    #[default]
    Retain,
    /// The remote secret is gone: remove our keys (or the whole Secret when we own it).
    Delete,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Name of the Secret. Default: the ExternalSecret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$') && size(self) <= 253").message("target.name must be a DNS subdomain: lowercase letters, digits, '-' and '.'"))]
    #[schemars(length(max = 253))]
    pub name: Option<String>,
    #[serde(default)]
    pub creation_policy: CreationPolicy,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// Secret type, e.g. Opaque (default), kubernetes.io/dockerconfigjson, kubernetes.io/tls.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// Secret keys rendered with minijinja; the fetched keys are the variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataItem {
    /// The key in the Kubernetes Secret.
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub secret_key: String,
    pub remote_ref: RemoteRef,
}

#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    JsonSchema,
)]
pub enum Service {
    #[default]
    SecretsManager,
    ParameterStore,
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Service::SecretsManager => "SecretsManager",
            Service::ParameterStore => "ParameterStore",
        })
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DecodingStrategy {
    #[default]
    None,
    Base64,
    /// Base64 when the value is valid base64, else as it is.
    Auto,
}

/// One remote value: a secret or parameter, optionally one JSON field of it.
///
/// "An SSM ARN" is spelt `startsWith('arn:') && contains(':ssm:')` rather than a regexp: a
/// regexp over a 2048-character key costs the API server's estimate ten times as much, and no
/// secret or parameter name can contain `:`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.versionStage) && has(self.versionId))").message("set at most one of versionStage and versionId"))]
#[x_kube(validation = Rule::new("!has(self.version) || (has(self.service) && self.service == 'ParameterStore') || (self.key.startsWith('arn:') && self.key.contains(':ssm:'))").message("version is only for ParameterStore; use versionStage or versionId for SecretsManager"))]
#[x_kube(validation = Rule::new("!(has(self.versionStage) || has(self.versionId)) || ((!has(self.service) || self.service == 'SecretsManager') && !(self.key.startsWith('arn:') && self.key.contains(':ssm:')))").message("versionStage and versionId are only for SecretsManager; use version for ParameterStore"))]
pub struct RemoteRef {
    /// Secret name or ARN, or parameter name (`/prod/db/url`) or ARN.
    #[x_kube(validation = Rule::new("self != ''").message("key must not be empty"))]
    #[schemars(length(max = MAX_KEY_LENGTH))]
    pub key: String,
    /// Default SecretsManager; inferred from an ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// A JSON field of the value; a dotted path for nested fields (`db.password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// Secrets Manager staging label; default AWSCURRENT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_stage: Option<String>,
    /// Secrets Manager version id: pins one version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Parameter Store version number or label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoding_strategy: Option<DecodingStrategy>,
}

/// Many keys at once: every JSON field of one secret, or every secret or parameter found.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.extract) != has(self.find)").message("set exactly one of extract and find"))]
pub struct DataFrom {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<RemoteRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub find: Option<FindRef>,
    /// Rules applied in order to every key this source produces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewrite: Vec<Rewrite>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.service) && self.service == 'ParameterStore' ? (has(self.path) && !has(self.name) && (!has(self.tags) || size(self.tags) == 0)) : (!has(self.path) && (has(self.name) || (has(self.tags) && size(self.tags) > 0)))").message("find: ParameterStore takes path; SecretsManager takes name.regexp and/or tags"))]
pub struct FindRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// Parameter Store path, e.g. /prod/app/.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Parameter Store: include parameters below sub-paths.
    #[serde(default)]
    pub recursive: bool,
    /// Secrets Manager: secret names matching a regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<FindName>,
    /// Secrets Manager: secrets carrying all these tags (at most 50).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = MAX_FIND_TAGS))]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoding_strategy: Option<DecodingStrategy>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindName {
    pub regexp: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rewrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<RewriteRegexp>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RewriteRegexp {
    /// A regular expression over the key.
    pub source: String,
    /// The replacement; `$1` or `${name}` refer to capture groups.
    pub target: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the remote values were last read in full (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<String>,
    /// The name of the Secret written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
    /// The version of each remote source in use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceStatus>,
    /// sha256 over the written keys and values (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_hash: Option<String>,
    /// The last `arnsync.io/force-sync` annotation value honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_sync: Option<String>,
    /// The last rotation that changed the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation: Option<LastRotation>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastRotation {
    /// When the Secret was written with the rotated values (RFC 3339).
    pub time: String,
    /// The remote values whose version moved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<RotatedSource>,
    /// The opted-in workloads using the Secret, which arnsync rolls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<WorkloadRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSource {
    pub service: Service,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
}

#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub struct WorkloadRef {
    pub kind: String,
    pub name: String,
}

#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    pub service: Service,
    /// Secret name or parameter name as AWS reports it.
    pub key: String,
    /// Secrets Manager VersionId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Parameter Store version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl RemoteRef {
    /// The service named, or inferred from an ARN (`arn:aws:ssm:...` is Parameter Store).
    pub fn service(&self) -> Service {
        service_of(self.service, &self.key)
    }
}

impl FindRef {
    pub fn service(&self) -> Service {
        self.service.unwrap_or_default()
    }
}

pub(crate) fn service_of(explicit: Option<Service>, key: &str) -> Service {
    if let Some(s) = explicit {
        return s;
    }
    let mut parts = key.splitn(4, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some("ssm")) => Service::ParameterStore,
        _ => Service::SecretsManager,
    }
}

impl ExternalSecret {
    /// The name of the Secret this ExternalSecret writes.
    pub fn target_name(&self) -> String {
        self.spec
            .target
            .name
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }

    /// How messages and logs name it: `ExternalSecret ns/name`.
    pub fn label(&self) -> String {
        format!(
            "ExternalSecret {}/{}",
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_is_inferred_from_an_arn() {
        let r = |key: &str| RemoteRef {
            key: key.into(),
            ..Default::default()
        };
        assert_eq!(
            r("arn:aws:ssm:us-east-1:123456789012:parameter/prod/db").service(),
            Service::ParameterStore
        );
        assert_eq!(
            r("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf").service(),
            Service::SecretsManager
        );
        assert_eq!(r("prod/db").service(), Service::SecretsManager);
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let es: ExternalSecretSpec = serde_json::from_value(serde_json::json!({
            "secretStoreRef": {"name": "aws"},
            "data": [{"secretKey": "k", "remoteRef": {"key": "prod/db"}}]
        }))
        .unwrap();
        assert_eq!(es.refresh_interval, "1h");
        assert_eq!(es.secret_store_ref.kind, StoreKind::SecretStore);
        assert_eq!(es.target.creation_policy, CreationPolicy::Owner);
        assert_eq!(es.target.deletion_policy, DeletionPolicy::Retain);
    }
}
