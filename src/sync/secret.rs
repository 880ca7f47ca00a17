//! The Secret a plan writes: its desired shape, whether it differs from the current one, and
//! whether arnsync may write it at all.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::Resource;

use super::templating::Rendered;
use super::PlanError;
use crate::api::{CreationPolicy, ExternalSecret};

/// Label on every Secret arnsync writes; the operator watches Secrets by it.
pub const MANAGED_LABEL: &str = "arnsync.io/managed";
/// Annotation naming the ExternalSecret (same namespace) that writes the Secret.
pub const OWNER_ANNOTATION: &str = "arnsync.io/external-secret";
/// Annotation holding the hash of the data arnsync wrote.
pub const HASH_ANNOTATION: &str = "arnsync.io/data-hash";

/// True when `secret` carries this ExternalSecret's ownership annotation.
pub fn written_by(secret: &Secret, es: &ExternalSecret) -> bool {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(OWNER_ANNOTATION))
        .is_some_and(|n| Some(n) == es.metadata.name.as_ref())
}

/// Refuses to take over a Secret that someone else owns, and to create one that Merge expects.
pub(super) fn check_target(
    who: &str,
    target: &str,
    es: &ExternalSecret,
    existing: Option<&Secret>,
) -> Result<(), PlanError> {
    let policy = es.spec.target.creation_policy;
    if policy == CreationPolicy::None {
        return Ok(());
    }
    let Some(current) = existing else {
        if policy == CreationPolicy::Merge {
            return Err(PlanError::TargetNotFound(format!(
                "{who}: Secret {target} does not exist; creationPolicy Merge only adds keys to an existing Secret: create it first, or use creationPolicy Owner"
            )));
        }
        return Ok(());
    };
    let writer = current
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(OWNER_ANNOTATION));
    if policy != CreationPolicy::Merge {
        match writer {
            Some(n) if Some(n) == es.metadata.name.as_ref() => {}
            Some(other) => {
                return Err(PlanError::TargetConflict(format!(
                    "{who}: Secret {target} is already written by ExternalSecret {other}; give one of them another target.name"
                )))
            }
            None => {
                return Err(PlanError::TargetConflict(format!(
                    "{who}: Secret {target} exists and was not created by arnsync; to add keys to it use creationPolicy Merge, or delete it to let arnsync create it"
                )))
            }
        }
        let want = es
            .spec
            .target
            .template
            .as_ref()
            .and_then(|t| t.type_.clone())
            .unwrap_or_else(|| "Opaque".into());
        let have = current.type_.clone().unwrap_or_else(|| "Opaque".into());
        if want != have {
            return Err(PlanError::TargetConflict(format!(
                "{who}: Secret {target} has type {have} and target.template.type asks for {want}; a Secret's type cannot change: delete the Secret to let arnsync recreate it"
            )));
        }
    } else if let Some(other) = writer.filter(|n| Some(*n) != es.metadata.name.as_ref()) {
        return Err(PlanError::TargetConflict(format!(
            "{who}: Secret {target} is already written by ExternalSecret {other}; merge into a different Secret"
        )));
    }
    Ok(())
}

pub(super) fn desired_secret(
    es: &ExternalSecret,
    target: &str,
    rendered: &Rendered,
    hash: &str,
) -> Secret {
    let policy = es.spec.target.creation_policy;
    let template = es.spec.target.template.as_ref();
    let data = &rendered.data;
    let mut labels = rendered.labels.clone();
    labels.insert("app.kubernetes.io/managed-by".into(), "arnsync".into());
    labels.insert(MANAGED_LABEL.into(), "true".into());
    let mut annotations = rendered.annotations.clone();
    annotations.insert(
        OWNER_ANNOTATION.into(),
        es.metadata.name.clone().unwrap_or_default(),
    );
    annotations.insert(HASH_ANNOTATION.into(), hash.into());
    let owner_references = (policy == CreationPolicy::Owner).then(|| {
        vec![OwnerReference {
            api_version: ExternalSecret::api_version(&()).into_owned(),
            kind: ExternalSecret::kind(&()).into_owned(),
            name: es.metadata.name.clone().unwrap_or_default(),
            uid: es.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    });
    let type_ = (policy != CreationPolicy::Merge).then(|| {
        template
            .and_then(|t| t.type_.clone())
            .unwrap_or_else(|| "Opaque".into())
    });
    Secret {
        metadata: ObjectMeta {
            name: Some(target.into()),
            namespace: es.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references,
            ..Default::default()
        },
        type_,
        immutable: es.spec.target.immutable.then_some(true),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.clone(), ByteString(v.clone())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// True when applying `desired` would change `current`.
pub(super) fn differs(current: &Secret, desired: &Secret) -> bool {
    let subset = |want: &Option<BTreeMap<String, String>>,
                  have: &Option<BTreeMap<String, String>>| {
        want.iter()
            .flatten()
            .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
    };
    let data_same = desired
        .data
        .iter()
        .flatten()
        .all(|(k, v)| current.data.as_ref().and_then(|d| d.get(k)) == Some(v));
    let owners_same = desired.metadata.owner_references.iter().flatten().all(|o| {
        current
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|c| c.uid == o.uid && c.controller == o.controller)
    });
    let type_same = desired.type_.is_none() || desired.type_ == current.type_;
    let immutable_same = desired.immutable.is_none() || desired.immutable == current.immutable;
    !(data_same
        && owners_same
        && type_same
        && immutable_same
        && subset(&desired.metadata.labels, &current.metadata.labels)
        && subset(&desired.metadata.annotations, &current.metadata.annotations))
}
