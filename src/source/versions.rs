//! Version checks, provider-neutral: the cheapest calls that answer "did a version move?"
//! without reading any value. [`super::Poller`] asks them on a schedule; AWS answers with
//! ListSecrets, DescribeSecret and GetParameters (see `aws::versions`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use async_trait::async_trait;

use super::key::refers_to;
use super::{Fetch, Source, SourceError};

/// How many names one filtered listing takes (a ListSecrets filter takes up to 10 values).
pub const MAX_NAME_FILTERS: usize = 10;
/// How many parameters one version check takes (GetParameters takes up to 10 names).
pub const PARAMETERS_PER_CALL: usize = 10;

/// Where one secret's staging labels point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretVersions {
    pub name: String,
    pub arn: String,
    /// Staging label → VersionId.
    pub stages: BTreeMap<String, String>,
    pub rotation_enabled: bool,
    pub next_rotation: Option<SystemTime>,
}

impl SecretVersions {
    /// True when `key` (a name, a full ARN, or an ARN without the random suffix) names it.
    pub fn answers_to(&self, key: &str) -> bool {
        refers_to(key, &self.name, Some(&self.arn))
    }
}

/// The version checks a poller needs, next to the reads (a moved version is read once, by its
/// exact version, before subscribers wake).
#[async_trait]
pub trait VersionSource: Source {
    /// Every secret's stages; with `names` (at most [`MAX_NAME_FILTERS`]) only secrets whose
    /// names start with one of them (callers match exactly).
    async fn list_secret_versions(
        &self,
        names: Option<&[String]>,
    ) -> Result<Vec<SecretVersions>, SourceError>;
    /// One secret's stages, strongly consistent (a listing may lag a rotation).
    async fn describe_secret_versions(&self, key: &str) -> Result<SecretVersions, SourceError>;
    /// The current version of each request (`name` or `name:label`; at most
    /// [`PARAMETERS_PER_CALL`], no parameter twice). Unknown names are absent from the result.
    async fn parameter_versions(
        &self,
        requests: &[String],
    ) -> Result<BTreeMap<String, String>, SourceError>;
    /// Forgets any cached value of `fetch`, so the next read asks the service.
    fn invalidate(&self, fetch: &Fetch);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_answer_to_name_arn_and_partial_arn() {
        let s = SecretVersions {
            name: "prod/db".into(),
            arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf".into(),
            stages: BTreeMap::new(),
            rotation_enabled: false,
            next_rotation: None,
        };
        assert!(s.answers_to("prod/db"));
        assert!(s.answers_to("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"));
        assert!(s.answers_to("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db"));
        assert!(!s.answers_to("prod/db2"));
    }
}
