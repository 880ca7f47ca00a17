//! The `arnsync.io/v1alpha1` API: `SecretStore`, `ClusterSecretStore`, `ExternalSecret` and
//! `ClusterExternalSecret`.
//!
//! Field names and shapes are External Secrets Operator's for everything arnsync does, so that
//! an ESO manifest for AWS works with only `apiVersion` changed; what ESO has and arnsync does
//! not is declared and refused by a rule that names it. The CRD YAML in `crds/` is generated from
//! these types (`arnsync crds`) and a test fails when the committed copy drifts.

mod cluster_external_secret;
mod conditions;
mod duration;
mod external_secret;
mod store;

pub use cluster_external_secret::*;
pub use conditions::{set_condition, Condition, ConditionStatus};
pub use duration::{parse_duration, DurationError};
pub use external_secret::*;
pub use store::*;

use kube::CustomResourceExt;

/// The API group of every arnsync kind.
pub const GROUP: &str = "arnsync.io";

/// The CRDs of every kind, in a stable order, as one multi-document YAML stream.
pub fn crds_yaml() -> String {
    let crds = [
        SecretStore::crd(),
        ClusterSecretStore::crd(),
        ExternalSecret::crd(),
        ClusterExternalSecret::crd(),
    ];
    crds.iter()
        .map(|crd| {
            let body = serde_yaml::to_string(crd).expect("a CRD always serializes to YAML");
            format!("---\n{body}")
        })
        .collect()
}
