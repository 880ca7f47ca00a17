//! Patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and strategic merge patch.
//!
//! Strategic merge patch follows the real server's rules for the lists this server's built-in
//! types carry: lists of containers, volumes, env vars, image pull secrets and the like merge by
//! their `name`; `ports` by `containerPort`, `volumeMounts` by `mountPath`,
//! `metadata.ownerReferences` by `uid`; `metadata.finalizers` merges as a set. Every other list
//! is replaced whole (the real server consults the OpenAPI schema for more keys). The directives
//! `$patch: replace|delete`, `$retainKeys`, `$deleteFromPrimitiveList/<field>` are honoured and
//! `$setElementOrder/<field>` is accepted and ignored (order is taken from the patch merge).

use serde_json::{Map, Value};

use crate::status::{ApiError, ApiResult};

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// RFC 6902. A failed `test` or a path that does not exist is 422 Invalid like the real
/// server; a body that is not a JSON patch is 400. As on the real server, `test` of a missing
/// path against `null` succeeds (kube-runtime's finalizer helper relies on it).
pub fn json_patch(target: &mut Value, patch: &Value, kind: &str, name: &str) -> ApiResult<()> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    for op in ops.0 {
        if let json_patch::PatchOperation::Test(t) = &op {
            if t.value.is_null() && target.pointer(t.path.as_str()).is_none() {
                continue;
            }
        }
        json_patch::patch(target, std::slice::from_ref(&op)).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("{kind} \"{name}\" is invalid: the server rejected our request due to an error in our request: {e}"),
            )
        })?;
    }
    Ok(())
}

/// Merge key for a list field of the built-in types, by field name.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => Some("name"),
        "readinessGates" => Some("conditionType"),
        "conditions" => Some("type"),
        "ports" => Some("containerPort"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        _ => None,
    }
}

/// Primitive lists that merge as sets.
fn primitive_merge(field: &str) -> bool {
    matches!(field, "finalizers")
}

pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> ApiResult<()> {
    smp_map(target, patch)
}

fn smp_map(target: &mut Value, patch: &Value) -> ApiResult<()> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(|v| v.as_str()) {
        Some("replace") => {
            let mut clean = p.clone();
            clean.remove("$patch");
            *target = Value::Object(clean);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other:?}"
            )))
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (t.get_mut(field), v) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(o) if o.get("$patch").and_then(|x| x.as_str()) == Some("delete") => {
                t.remove(k);
            }
            Value::Object(_) => {
                smp_map(t.entry(k.clone()).or_insert(Value::Null), v)?;
            }
            Value::Array(items) => {
                let cur = t.entry(k.clone()).or_insert(Value::Null);
                smp_list(cur, items, k)?;
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(|x| x.as_str()).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(())
}

fn smp_list(target: &mut Value, items: &[Value], field: &str) -> ApiResult<()> {
    // `{"$patch": "replace"}` inside a list means: the rest of the list replaces the target.
    let replace = items
        .iter()
        .any(|i| i.get("$patch").and_then(|x| x.as_str()) == Some("replace"));
    let plain: Vec<Value> = items
        .iter()
        .filter(|i| i.get("$patch").and_then(|x| x.as_str()) != Some("replace"))
        .cloned()
        .collect();
    if replace {
        *target = Value::Array(plain);
        return Ok(());
    }
    if primitive_merge(field) {
        let mut cur = target.as_array().cloned().unwrap_or_default();
        for i in plain {
            if !cur.contains(&i) {
                cur.push(i);
            }
        }
        *target = Value::Array(cur);
        return Ok(());
    }
    let Some(key) = merge_key(field) else {
        *target = Value::Array(plain);
        return Ok(());
    };
    if !plain.iter().all(|i| i.is_object()) {
        *target = Value::Array(plain);
        return Ok(());
    }
    let mut cur = target.as_array().cloned().unwrap_or_default();
    for item in plain {
        let k = item.get(key).cloned().ok_or_else(|| {
            ApiError::bad_request(format!(
                "map: {item} does not contain declared merge key: {key}"
            ))
        })?;
        let pos = cur.iter().position(|c| c.get(key) == Some(&k));
        let delete = item.get("$patch").and_then(|x| x.as_str()) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                cur.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => smp_map(&mut cur[i], &item)?,
            (None, false) => {
                let mut fresh = Value::Null;
                smp_map(&mut fresh, &item)?;
                cur.push(fresh);
            }
        }
    }
    *target = Value::Array(cur);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut t = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}
        ], "tolerations": [{"key": "x"}]}});
        strategic_merge_patch(
            &mut t,
            &json!({"spec": {"containers": [
                {"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"},
                {"name": "a", "$patch": "delete"}
            ], "tolerations": [{"key": "y"}]}}),
        )
        .unwrap();
        assert_eq!(
            t,
            json!({"spec": {"containers": [
                {"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}
            ], "tolerations": [{"key": "y"}]}})
        );
    }
}
