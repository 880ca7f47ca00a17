//! Counts every AWS request attempt, retries included, in `arnsync_aws_requests`: the bill and
//! the throttling budget are per attempt, not per logical read.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    Error, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{Metadata, OrchestratorError};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::errors::{is_credentials_error, kind_for_code};
use crate::cost::Spend;
use crate::metrics::Metrics;
use crate::source::ErrorKind;

/// An interceptor for the clients of one AWS service of one identity.
pub struct CountAttempts {
    metrics: Metrics,
    /// `secretsmanager`, `ssm`, `sts` or `sqs`.
    service: &'static str,
    /// The identity's calls of the last hour, for its cost estimate.
    spend: Arc<Spend>,
}

impl CountAttempts {
    pub fn new(metrics: Metrics, service: &'static str, spend: Arc<Spend>) -> Self {
        CountAttempts {
            metrics,
            service,
            spend,
        }
    }
}

impl fmt::Debug for CountAttempts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountAttempts")
            .field("service", &self.service)
            .finish()
    }
}

impl Intercept for CountAttempts {
    fn name(&self) -> &'static str {
        "arnsync::CountAttempts"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| operation_label(m.name()))
            .unwrap_or("Other");
        let outcome = match context.output_or_error() {
            None => return Ok(()),
            Some(Ok(_)) => "success",
            Some(Err(err)) => {
                let status = context.response().map(|r| r.status().as_u16());
                attempt_kind(err, status).outcome()
            }
        };
        self.metrics.aws_request(self.service, operation, outcome);
        self.spend.record(self.service, Instant::now());
        Ok(())
    }
}

/// Metric labels must be static and few: the operations arnsync calls, anything else `Other`.
fn operation_label(name: &str) -> &'static str {
    match name {
        "GetSecretValue" => "GetSecretValue",
        "BatchGetSecretValue" => "BatchGetSecretValue",
        "ListSecrets" => "ListSecrets",
        "GetParameter" => "GetParameter",
        "GetParametersByPath" => "GetParametersByPath",
        "GetParameters" => "GetParameters",
        "DescribeSecret" => "DescribeSecret",
        "AssumeRoleWithWebIdentity" => "AssumeRoleWithWebIdentity",
        "GetCallerIdentity" => "GetCallerIdentity",
        "AssumeRole" => "AssumeRole",
        "ReceiveMessage" => "ReceiveMessage",
        "DeleteMessageBatch" => "DeleteMessageBatch",
        "GetQueueUrl" => "GetQueueUrl",
        _ => "Other",
    }
}

pub(crate) fn attempt_kind(err: &OrchestratorError<Error>, status: Option<u16>) -> ErrorKind {
    if let Some(op) = err.as_operation_error() {
        return match operation_error_code(op) {
            Some(code) => kind_for_code(code, status),
            None => kind_for_code("", status),
        };
    }
    if err.is_timeout_error() || err.is_connector_error() || err.is_response_error() {
        if is_credentials_error(err as &(dyn StdError + 'static)) {
            return ErrorKind::Credentials;
        }
        return ErrorKind::Unavailable;
    }
    if is_credentials_error(err as &(dyn StdError + 'static)) {
        ErrorKind::Credentials
    } else {
        ErrorKind::Other
    }
}

/// Operation errors reach interceptors type-erased; the code is read from the concrete type.
fn operation_error_code(err: &Error) -> Option<&str> {
    macro_rules! code_of {
        ($($ty:ty),* $(,)?) => {
            $(if let Some(e) = err.downcast_ref::<$ty>() {
                return e.code();
            })*
        };
    }
    code_of!(
        aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError,
        aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueError,
        aws_sdk_secretsmanager::operation::list_secrets::ListSecretsError,
        aws_sdk_ssm::operation::get_parameter::GetParameterError,
        aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathError,
        aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError,
        aws_sdk_sts::operation::assume_role::AssumeRoleError,
        aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError,
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
    use aws_smithy_types::error::ErrorMetadata;

    #[test]
    fn attempt_outcomes() {
        let meta = ErrorMetadata::builder().code("ThrottlingException").build();
        let op = OrchestratorError::operation(Error::erase(GetSecretValueError::generic(meta)));
        assert_eq!(attempt_kind(&op, Some(400)), ErrorKind::Throttled);

        let timeout = OrchestratorError::<Error>::timeout("slow".into());
        assert_eq!(attempt_kind(&timeout, None), ErrorKind::Unavailable);

        let creds = aws_credential_types::provider::error::CredentialsError::not_loaded("none");
        let other = OrchestratorError::<Error>::other(creds);
        assert_eq!(attempt_kind(&other, None), ErrorKind::Credentials);
    }

    #[test]
    fn unknown_operations_share_one_label() {
        assert_eq!(operation_label("GetSecretValue"), "GetSecretValue");
        assert_eq!(operation_label("DeleteSecret"), "Other");
        // The version watcher's calls are counted under their own names.
        for op in ["ListSecrets", "DescribeSecret", "GetParameters"] {
            assert_eq!(operation_label(op), op);
        }
    }
}
