//! Structural-schema validation of custom resources, as apiextensions-apiserver runs kube-openapi's
//! validator on every write: `type`, `nullable`, `x-kubernetes-int-or-string`, `enum`, `format`,
//! `maxLength`/`minLength`/`pattern`, `maximum`/`minimum` (exclusive too)/`multipleOf`,
//! `maxItems`/`minItems`/`items`, `maxProperties`/`minProperties`/`required`/`properties`/
//! `additionalProperties`, `allOf`, and the `apiVersion`/`kind` an `x-kubernetes-embedded-resource`
//! must carry. Root `metadata` is checked only against the schema's `name`/`generateName`.
//!
//! Failures are one 422 Invalid with the real causes and wording, e.g.
//! `spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`.
//! The object is first coerced (pruned, defaulted: [`crate::prune::coerce`]) like the real decoder.

use serde_json::Value;

use crate::gofmt::{go_float, go_quote, go_value};
use crate::prune;
use crate::registry::ResourceType;
use crate::status::{ApiError, ApiResult};

/// `(reason, field, message)` of one failed check.
type Cause = (&'static str, String, String);

/// Coerces a custom resource about to be stored to the schema of its version and validates it;
/// a no-op for kinds without a schema.
pub fn admit(rt: &ResourceType, name: &str, obj: &mut Value) -> ApiResult<()> {
    let version = obj["apiVersion"]
        .as_str()
        .and_then(|av| av.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    let Some(schema) = rt.schema_for(&version) else {
        return Ok(());
    };
    prune::coerce(schema, obj);
    let mut causes = Vec::new();
    check(obj, schema, "", &mut causes);
    embedded(obj, schema, "", &mut causes);
    if causes.is_empty() {
        return Ok(());
    }
    // Like the real server, CEL rules are not evaluated over an object with such errors.
    let blocking = causes.iter().any(|(r, _, _)| {
        matches!(
            *r,
            "FieldValueNotSupported"
                | "FieldValueRequired"
                | "FieldValueTooLong"
                | "FieldValueTooMany"
                | "FieldValueTypeInvalid"
        )
    });
    if blocking && mentions(schema, "x-kubernetes-validations") {
        causes.push(("FieldValueInvalid", "<nil>".into(), "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into()));
    }
    Err(ApiError::invalid_with_reasons(
        &rt.group, &rt.kind, name, causes,
    ))
}

/// Whether the schema or one of its descendants carries `key`.
fn mentions(schema: &Value, key: &str) -> bool {
    match schema {
        Value::Object(m) => m.contains_key(key) || m.values().any(|v| mentions(v, key)),
        Value::Array(a) => a.iter().any(|v| mentions(v, key)),
        _ => false,
    }
}

/// `a.b` (or `b` at the root), as kube-openapi names nested fields.
pub fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_invalid(path: &str, actual: &str, expected: &str) -> Cause {
    (
        "FieldValueTypeInvalid",
        field(path),
        format!(
            "Invalid value: {}: {path} in body must be of type {expected}: {}",
            go_quote(actual),
            go_quote(actual)
        ),
    )
}

fn invalid(path: &str, value: &Value, detail: String) -> Cause {
    (
        "FieldValueInvalid",
        field(path),
        format!("Invalid value: {}: {detail}", go_value(value)),
    )
}

fn too_many(path: &str, actual: u64, max: u64) -> Cause {
    let items = if max == 1 { "item" } else { "items" };
    (
        "FieldValueTooMany",
        field(path),
        format!("Too many: {actual}: must have at most {max} {items}"),
    )
}

/// An empty path is the object itself: field.Path prints that as `<nil>`.
fn field(path: &str) -> String {
    if path.is_empty() {
        "<nil>".into()
    } else {
        path.to_string()
    }
}

/// The schema's types: `x-kubernetes-int-or-string` is `integer,string`.
fn types(s: &Value) -> Option<String> {
    if s["x-kubernetes-int-or-string"] == true {
        return Some("integer,string".into());
    }
    s["type"].as_str().map(String::from)
}

fn uint(s: &Value, key: &str) -> Option<u64> {
    s.get(key).and_then(Value::as_u64)
}

/// One value against one schema node, in kube-openapi's order: type, allOf, string, format,
/// number, array, enum, object.
fn check(v: &Value, s: &Value, path: &str, out: &mut Vec<Cause>) {
    let expected = types(s);
    if v.is_null() {
        if expected.is_some() && s["nullable"] != true {
            out.push(type_invalid(path, "null", &expected.unwrap_or_default()));
        }
        check_enum(v, s, path, out);
        return;
    }
    if let Some(expected) = &expected {
        let actual = json_type(v);
        let allowed: Vec<&str> = expected.split(',').collect();
        let whole_float = v.as_f64().is_some_and(|f| f.fract() == 0.0);
        let ok = allowed.contains(&actual)
            || (actual == "number" && whole_float && allowed.contains(&"integer"))
            || (actual == "integer" && allowed.contains(&"number"));
        if !ok {
            out.push(type_invalid(path, actual, expected));
        }
    }
    for sub in s["allOf"].as_array().into_iter().flatten() {
        check(v, sub, path, out);
    }
    match v {
        Value::String(text) => check_string(v, text, s, path, out),
        Value::Number(_) => check_number(v, s, path, out),
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items").filter(|i| i.is_object()) {
                for (i, item) in items.iter().enumerate() {
                    check(item, item_schema, &format!("{path}[{i}]"), out);
                }
            }
            let n = items.len() as u64;
            if let Some(min) = uint(s, "minItems").filter(|m| n < *m) {
                out.push(invalid(
                    path,
                    &Value::from(n),
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = uint(s, "maxItems").filter(|m| n > *m) {
                out.push(too_many(path, n, max));
            }
        }
        _ => {}
    }
    check_enum(v, s, path, out);
    if let Value::Object(map) = v {
        check_object(map, s, path, out);
    }
}

fn check_enum(v: &Value, s: &Value, path: &str, out: &mut Vec<Cause>) {
    let Some(allowed) = s["enum"].as_array().filter(|e| !e.is_empty()) else {
        return;
    };
    let same = |e: &Value| match (e.as_f64(), v.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => e == v && !v.is_null(),
    };
    if allowed.iter().any(same) {
        return;
    }
    let listed: Vec<String> = allowed
        .iter()
        .map(|e| go_quote(&e.as_str().map_or_else(|| e.to_string(), String::from)))
        .collect();
    out.push((
        "FieldValueNotSupported",
        field(path),
        format!(
            "Unsupported value: {}: supported values: {}",
            go_value(v),
            listed.join(", ")
        ),
    ));
}

fn check_string(v: &Value, text: &str, s: &Value, path: &str, out: &mut Vec<Cause>) {
    let len = text.chars().count() as u64;
    if let Some(max) = uint(s, "maxLength").filter(|m| len > *m) {
        let bytes = if max == 1 { "byte" } else { "bytes" };
        out.push((
            "FieldValueTooLong",
            field(path),
            format!("Too long: may not be more than {max} {bytes}"),
        ));
    } else if let Some(min) = uint(s, "minLength").filter(|m| len < *m) {
        out.push(invalid(
            path,
            v,
            format!("{path} in body should be at least {min} chars long"),
        ));
    } else if let Some(pattern) = s["pattern"].as_str() {
        // A pattern the regex engine cannot compile matches nothing, as a CRD could not carry it.
        if !regex::Regex::new(pattern).is_ok_and(|re| re.is_match(text)) {
            out.push(invalid(
                path,
                v,
                format!("{path} in body should match '{pattern}'"),
            ));
        }
    }
    if let Some(format) = s["format"].as_str() {
        if !format_ok(format, text) {
            out.push((
                "FieldValueTypeInvalid",
                field(path),
                format!(
                    "Invalid value: {}: {path} in body must be of type {format}: {}",
                    go_quote(text),
                    go_quote(text)
                ),
            ));
        }
    }
}

/// The string formats the real server checks that are cheap to check here; other formats pass.
fn format_ok(format: &str, text: &str) -> bool {
    use base64::Engine;
    let hex_groups = |t: &str| {
        let groups: Vec<&str> = t.split('-').collect();
        groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups
                .iter()
                .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
    };
    let uuid_version = |t: &str, version: char| {
        hex_groups(t)
            && t[14..15].starts_with(version)
            && t[19..20].chars().all(|c| "89abAB".contains(c))
    };
    match format {
        "uuid" => hex_groups(text),
        "uuid3" => uuid_version(text, '3'),
        "uuid4" => uuid_version(text, '4'),
        "uuid5" => uuid_version(text, '5'),
        "byte" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
        "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
        "ipv4" => text.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => text.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => text.split_once('/').is_some_and(|(ip, bits)| {
            let max = if ip.contains(':') { 128 } else { 32 };
            ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= max)
        }),
        _ => true,
    }
}

fn check_number(v: &Value, s: &Value, path: &str, out: &mut Vec<Cause>) {
    let data = v.as_f64().unwrap_or_default();
    // Integers are compared (and bounds printed) as integers, like kube-openapi's native checks.
    let bound = |b: f64| {
        if v.is_f64() {
            go_float(b)
        } else {
            (b as i64).to_string()
        }
    };
    if let Some(m) = s["multipleOf"].as_f64().filter(|m| *m != 0.0) {
        let q = data / m;
        if (q - q.round()).abs() > 1e-9 * q.abs().max(1.0) {
            out.push(invalid(
                path,
                v,
                format!("{path} in body should be a multiple of {}", bound(m)),
            ));
        }
    }
    if let Some(max) = s["maximum"].as_f64() {
        let exclusive = s["exclusiveMaximum"] == true;
        if data > max || (exclusive && data == max) {
            let op = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            out.push(invalid(
                path,
                v,
                format!("{path} in body should be {op} {}", bound(max)),
            ));
        }
    }
    if let Some(min) = s["minimum"].as_f64() {
        let exclusive = s["exclusiveMinimum"] == true;
        if data < min || (exclusive && data == min) {
            let op = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            out.push(invalid(
                path,
                v,
                format!("{path} in body should be {op} {}", bound(min)),
            ));
        }
    }
}

fn check_object(map: &serde_json::Map<String, Value>, s: &Value, path: &str, out: &mut Vec<Cause>) {
    let n = map.len() as u64;
    // Both are reported with the bound as the value, and stop the object's other checks.
    if let Some(min) = uint(s, "minProperties").filter(|m| n < *m) {
        out.push(invalid(
            path,
            &Value::from(min),
            format!("{path} in body should have at least {min} properties"),
        ));
        return;
    }
    if let Some(max) = uint(s, "maxProperties").filter(|m| n > *m) {
        out.push(too_many(path, max, max));
        return;
    }
    let props = s["properties"].as_object();
    let declared = |k: &str| props.is_some_and(|p| p.contains_key(k));
    if let Some(additional) = s.get("additionalProperties").filter(|a| a.is_object()) {
        for (k, v) in map.iter().filter(|(k, _)| !declared(k)) {
            check(v, additional, &format!("{path}.{k}"), out);
        }
    }
    for (k, prop) in props.into_iter().flatten() {
        let Some(v) = map.get(k) else { continue };
        if path.is_empty() && k == "metadata" {
            // The real server validates metadata as ObjectMeta; the schema may only constrain these.
            for f in ["name", "generateName"] {
                if let (Some(fv), Some(fs)) = (v.get(f), prop["properties"].get(f)) {
                    check(fv, fs, &format!("metadata.{f}"), out);
                }
            }
            continue;
        }
        check(v, prop, &child(path, k), out);
    }
    for k in s["required"].as_array().into_iter().flatten() {
        let k = k.as_str().unwrap_or_default();
        if !map.contains_key(k) {
            out.push((
                "FieldValueRequired",
                child(path, k),
                "Required value".into(),
            ));
        }
    }
}

/// `x-kubernetes-embedded-resource` objects below the root must say what they are. Paths here are
/// field.Path's: map entries are `[key]`.
fn embedded(v: &Value, s: &Value, path: &str, out: &mut Vec<Cause>) {
    match v {
        Value::Object(map) => {
            if !path.is_empty() && s["x-kubernetes-embedded-resource"] == true {
                for f in ["apiVersion", "kind"] {
                    match map.get(f) {
                        None => out.push((
                            "FieldValueRequired",
                            child(path, f),
                            "Required value".into(),
                        )),
                        Some(Value::String(t)) if t.is_empty() => out.push((
                            "FieldValueRequired",
                            child(path, f),
                            "Required value".into(),
                        )),
                        Some(Value::String(_)) => {}
                        Some(other) => {
                            out.push(invalid(&child(path, f), other, "must be a string".into()))
                        }
                    }
                }
            }
            for (k, x) in map {
                if let Some(p) = s["properties"].get(k) {
                    embedded(x, p, &child(path, k), out);
                } else if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    embedded(x, a, &format!("{path}[{k}]"), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items").filter(|i| i.is_object()) {
                for (i, x) in items.iter().enumerate() {
                    embedded(x, item_schema, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}
