//! The fake's version checks: what ListSecrets, DescribeSecret and GetParameters would answer.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{error, MemorySource, Secret};
use crate::source::key::base_name;
use crate::source::versions::{SecretVersions, VersionSource};
use crate::source::{ErrorKind, Fetch, Selector, Service, SourceError};

/// The ARN the fake reports for a secret: the name plus a fixed 6-character suffix.
fn secret_arn(name: &str) -> String {
    format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf")
}

fn versions_of(name: &str, secret: &Secret) -> SecretVersions {
    let mut stages = BTreeMap::new();
    for v in &secret.versions {
        for s in &v.stages {
            stages.insert(s.clone(), v.id.clone());
        }
    }
    SecretVersions {
        name: name.to_string(),
        arn: secret_arn(name),
        stages,
        rotation_enabled: false,
        next_rotation: None,
    }
}

#[async_trait]
impl VersionSource for MemorySource {
    async fn list_secret_versions(
        &self,
        names: Option<&[String]>,
    ) -> Result<Vec<SecretVersions>, SourceError> {
        self.enter(Service::SecretsManager, "ListSecrets", "(version check)")
            .await?;
        let state = self.state();
        Ok(state
            .secrets
            .iter()
            .filter(|(n, _)| names.is_none_or(|names| names.iter().any(|p| n.starts_with(p))))
            .map(|(n, s)| versions_of(n, s))
            .collect())
    }

    async fn describe_secret_versions(&self, key: &str) -> Result<SecretVersions, SourceError> {
        self.enter(Service::SecretsManager, "DescribeSecret", key)
            .await?;
        let state = self.state();
        state
            .secrets
            .get(key)
            .map(|s| versions_of(key, s))
            .ok_or_else(|| {
                error(
                    ErrorKind::NotFound,
                    Service::SecretsManager,
                    "DescribeSecret",
                    key,
                    "ResourceNotFoundException",
                    "",
                )
            })
    }

    async fn parameter_versions(
        &self,
        requests: &[String],
    ) -> Result<BTreeMap<String, String>, SourceError> {
        self.enter(Service::ParameterStore, "GetParameters", "(version check)")
            .await?;
        let mut out = BTreeMap::new();
        for r in requests {
            let base = base_name(r);
            let selector = match r.get(base.len() + 1..) {
                Some(label) => Selector::ParameterVersion(label.to_string()),
                None => Selector::Latest,
            };
            if let Ok(v) = self.get_parameter(&Fetch::parameter(base, selector)) {
                out.insert(r.clone(), v.version);
            }
        }
        Ok(out)
    }

    /// The fake caches nothing.
    fn invalidate(&self, _fetch: &Fetch) {}
}
