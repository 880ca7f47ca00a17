//! `meta.k8s.io/v1` Table responses for `kubectl get` (which asks with
//! `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`). Columns follow the real server's
//! printers for the kinds here (abridged) and a CRD's `additionalPrinterColumns`.

use serde::Serialize;
use serde_json::{json, Value};

use crate::present::Presented;
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

/// Evaluates the JSONPath forms printer columns use: `.a.b.c`, `.a[0].b`, and filters such as
/// `.status.conditions[?(@.type=="Ready")].status` (the first match).
fn json_path<'a>(obj: &'a Value, path: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    let mut cur = obj;
    let mut rest = path.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                cur = &cur[&r[..end]];
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(close) = r.find(']') else {
                return &NULL;
            };
            let inner = &r[..close];
            rest = &r[close + 1..];
            cur = match inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                Some(filter) => {
                    let Some((field, want)) = filter.split_once("==") else {
                        return &NULL;
                    };
                    let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                    cur.as_array()
                        .and_then(|items| {
                            items.iter().find(|i| {
                                json_path(i, &format!(".{}", field.trim())).as_str() == Some(want)
                            })
                        })
                        .unwrap_or(&NULL)
                }
                None => match inner.parse::<usize>() {
                    Ok(i) => &cur[i],
                    Err(_) => return &NULL,
                },
            };
        } else {
            return &NULL;
        }
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

/// A `meta.k8s.io/v1` Table, serialized from the objects it shows (rows borrow them).
#[derive(Serialize)]
pub struct Table<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Value,
    #[serde(rename = "columnDefinitions")]
    column_definitions: Vec<Value>,
    rows: Vec<Row<'a>>,
}

#[derive(Serialize)]
struct Row<'a> {
    cells: Vec<Value>,
    /// `null` (`includeObject=None`), `PartialObjectMetadata` (default) or the object.
    object: Option<Presented<'a>>,
}

/// Builds a Table of stored objects, served as `api_version`. `include_object` is the
/// `includeObject` query parameter (`None` | `Metadata` (default) | `Object`).
pub fn table<'a>(
    rt: &ResourceType,
    objs: &[&'a Value],
    api_version: &'a str,
    list_meta: Value,
    include_object: &str,
) -> Table<'a> {
    let rows = objs
        .iter()
        .map(|o| Row {
            cells: cells(rt, o),
            object: match include_object {
                "None" => None,
                "Object" => Some(Presented::Full {
                    obj: o,
                    api_version,
                }),
                _ => Some(Presented::Metadata(o)),
            },
        })
        .collect();
    Table {
        kind: "Table",
        api_version: "meta.k8s.io/v1",
        metadata: list_meta,
        column_definitions: columns(rt),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::json_path;
    use serde_json::json;

    #[test]
    fn printer_column_paths_with_indexes_and_filters() {
        let o = json!({"spec": {"region": "us-east-1"}, "status": {"conditions": [
            {"type": "Synced", "status": "False"},
            {"type": "Ready", "status": "True", "reason": "SecretSynced"}
        ]}});
        assert_eq!(json_path(&o, ".spec.region"), "us-east-1");
        assert_eq!(
            json_path(&o, ".status.conditions[1].reason"),
            "SecretSynced"
        );
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            "True"
        );
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type=='Synced')].status"),
            "False"
        );
        assert!(json_path(&o, ".status.conditions[?(@.type==\"Gone\")].status").is_null());
        assert!(json_path(&o, ".spec.missing.deeper").is_null());
    }
}
