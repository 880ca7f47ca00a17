//! Server-side apply (`application/apply-patch+yaml`).
//!
//! The applied configuration's leaf fields (see [`crate::fields`]) become the manager's
//! `Apply` entry. Merging works field by field on the live object:
//! - every applied field is set to the applied value;
//! - a field the manager applied last time but no longer sends is removed, unless another
//!   manager also owns it;
//! - a field whose applied value differs from the live value and that another manager owns is a
//!   conflict (409 with one cause per field) unless `force=true`, which moves ownership.
//!
//! Managers are identified like the real server does: by name, operation and subresource, so a
//! manager's earlier `Update` entry (e.g. from a create) can conflict with its own apply.

use serde_json::{json, Value};

use crate::fields::{self, Entry, FieldSet, Scope};
use crate::status::ApiError;

pub struct ApplyRequest<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub scope: Scope,
    pub force: bool,
    pub now: &'a str,
}

/// Returns the merged object (with updated `managedFields`) or a 409 listing the conflicts.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    req: &ApplyRequest<'_>,
    resource: (&str, &str),
    name: &str,
) -> Result<Value, ApiError> {
    let sub = req.scope.subresource();
    let empty = json!({});
    let live_v = live.unwrap_or(&empty);
    let mut entries = fields::read_entries(live_v);
    let applied_set = fields::leaves(applied, req.scope);
    let previous: FieldSet = entries
        .iter()
        .find(|e| e.same_manager(req.manager, "Apply", sub))
        .map(|e| e.fields.clone())
        .unwrap_or_default();

    // Conflicts: applied values that differ from live values owned by someone else.
    let mut conflicts: Vec<(String, String, Vec<String>)> = Vec::new();
    for p in &applied_set {
        if fields::get(live_v, p) == fields::get(applied, p) || merges_into(live_v, applied, p) {
            continue;
        }
        for e in &entries {
            if e.same_manager(req.manager, "Apply", sub) {
                continue;
            }
            if let Some(q) = e.fields.iter().find(|q| fields::overlaps(q, p)) {
                let shown = if q.len() > p.len() {
                    q.clone()
                } else {
                    p.clone()
                };
                conflicts.push((e.manager.clone(), e.api_version.clone(), shown));
            }
        }
    }
    if !conflicts.is_empty() && !req.force {
        return Err(conflict_error(resource, name, &conflicts));
    }

    let mut merged = live_v.clone();
    for p in &applied_set {
        if merges_into(live_v, applied, p) {
            continue;
        }
        let v = fields::get(applied, p).cloned().unwrap_or(Value::Null);
        fields::set(&mut merged, p, v);
    }
    for p in previous.difference(&applied_set) {
        let still_wanted = applied_set.iter().any(|a| fields::overlaps(a, p));
        let co_owned = entries.iter().any(|e| {
            !e.same_manager(req.manager, "Apply", sub)
                && e.fields.iter().any(|q| fields::overlaps(q, p))
        });
        if !still_wanted && !co_owned {
            fields::remove(&mut merged, p);
            // The structs that held it go too once empty, unless still applied or owned
            // (the real server prunes the named fields above a removed leaf the same way).
            for n in (1..p.len()).rev() {
                let q = &p[..n];
                let empty =
                    matches!(fields::get(&merged, q), Some(Value::Object(m)) if m.is_empty());
                let kept = applied_set.iter().any(|a| fields::overlaps(a, q))
                    || entries.iter().any(|e| {
                        !e.same_manager(req.manager, "Apply", sub)
                            && e.fields.iter().any(|f| fields::overlaps(f, q))
                    });
                if !empty || kept {
                    break;
                }
                fields::remove(&mut merged, q);
            }
        }
    }

    if req.force {
        // Forced fields move to this manager; equal-valued shared fields stay shared.
        for e in entries.iter_mut() {
            if e.same_manager(req.manager, "Apply", sub) {
                continue;
            }
            e.fields.retain(|q| {
                !applied_set.iter().any(|p| {
                    fields::overlaps(q, p)
                        && fields::get(live_v, p) != fields::get(applied, p)
                        && !merges_into(live_v, applied, p)
                })
            });
        }
    }
    match entries
        .iter_mut()
        .find(|e| e.same_manager(req.manager, "Apply", sub))
    {
        Some(e) => {
            if e.fields != applied_set {
                e.time = req.now.into();
            }
            e.fields = applied_set;
            e.api_version = req.api_version.into();
        }
        None => entries.push(Entry {
            manager: req.manager.into(),
            operation: "Apply".into(),
            api_version: req.api_version.into(),
            time: req.now.into(),
            subresource: sub.into(),
            fields: applied_set,
        }),
    }
    fields::write_entries(&mut merged, entries);
    Ok(merged)
}

/// An empty map applied where the live object has a map: maps merge, so it changes nothing
/// and conflicts with no one (only the map node itself becomes co-owned).
fn merges_into(live: &Value, applied: &Value, p: &[String]) -> bool {
    matches!(fields::get(applied, p), Some(Value::Object(m)) if m.is_empty())
        && matches!(fields::get(live, p), Some(Value::Object(_)))
}

fn conflict_error(
    resource: (&str, &str),
    name: &str,
    conflicts: &[(String, String, Vec<String>)],
) -> ApiError {
    let mut message = format!(
        "Apply failed with {} conflict{}: ",
        conflicts.len(),
        if conflicts.len() == 1 { "" } else { "s" }
    );
    let lines: Vec<String> = conflicts
        .iter()
        .map(|(m, v, p)| format!("conflict with \"{m}\" using {v}: {}", fields::display(p)))
        .collect();
    message.push_str(&lines.join("\n"));
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, v, p)| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with \"{m}\" using {v}"),
                "field": fields::display(p),
            })
        })
        .collect();
    let mut err = ApiError::new(409, "Conflict", message);
    err.details = Some(json!({
        "name": name,
        "group": resource.0,
        "kind": resource.1,
        "causes": causes,
    }));
    err
}

/// Parses an apply body: YAML (a superset of JSON) holding one object.
pub fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("apply body must be an object"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(manager: &str, force: bool) -> ApplyRequest<'_> {
        ApplyRequest {
            manager,
            api_version: "v1",
            scope: Scope::Main { has_status: false },
            force,
            now: "2025-01-01T00:00:00Z",
        }
    }

    #[test]
    fn a_subtree_no_longer_applied_goes_whole() {
        let first =
            json!({"spec": {"region": "a", "auth": {"secretRef": {"name": "keys", "key": "id"}}}});
        let o = apply(None, &first, &req("a", false), ("x.io", "stores"), "s").unwrap();
        let again = json!({"spec": {"region": "a"}});
        let o = apply(Some(&o), &again, &req("a", false), ("x.io", "stores"), "s").unwrap();
        assert_eq!(o["spec"], json!({"region": "a"}));
        // A struct another manager still has a field in stays, with that field.
        let b = json!({"spec": {"auth": {"jwt": "sa"}}});
        let o = apply(Some(&o), &b, &req("b", false), ("x.io", "stores"), "s").unwrap();
        let a = json!({"spec": {"region": "a", "auth": {"secretRef": {"name": "keys"}}}});
        let o = apply(Some(&o), &a, &req("a", false), ("x.io", "stores"), "s").unwrap();
        let o = apply(Some(&o), &again, &req("a", false), ("x.io", "stores"), "s").unwrap();
        assert_eq!(o["spec"], json!({"region": "a", "auth": {"jwt": "sa"}}));
    }

    #[test]
    fn ownership_and_conflicts() {
        let a1 = json!({"data": {"x": "MQ==", "y": "Mg=="}});
        let o = apply(None, &a1, &req("a", false), ("", "secrets"), "s").unwrap();
        let b = json!({"data": {"z": "Mw=="}});
        let o = apply(Some(&o), &b, &req("b", false), ("", "secrets"), "s").unwrap();
        // a drops y: removed; z (b's) stays.
        let a2 = json!({"data": {"x": "MQ=="}});
        let o = apply(Some(&o), &a2, &req("a", false), ("", "secrets"), "s").unwrap();
        assert_eq!(o["data"], json!({"x": "MQ==", "z": "Mw=="}));
        // b changing a's x conflicts; force takes it.
        let b2 = json!({"data": {"z": "Mw==", "x": "OQ=="}});
        let err = apply(Some(&o), &b2, &req("b", false), ("", "secrets"), "s").unwrap_err();
        assert_eq!(err.code, 409);
        let o = apply(Some(&o), &b2, &req("b", true), ("", "secrets"), "s").unwrap();
        assert_eq!(o["data"]["x"], "OQ==");
        let owners = fields::read_entries(&o);
        assert!(owners
            .iter()
            .all(|e| e.manager == "b" || !e.fields.contains(&vec!["data".into(), "x".into()])));
    }
}
