//! The ExternalSecret controller's cache entries.
//!
//! A typed [`ExternalSecret`] takes about 2 KiB in memory (a 900-byte struct of mostly empty
//! options, and each name, key, condition and version a small allocation of its own); with
//! 10,000 ExternalSecrets the cache was the largest part of the operator's heap. The cache keeps
//! instead what the controller and its wake-ups look at without reconciling (name, namespace,
//! uid, resourceVersion, generation, deletion, the store reference, the Ready status) and the
//! whole object (stripped, see [`strip`]) as one JSON buffer, which a reconcile expands.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::Resource;
use serde::{Deserialize, Deserializer};

use super::caches::strip;
use crate::api::{ConditionStatus, ExternalSecret, StoreRef};

/// A reference to an ExternalSecret in the controller's cache (what wake-ups send).
pub type EsRef = ObjectRef<CachedExternalSecret>;

/// An ExternalSecret as the controller's cache keeps it: about 1 KiB.
#[derive(Clone, Debug)]
pub struct CachedExternalSecret {
    metadata: ObjectMeta,
    store_ref: StoreRef,
    ready: Option<ConditionStatus>,
    /// The stripped object, as JSON.
    json: Box<[u8]>,
}

impl CachedExternalSecret {
    /// The object, for a reconcile.
    pub fn expand(&self) -> Result<ExternalSecret, serde_json::Error> {
        serde_json::from_slice(&self.json)
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
        let json = serde_json::to_vec(&es)
            .unwrap_or_default()
            .into_boxed_slice();
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
            json,
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
