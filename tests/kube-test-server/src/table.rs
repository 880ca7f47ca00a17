//! `meta.k8s.io/v1` Table responses for `kubectl get` (which asks with
//! `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`). Columns follow the real server's
//! printers for the kinds here (abridged) and a CRD's `additionalPrinterColumns`.

use serde_json::{json, Value};

use crate::registry::ResourceType;

fn col(name: &str, ty: &str, format: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": name, "priority": 0})
}

/// `kubectl`-style age: 45s, 3m, 5h, 2d.
fn age(created: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(created) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Evaluates simple JSONPaths of the form `.a.b.c` (what printer columns nearly always use).
fn json_path<'a>(obj: &'a Value, path: &str) -> &'a Value {
    let mut cur = obj;
    for part in path.trim_start_matches('.').split('.') {
        if part.is_empty() {
            continue;
        }
        cur = &cur[part];
    }
    cur
}

fn num(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn columns(rt: &ResourceType) -> Vec<Value> {
    let mut c = vec![col("Name", "string", "name")];
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "secrets") => {
            c.push(col("Type", "string", ""));
            c.push(col("Data", "integer", ""));
        }
        ("", "configmaps") => c.push(col("Data", "integer", "")),
        ("", "namespaces") => c.push(col("Status", "string", "")),
        ("apps", "deployments") => {
            c.push(col("Ready", "string", ""));
            c.push(col("Up-to-date", "integer", ""));
            c.push(col("Available", "integer", ""));
        }
        ("apps", "statefulsets") => c.push(col("Ready", "string", "")),
        _ if rt.custom && !rt.printer_columns.is_empty() => {
            for pc in &rt.printer_columns {
                c.push(col(
                    pc["name"].as_str().unwrap_or_default(),
                    pc["type"].as_str().unwrap_or("string"),
                    pc["format"].as_str().unwrap_or_default(),
                ));
            }
            return c;
        }
        _ => {}
    }
    c.push(col("Age", "string", ""));
    c
}

fn cells(rt: &ResourceType, o: &Value) -> Vec<Value> {
    let mut c = vec![o["metadata"]["name"].clone()];
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "secrets") => {
            c.push(o["type"].clone());
            c.push(json!(o["data"].as_object().map(|m| m.len()).unwrap_or(0)));
        }
        ("", "configmaps") => {
            let n = o["data"].as_object().map(|m| m.len()).unwrap_or(0)
                + o["binaryData"].as_object().map(|m| m.len()).unwrap_or(0);
            c.push(json!(n));
        }
        ("", "namespaces") => c.push(o["status"]["phase"].clone()),
        ("apps", "deployments") => {
            let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
            c.push(json!(format!(
                "{}/{}",
                num(&o["status"]["readyReplicas"]),
                want
            )));
            c.push(json!(num(&o["status"]["updatedReplicas"])));
            c.push(json!(num(&o["status"]["availableReplicas"])));
        }
        ("apps", "statefulsets") => {
            let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
            c.push(json!(format!(
                "{}/{}",
                num(&o["status"]["readyReplicas"]),
                want
            )));
        }
        _ if rt.custom && !rt.printer_columns.is_empty() => {
            for pc in &rt.printer_columns {
                let v = json_path(o, pc["jsonPath"].as_str().unwrap_or_default());
                let v = if pc["type"] == "date" {
                    json!(v.as_str().map(age).unwrap_or_default())
                } else {
                    v.clone()
                };
                c.push(v);
            }
            return c;
        }
        _ => {}
    }
    c.push(json!(age(o["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or_default())));
    c
}

/// Builds a Table. `include_object` is the `includeObject` query parameter
/// (`None` | `Metadata` (default) | `Object`).
pub fn table(rt: &ResourceType, objs: &[Value], list_meta: Value, include_object: &str) -> Value {
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let object = match include_object {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"],
                }),
            };
            json!({"cells": cells(rt, o), "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns(rt),
        "rows": rows,
    })
}
