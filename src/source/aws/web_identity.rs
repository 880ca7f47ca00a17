//! Base credentials from a Kubernetes ServiceAccount: a token from the [`TokenSource`],
//! exchanged with sts:AssumeRoleWithWebIdentity. A token is requested only when STS is called,
//! and STS is called only when the clients' identity cache has no fresh credentials.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_credential_types::Credentials;

use super::credentials::DEFAULT_SESSION_NAME;
use super::errors::from_sdk;
use crate::source::token::{TokenSource, DEFAULT_AUDIENCE};
use crate::source::{AwsService, WebIdentity};

/// Why web identity credentials could not be had. Names the ServiceAccount, the role and the
/// failing step with its error; never the token.
#[derive(Debug, thiserror::Error)]
#[error("ServiceAccount {namespace}/{service_account} (role {role_arn}): {step} failed: {detail}")]
pub struct WebIdentityError {
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    /// `Kubernetes TokenRequest` or `STS AssumeRoleWithWebIdentity`.
    pub step: &'static str,
    pub detail: String,
}

/// sts:AssumeRoleWithWebIdentity with a ServiceAccount token. The STS client carries no
/// credentials (the call is unsigned), the STS endpoint override and the attempt counter.
pub struct WebIdentityCredentials {
    sts: aws_sdk_sts::Client,
    web: WebIdentity,
    tokens: Arc<dyn TokenSource>,
}

impl WebIdentityCredentials {
    pub fn new(sts: aws_sdk_sts::Client, web: WebIdentity, tokens: Arc<dyn TokenSource>) -> Self {
        WebIdentityCredentials { sts, web, tokens }
    }

    fn error(&self, step: &'static str, detail: String) -> CredentialsError {
        CredentialsError::provider_error(WebIdentityError {
            namespace: self.web.namespace.clone(),
            service_account: self.web.service_account.clone(),
            role_arn: self.web.role_arn.clone(),
            step,
            detail,
        })
    }

    async fn credentials(&self) -> aws_credential_types::provider::Result {
        let web = &self.web;
        let audiences = if web.audiences.is_empty() {
            vec![DEFAULT_AUDIENCE.to_string()]
        } else {
            web.audiences.clone()
        };
        let token = self
            .tokens
            .token(&web.namespace, &web.service_account, &audiences)
            .await
            .map_err(|e| self.error("Kubernetes TokenRequest", e.0))?;
        let out = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&web.role_arn)
            .role_session_name(DEFAULT_SESSION_NAME)
            .web_identity_token(token.expose())
            .send()
            .await
            .map_err(|e| {
                let err = from_sdk(&e, AwsService::Sts, "AssumeRoleWithWebIdentity", "");
                // STS does not echo the token; this keeps it so should a message ever quote it.
                let detail =
                    format!("{}: {}", err.code, err.message).replace(token.expose(), "<token>");
                self.error("STS AssumeRoleWithWebIdentity", detail)
            })?;
        let c = out.credentials.ok_or_else(|| {
            self.error(
                "STS AssumeRoleWithWebIdentity",
                "the response carried no credentials".into(),
            )
        })?;
        let expiry = SystemTime::try_from(c.expiration).map_err(CredentialsError::unhandled)?;
        tracing::debug!(
            namespace = %web.namespace,
            service_account = %web.service_account,
            role = %web.role_arn,
            "assumed role with web identity"
        );
        Ok(Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            Some(expiry),
            "arnsync-web-identity",
        ))
    }
}

impl fmt::Debug for WebIdentityCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebIdentityCredentials")
            .field("web", &self.web)
            .finish_non_exhaustive()
    }
}

impl ProvideCredentials for WebIdentityCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}
