//! The ClusterExternalSecret reconciler: keeps one ExternalSecret in every namespace a
//! ClusterExternalSecret selects, removes the ones it created where it no longer selects, and
//! never takes over an ExternalSecret it did not create.
//!
//! The ExternalSecrets carry a controller ownerReference to the ClusterExternalSecret (the
//! garbage collector removes them with it; no finalizer) and the label [`CES_LABEL`] (how the
//! ones to remove are found). A pass that wrote while its ClusterExternalSecret was being
//! deleted removes what it wrote itself. Cluster-scoped: not run with `--namespace`.
//!
//! Layout: [`plan`] (selection and what to do, pure), [`apply`] (the writes), [`status`],
//! [`watch`] (what wakes a ClusterExternalSecret).

mod apply;
mod plan;
mod status;
mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};

use super::error::{Error, SyncError};
use super::Context;
use crate::api::{parse_duration, ClusterExternalSecret, ExternalSecret, NamespaceFailure};
use apply::{desired, existing, remove, remove_all, write};
use plan::{NamespaceView, Plan, Selection};
use status::publish;

pub(super) use watch::controller;

/// Label on every ExternalSecret a ClusterExternalSecret created: the ClusterExternalSecret's name.
pub const CES_LABEL: &str = "arnsync.io/cluster-external-secret";

/// The longest ClusterExternalSecret name: its name is a label value.
const MAX_NAME: usize = 63;

/// How long a reconcile waits for the first full list of namespaces.
const NAMESPACES_WAIT: Duration = Duration::from_secs(30);

/// What the reconciler shares: the operator's context and the namespace cache.
pub(super) struct CesContext {
    ctx: Arc<Context>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
}

/// What one pass did.
struct Provisioned {
    es_name: String,
    selected: usize,
    provisioned: Vec<String>,
    failed: Vec<NamespaceFailure>,
    refresh: Duration,
}

pub(super) async fn reconcile(
    ces: Arc<ClusterExternalSecret>,
    cx: Arc<CesContext>,
) -> Result<Action, Error> {
    if ces.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes its ExternalSecrets through their ownerReferences.
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let ctx = &cx.ctx;
    let outcome = provision(&ces, &cx).await;
    if matches!(&outcome, Ok(p) if !p.provisioned.is_empty()) && deleted_meanwhile(&ces, &cx).await
    {
        // The garbage collector may have run before these writes: remove what they created.
        remove_all(&ces, &cx).await;
        return Ok(Action::await_change());
    }
    let ready = publish(&ces, ctx, &outcome).await?;
    ctx.metrics
        .reconcile("ClusterExternalSecret", &ready.reason, started.elapsed());
    tracing::info!(object = %ces.label(), reason = %ready.reason, "reconciled");
    let key = ces.uid().unwrap_or_default();
    Ok(match &outcome {
        Ok(p) if p.failed.is_empty() => {
            ctx.backoff.forget(&key);
            requeue(p.refresh)
        }
        Ok(p) if p.refresh.is_zero() => Action::requeue(ctx.backoff.next(&key)),
        Ok(p) => Action::requeue(ctx.backoff.next(&key).min(p.refresh)),
        Err(_) => Action::requeue(ctx.backoff.next(&key)),
    })
}

/// `0` re-evaluates on changes only.
fn requeue(refresh: Duration) -> Action {
    if refresh.is_zero() {
        Action::await_change()
    } else {
        Action::requeue(refresh)
    }
}

pub(super) fn error_policy(
    ces: Arc<ClusterExternalSecret>,
    err: &Error,
    cx: Arc<CesContext>,
) -> Action {
    tracing::warn!(object = %ces.label(), error = %err, "reconcile failed");
    Action::requeue(cx.ctx.backoff.next(&ces.uid().unwrap_or_default()))
}

async fn provision(ces: &ClusterExternalSecret, cx: &CesContext) -> Result<Provisioned, SyncError> {
    let who = ces.label();
    let refresh = validate(ces)?;
    if tokio::time::timeout(NAMESPACES_WAIT, cx.namespaces.wait_until_ready())
        .await
        .map_or(true, |r| r.is_err())
    {
        return Err(SyncError::Kube {
            who: who.clone(),
            source: kube::Error::Service(
                "the namespace list has not arrived yet: arnsync needs list and watch on namespaces"
                    .into(),
            ),
        });
    }
    let namespaces = cx.namespaces.state();
    let selection = Selection::of(
        &ces.spec,
        namespaces.iter().map(|ns| NamespaceView {
            name: ns.metadata.name.as_deref().unwrap_or_default(),
            labels: ns.metadata.labels.as_ref().unwrap_or(&EMPTY),
            terminating: ns.metadata.deletion_timestamp.is_some(),
        }),
    );
    let es_name = ces.external_secret_name();
    let api: Api<ExternalSecret> = Api::all(cx.ctx.client.clone());
    let existing = existing(&api, ces, &es_name).await?;
    let Plan {
        apply,
        taken,
        delete,
    } = plan::plan(&selection, &es_name, &existing);

    let mut provisioned = vec![];
    let mut failed: Vec<NamespaceFailure> = taken
        .into_iter()
        .map(|ns| NamespaceFailure {
            reason: format!(
                "ExternalSecret {ns}/{es_name} exists and was not created by {who}; it is left as it is: delete or rename it, or set spec.externalSecretName"
            ),
            namespace: ns,
        })
        .collect();
    let body = desired(ces, &es_name);
    for ns in apply {
        match write(cx, &ns, &es_name, &body).await {
            Ok(()) => provisioned.push(ns),
            Err(e) => failed.push(NamespaceFailure {
                reason: format!("writing ExternalSecret {ns}/{es_name}: {e}"),
                namespace: ns,
            }),
        }
    }
    let uid = ces.uid().unwrap_or_default();
    for (ns, es) in delete {
        if let Err(e) = remove(cx, &ns, &es, &uid).await {
            failed.push(NamespaceFailure {
                reason: format!(
                    "deleting ExternalSecret {ns}/{es}, which {who} no longer selects: {e}"
                ),
                namespace: ns,
            });
        }
    }
    failed.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    Ok(Provisioned {
        es_name,
        selected: selection.live.len(),
        provisioned,
        failed,
        refresh,
    })
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

/// What the schema cannot check: the refresh time, and a name that fits a label value.
/// Returns the refresh time.
fn validate(ces: &ClusterExternalSecret) -> Result<Duration, SyncError> {
    let who = ces.label();
    let refresh = parse_duration(&ces.spec.refresh_time)
        .map_err(|e| SyncError::InvalidSpec(format!("{who}: spec.refreshTime: {e}")))?;
    let name = ces.name_any();
    if name.len() > MAX_NAME {
        return Err(SyncError::InvalidSpec(format!(
            "{who}: the name is {} characters long; at most {MAX_NAME} fit the label {CES_LABEL} its ExternalSecrets carry: use a shorter name",
            name.len()
        )));
    }
    Ok(refresh)
}

/// True when the ClusterExternalSecret is gone or being deleted (asked after a pass wrote).
async fn deleted_meanwhile(ces: &ClusterExternalSecret, cx: &CesContext) -> bool {
    let api: Api<ClusterExternalSecret> = Api::all(cx.ctx.client.clone());
    match api.get_metadata_opt(&ces.name_any()).await {
        Ok(None) => true,
        Ok(Some(now)) => now.uid() != ces.uid() || now.metadata.deletion_timestamp.is_some(),
        // Unknown: the garbage collector removes what outlives its owner.
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ces(name: &str, refresh: &str) -> ClusterExternalSecret {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "arnsync.io/v1alpha1", "kind": "ClusterExternalSecret",
            "metadata": {"name": name},
            "spec": {
                "refreshTime": refresh,
                "externalSecretSpec": {
                    "secretStoreRef": {"name": "aws"},
                    "data": [{"secretKey": "k", "remoteRef": {"key": "prod/db"}}]
                }
            }
        }))
        .unwrap()
    }

    #[test]
    fn refresh_time_and_name_are_checked_with_a_message_naming_the_object() {
        assert_eq!(
            validate(&ces("shared", "1m")).unwrap(),
            Duration::from_secs(60)
        );
        assert_eq!(validate(&ces("shared", "0")).unwrap(), Duration::ZERO);
        let e = validate(&ces("shared", "1 day")).unwrap_err();
        assert_eq!(e.reason(), "InvalidSpec");
        let m = e.to_string();
        assert!(
            m.starts_with("ClusterExternalSecret shared: spec.refreshTime: "),
            "{m}"
        );
        assert!(m.contains("write it like"), "{m}");
        let long = "a".repeat(64);
        let m = validate(&ces(&long, "1m")).unwrap_err().to_string();
        assert!(
            m.contains("64 characters") && m.contains("shorter name"),
            "{m}"
        );
        assert!(validate(&ces(&"a".repeat(63), "1m")).is_ok());
    }
}
