//! `--resolve-kms`: asks AWS, with each store's identity, which KMS keys encrypt the secrets and
//! parameters its ExternalSecrets read (metadata calls only: DescribeSecret, ListSecrets,
//! DescribeParameters), and grants `kms:Decrypt` on the customer-managed ones.

use super::{partition, Encrypted, Principal};
use crate::api::{AwsSettings, Service};
use crate::metrics::Metrics;
use crate::source::aws::KeyOf;
use crate::source::{Identity, SourceOptions, Sources};

/// Adds the Decrypt statements of every principal. Returns the stores whose keys could not be
/// looked up, with why (errors), and notes.
pub async fn resolve(
    principals: &mut [Principal],
    account: Option<&str>,
) -> (Vec<String>, Vec<String>) {
    let mut registry = prometheus_client::registry::Registry::default();
    let sources = Sources::new(Metrics::register(&mut registry), SourceOptions::default());
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    for p in principals.iter_mut() {
        let reads = p.reads.clone();
        for (store, (settings, encrypted)) in reads {
            if settings.auth.is_some() || settings.jwt.is_some() {
                notes.push(format!(
                    "{store}: KMS keys not looked up: iam-policy uses only the operator's own credentials (and the store's roles), not static keys or ServiceAccount tokens"
                ));
                continue;
            }
            let source = sources.source(&identity(&settings));
            for e in &encrypted {
                match source.kms_keys(e.service, &lookup_name(e), e.found).await {
                    Ok(keys) => {
                        for k in keys {
                            match key_arn(&k, &e.region, account) {
                                Ok(Some(arn)) => p.decrypt(e.service, &e.region, &arn),
                                Ok(None) => {}
                                Err(why) => notes.push(format!("{store}: {}: {why}", k.arn)),
                            }
                        }
                    }
                    Err(err) => errors.push(format!("{store}: {err}")),
                }
            }
        }
    }
    (errors, notes)
}

fn identity(s: &AwsSettings) -> Identity {
    Identity {
        region: s.region.clone(),
        endpoints: s.endpoints.clone(),
        static_keys: None,
        web_identity: None,
        roles: s.roles.iter().map(Into::into).collect(),
        retry: None,
        // Key metadata is read from the primary region only.
        failover_regions: vec![],
    }
}

/// What DescribeParameters filters by: a parameter's name, never its ARN.
fn lookup_name(e: &Encrypted) -> String {
    match (e.service, e.key.split_once(":parameter")) {
        (Service::ParameterStore, Some((_, name))) if e.key.starts_with("arn:") => name.to_string(),
        (Service::ParameterStore, _) => crate::source::key::base_name(&e.key).to_string(),
        _ => e.key.clone(),
    }
}

/// The ARN `kms:Decrypt` is granted on; `None` for AWS-managed keys (no statement needed).
/// A key id becomes a key ARN in the account of the secret or parameter (else `account`, else
/// `*`). An alias cannot be granted on (IAM evaluates the key's ARN): it is refused, naming it.
pub fn key_arn(k: &KeyOf, region: &str, account: Option<&str>) -> Result<Option<String>, String> {
    let Some(id) = k.key_id.as_deref().filter(|id| !id.is_empty()) else {
        return Ok(None);
    };
    if id.starts_with("alias/aws/") || id.contains(":alias/aws/") {
        return Ok(None);
    }
    if id.starts_with("arn:") && id.contains(":key/") {
        return Ok(Some(id.to_string()));
    }
    if id.starts_with("alias/") || id.contains(":alias/") {
        return Err(format!(
            "encrypted with the key of {id}; look its key ARN up (aws kms describe-key --key-id {id}) and grant kms:Decrypt on it"
        ));
    }
    let account = k
        .arn
        .split(':')
        .nth(4)
        .filter(|a| !a.is_empty())
        .or(account)
        .unwrap_or("*");
    Ok(Some(format!(
        "arn:{}:kms:{region}:{account}:key/{id}",
        partition(region)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(arn: &str, id: Option<&str>) -> KeyOf {
        KeyOf {
            arn: arn.into(),
            key_id: id.map(String::from),
        }
    }

    #[test]
    fn customer_keys_become_key_arns_and_aws_managed_ones_need_nothing() {
        let secret = "arn:aws:secretsmanager:cn-north-1:111122223333:secret:db-AbCdEf";
        assert_eq!(key_arn(&key(secret, None), "cn-north-1", None), Ok(None));
        assert_eq!(
            key_arn(
                &key(secret, Some("alias/aws/secretsmanager")),
                "cn-north-1",
                None
            ),
            Ok(None)
        );
        assert_eq!(
            key_arn(&key(secret, Some("1234")), "cn-north-1", Some("9")),
            Ok(Some(
                "arn:aws-cn:kms:cn-north-1:111122223333:key/1234".into()
            ))
        );
        assert_eq!(
            key_arn(&key("", Some("1234")), "us-east-1", Some("9")),
            Ok(Some("arn:aws:kms:us-east-1:9:key/1234".into()))
        );
        let arn = "arn:aws:kms:us-east-1:9:key/1234";
        assert_eq!(
            key_arn(&key("", Some(arn)), "us-east-1", None),
            Ok(Some(arn.into()))
        );
        let alias = key_arn(&key(secret, Some("alias/team")), "us-east-1", None).unwrap_err();
        assert!(
            alias.contains("aws kms describe-key --key-id alias/team"),
            "{alias}"
        );
    }
}
