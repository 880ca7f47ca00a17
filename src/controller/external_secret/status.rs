//! Status: the next status from a sync's outcome, its write and event, and what a reconcile
//! leaves in metrics and logs.

use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};

use super::{Synced, FORCE_SYNC_ANNOTATION};
use crate::api::{
    set_condition, Condition, ConditionStatus, ExternalSecret, ExternalSecretStatus, LastRotation,
};
use crate::controller::cached_external_secret::CachedExternalSecret;
use crate::controller::{publish_status, Context, Error, SyncError};
use crate::metrics::Metrics;
use crate::sync::Action;

/// Writes the status `outcome` gives (when it changed) and the event of a Ready transition.
pub(super) async fn publish(
    es: &ExternalSecret,
    ctx: &Context,
    outcome: &Result<Synced, SyncError>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let (status, ready) = next(es, ctx, outcome, now);
    let previous = es
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    let api: Api<ExternalSecret> =
        Api::namespaced(ctx.client.clone(), &es.namespace().unwrap_or_default());
    publish_status(
        ctx,
        &api,
        es,
        es.status.as_ref(),
        &status,
        previous,
        &ready,
        "Sync",
    )
    .await
}

fn next(
    es: &ExternalSecret,
    ctx: &Context,
    outcome: &Result<Synced, SyncError>,
    now: DateTime<Utc>,
) -> (ExternalSecretStatus, Condition) {
    let mut status = es.status.clone().unwrap_or_default();
    let time = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let (state, reason, message) = match outcome {
        Ok(s) => {
            if s.read {
                status.refresh_time = Some(time.clone());
                status.force_sync = es.annotations().get(FORCE_SYNC_ANNOTATION).cloned();
            }
            status.sources = s.plan.sources.clone();
            if let Some(h) = &s.plan.data_hash {
                status.data_hash = Some(h.clone());
            }
            if s.plan.action == Action::Delete {
                status.data_hash = None;
            }
            status.target_name = Some(es.target_name());
            if !s.rotated.is_empty() {
                let mut sources = s.rotated.clone();
                sources.sort_by(|a, b| (&a.key, &a.to).cmp(&(&b.key, &b.to)));
                sources.dedup();
                status.last_rotation = Some(LastRotation {
                    time: time.clone(),
                    sources,
                    workloads: ctx
                        .restarts
                        .workloads_using(&es.namespace().unwrap_or_default(), &es.target_name()),
                });
            }
            match &s.plan.gone {
                Some((reason, message)) => {
                    (ConditionStatus::False, reason.clone(), message.clone())
                }
                None => (
                    ConditionStatus::True,
                    "SecretSynced".to_string(),
                    format!("{}: Secret {} is in sync", es.label(), es.target_name()),
                ),
            }
        }
        Err(e) => (
            ConditionStatus::False,
            e.reason().to_string(),
            e.to_string(),
        ),
    };
    let ready = Condition {
        type_: "Ready".into(),
        status: state,
        reason,
        message,
        last_transition_time: time,
        observed_generation: es.metadata.generation,
    };
    set_condition(&mut status.conditions, ready.clone());
    status.observed_generation = es.metadata.generation;
    (status, ready)
}

/// The reconcile metric and log line.
pub(super) fn record(
    es: &ExternalSecret,
    ctx: &Context,
    outcome: &Result<Synced, SyncError>,
    started: Instant,
) {
    let reason = match outcome {
        Ok(s) => s
            .plan
            .gone
            .as_ref()
            .map(|g| g.0.as_str())
            .unwrap_or("SecretSynced"),
        Err(e) => e.reason(),
    };
    let read = matches!(outcome, Ok(s) if s.read);
    ctx.metrics
        .reconcile("ExternalSecret", reason, started.elapsed());
    tracing::info!(
        object = %es.label(),
        reason,
        read_aws = read,
        duration_ms = started.elapsed().as_millis() as u64,
        "reconciled"
    );
}

/// Sets `arnsync_external_secrets{ready}` from the cache.
pub(crate) fn count_conditions(cache: &Store<CachedExternalSecret>, metrics: &Metrics) {
    let (mut t, mut f, mut u) = (0i64, 0i64, 0i64);
    for es in cache.state() {
        match es.ready() {
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
