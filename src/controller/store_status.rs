//! Store reconcilers: check that a store's identity works (sts:GetCallerIdentity, the cheapest
//! call that proves the credentials and role) and report it in status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cost::Dollars;
use crate::source::events::Health;

use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};

use super::caches::strip;
use super::error::{Error, SyncError};
use super::external_secret::StoreWakes;
use super::store::{resolve_cluster_store, resolve_secret_store, ResolvedStore};
use super::{publish_status, Context, Shutdown};
use kube::runtime::events::EventType;

use crate::api::{
    set_condition, ClusterSecretStore, Condition, ConditionStatus, SecretStore, StoreKind,
    StoreStatus,
};

/// The SecretStore controller, and the ClusterSecretStore one unless arnsync runs for one
/// namespace (namespaced RBAC only). Their watches fill the store caches every reconcile reads,
/// and wake the ExternalSecrets of a store that changed.
pub(super) async fn controllers(ctx: &Arc<Context>, shutdown: Shutdown) {
    let stores = store_controller(
        ctx,
        ctx.api::<SecretStore>(),
        ctx.caches.secret_stores(),
        ctx.caches.secret_stores.clone(),
        StoreKind::SecretStore,
        |s| !s.spec.provider.aws.failover_regions.is_empty(),
    );
    let live = report_live(ctx, "SecretStore", ctx.caches.secret_stores.clone());
    let stores = stores
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_store, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    if ctx.options.namespace.is_some() {
        tokio::select! { _ = stores => {}, _ = live => {} }
        return;
    }
    let cluster_stores = store_controller(
        ctx,
        Api::<ClusterSecretStore>::all(ctx.client.clone()),
        ctx.caches.cluster_stores(),
        ctx.caches.cluster_stores.clone(),
        StoreKind::ClusterSecretStore,
        |s| !s.spec.provider.aws.failover_regions.is_empty(),
    );
    let cluster_live = report_live(ctx, "ClusterSecretStore", ctx.caches.cluster_stores.clone());
    let cluster_stores = cluster_stores
        .graceful_shutdown_on(shutdown)
        .run(reconcile_cluster_store, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    tokio::select! {
        _ = futures::future::join(stores, cluster_stores) => {}
        _ = futures::future::join(live, cluster_live) => {}
    }
}

/// A store controller over the store cache: its watch (objects stripped, see
/// [`super::caches::strip`]) fills `writer` and wakes the ExternalSecrets of changed stores.
/// The stores `fails_over` picks (those with `failoverRegions`) are checked again whenever the
/// region serving some identity's reads changes, so that their status says it at once.
fn store_controller<K>(
    ctx: &Arc<Context>,
    api: Api<K>,
    writer: kube::runtime::reflector::store::Writer<K>,
    cache: Store<K>,
    kind: StoreKind,
    fails_over: fn(&K) -> bool,
) -> Controller<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let mut wakes = StoreWakes::<K>::new(kind);
    let for_wakes = ctx.clone();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(strip)
        .reflect(writer)
        .inspect(move |event| wakes.observe(&for_wakes, event))
        .applied_objects();
    let switches = futures::stream::unfold(ctx.sources.region_switches(), |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    });
    let stores = cache.clone();
    let switched = switches.flat_map(move |()| {
        let refs: Vec<ObjectRef<K>> = stores
            .state()
            .iter()
            .filter(|s| fails_over(s))
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect();
        futures::stream::iter(refs)
    });
    Controller::for_stream(stream, cache)
        .with_config(kube::runtime::controller::Config::default().concurrency(super::CONCURRENCY))
        .reconcile_on(switched)
}

/// Tells the identity registry which stores of `kind` exist, every few seconds once the cache
/// is in, so that a deleted store's source and watcher are freed. Never returns: it ends with
/// the controller it runs beside.
async fn report_live<K>(ctx: &Context, kind: &'static str, cache: Store<K>)
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    if cache.wait_until_ready().await.is_err() {
        return futures::future::pending().await;
    }
    loop {
        let uids = cache.state().iter().filter_map(|s| s.uid()).collect();
        ctx.identities.live(kind, uids);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// How often a healthy store is checked again, unless its `spec.refreshInterval` (seconds, as
/// ESO spells it) says otherwise.
/// The condition saying reads go one secret per call because batch reads are denied.
const BATCH_READS: &str = "BatchReads";
const BATCH_DENIED: &str = "BatchGetSecretValueDenied";
const RECHECK: Duration = Duration::from_secs(600);

/// How often the `EventsReady` condition is brought up to date.
const EVENTS_RECHECK: Duration = Duration::from_secs(15);
const EVENTS_RETRY: Duration = Duration::from_secs(5);

/// `EventsReady` for a store with `spec.arnsync.eventQueue`: whether its consumer reads the
/// queue, with the SQS error when not. `None` without a queue.
async fn events_condition(
    store: &ResolvedStore,
    ctx: &Context,
    generation: Option<i64>,
) -> Option<Condition> {
    let queue = store.event_queue.as_deref()?;
    let time = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let condition = |status, reason: &str, message: String| Condition {
        type_: "EventsReady".into(),
        status,
        reason: reason.into(),
        message,
        last_transition_time: time.clone(),
        observed_generation: generation,
    };
    let mut health = match ctx.versions.events(store, &ctx.options) {
        Ok(h) => h?,
        Err(e) => return Some(condition(ConditionStatus::False, e.reason(), e.to_string())),
    };
    // A first answer from SQS comes within one long poll at most.
    let _ = tokio::time::timeout(Duration::from_secs(25), async {
        while *health.borrow_and_update() == Health::Starting {
            if health.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    let display = &store.display;
    let now = health.borrow().clone();
    Some(match now {
        Health::Healthy => condition(
            ConditionStatus::True,
            "QueueRead",
            format!("{display}: reading event queue {queue}; polling every --event-safety-interval as a safety net"),
        ),
        Health::Starting => condition(
            ConditionStatus::Unknown,
            "QueueStarting",
            format!("{display}: no answer yet from event queue {queue}"),
        ),
        Health::Failing(error) => condition(
            ConditionStatus::False,
            "QueueUnavailable",
            format!("{display}: event queue {queue}: {error}; polling at rotationCheckInterval until it is read again"),
        ),
    })
}

fn recheck(refresh_interval: Option<i64>) -> Duration {
    match refresh_interval {
        Some(seconds) if seconds > 0 => Duration::from_secs(seconds as u64),
        _ => RECHECK,
    }
}

pub async fn reconcile_store(store: Arc<SecretStore>, ctx: Arc<Context>) -> Result<Action, Error> {
    let resolved = resolve_secret_store(&ctx, &store).await;
    let api: Api<SecretStore> =
        Api::namespaced(ctx.client.clone(), &store.namespace().unwrap_or_default());
    let every = recheck(store.spec.refresh_interval);
    check(
        store.as_ref(),
        &api,
        store.status.as_ref(),
        resolved,
        every,
        &ctx,
    )
    .await
}

pub async fn reconcile_cluster_store(
    store: Arc<ClusterSecretStore>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let resolved = resolve_cluster_store(&ctx, &store).await;
    let api: Api<ClusterSecretStore> = Api::all(ctx.client.clone());
    let every = recheck(store.spec.refresh_interval);
    check(
        store.as_ref(),
        &api,
        store.status.as_ref(),
        resolved,
        every,
        &ctx,
    )
    .await
}

pub fn error_policy<K: ResourceExt>(store: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(object = %store.name_any(), error = %err, "store reconcile failed");
    Action::requeue(ctx.backoff.next(&store.uid().unwrap_or_default()))
}

async fn check<K>(
    store: &K,
    api: &Api<K>,
    current: Option<&StoreStatus>,
    resolved: Result<ResolvedStore, SyncError>,
    every: Duration,
    ctx: &Context,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let started = Instant::now();
    let key = store.uid().unwrap_or_default();
    match &resolved {
        Ok(r) => ctx.identities.uses(&key, &r.identity),
        Err(_) => ctx.identities.stops_using(&key),
    }
    let events = match &resolved {
        Ok(r) => Some(events_condition(r, ctx, store.meta().generation).await),
        Err(_) => None,
    }
    .flatten();
    // With it, whether reads found secretsmanager:BatchGetSecretValue denied: the status says so
    // until it is allowed.
    // And, with failoverRegions, the region serving Secrets Manager reads.
    // And the identity's estimated monthly cost (at most every --cost-status-interval).
    let (outcome, batch_fallback, serving, spend) = match resolved {
        Ok(r) => {
            let source = ctx.sources.source(&r.identity);
            let display = r.display.clone();
            let outcome = source
                .caller_identity()
                .await
                .map(|arn| (display.clone(), arn))
                .map_err(|source| SyncError::Source {
                    who: display,
                    source,
                });
            let serving = source
                .serving_region()
                .map(|s| (r.identity.region.clone(), s));
            let cost = Dollars(source.published_cost(ctx.options.cost_status_interval));
            let spend = (cost.to_string(), r.identity.short_id());
            (outcome, source.batch_fallback(), serving, Some(spend))
        }
        Err(e) => (Err(e), None, None, None),
    };
    let mut status = current.cloned().unwrap_or_default();
    // A store that cannot be resolved keeps the estimate it last showed.
    if let Some((cost, identity)) = spend {
        status.estimated_monthly_cost = Some(cost);
        status.identity_hash = Some(identity);
    }
    let switch = serving
        .as_ref()
        .and_then(|(primary, now)| region_switch(primary, status.serving_region.as_deref(), now));
    status.serving_region = serving.map(|(_, now)| now);
    let time = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let (state, reason, message, action) = match &outcome {
        Ok((display, arn)) => {
            status.identity = Some(arn.clone());
            ctx.backoff.forget(&key);
            (
                ConditionStatus::True,
                "StoreValid".to_string(),
                format!("{display}: AWS credentials work (sts:GetCallerIdentity)"),
                Action::requeue(every),
            )
        }
        Err(e) => (
            ConditionStatus::False,
            e.reason().to_string(),
            e.to_string(),
            Action::requeue(ctx.backoff.next(&key)),
        ),
    };
    let ready = Condition {
        type_: "Ready".into(),
        status: state,
        reason: reason.clone(),
        message: message.clone(),
        last_transition_time: time,
        observed_generation: store.meta().generation,
    };
    let previous = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .cloned();
    set_condition(&mut status.conditions, ready.clone());
    let action = match events {
        Some(condition) => {
            let healthy = condition.status == ConditionStatus::True;
            set_condition(&mut status.conditions, condition);
            // The condition follows the consumer's health: look again soon while it is not
            // healthy, and at least every 15 seconds.
            let soon = if healthy {
                EVENTS_RECHECK
            } else {
                EVENTS_RETRY
            };
            match action {
                a if a == Action::requeue(every) => Action::requeue(every.min(soon)),
                a => a,
            }
        }
        None => {
            status.conditions.retain(|c| c.type_ != "EventsReady");
            action
        }
    };
    match batch_fallback {
        Some(message) => {
            set_condition(
                &mut status.conditions,
                Condition {
                    type_: BATCH_READS.into(),
                    status: ConditionStatus::False,
                    reason: BATCH_DENIED.into(),
                    message,
                    last_transition_time: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
                    observed_generation: store.meta().generation,
                },
            );
        }
        None => status.conditions.retain(|c| c.type_ != BATCH_READS),
    }
    status.observed_generation = store.meta().generation;
    publish_status(
        ctx,
        api,
        store,
        current,
        &status,
        previous.as_ref(),
        &ready,
        "Validate",
    )
    .await?;
    if let Some((type_, reason, note)) = switch {
        ctx.event(store, type_, reason, &note, "Failover").await;
    }
    ctx.metrics
        .reconcile(&K::kind(&()), &reason, started.elapsed());
    tracing::info!(object = %store.name_any(), kind = %K::kind(&()), reason = %reason, "store checked");
    Ok(action)
}

/// The event for a change of the serving region (`None` when it did not change, or the store
/// starts saying it in its primary region): a Warning when reads leave the primary `region`,
/// Normal when they return to it.
fn region_switch(
    primary: &str,
    before: Option<&str>,
    now: &str,
) -> Option<(EventType, &'static str, String)> {
    let before = before.unwrap_or(primary);
    if before == now {
        return None;
    }
    Some(if now == primary {
        (
            EventType::Normal,
            "PrimaryRegionServing",
            format!("Secrets Manager reads are back in the primary region {now} (from {before})"),
        )
    } else {
        (
            EventType::Warning,
            "FailedOver",
            format!(
                "Secrets Manager reads moved from {before} to {now}: {before} is unavailable (provider.aws.failoverRegions)"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_switch_is_an_event_once() {
        let p = "us-east-1";
        assert_eq!(region_switch(p, None, p), None);
        assert_eq!(region_switch(p, Some(p), p), None);
        assert_eq!(region_switch(p, Some("us-west-2"), "us-west-2"), None);
        let (type_, reason, note) = region_switch(p, Some(p), "us-west-2").unwrap();
        assert_eq!((type_, reason), (EventType::Warning, "FailedOver"));
        assert_eq!(
            note,
            "Secrets Manager reads moved from us-east-1 to us-west-2: us-east-1 is unavailable (provider.aws.failoverRegions)"
        );
        // A store first checked while failed over says so too.
        assert!(region_switch(p, None, "us-west-2").is_some());
        let (type_, reason, _) = region_switch(p, Some("us-west-2"), p).unwrap();
        assert_eq!((type_, reason), (EventType::Normal, "PrimaryRegionServing"));
    }

    #[test]
    fn a_stores_refresh_interval_sets_how_often_it_is_checked() {
        assert_eq!(recheck(None), RECHECK);
        assert_eq!(recheck(Some(0)), RECHECK);
        assert_eq!(recheck(Some(30)), Duration::from_secs(30));
    }
}
