//! The source layer: every read from AWS goes through here, never from a reconciler directly.
//!
//! One [`Source`] exists per store identity (region, endpoints, credentials, role), so that many
//! ExternalSecrets reading the same secret share one client, one cache and one read.
//!
//! Layout, dependencies pointing down: `watchers` (one [`Poller`] + [`Tracker`] per identity)
//! → `poller` (asks a [`VersionSource`], reports to the tracker) → `tracker` (who watches
//! what, last seen versions, wake-ups) and [`versions`] (the version-check trait); [`aws`]
//! implements [`Source`] and [`VersionSource`] over the SDK, behind [`cache`] (which also keeps
//! values the tracker follows for a whole sync wave), coalescing single reads into batch calls
//! (`batch`) and pacing every call per AWS quota; [`key`] is the one place that knows ARN
//! shapes; these types and `error` are shared by all of them.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

/// The data service a read goes to (the CRD's own enum: values and status entries carry it).
pub use crate::api::Service;

/// Which version of a remote value to read.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// Secrets Manager staging label (`AWSCURRENT`, `AWSPREVIOUS`, custom).
    Stage(String),
    /// Secrets Manager VersionId: immutable.
    VersionId(String),
    /// Parameter Store version number or label.
    ParameterVersion(String),
    /// Parameter Store: the latest version.
    Latest,
}

impl Selector {
    /// VersionIds and parameter version numbers never change what they point at; stages,
    /// labels and "latest" move.
    pub fn is_immutable(&self) -> bool {
        match self {
            Selector::VersionId(_) => true,
            Selector::ParameterVersion(v) => !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()),
            Selector::Stage(_) | Selector::Latest => false,
        }
    }
}

/// One value to read.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fetch {
    pub service: Service,
    /// Secret name or ARN; parameter name or ARN.
    pub key: String,
    pub selector: Selector,
}

impl Fetch {
    /// A Secrets Manager read.
    pub fn secret(key: &str, selector: Selector) -> Fetch {
        Fetch {
            service: Service::SecretsManager,
            key: key.into(),
            selector,
        }
    }

    /// The read of exactly `version` of this value; `None` when the selector is already exact
    /// (it cannot move) or the version is unknown.
    pub fn pinned(&self, version: &str) -> Option<Fetch> {
        if self.selector.is_immutable() || version.is_empty() {
            return None;
        }
        let selector = match self.selector {
            Selector::Stage(_) => Selector::VersionId(version.to_string()),
            Selector::Latest | Selector::ParameterVersion(_) => {
                Selector::ParameterVersion(version.to_string())
            }
            Selector::VersionId(_) => return None,
        };
        Some(Fetch {
            selector,
            ..self.clone()
        })
    }

    /// A Parameter Store read.
    pub fn parameter(key: &str, selector: Selector) -> Fetch {
        Fetch {
            service: Service::ParameterStore,
            key: key.into(),
            selector,
        }
    }
}

/// Many values at once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Find {
    /// Every parameter under a path (GetParametersByPath, paginated, decrypted).
    ParameterPath { path: String, recursive: bool },
    /// Every secret whose name matches `name_regexp` (when set) and carries all `tags`
    /// (ListSecrets, paginated; AWSCURRENT of each is read).
    Secrets {
        name_regexp: Option<String>,
        tags: BTreeMap<String, String>,
    },
}

/// Bytes of a secret value. Its `Debug` never shows them, so a value cannot reach a log line
/// or a panic message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(pub Vec<u8>);

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// A value read from AWS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    pub service: Service,
    /// The name as AWS reports it (secret Name; parameter Name).
    pub name: String,
    /// SecretString (UTF-8), SecretBinary, or the parameter value.
    pub data: SecretBytes,
    /// True for SecretBinary.
    pub binary: bool,
    /// Secrets Manager VersionId, or Parameter Store version number.
    pub version: String,
    /// When AWS says this version was made: the secret version's CreatedDate, the
    /// parameter's LastModifiedDate (`None` when the answer does not say).
    pub created: Option<std::time::SystemTime>,
}

/// Reads from one AWS identity. Implementations: [`aws::AwsSource`] (Secrets Manager and
/// Parameter Store through the AWS SDK) and, in unit tests, the in-memory fake.
#[async_trait]
pub trait Source: Send + Sync {
    /// Reads one value.
    async fn get(&self, fetch: &Fetch) -> Result<Value, SourceError>;
    /// Reads one value from AWS, not from what earlier reads left (force-sync). Sources without
    /// a cache read as [`Source::get`].
    async fn get_fresh(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        self.get(fetch).await
    }
    /// Reads every value a find matches, in a stable order.
    async fn find(&self, find: &Find) -> Result<Vec<Value>, SourceError>;
}

pub mod aws;
mod batch;
pub mod cache;
mod error;
mod event_queues;
pub mod events;
mod from_api;
mod identity;
pub mod key;
#[cfg(test)]
mod memory;
mod poller;
#[cfg(test)]
pub(crate) mod test_logs;
pub mod token;
mod tracker;
pub mod versions;
mod watchers;

pub use aws::{AwsSource, Quota, Rates, SourceOptions, Sources};
pub use cache::Cached;
pub use error::{AwsService, ErrorKind, SourceError};
pub use identity::{AssumeRole, Identity, Retry, SessionTag, StaticKeys, WebIdentity};
pub use poller::Poller;
pub use token::{ServiceAccountToken, TokenError, TokenSource};
pub use tracker::{moved_at, Moved, Subscriber, Tracker};
pub use versions::VersionSource;
pub use watchers::Watchers;
