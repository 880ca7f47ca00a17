//! The ExternalSecret reconciler: resolve the store → read through the source layer → plan →
//! apply the Secret → write status and events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::join_all;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::error::{Error, SyncError};
use super::{publish_status, store, Context, FIELD_MANAGER};
use crate::api::{
    parse_duration, set_condition, Condition, ConditionStatus, ExternalSecret,
    ExternalSecretStatus, LastRotation, RemoteRef, RotatedSource, Service,
};
use crate::source::{
    key, ErrorKind, Fetch, Find, Moved, Selector, Source, SourceError, Subscriber, Tracker,
};
use crate::sync::{self, data_hash, Action as PlanAction, Fetched, Plan, PlanInput};

/// Annotation on an ExternalSecret: a new value forces an immediate full read.
pub const FORCE_SYNC_ANNOTATION: &str = "arnsync.io/force-sync";

/// What a successful sync leaves behind for the status.
struct Synced {
    plan: Plan,
    read: bool,
    /// The version moves this sync applied (a rotation wake-up that changed the Secret).
    rotated: Vec<Moved>,
}

pub async fn reconcile(es: Arc<ExternalSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    if es.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let who = format!(
        "ExternalSecret {}/{}",
        es.namespace().unwrap_or_default(),
        es.name_any()
    );
    let refresh = parse_duration(&es.spec.refresh_interval)
        .map_err(|e| SyncError::InvalidSpec(format!("{who}: spec.refreshInterval: {e}")));
    let outcome = match refresh {
        Ok(refresh) => sync(&es, &ctx, refresh).await.map(|s| (s, refresh)),
        Err(e) => Err(e),
    };
    let key = es.uid().unwrap_or_default();
    let now = Utc::now();
    let action = match &outcome {
        Ok((synced, refresh)) => {
            ctx.forget_failures(&key);
            if synced.plan.gone.is_some() {
                Action::requeue(ctx.backoff(&key))
            } else if refresh.is_zero() {
                Action::await_change()
            } else {
                Action::requeue(jitter(*refresh))
            }
        }
        Err(_) => Action::requeue(ctx.backoff(&key)),
    };
    let (status, ready) = next_status(&es, &ctx, &outcome.as_ref().map(|(s, _)| s), now);
    write_status(&es, &ctx, status, ready).await?;
    let reason = match &outcome {
        Ok((s, _)) => s
            .plan
            .gone
            .as_ref()
            .map(|g| g.0.as_str())
            .unwrap_or("SecretSynced"),
        Err(e) => e.reason(),
    };
    let read = matches!(&outcome, Ok((s, _)) if s.read);
    ctx.metrics
        .reconcile("ExternalSecret", reason, started.elapsed());
    tracing::info!(
        object = %who,
        reason,
        read_aws = read,
        duration_ms = started.elapsed().as_millis() as u64,
        "reconciled"
    );
    Ok(action)
}

pub fn error_policy(es: Arc<ExternalSecret>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(object = %es.name_any(), error = %err, "reconcile failed");
    Action::requeue(ctx.backoff(&es.uid().unwrap_or_default()))
}

/// Adds up to ±10% so that ExternalSecrets created together do not refresh together.
fn jitter(d: Duration) -> Duration {
    let f: f64 = rand::random_range(0.9..1.1);
    d.mul_f64(f)
}

async fn sync(es: &ExternalSecret, ctx: &Context, refresh: Duration) -> Result<Synced, SyncError> {
    let ns = es.namespace().unwrap_or_default();
    let who = format!("ExternalSecret {ns}/{}", es.name_any());
    let target = es.target_name();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = secrets
        .get_opt(&target)
        .await
        .map_err(|source| SyncError::Kube {
            who: who.clone(),
            source,
        })?;
    let store = store::resolve_for(&ctx.client, es, ctx.options.namespace.is_some()).await?;
    let watcher = ctx.watchers.watcher(&store.identity);
    let interval = match &store.rotation_check_interval {
        Some(text) => parse_duration(text).map_err(|e| {
            SyncError::InvalidSpec(format!(
                "{}: spec.rotationCheckInterval: {e}",
                store.display
            ))
        })?,
        None => ctx.options.rotation_check_interval,
    };
    watcher.set_interval(&store.display, interval);
    let subscriber = Subscriber::new(&ns, &es.name_any());
    ctx.watchers.untrack_elsewhere(&subscriber, &store.identity);
    let rotation = ctx.pending_rotation(&subscriber);
    let force = es.annotations().get(FORCE_SYNC_ANNOTATION);
    let forced = force.is_some() && force != es.status.as_ref().and_then(|s| s.force_sync.as_ref());

    if rotation.is_empty() && !forced {
        if let Some(plan) = up_to_date(es, existing.as_ref(), refresh, &store, ctx) {
            watcher
                .tracker()
                .track(&subscriber, watches_from_status(es));
            return Ok(Synced {
                plan,
                read: false,
                rotated: vec![],
            });
        }
    }

    let source = ctx.sources.source(&store.identity);
    // A rotation wake-up reads the exact versions the watcher just saw (already cached by it);
    // any other read asks for the stage or latest version, like a first read.
    let pins = (!rotation.is_empty()).then_some(watcher.tracker());
    let (data, data_from) = fetch_all(es, source.as_ref(), pins, &who).await?;

    watcher
        .tracker()
        .track(&subscriber, watches_from_fetched(es, &data, &data_from));
    let plan = sync::plan(PlanInput {
        es,
        data,
        data_from,
        existing: existing.as_ref(),
    })?;
    write_secret(&secrets, &target, &who, &plan.action).await?;
    ctx.settle_rotation(&subscriber, rotation.len());
    ctx.remember_sync(es, &store);
    let changed = matches!(
        plan.action,
        PlanAction::Apply { changed: true, .. } | PlanAction::Delete
    );
    if changed {
        for m in &rotation {
            ctx.metrics
                .rotation_to_secret_seconds
                .observe(m.detected.elapsed().as_secs_f64());
        }
    }
    Ok(Synced {
        plan,
        read: true,
        rotated: if changed { rotation } else { vec![] },
    })
}

/// Every value `es` names, read in parallel: `data[]` and `dataFrom[]` in order.
async fn fetch_all(
    es: &ExternalSecret,
    source: &dyn Source,
    pins: Option<&Tracker>,
    who: &str,
) -> Result<(Vec<Fetched>, Vec<Fetched>), SyncError> {
    let data = join_all(
        es.spec
            .data
            .iter()
            .map(|d| get(source, &d.remote_ref, pins)),
    );
    let data_from = join_all(
        es.spec
            .data_from
            .iter()
            .enumerate()
            .map(|(i, d)| async move {
                match (&d.extract, &d.find) {
                    (Some(r), _) => get(source, r, pins)
                        .await
                        .map_err(SyncError::from_source(who)),
                    (None, Some(f)) => {
                        let find = match f.service() {
                            Service::ParameterStore => Find::ParameterPath {
                                path: f.path.clone().unwrap_or_default(),
                                recursive: f.recursive,
                            },
                            Service::SecretsManager => Find::Secrets {
                                name_regexp: f.name.as_ref().map(|n| n.regexp.clone()),
                                tags: f.tags.clone(),
                            },
                        };
                        source
                            .find(&find)
                            .await
                            .map(Fetched::Many)
                            .map_err(SyncError::from_source(who))
                    }
                    // The CRD's rules refuse this; a cluster that does not enforce them gets it here.
                    (None, None) => Err(SyncError::InvalidSpec(format!(
                        "{who}: dataFrom[{i}] sets neither extract nor find; set exactly one"
                    ))),
                }
            }),
    );
    let (data, data_from) = futures::join!(data, data_from);
    let data = data
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(SyncError::from_source(who))?;
    let data_from = data_from.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok((data, data_from))
}

/// Carries out the plan's write, if it has one.
async fn write_secret(
    secrets: &Api<Secret>,
    target: &str,
    who: &str,
    action: &PlanAction,
) -> Result<(), SyncError> {
    let kube_err = |source| SyncError::Kube {
        who: who.to_string(),
        source,
    };
    match action {
        PlanAction::Apply {
            secret,
            changed: true,
        } => {
            secrets
                .patch(
                    target,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(secret_apply_body(secret)),
                )
                .await
                .map_err(kube_err)?;
            tracing::info!(object = %who, secret = %target, "wrote Secret");
        }
        PlanAction::Delete => {
            match secrets.delete(target, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(ref s)) if s.code == 404 => {}
                Err(source) => return Err(kube_err(source)),
            }
            tracing::info!(object = %who, secret = %target, "deleted Secret (deletionPolicy Delete)");
        }
        PlanAction::Apply { changed: false, .. } | PlanAction::Keep => {}
    }
    Ok(())
}

/// The watch of a remote reference when its selector can move (stages, latest, labels).
fn watch_of(r: &RemoteRef) -> Option<Fetch> {
    let fetch = fetch_of(r);
    (!fetch.selector.is_immutable()).then_some(fetch)
}

fn remote_refs(es: &ExternalSecret) -> impl Iterator<Item = (usize, Option<&RemoteRef>)> {
    es.spec
        .data
        .iter()
        .map(|d| Some(&d.remote_ref))
        .chain(es.spec.data_from.iter().map(|d| d.extract.as_ref()))
        .enumerate()
}

/// What to watch after a read, with the version each value had.
fn watches_from_fetched(
    es: &ExternalSecret,
    data: &[Fetched],
    data_from: &[Fetched],
) -> Vec<(Fetch, Option<String>)> {
    let fetched: Vec<&Fetched> = data.iter().chain(data_from).collect();
    let mut out = vec![];
    for (i, r) in remote_refs(es) {
        match (r.and_then(watch_of), fetched.get(i)) {
            (Some(w), Some(Fetched::One(v))) => out.push((w, Some(v.version.clone()))),
            (Some(w), _) => out.push((w, None)),
            (None, Some(Fetched::Many(values))) => {
                for v in values {
                    let selector = match v.service {
                        Service::SecretsManager => Selector::Stage("AWSCURRENT".into()),
                        Service::ParameterStore => Selector::Latest,
                    };
                    let w = Fetch {
                        service: v.service,
                        key: v.name.clone(),
                        selector,
                    };
                    out.push((w, Some(v.version.clone())));
                }
            }
            _ => {}
        }
    }
    out
}

/// True when `key` (as written in a remoteRef: a name or an ARN) names the secret or parameter
/// AWS calls `name`.
fn refers_to(key: &str, name: &str) -> bool {
    key::refers_to(key, name, None)
}

/// What to watch when no read happened: versions from the status of the last read, so that a
/// rotation while the operator was down is still noticed.
fn watches_from_status(es: &ExternalSecret) -> Vec<(Fetch, Option<String>)> {
    let sources = es
        .status
        .as_ref()
        .map(|s| s.sources.as_slice())
        .unwrap_or_default();
    let version_of = |w: &Fetch| {
        sources
            .iter()
            .find(|s| s.service == w.service && refers_to(&w.key, &s.key))
            .and_then(|s| s.version_id.clone().or_else(|| s.version.clone()))
    };
    let mut out: Vec<(Fetch, Option<String>)> = remote_refs(es)
        .filter_map(|(_, r)| r.and_then(watch_of))
        .map(|w| {
            let v = version_of(&w);
            (w, v)
        })
        .collect();
    // Values found by dataFrom.find are watched by name.
    let named: std::collections::BTreeSet<String> =
        out.iter().map(|(w, _)| w.key.clone()).collect();
    if es.spec.data_from.iter().any(|d| d.find.is_some()) {
        for s in sources.iter().filter(|s| !named.contains(&s.key)) {
            let selector = match s.service {
                Service::SecretsManager => Selector::Stage("AWSCURRENT".into()),
                Service::ParameterStore => Selector::Latest,
            };
            out.push((
                Fetch {
                    service: s.service,
                    key: s.key.clone(),
                    selector,
                },
                s.version_id.clone().or_else(|| s.version.clone()),
            ));
        }
    }
    out
}

fn fetch_of(r: &RemoteRef) -> Fetch {
    let service = r.service();
    let selector = match service {
        Service::SecretsManager => match &r.version_id {
            Some(id) => Selector::VersionId(id.clone()),
            None => Selector::Stage(
                r.version_stage
                    .clone()
                    .unwrap_or_else(|| "AWSCURRENT".into()),
            ),
        },
        Service::ParameterStore => match &r.version {
            Some(v) => Selector::ParameterVersion(v.clone()),
            None => Selector::Latest,
        },
    };
    Fetch {
        service,
        key: r.key.clone(),
        selector,
    }
}

/// One value; a remote that does not exist (or is scheduled for deletion) is `Gone`, so that
/// `plan` applies the deletion policy; any other error stops the sync and keeps the Secret.
/// With `pins`, a moving selector is read at the version the watcher last saw.
async fn get(
    source: &dyn Source,
    r: &RemoteRef,
    pins: Option<&Tracker>,
) -> Result<Fetched, SourceError> {
    let mut fetch = fetch_of(r);
    if let (Some(w), Some(watch)) = (pins, watch_of(r)) {
        if let Some(pinned) = w.current(&watch).and_then(|v| watch.pinned(&v)) {
            fetch = pinned;
        }
    }
    match source.get(&fetch).await {
        Ok(v) => Ok(Fetched::One(v)),
        Err(e) if is_gone(&e) => Ok(Fetched::Gone(e)),
        Err(e) => Err(e),
    }
}

fn is_gone(e: &SourceError) -> bool {
    e.kind == ErrorKind::NotFound
        || (e.kind == ErrorKind::InvalidRequest && e.message.contains("marked for deletion"))
}

/// A sync that needs no AWS read: same generation and store as the last successful read, not
/// yet due for refresh, and the Secret still holds exactly what was written.
fn up_to_date(
    es: &ExternalSecret,
    existing: Option<&Secret>,
    refresh: Duration,
    store: &store::ResolvedStore,
    ctx: &Context,
) -> Option<Plan> {
    let status = es.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True);
    if !ready || status.observed_generation != es.metadata.generation {
        return None;
    }
    if !ctx.same_inputs(es, store) {
        return None;
    }
    let refreshed: DateTime<Utc> = status.refresh_time.as_deref()?.parse().ok()?;
    let age = Utc::now()
        .signed_duration_since(refreshed)
        .to_std()
        .unwrap_or_default();
    if !refresh.is_zero() && age >= refresh {
        return None;
    }
    let hash = status.data_hash.as_ref()?;
    let secret = existing?;
    let current: std::collections::BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    let annotated = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(sync::HASH_ANNOTATION));
    // The Secret holds what arnsync last wrote when its content matches the hash arnsync wrote
    // with it. That is checked on the Secret itself, not against status.dataHash: the
    // ExternalSecret in the cache may predate the status write of the sync that wrote it.
    // Merge targets hold other keys too, so only the annotation can be compared there.
    let intact = match (es.spec.target.creation_policy, annotated) {
        (crate::api::CreationPolicy::Merge, a) => a == Some(hash),
        (_, Some(a)) => &data_hash(&current) == a,
        (_, None) => false,
    };
    intact.then(|| Plan {
        action: PlanAction::Keep,
        data_hash: Some(hash.clone()),
        sources: status.sources.clone(),
        gone: None,
    })
}

/// The apply body: only the fields arnsync owns.
fn secret_apply_body(secret: &Secret) -> serde_json::Value {
    let mut body = serde_json::to_value(secret).expect("a Secret serializes");
    body["apiVersion"] = json!("v1");
    body["kind"] = json!("Secret");
    body
}

fn next_status(
    es: &ExternalSecret,
    ctx: &Context,
    outcome: &Result<&Synced, &SyncError>,
    now: DateTime<Utc>,
) -> (ExternalSecretStatus, Condition) {
    let mut status = es.status.clone().unwrap_or_default();
    let time = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let who = format!(
        "ExternalSecret {}/{}",
        es.namespace().unwrap_or_default(),
        es.name_any()
    );
    let (state, reason, message) = match outcome {
        Ok(s) => {
            if s.read {
                status.refresh_time = Some(time.clone());
            }
            status.sources = s.plan.sources.clone();
            if let Some(h) = &s.plan.data_hash {
                status.data_hash = Some(h.clone());
            }
            if s.plan.action == PlanAction::Delete {
                status.data_hash = None;
            }
            status.target_name = Some(es.target_name());
            if s.read {
                status.force_sync = es.annotations().get(FORCE_SYNC_ANNOTATION).cloned();
            }
            if !s.rotated.is_empty() {
                let mut sources: Vec<RotatedSource> = s
                    .rotated
                    .iter()
                    .map(|m| RotatedSource {
                        service: m.watch.service,
                        key: m.watch.key.clone(),
                        from: m.from.clone(),
                        to: m.to.clone(),
                    })
                    .collect();
                sources.sort_by(|a, b| (&a.key, &a.to).cmp(&(&b.key, &b.to)));
                sources.dedup();
                status.last_rotation = Some(LastRotation {
                    time: time.clone(),
                    sources,
                    workloads: ctx
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
                    format!("{who}: Secret {} is in sync", es.target_name()),
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

async fn write_status(
    es: &ExternalSecret,
    ctx: &Context,
    status: ExternalSecretStatus,
    ready: Condition,
) -> Result<(), Error> {
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

#[cfg(test)]
mod tests {
    use super::refers_to;

    #[test]
    fn arns_refer_to_the_names_aws_reports() {
        assert!(refers_to("prod/db", "prod/db"));
        assert!(refers_to(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
            "prod/db"
        ));
        assert!(refers_to(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db",
            "prod/db"
        ));
        assert!(!refers_to(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db2-AbCdEf",
            "prod/db"
        ));
        assert!(refers_to(
            "arn:aws:ssm:us-east-1:123456789012:parameter/prod/url",
            "/prod/url"
        ));
        assert!(refers_to(
            "arn:aws:ssm:us-east-1:123456789012:parameter/plain",
            "plain"
        ));
        assert!(!refers_to("prod/db2", "prod/db"));
    }
}
