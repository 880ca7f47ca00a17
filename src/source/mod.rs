//! The source layer: every read from AWS goes through here, never from a reconciler directly.
//!
//! One [`Source`] exists per store identity (region, endpoints, credentials, role), so that many
//! ExternalSecrets reading the same secret share one client, one cache and one read.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

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
}

/// What went wrong, as a category that becomes a status reason, an event reason and a metric
/// label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// ResourceNotFoundException, ParameterNotFound, ParameterVersionNotFound.
    NotFound,
    /// AccessDeniedException, UnrecognizedClientException, KMS access errors.
    AccessDenied,
    /// ThrottlingException, TooManyRequestsException, rate exceeded.
    Throttled,
    /// The request is malformed (bad ARN, bad filter, InvalidParameterException).
    InvalidRequest,
    /// Timeouts, 5xx, dropped connections: worth retrying.
    Unavailable,
    /// Credentials could not be found or assumed.
    Credentials,
    Other,
}

impl ErrorKind {
    /// Status / event reason.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "SecretNotFound",
            ErrorKind::AccessDenied => "AccessDenied",
            ErrorKind::Throttled => "Throttled",
            ErrorKind::InvalidRequest => "InvalidRequest",
            ErrorKind::Unavailable => "AWSUnavailable",
            ErrorKind::Credentials => "CredentialsError",
            ErrorKind::Other => "AWSError",
        }
    }

    /// Metric label.
    pub fn outcome(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::Throttled => "throttled",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Credentials => "credentials",
            ErrorKind::Other => "error",
        }
    }
}

/// A failed AWS read. The message names the service, operation, key and AWS error code; it is
/// built from AWS's error message, which never carries secret values.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("{} {operation} on {key:?} failed: {code}: {message}", self.service_name())]
pub struct SourceError {
    pub kind: ErrorKind,
    pub service: Service,
    /// The AWS operation, e.g. `GetSecretValue`.
    pub operation: &'static str,
    /// The key (or find path / filter) the call was about.
    pub key: String,
    /// The AWS error code (`ResourceNotFoundException`), or a short local code (`Timeout`).
    pub code: String,
    pub message: String,
}

impl SourceError {
    /// The AWS service the failed call went to. STS calls (credentials, the store check) carry
    /// the service of the read they served, so they are told apart by operation.
    pub fn service_name(&self) -> String {
        match self.operation {
            "GetCallerIdentity" | "AssumeRole" | "AssumeRoleWithWebIdentity" => "STS".into(),
            _ => self.service.to_string(),
        }
    }
}

/// Reads from one AWS identity. Implementations: [`aws::AwsSource`] (Secrets Manager and
/// Parameter Store through the AWS SDK) and [`memory::MemorySource`] (tests).
#[async_trait]
pub trait Source: Send + Sync {
    /// Reads one value.
    async fn get(&self, fetch: &Fetch) -> Result<Value, SourceError>;
    /// Reads every value a find matches, in a stable order.
    async fn find(&self, find: &Find) -> Result<Vec<Value>, SourceError>;
}

mod attempts;
pub mod aws;
pub mod cache;
mod credentials;
pub mod errors;
mod identity;
pub mod memory;
mod parameter_store;
mod secrets_manager;
pub mod versions;
pub mod watcher;

pub use aws::{AwsSource, SourceOptions, Sources};
pub use cache::Cached;
pub use identity::{Identity, StaticKeys};
pub use memory::MemorySource;
#[cfg(test)]
mod moto_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn err(operation: &'static str) -> SourceError {
        SourceError {
            kind: ErrorKind::AccessDenied,
            service: Service::SecretsManager,
            operation,
            key: "prod/db".into(),
            code: "AccessDeniedException".into(),
            message: "not authorized".into(),
        }
    }

    #[test]
    fn messages_name_the_service_operation_key_and_code() {
        assert_eq!(
            err("GetSecretValue").to_string(),
            "SecretsManager GetSecretValue on \"prod/db\" failed: AccessDeniedException: not authorized"
        );
        assert!(err("AssumeRole").to_string().starts_with("STS AssumeRole"));
        assert!(err("GetCallerIdentity")
            .to_string()
            .starts_with("STS GetCallerIdentity"));
    }
}
