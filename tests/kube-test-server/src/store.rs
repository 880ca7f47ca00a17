//! In-memory object storage with the API server's write semantics: one global, monotonic
//! `resourceVersion`, server-set metadata, optimistic concurrency, status-subresource rules,
//! generation tracking, finalizers, namespace and owner-reference garbage collection, CRD
//! registration, and a bounded history of change events for watches.
//!
//! Everything here runs under one mutex held by the HTTP layer, so each request is atomic and
//! events are published in resourceVersion order. The HTTP layer takes what it needs under the
//! lock (shared [`Obj`] handles, never copies) and serializes after releasing it.
//!
//! Each object is kept once, as an [`Obj`] (`Arc<Value>`) shared by the store, the event that
//! wrote it (and the next event's `prev`) and any response in flight. Indexes, kept up to date on
//! every write: per resource, objects by (namespace, name) in order (a namespace is a range) and
//! by label (key, value); across resources, objects by uid, dependents by owner uid, and object
//! counts per namespace. No write scans the store or the history.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, OnceLock};

use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use crate::apply::{self, ApplyRequest};
use crate::fields::{self, Scope};
use crate::registry::{crd_resource_type, Registry, ResourceType};
use crate::selectors::LabelSelector;
use crate::status::{ApiError, ApiResult};
use crate::validation;

/// (group, plural)
pub type ResKey = (String, String);
/// (namespace or "", name)
pub type ObjKey = (String, String);
/// A stored object, shared (not copied) by the store, the history and responses.
pub type Obj = Arc<Stored>;

/// One state of an object: the JSON value, and its encoding (with the stored `apiVersion`),
/// made once on first read and reused by every GET, LIST and watch event that serves it in
/// that version. Derefs to the value.
#[derive(Debug)]
pub struct Stored {
    value: Value,
    json: OnceLock<Box<RawValue>>,
}

impl Stored {
    pub fn new(value: Value) -> Self {
        Stored {
            value,
            json: OnceLock::new(),
        }
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The encoded object if it is served as `api_version` (its stored version).
    pub fn encoded_as(&self, api_version: &str) -> Option<&RawValue> {
        if self.value["apiVersion"].as_str() != Some(api_version) {
            return None;
        }
        Some(self.json.get_or_init(|| {
            RawValue::from_string(serde_json::to_string(&self.value).expect("serializable"))
                .expect("valid JSON")
        }))
    }
}

impl std::ops::Deref for Stored {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.value
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// A committed change. `prev` lets watches with selectors turn an update that moves an object
/// out of (into) their selection into DELETED (ADDED), like the real watch cache.
#[derive(Debug)]
pub struct StoredEvent {
    pub rv: u64,
    pub res: ResKey,
    pub key: ObjKey,
    pub etype: EventType,
    pub object: Obj,
    pub prev: Option<Obj>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

pub enum DeleteOutcome {
    /// Gone; carries the last state.
    Deleted(Obj),
    /// Held by finalizers; carries the object with `deletionTimestamp`.
    Pending(Obj),
}

/// Who writes what, for one request.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    pub rt: ResourceType,
    pub version: String,
    pub manager: String,
    pub dry_run: bool,
}

impl WriteCtx {
    fn api_version(&self) -> String {
        self.rt.api_version(&self.version)
    }
}

enum ManagedFieldsMode {
    /// Record an `Update` entry for `manager`.
    Update,
    /// Already computed (server-side apply).
    Keep,
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn random_suffix() -> String {
    use rand::Rng;
    // The real server's alphabet avoids vowels and look-alike characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata")
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The part of an object whose change bumps `generation`, per kind as the real registry
/// strategies decide: custom resources count everything but metadata (and status when it is a
/// subresource); Deployments count `spec` and `metadata.annotations` (annotations are copied to
/// ReplicaSets); StatefulSets, DaemonSets and CRDs count `spec`.
fn generation_relevant(rt: &ResourceType, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("apiVersion");
        o.remove("kind");
        if !rt.custom || rt.has_status {
            o.remove("status");
        }
    }
    if rt.group == "apps" && rt.plural == "deployments" {
        // Semantic equality: an empty map equals an absent one.
        let ann = &obj["metadata"]["annotations"];
        if ann.as_object().is_some_and(|a| !a.is_empty()) {
            v["metadata.annotations"] = ann.clone();
        }
    }
    v
}

/// Equality that ignores what a no-op write would still change (resourceVersion, timestamps in
/// managedFields).
fn same_content(a: &Value, b: &Value) -> bool {
    fn norm(v: &Value) -> Value {
        let mut v = v.clone();
        let m = meta_mut(&mut v);
        m.remove("resourceVersion");
        if let Some(Value::Array(mf)) = m.get_mut("managedFields") {
            for e in mf.iter_mut() {
                if let Some(o) = e.as_object_mut() {
                    o.remove("time");
                }
            }
        }
        if let Some(o) = v.as_object_mut() {
            o.remove("apiVersion");
        }
        v
    }
    norm(a) == norm(b)
}

/// The objects of one resource.
#[derive(Default)]
struct Objects {
    /// In (namespace, name) order: one namespace is one contiguous range.
    by_key: BTreeMap<ObjKey, Obj>,
    /// Label key -> label value -> objects carrying that label.
    labels: HashMap<String, HashMap<String, BTreeSet<ObjKey>>>,
}

fn label_pairs(obj: &Value) -> impl Iterator<Item = (&str, &str)> {
    obj["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
}

fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

/// Objects in `objs` from `start` on (in key order), while in namespace `ns` if given.
fn key_range<'a>(
    objs: &'a BTreeMap<ObjKey, Obj>,
    ns: Option<&'a str>,
    after: Option<&ObjKey>,
) -> impl Iterator<Item = (&'a ObjKey, &'a Obj)> {
    let start = match (after, ns) {
        (Some(a), Some(n)) if a.0.as_str() < n => Bound::Included((n.to_string(), String::new())),
        (Some(a), _) => Bound::Excluded(a.clone()),
        (None, Some(n)) => Bound::Included((n.to_string(), String::new())),
        (None, None) => Bound::Unbounded,
    };
    objs.range((start, Bound::Unbounded))
        .take_while(move |(k, _)| ns.is_none_or(|n| k.0 == n))
}

pub struct Store {
    rv: u64,
    pub registry: Registry,
    objects: BTreeMap<ResKey, Objects>,
    /// uid -> where that object is stored.
    uids: HashMap<String, (ResKey, ObjKey)>,
    /// Owner uid -> objects with an ownerReference to it.
    dependents: HashMap<String, BTreeSet<(ResKey, ObjKey)>>,
    /// Namespace -> how many objects (of all resources) it holds.
    ns_count: HashMap<String, usize>,
    history: VecDeque<Arc<StoredEvent>>,
    history_limit: usize,
    /// Events with `rv <= compacted_rv` may have been dropped from the history.
    compacted_rv: u64,
    events: broadcast::Sender<Arc<StoredEvent>>,
    /// Propagation policy remembered for objects whose deletion waits on finalizers.
    pending_policy: HashMap<String, Propagation>,
}

fn namespaces_key() -> ResKey {
    (String::new(), "namespaces".into())
}

fn crd_key() -> ResKey {
    (
        "apiextensions.k8s.io".into(),
        "customresourcedefinitions".into(),
    )
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (events, _) = broadcast::channel(4096);
        let mut s = Store {
            rv: 0,
            registry: Registry::builtin(),
            objects: BTreeMap::new(),
            uids: HashMap::new(),
            dependents: HashMap::new(),
            ns_count: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted_rv: 0,
            events,
            pending_policy: HashMap::new(),
        };
        let ns_type = s
            .registry
            .by_key(&namespaces_key())
            .cloned()
            .expect("namespaces type");
        for ns in ["default", "kube-system"] {
            let ctx = WriteCtx {
                rt: ns_type.clone(),
                version: "v1".into(),
                manager: "kube-apiserver".into(),
                dry_run: false,
            };
            s.create(&ctx, "", json!({"metadata": {"name": ns}}))
                .expect("initial namespace");
        }
        s
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.events.subscribe()
    }

    /// The history after `rv` (found by binary search), or `None` when it no longer reaches
    /// back that far.
    fn history_after(&self, rv: u64) -> Option<impl Iterator<Item = &Arc<StoredEvent>>> {
        if rv < self.compacted_rv {
            return None;
        }
        let first = self.history.partition_point(|e| e.rv <= rv);
        Some(self.history.range(first..))
    }

    /// Events of `res` after `rv`, or `None` when the history no longer reaches back that far.
    pub fn events_after(&self, rv: u64, res: &ResKey) -> Option<Vec<Arc<StoredEvent>>> {
        Some(
            self.history_after(rv)?
                .filter(|e| e.res == *res)
                .cloned()
                .collect(),
        )
    }

    pub fn oldest_rv(&self) -> u64 {
        self.compacted_rv
    }

    pub fn get(&self, res: &ResKey, ns: &str, name: &str) -> Option<&Obj> {
        self.objects
            .get(res)?
            .by_key
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of a resource, in (namespace, name) order, optionally in one namespace.
    pub fn list(&self, res: &ResKey, ns: Option<&str>) -> Vec<Obj> {
        self.objects
            .get(res)
            .map(|m| {
                key_range(&m.by_key, ns, None)
                    .map(|(_, o)| o.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Visits the current objects of `res` that can match a request, in key order, until
    /// `visit` returns false: in namespace `ns` (`Some("")` for cluster-scoped resources), named
    /// `name`, after key `after`, and — when the selector has an equality or set requirement —
    /// carrying one of its labels (looked up in the label index). A superset: the caller still
    /// evaluates the selectors.
    pub fn select(
        &self,
        res: &ResKey,
        ns: Option<&str>,
        labels: &LabelSelector,
        name: Option<&str>,
        after: Option<&ObjKey>,
        visit: &mut dyn FnMut(&Obj) -> bool,
    ) {
        let Some(objs) = self.objects.get(res) else {
            return;
        };
        let wanted = |k: &ObjKey| {
            ns.is_none_or(|n| k.0 == n)
                && name.is_none_or(|n| k.1 == n)
                && after.is_none_or(|a| k > a)
        };
        if let (Some(ns), Some(name)) = (ns, name) {
            let key = (ns.to_string(), name.to_string());
            if let Some(o) = objs.by_key.get(&key).filter(|_| wanted(&key)) {
                visit(o);
            }
            return;
        }
        // The most selective indexed requirement: its sets hold every object that can match.
        let indexed = labels
            .index_terms()
            .into_iter()
            .map(|(k, values)| {
                values
                    .into_iter()
                    .filter_map(|v| objs.labels.get(k)?.get(v))
                    .collect::<Vec<_>>()
            })
            .min_by_key(|sets| sets.iter().map(|s| s.len()).sum::<usize>());
        match indexed {
            Some(sets) => {
                let several = sets.len() > 1;
                let mut keys: Vec<&ObjKey> =
                    sets.into_iter().flatten().filter(|k| wanted(k)).collect();
                if several {
                    keys.sort();
                }
                for k in keys {
                    if let Some(o) = objs.by_key.get(k) {
                        if !visit(o) {
                            return;
                        }
                    }
                }
            }
            None => {
                for (_, o) in key_range(&objs.by_key, ns, after).filter(|(k, _)| wanted(k)) {
                    if !visit(o) {
                        return;
                    }
                }
            }
        }
    }

    /// Visits the objects of `res` as they were at `rv` (current objects with the changes after
    /// `rv` undone), in key order, in namespace `ns` if given and after key `after`, until
    /// `visit` returns false; `None` when the history no longer reaches back to `rv`.
    pub fn snapshot(
        &self,
        res: &ResKey,
        ns: Option<&str>,
        rv: u64,
        after: Option<&ObjKey>,
        visit: &mut dyn FnMut(&Obj) -> bool,
    ) -> Option<()> {
        // The first change after `rv` to a key tells its state at `rv`.
        let mut then: BTreeMap<&ObjKey, Option<&Obj>> = BTreeMap::new();
        for ev in self.history_after(rv)?.filter(|e| e.res == *res) {
            then.entry(&ev.key).or_insert(match ev.etype {
                EventType::Added => None,
                _ => ev.prev.as_ref(),
            });
        }
        let wanted = |k: &ObjKey| ns.is_none_or(|n| k.0 == n) && after.is_none_or(|a| k > a);
        let mut old = then.into_iter().filter(|(k, _)| wanted(k)).peekable();
        let mut cur = self
            .objects
            .get(res)
            .into_iter()
            .flat_map(|m| key_range(&m.by_key, ns, after))
            .peekable();
        loop {
            // The next key in order: a current object, unless the history says what it was.
            let next: Option<&Obj> = match (cur.peek(), old.peek()) {
                (Some((ck, co)), Some((ok, oo))) if *ck < *ok => {
                    let o = *co;
                    cur.next();
                    Some(o)
                }
                (Some((ck, _)), Some((ok, oo))) => {
                    let (same, o) = (*ck == *ok, *oo);
                    if same {
                        cur.next();
                    }
                    old.next();
                    match o {
                        Some(o) => Some(o),
                        None => continue,
                    }
                }
                (Some((_, co)), None) => {
                    let o = *co;
                    cur.next();
                    Some(o)
                }
                (None, Some((_, oo))) => {
                    let o = *oo;
                    old.next();
                    match o {
                        Some(o) => Some(o),
                        None => continue,
                    }
                }
                (None, None) => None,
            };
            match next {
                Some(o) if visit(o) => {}
                _ => return Some(()),
            }
        }
    }

    /// Stores `obj` under `key`, keeping the indexes; returns what it replaced.
    fn put(&mut self, res: &ResKey, key: ObjKey, obj: Obj) -> Option<Obj> {
        let prev = self
            .objects
            .entry(res.clone())
            .or_default()
            .by_key
            .insert(key.clone(), obj.clone());
        if let Some(p) = &prev {
            self.unindex(res, &key, p);
        }
        self.index(res, &key, &obj);
        prev
    }

    /// Removes the object under `key`, keeping the indexes.
    fn take(&mut self, res: &ResKey, key: &ObjKey) -> Option<Obj> {
        let prev = self.objects.get_mut(res)?.by_key.remove(key)?;
        self.unindex(res, key, &prev);
        Some(prev)
    }

    fn index(&mut self, res: &ResKey, key: &ObjKey, obj: &Value) {
        if let Some(objs) = self.objects.get_mut(res) {
            for (k, v) in label_pairs(obj) {
                objs.labels
                    .entry(k.to_string())
                    .or_default()
                    .entry(v.to_string())
                    .or_default()
                    .insert(key.clone());
            }
        }
        if let Some(uid) = obj["metadata"]["uid"].as_str() {
            self.uids
                .insert(uid.to_string(), (res.clone(), key.clone()));
        }
        for owner in owner_uids(obj) {
            self.dependents
                .entry(owner.to_string())
                .or_default()
                .insert((res.clone(), key.clone()));
        }
        if !key.0.is_empty() {
            *self.ns_count.entry(key.0.clone()).or_default() += 1;
        }
    }

    fn unindex(&mut self, res: &ResKey, key: &ObjKey, obj: &Value) {
        if let Some(objs) = self.objects.get_mut(res) {
            for (k, v) in label_pairs(obj) {
                let Some(values) = objs.labels.get_mut(k) else {
                    continue;
                };
                if let Some(set) = values.get_mut(v) {
                    set.remove(key);
                    if set.is_empty() {
                        values.remove(v);
                    }
                }
                if values.is_empty() {
                    objs.labels.remove(k);
                }
            }
        }
        if let Some(uid) = obj["metadata"]["uid"].as_str() {
            if self
                .uids
                .get(uid)
                .is_some_and(|(r, k)| r == res && k == key)
            {
                self.uids.remove(uid);
            }
        }
        let entry = (res.clone(), key.clone());
        for owner in owner_uids(obj) {
            if let Some(set) = self.dependents.get_mut(owner) {
                set.remove(&entry);
                if set.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
        if !key.0.is_empty() {
            if let Some(n) = self.ns_count.get_mut(&key.0) {
                *n -= 1;
                if *n == 0 {
                    self.ns_count.remove(&key.0);
                }
            }
        }
    }

    fn publish(&mut self, ev: StoredEvent) {
        let ev = Arc::new(ev);
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted_rv = old.rv;
            }
        }
        let _ = self.events.send(ev);
    }

    /// Stores a new state under the next resourceVersion and publishes its event.
    fn commit(&mut self, res: &ResKey, key: ObjKey, mut obj: Value) -> Obj {
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let obj = Arc::new(Stored::new(obj));
        let prev = self.put(res, key.clone(), obj.clone());
        let etype = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.publish(StoredEvent {
            rv: self.rv,
            res: res.clone(),
            key,
            etype,
            object: obj.clone(),
            prev,
        });
        obj
    }

    fn check_kind(ctx: &WriteCtx, body: &Value, required: bool) -> ApiResult<()> {
        let av = body["apiVersion"].as_str().unwrap_or_default();
        let kind = body["kind"].as_str().unwrap_or_default();
        if required && (av.is_empty() || kind.is_empty()) {
            return Err(ApiError::bad_request(
                "invalid object: apiVersion and kind must be set",
            ));
        }
        let want_av = ctx.api_version();
        if (!av.is_empty() && av != want_av) || (!kind.is_empty() && kind != ctx.rt.kind) {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av}), or kind {kind} is not {}",
                ctx.rt.kind
            )));
        }
        Ok(())
    }

    fn check_namespace_writable(&self, ctx: &WriteCtx, ns: &str, body: &Value) -> ApiResult<()> {
        if !ctx.rt.namespaced {
            return Ok(());
        }
        let body_ns = meta_str(body, "namespace");
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        match self.get(&namespaces_key(), "", ns) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => {
                Err(ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    ctx.rt.plural,
                    meta_str(body, "name")
                )))
            }
            Some(_) => Ok(()),
        }
    }

    fn check_body_name(body: &mut Value, name: &str) -> ApiResult<()> {
        let body_name = meta_str(body, "name").to_string();
        if body_name.is_empty() {
            meta_mut(body).insert("name".into(), json!(name));
        } else if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        Ok(())
    }

    fn obj_key(rt: &ResourceType, ns: &str, name: &str) -> ObjKey {
        let ns = if rt.namespaced { ns } else { "" };
        (ns.to_string(), name.to_string())
    }

    pub fn create(&mut self, ctx: &WriteCtx, ns: &str, mut body: Value) -> ApiResult<Obj> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        Self::check_kind(ctx, &body, false)?;
        if !meta_str(&body, "resourceVersion").is_empty() {
            // Same (odd) answer as the real storage layer.
            return Err(ApiError::new(
                500,
                "",
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let mut name = meta_str(&body, "name").to_string();
        if name.is_empty() {
            let prefix = meta_str(&body, "generateName").to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &ctx.rt.group,
                    &ctx.rt.kind,
                    "",
                    vec![(
                        "metadata.name".into(),
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
            name = format!("{prefix}{}", random_suffix());
            meta_mut(&mut body).insert("name".into(), json!(name));
        }
        self.check_namespace_writable(ctx, ns, &body)?;
        validation::validate_name(&ctx.rt, &name)?;
        if self
            .get(
                &ctx.rt.key(),
                Self::obj_key(&ctx.rt, ns, &name).0.as_str(),
                &name,
            )
            .is_some()
        {
            return Err(ApiError::already_exists(
                &ctx.rt.group,
                &ctx.rt.plural,
                &name,
            ));
        }
        let scope = Scope::Main {
            has_status: ctx.rt.has_status,
        };
        self.write(ctx, ns, &name, None, body, scope, ManagedFieldsMode::Update)
    }

    fn current(&self, ctx: &WriteCtx, ns: &str, name: &str) -> ApiResult<Obj> {
        let key = Self::obj_key(&ctx.rt, ns, name);
        self.get(&ctx.rt.key(), &key.0, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&ctx.rt.group, &ctx.rt.plural, name))
    }

    fn check_preconditions(ctx: &WriteCtx, name: &str, old: &Value, body: &Value) -> ApiResult<()> {
        let rv = meta_str(body, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(old, "resourceVersion") {
            return Err(ApiError::stale(&ctx.rt.group, &ctx.rt.plural, name));
        }
        let uid = meta_str(body, "uid");
        if !uid.is_empty() && uid != meta_str(old, "uid") {
            return Err(ApiError::conflict(
                &ctx.rt.group,
                &ctx.rt.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(old, "uid")
                ),
            ));
        }
        Ok(())
    }

    /// PUT. A `resourceVersion` in the body must match (409 otherwise); none means
    /// unconditional.
    pub fn update(
        &mut self,
        ctx: &WriteCtx,
        ns: &str,
        name: &str,
        mut body: Value,
        scope: Scope,
    ) -> ApiResult<Obj> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        Self::check_kind(ctx, &body, false)?;
        Self::check_body_name(&mut body, name)?;
        if ctx.rt.namespaced {
            let body_ns = meta_str(&body, "namespace");
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let old = self.current(ctx, ns, name)?;
        Self::check_preconditions(ctx, name, &old, &body)?;
        self.write(
            ctx,
            ns,
            name,
            Some(old),
            body,
            scope,
            ManagedFieldsMode::Update,
        )
    }

    /// Merge / JSON / strategic patches: `f` edits a copy of the live object; a
    /// `resourceVersion` the patch changed acts as a precondition.
    pub fn patch(
        &mut self,
        ctx: &WriteCtx,
        ns: &str,
        name: &str,
        scope: Scope,
        f: impl FnOnce(&mut Value) -> ApiResult<()>,
    ) -> ApiResult<Obj> {
        let old = self.current(ctx, ns, name)?;
        let mut patched = (*old).clone();
        f(&mut patched)?;
        if !patched.is_object() {
            return Err(ApiError::bad_request("patch produced a non-object"));
        }
        Self::check_kind(ctx, &patched, false)?;
        Self::check_body_name(&mut patched, name)?;
        Self::check_preconditions(ctx, name, &old, &patched)?;
        self.write(
            ctx,
            ns,
            name,
            Some(old),
            patched,
            scope,
            ManagedFieldsMode::Update,
        )
    }

    /// Server-side apply. Returns the object and whether it was created.
    pub fn apply(
        &mut self,
        ctx: &WriteCtx,
        ns: &str,
        name: &str,
        mut applied: Value,
        scope: Scope,
        force: bool,
    ) -> ApiResult<(Obj, bool)> {
        Self::check_kind(ctx, &applied, true)?;
        Self::check_body_name(&mut applied, name)?;
        let key = Self::obj_key(&ctx.rt, ns, name);
        let old = self.get(&ctx.rt.key(), &key.0, name).cloned();
        let now = now();
        let api_version = ctx.api_version();
        let req = ApplyRequest {
            manager: &ctx.manager,
            api_version: &api_version,
            scope,
            force,
            now: &now,
        };
        let resource = (ctx.rt.group.as_str(), ctx.rt.plural.as_str());
        match old {
            None => {
                if scope == Scope::Status {
                    return Err(ApiError::not_found(&ctx.rt.group, &ctx.rt.plural, name));
                }
                if !meta_str(&applied, "resourceVersion").is_empty() {
                    return Err(ApiError::new(
                        500,
                        "",
                        "resourceVersion should not be set on objects to be created",
                    ));
                }
                self.check_namespace_writable(ctx, ns, &applied)?;
                validation::validate_name(&ctx.rt, name)?;
                let mut merged = apply::apply(None, &applied, &req, resource, name)?;
                meta_mut(&mut merged).insert("name".into(), json!(name));
                let obj =
                    self.write(ctx, ns, name, None, merged, scope, ManagedFieldsMode::Keep)?;
                Ok((obj, true))
            }
            Some(old) => {
                Self::check_preconditions(ctx, name, &old, &applied)?;
                let merged = apply::apply(Some(old.as_ref()), &applied, &req, resource, name)?;
                let obj = self.write(
                    ctx,
                    ns,
                    name,
                    Some(old),
                    merged,
                    scope,
                    ManagedFieldsMode::Keep,
                )?;
                Ok((obj, false))
            }
        }
    }

    /// The common tail of every write: server-owned metadata, status rules, admission,
    /// generation, managedFields, no-op detection, finalizer completion, commit.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        ctx: &WriteCtx,
        ns: &str,
        name: &str,
        old: Option<Obj>,
        mut new: Value,
        scope: Scope,
        mf: ManagedFieldsMode,
    ) -> ApiResult<Obj> {
        let rt = ctx.rt.clone();
        let res = rt.key();
        let key = Self::obj_key(&rt, ns, name);
        let now = now();
        if let Some(old) = &old {
            if scope == Scope::Status {
                // Status writes change only .status (and managedFields, computed below).
                let status = new.as_object_mut().and_then(|o| o.remove("status"));
                let mf_keep = new["metadata"]["managedFields"].clone();
                new = (**old).clone();
                match status {
                    Some(s) if !s.is_null() => new["status"] = s,
                    _ => {
                        new.as_object_mut().map(|o| o.remove("status"));
                    }
                }
                if matches!(mf, ManagedFieldsMode::Keep) {
                    meta_mut(&mut new).insert("managedFields".into(), mf_keep);
                }
            } else if rt.has_status {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        new.as_object_mut().map(|o| o.remove("status"));
                    }
                }
            }
            let old_meta = old["metadata"].as_object();
            let m = meta_mut(&mut new);
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old_meta.and_then(|o| o.get(f)) {
                    Some(v) => {
                        m.insert(f.into(), v.clone());
                    }
                    None => {
                        m.remove(f);
                    }
                }
            }
            if !old["metadata"]["deletionTimestamp"].is_null() {
                let before = finalizers(old);
                if let Some(added) = finalizers(&new).into_iter().find(|f| !before.contains(f)) {
                    return Err(ApiError::invalid(
                        &rt.group,
                        &rt.kind,
                        name,
                        vec![(
                            "metadata.finalizers".into(),
                            format!("Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [\"{added}\"]"),
                        )],
                    ));
                }
            }
        } else {
            if rt.has_status {
                new.as_object_mut().map(|o| o.remove("status"));
            }
            let m = meta_mut(&mut new);
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now));
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            if rt.tracks_generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        new["apiVersion"] = json!(ctx.api_version());
        new["kind"] = json!(rt.kind);
        {
            let m = meta_mut(&mut new);
            m.insert("name".into(), json!(name));
            if rt.namespaced {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.remove("namespace");
            }
            m.remove("resourceVersion");
            m.remove("selfLink");
            if matches!(mf, ManagedFieldsMode::Update) {
                m.remove("managedFields");
            }
        }

        validation::prepare(&rt, old.as_ref().map(|o| o.value()), &mut new)?;
        self.server_status(&rt, old.as_ref().map(|o| o.value()), &mut new, &now)?;

        if rt.tracks_generation {
            if let Some(old) = &old {
                if generation_relevant(&rt, old) != generation_relevant(&rt, &new) {
                    let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                    meta_mut(&mut new).insert("generation".into(), json!(g));
                }
            }
        }
        if matches!(mf, ManagedFieldsMode::Update) {
            if let Some(old) = &old {
                if let Some(m) = old["metadata"].get("managedFields") {
                    meta_mut(&mut new).insert("managedFields".into(), m.clone());
                }
            }
            fields::record_update(
                old.as_ref().map(|o| o.value()),
                &mut new,
                &ctx.manager,
                &ctx.api_version(),
                scope,
                &now,
            );
        }

        if let Some(old) = &old {
            if same_content(old, &new) {
                return Ok(old.clone());
            }
        }
        if ctx.dry_run {
            if let Some(old) = &old {
                meta_mut(&mut new).insert(
                    "resourceVersion".into(),
                    old["metadata"]["resourceVersion"].clone(),
                );
            }
            return Ok(Arc::new(Stored::new(new)));
        }
        if let Some(old) = &old {
            if !old["metadata"]["deletionTimestamp"].is_null() && finalizers(&new).is_empty() {
                // Last finalizer gone: the deletion completes now.
                let uid = meta_str(&new, "uid").to_string();
                let policy = self
                    .pending_policy
                    .get(&uid)
                    .copied()
                    .unwrap_or(Propagation::Background);
                return Ok(self.remove_now(&res, key, Some(new), policy));
            }
        }
        let obj = self.commit(&res, key, new);
        if res == crd_key() {
            let crt = crd_resource_type(&obj)?;
            self.registry.register_crd(crt);
        }
        Ok(obj)
    }

    /// Status fields the server itself maintains (namespace phase, CRD conditions).
    fn server_status(
        &self,
        rt: &ResourceType,
        old: Option<&Value>,
        new: &mut Value,
        now: &str,
    ) -> ApiResult<()> {
        if rt.key() == namespaces_key() && new["status"]["phase"].is_null() {
            new["status"] = json!({"phase": "Active"});
        }
        if rt.key() == crd_key() {
            let crt = crd_resource_type(new)?;
            let spec_names = new["spec"]["names"].clone();
            let mut accepted = spec_names.clone();
            accepted["singular"] = json!(crt.singular);
            accepted["listKind"] = json!(crt.list_kind);
            let storage: Vec<String> = new["spec"]["versions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|v| v["storage"] == json!(true))
                        .filter_map(|v| v["name"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let mut stored: Vec<String> = old
                .and_then(|o| o["status"]["storedVersions"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect();
            for s in storage {
                if !stored.contains(&s) {
                    stored.push(s);
                }
            }
            let since = old
                .and_then(|o| o["status"]["conditions"][0]["lastTransitionTime"].as_str())
                .unwrap_or(now)
                .to_string();
            new["status"] = json!({
                "acceptedNames": accepted,
                "storedVersions": stored,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": since},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": since},
                ],
            });
        }
        Ok(())
    }

    pub fn delete(
        &mut self,
        ctx: &WriteCtx,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<DeleteOutcome> {
        let old = self.current(ctx, ns, name)?;
        if let Some(uid) = &opts.precondition_uid {
            if uid != meta_str(&old, "uid") {
                return Err(ApiError::conflict(
                    &ctx.rt.group,
                    &ctx.rt.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&old, "uid")
                    ),
                ));
            }
        }
        if let Some(rv) = &opts.precondition_rv {
            if rv != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(
                    &ctx.rt.group,
                    &ctx.rt.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        meta_str(&old, "resourceVersion")
                    ),
                ));
            }
        }
        let policy = opts.propagation.unwrap_or(Propagation::Background);
        let has_finalizers = !finalizers(&old).is_empty();
        let is_namespace = ctx.rt.key() == namespaces_key();
        if opts.dry_run {
            return Ok(if has_finalizers || is_namespace {
                DeleteOutcome::Pending(old)
            } else {
                DeleteOutcome::Deleted(old)
            });
        }
        let res = ctx.rt.key();
        let key = Self::obj_key(&ctx.rt, ns, name);
        if is_namespace {
            return Ok(self.delete_namespace(name));
        }
        if has_finalizers {
            return Ok(DeleteOutcome::Pending(
                self.mark_deleting(&res, &key, policy),
            ));
        }
        Ok(DeleteOutcome::Deleted(
            self.remove_now(&res, key, None, policy),
        ))
    }

    /// Sets `deletionTimestamp` (once) on an object held by finalizers.
    fn mark_deleting(&mut self, res: &ResKey, key: &ObjKey, policy: Propagation) -> Obj {
        let old = self.objects[res].by_key[key].clone();
        if !old["metadata"]["deletionTimestamp"].is_null() {
            return old;
        }
        let mut new = (*old).clone();
        let m = meta_mut(&mut new);
        m.insert("deletionTimestamp".into(), json!(now()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        self.pending_policy
            .insert(meta_str(&new, "uid").to_string(), policy);
        self.commit(res, key.clone(), new)
    }

    /// The namespace controller's work, done at once: contents are deleted (those with
    /// finalizers get a deletionTimestamp and hold the namespace in `Terminating`).
    fn delete_namespace(&mut self, name: &str) -> DeleteOutcome {
        let ns_res = namespaces_key();
        let ns_key = (String::new(), name.to_string());
        let mut ns_obj = self.objects[&ns_res].by_key[&ns_key].clone();
        if ns_obj["metadata"]["deletionTimestamp"].is_null() {
            let mut terminating = (*ns_obj).clone();
            meta_mut(&mut terminating).insert("deletionTimestamp".into(), json!(now()));
            terminating["status"] = json!({"phase": "Terminating"});
            ns_obj = self.commit(&ns_res, ns_key.clone(), terminating);
        }
        let contents: Vec<(ResKey, ObjKey, bool)> = self
            .objects
            .iter()
            .flat_map(|(res, objs)| {
                key_range(&objs.by_key, Some(name), None)
                    .map(|(k, v)| (res.clone(), k.clone(), !finalizers(v).is_empty()))
            })
            .collect();
        for (res, key, held) in contents {
            if !self
                .objects
                .get(&res)
                .is_some_and(|m| m.by_key.contains_key(&key))
            {
                continue;
            }
            if held {
                self.mark_deleting(&res, &key, Propagation::Background);
            } else {
                self.remove_now(&res, key, None, Propagation::Background);
            }
        }
        if self.namespace_empty(name) && finalizers(&ns_obj).is_empty() {
            DeleteOutcome::Deleted(self.remove_now(&ns_res, ns_key, None, Propagation::Background))
        } else {
            DeleteOutcome::Pending(self.objects[&ns_res].by_key[&ns_key].clone())
        }
    }

    fn namespace_empty(&self, ns: &str) -> bool {
        !self.ns_count.contains_key(ns)
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.uids.contains_key(uid)
    }

    /// Removes an object now and runs the garbage collector's consequences: dependents (by
    /// owner uid) are deleted (or, with `Orphan`, released), a CRD's objects go with it, and a
    /// terminating namespace that became empty goes too. Returns the last state of the object.
    fn remove_now(
        &mut self,
        res: &ResKey,
        key: ObjKey,
        last: Option<Value>,
        policy: Propagation,
    ) -> Obj {
        let mut queue: VecDeque<(ResKey, ObjKey, Option<Value>, Propagation)> = VecDeque::new();
        queue.push_back((res.clone(), key, last, policy));
        let mut first: Option<Obj> = None;
        while let Some((res, key, last, policy)) = queue.pop_front() {
            let Some(stored) = self.take(&res, &key) else {
                continue;
            };
            let mut obj = last.unwrap_or_else(|| (*stored).clone());
            self.rv += 1;
            meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
            let obj = Arc::new(Stored::new(obj));
            self.publish(StoredEvent {
                rv: self.rv,
                res: res.clone(),
                key: key.clone(),
                etype: EventType::Deleted,
                object: obj.clone(),
                prev: Some(stored),
            });
            let uid = meta_str(&obj, "uid").to_string();
            self.pending_policy.remove(&uid);
            if first.is_none() {
                first = Some(obj.clone());
            }
            if res == crd_key() {
                if let Ok(crt) = crd_resource_type(&obj) {
                    let ckey = crt.key();
                    let keys: Vec<ObjKey> = self
                        .objects
                        .get(&ckey)
                        .map(|m| m.by_key.keys().cloned().collect())
                        .unwrap_or_default();
                    for k in keys {
                        queue.push_back((ckey.clone(), k, None, Propagation::Background));
                    }
                    self.registry.unregister(&crt.group, &crt.plural);
                }
            }
            self.collect_dependents(&uid, policy, &mut queue);
            if !key.0.is_empty() {
                let ns_key = (String::new(), key.0.clone());
                let terminating = self
                    .get(&namespaces_key(), "", &key.0)
                    .is_some_and(|n| !n["metadata"]["deletionTimestamp"].is_null());
                if terminating
                    && self.namespace_empty(&key.0)
                    && !queue.iter().any(|(_, k, _, _)| k.0 == key.0)
                {
                    queue.push_back((namespaces_key(), ns_key, None, Propagation::Background));
                }
            }
        }
        first.unwrap_or_else(|| Arc::new(Stored::new(Value::Null)))
    }

    /// Dependents of a removed owner: released (ownerReference stripped) when orphaned or when
    /// other owners still exist, otherwise deleted (queued, or marked when finalizers hold them).
    fn collect_dependents(
        &mut self,
        owner_uid: &str,
        policy: Propagation,
        queue: &mut VecDeque<(ResKey, ObjKey, Option<Value>, Propagation)>,
    ) {
        let dependents: Vec<(ResKey, ObjKey)> = self
            .dependents
            .get(owner_uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default();
        for (res, key) in dependents {
            let Some(obj) = self
                .objects
                .get(&res)
                .and_then(|m| m.by_key.get(&key))
                .cloned()
            else {
                continue;
            };
            let refs = obj["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let remaining: Vec<Value> = refs
                .iter()
                .filter(|r| r["uid"] != owner_uid)
                .cloned()
                .collect();
            let other_owner_alive = remaining
                .iter()
                .any(|r| self.uid_exists(r["uid"].as_str().unwrap_or_default()));
            if policy == Propagation::Orphan || other_owner_alive {
                let mut new = (*obj).clone();
                let m = meta_mut(&mut new);
                if remaining.is_empty() {
                    m.remove("ownerReferences");
                } else {
                    m.insert("ownerReferences".into(), Value::Array(remaining));
                }
                self.commit(&res, key, new);
            } else if !finalizers(&obj).is_empty() {
                self.mark_deleting(&res, &key, Propagation::Background);
            } else {
                queue.push_back((res, key, None, Propagation::Background));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(store: &Store, plural: &str) -> WriteCtx {
        WriteCtx {
            rt: store
                .registry
                .find("", "v1", plural)
                .cloned()
                .expect("builtin"),
            version: "v1".into(),
            manager: "test".into(),
            dry_run: false,
        }
    }

    fn cm(name: &str, labels: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": name}})
    }

    fn names(objs: &[Obj]) -> Vec<String> {
        objs.iter()
            .map(|o| format!("{}/{}", meta_str(o, "namespace"), meta_str(o, "name")))
            .collect()
    }

    fn select(store: &Store, ns: Option<&str>, sel: &str, after: Option<&ObjKey>) -> Vec<Obj> {
        let labels = LabelSelector::parse(sel).unwrap();
        let mut out = Vec::new();
        store.select(&cm_key(), ns, &labels, None, after, &mut |o| {
            out.push(o.clone());
            true
        });
        out.retain(|o| labels.matches(o));
        out
    }

    /// What a scan of every object finds: what the indexes must agree with.
    fn scan(store: &Store, ns: Option<&str>, sel: &str, after: Option<&ObjKey>) -> Vec<Obj> {
        let labels = LabelSelector::parse(sel).unwrap();
        store.objects[&cm_key()]
            .by_key
            .iter()
            .filter(|(k, o)| {
                ns.is_none_or(|n| k.0 == n) && after.is_none_or(|a| *k > a) && labels.matches(o)
            })
            .map(|(_, o)| o.clone())
            .collect()
    }

    fn cm_key() -> ResKey {
        (String::new(), "configmaps".into())
    }

    fn store_with_namespaces() -> (Store, WriteCtx) {
        let mut s = Store::new(1000);
        let nsc = ctx(&s, "namespaces");
        for ns in ["a", "b"] {
            s.create(&nsc, "", json!({"metadata": {"name": ns}}))
                .unwrap();
        }
        let c = ctx(&s, "configmaps");
        (s, c)
    }

    #[test]
    fn label_and_namespace_indexes_follow_writes() {
        let (mut s, c) = store_with_namespaces();
        for i in 0..30 {
            let ns = if i % 3 == 0 { "a" } else { "b" };
            let labels = json!({"app": format!("app{}", i % 4), "tier": if i % 2 == 0 { "web" } else { "db" }});
            s.create(&c, ns, cm(&format!("cm{i:02}"), labels)).unwrap();
        }
        // Relabel some, drop a label from others, delete a few.
        for i in (0..30).step_by(5) {
            let ns = if i % 3 == 0 { "a" } else { "b" };
            let name = format!("cm{i:02}");
            s.patch(&c, ns, &name, Scope::Main { has_status: false }, |o| {
                o["metadata"]["labels"] = json!({"app": "moved"});
                Ok(())
            })
            .unwrap();
        }
        for i in [7, 8, 21] {
            let ns = if i % 3 == 0 { "a" } else { "b" };
            s.delete(&c, ns, &format!("cm{i:02}"), &DeleteOptions::default())
                .unwrap();
        }
        let after = ("b".to_string(), "cm10".to_string());
        for sel in [
            "",
            "app=app1",
            "app=moved",
            "app in (app0,app2)",
            "app=app3,tier=db",
            "tier=web,app!=app2",
            "app=nobody",
            "tier",
            "!tier",
        ] {
            for ns in [None, Some("a"), Some("b"), Some("c")] {
                for after in [None, Some(&after)] {
                    assert_eq!(
                        names(&select(&s, ns, sel, after)),
                        names(&scan(&s, ns, sel, after)),
                        "selector {sel:?} in {ns:?} after {after:?}"
                    );
                }
            }
        }
        assert_eq!(select(&s, None, "app=moved", None).len(), 6);
        assert_eq!(s.ns_count["a"], 10 - 1);
        assert_eq!(s.ns_count["b"], 20 - 2);
    }

    #[test]
    fn snapshots_equal_the_state_at_their_resource_version() {
        let (mut s, c) = store_with_namespaces();
        let mut states: Vec<(u64, Vec<String>, Vec<Value>)> = Vec::new();
        let mut record = |s: &Store| {
            let objs: Vec<Obj> = s.list(&cm_key(), None);
            states.push((
                s.current_rv(),
                names(&objs),
                objs.iter().map(|o| o.value().clone()).collect(),
            ));
        };
        for step in 0..40 {
            let ns = if step % 2 == 0 { "a" } else { "b" };
            let name = format!("cm{:02}", step % 7);
            match step % 4 {
                0 | 1 => {
                    if s.get(&cm_key(), ns, &name).is_some() {
                        s.patch(&c, ns, &name, Scope::Main { has_status: false }, |o| {
                            o["data"]["step"] = json!(step.to_string());
                            Ok(())
                        })
                        .unwrap();
                    } else {
                        s.create(&c, ns, cm(&name, json!({}))).unwrap();
                    }
                }
                2 => {
                    let _ = s.delete(&c, ns, &name, &DeleteOptions::default());
                }
                _ => {
                    let _ = s.create(&c, ns, cm(&format!("x{step}"), json!({})));
                }
            }
            record(&s);
        }
        let after = ("a".to_string(), "cm03".to_string());
        for (rv, want_names, want) in &states {
            let mut got = Vec::new();
            s.snapshot(&cm_key(), None, *rv, None, &mut |o| {
                got.push(o.clone());
                true
            })
            .expect("within the history");
            assert_eq!(&names(&got), want_names, "at rv {rv}");
            let values: Vec<Value> = got.iter().map(|o| o.value().clone()).collect();
            assert_eq!(&values, want, "at rv {rv}");
            // A page after a key, in one namespace, stopping early.
            let mut page = Vec::new();
            s.snapshot(&cm_key(), Some("a"), *rv, Some(&after), &mut |o| {
                page.push(o.clone());
                page.len() < 2
            })
            .unwrap();
            let expected: Vec<String> = want_names
                .iter()
                .filter(|n| n.starts_with("a/") && n.as_str() > "a/cm03")
                .take(2)
                .cloned()
                .collect();
            assert_eq!(names(&page), expected, "page at rv {rv}");
        }
    }

    #[test]
    fn uid_and_owner_indexes_drive_garbage_collection() {
        let (mut s, c) = store_with_namespaces();
        let owner = s.create(&c, "a", cm("owner", json!({}))).unwrap();
        let other = s.create(&c, "a", cm("other", json!({}))).unwrap();
        let owned = |name: &str, owners: &[&Obj]| {
            let refs: Vec<Value> = owners
                .iter()
                .map(|o| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": meta_str(o, "name"), "uid": meta_str(o, "uid")}))
                .collect();
            json!({"metadata": {"name": name, "ownerReferences": refs}})
        };
        s.create(&c, "a", owned("only", &[&owner])).unwrap();
        s.create(&c, "a", owned("shared", &[&owner, &other]))
            .unwrap();
        s.create(&c, "a", json!({"metadata": {"name": "unrelated"}}))
            .unwrap();
        s.delete(&c, "a", "owner", &DeleteOptions::default())
            .unwrap();
        assert!(s.get(&cm_key(), "a", "only").is_none());
        let shared = s.get(&cm_key(), "a", "shared").unwrap();
        assert_eq!(
            shared["metadata"]["ownerReferences"][0]["uid"],
            other["metadata"]["uid"]
        );
        assert!(s.get(&cm_key(), "a", "unrelated").is_some());
        assert!(!s.uid_exists(meta_str(&owner, "uid")));
        assert!(s.uid_exists(meta_str(&other, "uid")));
        assert!(!s.dependents.contains_key(meta_str(&owner, "uid")));
        // Deleting the namespace empties it and then removes it.
        let nsc = ctx(&s, "namespaces");
        s.delete(&nsc, "", "a", &DeleteOptions::default()).unwrap();
        assert!(s.get(&namespaces_key(), "", "a").is_none());
        assert!(!s.ns_count.contains_key("a"));
        assert!(s.uids.values().all(|(_, k)| k.0 != "a"));
    }
}
