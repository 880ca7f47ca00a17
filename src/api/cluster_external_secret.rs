//! `ClusterExternalSecret`: one cluster-scoped object that keeps an `ExternalSecret` in every
//! namespace it selects.

// kube's printcolumn attributes repeat `type_ = "string"` by design.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, ExternalSecretSpec};

/// An ExternalSecret kept in every namespace that `namespaces` or a namespace selector selects.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "arnsync.io",
    version = "v1alpha1",
    kind = "ClusterExternalSecret",
    status = "ClusterExternalSecretStatus",
    shortname = "arnces",
    category = "arnsync",
    doc = "An ExternalSecret kept in every namespace the selectors choose",
    printcolumn(
        name = "Store",
        type_ = "string",
        json_path = ".spec.externalSecretSpec.secretStoreRef.name"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretSpec {
    /// The spec of every ExternalSecret created.
    pub external_secret_spec: ExternalSecretSpec,
    /// The name of the ExternalSecrets. Default: the ClusterExternalSecret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DNS_SUBDOMAIN), length(min = 1, max = 253))]
    pub external_secret_name: Option<String>,
    /// Labels and annotations of every ExternalSecret created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secret_metadata: Option<ExternalSecretMetadata>,
    /// Namespaces chosen by their labels; a namespace matching any selector is chosen. An empty
    /// selector (`{}`) chooses every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// The older single-selector form; ORed with `namespaceSelectors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Namespaces chosen by name; ORed with the selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = DNS_LABEL), length(min = 1, max = 63)))]
    pub namespaces: Vec<String>,
    /// How often the namespaces are chosen again and the ExternalSecrets checked: `1m`
    /// (default), `30s`, `1h`. Namespace changes are acted on at once as well.
    #[serde(default = "default_refresh_time")]
    pub refresh_time: String,
}

const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

fn default_refresh_time() -> String {
    "1m".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The name of the ExternalSecrets created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secret_name: Option<String>,
    /// The namespaces that hold the ExternalSecret, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provisioned_namespaces: Vec<String>,
    /// The selected namespaces where the ExternalSecret could not be written, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_namespaces: Vec<NamespaceFailure>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceFailure {
    pub namespace: String,
    pub reason: String,
}

impl ClusterExternalSecret {
    /// The name of the ExternalSecrets it creates.
    pub fn external_secret_name(&self) -> String {
        self.spec
            .external_secret_name
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }

    /// How messages and logs name it: `ClusterExternalSecret name`.
    pub fn label(&self) -> String {
        format!(
            "ClusterExternalSecret {}",
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }
}

impl ClusterExternalSecretSpec {
    /// Every namespace selector, the older single form first.
    pub fn selectors(&self) -> impl Iterator<Item = &LabelSelector> {
        self.namespace_selector
            .iter()
            .chain(self.namespace_selectors.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eso_shaped_manifest_reads_with_the_documented_defaults() {
        let ces: ClusterExternalSecretSpec = serde_json::from_value(serde_json::json!({
            "externalSecretSpec": {
                "secretStoreRef": {"name": "aws", "kind": "ClusterSecretStore"},
                "data": [{"secretKey": "k", "remoteRef": {"key": "prod/db"}}]
            },
            "namespaceSelector": {"matchLabels": {"old": "form"}},
            "namespaceSelectors": [{"matchLabels": {"team": "a"}}],
            "namespaces": ["extra"]
        }))
        .unwrap();
        assert_eq!(ces.refresh_time, "1m");
        assert_eq!(ces.external_secret_name, None);
        assert_eq!(ces.selectors().count(), 2);
        let named = ClusterExternalSecret::new("shared", ces);
        assert_eq!(named.external_secret_name(), "shared");
    }
}
