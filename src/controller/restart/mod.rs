//! Workload restarts. A Deployment, StatefulSet, DaemonSet or Argo Rollout opts in with
//! `arnsync.io/restart-on-rotation` (`"true"`: every arnsync-managed Secret its pod template
//! references; otherwise a comma-separated list of Secret names).
//!
//! Restarts are deterministic: the fingerprint is a short hash over the data hashes of the
//! Secrets the workload uses. The first time a workload is seen the fingerprint is recorded on
//! the workload's own metadata (no rollout); a later difference sets the pod-template annotation
//! (one rollout) and the record in one server-side apply. The same data gives the same hash, so
//! an operator restart or a leader change rolls nothing, and a rotation that happened while the
//! operator was down rolls once. Changes within the debounce window give one rollout.

mod decide;
mod kinds;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value as Json};

pub use decide::{
    changed_secrets, decide, fingerprint, referenced_secrets, secrets_record, selected, Decision,
};
pub(crate) use kinds::controllers;
pub use kinds::{WorkloadKind, Workloads, KINDS};

use super::error::Error;
use super::{Context, FIELD_MANAGER};
use crate::metrics::WorkloadLabels;
use crate::sync::{HASH_ANNOTATION, MANAGED_LABEL};

/// On a workload: opt in to restarts.
pub const RESTART_ANNOTATION: &str = "arnsync.io/restart-on-rotation";
/// On the pod template (the rollout trigger) and on the workload's metadata (the record).
pub const VERSIONS_ANNOTATION: &str = "arnsync.io/secret-versions";
/// On the workload's metadata: which Secret had which data hash at the record, to name the
/// Secrets that changed.
pub const SECRETS_ANNOTATION: &str = "arnsync.io/secret-hashes";

/// What restarts share: the debounce state, the workload caches and the rotations written.
#[derive(Default)]
pub struct Restarts {
    pub pending: Pending,
    pub workloads: Workloads,
    pub rotated: Rotated,
}

/// How long a Secret written with rotated values is remembered for the rotation lag of the
/// workloads using it.
const ROTATED_KEPT: Duration = Duration::from_secs(3600);

/// Per Secret written with rotated values: its data hash and when the rotation moved in AWS,
/// so that a rollout for that hash is measured from the move (`arnsync_rotation_lag_seconds`).
/// In memory only: a rollout after an operator restart is not measured.
#[derive(Default)]
pub struct Rotated(Mutex<HashMap<(String, String), Written>>);

/// A Secret's data hash after a rotation, when the rotation moved in AWS, and when it was written.
struct Written {
    hash: String,
    moved: SystemTime,
    at: Instant,
}

impl Rotated {
    /// Secret `ns/name` now holds `hash`, written for a version that moved in AWS at `at`.
    pub fn written(&self, ns: &str, name: &str, hash: &str, at: SystemTime) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, w| w.at.elapsed() < ROTATED_KEPT);
        m.insert(
            (ns.to_string(), name.to_string()),
            Written {
                hash: hash.to_string(),
                moved: at,
                at: Instant::now(),
            },
        );
    }

    /// The earliest move in AWS behind `changed` Secrets of `ns` holding `hashes`.
    pub fn moved_at(
        &self,
        ns: &str,
        changed: &[String],
        hashes: &BTreeMap<String, String>,
    ) -> Option<SystemTime> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        changed
            .iter()
            .filter_map(|name| {
                let w = m.get(&(ns.to_string(), name.clone()))?;
                (hashes.get(name) == Some(&w.hash)).then_some(w.moved)
            })
            .min()
    }
}

impl Restarts {
    /// The opted-in workloads in `ns` whose restarts use Secret `secret`.
    pub fn workloads_using(&self, ns: &str, secret: &str) -> Vec<crate::api::WorkloadRef> {
        self.workloads.using(ns, secret)
    }
}

/// `arnsync_rotation_lag_seconds{stage}` of a workload rolled for rotated Secrets.
const WORKLOAD_RESTARTED: &str = "workload_restarted";

/// Per-workload debounce: when a change was first seen.
#[derive(Default)]
pub struct Pending(Mutex<HashMap<String, Instant>>);

impl Pending {
    /// Time left to wait before rolling, starting the window on the first call.
    fn wait_left(&self, key: &str, debounce: Duration) -> (Duration, Instant) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let first = *m.entry(key.to_string()).or_insert_with(Instant::now);
        (debounce.saturating_sub(first.elapsed()), first)
    }

    fn clear(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// Reconciles one workload of `kind`.
pub async fn reconcile(
    obj: Arc<DynamicObject>,
    ctx: Arc<Context>,
    kind: &WorkloadKind,
) -> Result<Action, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let key = format!("{}/{ns}/{name}", kind.kind);
    let annotations = obj.annotations().clone();
    let Some(opt_in) = annotations.get(RESTART_ANNOTATION) else {
        ctx.restarts.pending.clear(&key);
        return Ok(Action::await_change());
    };
    let referenced = referenced_secrets(kind.pod_template(&obj));
    let secrets: Api<PartialObjectMeta<Secret>> = Api::namespaced(ctx.client.clone(), &ns);
    let mut hashes = BTreeMap::new();
    for s in selected(opt_in, &referenced) {
        let meta = secrets
            .get_metadata_opt(&s)
            .await
            .map_err(|source| Error::Workload {
                who: key.clone(),
                source,
            })?;
        let Some(meta) = meta else { continue };
        if meta.labels().get(MANAGED_LABEL).map(String::as_str) != Some("true") {
            continue;
        }
        if let Some(h) = meta.annotations().get(HASH_ANNOTATION) {
            hashes.insert(s, h.clone());
        }
    }
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &kind.resource());
    match decide(&annotations, &hashes) {
        Decision::Nothing => {
            ctx.restarts.pending.clear(&key);
            Ok(Action::await_change())
        }
        Decision::Record { fingerprint } => {
            apply(
                &api,
                &key,
                apply_body(kind, &ns, &name, &fingerprint, &hashes, false),
            )
            .await?;
            tracing::info!(workload = %key, fingerprint, "recorded Secret versions (no rollout)");
            Ok(Action::await_change())
        }
        Decision::Roll {
            fingerprint,
            changed,
        } => {
            let (left, first) = ctx
                .restarts
                .pending
                .wait_left(&key, ctx.options.restart_debounce);
            if !left.is_zero() {
                return Ok(Action::requeue(left));
            }
            apply(
                &api,
                &key,
                apply_body(kind, &ns, &name, &fingerprint, &hashes, true),
            )
            .await?;
            ctx.restarts.pending.clear(&key);
            ctx.metrics
                .workload_restarts
                .get_or_create(&WorkloadLabels { kind: kind.kind })
                .inc();
            ctx.metrics
                .secret_to_rollout_seconds
                .observe(first.elapsed().as_secs_f64());
            if let Some(at) = ctx.restarts.rotated.moved_at(&ns, &changed, &hashes) {
                ctx.metrics.rotation_lag(WORKLOAD_RESTARTED, at);
            }
            let note = format!(
                "{} {ns}/{name}: rolling out because Secret(s) {} changed",
                kind.kind,
                changed.join(", ")
            );
            tracing::info!(workload = %key, secrets = %changed.join(","), "rollout started");
            ctx.event_on(
                obj.object_ref(&kind.resource()),
                EventType::Normal,
                "SecretsRotated",
                &note,
                "Restart",
            )
            .await;
            Ok(Action::await_change())
        }
    }
}

/// Server-side applies `body` (the annotations arnsync owns) to the workload.
async fn apply(api: &Api<DynamicObject>, key: &str, body: Json) -> Result<(), Error> {
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map(|_| ())
    .map_err(|source| Error::Workload {
        who: key.to_string(),
        source,
    })
}

fn apply_body(
    kind: &WorkloadKind,
    ns: &str,
    name: &str,
    fingerprint: &str,
    hashes: &BTreeMap<String, String>,
    roll: bool,
) -> Json {
    let mut body = json!({
        "apiVersion": kind.resource().api_version,
        "kind": kind.kind,
        "metadata": {
            "name": name,
            "namespace": ns,
            "annotations": {
                VERSIONS_ANNOTATION: fingerprint,
                SECRETS_ANNOTATION: secrets_record(hashes),
            }
        }
    });
    if roll {
        // The trigger goes on the pod template, wherever the kind keeps it.
        let mut trigger = json!({"metadata": {"annotations": {VERSIONS_ANNOTATION: fingerprint}}});
        for field in kind.template.rsplit('/').filter(|f| !f.is_empty()) {
            trigger = json!({ field: trigger });
        }
        body.as_object_mut()
            .expect("an object")
            .extend(trigger.as_object().cloned().unwrap_or_default());
    }
    body
}

pub fn error_policy(obj: Arc<DynamicObject>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(workload = %obj.name_any(), error = %err, "workload reconcile failed");
    Action::requeue(ctx.backoff.next(&obj.uid().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollout_is_measured_from_the_earliest_rotation_behind_the_hashes_it_rolls_for() {
        let r = Rotated::default();
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        r.written("app", "db", "h-db-2", t(20));
        r.written("app", "api", "h-api-2", t(10));
        let hashes = BTreeMap::from([
            ("db".to_string(), "h-db-2".to_string()),
            ("api".to_string(), "h-api-2".to_string()),
        ]);
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(r.moved_at("app", &names(&["db"]), &hashes), Some(t(20)));
        assert_eq!(
            r.moved_at("app", &names(&["db", "api"]), &hashes),
            Some(t(10))
        );
        // Another namespace, or data the rotation did not write (a spec change since): none.
        assert_eq!(r.moved_at("other", &names(&["db"]), &hashes), None);
        let edited = BTreeMap::from([("db".to_string(), "h-db-3".to_string())]);
        assert_eq!(r.moved_at("app", &names(&["db"]), &edited), None);
    }

    #[test]
    fn the_rollout_trigger_goes_on_the_pod_template_the_kind_names() {
        let hashes = BTreeMap::from([("db".to_string(), "aaaaaaaaaaaa".to_string())]);
        let deployment = KINDS[0];
        let body = apply_body(&deployment, "app", "web", "fp", &hashes, true);
        assert_eq!(body["apiVersion"], "apps/v1");
        assert_eq!(
            body["spec"]["template"]["metadata"]["annotations"][VERSIONS_ANNOTATION],
            "fp"
        );
        assert_eq!(body["metadata"]["annotations"][VERSIONS_ANNOTATION], "fp");
        let nested = WorkloadKind {
            kind: "CronJob",
            group: "batch",
            version: "v1",
            plural: "cronjobs",
            template: "/spec/jobTemplate/spec/template",
            optional: false,
        };
        let body = apply_body(&nested, "app", "job", "fp", &hashes, true);
        assert_eq!(
            body["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"]
                [VERSIONS_ANNOTATION],
            "fp"
        );
        let record = apply_body(&deployment, "app", "web", "fp", &hashes, false);
        assert!(record.get("spec").is_none(), "a record rolls nothing");
    }
}
