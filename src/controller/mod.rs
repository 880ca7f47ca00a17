//! Kubernetes I/O: the reconcilers, their shared context, and the wiring of watches.

pub mod cached_external_secret;
pub mod caches;
pub mod cluster_external_secret;
mod error;
pub mod external_secret;
mod identities;
pub mod restart;
pub mod store;
mod store_status;
mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::pin::Pin;

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};

pub use error::{Error, SyncError};
pub use tokens::KubeTokens;

use crate::api::{Condition, ConditionStatus};
use crate::metrics::Metrics;
use crate::source::Sources;

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
    /// With a healthy event queue, how often the version watcher still polls.
    pub event_safety_interval: Duration,
    /// Secret changes of one workload within this window give one rollout.
    pub restart_debounce: Duration,
    /// How often the cost estimate in store status may change.
    pub cost_status_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            namespace: None,
            rotation_check_interval: Duration::from_secs(60),
            event_safety_interval: Duration::from_secs(600),
            restart_debounce: Duration::from_secs(5),
            cost_status_interval: Duration::from_secs(300),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub options: Options,
    pub sources: Sources,
    pub metrics: Metrics,
    /// Who publishes events. A recorder is made per event: kube's `Recorder` keeps every event
    /// it published for minutes (to count repeats as a series), which at 10,000 objects is tens
    /// of MiB, and arnsync publishes only transitions, which do not repeat.
    reporter: Reporter,
    /// Consecutive failures per object, for backoff.
    pub backoff: Backoff,
    /// The version watchers and the rotations they reported.
    pub versions: external_secret::VersionWatch,
    /// Workload restart state and caches.
    pub restarts: restart::Restarts,
    /// Which objects use which AWS identity, to free what nobody uses.
    pub identities: identities::IdentityUsers,
    /// The watched caches reconciles read instead of the API server.
    pub caches: caches::Caches,
    /// Per ExternalSecret, the target Secret's version known to hold its hash and the store
    /// version of its last read.
    pub memo: external_secret::SyncMemo,
    /// The status writes whose watch events have not been seen yet.
    pub written: Written,
    /// At most this many periodic refreshes read AWS at once, so that first syncs find room.
    pub refreshes: Arc<tokio::sync::Semaphore>,
    wake: futures::channel::mpsc::UnboundedSender<cached_external_secret::EsRef>,
    woken: Mutex<Option<futures::channel::mpsc::UnboundedReceiver<cached_external_secret::EsRef>>>,
}

/// How many reconciles of one kind run at once.
pub const CONCURRENCY: u16 = 32;
/// How many of them may be periodic refreshes of ExternalSecrets already in sync: the others
/// are kept for ExternalSecrets never synced (or changed), rotations and forced syncs.
pub const REFRESH_SLOTS: usize = 8;

/// Per object uid: the resourceVersion a status write was based on and the one it produced.
/// While the cache still shows the former, the cached object predates arnsync's own write (its
/// watch event is on the way): a reconcile of it would redo work and repeat events.
#[derive(Default)]
pub struct Written(Mutex<HashMap<String, (String, String)>>);

impl Written {
    fn wrote(&self, kind: &str, uid: String, before: Option<String>, after: Option<String>) {
        let mut w = self.0.lock().expect("written lock");
        match (before, after) {
            (Some(b), Some(a)) if b != a => {
                w.insert(uid, (kind.to_string(), b));
            }
            _ => {
                w.remove(&uid);
            }
        }
    }

    /// True when `obj` in the cache is older than arnsync's last status write of it.
    pub fn stale<K: Resource>(&self, obj: &K) -> bool {
        let (Some(uid), Some(rv)) = (
            obj.meta().uid.as_ref(),
            obj.meta().resource_version.as_ref(),
        ) else {
            return false;
        };
        let mut w = self.0.lock().expect("written lock");
        match w.get(uid) {
            Some((_, before)) if before == rv => true,
            Some(_) => {
                w.remove(uid);
                false
            }
            None => false,
        }
    }

    /// Forgets the objects of `kind` not in `live` (uids).
    pub fn retain(&self, kind: &str, live: &std::collections::HashSet<String>) {
        self.0
            .lock()
            .expect("written lock")
            .retain(|uid, (k, _)| k != kind || live.contains(uid));
    }
}

/// Resolves when the controllers are to stop; shared by all of them.
pub(crate) type Shutdown =
    futures::future::Shared<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>>;

/// Exponential backoff with jitter per object key: 2s, 4s, 8s … capped at 5 minutes.
#[derive(Default)]
pub struct Backoff(Mutex<HashMap<String, u32>>);

impl Backoff {
    /// The wait after one more failure of `key`.
    pub fn next(&self, key: &str) -> Duration {
        let mut f = self.0.lock().expect("failures lock");
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let base = Duration::from_secs(2).saturating_mul(1 << (*n - 1).min(8));
        let capped = base.min(Duration::from_secs(300));
        capped.mul_f64(rand::random_range(0.8..1.2))
    }

    /// `key` succeeded: its next failure starts from the shortest wait.
    pub fn forget(&self, key: &str) {
        self.0.lock().expect("failures lock").remove(key);
    }
}

impl Context {
    pub fn new(client: Client, sources: Sources, metrics: Metrics, options: Options) -> Context {
        let reporter = Reporter {
            controller: "arnsync".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let (wake, woken) = futures::channel::mpsc::unbounded();
        Context {
            caches: caches::Caches::default(),
            memo: external_secret::SyncMemo::default(),
            written: Written::default(),
            refreshes: Arc::new(tokio::sync::Semaphore::new(REFRESH_SLOTS)),
            wake,
            woken: Mutex::new(Some(woken)),
            versions: external_secret::VersionWatch::new(sources.clone(), metrics.clone()),
            restarts: restart::Restarts::default(),
            client,
            options,
            sources,
            metrics,
            reporter,
            backoff: Backoff::default(),
            identities: identities::IdentityUsers::default(),
        }
    }

    /// Asks for a reconcile of an ExternalSecret.
    pub(crate) fn wake_external_secret(&self, es: cached_external_secret::EsRef) {
        let _ = self.wake.unbounded_send(es);
    }

    /// The wake-ups of [`Context::wake_external_secret`], for the ExternalSecret controller.
    pub(crate) fn woken_external_secrets(
        &self,
    ) -> futures::channel::mpsc::UnboundedReceiver<cached_external_secret::EsRef> {
        self.woken
            .lock()
            .expect("woken lock")
            .take()
            .expect("one ExternalSecret controller")
    }

    /// The API of a namespaced kind: in the watched namespace, or in all.
    pub(crate) fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        match &self.options.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
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
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(e) = recorder.publish(&ev, &reference).await {
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
        let written = api
            .patch_status(
                &obj.name_any(),
                &kube::api::PatchParams::apply(FIELD_MANAGER).force(),
                &kube::api::Patch::Apply(body),
            )
            .await
            .map_err(|source| Error::Status {
                who: format!("{} {}", K::kind(&()), obj.name_any()),
                source,
            })?;
        ctx.written.wrote(
            &K::kind(&()),
            obj.uid().unwrap_or_default(),
            obj.resource_version(),
            written.resource_version(),
        );
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
    let shutdown: Shutdown = futures::FutureExt::shared(Box::pin(shutdown) as Pin<Box<_>>);
    let (es_cache, external_secrets) = external_secret::controller(&ctx, shutdown.clone());
    let stores = store_status::controllers(&ctx, shutdown.clone());
    let workloads = restart::controllers(&ctx, shutdown.clone());
    // Cluster-scoped: not run for one namespace (namespaced RBAC only).
    let cluster_external_secrets = async {
        if ctx.options.namespace.is_none() {
            cluster_external_secret::controller(&ctx, shutdown).await;
        }
    };
    let readiness = async move {
        if es_cache.wait_until_ready().await.is_ok() {
            let _ = ready.send(true);
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = async { tokio::join!(external_secrets, stores, workloads, cluster_external_secrets) } => {}
        _ = readiness => {}
    }
}
