//! `ExternalSecret`: what to read from AWS and which Kubernetes Secret to write, in External
//! Secrets Operator's field shapes. Fields ESO has and arnsync does not support are declared
//! and refused by a rule that names them (not left to pruning, which would drop them silently).

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
#[x_kube(validation = Rule::new("(has(self.data) && size(self.data) > 0) || (has(self.dataFrom) && size(self.dataFrom) > 0) || (has(self.target) && has(self.target.template) && ((has(self.target.template.data) && size(self.target.template.data) > 0) || (has(self.target.template.templateFrom) && size(self.target.template.templateFrom) > 0)))").message("nothing to sync: set data, dataFrom, target.template.data or target.template.templateFrom"))]
#[x_kube(validation = Rule::new("!has(self.syncWindows)").message("spec.syncWindows is not supported: arnsync syncs whenever a value changes; remove it"))]
pub struct ExternalSecretSpec {
    pub secret_store_ref: StoreRef,
    /// How often to re-read everything: `1h` (default), `30m`, `90s`; `0` reads once.
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: String,
    /// Periodic (default): every refreshInterval and on every rotation. OnChange: only when the
    /// ExternalSecret changes. CreatedOnce: write the Secret once, never update it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_policy: Option<RefreshPolicy>,
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
    /// ESO's sync windows: declared only to be refused by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub sync_windows: Option<serde_json::Value>,
}

/// An object of anything: the schema of fields declared only to be refused by a rule.
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
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
pub enum RefreshPolicy {
    #[default]
    Periodic,
    OnChange,
    CreatedOnce,
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
    /// Write no Secret: read and report only.
    None,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// The remote secret is gone: keep the last good data and report it.
    #[default]
    Retain,
    /// The remote secret is gone: remove our keys, and the Secret when nothing is left.
    Delete,
    /// The remote secret is gone: remove our keys, never the Secret.
    Merge,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.creationPolicy) || self.creationPolicy != 'Merge' || !has(self.deletionPolicy) || self.deletionPolicy != 'Delete'").message("target: deletionPolicy Delete would delete a Secret arnsync does not own (creationPolicy Merge); use deletionPolicy Merge or Retain"))]
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
    /// Write the Secret with `immutable: true`; a change then needs the Secret deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub immutable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.engineVersion) || self.engineVersion == 'v2'").message("target.template.engineVersion v1 is not supported (External Secrets Operator deprecated it): write the template for v2 and set engineVersion: v2"))]
pub struct Template {
    /// Secret type, e.g. Opaque (default), kubernetes.io/dockerconfigjson, kubernetes.io/tls.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Only `v2` (Go templates); the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<EngineVersion>,
    /// Replace (default): the Secret holds only the rendered keys. Merge: the rendered keys are
    /// written over the fetched ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_policy: Option<MergePolicy>,
    /// Labels and annotations of the Secret; their values are templates too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// Secret keys rendered as Go templates; each fetched key is `.key`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Templates kept elsewhere: a ConfigMap, a Secret, or a literal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub template_from: Vec<TemplateFrom>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum EngineVersion {
    #[serde(rename = "v1")]
    V1,
    #[default]
    #[serde(rename = "v2")]
    V2,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MergePolicy {
    #[default]
    Replace,
    Merge,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.finalizers)").message("target.template.metadata.finalizers is not supported: arnsync writes only labels and annotations; remove it"))]
pub struct TemplateMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Declared only to be refused by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub finalizers: Vec<String>,
}

/// One template source: exactly one of `configMap`, `secret` and `literal`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.configMap) ? 1 : 0) + (has(self.secret) ? 1 : 0) + (has(self.literal) ? 1 : 0) == 1").message("templateFrom: set exactly one of configMap, secret and literal"))]
pub struct TemplateFrom {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<TemplateRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<TemplateRef>,
    /// A template whose output is YAML: a map of keys to values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
    /// Where the rendered keys go: Data (default), Annotations or Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TemplateTarget>,
}

/// A ConfigMap or Secret of the ExternalSecret's namespace holding templates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    pub name: String,
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub items: Vec<TemplateRefItem>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRefItem {
    pub key: String,
    /// Values (default): the item renders to the Secret key of the same name.
    /// KeysAndValues: the item renders to YAML, a map of keys to values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_as: Option<TemplateScope>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TemplateScope {
    #[default]
    Values,
    KeysAndValues,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TemplateTarget {
    #[default]
    Data,
    Annotations,
    Labels,
}

/// ESO reads from other stores or from generators here; arnsync does not (refused by rule).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<StoreRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_ref: Option<GeneratorRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
}

/// The refusal of `sourceRef`, shared by `data[]` and `dataFrom[]`.
const NO_SOURCE_REF: &str = "!has(self.sourceRef)";
const NO_FETCH_MESSAGE: &str = "metadataPolicy Fetch (reading tags instead of the value) is not supported; remove it to read the value";
const NO_SOURCE_REF_MESSAGE: &str = "sourceRef is not supported: arnsync reads only from spec.secretStoreRef (no generators, no per-entry stores); use one ExternalSecret per store";

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(NO_SOURCE_REF).message(NO_SOURCE_REF_MESSAGE))]
#[x_kube(validation = Rule::new("!has(self.remoteRef.metadataPolicy) || self.remoteRef.metadataPolicy == 'None'").message(NO_FETCH_MESSAGE))]
pub struct DataItem {
    /// The key in the Kubernetes Secret.
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub secret_key: String,
    pub remote_ref: RemoteRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<SourceRef>,
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
    /// URL-safe base64 (`-` and `_`), padded or not.
    #[serde(rename = "Base64URL")]
    Base64Url,
    /// Base64 when the value is valid base64, else as it is.
    Auto,
}

/// Only `Default`: keys are written as they are (ESO's `Unicode` escaping is not supported).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConversionStrategy {
    #[default]
    Default,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MetadataPolicy {
    #[default]
    None,
    /// Read the secret's or parameter's tags instead of its value (`property` names one tag).
    Fetch,
}

/// One remote value: a secret or parameter, optionally one JSON field of it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RemoteRef {
    /// Secret name or ARN, or parameter name (`/prod/db/url`) or ARN. The store's
    /// `provider.aws.prefix` is put in front of a name.
    #[schemars(length(min = 1, max = MAX_KEY_LENGTH))]
    pub key: String,
    /// A JSON field of the value; a dotted path for nested fields (`db.password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// Secrets Manager: a staging label (default AWSCURRENT) or `uuid/<VersionId>`.
    /// Parameter Store: a version number or a label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_strategy: Option<ConversionStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoding_strategy: Option<DecodingStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_policy: Option<MetadataPolicy>,
    /// The store's service, bound when the store is known (not part of the API).
    #[serde(skip)]
    #[schemars(skip)]
    pub service: Option<Service>,
}

/// Many keys at once: every JSON field of one secret, or every secret or parameter found.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(NO_SOURCE_REF).message(NO_SOURCE_REF_MESSAGE))]
#[x_kube(validation = Rule::new("has(self.sourceRef) || has(self.extract) != has(self.find)").message("set exactly one of extract and find"))]
#[x_kube(validation = Rule::new("!has(self.extract) || !has(self.extract.metadataPolicy) || self.extract.metadataPolicy == 'None'").message(NO_FETCH_MESSAGE))]
pub struct DataFrom {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<RemoteRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub find: Option<FindRef>,
    /// Rules applied in order to every key this source produces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub rewrite: Vec<Rewrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<SourceRef>,
}

/// Secrets or parameters found by name, path or tags.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindRef {
    /// Names starting with this path (Parameter Store: the parameters below it, recursively).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Names matching a regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<FindName>,
    /// Secrets Manager: secrets carrying all these tags (at most 50).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = MAX_FIND_TAGS))]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_strategy: Option<ConversionStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoding_strategy: Option<DecodingStrategy>,
    /// The store's service, bound when the store is known (not part of the API).
    #[serde(skip)]
    #[schemars(skip)]
    pub service: Option<Service>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindName {
    pub regexp: String,
}

/// One rewrite of a key: exactly one of `regexp` and `transform`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.regexp) != has(self.transform)").message("rewrite: set exactly one of regexp and transform"))]
pub struct Rewrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<RewriteRegexp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<RewriteTransform>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RewriteRegexp {
    /// A regular expression over the key.
    pub source: String,
    /// The replacement; `$1` or `${name}` refer to capture groups.
    pub target: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RewriteTransform {
    /// A Go template over `.value`, the key: `{{ .value | upper }}`.
    pub template: String,
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
    /// The service that serves this key: the one a full ARN names
    /// (`arn:aws:ssm:...` is Parameter Store), else the store's.
    pub fn service(&self) -> Service {
        service_of(self.service, &self.key)
    }
}

impl FindRef {
    /// The store's service.
    pub fn service(&self) -> Service {
        self.service.unwrap_or_default()
    }
}

/// True when `key` is a full ARN (`arn:PARTITION:SERVICE:...`).
pub fn is_arn(key: &str) -> bool {
    key.starts_with("arn:")
}

pub(crate) fn service_of(store: Option<Service>, key: &str) -> Service {
    let mut parts = key.splitn(4, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some("ssm")) => Service::ParameterStore,
        (Some("arn"), Some(_), Some("secretsmanager")) => Service::SecretsManager,
        _ => store.unwrap_or_default(),
    }
}

impl ExternalSecret {
    /// This ExternalSecret as its store serves it: every reference carries the store's
    /// `service`, and `prefix` is put in front of every key that is not a full ARN.
    pub fn bound_to(&self, service: Service, prefix: Option<&str>) -> ExternalSecret {
        let mut es = self.clone();
        let bind = |r: &mut RemoteRef| {
            r.service = Some(service);
            if let Some(p) = prefix.filter(|_| !is_arn(&r.key)) {
                r.key = format!("{p}{}", r.key);
            }
        };
        es.spec
            .data
            .iter_mut()
            .for_each(|d| bind(&mut d.remote_ref));
        for d in &mut es.spec.data_from {
            if let Some(r) = d.extract.as_mut() {
                bind(r);
            }
            if let Some(f) = d.find.as_mut() {
                f.service = Some(service);
            }
        }
        es
    }

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
    fn binding_to_a_store_sets_its_service_and_prefixes_names_not_arns() {
        let es: ExternalSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
            "metadata": {"name": "a", "namespace": "n"},
            "spec": {
                "secretStoreRef": {"name": "aws"},
                "data": [
                    {"secretKey": "a", "remoteRef": {"key": "db/url"}},
                    {"secretKey": "b", "remoteRef": {"key": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf"}}
                ],
                "dataFrom": [{"extract": {"key": "cfg"}}, {"find": {"path": "/app/"}}]
            }
        }))
        .unwrap();
        let bound = es.bound_to(Service::ParameterStore, Some("/prod/"));
        let d = &bound.spec.data;
        assert_eq!(d[0].remote_ref.key, "/prod/db/url");
        assert_eq!(d[0].remote_ref.service(), Service::ParameterStore);
        assert_eq!(d[1].remote_ref.key, es.spec.data[1].remote_ref.key);
        assert_eq!(d[1].remote_ref.service(), Service::SecretsManager);
        let from = &bound.spec.data_from;
        assert_eq!(from[0].extract.as_ref().unwrap().key, "/prod/cfg");
        assert_eq!(
            from[1].find.as_ref().unwrap().service(),
            Service::ParameterStore
        );
        // The binding is not part of the API: it never reaches the object as written.
        let written = serde_json::to_value(&bound).unwrap();
        assert!(written["spec"]["data"][0]["remoteRef"]
            .get("service")
            .is_none());
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
