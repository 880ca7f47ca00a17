//! Apply: carries out the plan's write of the target Secret, if it has one.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::controller::{SyncError, FIELD_MANAGER};
use crate::sync::{Action, ValidSpec};

/// Returns the Secret as written, when it wrote one.
pub(super) async fn write(
    secrets: &Api<Secret>,
    spec: &ValidSpec<'_>,
    action: &Action,
) -> Result<Option<Secret>, SyncError> {
    let (who, target) = (&spec.who, spec.es.target_name());
    let kube_err = |source| SyncError::Kube {
        who: who.to_string(),
        source,
    };
    match action {
        Action::Apply {
            secret,
            changed: true,
        } => {
            let written = secrets
                .patch(
                    &target,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(apply_body(secret)),
                )
                .await
                .map_err(kube_err)?;
            tracing::info!(object = %who, secret = %target, "wrote Secret");
            return Ok(Some(written));
        }
        Action::Delete => {
            match secrets.delete(&target, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(ref s)) if s.code == 404 => {}
                Err(source) => return Err(kube_err(source)),
            }
            tracing::info!(object = %who, secret = %target, "deleted Secret (deletionPolicy Delete)");
        }
        Action::Apply { changed: false, .. } | Action::Keep => {}
    }
    Ok(None)
}

/// The apply body: only the fields arnsync owns.
fn apply_body(secret: &Secret) -> serde_json::Value {
    let mut body = serde_json::to_value(secret).expect("a Secret serializes");
    body["apiVersion"] = json!("v1");
    body["kind"] = json!("Secret");
    body
}
