//! Field sets and the `metadata.managedFields` wire format (`fieldsType: FieldsV1`).
//!
//! A field path is the list of map keys from the object root to a leaf. Leaves are scalars,
//! lists and empty maps: lists are treated as atomic (owned whole), which is what the real
//! server does for lists without list-type markers and coarser than it for keyed lists such as
//! `containers`. Only what users own is tracked: `metadata.labels`, `metadata.annotations`,
//! `metadata.finalizers`, `metadata.ownerReferences` and everything outside `metadata`
//! except `apiVersion`/`kind` — the same exclusions the real server makes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// Which part of an object a write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Main resource; `status` excluded when the kind has a status subresource.
    Main { has_status: bool },
    /// The `/status` subresource: only `status`.
    Status,
}

impl Scope {
    pub fn subresource(&self) -> &'static str {
        match self {
            Scope::Main { .. } => "",
            Scope::Status => "status",
        }
    }

    pub fn tracks(&self, p: &[String]) -> bool {
        let Some(first) = p.first() else { return false };
        match (self, first.as_str()) {
            (_, "apiVersion" | "kind") => false,
            (Scope::Status, "status") => true,
            (Scope::Status, _) => false,
            (Scope::Main { has_status }, "status") => !has_status,
            (Scope::Main { .. }, "metadata") => p.get(1).is_some_and(|s| {
                matches!(
                    s.as_str(),
                    "labels" | "annotations" | "finalizers" | "ownerReferences"
                )
            }),
            (Scope::Main { .. }, _) => true,
        }
    }
}

pub fn get<'a>(v: &'a Value, p: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in p {
        cur = cur.as_object()?.get(seg)?;
    }
    Some(cur)
}

/// Sets a value, creating (or replacing non-map) intermediate nodes with maps.
pub fn set(v: &mut Value, p: &[String], val: Value) {
    let mut cur = v;
    for seg in p {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        cur = cur
            .as_object_mut()
            .expect("object")
            .entry(seg.clone())
            .or_insert(Value::Null);
    }
    *cur = val;
}

pub fn remove(v: &mut Value, p: &[String]) {
    let Some((last, parent)) = p.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parent {
        match cur.as_object_mut().and_then(|o| o.get_mut(seg)) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(o) = cur.as_object_mut() {
        o.remove(last);
    }
}

/// All leaf paths of `v` that `scope` tracks.
pub fn leaves(v: &Value, scope: Scope) -> FieldSet {
    fn walk(v: &Value, prefix: &mut Path, out: &mut FieldSet) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    prefix.push(k.clone());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {
                if !prefix.is_empty() {
                    out.insert(prefix.clone());
                }
            }
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out.retain(|p| scope.tracks(p));
    out
}

/// True when one path is a prefix of the other (they name overlapping parts of the object).
pub fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// `.data.key` — the notation conflict messages use.
pub fn display(p: &[String]) -> String {
    p.iter().map(|s| format!(".{s}")).collect()
}

#[derive(Default)]
struct Node {
    member: bool,
    children: BTreeMap<String, Node>,
}

/// Encodes a field set in the FieldsV1 format (`{"f:data": {"f:key": {}}}`; a node that is
/// itself a member and has children carries `".": {}`).
pub fn encode(set: &FieldSet) -> Value {
    let mut root = Node::default();
    for p in set {
        let mut n = &mut root;
        for seg in p {
            n = n.children.entry(seg.clone()).or_default();
        }
        n.member = true;
    }
    fn to_json(n: &Node) -> Value {
        let mut m = Map::new();
        if n.member && !n.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &n.children {
            m.insert(format!("f:{k}"), to_json(c));
        }
        Value::Object(m)
    }
    to_json(&root)
}

/// Decodes FieldsV1. Elements other than `f:` (list items) never come from this server and
/// are skipped.
pub fn decode(v: &Value) -> FieldSet {
    fn walk(v: &Value, prefix: &mut Path, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        if (m.is_empty() || m.contains_key(".")) && !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        for (k, child) in m {
            if let Some(name) = k.strip_prefix("f:") {
                prefix.push(name.to_string());
                walk(child, prefix, out);
                prefix.pop();
            }
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

impl Entry {
    pub fn same_manager(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or_default().into(),
                    operation: e["operation"].as_str().unwrap_or_default().into(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
                    time: e["time"].as_str().unwrap_or_default().into(),
                    subresource: e["subresource"].as_str().unwrap_or_default().into(),
                    fields: decode(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes entries back, dropping those that own nothing (as the real server does).
pub fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    let meta = obj
        .as_object_mut()
        .expect("object")
        .entry("metadata")
        .or_insert(json!({}));
    if list.is_empty() {
        meta.as_object_mut().map(|m| m.remove("managedFields"));
    } else {
        meta["managedFields"] = Value::Array(list);
    }
}

/// Records a non-apply write (create, update, merge/JSON/strategic patch) by `manager`: the
/// fields it changed move to its `Update` entry (taken from whoever owned them, as the real
/// server does for non-apply writes) and removed fields leave every entry.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    scope: Scope,
    now: &str,
) {
    let empty = json!({});
    let old_v = old.unwrap_or(&empty);
    let mut entries = read_entries(old_v);
    let new_leaves = leaves(new, scope);
    let changed: FieldSet = new_leaves
        .iter()
        .filter(|p| get(old_v, p) != get(new, p))
        .cloned()
        .collect();
    let removed: FieldSet = leaves(old_v, scope)
        .into_iter()
        .filter(|p| get(new, p).is_none())
        .collect();
    let sub = scope.subresource();
    for e in entries.iter_mut() {
        let is_updater = e.same_manager(manager, "Update", sub);
        e.fields.retain(|q| {
            !removed.iter().any(|r| overlaps(q, r) && q.len() >= r.len())
                && (is_updater || !changed.iter().any(|c| overlaps(q, c)))
        });
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.same_manager(manager, "Update", sub))
        {
            Some(e) => {
                e.fields.retain(|q| !changed.iter().any(|c| overlaps(q, c)));
                e.fields.extend(changed);
                e.time = now.into();
                e.api_version = api_version.into();
            }
            None => entries.push(Entry {
                manager: manager.into(),
                operation: "Update".into(),
                api_version: api_version.into(),
                time: now.into(),
                subresource: sub.into(),
                fields: changed,
            }),
        }
    }
    write_entries(new, entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fieldsv1_roundtrip() {
        let obj = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "x", "labels": {"a": "1"}},
            "data": {"k": "dg=="}, "type": "Opaque"});
        let set = leaves(&obj, Scope::Main { has_status: false });
        let enc = encode(&set);
        assert_eq!(
            enc,
            json!({"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:a": {}}}, "f:type": {}})
        );
        assert_eq!(decode(&enc), set);
    }
}
