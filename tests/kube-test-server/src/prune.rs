//! Unknown fields of custom resources, as the real server's decoder handles them.
//!
//! Every object written is coerced to its CRD schema ([`coerce`]): fields the schema does not
//! declare are pruned (kept under `x-kubernetes-preserve-unknown-fields`, and `apiVersion`/`kind`/
//! `metadata` at the root and in `x-kubernetes-embedded-resource`s, whose `metadata` is cut to
//! ObjectMeta's fields), nulls of non-nullable fields without a default are dropped, and defaults
//! are filled in.
//!
//! What the pruned fields of a request cost follows its `fieldValidation` ([`FieldValidation`]):
//! - Strict: a create or update answers 400 (`Widget in version "v1" cannot be handled as a
//!   Widget: strict decoding error: unknown field "spec.x"`), a merge or JSON patch 422 on the
//!   patched object (`patch: Invalid value: "{...}": strict decoding error: ...`);
//! - Warn (the default when absent): stored pruned, answered with one `Warning: 299 - "unknown
//!   field \"spec.x\""` header per field;
//! - Ignore: stored pruned, silently.
//!
//! Server-side apply differs: the applied configuration is converted to the schema's types first,
//! and a field the schema does not declare fails that conversion, whatever the directive (500,
//! `failed to create typed patch object (...): .spec.x: field not declared in schema`).

use serde_json::Value;

use crate::gofmt::go_quote;
use crate::registry::ResourceType;
use crate::schema::child;
use crate::status::{ApiError, ApiResult};

const TYPE_META: [&str; 3] = ["apiVersion", "kind", "metadata"];

const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// The `fieldValidation` directive of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    /// Absent or empty means Warn, the server's default. `options` names the options kind the
    /// real server reports a bad value against (`CreateOptions`, `UpdateOptions`, `PatchOptions`).
    pub fn from_query(value: Option<&String>, options: &str) -> ApiResult<Self> {
        match value.map(String::as_str) {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::invalid(
                "meta.k8s.io",
                options,
                "",
                vec![(
                    "fieldValidation".into(),
                    format!(
                        "Unsupported value: {}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
                        go_quote(other)
                    ),
                )],
            )),
        }
    }

    /// The warnings for `unknown` fields, or `refused` with their strict decoding error.
    fn settle(
        self,
        unknown: Vec<String>,
        refused: impl FnOnce(String) -> ApiError,
    ) -> ApiResult<Vec<String>> {
        let errors: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        match self {
            _ if errors.is_empty() => Ok(vec![]),
            FieldValidation::Ignore => Ok(vec![]),
            FieldValidation::Warn => Ok(errors),
            FieldValidation::Strict => Err(refused(format!(
                "strict decoding error: {}",
                errors.join(", ")
            ))),
        }
    }
}

/// Prunes a create or update body; returns the warnings to send.
pub fn request_object(
    rt: &ResourceType,
    version: &str,
    mode: FieldValidation,
    obj: &mut Value,
) -> ApiResult<Vec<String>> {
    let Some(schema) = rt.schema_for(version) else {
        return Ok(vec![]);
    };
    let unknown = coerce(schema, obj);
    let kind = obj["kind"].as_str().unwrap_or(&rt.kind).to_string();
    let body_version = obj["apiVersion"]
        .as_str()
        .and_then(|av| av.rsplit('/').next())
        .unwrap_or(version)
        .to_string();
    mode.settle(unknown, |err| {
        ApiError::bad_request(format!(
            "{kind} in version {} cannot be handled as a {}: {err}",
            go_quote(&body_version),
            rt.kind
        ))
    })
}

/// Prunes the result of a merge or JSON patch; returns the warnings to send.
pub fn patched_object(
    rt: &ResourceType,
    version: &str,
    mode: FieldValidation,
    obj: &mut Value,
) -> ApiResult<Vec<String>> {
    let Some(schema) = rt.schema_for(version) else {
        return Ok(vec![]);
    };
    // Strict quotes the patched object, before pruning, in its error.
    let patched = (mode == FieldValidation::Strict).then(|| obj.to_string());
    let unknown = coerce(schema, obj);
    mode.settle(unknown, |err| {
        let patched = patched.unwrap_or_default();
        ApiError::invalid(
            "",
            "",
            "",
            vec![(
                "patch".into(),
                format!("Invalid value: {}: {err}", go_quote(&patched)),
            )],
        )
    })
}

/// Refuses an applied configuration with fields the schema does not declare.
pub fn check_applied(rt: &ResourceType, version: &str, applied: &Value) -> ApiResult<()> {
    let Some(schema) = rt.schema_for(version) else {
        return Ok(());
    };
    let mut undeclared = Vec::new();
    find_undeclared(applied, Some(schema), "", true, &mut undeclared);
    undeclared.sort();
    if undeclared.is_empty() {
        return Ok(());
    }
    let errors: Vec<String> = undeclared
        .iter()
        .map(|p| format!("{p}: field not declared in schema"))
        .collect();
    let listed = if errors.len() == 1 {
        errors[0].clone()
    } else {
        format!("errors:\n  {}", errors.join("\n  "))
    };
    let meta = &applied["metadata"];
    Err(ApiError::new(
        500,
        "",
        format!(
            "failed to create typed patch object ({}/{}; {}/{version}, Kind={}): {listed}",
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default(),
            rt.group,
            rt.kind
        ),
    ))
}

/// Coerces a whole custom resource to its schema; returns the unknown fields it dropped, in the
/// order the real server lists them (root metadata, then schema pruning, then embedded metadata).
pub fn coerce(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = cut_metadata(obj, "");
    let mut pruned = Vec::new();
    prune(obj, Some(schema), "", true, &mut pruned);
    pruned.sort();
    unknown.extend(pruned);
    drop_nulls(obj, schema);
    let mut embedded = Vec::new();
    embedded_metadata(obj, schema, "", &mut embedded);
    embedded.sort();
    unknown.extend(embedded);
    default(obj, schema);
    unknown
}

/// Removes `metadata` fields that are not ObjectMeta's.
fn cut_metadata(obj: &mut Value, path: &str) -> Vec<String> {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return vec![];
    };
    let mut unknown: Vec<String> = meta
        .keys()
        .filter(|k| !OBJECT_META.contains(&k.as_str()))
        .map(|k| child(&child(path, "metadata"), k))
        .collect();
    unknown.sort();
    meta.retain(|k, _| OBJECT_META.contains(&k.as_str()));
    unknown
}

fn flag(s: &Value, key: &str) -> bool {
    s[key] == true
}

/// The real pruning algorithm: an object keeps the properties its schema declares (or, with
/// `additionalProperties`, every key); no schema at all keeps no keys.
fn prune(v: &mut Value, s: Option<&Value>, path: &str, embedded: bool, out: &mut Vec<String>) {
    let preserve = s.is_some_and(|s| flag(s, "x-kubernetes-preserve-unknown-fields"));
    let embedded = embedded || s.is_some_and(|s| flag(s, "x-kubernetes-embedded-resource"));
    match v {
        Value::Object(map) => {
            let Some(s) = s else {
                out.extend(map.keys().map(|k| child(path, k)));
                map.clear();
                return;
            };
            let props = s["properties"].as_object();
            let additional = s.get("additionalProperties");
            map.retain(|k, x| {
                if embedded && TYPE_META.contains(&k.as_str()) {
                    return true;
                }
                let here = child(path, k);
                if let Some(p) = props.and_then(|p| p.get(k)) {
                    prune(x, Some(p), &here, false, out);
                    return true;
                }
                match additional {
                    Some(a @ Value::Object(_)) => prune(x, Some(a), &here, false, out),
                    Some(Value::Bool(true)) => {}
                    _ if preserve => {}
                    _ => {
                        out.push(here);
                        return false;
                    }
                }
                true
            });
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.get("items"));
            for (i, x) in items.iter_mut().enumerate() {
                prune(x, item_schema, &format!("{path}[{i}]"), false, out);
            }
        }
        _ => {}
    }
}

fn can_be_null(s: &Value) -> bool {
    flag(s, "nullable") || s.get("default").is_some()
}

/// Nulls where the schema allows none and has no default to put instead are dropped.
fn drop_nulls(v: &mut Value, s: &Value) {
    match v {
        Value::Object(map) => {
            let props = s["properties"].as_object();
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            map.retain(|k, x| match props.and_then(|p| p.get(k)).or(additional) {
                Some(p) if x.is_null() => can_be_null(p),
                Some(p) => {
                    drop_nulls(x, p);
                    true
                }
                None => true,
            });
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for x in items {
                    drop_nulls(x, item_schema);
                }
            }
        }
        _ => {}
    }
}

/// `metadata` of embedded resources is ObjectMeta too. Paths are field.Path's (`[key]` for map
/// entries).
fn embedded_metadata(v: &mut Value, s: &Value, path: &str, out: &mut Vec<String>) {
    if !path.is_empty() && flag(s, "x-kubernetes-embedded-resource") {
        out.extend(cut_metadata(v, path));
    }
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if let Some(p) = s["properties"].get(k) {
                    embedded_metadata(x, p, &child(path, k), out);
                } else if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    embedded_metadata(x, a, &format!("{path}[{k}]"), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for (i, x) in items.iter_mut().enumerate() {
                    embedded_metadata(x, item_schema, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Fills in `default`s of absent (or null, where null is not allowed) fields of objects that
/// exist, and of list items; then defaults inside, including inside the defaults just set.
fn default(v: &mut Value, s: &Value) {
    match v {
        Value::Object(map) => {
            let props = s["properties"].as_object();
            for (k, p) in props.into_iter().flatten() {
                if let Some(d) = p.get("default").filter(|_| !map.contains_key(k)) {
                    map.insert(k.clone(), d.clone());
                }
            }
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            for (k, x) in map.iter_mut() {
                if let Some(p) = props.and_then(|p| p.get(k)).or(additional) {
                    fill(x, p);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for x in items {
                    fill(x, item_schema);
                }
            }
        }
        _ => {}
    }
}

/// A null that may not be null takes the default; then defaults apply inside.
fn fill(x: &mut Value, s: &Value) {
    if let Some(d) = s.get("default") {
        if x.is_null() && !flag(s, "nullable") {
            *x = d.clone();
        }
    }
    default(x, s);
}

/// Fields of an applied configuration that the schema's type does not declare, as the typed
/// conversion names them (`.spec.x`, `.spec.list[0].y`, `.spec.ports[name="http"].z`).
fn find_undeclared(
    v: &Value,
    s: Option<&Value>,
    path: &str,
    embedded: bool,
    out: &mut Vec<String>,
) {
    // No schema below here means anything goes (an untyped, preserved subtree).
    let Some(s) = s else { return };
    let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
    let embedded = embedded || flag(s, "x-kubernetes-embedded-resource");
    match v {
        Value::Object(map) => {
            let props = s["properties"].as_object();
            let additional = s.get("additionalProperties");
            for (k, x) in map {
                let here = format!("{path}.{k}");
                if embedded && (k == "apiVersion" || k == "kind") {
                    continue;
                }
                if embedded && k == "metadata" {
                    if let Some(meta) = x.as_object() {
                        out.extend(
                            meta.keys()
                                .filter(|f| !OBJECT_META.contains(&f.as_str()))
                                .map(|f| format!("{here}.{f}")),
                        );
                    }
                    continue;
                }
                match (props.and_then(|p| p.get(k)), additional) {
                    (Some(p), _) => find_undeclared(x, Some(p), &here, false, out),
                    (None, Some(a @ Value::Object(_))) => {
                        find_undeclared(x, Some(a), &here, false, out)
                    }
                    (None, Some(Value::Bool(true))) => {}
                    _ if preserve => {}
                    _ => out.push(here),
                }
            }
        }
        Value::Array(items) => {
            let keys: Vec<&str> = s["x-kubernetes-list-map-keys"]
                .as_array()
                .filter(|_| s["x-kubernetes-list-type"] == "map")
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for (i, x) in items.iter().enumerate() {
                let element = if keys.is_empty() {
                    format!("[{i}]")
                } else {
                    let kv: Vec<String> = keys.iter().map(|k| format!("{k}={}", x[*k])).collect();
                    format!("[{}]", kv.join(","))
                };
                find_undeclared(x, s.get("items"), &format!("{path}{element}"), false, out);
            }
        }
        _ => {}
    }
}
