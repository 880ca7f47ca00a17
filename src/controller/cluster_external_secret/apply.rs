//! Writes: the ExternalSecrets that exist, the one to apply in each namespace, and deletes of
//! the ones a ClusterExternalSecret created and no longer wants.

use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::plan::Existing;
use super::{CesContext, CES_LABEL};
use crate::api::{ClusterExternalSecret, ExternalSecret};
use crate::controller::external_secret::FORCE_SYNC_ANNOTATION;
use crate::controller::{SyncError, FIELD_MANAGER};

/// The ExternalSecrets that matter: those carrying this one's label, and every one of the name
/// it writes (a foreign one blocks a namespace). Listed from the API server, not a cache, so
/// that one created a moment ago is never overwritten.
pub(super) async fn existing(
    api: &Api<ExternalSecret>,
    ces: &ClusterExternalSecret,
    es_name: &str,
) -> Result<Vec<Existing>, SyncError> {
    let who = ces.label();
    let kube_err = |source| SyncError::Kube {
        who: who.clone(),
        source,
    };
    let labelled = api
        .list_metadata(&ListParams::default().labels(&format!("{CES_LABEL}={}", ces.name_any())))
        .await
        .map_err(kube_err)?;
    let named = api
        .list_metadata(&ListParams::default().fields(&format!("metadata.name={es_name}")))
        .await
        .map_err(kube_err)?;
    let uid = ces.uid().unwrap_or_default();
    let mut out: Vec<Existing> = labelled
        .items
        .iter()
        .chain(named.items.iter())
        .map(|m| Existing {
            namespace: m.namespace().unwrap_or_default(),
            name: m.name_any(),
            ours: created_by(m, &uid),
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// True when `es` has a controller ownerReference to the ClusterExternalSecret with `uid`.
fn created_by(es: &PartialObjectMeta<ExternalSecret>, uid: &str) -> bool {
    es.owner_references().iter().any(|o| {
        o.uid == uid && o.kind == ClusterExternalSecret::kind(&()) && o.controller == Some(true)
    })
}

/// The apply body of the ExternalSecret in every namespace (the namespace is added per write).
pub(super) fn desired(ces: &ClusterExternalSecret, es_name: &str) -> serde_json::Value {
    let meta = ces
        .spec
        .external_secret_metadata
        .clone()
        .unwrap_or_default();
    let mut labels = meta.labels;
    labels.insert(CES_LABEL.to_string(), ces.name_any());
    let mut annotations = meta.annotations;
    // A force-sync on the ClusterExternalSecret is passed on to every ExternalSecret.
    if let Some(v) = ces.annotations().get(FORCE_SYNC_ANNOTATION) {
        annotations.insert(FORCE_SYNC_ANNOTATION.to_string(), v.clone());
    }
    json!({
        "apiVersion": ExternalSecret::api_version(&()),
        "kind": ExternalSecret::kind(&()),
        "metadata": {
            "name": es_name,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": ces.controller_owner_ref(&()).into_iter().collect::<Vec<_>>(),
        },
        "spec": ces.spec.external_secret_spec,
    })
}

pub(super) async fn write(
    cx: &CesContext,
    ns: &str,
    es_name: &str,
    body: &serde_json::Value,
) -> Result<(), kube::Error> {
    let mut body = body.clone();
    body["metadata"]["namespace"] = json!(ns);
    Api::<ExternalSecret>::namespaced(cx.ctx.client.clone(), ns)
        .patch(
            es_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await?;
    Ok(())
}

/// Deletes an ExternalSecret this one created, only if it is still that object.
pub(super) async fn remove(
    cx: &CesContext,
    ns: &str,
    name: &str,
    owner_uid: &str,
) -> Result<(), kube::Error> {
    let api = Api::<ExternalSecret>::namespaced(cx.ctx.client.clone(), ns);
    let Some(current) = api.get_metadata_opt(name).await? else {
        return Ok(());
    };
    if !created_by(&current, owner_uid) {
        return Ok(());
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: current.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => {
            tracing::info!(externalsecret = %format!("{ns}/{name}"), "deleted ExternalSecret no longer selected");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes every ExternalSecret the ClusterExternalSecret created.
pub(super) async fn remove_all(ces: &ClusterExternalSecret, cx: &CesContext) {
    let api: Api<ExternalSecret> = Api::all(cx.ctx.client.clone());
    let uid = ces.uid().unwrap_or_default();
    let ours = match existing(&api, ces, &ces.external_secret_name()).await {
        Ok(all) => all.into_iter().filter(|e| e.ours),
        Err(e) => {
            tracing::warn!(object = %ces.label(), error = %e, "could not list the ExternalSecrets of a deleted ClusterExternalSecret");
            return;
        }
    };
    for e in ours {
        if let Err(err) = remove(cx, &e.namespace, &e.name, &uid).await {
            tracing::warn!(object = %ces.label(), externalsecret = %format!("{}/{}", e.namespace, e.name), error = %err, "could not delete an ExternalSecret of a deleted ClusterExternalSecret");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_external_secret_is_owned_labelled_and_carries_the_metadata() {
        let mut ces: ClusterExternalSecret = serde_json::from_value(json!({
            "apiVersion": "arnsync.io/v1alpha1", "kind": "ClusterExternalSecret",
            "metadata": {"name": "shared", "uid": "u-1",
                         "annotations": {FORCE_SYNC_ANNOTATION: "2", "unrelated": "x"}},
            "spec": {
                "externalSecretMetadata": {"labels": {"team": "a", CES_LABEL: "spoofed"},
                                           "annotations": {"note": "n"}},
                "externalSecretSpec": {
                    "secretStoreRef": {"name": "aws"},
                    "data": [{"secretKey": "k", "remoteRef": {"key": "prod/db"}}]
                }
            }
        }))
        .unwrap();
        let body = desired(&ces, "db");
        assert_eq!(body["kind"], "ExternalSecret");
        assert_eq!(body["metadata"]["name"], "db");
        assert_eq!(
            body["metadata"]["labels"],
            json!({"team": "a", CES_LABEL: "shared"})
        );
        assert_eq!(
            body["metadata"]["annotations"],
            json!({"note": "n", FORCE_SYNC_ANNOTATION: "2"})
        );
        let owner = &body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ClusterExternalSecret");
        assert_eq!(owner["uid"], "u-1");
        assert_eq!(owner["controller"], true);
        assert_eq!(body["spec"]["data"][0]["remoteRef"]["key"], "prod/db");

        ces.metadata.annotations = None;
        let body = desired(&ces, "db");
        assert_eq!(body["metadata"]["annotations"], json!({"note": "n"}));
    }
}
