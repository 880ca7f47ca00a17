//! Credentials providers: the SDK default chain built on first use, and AssumeRole on top of
//! any base (static keys, the default chain, a web identity, or another role). Caching and
//! refresh before expiry belong to the clients' shared identity cache, not to these providers.

use std::time::SystemTime;

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_sdk_sts::types::Tag;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_types::region::Region;
use tokio::sync::OnceCell;

use super::errors::from_sdk;
use crate::source::{AssumeRole, AwsService};

/// The default role session name: CloudTrail shows which tool made the calls.
pub const DEFAULT_SESSION_NAME: &str = "arnsync";

/// The SDK default chain (env, profile, web identity / IRSA, ECS and EKS Pod Identity container
/// credentials, IMDS), built on first use so that creating a source needs no async context.
#[derive(Debug)]
pub struct LazyDefaultChain {
    region: Region,
    http: SharedHttpClient,
    chain: OnceCell<DefaultCredentialsChain>,
}

impl LazyDefaultChain {
    pub fn new(region: Region, http: SharedHttpClient) -> Self {
        LazyDefaultChain {
            region,
            http,
            chain: OnceCell::new(),
        }
    }

    async fn credentials(&self) -> aws_credential_types::provider::Result {
        let chain = self
            .chain
            .get_or_init(|| async {
                let conf = ProviderConfig::without_region()
                    .with_http_client(self.http.clone())
                    .with_region(Some(self.region.clone()));
                DefaultCredentialsChain::builder()
                    .configure(conf)
                    .region(self.region.clone())
                    .build()
                    .await
            })
            .await;
        chain.provide_credentials().await
    }
}

impl ProvideCredentials for LazyDefaultChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}

/// sts:AssumeRole with external ID and session tags, through an STS client that carries the
/// base credentials, the STS endpoint override and the attempt counter. (aws-config's
/// `AssumeRoleProvider` builds its own STS client, which our metrics interceptor cannot reach.)
#[derive(Debug)]
pub struct AssumeRoleCredentials {
    sts: aws_sdk_sts::Client,
    role: AssumeRole,
}

impl AssumeRoleCredentials {
    pub fn new(sts: aws_sdk_sts::Client, role: AssumeRole) -> Self {
        AssumeRoleCredentials { sts, role }
    }

    async fn credentials(&self) -> aws_credential_types::provider::Result {
        let tags = self
            .role
            .session_tags
            .iter()
            .map(|t| Tag::builder().key(&t.key).value(&t.value).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(CredentialsError::invalid_configuration)?;
        let session_name = self
            .role
            .session_name
            .as_deref()
            .unwrap_or(DEFAULT_SESSION_NAME);
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role.arn)
            .role_session_name(session_name)
            .set_external_id(self.role.external_id.clone())
            .set_tags((!tags.is_empty()).then_some(tags))
            .set_transitive_tag_keys(
                (!self.role.transitive_tag_keys.is_empty())
                    .then(|| self.role.transitive_tag_keys.clone()),
            )
            .send()
            .await
            .map_err(|e| {
                CredentialsError::provider_error(from_sdk(
                    &e,
                    AwsService::Sts,
                    "AssumeRole",
                    &self.role.arn,
                ))
            })?;
        let c = out
            .credentials
            .ok_or_else(|| CredentialsError::unhandled("sts:AssumeRole returned no credentials"))?;
        let expiry = SystemTime::try_from(c.expiration).map_err(CredentialsError::unhandled)?;
        tracing::debug!(role = %self.role.arn, "assumed role");
        Ok(Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            Some(expiry),
            "arnsync-assume-role",
        ))
    }
}

impl ProvideCredentials for AssumeRoleCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}
