//! Watched caches: what reconciles read of the cluster, kept current by watches, so that a
//! reconcile that finds nothing to do makes no Kubernetes API request.
//!
//! - ExternalSecrets: a reflector of packed objects ([`CachedExternalSecret`]: a few fields and
//!   the object as JSON, expanded by each reconcile).
//! - SecretStores and ClusterSecretStores: reflectors of the whole objects.
//! - Namespaces: metadata only (ClusterSecretStore conditions and ClusterExternalSecrets select
//!   by name and labels).
//! - The Secrets arnsync manages (label [`MANAGED_LABEL`]): only what a sync decides with before
//!   reading anything (resourceVersion, the owner and data-hash annotations; [`ManagedSecrets`]);
//!   a target Secret is read in full only when a sync must look at its data.
//! - The credentials Secrets and ServiceAccounts that stores name: their contents after a first
//!   GET, kept until a metadata watch of all Secrets (ServiceAccounts) shows the object changed
//!   or gone. Nothing else of any Secret is kept: no reflector holds Secret data.
//!
//! Every object is stripped of `managedFields` and of kubectl's last-applied annotation before it
//! is stored (see [`strip`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::ByteString;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::cached_external_secret::CachedExternalSecret;
use crate::api::{ClusterSecretStore, SecretStore};
use crate::sync::{HASH_ANNOTATION, MANAGED_LABEL, OWNER_ANNOTATION};

/// kubectl's client-side apply record: a second copy of the object, never needed here.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The caches every reconcile shares, with the writers their watches fill (taken once by
/// whoever runs each watch).
pub struct Caches {
    pub external_secrets: Store<CachedExternalSecret>,
    pub secret_stores: Store<SecretStore>,
    /// Empty (and never ready) with `--namespace`: ClusterSecretStores are not watched then.
    pub cluster_stores: Store<ClusterSecretStore>,
    /// Empty (and never ready) with `--namespace`.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// What syncs decide with of the Secrets labelled [`MANAGED_LABEL`]`=true`.
    pub managed_secrets: ManagedSecrets,
    /// The data of credentials Secrets, per (namespace, name).
    pub credentials: Named<BTreeMap<String, ByteString>>,
    /// The annotations of ServiceAccounts named by `auth.jwt.serviceAccountRef`.
    pub service_accounts: Named<BTreeMap<String, String>>,
    writers: Mutex<Writers>,
}

#[derive(Default)]
struct Writers {
    external_secrets: Option<Writer<CachedExternalSecret>>,
    secret_stores: Option<Writer<SecretStore>>,
    cluster_stores: Option<Writer<ClusterSecretStore>>,
    namespaces: Option<Writer<PartialObjectMeta<Namespace>>>,
}

impl Default for Caches {
    fn default() -> Self {
        let (external_secrets, es) = reflector::store();
        let (secret_stores, ss) = reflector::store();
        let (cluster_stores, cs) = reflector::store();
        let (namespaces, ns) = reflector::store();
        Caches {
            external_secrets,
            secret_stores,
            cluster_stores,
            namespaces,
            managed_secrets: ManagedSecrets::default(),
            credentials: Named::default(),
            service_accounts: Named::default(),
            writers: Mutex::new(Writers {
                external_secrets: Some(es),
                secret_stores: Some(ss),
                cluster_stores: Some(cs),
                namespaces: Some(ns),
            }),
        }
    }
}

macro_rules! take_writer {
    ($name:ident, $k:ty) => {
        /// The writer of this cache, for the one watch that fills it.
        pub(crate) fn $name(&self) -> Writer<$k> {
            self.writers
                .lock()
                .expect("writers lock")
                .$name
                .take()
                .expect(concat!("the ", stringify!($name), " cache has one watch"))
        }
    };
}

impl Caches {
    take_writer!(external_secrets, CachedExternalSecret);
    take_writer!(secret_stores, SecretStore);
    take_writer!(cluster_stores, ClusterSecretStore);
    take_writer!(namespaces, PartialObjectMeta<Namespace>);

    /// Drops the credentials and ServiceAccounts that no store names any more.
    pub fn forget_unnamed(&self) {
        let mut secrets = HashSet::new();
        let mut accounts = HashSet::new();
        let mut add = |own: Option<String>, settings: crate::api::AwsSettings| {
            if let Some(auth) = &settings.auth {
                let refs = [
                    Some(&auth.access_key_id_secret_ref),
                    Some(&auth.secret_access_key_secret_ref),
                    auth.session_token_secret_ref.as_ref(),
                ];
                for r in refs.into_iter().flatten() {
                    let ns = r
                        .namespace
                        .clone()
                        .or_else(|| own.clone())
                        .unwrap_or_default();
                    secrets.insert((ns, r.name.clone()));
                }
            }
            if let Some(sa) = &settings.jwt {
                let ns = sa
                    .namespace
                    .clone()
                    .or_else(|| own.clone())
                    .unwrap_or_default();
                accounts.insert((ns, sa.name.clone()));
            }
        };
        for s in self.secret_stores.state() {
            add(s.namespace(), s.spec.aws());
        }
        for s in self.cluster_stores.state() {
            add(None, s.spec.aws());
        }
        let named = |set: &HashSet<(String, String)>, ns: &str, name: &str| {
            set.contains(&(ns.to_string(), name.to_string()))
        };
        self.credentials
            .retain(|ns, name| named(&secrets, ns, name));
        self.service_accounts
            .retain(|ns, name| named(&accounts, ns, name));
    }
}

/// What a cache keeps of an object: everything but `managedFields` (often larger than the rest
/// of the metadata) and kubectl's last-applied copy of the object.
pub fn strip<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
}

/// A namespace as the cache keeps it: name, uid, labels, deletion; no annotations.
pub fn strip_namespace(ns: &mut PartialObjectMeta<Namespace>) {
    strip(ns);
    ns.metadata.annotations = None;
}

/// The managed Secrets (label [`MANAGED_LABEL`]`=true`) as syncs need them before reading
/// anything: per `namespace/name`, the resourceVersion and the values of the owner and data-hash
/// annotations, about 200 bytes each. Filled by a metadata watch of all Secrets through
/// [`ManagedSecrets::observe`].
#[derive(Default)]
pub struct ManagedSecrets(Mutex<ManagedState>);

#[derive(Default)]
struct ManagedState {
    live: HashMap<Box<str>, Packed>,
    /// During a (re)list: the managed Secrets listed so far, which replace `live` when it ends.
    listing: Option<HashMap<Box<str>, Packed>>,
}

/// One managed Secret: resourceVersion, then the owner and data-hash annotations.
struct Packed {
    resource_version: Box<str>,
    owner: Option<Box<str>>,
    hash: Option<Box<str>>,
}

impl Packed {
    fn of(m: &PartialObjectMeta<Secret>) -> Packed {
        let annotation = |k: &str| m.annotations().get(k).map(|v| v.as_str().into());
        Packed {
            resource_version: m.resource_version().unwrap_or_default().into(),
            owner: annotation(OWNER_ANNOTATION),
            hash: annotation(HASH_ANNOTATION),
        }
    }
}

fn managed_key(m: &PartialObjectMeta<Secret>) -> Box<str> {
    format!("{}/{}", m.namespace().unwrap_or_default(), m.name_any()).into()
}

fn is_managed(m: &PartialObjectMeta<Secret>) -> bool {
    m.labels().get(MANAGED_LABEL).map(String::as_str) == Some("true")
}

impl ManagedSecrets {
    /// Takes in one event of the metadata watch of all Secrets, and passes on the events of
    /// managed Secrets (a Secret that lost the label passes as a deletion); any other Secret's
    /// event stops here.
    pub fn observe(
        &self,
        event: watcher::Event<PartialObjectMeta<Secret>>,
    ) -> Option<watcher::Event<PartialObjectMeta<Secret>>> {
        let mut state = self.0.lock().expect("managed secrets lock");
        match event {
            watcher::Event::Apply(m) if is_managed(&m) => {
                state.live.insert(managed_key(&m), Packed::of(&m));
                Some(watcher::Event::Apply(m))
            }
            watcher::Event::Apply(m) => state
                .live
                .remove(&managed_key(&m))
                .map(|_| watcher::Event::Delete(m)),
            watcher::Event::Delete(m) => state
                .live
                .remove(&managed_key(&m))
                .map(|_| watcher::Event::Delete(m)),
            watcher::Event::Init => {
                state.listing = Some(HashMap::new());
                Some(watcher::Event::Init)
            }
            watcher::Event::InitApply(m) if is_managed(&m) => {
                let packed = Packed::of(&m);
                state
                    .listing
                    .get_or_insert_with(HashMap::new)
                    .insert(managed_key(&m), packed);
                Some(watcher::Event::InitApply(m))
            }
            watcher::Event::InitApply(_) => None,
            watcher::Event::InitDone => {
                let mut listed = state.listing.take().unwrap_or_default();
                listed.shrink_to_fit();
                state.live = listed;
                Some(watcher::Event::InitDone)
            }
        }
    }

    /// The managed Secret `ns/name` as the cache knows it: name, namespace, resourceVersion and
    /// the owner and data-hash annotations; no data, no other metadata.
    pub fn get(&self, ns: &str, name: &str) -> Option<PartialObjectMeta<Secret>> {
        let state = self.0.lock().expect("managed secrets lock");
        let p = state.live.get(format!("{ns}/{name}").as_str())?;
        let annotations: BTreeMap<String, String> =
            [(OWNER_ANNOTATION, &p.owner), (HASH_ANNOTATION, &p.hash)]
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_string(), v.as_deref()?.to_string())))
                .collect();
        let mut m = PartialObjectMeta::<Secret>::default();
        m.metadata.name = Some(name.into());
        m.metadata.namespace = Some(ns.into());
        m.metadata.resource_version = Some(p.resource_version.to_string());
        m.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
        Some(m)
    }

    /// How many managed Secrets the cache holds.
    pub fn len(&self) -> usize {
        self.0.lock().expect("managed secrets lock").live.len()
    }

    /// True when the cache holds no managed Secret.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Values read once per named object (`namespace/name`), kept until a metadata watch of that
/// kind shows the object at another resourceVersion, or gone. Only objects asked for are kept.
pub struct Named<V> {
    state: Mutex<NamedState<V>>,
}

struct NamedState<V> {
    /// True once the watch listed, and while it runs without errors: only then is a value
    /// served (otherwise a change could go unseen).
    healthy: bool,
    entries: HashMap<(String, String), Entry<V>>,
    /// The keys a relist saw, while one runs.
    listing: Option<HashSet<(String, String)>>,
}

struct Entry<V> {
    /// Watch events seen for this key: a read that saw another count may be stale.
    events: u64,
    /// The resourceVersion of the last event, `None` after a deletion.
    last_seen: Option<String>,
    value: Option<(String, Arc<V>)>,
}

/// The cache's answer: a value, or a ticket to present with the value read instead.
pub enum Lookup<V> {
    Hit(Arc<V>),
    Miss(Ticket),
}

pub struct Ticket(u64);

impl<V> Default for Named<V> {
    fn default() -> Self {
        Named {
            state: Mutex::new(NamedState {
                healthy: false,
                entries: HashMap::new(),
                listing: None,
            }),
        }
    }
}

impl<V> Named<V> {
    pub fn lookup(&self, ns: &str, name: &str) -> Lookup<V> {
        let mut s = self.state.lock().expect("named cache lock");
        let healthy = s.healthy;
        let entry = s
            .entries
            .entry((ns.to_string(), name.to_string()))
            .or_insert(Entry {
                events: 0,
                last_seen: None,
                value: None,
            });
        match &entry.value {
            Some((_, v)) if healthy => Lookup::Hit(v.clone()),
            _ => Lookup::Miss(Ticket(entry.events)),
        }
    }

    /// Keeps `value`, read at `resource_version`, unless the watch saw the object change since
    /// `ticket` was given (then the next lookup reads again).
    pub fn put(
        &self,
        ns: &str,
        name: &str,
        ticket: Ticket,
        resource_version: String,
        value: Arc<V>,
    ) {
        let mut s = self.state.lock().expect("named cache lock");
        if let Some(e) = s.entries.get_mut(&(ns.to_string(), name.to_string())) {
            if e.events == ticket.0 || e.last_seen.as_deref() == Some(resource_version.as_str()) {
                e.value = Some((resource_version, value));
            }
        }
    }

    /// Follows one event of the metadata watch of the kind.
    pub fn observe<K: Resource>(
        &self,
        event: &Result<watcher::Event<PartialObjectMeta<K>>, watcher::Error>,
    ) {
        let mut s = self.state.lock().expect("named cache lock");
        let event = match event {
            Ok(e) => e,
            Err(_) => {
                s.healthy = false;
                return;
            }
        };
        let key = |m: &PartialObjectMeta<K>| (m.namespace().unwrap_or_default(), m.name_any());
        match event {
            watcher::Event::Init => s.listing = Some(HashSet::new()),
            watcher::Event::InitDone => {
                if let Some(listed) = s.listing.take() {
                    for (k, e) in s.entries.iter_mut() {
                        if !listed.contains(k) {
                            e.events += 1;
                            e.last_seen = None;
                            e.value = None;
                        }
                    }
                }
                s.healthy = true;
            }
            watcher::Event::Apply(m) | watcher::Event::InitApply(m) => {
                let k = key(m);
                if let Some(listed) = s.listing.as_mut() {
                    listed.insert(k.clone());
                }
                if s.listing.is_none() {
                    s.healthy = true;
                }
                if let Some(e) = s.entries.get_mut(&k) {
                    e.events += 1;
                    e.last_seen = m.resource_version();
                    if e.value.as_ref().map(|(rv, _)| Some(rv)) != Some(e.last_seen.as_ref()) {
                        e.value = None;
                    }
                }
            }
            watcher::Event::Delete(m) => {
                if s.listing.is_none() {
                    s.healthy = true;
                }
                if let Some(e) = s.entries.get_mut(&key(m)) {
                    e.events += 1;
                    e.last_seen = None;
                    e.value = None;
                }
            }
        }
    }

    /// Forgets the keys no longer asked for (`wanted` says which are).
    pub fn retain(&self, wanted: impl Fn(&str, &str) -> bool) {
        let mut s = self.state.lock().expect("named cache lock");
        s.entries.retain(|(ns, name), _| wanted(ns, name));
    }

    /// How many values are kept.
    pub fn kept(&self) -> usize {
        let s = self.state.lock().expect("named cache lock");
        s.entries.values().filter(|e| e.value.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, rv: &str) -> PartialObjectMeta<Secret> {
        let mut m = PartialObjectMeta::<Secret>::default();
        m.metadata.name = Some(name.into());
        m.metadata.namespace = Some("app".into());
        m.metadata.resource_version = Some(rv.into());
        m
    }

    fn ok(
        e: watcher::Event<PartialObjectMeta<Secret>>,
    ) -> Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error> {
        Ok(e)
    }

    fn hit(c: &Named<u32>, name: &str) -> Option<u32> {
        match c.lookup("app", name) {
            Lookup::Hit(v) => Some(*v),
            Lookup::Miss(_) => None,
        }
    }

    fn miss(c: &Named<u32>, name: &str) -> Ticket {
        match c.lookup("app", name) {
            Lookup::Hit(_) => panic!("expected a miss"),
            Lookup::Miss(t) => t,
        }
    }

    fn listed(c: &Named<u32>, items: &[(&str, &str)]) {
        c.observe(&ok(watcher::Event::Init));
        for (n, rv) in items {
            c.observe(&ok(watcher::Event::InitApply(meta(n, rv))));
        }
        c.observe(&ok(watcher::Event::InitDone));
    }

    #[test]
    fn a_value_is_served_until_the_watch_sees_its_object_change() {
        let c = Named::<u32>::default();
        let t = miss(&c, "creds");
        c.put("app", "creds", t, "1".into(), Arc::new(7));
        assert_eq!(hit(&c, "creds"), None, "not served before the watch listed");
        listed(&c, &[("creds", "1"), ("other", "5")]);
        assert_eq!(hit(&c, "creds"), Some(7));
        // Another Secret changing does not matter; this one changing does.
        c.observe(&ok(watcher::Event::Apply(meta("other", "6"))));
        assert_eq!(hit(&c, "creds"), Some(7));
        c.observe(&ok(watcher::Event::Apply(meta("creds", "2"))));
        let t = miss(&c, "creds");
        c.put("app", "creds", t, "2".into(), Arc::new(8));
        assert_eq!(hit(&c, "creds"), Some(8));
        c.observe(&ok(watcher::Event::Delete(meta("creds", "2"))));
        assert_eq!(hit(&c, "creds"), None);
        assert_eq!(c.kept(), 0);
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept_and_a_relist_drops_what_went() {
        let c = Named::<u32>::default();
        listed(&c, &[("creds", "1")]);
        let t = miss(&c, "creds");
        // The object changes twice while the read of version 2 is under way.
        c.observe(&ok(watcher::Event::Apply(meta("creds", "2"))));
        c.observe(&ok(watcher::Event::Apply(meta("creds", "3"))));
        c.put("app", "creds", t, "2".into(), Arc::new(2));
        assert_eq!(hit(&c, "creds"), None);
        // A read of the version the watch saw last is current.
        let t = miss(&c, "creds");
        c.observe(&ok(watcher::Event::Apply(meta("creds", "4"))));
        c.put("app", "creds", t, "4".into(), Arc::new(4));
        assert_eq!(hit(&c, "creds"), Some(4));
        // A watch error stops serving; a relist without the object drops it.
        c.observe::<Secret>(&Err(watcher::Error::NoResourceVersion));
        assert_eq!(hit(&c, "creds"), None);
        listed(&c, &[]);
        assert_eq!(hit(&c, "creds"), None);
        assert_eq!(c.kept(), 0);
    }

    #[test]
    fn only_managed_secrets_enter_the_metadata_cache_and_a_relist_replaces_it() {
        let cache = ManagedSecrets::default();
        let mut managed = meta("target", "1");
        managed
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(MANAGED_LABEL.into(), "true".into());
        managed.metadata.annotations = Some(BTreeMap::from([
            (OWNER_ANNOTATION.to_string(), "app-es".to_string()),
            (HASH_ANNOTATION.to_string(), "abc".to_string()),
            ("other".to_string(), "dropped".to_string()),
        ]));
        assert!(cache
            .observe(watcher::Event::InitApply(meta("creds", "1")))
            .is_none());
        assert!(matches!(
            cache.observe(watcher::Event::Apply(managed.clone())),
            Some(watcher::Event::Apply(_))
        ));
        let got = cache.get("app", "target").expect("cached");
        assert_eq!(got.resource_version().as_deref(), Some("1"));
        assert_eq!(
            got.metadata.annotations,
            Some(BTreeMap::from([
                (OWNER_ANNOTATION.to_string(), "app-es".to_string()),
                (HASH_ANNOTATION.to_string(), "abc".to_string()),
            ]))
        );
        // The label goes: the Secret leaves the cache; an unrelated Secret never passes.
        let gone = cache.observe(watcher::Event::Apply(meta("target", "2")));
        assert!(matches!(gone, Some(watcher::Event::Delete(_))));
        assert!(cache.get("app", "target").is_none());
        assert!(cache
            .observe(watcher::Event::Apply(meta("creds", "2")))
            .is_none());
        // A relist replaces the cache when it ends: what it did not list is gone.
        cache.observe(watcher::Event::Apply(managed.clone()));
        cache.observe(watcher::Event::Init);
        assert!(
            cache.get("app", "target").is_some(),
            "served until the relist ends"
        );
        cache.observe(watcher::Event::InitDone);
        assert!(cache.get("app", "target").is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn stripping_drops_managed_fields_and_the_last_applied_copy() {
        let mut s = meta("creds", "1");
        s.metadata.managed_fields = Some(vec![Default::default()]);
        s.metadata.annotations = Some(BTreeMap::from([
            (LAST_APPLIED.to_string(), "{...}".to_string()),
            ("keep".to_string(), "me".to_string()),
        ]));
        strip(&mut s);
        assert!(s.metadata.managed_fields.is_none());
        assert_eq!(
            s.metadata.annotations,
            Some(BTreeMap::from([("keep".to_string(), "me".to_string())]))
        );
    }
}
