//! `SecretStore` (namespaced) and `ClusterSecretStore` (cluster-scoped): how to reach AWS, in
//! External Secrets Operator's shape (`spec.provider.aws`), plus arnsync's own options under
//! `spec.arnsync`, a name no ESO field can take.

// kube's printcolumn attributes repeat `type_ = "string"` by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, Service};

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
    printcolumn(
        name = "Service",
        type_ = "string",
        json_path = ".spec.provider.aws.service"
    ),
    printcolumn(
        name = "Region",
        type_ = "string",
        json_path = ".spec.provider.aws.region"
    ),
    printcolumn(
        name = "Serving",
        type_ = "string",
        json_path = ".status.servingRegion",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Cost/Month",
        type_ = "string",
        json_path = ".status.estimatedMonthlyCost"
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
#[x_kube(validation = Rule::new("!has(self.provider.aws.auth) || !has(self.provider.aws.auth.secretRef) || (!has(self.provider.aws.auth.secretRef.accessKeyIDSecretRef.__namespace__) && !has(self.provider.aws.auth.secretRef.secretAccessKeySecretRef.__namespace__) && (!has(self.provider.aws.auth.secretRef.sessionTokenSecretRef) || !has(self.provider.aws.auth.secretRef.sessionTokenSecretRef.__namespace__)))").message("a SecretStore reads credentials only from its own namespace: remove namespace from provider.aws.auth.secretRef"))]
#[x_kube(validation = Rule::new("!has(self.provider.aws.auth) || !has(self.provider.aws.auth.jwt) || !has(self.provider.aws.auth.jwt.serviceAccountRef.__namespace__)").message("a SecretStore may use only a ServiceAccount of its own namespace: remove provider.aws.auth.jwt.serviceAccountRef.namespace"))]
pub struct SecretStoreSpec {
    pub provider: Provider,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_settings: Option<RetrySettings>,
    /// Seconds between checks of the store itself (ESO's meaning); 0 or absent: the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub refresh_interval: Option<i64>,
    /// arnsync's own options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arnsync: Option<ArnsyncOptions>,
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
    printcolumn(
        name = "Service",
        type_ = "string",
        json_path = ".spec.provider.aws.service"
    ),
    printcolumn(
        name = "Region",
        type_ = "string",
        json_path = ".spec.provider.aws.region"
    ),
    printcolumn(
        name = "Serving",
        type_ = "string",
        json_path = ".status.servingRegion",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Cost/Month",
        type_ = "string",
        json_path = ".status.estimatedMonthlyCost"
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
#[x_kube(validation = Rule::new("!has(self.provider.aws.auth) || !has(self.provider.aws.auth.secretRef) || (has(self.provider.aws.auth.secretRef.accessKeyIDSecretRef.__namespace__) && has(self.provider.aws.auth.secretRef.secretAccessKeySecretRef.__namespace__) && (!has(self.provider.aws.auth.secretRef.sessionTokenSecretRef) || has(self.provider.aws.auth.secretRef.sessionTokenSecretRef.__namespace__)))").message("a ClusterSecretStore must name the namespace of every provider.aws.auth.secretRef"))]
#[x_kube(validation = Rule::new("!has(self.provider.aws.auth) || !has(self.provider.aws.auth.jwt) || has(self.provider.aws.auth.jwt.serviceAccountRef.__namespace__)").message("a ClusterSecretStore must name the namespace of provider.aws.auth.jwt.serviceAccountRef"))]
pub struct ClusterSecretStoreSpec {
    pub provider: Provider,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_settings: Option<RetrySettings>,
    /// Seconds between checks of the store itself (ESO's meaning); 0 or absent: the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub refresh_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arnsync: Option<ArnsyncOptions>,
    /// Which namespaces may use this store. Empty: every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClusterStoreCondition>,
}

/// The secret backend. arnsync reads only AWS: `aws` is required, and any other provider is
/// refused by the schema as an unknown field.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    pub aws: AwsProvider,
}

/// `spec.provider.aws`, as External Secrets Operator spells it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.sessionTagsPolicy) && !has(self.customSessionTags)").message("provider.aws.sessionTagsPolicy and customSessionTags are not supported: list the tags in provider.aws.sessionTags"))]
#[x_kube(validation = Rule::new("!has(self.failoverRegions) || !(self.region in self.failoverRegions)").message("provider.aws.failoverRegions must not list provider.aws.region itself"))]
pub struct AwsProvider {
    /// SecretsManager or ParameterStore: what this store's ExternalSecrets read. A key that is
    /// a full ARN is read from the service the ARN names.
    pub service: Service,
    /// AWS region, e.g. us-east-1.
    #[x_kube(validation = Rule::new("self != ''").message("provider.aws.region must not be empty"))]
    #[schemars(length(max = 64))]
    pub region: String,
    /// arnsync only: Secrets Manager replica regions to read from, in order, while `region`
    /// is unavailable (5xx answers, timeouts, connection errors; never access denied, not
    /// found, validation errors or throttling). A full secret ARN is read as the replica's ARN
    /// (same account, name and suffix). The primary is tried again with backoff (30 s by
    /// default, doubling to 5 min) and serves again once it answers; `status.servingRegion`
    /// says which region serves. Parameter Store has no replicas: its reads never fail over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), inner(length(min = 1, max = 64)))]
    #[x_kube(validation = Rule::new("self.all(r, self.exists_one(o, o == r))").message("provider.aws.failoverRegions must not repeat a region"))]
    pub failover_regions: Vec<String>,
    /// A role to assume (ARN), after `additionalRoles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub role: Option<String>,
    /// Roles assumed in order before `role` (role chaining).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub additional_roles: Vec<String>,
    /// External ID passed when assuming `role`.
    #[serde(
        default,
        rename = "externalID",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<String>,
    /// Session tags passed when assuming `role`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub session_tags: Vec<SessionTag>,
    /// Session tag keys that pass on to roles assumed later in the chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub transitive_tag_keys: Vec<String>,
    /// Prepended to every key the store's ExternalSecrets name (not to full ARNs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Credentials. Absent: the operator's own identity (IRSA, EKS Pod Identity, env, instance profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<StoreAuth>,
    /// Declared only to be refused by name (use `sessionTags`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub session_tags_policy: Option<String>,
    /// Declared only to be refused by name (use `sessionTags`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 50))]
    pub custom_session_tags: Option<std::collections::BTreeMap<String, String>>,
    /// Options for writing to Secrets Manager. arnsync never writes to or deletes from AWS, so
    /// they are accepted for compatibility and have no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_manager: Option<SecretsManagerOptions>,
}

/// arnsync's own store options, under `spec.arnsync`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArnsyncOptions {
    /// Endpoint overrides (VPC endpoints, FIPS endpoints, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// How often to check AWS for rotations of the values this store's ExternalSecrets use
    /// (`60s`, `5m`). Default: the operator's `--rotation-check-interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_check_interval: Option<String>,
    /// An SQS queue (URL or ARN) that EventBridge fills with Secrets Manager and Parameter
    /// Store change events: rotations arrive within seconds, and polling slows to
    /// `--event-safety-interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub event_queue: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretsManagerOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_delete_without_recovery: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_window_in_days: Option<i64>,
}

/// How often and how many times AWS calls are retried.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetrySettings {
    /// Attempts after the first one (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub max_retries: Option<i32>,
    /// The wait between attempts as a Go duration (`1s`, `500ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<String>,
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
    /// The event queue's SQS endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs: Option<String>,
}

/// At most one way to authenticate; none is the operator's own identity.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.secretRef) && has(self.jwt))").message("provider.aws.auth: set at most one of secretRef and jwt"))]
pub struct StoreAuth {
    /// Static keys read from a Kubernetes Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<StaticKeysRef>,
    /// A Kubernetes ServiceAccount token exchanged for AWS credentials
    /// (sts:AssumeRoleWithWebIdentity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtAuth>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtAuth {
    pub service_account_ref: ServiceAccountRef,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountRef {
    pub name: String,
    /// Only on a ClusterSecretStore, where it is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Token audiences. Default: `sts.amazonaws.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
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

/// A role to assume, as the source layer needs it (built from `provider.aws`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssumeRole {
    pub arn: String,
    pub external_id: Option<String>,
    /// Default: `arnsync`.
    pub session_name: Option<String>,
    pub session_tags: Vec<SessionTag>,
    pub transitive_tag_keys: Vec<String>,
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
    /// Namespaces admitted by name, as regular expressions matched against the whole name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_regexes: Vec<String>,
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
    /// The region Secrets Manager reads are served from when the store lists
    /// `provider.aws.failoverRegions`: `region`, or a replica region while it is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_region: Option<String>,
    /// Estimated AWS bill per month of the calls of the store's identity (shared by every
    /// store with that identity), e.g. `$0.42`: calls of the last hour x 730 h x price; made
    /// again at most every few minutes, two significant digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_monthly_cost: Option<String>,
    /// Short hash of the store's AWS identity: the `identity` label of
    /// `arnsync_aws_estimated_monthly_cost_dollars`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_hash: Option<String>,
    /// ESO's `capabilities`: arnsync reads only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<String>,
}

/// What both store kinds say about reaching AWS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsSettings {
    pub service: Service,
    pub region: String,
    /// `provider.aws.failoverRegions`: Secrets Manager replica regions, in order.
    pub failover_regions: Vec<String>,
    pub prefix: Option<String>,
    pub endpoints: Endpoints,
    pub auth: Option<StaticKeysRef>,
    pub jwt: Option<ServiceAccountRef>,
    /// Roles to assume in order: `additionalRoles`, then `role` (with its external ID and tags).
    pub roles: Vec<AssumeRole>,
    pub retry: Option<RetrySettings>,
    pub rotation_check_interval: Option<String>,
    /// `spec.arnsync.eventQueue`.
    pub event_queue: Option<String>,
    /// `sessionTagsPolicy` or `customSessionTags` is set (refused).
    pub refused_session_tags: bool,
}

impl AwsProvider {
    /// The role chain: `additionalRoles` in order, then `role`, which carries the external ID
    /// and session tags.
    pub fn roles(&self) -> Vec<AssumeRole> {
        let mut roles: Vec<AssumeRole> = self
            .additional_roles
            .iter()
            .map(|arn| AssumeRole {
                arn: arn.clone(),
                ..AssumeRole::default()
            })
            .collect();
        if let Some(arn) = &self.role {
            roles.push(AssumeRole {
                arn: arn.clone(),
                external_id: self.external_id.clone(),
                session_name: None,
                session_tags: self.session_tags.clone(),
                transitive_tag_keys: self.transitive_tag_keys.clone(),
            });
        }
        roles
    }
}

/// Both store kinds carry the same AWS fields (a ClusterSecretStore adds `conditions`).
macro_rules! aws_settings {
    ($($spec:ty),*) => {$(
        impl $spec {
            pub fn aws(&self) -> AwsSettings {
                let aws = &self.provider.aws;
                let own = self.arnsync.clone().unwrap_or_default();
                AwsSettings {
                    service: aws.service,
                    region: aws.region.clone(),
                    failover_regions: aws.failover_regions.clone(),
                    prefix: aws.prefix.clone().filter(|p| !p.is_empty()),
                    endpoints: own.endpoints.unwrap_or_default(),
                    auth: aws.auth.as_ref().and_then(|a| a.secret_ref.clone()),
                    jwt: aws.auth.as_ref().and_then(|a| a.jwt.as_ref()).map(|j| j.service_account_ref.clone()),
                    roles: aws.roles(),
                    retry: self.retry_settings.clone(),
                    rotation_check_interval: own.rotation_check_interval,
                    event_queue: own.event_queue,
                    refused_session_tags: aws.session_tags_policy.is_some() || aws.custom_session_tags.is_some(),
                }
            }
        }
    )*};
}

aws_settings!(SecretStoreSpec, ClusterSecretStoreSpec);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eso_store_reads_as_its_settings() {
        let spec: SecretStoreSpec = serde_json::from_value(serde_json::json!({
            "provider": {"aws": {
                "service": "ParameterStore",
                "region": "eu-central-1",
                "role": "arn:aws:iam::222222222222:role/team-b",
                "additionalRoles": ["arn:aws:iam::111111111111:role/hop"],
                "externalID": "xid",
                "sessionTags": [{"key": "team", "value": "b"}],
                "transitiveTagKeys": ["team"],
                "prefix": "prod/",
                "auth": {"jwt": {"serviceAccountRef": {"name": "app"}}}
            }},
            "arnsync": {"rotationCheckInterval": "30s"}
        }))
        .unwrap();
        let s = spec.aws();
        assert_eq!(s.service, Service::ParameterStore);
        assert_eq!(s.prefix.as_deref(), Some("prod/"));
        assert_eq!(s.jwt.as_ref().map(|j| j.name.as_str()), Some("app"));
        let arns: Vec<&str> = s.roles.iter().map(|r| r.arn.as_str()).collect();
        assert_eq!(
            arns,
            [
                "arn:aws:iam::111111111111:role/hop",
                "arn:aws:iam::222222222222:role/team-b"
            ]
        );
        assert_eq!(s.roles[0].external_id, None);
        assert_eq!(s.roles[1].external_id.as_deref(), Some("xid"));
        assert_eq!(s.roles[1].transitive_tag_keys, ["team"]);
        assert_eq!(s.rotation_check_interval.as_deref(), Some("30s"));
    }
}
