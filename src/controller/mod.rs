//! Kubernetes I/O: the reconcilers, their shared context, and the wiring of watches.

mod error;
pub mod external_secret;
pub mod restart;
pub mod store;
mod store_status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, Resource, ResourceExt};

pub use error::{Error, SyncError};

use crate::api::{
    ClusterSecretStore, Condition, ConditionStatus, ExternalSecret, SecretStore, StoreKind,
};
use crate::metrics::Metrics;
use crate::source::{Moved, Sources, Subscriber, Watchers};
use crate::sync::{MANAGED_LABEL, OWNER_ANNOTATION};

/// The field manager of every write arnsync makes.
pub const FIELD_MANAGER: &str = "arnsync";

/// Operator-wide settings (from `arnsync run` flags).
#[derive(Clone, Debug)]
pub struct Options {
    /// Watch only this namespace.
    pub namespace: Option<String>,
    /// How often the version watcher checks for rotations, for stores that do not set
    /// `spec.rotationCheckInterval`.
    pub rotation_check_interval: Duration,
    /// Secret changes of one workload within this window give one rollout.
    pub restart_debounce: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            namespace: None,
            rotation_check_interval: Duration::from_secs(60),
            restart_debounce: Duration::from_secs(5),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub options: Options,
    pub sources: Sources,
    pub metrics: Metrics,
    recorder: Recorder,
    /// Consecutive failures per object uid, for backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Per ExternalSecret uid: the store (uid, generation) of its last read, so that a store
    /// change is applied at once while an operator restart does not re-read everything.
    last_inputs: Mutex<HashMap<String, (String, i64)>>,
    /// The version watchers, one per store identity.
    pub watchers: Watchers,
    moved: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Moved>>>,
    /// Per ExternalSecret: version moves not yet applied.
    rotations: Mutex<HashMap<Subscriber, Vec<Moved>>>,
    /// Debounce state of workload restarts.
    pub pending_restarts: restart::Pending,
    /// The workload caches, to name the workloads a rotation rolls.
    workloads: Mutex<Vec<(&'static str, Store<DynamicObject>)>>,
}

impl Context {
    pub fn new(client: Client, sources: Sources, metrics: Metrics, options: Options) -> Context {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "arnsync".into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        );
        let (watchers, moved) = Watchers::new(sources.clone(), metrics.clone());
        Context {
            watchers,
            moved: Mutex::new(Some(moved)),
            rotations: Mutex::default(),
            pending_restarts: restart::Pending::default(),
            workloads: Mutex::default(),
            client,
            options,
            sources,
            metrics,
            recorder,
            failures: Mutex::default(),
            last_inputs: Mutex::default(),
        }
    }

    /// Exponential backoff with jitter: 2s, 4s, 8s … capped at 5 minutes.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut f = self.failures.lock().expect("failures lock");
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let base = Duration::from_secs(2).saturating_mul(1 << (*n - 1).min(8));
        let capped = base.min(Duration::from_secs(300));
        capped.mul_f64(rand::random_range(0.8..1.2))
    }

    fn add_rotation(&self, subscriber: &Subscriber, moved: Moved) {
        self.rotations
            .lock()
            .expect("rotations lock")
            .entry(subscriber.clone())
            .or_default()
            .push(moved);
    }

    /// The version moves waiting for `subscriber`, oldest first. They stay pending until
    /// [`Context::settle_rotation`]: a read that fails must not forget a rotation.
    fn pending_rotation(&self, subscriber: &Subscriber) -> Vec<Moved> {
        self.rotations
            .lock()
            .expect("rotations lock")
            .get(subscriber)
            .cloned()
            .unwrap_or_default()
    }

    /// Drops the `applied` oldest pending moves of `subscriber` once a sync has written them;
    /// moves that arrived during that sync stay pending.
    fn settle_rotation(&self, subscriber: &Subscriber, applied: usize) {
        let mut rotations = self.rotations.lock().expect("rotations lock");
        if let Some(pending) = rotations.get_mut(subscriber) {
            pending.drain(..applied.min(pending.len()));
            if pending.is_empty() {
                rotations.remove(subscriber);
            }
        }
    }

    /// The opted-in workloads in `ns` whose restarts use Secret `secret`.
    fn workloads_using(&self, ns: &str, secret: &str) -> Vec<crate::api::WorkloadRef> {
        let stores = self.workloads.lock().expect("workloads lock");
        let mut out = vec![];
        for (kind, store) in stores.iter() {
            for w in store.state() {
                if w.namespace().as_deref() != Some(ns) {
                    continue;
                }
                let Some(opt_in) = w.annotations().get(restart::RESTART_ANNOTATION) else {
                    continue;
                };
                let refs = restart::referenced_secrets(&w.data["spec"]["template"]);
                if restart::selected(opt_in, &refs).contains(secret) {
                    out.push(crate::api::WorkloadRef {
                        kind: kind.to_string(),
                        name: w.name_any(),
                    });
                }
            }
        }
        out.sort();
        out
    }

    pub fn forget_failures(&self, key: &str) {
        self.failures.lock().expect("failures lock").remove(key);
    }

    fn remember_sync(&self, es: &ExternalSecret, store: &store::ResolvedStore) {
        self.last_inputs
            .lock()
            .expect("inputs lock")
            .insert(es.uid().unwrap_or_default(), store.version.clone());
    }

    /// False when this process read for `es` with another store version.
    fn same_inputs(&self, es: &ExternalSecret, store: &store::ResolvedStore) -> bool {
        self.last_inputs
            .lock()
            .expect("inputs lock")
            .get(&es.uid().unwrap_or_default())
            .is_none_or(|v| *v == store.version)
    }

    /// Publishes an event; a failure to publish is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: &str,
        action: &str,
    ) {
        self.event_on(obj.object_ref(&()), type_, reason, note, action)
            .await
    }

    /// Publishes an event about `reference`; a failure to publish is logged, never fatal.
    pub async fn event_on(
        &self,
        reference: k8s_openapi::api::core::v1::ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
        action: &str,
    ) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate(note, 1024)),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }
}

/// Writes `status` through server-side apply on `/status` when it differs from `current`, then
/// emits one event when the Ready condition moved from `previous` (a transition, not a retry).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn publish_status<K, S>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    status: &S,
    previous: Option<&Condition>,
    ready: &Condition,
    action: &str,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + PartialEq,
{
    if current != Some(status) {
        let body = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        api.patch_status(
            &obj.name_any(),
            &kube::api::PatchParams::apply(FIELD_MANAGER).force(),
            &kube::api::Patch::Apply(body),
        )
        .await
        .map_err(|source| Error::Status {
            who: format!("{} {}", K::kind(&()), obj.name_any()),
            source,
        })?;
    }
    if previous.is_none_or(|p| p.status != ready.status || p.reason != ready.reason) {
        let type_ = if ready.status == ConditionStatus::True {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.event(obj, type_, &ready.reason, &ready.message, action)
            .await;
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Runs every controller until `shutdown` resolves. `ready` is set to true once the
/// ExternalSecret cache has synced (the first full list is in).
pub async fn run(
    ctx: Arc<Context>,
    ready: tokio::sync::watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let namespace = ctx.options.namespace.clone();
    #[allow(clippy::type_complexity)]
    let (es_api, store_api, secret_api): (
        Api<ExternalSecret>,
        Api<SecretStore>,
        Api<PartialObjectMeta<Secret>>,
    ) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    let cluster_store_api: Api<ClusterSecretStore> = Api::all(client.clone());
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));

    let es_controller = Controller::new(es_api, watcher::Config::default());
    let es_cache = es_controller.store();
    // Metadata only: arnsync never keeps Secret values in memory between reconciles.
    let owned_secrets = watcher::Config::default().labels(&format!("{MANAGED_LABEL}=true"));
    let cache_for_stores = es_cache.clone();
    let cache_for_cluster_stores = es_cache.clone();
    let es_controller = es_controller
        .watches(
            secret_api,
            owned_secrets,
            |meta: PartialObjectMeta<Secret>| {
                let owner = meta.annotations().get(OWNER_ANNOTATION).cloned();
                let ns = meta.namespace();
                owner.and_then(|name: String| {
                    ns.map(|ns: String| ObjectRef::<ExternalSecret>::new(&name).within(&ns))
                })
            },
        )
        .watches(
            store_api.clone(),
            watcher::Config::default(),
            move |store: SecretStore| {
                users_of(
                    &cache_for_stores,
                    StoreKind::SecretStore,
                    &store.name_any(),
                    store.namespace(),
                )
            },
        );
    // ClusterSecretStores are cluster-scoped: in single-namespace mode (namespaced RBAC only)
    // they are not watched, and ExternalSecrets that name one are told so.
    let es_controller = if namespace.is_none() {
        es_controller.watches(
            cluster_store_api.clone(),
            watcher::Config::default(),
            move |store: ClusterSecretStore| {
                users_of(
                    &cache_for_cluster_stores,
                    StoreKind::ClusterSecretStore,
                    &store.name_any(),
                    None,
                )
            },
        )
    } else {
        es_controller
    };
    // Version moves wake the ExternalSecrets that use them, at once.
    let (wake_tx, wake_rx) = futures::channel::mpsc::unbounded::<ObjectRef<ExternalSecret>>();
    let mut moved_rx = ctx.moved.lock().expect("moved lock").take();
    let wake = {
        let ctx = ctx.clone();
        async move {
            let Some(rx) = moved_rx.as_mut() else { return };
            while let Some(m) = rx.recv().await {
                for sub in &m.subscribers {
                    ctx.add_rotation(sub, m.clone());
                    let _ =
                        wake_tx.unbounded_send(ObjectRef::new(&sub.name).within(&sub.namespace));
                }
            }
        }
    };
    let es_run = es_controller
        .reconcile_on(wake_rx)
        .graceful_shutdown_on(shutdown.clone())
        .run(
            external_secret::reconcile,
            external_secret::error_policy,
            ctx.clone(),
        )
        .for_each(|_| futures::future::ready(()));

    let store_run = Controller::new(store_api, watcher::Config::default())
        .graceful_shutdown_on(shutdown.clone())
        .run(
            store_status::reconcile_store,
            store_status::error_policy,
            ctx.clone(),
        )
        .for_each(|_| futures::future::ready(()));
    let cluster_store_run = if namespace.is_none() {
        Controller::new(cluster_store_api, watcher::Config::default())
            .graceful_shutdown_on(shutdown.clone())
            .run(
                store_status::reconcile_cluster_store,
                store_status::error_policy,
                ctx.clone(),
            )
            .for_each(|_| futures::future::ready(()))
            .boxed()
    } else {
        futures::future::ready(()).boxed()
    };

    let mut kinds = restart::builtin_kinds();
    if let Ok(group) = kube::discovery::group(&client, "argoproj.io").await {
        if group.recommended_kind("Rollout").is_some() {
            kinds.push(restart::rollout_kind());
        }
    }
    let mut workload_runs = vec![];
    for kind in kinds {
        let api: Api<DynamicObject> = match &namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &kind.resource),
            None => Api::all_with(client.clone(), &kind.resource),
        };
        let secrets: Api<PartialObjectMeta<Secret>> = match &namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let controller =
            Controller::new_with(api, watcher::Config::default(), kind.resource.clone());
        let store = controller.store();
        ctx.workloads
            .lock()
            .expect("workloads lock")
            .push((kind.kind, store.clone()));
        let resource = kind.resource.clone();
        let kind = Arc::new(kind);
        let run = controller
            .watches(
                secrets,
                watcher::Config::default().labels(&format!("{MANAGED_LABEL}=true")),
                move |meta: PartialObjectMeta<Secret>| workloads_of(&store, &resource, &meta),
            )
            .graceful_shutdown_on(shutdown.clone())
            .run(
                move |obj, ctx| {
                    let kind = kind.clone();
                    async move { restart::reconcile(obj, ctx, &kind).await }
                },
                restart::error_policy,
                ctx.clone(),
            )
            .for_each(|_| futures::future::ready(()));
        workload_runs.push(run.boxed());
    }
    let workloads_run = futures::future::join_all(workload_runs);

    let readiness = {
        let cache = es_cache.clone();
        let ctx = ctx.clone();
        async move {
            if cache.wait_until_ready().await.is_ok() {
                let _ = ready.send(true);
            }
            // Keep the condition gauge current from the cache (no extra API calls), and stop
            // watching versions for ExternalSecrets that are gone.
            loop {
                count_conditions(&cache, &ctx.metrics);
                let present: std::collections::BTreeSet<Subscriber> = cache
                    .state()
                    .iter()
                    .map(|es| Subscriber::new(&es.namespace().unwrap_or_default(), &es.name_any()))
                    .collect();
                for gone in ctx.watchers.subscribers().difference(&present) {
                    ctx.watchers.untrack(gone);
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    tokio::select! {
        _ = async { tokio::join!(es_run, store_run, cluster_store_run, workloads_run) } => {}
        _ = wake => {}
        _ = readiness => {}
    }
}

/// Sets `arnsync_external_secrets{ready}` from the cache.
fn count_conditions(cache: &kube::runtime::reflector::Store<ExternalSecret>, metrics: &Metrics) {
    let (mut t, mut f, mut u) = (0i64, 0i64, 0i64);
    for es in cache.state() {
        let ready = es
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        match ready {
            Some(ConditionStatus::True) => t += 1,
            Some(ConditionStatus::False) => f += 1,
            _ => u += 1,
        }
    }
    for (label, n) in [("True", t), ("False", f), ("Unknown", u)] {
        metrics
            .external_secrets
            .get_or_create(&crate::metrics::ConditionLabels { ready: label })
            .set(n);
    }
}

/// The opted-in workloads (from a workload cache) that a managed Secret's change concerns.
fn workloads_of(
    store: &Store<DynamicObject>,
    resource: &kube::api::ApiResource,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<DynamicObject>> {
    let (Some(ns), name) = (secret.namespace(), secret.name_any()) else {
        return vec![];
    };
    store
        .state()
        .iter()
        .filter(|w| w.namespace().as_deref() == Some(ns.as_str()))
        .filter(|w| {
            w.annotations()
                .get(restart::RESTART_ANNOTATION)
                .is_some_and(|opt_in| {
                    let refs = restart::referenced_secrets(&w.data["spec"]["template"]);
                    restart::selected(opt_in, &refs).contains(&name)
                })
        })
        .map(|w| ObjectRef::from_obj_with(w.as_ref(), resource.clone()))
        .collect()
}

/// The ExternalSecrets (from the controller's cache) that use a store.
fn users_of(
    cache: &kube::runtime::reflector::Store<ExternalSecret>,
    kind: StoreKind,
    name: &str,
    namespace: Option<String>,
) -> Vec<ObjectRef<ExternalSecret>> {
    cache
        .state()
        .iter()
        .filter(|es| {
            es.spec.secret_store_ref.kind == kind
                && es.spec.secret_store_ref.name == name
                && (namespace.is_none() || es.namespace() == namespace)
        })
        .map(|es| ObjectRef::from_obj(es.as_ref()))
        .collect()
}
