//! The KMS keys values are encrypted with, read from metadata only (never a value), for
//! `arnsync iam-policy --resolve-kms`: DescribeSecret, ListSecrets (a find's secrets) and
//! DescribeParameters.

use aws_sdk_ssm::types::ParameterStringFilter;

use super::clients::AwsClients;
use super::errors::from_sdk;
use super::pacing::Quota;
use crate::source::{AwsService, SourceError};

/// The key of one secret or parameter: its ARN, and the `KmsKeyId` / `KeyId` AWS reports
/// (a key ARN, key id or alias; `None`: the AWS-managed key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyOf {
    pub arn: String,
    pub key_id: Option<String>,
}

impl AwsClients {
    /// The key of the secret `key` (a name or ARN).
    pub(crate) async fn secret_key(&self, key: &str) -> Result<KeyOf, SourceError> {
        self.pacer.pace(Quota::SecretsManager).await;
        let d = self
            .regions
            .primary()
            .client
            .describe_secret()
            .secret_id(key)
            .send()
            .await
            .map_err(|e| from_sdk(&e, AwsService::SecretsManager, "DescribeSecret", key))?;
        Ok(KeyOf {
            arn: d.arn().unwrap_or_default().to_string(),
            key_id: d.kms_key_id().map(str::to_string),
        })
    }

    /// The keys of every secret whose name starts with `prefix` (all secrets when empty).
    pub(crate) async fn secret_keys_below(&self, prefix: &str) -> Result<Vec<KeyOf>, SourceError> {
        let name = regex::Regex::new(&format!("^{}", regex::escape(prefix)))
            .expect("an escaped literal is a regexp");
        let listed = self
            .list_matching(prefix, Some(&name), &Default::default())
            .await?;
        Ok(listed
            .into_iter()
            .map(|e| KeyOf {
                arn: e.arn.unwrap_or_default(),
                key_id: e.kms_key_id,
            })
            .collect())
    }

    /// The keys of the parameter `name`, or with `below` of every parameter under the path.
    pub(crate) async fn parameter_keys(
        &self,
        name: &str,
        below: bool,
    ) -> Result<Vec<KeyOf>, SourceError> {
        let (key, option) = if below {
            ("Path", "Recursive")
        } else {
            ("Name", "Equals")
        };
        let filter = ParameterStringFilter::builder()
            .key(key)
            .option(option)
            .values(name)
            .build()
            .map_err(|e| SourceError {
                kind: crate::source::ErrorKind::InvalidRequest,
                service: AwsService::ParameterStore,
                operation: "DescribeParameters",
                key: name.to_string(),
                code: "InvalidFilter".into(),
                message: e.to_string(),
            })?;
        let mut out = Vec::new();
        let mut next_token = None;
        loop {
            self.pacer.pace(Quota::Ssm).await;
            let page = self
                .ssm
                .describe_parameters()
                .parameter_filters(filter.clone())
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| {
                    from_sdk(&e, AwsService::ParameterStore, "DescribeParameters", name)
                })?;
            for p in page.parameters() {
                out.push(KeyOf {
                    arn: p.arn().unwrap_or_default().to_string(),
                    key_id: p.key_id().map(str::to_string),
                });
            }
            next_token = page.next_token().map(String::from);
            if next_token.is_none() {
                return Ok(out);
            }
        }
    }
}
