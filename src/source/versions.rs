//! The cheap calls that answer "did a version move?" without reading any value:
//! ListSecrets (100 secrets a page, with their SecretVersionsToStages), DescribeSecret (one
//! secret, strongly consistent), and GetParameters (10 names a call, not decrypted).

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};

use super::aws::AwsClients;
use super::errors::from_sdk;
use super::{Service, SourceError};

/// ListSecrets pages hold up to 100 entries.
const LIST_PAGE: i32 = 100;
/// A ListSecrets filter takes up to 10 values.
pub const MAX_NAME_FILTERS: usize = 10;
/// GetParameters takes up to 10 names.
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
        key == self.name
            || key == self.arn
            || (key.starts_with("arn:")
                && self.arn.starts_with(key)
                && self.arn.len() == key.len() + 7)
    }
}

impl AwsClients {
    /// Every secret's stages, paginated; with `names` (at most 10) only secrets whose names start
    /// with one of them (the filter matches prefixes; callers match exactly).
    pub(crate) async fn list_secret_versions(
        &self,
        names: Option<&[String]>,
    ) -> Result<Vec<SecretVersions>, SourceError> {
        let filters = names.map(|n| {
            vec![Filter::builder()
                .key(FilterNameStringType::Name)
                .set_values(Some(n.to_vec()))
                .build()]
        });
        let mut out = Vec::new();
        let mut next_token = None;
        loop {
            let page = self
                .secrets_manager
                .list_secrets()
                .set_filters(filters.clone())
                .max_results(LIST_PAGE)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| {
                    from_sdk(
                        &e,
                        Service::SecretsManager,
                        "ListSecrets",
                        "(version check)",
                    )
                })?;
            for e in page.secret_list() {
                out.push(SecretVersions {
                    name: e.name().unwrap_or_default().to_string(),
                    arn: e.arn().unwrap_or_default().to_string(),
                    stages: invert(e.secret_versions_to_stages()),
                    rotation_enabled: e.rotation_enabled().unwrap_or(false),
                    next_rotation: e
                        .next_rotation_date()
                        .and_then(|d| SystemTime::try_from(*d).ok()),
                });
            }
            next_token = page.next_token().map(String::from);
            if next_token.is_none() {
                return Ok(out);
            }
        }
    }

    /// One secret's stages, strongly consistent (ListSecrets may lag a rotation).
    pub(crate) async fn describe_secret_versions(
        &self,
        key: &str,
    ) -> Result<SecretVersions, SourceError> {
        let d = self
            .secrets_manager
            .describe_secret()
            .secret_id(key)
            .send()
            .await
            .map_err(|e| from_sdk(&e, Service::SecretsManager, "DescribeSecret", key))?;
        Ok(SecretVersions {
            name: d.name().unwrap_or_default().to_string(),
            arn: d.arn().unwrap_or_default().to_string(),
            stages: invert(d.version_ids_to_stages()),
            rotation_enabled: d.rotation_enabled().unwrap_or(false),
            next_rotation: d
                .next_rotation_date()
                .and_then(|t| SystemTime::try_from(*t).ok()),
        })
    }

    /// The current version of each requested name (`name`, `name:label`; at most 10, and no two
    /// for the same parameter, so answers can be matched by name). Names AWS does not know are
    /// absent from the result.
    pub(crate) async fn parameter_versions(
        &self,
        requests: &[String],
    ) -> Result<BTreeMap<String, String>, SourceError> {
        let out = self
            .ssm
            .get_parameters()
            .set_names(Some(requests.to_vec()))
            .with_decryption(false)
            .send()
            .await
            .map_err(|e| {
                from_sdk(
                    &e,
                    Service::ParameterStore,
                    "GetParameters",
                    &requests.join(","),
                )
            })?;
        let mut versions = BTreeMap::new();
        for p in out.parameters() {
            let (name, arn) = (p.name().unwrap_or_default(), p.arn().unwrap_or_default());
            let asked = requests.iter().find(|r| {
                let base = base_name(r);
                base == name || base == arn
            });
            if let Some(asked) = asked {
                versions.insert(asked.clone(), p.version().to_string());
            }
        }
        Ok(versions)
    }
}

/// `name:label` → `name` (ARNs contain colons too: only a suffix after the last `/` counts).
pub fn base_name(request: &str) -> &str {
    let tail_start = request.rfind('/').map(|i| i + 1).unwrap_or(0);
    match request[tail_start..].rfind(':') {
        Some(i) if !request.starts_with("arn:") || tail_start > 0 => &request[..tail_start + i],
        _ => request,
    }
}

fn invert(
    versions: Option<&std::collections::HashMap<String, Vec<String>>>,
) -> BTreeMap<String, String> {
    let mut stages = BTreeMap::new();
    for (id, labels) in versions.into_iter().flatten() {
        for l in labels {
            stages.insert(l.clone(), id.clone());
        }
    }
    stages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_of_parameter_requests() {
        assert_eq!(base_name("/prod/db/url"), "/prod/db/url");
        assert_eq!(base_name("/prod/db/url:stable"), "/prod/db/url");
        assert_eq!(base_name("plain:3"), "plain");
        assert_eq!(
            base_name("arn:aws:ssm:us-east-1:123456789012:parameter/prod/x:label"),
            "arn:aws:ssm:us-east-1:123456789012:parameter/prod/x"
        );
        assert_eq!(
            base_name("arn:aws:ssm:us-east-1:123456789012:parameter/prod/x"),
            "arn:aws:ssm:us-east-1:123456789012:parameter/prod/x"
        );
    }

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
