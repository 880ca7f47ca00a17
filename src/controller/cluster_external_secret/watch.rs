//! What wakes a ClusterExternalSecret: its own changes, a change of the labels (or the deletion)
//! of any namespace, and a change of an ExternalSecret it created or whose name it writes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};

use super::{error_policy, reconcile, CesContext};
use crate::api::{ClusterExternalSecret, ExternalSecret};
use crate::controller::caches::strip_namespace;
use crate::controller::{Context, Shutdown};

/// Runs the ClusterExternalSecret controller until `shutdown` resolves.
pub(in crate::controller) async fn controller(ctx: &Arc<Context>, shutdown: Shutdown) {
    let client = ctx.client.clone();
    let controller = Controller::new(
        Api::<ClusterExternalSecret>::all(client.clone()),
        watcher::Config::default(),
    );
    let cache = controller.store();
    let namespaces = ctx.caches.namespaces.clone();
    let woken_by_namespaces = namespace_changes(
        Api::all(client.clone()),
        ctx.caches.namespaces(),
        cache.clone(),
    );
    let cx = Arc::new(CesContext {
        ctx: ctx.clone(),
        namespaces,
    });
    let woken_by_external_secrets = external_secret_changes(Api::all(client), cache.clone());
    controller
        .reconcile_on(futures::stream::select(
            woken_by_namespaces,
            woken_by_external_secrets,
        ))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, cx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Keeps the namespace cache (metadata only, shared with the store checks of ClusterSecretStore
/// conditions) and wakes every ClusterExternalSecret when a namespace's labels change, a
/// namespace starts terminating or goes, and after each full list.
fn namespace_changes(
    api: Api<PartialObjectMeta<Namespace>>,
    writer: reflector::store::Writer<PartialObjectMeta<Namespace>>,
    cache: Store<ClusterExternalSecret>,
) -> impl Stream<Item = ObjectRef<ClusterExternalSecret>> + Send + 'static {
    let mut seen: HashMap<String, (BTreeMap<String, String>, bool)> = HashMap::new();
    watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(strip_namespace)
        .reflect(writer)
        .filter_map(move |event| {
            let view = |ns: &PartialObjectMeta<Namespace>| {
                (
                    ns.name_any(),
                    (
                        ns.labels().clone(),
                        ns.metadata.deletion_timestamp.is_some(),
                    ),
                )
            };
            let wake = match event {
                Ok(watcher::Event::Apply(ns)) => {
                    let (name, v) = view(&ns);
                    seen.insert(name, v.clone()) != Some(v)
                }
                Ok(watcher::Event::Delete(ns)) => {
                    seen.remove(&ns.name_any());
                    true
                }
                Ok(watcher::Event::Init) => {
                    seen.clear();
                    false
                }
                Ok(watcher::Event::InitApply(ns)) => {
                    let (name, v) = view(&ns);
                    seen.insert(name, v);
                    false
                }
                Ok(watcher::Event::InitDone) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "namespace watch failed; retrying");
                    false
                }
            };
            let all = wake.then(|| {
                cache
                    .state()
                    .iter()
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            });
            futures::future::ready(all)
        })
        .flat_map(futures::stream::iter)
}

/// What of an ExternalSecret matters to a ClusterExternalSecret, as a hash: its generation,
/// labels, annotations and owners; not its status, which changes with every sync. Kept per
/// `namespace/name` (a hash rather than copies: 8 bytes, not the labels and annotations).
fn es_view(es: &PartialObjectMeta<ExternalSecret>) -> (Box<str>, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    es.metadata.generation.hash(&mut h);
    es.labels().hash(&mut h);
    es.annotations().hash(&mut h);
    for o in es.owner_references() {
        o.uid.hash(&mut h);
    }
    let key = format!("{}/{}", es.namespace().unwrap_or_default(), es.name_any());
    (key.into_boxed_str(), h.finish())
}

/// Wakes the ClusterExternalSecrets concerned when an ExternalSecret appears, goes, or changes
/// its spec, labels, annotations or owners (metadata only; status writes do not wake).
fn external_secret_changes(
    api: Api<PartialObjectMeta<ExternalSecret>>,
    cache: Store<ClusterExternalSecret>,
) -> impl Stream<Item = ObjectRef<ClusterExternalSecret>> + Send + 'static {
    let mut seen: HashMap<Box<str>, u64> = HashMap::new();
    let view = es_view;
    watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| {
            let changed = match event {
                Ok(watcher::Event::Apply(es)) => {
                    let (key, v) = view(&es);
                    (seen.insert(key, v) != Some(v)).then_some(es)
                }
                Ok(watcher::Event::Delete(es)) => {
                    let (key, _) = view(&es);
                    seen.remove(&key);
                    Some(es)
                }
                Ok(watcher::Event::Init) => {
                    seen.clear();
                    None
                }
                // The ClusterExternalSecrets' own first passes follow their initial list.
                Ok(watcher::Event::InitApply(es)) => {
                    let (key, v) = view(&es);
                    seen.insert(key, v);
                    None
                }
                Ok(watcher::Event::InitDone) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "ExternalSecret watch failed; retrying");
                    None
                }
            };
            futures::future::ready(changed.map(|es| concerned(&cache, &es)))
        })
        .flat_map(futures::stream::iter)
}

/// The ClusterExternalSecrets an ExternalSecret's change concerns: the one that created it, or,
/// for any other, those that write an ExternalSecret of its name (it may block or free a
/// namespace).
fn concerned(
    cache: &Store<ClusterExternalSecret>,
    es: &PartialObjectMeta<ExternalSecret>,
) -> Vec<ObjectRef<ClusterExternalSecret>> {
    let owner = es.owner_references().iter().find(|o| {
        o.controller == Some(true)
            && o.kind == ClusterExternalSecret::kind(&())
            && o.api_version == ClusterExternalSecret::api_version(&())
    });
    if let Some(o) = owner {
        return vec![ObjectRef::new(&o.name)];
    }
    let name = es.name_any();
    cache
        .state()
        .iter()
        .filter(|c| c.external_secret_name() == name)
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}
