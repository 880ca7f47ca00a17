//! Per-kind admission the real server performs and that callers rely on: name rules, label
//! syntax, Secret `stringData` folding / `type` immutability / base64 / size, ConfigMap keys and
//! size, and `immutable: true` for both; the CEL cost budget of CRDs (`cel_cost`).

use base64::Engine;
use serde_json::{json, Value};

use crate::registry::ResourceType;
use crate::status::{ApiError, ApiResult};

/// Largest total payload of a Secret or ConfigMap.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn invalid(rt: &ResourceType, name: &str, field: &str, msg: String) -> ApiError {
    ApiError::invalid(&rt.group, &rt.kind, name, vec![(field.to_string(), msg)])
}

pub fn validate_name(rt: &ResourceType, name: &str) -> ApiResult<()> {
    let ok = if rt.group.is_empty() && rt.plural == "namespaces" {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(
            rt,
            name,
            "metadata.name",
            format!("Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
        ))
    }
}

fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric()))
}

fn valid_qualified_name(k: &str) -> bool {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && valid_label_value(name)
}

fn validate_metadata(rt: &ResourceType, name: &str, obj: &Value) -> ApiResult<()> {
    if let Some(labels) = obj["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            if !valid_qualified_name(k) {
                return Err(invalid(rt, name, "metadata.labels", format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'")));
            }
            match v.as_str() {
                Some(s) if valid_label_value(s) => {}
                _ => {
                    return Err(invalid(rt, name, "metadata.labels", format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'")))
                }
            }
        }
    }
    if let Some(ann) = obj["metadata"]["annotations"].as_object() {
        if let Some((k, _)) = ann.iter().find(|(_, v)| !v.is_string()) {
            return Err(ApiError::bad_request(format!(
                "annotation {k:?} must be a string"
            )));
        }
    }
    Ok(())
}

fn valid_config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        && k != "."
        && k != ".."
}

/// Validates `data`-like maps; returns the total decoded size.
fn check_data_map(
    rt: &ResourceType,
    name: &str,
    obj: &Value,
    field: &str,
    base64_values: bool,
) -> ApiResult<usize> {
    let mut total = 0;
    let Some(map) = obj[field].as_object() else {
        if !obj[field].is_null() {
            return Err(ApiError::bad_request(format!("{field} must be a map")));
        }
        return Ok(0);
    };
    for (k, v) in map {
        if !valid_config_key(k) {
            return Err(invalid(rt, name, &format!("{field}[{k}]"), format!("Invalid value: \"{k}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")));
        }
        let s = v.as_str().ok_or_else(|| {
            ApiError::bad_request(format!("{field}[{k}]: expected a string value"))
        })?;
        if base64_values {
            // Like the real server, undecodable base64 fails JSON decoding: 400, not 422.
            let raw = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| {
                    ApiError::bad_request(format!("illegal base64 data in {field}[{k}]: {e}"))
                })?;
            total += raw.len();
        } else {
            total += s.len();
        }
    }
    Ok(total)
}

/// Applies kind-specific defaulting and validation to an object about to be stored.
pub fn prepare(rt: &ResourceType, old: Option<&Value>, new: &mut Value) -> ApiResult<()> {
    let name = new["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    validate_metadata(rt, &name, new)?;
    crate::schema::admit(rt, &name, new)?;
    if let Some(schema) = &rt.schema {
        check_cel(rt, &name, schema, old, new)?;
    }
    if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
        crate::cel_cost::check_crd(new)
            .map_err(|causes| ApiError::invalid(&rt.group, &rt.kind, &name, causes))?;
    }
    if !rt.group.is_empty() {
        return Ok(());
    }
    match rt.plural.as_str() {
        "secrets" => prepare_secret(rt, &name, old, new),
        "configmaps" => prepare_configmap(rt, &name, old, new),
        "namespaces" => {
            if new["spec"]["finalizers"].is_null() {
                new["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            let labels = new["metadata"]
                .as_object_mut()
                .expect("metadata")
                .entry("labels")
                .or_insert(json!({}));
            labels["kubernetes.io/metadata.name"] = json!(name);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Evaluates the CRD's CEL rules (`x-kubernetes-validations`, with `oldSelf` on updates) and
/// answers 422 Invalid naming each failing field and the rule's message.
fn check_cel(
    rt: &ResourceType,
    name: &str,
    schema: &Value,
    old: Option<&Value>,
    new: &Value,
) -> ApiResult<()> {
    match kube::core::cel::Validator::new().validate(schema, new, old) {
        Ok(()) => Ok(()),
        Err(errors) => {
            let causes = errors
                .into_vec()
                .iter()
                .map(|e| {
                    (
                        e.field_path.clone(),
                        format!("Invalid value: {}", e.message),
                    )
                })
                .collect();
            Err(ApiError::invalid(&rt.group, &rt.kind, name, causes))
        }
    }
}

fn check_immutable(
    rt: &ResourceType,
    name: &str,
    old: Option<&Value>,
    new: &Value,
) -> ApiResult<()> {
    let Some(old) = old else { return Ok(()) };
    if old["immutable"] == json!(true) {
        for f in ["data", "binaryData"] {
            if old[f] != new[f] {
                return Err(invalid(
                    rt,
                    name,
                    f,
                    "Forbidden: field is immutable when `immutable` is set".into(),
                ));
            }
        }
        if new["immutable"] != json!(true) {
            return Err(invalid(
                rt,
                name,
                "immutable",
                "Forbidden: field is immutable when `immutable` is set".into(),
            ));
        }
    }
    Ok(())
}

fn prepare_secret(
    rt: &ResourceType,
    name: &str,
    old: Option<&Value>,
    new: &mut Value,
) -> ApiResult<()> {
    // stringData is write-only: fold it into data (it wins over data for the same key).
    if let Some(sd) = new.as_object_mut().and_then(|o| o.remove("stringData")) {
        let Value::Object(sd) = sd else {
            return Err(ApiError::bad_request("stringData must be a map of strings"));
        };
        for (k, v) in sd {
            let s = v.as_str().ok_or_else(|| {
                ApiError::bad_request(format!("stringData[{k}]: expected a string"))
            })?;
            if !new["data"].is_object() {
                new["data"] = json!({});
            }
            new["data"][k.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(s));
        }
    }
    if new["type"].as_str().is_none_or(|t| t.is_empty()) {
        new["type"] = json!("Opaque");
    }
    if let Some(old) = old {
        if old["type"] != new["type"] {
            return Err(invalid(
                rt,
                name,
                "type",
                format!("Invalid value: {}: field is immutable", new["type"]),
            ));
        }
    }
    let total = check_data_map(rt, name, new, "data", true)?;
    if total > MAX_DATA_BYTES {
        return Err(invalid(
            rt,
            name,
            "data",
            format!("Too long: may not be more than {MAX_DATA_BYTES} bytes"),
        ));
    }
    check_immutable(rt, name, old, new)
}

fn prepare_configmap(
    rt: &ResourceType,
    name: &str,
    old: Option<&Value>,
    new: &mut Value,
) -> ApiResult<()> {
    let mut total = check_data_map(rt, name, new, "data", false)?;
    total += check_data_map(rt, name, new, "binaryData", true)?;
    if let (Some(d), Some(b)) = (new["data"].as_object(), new["binaryData"].as_object()) {
        if let Some(k) = d.keys().find(|k| b.contains_key(*k)) {
            return Err(invalid(
                rt,
                name,
                &format!("data[{k}]"),
                format!("Invalid value: \"{k}\": duplicate of key present in binaryData"),
            ));
        }
    }
    if total > MAX_DATA_BYTES {
        return Err(invalid(
            rt,
            name,
            "",
            format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
        ));
    }
    check_immutable(rt, name, old, new)
}
