//! Discovery documents built from the [`Registry`]: the legacy per-group documents
//! (`/api`, `/apis`, `/apis/{g}`, `/apis/{g}/{v}`) and the aggregated `apidiscovery.k8s.io/v2`
//! documents that kubectl and kube-rs ask for first via `Accept`.

use serde_json::{json, Value};

use crate::registry::{Registry, ResourceType, VERBS};

/// Minor version reported by `/version`; matches the k8s-openapi feature the tests compile with.
pub const SERVER_MINOR: &str = "34";

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": SERVER_MINOR,
        "emulationMajor": "1",
        "emulationMinor": SERVER_MINOR,
        "gitVersion": format!("v1.{SERVER_MINOR}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": vs[0].clone(),
    })
}

pub fn api_group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    let (g, vs) = reg.groups().into_iter().find(|(g, _)| g == group)?;
    let mut doc = group_doc(&g, &vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// ServiceAccounts have the TokenRequest subresource.
fn serves_tokens(t: &ResourceType) -> bool {
    t.group.is_empty() && t.plural == "serviceaccounts"
}

fn sorted(mut types: Vec<&ResourceType>) -> Vec<&ResourceType> {
    types.sort_by(|a, b| a.plural.cmp(&b.plural));
    types
}

/// `APIResourceList` for one group/version, with `{plural}/status` entries for the status
/// subresource. `None` when nothing is served there.
pub fn api_resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = sorted(reg.in_group_version(group, version).collect());
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in types {
        let mut r = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": VERBS,
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        if t.has_status {
            resources.push(json!({
                "name": format!("{}/status", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if serves_tokens(t) {
            resources.push(json!({
                "name": "serviceaccounts/token",
                "singularName": "",
                "namespaced": true,
                "group": "authentication.k8s.io",
                "version": "v1",
                "kind": "TokenRequest",
                "verbs": ["create"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

fn aggregated_group(reg: &Registry, group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = sorted(reg.in_group_version(group, v).collect())
                .into_iter()
                .map(|t| {
                    let kind = json!({"group": group, "version": v, "kind": t.kind});
                    let mut r = json!({
                        "resource": t.plural,
                        "responseKind": kind,
                        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": t.singular,
                        "verbs": VERBS,
                    });
                    if !t.short_names.is_empty() {
                        r["shortNames"] = json!(t.short_names);
                    }
                    if !t.categories.is_empty() {
                        r["categories"] = json!(t.categories);
                    }
                    if t.has_status {
                        r["subresources"] = json!([{
                            "subresource": "status",
                            "responseKind": kind,
                            "verbs": ["get", "patch", "update"],
                        }]);
                    }
                    if serves_tokens(t) {
                        r["subresources"] = json!([{
                            "subresource": "token",
                            "responseKind": {"group": "authentication.k8s.io", "version": "v1",
                                             "kind": "TokenRequest"},
                            "verbs": ["create"],
                        }]);
                    }
                    r
                })
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

/// Aggregated discovery (`APIGroupDiscoveryList`) for `/api` (core only) or `/apis` (all
/// named groups).
pub fn aggregated(reg: &Registry, core: bool, api_version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group(reg, "", &["v1".to_string()])]
    } else {
        reg.groups()
            .iter()
            .map(|(g, vs)| aggregated_group(reg, g, vs))
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": api_version,
        "metadata": {},
        "items": items,
    })
}
