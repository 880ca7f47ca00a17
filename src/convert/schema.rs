//! Checks a document against the OpenAPI schema of an arnsync CRD as the API server would:
//! the structure (types, required fields, enums, bounds), naming every field the schema does
//! not know (which the API server would silently prune), then the CEL rules
//! (`x-kubernetes-validations`), which refuse the ESO fields arnsync declares but does not do.

use kube::core::cel::{ErrorKind, Validator};
use serde_json::Value;
use serde_yaml::{Mapping, Value as Yaml};

use super::Problem;

/// Every problem of `doc` against `schema`, the CRD's `openAPIV3Schema`, in document order.
/// `apiVersion`, `kind` and `metadata` are checked elsewhere (the typed object).
pub fn check(schema: &Value, doc: &Mapping) -> Vec<Problem> {
    let mut out = Vec::new();
    for (key, value) in doc {
        let key = name(key);
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match schema.pointer(&format!("/properties/{}", escape(&key))) {
            Some(s) => walk(s, value, &key, &mut out),
            None => out.push(unknown(&key)),
        }
    }
    required(schema, doc, "", &mut out);
    out
}

/// The CEL rules `doc` breaks. A rule that cannot be evaluated (it meets a field of the wrong
/// type, or one that is missing) counts only when the structure is right (`structural`).
pub fn rules(schema: &Value, doc: &Value, structural: bool) -> Vec<Problem> {
    let Err(errors) = Validator::new().validate(schema, doc, None) else {
        return Vec::new();
    };
    errors
        .into_vec()
        .into_iter()
        .filter(|e| structural || e.kind == ErrorKind::ValidationFailure)
        .map(|e| anchored(&e.field_path, &e.message))
        .collect()
}

/// A rule's message often starts with the path it is about, relative to where the rule sits
/// (`provider.aws.sessionTagsPolicy ...` for a rule on `spec`): then the message, completed
/// to the full path, says it all.
fn anchored(field: &str, message: &str) -> Problem {
    let lead = message.split([' ', ':']).next().unwrap_or_default();
    let segments: Vec<&str> = field.split('.').collect();
    for start in 0..segments.len() {
        let tail = segments[start..].join(".");
        let continues = lead
            .strip_prefix(tail.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']));
        if continues {
            let head = segments[..start].join(".");
            let full = if head.is_empty() {
                message.to_string()
            } else {
                format!("{head}.{message}")
            };
            return Problem::whole(full);
        }
    }
    Problem::at(field, message)
}

fn walk(schema: &Value, doc: &Yaml, path: &str, out: &mut Vec<Problem>) {
    let doc = match doc {
        Yaml::Tagged(tagged) => &tagged.value,
        plain => plain,
    };
    // The API server drops nulls of fields that are not nullable, and keeps nullable ones.
    if doc.is_null() {
        return;
    }
    if let Some(problem) = wrong_type(schema, doc) {
        out.push(Problem::at(path, problem));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !serde_json::to_value(doc).is_ok_and(|v| allowed.contains(&v)) {
            let names: Vec<String> = allowed.iter().filter_map(scalar).collect();
            out.push(Problem::at(
                path,
                format!(
                    "{} is not allowed: use one of {}",
                    serde_json::to_value(doc)
                        .ok()
                        .as_ref()
                        .and_then(scalar)
                        .unwrap_or_else(|| "this value".into()),
                    names.join(", ")
                ),
            ));
            return;
        }
    }
    bounds(schema, doc, path, out);
    match doc {
        Yaml::Sequence(items) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    walk(item, v, &format!("{path}[{i}]"), out);
                }
            }
        }
        Yaml::Mapping(fields) => {
            let properties = schema.get("properties");
            let additional = schema.get("additionalProperties");
            let open = schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            for (key, value) in fields {
                let key = name(key);
                let at = join(path, &key);
                match (properties.and_then(|p| p.get(&key)), additional) {
                    (Some(s), _) => walk(s, value, &at, out),
                    (None, Some(Value::Bool(true))) => {}
                    (None, Some(s)) if s.is_object() => walk(s, value, &at, out),
                    _ if open => {}
                    _ => out.push(unknown(&at)),
                }
            }
            required(schema, fields, path, out);
        }
        _ => {}
    }
}

fn required(schema: &Value, fields: &Mapping, path: &str, out: &mut Vec<Problem>) {
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if fields.get(name).is_none_or(Yaml::is_null) {
            out.push(Problem::at(
                join(path, name),
                "required by arnsync, but missing: add it",
            ));
        }
    }
}

fn unknown(path: &str) -> Problem {
    Problem::at(
        path,
        "arnsync has no such field (an External Secrets Operator feature it does not have): remove it",
    )
}

/// What is wrong with the type of `doc`, if anything.
fn wrong_type(schema: &Value, doc: &Yaml) -> Option<String> {
    let int = doc.as_i64().is_some() || doc.as_u64().is_some();
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let fits = match schema.get("type").and_then(Value::as_str) {
        _ if int_or_string => doc.is_string() || int,
        Some("object") => doc.is_mapping(),
        Some("array") => doc.is_sequence(),
        Some("string") => doc.is_string(),
        Some("integer") => int,
        Some("number") => doc.is_number(),
        Some("boolean") => doc.is_bool(),
        _ => true,
    };
    if fits {
        return None;
    }
    let want = schema.get("type").and_then(Value::as_str).unwrap_or("?");
    let hint = if want == "string" && !doc.is_mapping() && !doc.is_sequence() {
        ": quote it"
    } else {
        ""
    };
    Some(format!(
        "must be {} (found {}){hint}",
        article(want),
        describe(doc)
    ))
}

fn bounds(schema: &Value, doc: &Yaml, path: &str, out: &mut Vec<Problem>) {
    let num = |name: &str| schema.get(name).and_then(Value::as_f64);
    let mut fail = |what: String| out.push(Problem::at(path, what));
    match doc {
        Yaml::String(s) => {
            let len = s.chars().count() as f64;
            if let Some(max) = num("maxLength").filter(|m| len > *m) {
                fail(format!(
                    "is {len} characters long; at most {max} are allowed"
                ));
            }
            if num("minLength").is_some_and(|m| len < m) {
                fail("must not be empty".into());
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                if regex::Regex::new(pattern).is_ok_and(|re| !re.is_match(s)) {
                    fail(format!("{s:?} does not match {pattern}"));
                }
            }
        }
        Yaml::Number(n) => {
            let v = n.as_f64().unwrap_or_default();
            if let Some(min) = num("minimum").filter(|m| v < *m) {
                fail(format!("{n} is below the minimum {min}"));
            }
            if let Some(max) = num("maximum").filter(|m| v > *m) {
                fail(format!("{n} is above the maximum {max}"));
            }
        }
        Yaml::Sequence(items) => {
            if let Some(max) = num("maxItems").filter(|m| items.len() as f64 > *m) {
                fail(format!(
                    "has {} entries; at most {max} are allowed",
                    items.len()
                ));
            }
        }
        Yaml::Mapping(fields) => {
            if let Some(max) = num("maxProperties").filter(|m| fields.len() as f64 > *m) {
                fail(format!(
                    "has {} entries; at most {max} are allowed",
                    fields.len()
                ));
            }
        }
        _ => {}
    }
}

/// `spec.a`, `spec.data[".dockerconfigjson"]`: keys that are not plain names are quoted.
fn join(path: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

/// A JSON pointer token.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
        other => Some(other.to_string()),
    }
}

fn article(kind: &str) -> String {
    match kind {
        "object" => "a mapping".into(),
        "array" => "a list".into(),
        "integer" => "a whole number".into(),
        other => format!("a {other}"),
    }
}

/// The kind of a value, never the value: a manifest field may hold something sensitive.
fn describe(v: &Yaml) -> &'static str {
    match v {
        Yaml::Mapping(_) => "a mapping",
        Yaml::Sequence(_) => "a list",
        Yaml::String(_) => "a string",
        Yaml::Number(_) => "a number",
        Yaml::Bool(_) => "true or false",
        Yaml::Null | Yaml::Tagged(_) => "null",
    }
}

/// A mapping key as a name (YAML allows keys that are not strings).
fn name(key: &Yaml) -> String {
    match key {
        Yaml::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim_end()
            .to_string(),
    }
}
