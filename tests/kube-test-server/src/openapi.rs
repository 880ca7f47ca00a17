//! A skeletal OpenAPI v3 (`/openapi/v3`, `/openapi/v3/{api|apis/g}/{v}`): paths and operations
//! only, no schemas.
//!
//! kubectl validates manifests before sending them: it looks up the PATCH operation of the
//! object's group-version-kind in the v3 document and, when that operation accepts the
//! `fieldValidation` query parameter, leaves validation to the server instead of downloading
//! schemas. Publishing exactly that much keeps `kubectl apply` working without `--validate=false`.
//! `/openapi/v2` stays 404.

use serde_json::{json, Map, Value};

use crate::registry::Registry;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

pub fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = vec![(String::new(), "v1".into())];
    for (g, vs) in reg.groups() {
        for v in vs {
            gvs.push((g.clone(), v));
        }
    }
    for (g, v) in gvs {
        let p = gv_path(&g, &v);
        // The hash only has to change when the document does; the served set is enough.
        let hash = reg
            .in_group_version(&g, &v)
            .map(|t| t.plural.len() + t.kind.len())
            .sum::<usize>();
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash:016X}")}),
        );
    }
    json!({"paths": paths})
}

pub fn group_version(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    let mut any = false;
    for t in reg.in_group_version(group, version) {
        any = true;
        let gvk = json!({"group": group, "version": version, "kind": t.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}},
        ]);
        let op = |action: &str| {
            json!({
                "operationId": format!("{action}{}", t.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            })
        };
        let base = if t.namespaced {
            format!(
                "/{}/namespaces/{{namespace}}/{}",
                gv_path(group, version),
                t.plural
            )
        } else {
            format!("/{}/{}", gv_path(group, version), t.plural)
        };
        paths.insert(
            format!("{base}/{{name}}"),
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
        paths.insert(base, json!({"get": op("list"), "post": op("post")}));
    }
    if !any {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::discovery::SERVER_MINOR)},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
