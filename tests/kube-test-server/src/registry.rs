//! The set of resource types the server serves: the built-ins and whatever registered
//! CustomResourceDefinitions add. Discovery, routing and storage all consult this one table so a
//! CRD appears (and disappears) everywhere at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::status::{ApiError, ApiResult};

/// One served resource (all its versions share one storage, like the real server's storage
/// version; objects are returned with the `apiVersion` the client asked for).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    /// Served versions; the first one is the preferred version.
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `/status` subresource: main-resource writes ignore `.status`, status writes touch
    /// only `.status`.
    pub has_status: bool,
    /// Sets `metadata.generation` and bumps it as the kind's registry strategy does
    /// (`store::generation_relevant`).
    pub tracks_generation: bool,
    /// Defined by a CRD (affects delete bodies and strategic merge patch support).
    pub custom: bool,
    /// `additionalPrinterColumns` of the preferred version (for `kubectl get` tables).
    pub printer_columns: Vec<Value>,
    /// `openAPIV3Schema` of the preferred version: its CEL rules (`x-kubernetes-validations`)
    /// are enforced on writes, as the real server does.
    /// Shared: a request's copy of its `ResourceType` does not copy the schemas.
    pub schema: Option<Arc<Value>>,
    /// `openAPIV3Schema` of every served version: writes are pruned, defaulted and validated
    /// against the schema of the version they were sent in (see [`crate::schema`]).
    pub version_schemas: BTreeMap<String, Arc<Value>>,
}

impl ResourceType {
    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        ResourceType {
            group: group.into(),
            versions: vec![version.into()],
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            namespaced,
            short_names: vec![],
            categories: vec![],
            has_status: false,
            tracks_generation: false,
            custom: false,
            printer_columns: vec![],
            schema: None,
            version_schemas: BTreeMap::new(),
        }
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    fn status(mut self) -> Self {
        self.has_status = true;
        self
    }

    fn generation(mut self) -> Self {
        self.tracks_generation = true;
        self
    }

    fn categories(mut self, c: &[&str]) -> Self {
        self.categories = c.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// Storage key: one bucket per group + plural, independent of version.
    pub fn key(&self) -> (String, String) {
        (self.group.clone(), self.plural.clone())
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    pub fn schema_for(&self, version: &str) -> Option<&Value> {
        self.version_schemas.get(version).map(|s| &**s)
    }
}

/// Verbs every served resource supports.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<ResourceType>,
}

/// Built-in groups in the order the real server lists them.
pub const BUILTIN_GROUPS: &[&str] = &[
    "apps",
    "events.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "coordination.k8s.io",
    "apiextensions.k8s.io",
];

impl Registry {
    pub fn builtin() -> Self {
        let t = ResourceType::builtin;
        let types = vec![
            t("", "v1", "namespaces", "Namespace", false)
                .short(&["ns"])
                .status(),
            t("", "v1", "secrets", "Secret", true),
            t("", "v1", "configmaps", "ConfigMap", true).short(&["cm"]),
            t("", "v1", "serviceaccounts", "ServiceAccount", true).short(&["sa"]),
            t("", "v1", "events", "Event", true).short(&["ev"]),
            t("", "v1", "services", "Service", true)
                .short(&["svc"])
                .categories(&["all"])
                .status(),
            t("apps", "v1", "deployments", "Deployment", true)
                .short(&["deploy"])
                .categories(&["all"])
                .status()
                .generation(),
            t("apps", "v1", "statefulsets", "StatefulSet", true)
                .short(&["sts"])
                .categories(&["all"])
                .status()
                .generation(),
            t("apps", "v1", "daemonsets", "DaemonSet", true)
                .short(&["ds"])
                .categories(&["all"])
                .status()
                .generation(),
            t("events.k8s.io", "v1", "events", "Event", true).short(&["ev"]),
            t(
                "networking.k8s.io",
                "v1",
                "networkpolicies",
                "NetworkPolicy",
                true,
            )
            .short(&["netpol"])
            .generation(),
            t(
                "policy",
                "v1",
                "poddisruptionbudgets",
                "PodDisruptionBudget",
                true,
            )
            .short(&["pdb"])
            .status()
            .generation(),
            t("rbac.authorization.k8s.io", "v1", "roles", "Role", true),
            t(
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "RoleBinding",
                true,
            ),
            t(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                "ClusterRole",
                false,
            ),
            t(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                "ClusterRoleBinding",
                false,
            ),
            t("coordination.k8s.io", "v1", "leases", "Lease", true),
            t(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
            )
            .short(&["crd", "crds"])
            .categories(&["api-extensions"])
            .status()
            .generation(),
        ];
        Registry { types }
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural && t.serves(version))
    }

    pub fn by_key(&self, key: &(String, String)) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == key.0 && t.plural == key.1)
    }

    /// Groups with their served versions, core group excluded, built-ins first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let mut custom: Vec<String> = self
            .types
            .iter()
            .filter(|t| !t.group.is_empty() && !BUILTIN_GROUPS.contains(&t.group.as_str()))
            .map(|t| t.group.clone())
            .collect();
        custom.sort();
        custom.dedup();
        let names = BUILTIN_GROUPS.iter().map(|s| s.to_string()).chain(custom);
        for g in names {
            let mut versions: Vec<String> = Vec::new();
            for t in self.types.iter().filter(|t| t.group == g) {
                for v in &t.versions {
                    if !versions.contains(v) {
                        versions.push(v.clone());
                    }
                }
            }
            if !versions.is_empty() {
                sort_versions(&mut versions);
                out.push((g, versions));
            }
        }
        out
    }

    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceType> + 'a {
        self.types
            .iter()
            .filter(move |t| t.group == group && t.serves(version))
    }

    /// Registers (or re-registers after an update) the resource a CRD defines.
    pub fn register_crd(&mut self, rt: ResourceType) {
        self.types
            .retain(|t| !(t.group == rt.group && t.plural == rt.plural));
        self.types.push(rt);
    }

    pub fn unregister(&mut self, group: &str, plural: &str) {
        self.types
            .retain(|t| !(t.custom && t.group == group && t.plural == plural));
    }
}

/// Kubernetes version priority: GA > beta > alpha, higher numbers first (`v2 > v1 > v1beta2`).
pub fn sort_versions(versions: &mut [String]) {
    fn rank(v: &str) -> (u8, u32, u32) {
        let rest = v.strip_prefix('v').unwrap_or(v);
        let num_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u32 = rest[..num_end].parse().unwrap_or(0);
        let tail = &rest[num_end..];
        let (stage, minor) = if tail.is_empty() {
            (3, 0)
        } else if let Some(m) = tail.strip_prefix("beta") {
            (2, m.parse().unwrap_or(0))
        } else if let Some(m) = tail.strip_prefix("alpha") {
            (1, m.parse().unwrap_or(0))
        } else {
            (0, 0)
        };
        (stage, major, minor)
    }
    versions.sort_by_key(|v| std::cmp::Reverse(rank(v)));
}

/// Reads the resource type out of a CRD body, validating what the real server validates that
/// matters here (names, group, scope, at least one served version, exactly one storage version).
pub fn crd_resource_type(crd: &Value) -> ApiResult<ResourceType> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let invalid = |field: &str, msg: &str| {
        ApiError::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            name,
            vec![(field.to_string(), msg.to_string())],
        )
    };
    if group.is_empty() {
        return Err(invalid("spec.group", "Required value"));
    }
    if plural.is_empty() {
        return Err(invalid("spec.names.plural", "Required value"));
    }
    if kind.is_empty() {
        return Err(invalid("spec.names.kind", "Required value"));
    }
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            "metadata.name",
            &format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let namespaced = match spec["scope"].as_str() {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => {
            return Err(invalid(
                "spec.scope",
                "Unsupported value: supported values: \"Cluster\", \"Namespaced\"",
            ))
        }
    };
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        return Err(invalid(
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    if versions
        .iter()
        .filter(|v| v["storage"] == Value::Bool(true))
        .count()
        != 1
    {
        return Err(invalid(
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    let mut served: Vec<String> = versions
        .iter()
        .filter(|v| v["served"] != Value::Bool(false))
        .filter_map(|v| v["name"].as_str().map(String::from))
        .collect();
    sort_versions(&mut served);
    let has_status = versions
        .iter()
        .any(|v| v["subresources"]["status"].is_object());
    let preferred = served.first().cloned().unwrap_or_default();
    let schema = versions
        .iter()
        .find(|v| v["name"].as_str() == Some(preferred.as_str()))
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
        .filter(|s| s.is_object())
        .map(Arc::new);
    let version_schemas = versions
        .iter()
        .filter(|v| v["served"] != Value::Bool(false))
        .filter_map(|v| {
            let schema = &v["schema"]["openAPIV3Schema"];
            Some((v["name"].as_str()?.to_string(), Arc::new(schema.clone())))
                .filter(|_| schema.is_object())
        })
        .collect();
    let printer_columns = versions
        .iter()
        .find(|v| v["name"].as_str() == Some(preferred.as_str()))
        .and_then(|v| v["additionalPrinterColumns"].as_array().cloned())
        .unwrap_or_default();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ResourceType {
        group,
        versions: served,
        singular: names["singular"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| kind.to_lowercase()),
        list_kind: names["listKind"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("{kind}List")),
        plural,
        kind,
        namespaced,
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        has_status,
        // Custom resources always carry a generation on the real server.
        tracks_generation: true,
        custom: true,
        printer_columns,
        schema,
        version_schemas,
    })
}
