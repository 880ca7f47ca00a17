//! The ExternalSecret controller's cache entries.
//!
//! A typed [`ExternalSecret`] takes about 2 KiB in memory (a 900-byte struct of mostly empty
//! options, and each name, key, condition and version a small allocation of its own); with
//! 10,000 ExternalSecrets the cache was the largest part of the operator's heap. The cache keeps
//! instead what the controller and its wake-ups look at without reconciling (name, namespace,
//! uid, resourceVersion, generation, deletion, the store reference, the Ready status) and the
//! whole object (stripped, see [`strip`]) as one buffer of compressed JSON (deflate, about half
//! the size: field names repeat), which a reconcile expands.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::Resource;
use serde::{Deserialize, Deserializer};

use super::caches::strip;
use crate::api::{ConditionStatus, ExternalSecret, StoreRef};

/// A reference to an ExternalSecret in the controller's cache (what wake-ups send).
pub type EsRef = ObjectRef<CachedExternalSecret>;

/// An ExternalSecret as the controller's cache keeps it: about 1 KiB (the typed object took 2).
#[derive(Clone, Debug)]
pub struct CachedExternalSecret {
    metadata: ObjectMeta,
    store_ref: StoreRef,
    ready: Option<ConditionStatus>,
    /// The stripped object, as deflated JSON.
    packed: Box<[u8]>,
}

impl CachedExternalSecret {
    /// The object, for a reconcile.
    pub fn expand(&self) -> Result<ExternalSecret, String> {
        let json = miniz_oxide::inflate::decompress_to_vec(&self.packed)
            .map_err(|e| format!("inflating: {e}"))?;
        serde_json::from_slice(&json).map_err(|e| e.to_string())
    }

    /// `spec.secretStoreRef`.
    pub fn store_ref(&self) -> &StoreRef {
        &self.store_ref
    }

    /// The status of the `Ready` condition, if there is one.
    pub fn ready(&self) -> Option<&ConditionStatus> {
        self.ready.as_ref()
    }
}

impl From<ExternalSecret> for CachedExternalSecret {
    fn from(mut es: ExternalSecret) -> Self {
        strip(&mut es);
        // Serializing a derived type to a Vec cannot fail (every map key is a string).
        let json = serde_json::to_vec(&es).unwrap_or_default();
        // Level 6: 546 bytes for a 1,127-byte synced ExternalSecret (level 1: 588; 9: no smaller).
        let packed = miniz_oxide::deflate::compress_to_vec(&json, 6).into_boxed_slice();
        let ready = es
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        let m = es.metadata;
        CachedExternalSecret {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                uid: m.uid,
                resource_version: m.resource_version,
                generation: m.generation,
                deletion_timestamp: m.deletion_timestamp,
                ..ObjectMeta::default()
            },
            store_ref: es.spec.secret_store_ref,
            ready,
            packed,
        }
    }
}

/// Read as an [`ExternalSecret`] (the same errors for objects that do not fit its schema),
/// then packed.
impl<'de> Deserialize<'de> for CachedExternalSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ExternalSecret::deserialize(d).map(Self::from)
    }
}

/// The same API resource as [`ExternalSecret`].
impl Resource for CachedExternalSecret {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        ExternalSecret::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        ExternalSecret::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        ExternalSecret::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        ExternalSecret::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;

    #[test]
    fn expands_to_the_object_it_was_made_of_without_managed_fields() {
        let es: ExternalSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "arnsync.io/v1alpha1",
            "kind": "ExternalSecret",
            "metadata": {
                "name": "db", "namespace": "apps", "uid": "u-1", "resourceVersion": "7",
                "generation": 2, "labels": {"team": "a"},
                "annotations": {"arnsync.io/force-sync": "1",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {
                "secretStoreRef": {"name": "aws", "kind": "ClusterSecretStore"},
                "data": [{"secretKey": "password", "remoteRef": {"key": "db", "property": "p"}}]
            },
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "R",
                "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap();
        let cached: CachedExternalSecret =
            serde_json::from_value(serde_json::to_value(&es).unwrap()).unwrap();
        let mut want = es.clone();
        strip(&mut want);
        let json = |es: &ExternalSecret| serde_json::to_value(es).unwrap();
        assert_eq!(json(&cached.expand().unwrap()), json(&want));
        assert_eq!(cached.expand().unwrap().labels()["team"], "a");
        assert!(cached.expand().unwrap().metadata.managed_fields.is_none());
        assert_eq!(cached.name_any(), "db");
        assert_eq!(cached.namespace().as_deref(), Some("apps"));
        assert_eq!(cached.uid().as_deref(), Some("u-1"));
        assert_eq!(cached.resource_version().as_deref(), Some("7"));
        assert_eq!(cached.meta().generation, Some(2));
        assert_eq!(cached.store_ref().name, "aws");
        assert_eq!(cached.ready(), Some(&ConditionStatus::False));
        // The cache does not keep a second copy of labels and annotations outside the JSON.
        assert!(cached.meta().labels.is_none() && cached.meta().annotations.is_none());
    }

    #[test]
    fn a_synced_external_secret_is_kept_in_less_than_half_its_json() {
        let es: ExternalSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
            "metadata": {"name": "es00042", "namespace": "bench-2", "generation": 1,
                "uid": "0b5b3c1e-8f0e-4a4f-9d55-6f1f5d0e2a42", "resourceVersion": "123456",
                "creationTimestamp": "2026-12-02T21:00:00Z"},
            "spec": {
                "secretStoreRef": {"name": "aws", "kind": "SecretStore"},
                "refreshInterval": "1h",
                "target": {"creationPolicy": "Owner", "deletionPolicy": "Retain"},
                "data": [
                    {"secretKey": "password",
                     "remoteRef": {"key": "bench/s0042", "property": "password"}},
                    {"secretKey": "param",
                     "remoteRef": {"key": "arn:aws:ssm:us-east-1:123456789012:parameter/bench/p0042"}}
                ]
            },
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced",
                    "message": "Secret es00042 synced", "lastTransitionTime": "2026-12-02T21:00:05Z"}],
                "observedGeneration": 1, "refreshTime": "2026-12-02T21:00:05Z",
                "targetName": "es00042",
                "sources": [
                    {"service": "SecretsManager", "key": "bench/s0042",
                     "versionId": "9d0c7a52-3f7b-4d0b-b2a5-1a6c7e3c0f42", "version": "AWSCURRENT"},
                    {"service": "ParameterStore",
                     "key": "arn:aws:ssm:us-east-1:123456789012:parameter/bench/p0042",
                     "version": "1"}
                ],
                "dataHash": "3f9a1c0d5e7b2a4c6e8f0a1b3c5d7e9f"
            }
        }))
        .unwrap();
        let json = serde_json::to_vec(&es).unwrap().len();
        let cached = CachedExternalSecret::from(es);
        assert!(
            cached.packed.len() * 2 < json,
            "{} bytes packed for {json} of JSON",
            cached.packed.len()
        );
    }

    #[test]
    fn objects_that_do_not_fit_the_schema_are_refused_as_they_were() {
        let bad = serde_json::json!({
            "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
            "metadata": {"name": "x", "namespace": "n"},
            "spec": {"secretStoreRef": {"name": 3}}
        });
        let typed = serde_json::from_value::<ExternalSecret>(bad.clone()).unwrap_err();
        let cached = serde_json::from_value::<CachedExternalSecret>(bad).unwrap_err();
        assert_eq!(typed.to_string(), cached.to_string());
    }
}
