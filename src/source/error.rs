//! What a failed read reports: a category (status reason, event reason, metric label), the AWS
//! service and operation, the key, and AWS's own code and message.

use std::fmt;

use super::Service;

/// Every AWS service the source layer calls, STS included (credentials, the store check).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AwsService {
    SecretsManager,
    ParameterStore,
    Sts,
}

impl From<Service> for AwsService {
    fn from(s: Service) -> AwsService {
        match s {
            Service::SecretsManager => AwsService::SecretsManager,
            Service::ParameterStore => AwsService::ParameterStore,
        }
    }
}

impl fmt::Display for AwsService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AwsService::SecretsManager => "SecretsManager",
            AwsService::ParameterStore => "ParameterStore",
            AwsService::Sts => "STS",
        })
    }
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
#[error("{service} {operation} on {key:?} failed: {code}: {message}")]
pub struct SourceError {
    pub kind: ErrorKind,
    pub service: AwsService,
    /// The AWS operation, e.g. `GetSecretValue`.
    pub operation: &'static str,
    /// The key (or find path / filter) the call was about.
    pub key: String,
    /// The AWS error code (`ResourceNotFoundException`), or a short local code (`Timeout`).
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(service: AwsService, operation: &'static str) -> SourceError {
        SourceError {
            kind: ErrorKind::AccessDenied,
            service,
            operation,
            key: "prod/db".into(),
            code: "AccessDeniedException".into(),
            message: "not authorized".into(),
        }
    }

    #[test]
    fn messages_name_the_service_operation_key_and_code() {
        assert_eq!(
            err(AwsService::SecretsManager, "GetSecretValue").to_string(),
            "SecretsManager GetSecretValue on \"prod/db\" failed: AccessDeniedException: not authorized"
        );
        assert!(err(AwsService::Sts, "AssumeRole")
            .to_string()
            .starts_with("STS AssumeRole"));
        assert!(err(AwsService::Sts, "GetCallerIdentity")
            .to_string()
            .starts_with("STS GetCallerIdentity"));
    }
}
