//! Pure restart decisions: which Secrets a workload uses, its fingerprint, and whether to record
//! or roll.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::{RESTART_ANNOTATION, SECRETS_ANNOTATION, VERSIONS_ANNOTATION};

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
