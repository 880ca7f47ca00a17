//! Turns AWS SDK errors into [`SourceError`]s: one category per AWS error code, and local codes
//! (`Timeout`, `ConnectionError`, `CredentialsError`) for failures that never reached AWS.

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::source::{AwsService, ErrorKind, SourceError};

/// Local messages (transport, credentials) are cut to this length: they are diagnostic, and a
/// long chain would swamp a status condition.
const MAX_MESSAGE: usize = 512;

/// The category of an AWS error code. `status` (HTTP) decides for codes not listed.
pub fn kind_for_code(code: &str, status: Option<u16>) -> ErrorKind {
    match code {
        "ResourceNotFoundException" | "ParameterNotFound" | "ParameterVersionNotFound" => {
            ErrorKind::NotFound
        }
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "IncompleteSignature"
        | "DecryptionFailure"
        | "KMSAccessDeniedException"
        | "KMSDisabledException"
        | "KMSInvalidStateException"
        | "KMSNotFoundException" => ErrorKind::AccessDenied,
        // The web identity token was refused (STS AssumeRoleWithWebIdentity).
        "ExpiredToken"
        | "ExpiredTokenException"
        | "RequestExpired"
        | "InvalidIdentityToken"
        | "IDPRejectedClaim" => ErrorKind::Credentials,
        "ThrottlingException"
        | "Throttling"
        | "ThrottledException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "RequestLimitExceeded"
        | "SlowDown"
        | "PriorRequestNotComplete" => ErrorKind::Throttled,
        c if c.starts_with("TooManyRequests") || c.starts_with("TooManyUpdates") => {
            ErrorKind::Throttled
        }
        "InternalServiceError"
        | "InternalServiceErrorException"
        | "InternalFailure"
        | "InternalServerError"
        | "InternalError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "RequestTimeout"
        | "RequestTimeoutException"
        | "IDPCommunicationError" => ErrorKind::Unavailable,
        "InvalidParameterException"
        | "InvalidRequestException"
        | "ValidationException"
        | "ValidationError"
        | "InvalidNextTokenException"
        | "InvalidNextToken"
        | "InvalidFilterKey"
        | "InvalidFilterOption"
        | "InvalidFilterValue"
        | "InvalidKeyId"
        | "MalformedPolicyDocument"
        | "PackedPolicyTooLarge"
        | "UnsupportedParameterType" => ErrorKind::InvalidRequest,
        _ => match status {
            Some(s) if s >= 500 => ErrorKind::Unavailable,
            Some(429) => ErrorKind::Throttled,
            Some(403) => ErrorKind::AccessDenied,
            _ => ErrorKind::Other,
        },
    }
}

/// True when a credentials provider failed somewhere in `err`'s chain: the SDK reports that as
/// a dispatch failure, but the fix (IRSA, keys, role trust) is not a network one.
pub fn is_credentials_error(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        next = e.source();
    }
    false
}

/// Maps an SDK error for `operation` on `key`. Service error messages come from AWS, which never
/// echoes secret values; local messages describe transport or credentials only.
pub fn from_sdk<E>(
    err: &SdkError<E, Response>,
    service: impl Into<AwsService>,
    operation: &'static str,
    key: &str,
) -> SourceError
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    let (kind, code, message) = match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let code = e.code().unwrap_or("Unknown").to_string();
            let status = ctx.raw().status().as_u16();
            let message = e.message().unwrap_or_default().to_string();
            (kind_for_code(&code, Some(status)), code, message)
        }
        SdkError::TimeoutError(_) => (ErrorKind::Unavailable, "Timeout".into(), local(err)),
        SdkError::DispatchFailure(_) if is_credentials_error(err) => (
            ErrorKind::Credentials,
            "CredentialsError".into(),
            local(err),
        ),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            (ErrorKind::Unavailable, "Timeout".into(), local(err))
        }
        SdkError::DispatchFailure(_) => {
            (ErrorKind::Unavailable, "ConnectionError".into(), local(err))
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            let kind = match kind_for_code("", Some(status)) {
                ErrorKind::Other => ErrorKind::Unavailable,
                kind => kind,
            };
            (kind, "ResponseError".into(), local(err))
        }
        SdkError::ConstructionFailure(_) if is_credentials_error(err) => (
            ErrorKind::Credentials,
            "CredentialsError".into(),
            local(err),
        ),
        SdkError::ConstructionFailure(_) => (
            ErrorKind::InvalidRequest,
            "ConstructionFailure".into(),
            local(err),
        ),
        _ => (ErrorKind::Other, "Unknown".into(), local(err)),
    };
    SourceError {
        kind,
        service: service.into(),
        operation,
        key: key.to_string(),
        code,
        message,
    }
}

fn local(err: &(dyn StdError + 'static)) -> String {
    let mut text = DisplayErrorContext(err).to_string();
    if text.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Service;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
    use aws_sdk_ssm::operation::get_parameter::GetParameterError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn response(status: u16) -> Response {
        Response::new(status.try_into().unwrap(), SdkBody::empty())
    }

    fn sm_service_error(code: &str, status: u16) -> SdkError<GetSecretValueError, Response> {
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("AWS says no")
            .build();
        SdkError::service_error(GetSecretValueError::generic(meta), response(status))
    }

    fn kind_of(code: &str, status: u16) -> (ErrorKind, String) {
        let e = from_sdk(
            &sm_service_error(code, status),
            Service::SecretsManager,
            "GetSecretValue",
            "app/db",
        );
        (e.kind, e.code)
    }

    #[test]
    fn service_error_codes() {
        let cases = [
            ("ResourceNotFoundException", 400, ErrorKind::NotFound),
            ("AccessDeniedException", 400, ErrorKind::AccessDenied),
            ("UnrecognizedClientException", 400, ErrorKind::AccessDenied),
            ("InvalidSignatureException", 400, ErrorKind::AccessDenied),
            ("DecryptionFailure", 400, ErrorKind::AccessDenied),
            ("ThrottlingException", 400, ErrorKind::Throttled),
            ("TooManyRequestsException", 400, ErrorKind::Throttled),
            ("RequestLimitExceeded", 400, ErrorKind::Throttled),
            ("InvalidParameterException", 400, ErrorKind::InvalidRequest),
            ("InvalidRequestException", 400, ErrorKind::InvalidRequest),
            ("ValidationException", 400, ErrorKind::InvalidRequest),
            ("InternalServiceError", 500, ErrorKind::Unavailable),
            ("SomethingNew", 503, ErrorKind::Unavailable),
            ("SomethingNew", 400, ErrorKind::Other),
            ("ExpiredTokenException", 400, ErrorKind::Credentials),
            ("InvalidIdentityToken", 400, ErrorKind::Credentials),
            ("IDPRejectedClaim", 403, ErrorKind::Credentials),
            ("IDPCommunicationError", 400, ErrorKind::Unavailable),
        ];
        for (code, status, kind) in cases {
            assert_eq!(kind_of(code, status), (kind, code.to_string()), "{code}");
        }
    }

    #[test]
    fn service_error_names_everything_but_values() {
        let e = from_sdk(
            &sm_service_error("ResourceNotFoundException", 400),
            Service::SecretsManager,
            "GetSecretValue",
            "app/db",
        );
        assert_eq!(e.operation, "GetSecretValue");
        assert_eq!(e.key, "app/db");
        assert_eq!(e.message, "AWS says no");
        assert_eq!(
            e.to_string(),
            "SecretsManager GetSecretValue on \"app/db\" failed: ResourceNotFoundException: AWS says no"
        );
    }

    #[test]
    fn ssm_codes() {
        let meta = ErrorMetadata::builder()
            .code("ParameterVersionNotFound")
            .build();
        let err: SdkError<GetParameterError, Response> =
            SdkError::service_error(GetParameterError::generic(meta), response(400));
        let e = from_sdk(&err, Service::ParameterStore, "GetParameter", "/p:3");
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.code, "ParameterVersionNotFound");
    }

    #[test]
    fn transport_errors_are_unavailable() {
        let timeout: SdkError<GetSecretValueError, Response> =
            SdkError::timeout_error("attempt timed out");
        let e = from_sdk(&timeout, Service::SecretsManager, "GetSecretValue", "k");
        assert_eq!(
            (e.kind, e.code.as_str()),
            (ErrorKind::Unavailable, "Timeout")
        );

        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let refused: SdkError<GetSecretValueError, Response> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(io)));
        let e = from_sdk(&refused, Service::SecretsManager, "GetSecretValue", "k");
        assert_eq!(
            (e.kind, e.code.as_str()),
            (ErrorKind::Unavailable, "ConnectionError")
        );

        let slow: SdkError<GetSecretValueError, Response> =
            SdkError::dispatch_failure(ConnectorError::timeout("slow".into()));
        let e = from_sdk(&slow, Service::SecretsManager, "GetSecretValue", "k");
        assert_eq!(
            (e.kind, e.code.as_str()),
            (ErrorKind::Unavailable, "Timeout")
        );

        let bad_gateway: SdkError<GetSecretValueError, Response> =
            SdkError::response_error("unparseable", response(502));
        let e = from_sdk(&bad_gateway, Service::SecretsManager, "GetSecretValue", "k");
        assert_eq!(
            (e.kind, e.code.as_str()),
            (ErrorKind::Unavailable, "ResponseError")
        );
    }

    #[test]
    fn credential_failures_are_credentials() {
        let creds = CredentialsError::not_loaded("no providers in chain provided credentials");
        let err: SdkError<GetSecretValueError, Response> =
            SdkError::dispatch_failure(ConnectorError::other(Box::new(creds), None));
        let e = from_sdk(&err, Service::SecretsManager, "GetSecretValue", "k");
        assert_eq!(
            (e.kind, e.code.as_str()),
            (ErrorKind::Credentials, "CredentialsError")
        );
        assert!(e.message.contains("no providers"), "{}", e.message);
    }
}
