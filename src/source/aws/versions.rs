//! The AWS answers to "did a version move?", read without any value:
//! ListSecrets (100 secrets a page, with their SecretVersionsToStages), DescribeSecret (one
//! secret, strongly consistent), and GetParameters (10 names a call, not decrypted).

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};

use super::clients::AwsClients;
use super::errors::from_sdk;
use super::pacing::Quota;
use super::regions::in_region;
use crate::source::key::base_name;
use crate::source::versions::SecretVersions;
use crate::source::{AwsService, SourceError};

/// ListSecrets pages hold up to 100 entries.
const LIST_PAGE: i32 = 100;

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
        let primary = &self.regions.primary().region;
        // Page tokens are the region's own: later pages come from the region of the first.
        let mut region = None;
        loop {
            let (token, filters) = (&next_token, &filters);
            let (page, served) = self
                .regions
                .call_in(Quota::SecretsManagerList, region, |r| async move {
                    r.client
                        .list_secrets()
                        .set_filters(filters.clone())
                        .max_results(LIST_PAGE)
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| {
                            from_sdk(
                                &e,
                                AwsService::SecretsManager,
                                "ListSecrets",
                                "(version check)",
                            )
                        })
                })
                .await?;
            region = Some(served);
            for e in page.secret_list() {
                out.push(SecretVersions {
                    name: e.name().unwrap_or_default().to_string(),
                    arn: in_region(e.arn().unwrap_or_default(), primary).into_owned(),
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
            .regions
            .call(Quota::SecretsManager, |r| async move {
                r.client
                    .describe_secret()
                    .secret_id(in_region(key, &r.region))
                    .send()
                    .await
                    .map_err(|e| from_sdk(&e, AwsService::SecretsManager, "DescribeSecret", key))
            })
            .await?;
        let primary = &self.regions.primary().region;
        Ok(SecretVersions {
            name: d.name().unwrap_or_default().to_string(),
            arn: in_region(d.arn().unwrap_or_default(), primary).into_owned(),
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
        self.pacer.pace(Quota::Ssm).await;
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
                    AwsService::ParameterStore,
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
