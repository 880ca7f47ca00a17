//! Dereference: the inputs of a sync besides the spec — the target Secret as it is, and the
//! store with its credentials — and which changes of them wake an ExternalSecret.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Resource, ResourceExt};

use super::super::caches::strip;
use super::super::store::{self, ResolvedStore};
use super::super::Context;
use crate::api::{CreationPolicy, ExternalSecret, StoreKind};
use crate::controller::cached_external_secret::{CachedExternalSecret, EsRef};
use crate::controller::SyncError;
use crate::sync::{
    data_hash, named_sources, PlanError, TemplateSources, HASH_ANNOTATION, OWNER_ANNOTATION,
};

pub(super) struct Inputs {
    /// The Secrets of the ExternalSecret's namespace.
    pub secrets: Api<Secret>,
    /// The target Secret, if it exists.
    pub target: Target,
    pub store: ResolvedStore,
}

/// The target Secret as a sync knows it before deciding.
pub(super) struct Target {
    /// The Secret, if it exists: read in full, or only its cached metadata (no data).
    pub secret: Option<Secret>,
    /// True when `secret` was read from the API server (with its data).
    pub full: bool,
    /// True when the Secret is at the resourceVersion at which arnsync last wrote it or found
    /// its data matching its hash annotation: it still does, without reading it.
    pub intact: bool,
}

pub(super) async fn inputs(es: &ExternalSecret, ctx: &Context) -> Result<Inputs, SyncError> {
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &es.namespace().unwrap_or_default());
    let store = store::resolve_for(ctx, es).await?;
    let target = target(es, ctx, &secrets).await?;
    Ok(Inputs {
        secrets,
        target,
        store,
    })
}

/// The target Secret from the metadata cache when that is enough to decide: it is at the
/// version arnsync last wrote or verified, or a Merge target (whose data is not compared).
/// Otherwise it is read.
async fn target(
    es: &ExternalSecret,
    ctx: &Context,
    secrets: &Api<Secret>,
) -> Result<Target, SyncError> {
    let (ns, name) = (es.namespace().unwrap_or_default(), es.target_name());
    if let Some(meta) = ctx.caches.managed_secrets.get(&ns, &name) {
        let rv = meta.resource_version().unwrap_or_default();
        let intact = ctx.memo.target_intact(es, &rv);
        if intact || es.spec.target.creation_policy == CreationPolicy::Merge {
            return Ok(Target {
                secret: Some(Secret {
                    metadata: meta.metadata,
                    ..Secret::default()
                }),
                full: false,
                intact,
            });
        }
    }
    Ok(Target {
        secret: read_target(es, secrets).await?,
        full: true,
        intact: false,
    })
}

async fn read_target(
    es: &ExternalSecret,
    secrets: &Api<Secret>,
) -> Result<Option<Secret>, SyncError> {
    secrets
        .get_opt(&es.target_name())
        .await
        .map_err(|source| SyncError::Kube {
            who: es.label(),
            source,
        })
}

impl Inputs {
    /// The target Secret with its data, for planning: read now if only its metadata is known.
    pub(super) async fn full_target(
        &mut self,
        es: &ExternalSecret,
    ) -> Result<Option<&Secret>, SyncError> {
        if !self.target.full {
            self.target.secret = read_target(es, &self.secrets).await?;
            self.target.full = true;
            self.target.intact = false;
        }
        Ok(self.target.secret.as_ref())
    }
}

/// True when a Secret's data is what its hash annotation says (data written by arnsync and
/// not edited since).
pub(super) fn holds_its_hash(secret: &Secret) -> bool {
    let Some(annotated) = secret.annotations().get(HASH_ANNOTATION) else {
        return false;
    };
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    &data_hash(&data) == annotated
}

/// Reads the ConfigMaps and Secrets of the ExternalSecret's namespace that
/// `target.template.templateFrom` names (their texts are templates, not values).
pub(super) async fn template_sources(
    es: &ExternalSecret,
    ctx: &Context,
) -> Result<TemplateSources, SyncError> {
    let mut out = TemplateSources::default();
    let Some(t) = es.spec.target.template.as_ref() else {
        return Ok(out);
    };
    let (config_maps, secrets) = named_sources(t);
    let ns = es.namespace().unwrap_or_default();
    let who = es.label();
    let missing = |kind: &str, name: &str| {
        SyncError::Plan(PlanError::Template(format!(
            "{who}: target.template.templateFrom: {kind} {ns}/{name} does not exist; create it or fix the name"
        )))
    };
    let kube = |source| SyncError::Kube {
        who: who.clone(),
        source,
    };
    for name in config_maps {
        let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&name)
            .await
            .map_err(kube)?
            .ok_or_else(|| missing("ConfigMap", &name))?;
        out.config_maps.insert(name, cm.data.unwrap_or_default());
    }
    for name in secrets {
        let secret = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&name)
            .await
            .map_err(kube)?
            .ok_or_else(|| missing("Secret", &name))?;
        let texts = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect();
        out.secrets.insert(name, texts);
    }
    Ok(out)
}

/// Per ExternalSecret uid, what this process knows of its last sync (lost on restart):
/// - the target Secret's name and the resourceVersion at which its data was known to match its
///   hash annotation (arnsync wrote it, or read and checked it); the first sync after a restart
///   reads each target Secret once;
/// - the store (uid, generation) of its last read, so that a store change is applied at once
///   while an operator restart does not re-read everything.
///
/// One entry per ExternalSecret; names and store versions as hashes (a collision is as likely as
/// two random 64-bit numbers being equal).
#[derive(Default)]
pub struct SyncMemo(Mutex<HashMap<String, Remembered>>);

#[derive(Default)]
struct Remembered {
    /// Hash of the target Secret's name, and its resourceVersion.
    target: Option<(u64, Box<str>)>,
    /// Hash of the store's (uid, generation).
    store: Option<u64>,
}

fn hash_of(v: &impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

impl SyncMemo {
    fn target_intact(&self, es: &ExternalSecret, resource_version: &str) -> bool {
        self.0
            .lock()
            .expect("memo lock")
            .get(&es.uid().unwrap_or_default())
            .and_then(|r| r.target.as_ref())
            .is_some_and(|(name, rv)| {
                *name == hash_of(&es.target_name()) && &**rv == resource_version
            })
    }

    /// Remembers `secret` when its data matches its hash annotation; forgets otherwise.
    pub(super) fn remember_target(&self, es: &ExternalSecret, secret: Option<&Secret>) {
        let target = secret
            .filter(|s| holds_its_hash(s))
            .and_then(|s| s.resource_version())
            .map(|rv| (hash_of(&es.target_name()), rv.into_boxed_str()));
        self.update(es, |r| r.target = target);
    }

    pub(super) fn remember_inputs(&self, es: &ExternalSecret, store: &ResolvedStore) {
        let version = hash_of(&store.version);
        self.update(es, |r| r.store = Some(version));
    }

    /// False when this process read for `es` with another store version.
    pub(super) fn same_inputs(&self, es: &ExternalSecret, store: &ResolvedStore) -> bool {
        self.0
            .lock()
            .expect("memo lock")
            .get(&es.uid().unwrap_or_default())
            .and_then(|r| r.store)
            .is_none_or(|v| v == hash_of(&store.version))
    }

    /// Forgets the ExternalSecrets not in `live` (uids).
    pub(super) fn retain(&self, live: &HashSet<String>) {
        self.0
            .lock()
            .expect("memo lock")
            .retain(|uid, _| live.contains(uid));
    }

    fn update(&self, es: &ExternalSecret, change: impl FnOnce(&mut Remembered)) {
        let uid = es.uid().unwrap_or_default();
        let mut memo = self.0.lock().expect("memo lock");
        let entry = memo.entry(uid).or_default();
        change(entry);
        if entry.target.is_none() && entry.store.is_none() {
            memo.remove(&es.uid().unwrap_or_default());
        }
    }
}

/// Wakes an ExternalSecret when its Secret changes, and keeps the Secret caches: one metadata
/// watch of the Secrets (arnsync never keeps Secret values in memory between reconciles) fills
/// the managed Secrets' metadata cache and tells the credentials cache which Secrets changed.
pub(super) fn wake_on_inputs(
    controller: Controller<CachedExternalSecret>,
    ctx: &Arc<Context>,
) -> Controller<CachedExternalSecret> {
    let caches = ctx.clone();
    let secrets = watcher(
        ctx.api::<PartialObjectMeta<Secret>>(),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(strip)
    .inspect(move |event| caches.caches.credentials.observe(event))
    .try_filter_map({
        let ctx = ctx.clone();
        move |event| futures::future::ready(Ok(ctx.caches.managed_secrets.observe(event)))
    })
    .touched_objects();
    controller.watches_stream(secrets, |meta: PartialObjectMeta<Secret>| {
        let owner = meta.annotations().get(OWNER_ANNOTATION).cloned();
        let ns = meta.namespace();
        owner.and_then(|name: String| ns.map(|ns: String| EsRef::new(&name).within(&ns)))
    })
}

/// Keeps the ServiceAccount cache of `auth.jwt` stores current (metadata watch; only the
/// ServiceAccounts stores name are kept). Runs until the process ends.
pub(super) async fn follow_service_accounts(ctx: &Context) {
    watcher(
        ctx.api::<PartialObjectMeta<ServiceAccount>>(),
        watcher::Config::default(),
    )
    .default_backoff()
    .for_each(|event| {
        ctx.caches.service_accounts.observe(&event);
        futures::future::ready(())
    })
    .await;
}

/// Wakes the ExternalSecrets that use a store when the store changes (anything but its status,
/// which its own controller writes) or goes; fed by the store watch.
pub(crate) struct StoreWakes<K> {
    kind: StoreKind,
    seen: HashMap<(String, String), StoreView>,
    listed: bool,
    _kind: std::marker::PhantomData<K>,
}

type StoreView = (
    Option<String>,
    Option<i64>,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    bool,
);

impl<K: Resource<DynamicType = ()>> StoreWakes<K> {
    pub(crate) fn new(kind: StoreKind) -> Self {
        StoreWakes {
            kind,
            seen: HashMap::new(),
            listed: false,
            _kind: std::marker::PhantomData,
        }
    }

    /// The ExternalSecrets `event` concerns, sent to the ExternalSecret controller.
    pub(crate) fn observe(
        &mut self,
        ctx: &Context,
        event: &Result<watcher::Event<K>, watcher::Error>,
    ) {
        let key = |s: &K| (s.namespace().unwrap_or_default(), s.name_any());
        let view = |s: &K| -> StoreView {
            (
                s.uid(),
                s.meta().generation,
                s.labels().clone(),
                s.annotations().clone(),
                s.meta().deletion_timestamp.is_some(),
            )
        };
        let changed = match event {
            Ok(watcher::Event::Apply(s)) => {
                let v = view(s);
                (self.seen.insert(key(s), v.clone()) != Some(v)).then_some(s)
            }
            // Stores listed at start-up wake nothing (every ExternalSecret is reconciled then);
            // a relist after a lost watch wakes the users of what changed meanwhile.
            Ok(watcher::Event::InitApply(s)) => {
                let v = view(s);
                let changed = self.seen.insert(key(s), v.clone()) != Some(v);
                (changed && self.listed).then_some(s)
            }
            Ok(watcher::Event::InitDone) => {
                self.listed = true;
                None
            }
            Ok(watcher::Event::Delete(s)) => {
                self.seen.remove(&key(s));
                Some(s)
            }
            _ => None,
        };
        if let Some(s) = changed {
            let users = users_of(
                &ctx.caches.external_secrets,
                self.kind,
                &s.name_any(),
                s.namespace(),
            );
            for u in users {
                ctx.wake_external_secret(u);
            }
        }
    }
}

/// The ExternalSecrets (from the controller's cache) that use a store.
fn users_of(
    cache: &Store<CachedExternalSecret>,
    kind: StoreKind,
    name: &str,
    namespace: Option<String>,
) -> Vec<EsRef> {
    cache
        .state()
        .iter()
        .filter(|es| {
            es.store_ref().kind == kind
                && es.store_ref().name == name
                && (namespace.is_none() || es.namespace() == namespace)
        })
        .map(|es| ObjectRef::from_obj(es.as_ref()))
        .collect()
}
