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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

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

/// One kind of workload arnsync can roll.
#[derive(Clone, Debug)]
pub struct WorkloadKind {
    pub kind: &'static str,
    pub resource: ApiResource,
}

pub fn builtin_kinds() -> Vec<WorkloadKind> {
    [
        ("Deployment", "deployments"),
        ("StatefulSet", "statefulsets"),
        ("DaemonSet", "daemonsets"),
    ]
    .into_iter()
    .map(|(kind, plural)| WorkloadKind {
        kind,
        resource: ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            api_version: "apps/v1".into(),
            kind: kind.into(),
            plural: plural.into(),
        },
    })
    .collect()
}

pub fn rollout_kind() -> WorkloadKind {
    WorkloadKind {
        kind: "Rollout",
        resource: ApiResource {
            group: "argoproj.io".into(),
            version: "v1alpha1".into(),
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "Rollout".into(),
            plural: "rollouts".into(),
        },
    }
}

/// The Secret names a pod template references: env `secretKeyRef`, `envFrom.secretRef`,
/// `secret` volumes and projected volume sources, in every container kind.
pub fn referenced_secrets(template: &Json) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let spec = &template["spec"];
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            for e in c["env"].as_array().into_iter().flatten() {
                push(&mut out, &e["valueFrom"]["secretKeyRef"]["name"]);
            }
            for e in c["envFrom"].as_array().into_iter().flatten() {
                push(&mut out, &e["secretRef"]["name"]);
            }
        }
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        push(&mut out, &v["secret"]["secretName"]);
        for s in v["projected"]["sources"].as_array().into_iter().flatten() {
            push(&mut out, &s["secret"]["name"]);
        }
    }
    out
}

fn push(out: &mut BTreeSet<String>, v: &Json) {
    if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
        out.insert(s.to_string());
    }
}

/// The Secrets a workload's opt-in selects: all referenced ones for `"true"`, else the list.
pub fn selected(opt_in: &str, referenced: &BTreeSet<String>) -> BTreeSet<String> {
    if opt_in.trim().eq_ignore_ascii_case("true") {
        return referenced.clone();
    }
    opt_in
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("false"))
        .map(String::from)
        .collect()
}

/// A short hash over (Secret name, data hash) pairs.
pub fn fingerprint(hashes: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (name, hash) in hashes {
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update((hash.len() as u64).to_be_bytes());
        h.update(hash.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// `name=hash8,name=hash8`: what the record says each Secret held.
pub fn secrets_record(hashes: &BTreeMap<String, String>) -> String {
    hashes
        .iter()
        .map(|(n, h)| format!("{n}={}", &h[..h.len().min(8)]))
        .collect::<Vec<_>>()
        .join(",")
}

/// The recorded Secrets whose hash differs from the record. Secrets new to the record are not
/// in it: the running pods never had them, so nothing was rotated under them.
pub fn changed_secrets(record: &str, hashes: &BTreeMap<String, String>) -> Vec<String> {
    let old: BTreeMap<&str, &str> = record
        .split(',')
        .filter_map(|p| p.split_once('='))
        .collect();
    hashes
        .iter()
        .filter(|(n, h)| {
            old.get(n.as_str())
                .is_some_and(|recorded| *recorded != &h[..h.len().min(8)])
        })
        .map(|(n, _)| n.clone())
        .collect()
}

/// What to do with a workload, from its annotations and the current Secret hashes.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not opted in, no managed Secret, or already in step.
    Nothing,
    /// First sighting: record the fingerprint, no rollout.
    Record { fingerprint: String },
    /// The Secrets changed since the record: roll.
    Roll {
        fingerprint: String,
        changed: Vec<String>,
    },
}

pub fn decide(
    annotations: &BTreeMap<String, String>,
    hashes: &BTreeMap<String, String>,
) -> Decision {
    if !annotations.contains_key(RESTART_ANNOTATION) || hashes.is_empty() {
        return Decision::Nothing;
    }
    let fp = fingerprint(hashes);
    match (
        annotations.get(VERSIONS_ANNOTATION),
        annotations.get(SECRETS_ANNOTATION),
    ) {
        (None, _) => Decision::Record { fingerprint: fp },
        (Some(r), _) if *r == fp => Decision::Nothing,
        // Only a Secret the running pods already had can be rotated under them; one that
        // appeared (or went) since the record is recorded without a rollout.
        (Some(_), Some(record)) => {
            let changed = changed_secrets(record, hashes);
            if changed.is_empty() {
                Decision::Record { fingerprint: fp }
            } else {
                Decision::Roll {
                    fingerprint: fp,
                    changed,
                }
            }
        }
        (Some(_), None) => Decision::Roll {
            changed: hashes.keys().cloned().collect(),
            fingerprint: fp,
        },
    }
}

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
        ctx.pending_restarts.clear(&key);
        return Ok(Action::await_change());
    };
    let referenced = referenced_secrets(&obj.data["spec"]["template"]);
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
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &kind.resource);
    match decide(&annotations, &hashes) {
        Decision::Nothing => {
            ctx.pending_restarts.clear(&key);
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
                .pending_restarts
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
            ctx.pending_restarts.clear(&key);
            ctx.metrics
                .workload_restarts
                .get_or_create(&WorkloadLabels { kind: kind.kind })
                .inc();
            ctx.metrics
                .secret_to_rollout_seconds
                .observe(first.elapsed().as_secs_f64());
            let note = format!(
                "{} {ns}/{name}: rolling out because Secret(s) {} changed",
                kind.kind,
                changed.join(", ")
            );
            tracing::info!(workload = %key, secrets = %changed.join(","), "rollout started");
            ctx.event_on(
                obj.object_ref(&kind.resource),
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
        "apiVersion": kind.resource.api_version,
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
        body["spec"] =
            json!({"template": {"metadata": {"annotations": {VERSIONS_ANNOTATION: fingerprint}}}});
    }
    body
}

pub fn error_policy(obj: Arc<DynamicObject>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(workload = %obj.name_any(), error = %err, "workload reconcile failed");
    Action::requeue(ctx.backoff(&obj.uid().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Json {
        json!({"spec": {
            "initContainers": [{"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "init-s", "key": "k"}}}]}],
            "containers": [
                {"env": [{"name": "B", "valueFrom": {"secretKeyRef": {"name": "env-s", "key": "k"}}},
                         {"name": "C", "value": "plain"}],
                 "envFrom": [{"secretRef": {"name": "envfrom-s"}}, {"configMapRef": {"name": "cm"}}]}
            ],
            "volumes": [
                {"name": "v", "secret": {"secretName": "vol-s"}},
                {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-s"}}, {"configMap": {"name": "cm2"}}]}}
            ]
        }})
    }

    fn hashes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn every_reference_form_is_found() {
        let refs: Vec<String> = referenced_secrets(&template()).into_iter().collect();
        assert_eq!(
            refs,
            vec!["env-s", "envfrom-s", "init-s", "proj-s", "vol-s"]
        );
    }

    #[test]
    fn opt_in_true_takes_references_a_list_takes_the_list() {
        let refs = referenced_secrets(&template());
        assert_eq!(selected("true", &refs), refs);
        assert_eq!(
            selected(" vol-s , other ", &refs),
            ["other", "vol-s"].iter().map(|s| s.to_string()).collect()
        );
        assert!(selected("false", &refs).is_empty());
    }

    #[test]
    fn first_sighting_records_same_data_does_nothing_change_rolls_naming_the_secret() {
        let mut ann = BTreeMap::from([(RESTART_ANNOTATION.to_string(), "true".to_string())]);
        let h1 = hashes(&[("db", "aaaaaaaaaaaa"), ("cfg", "bbbbbbbbbbbb")]);
        let Decision::Record { fingerprint } = decide(&ann, &h1) else {
            panic!()
        };
        ann.insert(VERSIONS_ANNOTATION.into(), fingerprint.clone());
        ann.insert(SECRETS_ANNOTATION.into(), secrets_record(&h1));
        assert_eq!(
            decide(&ann, &h1),
            Decision::Nothing,
            "an operator restart must not roll"
        );
        let h2 = hashes(&[("db", "cccccccccccc"), ("cfg", "bbbbbbbbbbbb")]);
        match decide(&ann, &h2) {
            Decision::Roll {
                fingerprint: f2,
                changed,
            } => {
                assert_ne!(f2, fingerprint);
                assert_eq!(changed, vec!["db".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(decide(&ann, &BTreeMap::new()), Decision::Nothing);
        // A Secret that appears after the record is recorded, not rolled for.
        let h3 = hashes(&[
            ("db", "aaaaaaaaaaaa"),
            ("cfg", "bbbbbbbbbbbb"),
            ("new", "dddddddddddd"),
        ]);
        assert!(matches!(decide(&ann, &h3), Decision::Record { .. }));
        ann.remove(RESTART_ANNOTATION);
        assert_eq!(
            decide(&ann, &h2),
            Decision::Nothing,
            "removing the opt-in stops restarts"
        );
    }

    #[test]
    fn fingerprints_are_deterministic_and_short() {
        let h = hashes(&[("a", "1"), ("b", "2")]);
        assert_eq!(fingerprint(&h), fingerprint(&h.clone()));
        assert_eq!(fingerprint(&h).len(), 16);
        assert_ne!(
            fingerprint(&h),
            fingerprint(&hashes(&[("a", "1"), ("b", "3")]))
        );
    }
}
