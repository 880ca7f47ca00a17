//! Decide, pure: whether a sync must read AWS (and whether at the watcher's pinned versions),
//! or whether the Secret is up to date and the status's plan stands.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::FORCE_SYNC_ANNOTATION;
use crate::api::{ConditionStatus, CreationPolicy, RefreshPolicy};
use crate::sync::{data_hash, written_by, Action, Plan, ValidSpec, HASH_ANNOTATION};

/// What `decide` looks at besides the clock.
pub(super) struct Facts<'a> {
    pub spec: &'a ValidSpec<'a>,
    /// The target Secret as it is now (perhaps only its metadata, when `intact`).
    pub existing: Option<&'a Secret>,
    /// The target Secret is at a version whose data arnsync wrote or checked against its hash
    /// annotation: its data need not be compared.
    pub intact: bool,
    /// Version moves waiting for this ExternalSecret.
    pub pending_rotations: usize,
    /// False when this process last read with another store version.
    pub same_inputs: bool,
}

#[derive(Debug, PartialEq)]
pub(super) enum Decision {
    /// Nothing to read: keep the Secret, with the plan the status records.
    UpToDate(Plan),
    /// Read AWS; `pinned`: at the versions a rotation wake-up saw (already cached by it);
    /// `forced`: a new force-sync annotation asks for it.
    Read { pinned: bool, forced: bool },
}

pub(super) fn decide(facts: &Facts<'_>, now: DateTime<Utc>) -> Decision {
    let es = facts.spec.es;
    let force = es.annotations().get(FORCE_SYNC_ANNOTATION);
    let forced = force.is_some() && force != es.status.as_ref().and_then(|s| s.force_sync.as_ref());
    if facts.pending_rotations > 0 || forced {
        return Decision::Read {
            pinned: facts.pending_rotations > 0,
            forced,
        };
    }
    if let Some(plan) = created_once(facts) {
        return Decision::UpToDate(plan);
    }
    match up_to_date(facts, now) {
        Some(plan) => Decision::UpToDate(plan),
        None => Decision::Read {
            pinned: false,
            forced: false,
        },
    }
}

/// refreshPolicy CreatedOnce: once arnsync has written the Secret, it is never read or
/// written again (deleting the Secret lets arnsync create it once more).
fn created_once(facts: &Facts<'_>) -> Option<Plan> {
    let es = facts.spec.es;
    if facts.spec.policy != RefreshPolicy::CreatedOnce {
        return None;
    }
    let secret = facts.existing.filter(|s| written_by(s, es))?;
    let hash = secret.annotations().get(HASH_ANNOTATION)?.clone();
    Some(Plan {
        action: Action::Keep,
        data_hash: Some(hash),
        sources: es
            .status
            .as_ref()
            .map(|s| s.sources.clone())
            .unwrap_or_default(),
        gone: None,
    })
}

/// Same generation and store as the last successful read, not yet due for refresh, and the
/// Secret still holds exactly what was written.
fn up_to_date(facts: &Facts<'_>, now: DateTime<Utc>) -> Option<Plan> {
    let es = facts.spec.es;
    let status = es.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True);
    if !ready || status.observed_generation != es.metadata.generation || !facts.same_inputs {
        return None;
    }
    let refreshed: DateTime<Utc> = status.refresh_time.as_deref()?.parse().ok()?;
    let age = now
        .signed_duration_since(refreshed)
        .to_std()
        .unwrap_or_default();
    let refresh = facts.spec.refresh;
    if !refresh.is_zero() && age >= refresh {
        return None;
    }
    let hash = status.data_hash.as_ref()?;
    let secret = facts.existing?;
    let current: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    let annotated = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(HASH_ANNOTATION));
    // The Secret holds what arnsync last wrote when its content matches the hash arnsync wrote
    // with it. That is checked on the Secret itself, not against status.dataHash: the
    // ExternalSecret in the cache may predate the status write of the sync that wrote it.
    // Merge targets hold other keys too, so only the annotation can be compared there.
    let intact = match (es.spec.target.creation_policy, annotated) {
        (CreationPolicy::Merge, a) => a == Some(hash),
        (_, Some(a)) => facts.intact || &data_hash(&current) == a,
        (_, None) => false,
    };
    intact.then(|| Plan {
        action: Action::Keep,
        data_hash: Some(hash.clone()),
        sources: status.sources.clone(),
        gone: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ExternalSecret;
    use crate::sync::validate;
    use k8s_openapi::ByteString;
    use serde_json::json;

    const NOW: &str = "2026-01-01T12:00:00Z";

    /// An ExternalSecret last read at `refreshed`, Ready, at generation 1, with `extra` merged
    /// into its metadata.
    fn synced_es(refreshed: &str, extra: serde_json::Value) -> ExternalSecret {
        let mut es: ExternalSecret = serde_json::from_value(json!({
            "apiVersion": "arnsync.io/v1alpha1",
            "kind": "ExternalSecret",
            "metadata": {"name": "db", "namespace": "app", "uid": "u1", "generation": 1},
            "spec": {"secretStoreRef": {"name": "aws"}, "refreshInterval": "1h",
                     "data": [{"secretKey": "k", "remoteRef": {"key": "prod/db"}}]},
            "status": {
                "observedGeneration": 1,
                "refreshTime": refreshed,
                "dataHash": data_hash(&written()),
                "sources": [{"service": "SecretsManager", "key": "prod/db", "versionId": "v1"}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced",
                                "message": "", "lastTransitionTime": refreshed}]
            }
        }))
        .unwrap();
        if let Some(gen) = extra.get("generation") {
            es.metadata.generation = gen.as_i64();
        }
        if let Some(force) = extra.get("force") {
            es.annotations_mut()
                .insert(FORCE_SYNC_ANNOTATION.into(), force.as_str().unwrap().into());
        }
        es
    }

    fn written() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([("k".to_string(), b"s3cret".to_vec())])
    }

    /// The Secret as arnsync wrote it, with `data` in it now.
    fn secret(data: &BTreeMap<String, Vec<u8>>) -> Secret {
        let mut s = Secret::default();
        s.metadata.annotations = Some(BTreeMap::from([(
            HASH_ANNOTATION.to_string(),
            data_hash(&written()),
        )]));
        s.data = Some(
            data.iter()
                .map(|(k, v)| (k.clone(), ByteString(v.clone())))
                .collect(),
        );
        s
    }

    fn decide_for(es: &ExternalSecret, existing: &Secret, pending: usize, same: bool) -> Decision {
        let spec = validate(es).unwrap();
        let facts = Facts {
            spec: &spec,
            existing: Some(existing),
            intact: false,
            pending_rotations: pending,
            same_inputs: same,
        };
        decide(&facts, NOW.parse().unwrap())
    }

    const READ: Decision = Decision::Read {
        pinned: false,
        forced: false,
    };

    #[test]
    fn an_intact_secret_within_its_refresh_is_up_to_date_with_the_status_plan() {
        let es = synced_es("2026-01-01T11:30:00Z", json!({}));
        let Decision::UpToDate(plan) = decide_for(&es, &secret(&written()), 0, true) else {
            panic!("expected no read");
        };
        assert_eq!(plan.action, Action::Keep);
        assert_eq!(plan.data_hash, Some(data_hash(&written())));
        assert_eq!(plan.sources[0].version_id.as_deref(), Some("v1"));
    }

    #[test]
    fn a_due_refresh_a_spec_change_or_a_store_change_reads() {
        let due = synced_es("2026-01-01T10:59:00Z", json!({}));
        assert_eq!(decide_for(&due, &secret(&written()), 0, true), READ);
        let changed = synced_es("2026-01-01T11:30:00Z", json!({"generation": 2}));
        assert_eq!(decide_for(&changed, &secret(&written()), 0, true), READ);
        let fresh = synced_es("2026-01-01T11:30:00Z", json!({}));
        assert_eq!(decide_for(&fresh, &secret(&written()), 0, false), READ);
    }

    #[test]
    fn a_new_force_sync_value_reads_and_an_honoured_one_does_not() {
        let mut es = synced_es("2026-01-01T11:30:00Z", json!({"force": "1"}));
        assert_eq!(
            decide_for(&es, &secret(&written()), 0, true),
            Decision::Read {
                pinned: false,
                forced: true
            }
        );
        es.status.as_mut().unwrap().force_sync = Some("1".into());
        assert!(matches!(
            decide_for(&es, &secret(&written()), 0, true),
            Decision::UpToDate(_)
        ));
    }

    #[test]
    fn a_pending_rotation_reads_at_the_pinned_versions() {
        let es = synced_es("2026-01-01T11:30:00Z", json!({}));
        assert_eq!(
            decide_for(&es, &secret(&written()), 1, true),
            Decision::Read {
                pinned: true,
                forced: false
            }
        );
    }

    #[test]
    fn metadata_is_enough_when_the_secret_is_at_a_version_known_intact() {
        let es = synced_es("2026-01-01T11:30:00Z", json!({}));
        let mut meta_only = secret(&written());
        meta_only.data = None;
        let spec = validate(&es).unwrap();
        let facts = |intact| Facts {
            spec: &spec,
            existing: Some(&meta_only),
            intact,
            pending_rotations: 0,
            same_inputs: true,
        };
        let now = NOW.parse().unwrap();
        assert!(matches!(decide(&facts(true), now), Decision::UpToDate(_)));
        // Without that knowledge the data must be compared (and here it is not known).
        assert_eq!(decide(&facts(false), now), READ);
    }

    #[test]
    fn a_secret_edited_by_hand_is_read_and_written_again() {
        let es = synced_es("2026-01-01T11:30:00Z", json!({}));
        let edited = BTreeMap::from([("k".to_string(), b"edited".to_vec())]);
        assert_eq!(decide_for(&es, &secret(&edited), 0, true), READ);
    }
}
