//! Why a sync failed. Each error has a static reason (status reason, event reason, log field)
//! and a message that names the object, the field or key, and what to do; never a value.

use crate::source::SourceError;
use crate::sync::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The spec is wrong in a way the CRD schema cannot catch.
    #[error("{0}")]
    InvalidSpec(String),
    #[error("{0}")]
    StoreNotFound(String),
    #[error("{0}")]
    StoreNotAllowed(String),
    /// The store exists but cannot be used (e.g. its credentials Secret is missing).
    #[error("{0}")]
    StoreNotReady(String),
    #[error("{who}: {source}")]
    Source {
        who: String,
        #[source]
        source: SourceError,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{who}: Kubernetes API: {source}")]
    Kube {
        who: String,
        #[source]
        source: kube::Error,
    },
}

impl SyncError {
    /// Wraps an AWS read error of `who` (for `map_err`).
    pub fn from_source(who: &str) -> impl Fn(SourceError) -> SyncError + '_ {
        move |source| SyncError::Source {
            who: who.to_string(),
            source,
        }
    }

    /// The object's store cannot give it an identity (gone, not admitted, not ready).
    pub fn store_unusable(&self) -> bool {
        matches!(
            self,
            SyncError::StoreNotFound(_)
                | SyncError::StoreNotAllowed(_)
                | SyncError::StoreNotReady(_)
        )
    }

    pub fn reason(&self) -> &'static str {
        match self {
            SyncError::InvalidSpec(_) => "InvalidSpec",
            SyncError::StoreNotFound(_) => "StoreNotFound",
            SyncError::StoreNotAllowed(_) => "StoreNotAllowed",
            SyncError::StoreNotReady(_) => "StoreNotReady",
            SyncError::Source { source, .. } => source.kind.reason(),
            SyncError::Plan(e) => e.reason(),
            SyncError::Kube { .. } => "KubernetesError",
        }
    }
}

/// Errors that end a reconcile early (status could not be written); retried by the error policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{who}: {source}")]
    Workload {
        who: String,
        #[source]
        source: kube::Error,
    },
    /// The cache's copy of an ExternalSecret did not read back (not expected: it was written
    /// from the same type).
    #[error("{who}: reading the cached object: {reason}")]
    Cache { who: String, reason: String },
    #[error("writing status of {who}: {source}")]
    Status {
        who: String,
        #[source]
        source: kube::Error,
    },
}
