//! The ExternalSecret reconciler, as a pipeline: validate → dereference → decide → fetch →
//! plan → apply → status. Each step is its own module; only [`watch`] talks to the version
//! watcher.

mod apply;
mod decide;
mod dereference;
mod fetch;
mod status;
mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::ResourceExt;

pub(crate) use dereference::StoreWakes;
pub use dereference::SyncMemo;
pub(crate) use status::count_conditions;
pub use watch::VersionWatch;

use super::cached_external_secret::CachedExternalSecret;
use super::error::{Error, SyncError};
use super::Context;
use crate::api::ExternalSecret;
use crate::sync::{self, Action as PlanAction, Plan, PlanInput};
use decide::{decide, Decision, Facts};

/// Annotation on an ExternalSecret: a new value forces an immediate full read.
pub const FORCE_SYNC_ANNOTATION: &str = "arnsync.io/force-sync";

/// What a successful sync leaves behind for the status.
struct Synced {
    plan: Plan,
    read: bool,
    refresh: Duration,
    /// The version moves this sync applied (a rotation wake-up that changed the Secret).
    rotated: Vec<crate::api::RotatedSource>,
}

/// Reconciles an ExternalSecret of the cache, expanded for the time of the reconcile.
pub async fn reconcile(
    cached: Arc<CachedExternalSecret>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let es = cached.expand().map_err(|reason| Error::Cache {
        who: format!(
            "ExternalSecret {}/{}",
            cached.namespace().unwrap_or_default(),
            cached.name_any()
        ),
        reason,
    })?;
    reconcile_object(Arc::new(es), ctx).await
}

async fn reconcile_object(es: Arc<ExternalSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    if es.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if ctx.written.stale(es.as_ref()) {
        // The cache predates this process's last status write: its watch event brings the
        // ExternalSecret as written, and another reconcile with it.
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let outcome = match sync(&es, &ctx).await {
        Ok(Step::Deferred) => return Ok(Action::requeue(deferral())),
        Ok(Step::Synced(s)) => Ok(s),
        Err(e) => Err(e),
    };
    status::publish(&es, &ctx, &outcome, Utc::now()).await?;
    status::record(&es, &ctx, &outcome, started);
    let key = es.uid().unwrap_or_default();
    Ok(match &outcome {
        Ok(synced) => {
            ctx.backoff.forget(&key);
            if synced.plan.gone.is_some() {
                Action::requeue(ctx.backoff.next(&key))
            } else if synced.refresh.is_zero() {
                Action::await_change()
            } else {
                Action::requeue(jitter(synced.refresh))
            }
        }
        Err(_) => Action::requeue(ctx.backoff.next(&key)),
    })
}

/// What a sync did: synced (or found nothing to do), or put off a periodic refresh because the
/// refresh slots are taken.
enum Step {
    Synced(Synced),
    Deferred,
}

/// How long a deferred refresh waits before it tries again (spread out).
fn deferral() -> Duration {
    Duration::from_millis(rand::random_range(2000..5000))
}

/// True when the ExternalSecret is Ready at its current generation: a read for it is a
/// periodic refresh (or a re-check), which gives way to ExternalSecrets never synced.
fn in_sync(es: &ExternalSecret) -> bool {
    es.status.as_ref().is_some_and(|s| {
        s.observed_generation == es.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == crate::api::ConditionStatus::True)
    })
}

async fn sync(es: &ExternalSecret, ctx: &Context) -> Result<Step, SyncError> {
    sync::validate(es).map_err(SyncError::InvalidSpec)?;
    let uid = es.uid().unwrap_or_default();
    let mut inputs = dereference::inputs(es, ctx).await.inspect_err(|e| {
        if e.store_unusable() {
            ctx.identities.stops_using(&uid);
        }
    })?;
    // The service and key prefix are the store's: bind them, then check what depends on them.
    let bound = es.bound_to(inputs.store.service, inputs.store.prefix.as_deref());
    let spec = sync::validate(&bound).map_err(SyncError::InvalidSpec)?;
    ctx.identities.uses(&uid, &inputs.store.identity);
    let sub = ctx.versions.subscribe(&spec, &inputs.store, &ctx.options)?;
    let pending = ctx.versions.pending(&sub);
    let facts = Facts {
        spec: &spec,
        existing: inputs.target.secret.as_ref(),
        intact: inputs.target.intact,
        pending_rotations: pending.len(),
        same_inputs: ctx.memo.same_inputs(es, &inputs.store),
    };
    let (pinned, forced) = match decide(&facts, Utc::now()) {
        Decision::UpToDate(plan) => {
            if follows_rotations(&spec) {
                sub.track_from_status(&spec);
            }
            if inputs.target.full {
                ctx.memo.remember_target(es, inputs.target.secret.as_ref());
            }
            return Ok(Step::Synced(Synced {
                plan,
                read: false,
                refresh: spec.refresh,
                rotated: vec![],
            }));
        }
        Decision::Read { pinned, forced } => (pinned, forced),
    };
    // A periodic refresh of an ExternalSecret in sync waits for a free refresh slot; anything
    // else (never synced, changed, rotated, forced) reads at once.
    let _slot = if in_sync(es) && !pinned && !forced {
        match ctx.refreshes.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => return Ok(Step::Deferred),
        }
    } else {
        None
    };
    let source = ctx.sources.source(&inputs.store.identity);
    let reads = fetch::read_all(&spec, source.as_ref(), &sub.pins(pinned), forced).await?;
    if follows_rotations(&spec) {
        sub.track_reads(&reads);
    }
    let templates = dereference::template_sources(es, ctx).await?;
    let existing = inputs.full_target(es).await?;
    let plan = sync::plan(PlanInput {
        spec: &spec,
        reads,
        existing,
        templates: &templates,
    })?;
    match apply::write(&inputs.secrets, &spec, &plan.action).await? {
        Some(written) => ctx.memo.remember_target(es, Some(&written)),
        None if plan.action == PlanAction::Delete => ctx.memo.remember_target(es, None),
        None => ctx.memo.remember_target(es, inputs.target.secret.as_ref()),
    }
    ctx.versions.settle(&sub, pending.len());
    ctx.memo.remember_inputs(es, &inputs.store);
    let changed = matches!(
        plan.action,
        PlanAction::Apply { changed: true, .. } | PlanAction::Delete
    );
    let rotated = if changed {
        if let (Some(at), Some(hash)) = (watch::earliest_move(&pending), &plan.data_hash) {
            let ns = es.namespace().unwrap_or_default();
            ctx.restarts
                .rotated
                .written(&ns, &es.target_name(), hash, at);
        }
        watch::applied(&pending, &ctx.metrics)
    } else {
        vec![]
    };
    Ok(Step::Synced(Synced {
        plan,
        read: true,
        refresh: spec.refresh,
        rotated,
    }))
}

/// refreshPolicy OnChange and CreatedOnce read only when the ExternalSecret changes: a rotation
/// in AWS does not wake them.
fn follows_rotations(spec: &sync::ValidSpec<'_>) -> bool {
    spec.policy == crate::api::RefreshPolicy::Periodic
}

pub fn error_policy(es: Arc<CachedExternalSecret>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(object = %es.name_any(), error = %err, "reconcile failed");
    Action::requeue(ctx.backoff.next(&es.uid().unwrap_or_default()))
}

/// Adds up to ±10% so that ExternalSecrets created together do not refresh together.
fn jitter(d: Duration) -> Duration {
    let f: f64 = rand::random_range(0.9..1.1);
    d.mul_f64(f)
}

/// The ExternalSecret controller and its cache, woken by owned Secrets, stores and rotations.
pub(super) fn controller(
    ctx: &Arc<Context>,
    shutdown: super::Shutdown,
) -> (
    Store<CachedExternalSecret>,
    impl std::future::Future<Output = ()>,
) {
    let cache = ctx.caches.external_secrets.clone();
    let external_secrets = watcher(
        ctx.api::<CachedExternalSecret>(),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(ctx.caches.external_secrets())
    .applied_objects();
    let controller = Controller::for_stream(external_secrets, cache.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(super::CONCURRENCY));
    let controller = dereference::wake_on_inputs(controller, ctx);
    let (wake_tx, wake_rx) = futures::channel::mpsc::unbounded();
    let run = {
        let ctx = ctx.clone();
        let cache = cache.clone();
        async move {
            let reconciles = futures::StreamExt::for_each(
                controller
                    .reconcile_on(wake_rx)
                    .reconcile_on(ctx.woken_external_secrets())
                    .graceful_shutdown_on(shutdown)
                    .run(reconcile, error_policy, ctx.clone()),
                |_| futures::future::ready(()),
            );
            tokio::select! {
                _ = reconciles => {}
                _ = ctx.versions.deliver(wake_tx) => {}
                _ = housekeeping(&ctx, &cache) => {}
                _ = dereference::follow_service_accounts(&ctx) => {}
            }
        }
    };
    (cache, run)
}

/// Once the cache is in: keeps the condition gauge current (from the cache, no API calls) and
/// lets go of what ExternalSecrets that are gone used, and of the sources and version watchers
/// of identities no ExternalSecret or store uses.
async fn housekeeping(ctx: &Context, cache: &Store<CachedExternalSecret>) {
    if cache.wait_until_ready().await.is_err() {
        return;
    }
    let kinds: &[&str] = if ctx.options.namespace.is_some() {
        &["ExternalSecret", "SecretStore"]
    } else {
        &["ExternalSecret", "SecretStore", "ClusterSecretStore"]
    };
    loop {
        count_conditions(cache, &ctx.metrics);
        ctx.sources.publish_costs();
        ctx.versions.untrack_missing(cache);
        let live: std::collections::HashSet<String> =
            cache.state().iter().filter_map(|es| es.uid()).collect();
        ctx.memo.retain(&live);
        ctx.written.retain("ExternalSecret", &live);
        ctx.caches.forget_unnamed();
        ctx.identities.live("ExternalSecret", live);
        if let Some(in_use) = ctx.identities.in_use(kinds) {
            ctx.versions.retain(&in_use);
        }
        crate::memory::return_free_memory();
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
