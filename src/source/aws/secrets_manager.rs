//! Secrets Manager reads: GetSecretValue, batches of AWSCURRENT reads (BatchGetSecretValue), and
//! finds by name regexp and tags (ListSecrets, then BatchGetSecretValue, or GetSecretValue per
//! secret where batch reads are not allowed).
//!
//! BatchGetSecretValue reads AWSCURRENT only (it takes no VersionStage or VersionId), so only
//! AWSCURRENT reads are batched. Each entry it returns says its stages: one without AWSCURRENT
//! (moto answers with the version that was current before an `UpdateSecretVersionStage`) is
//! read again with an explicit stage, so that AWS and moto give the same answer.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueOutput;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_sdk_secretsmanager::types::{
    Filter, FilterNameStringType, SecretListEntry, SecretValueEntry,
};
use futures::{StreamExt, TryStreamExt};
use regex::Regex;

use super::clients::{log_call, AwsClients, SECRETS_PER_BATCH};
use super::errors::{from_sdk, kind_for_code};
use super::pacing::Quota;
use super::regions::{arn_in, in_region};
use crate::source::batch::Answers;
use crate::source::key::refers_to;
use crate::source::{ErrorKind, Fetch, SecretBytes, Selector, Service, SourceError, Value};

const SERVICE: Service = Service::SecretsManager;
/// ListSecrets allows up to 100 per page.
const LIST_PAGE: i32 = 100;
const BATCH: usize = SECRETS_PER_BATCH;
/// Per-secret reads in flight at once when batch reads are refused.
const PARALLEL_READS: usize = 8;
/// ListSecrets filters take at most 10 values each.
const MAX_FILTER_VALUES: usize = 10;

impl AwsClients {
    /// GetSecretValue, always with an explicit stage or VersionId: an unqualified read can
    /// return a stale version after a stage move in some implementations.
    pub(crate) async fn get_secret(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        let start = Instant::now();
        let result = self.get_secret_once(fetch).await;
        log_call(
            "secretsmanager",
            "GetSecretValue",
            &fetch.key,
            start,
            &result,
        );
        result
    }

    async fn get_secret_once(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        let op = "GetSecretValue";
        if matches!(
            fetch.selector,
            Selector::ParameterVersion(_) | Selector::Latest
        ) {
            return Err(invalid_selector(op, fetch));
        }
        let out = self
            .regions
            .call(Quota::SecretsManager, |r| async move {
                let request = r
                    .client
                    .get_secret_value()
                    .secret_id(in_region(&fetch.key, &r.region));
                let request = match &fetch.selector {
                    Selector::Stage(stage) => request.version_stage(stage),
                    Selector::VersionId(id) => request.version_id(id),
                    Selector::ParameterVersion(_) | Selector::Latest => request,
                };
                request
                    .send()
                    .await
                    .map_err(|e| from_sdk(&e, SERVICE, op, &fetch.key))
            })
            .await?;
        secret_value(out, &fetch.key)
    }

    /// AWSCURRENT of up to 20 secrets in one BatchGetSecretValue, each answer for its own
    /// read: a per-secret error is that read's error, as GetSecretValue would report it
    /// (operation GetSecretValue, AWS's code and message). What the batch cannot answer is read
    /// on its own: one secret, a secret missing from the answer or answered at another stage,
    /// and every secret of a call refused as malformed (one bad id must not fail the others).
    /// When BatchGetSecretValue is denied, the secrets are read one per call, and keep being so
    /// (see [`AwsClients::batch_fallback`]) once a single read shows the identity itself works.
    pub(crate) async fn read_secret_batch(&self, fetches: Vec<Fetch>) -> Answers {
        if fetches.len() == 1 || self.batch_fallback().is_some() {
            return self.read_secrets_each(&fetches).await;
        }
        let op = "BatchGetSecretValue";
        let label = format!("({} secrets)", fetches.len());
        let start = Instant::now();
        let result = self
            .batch_get(
                &fetches.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(),
                &label,
            )
            .await;
        log_call("secretsmanager", op, &label, start, &result);
        match result {
            Ok(out) => {
                let answers: Vec<Option<Result<Value, SourceError>>> =
                    fetches.iter().map(|f| batch_answer(&out, f)).collect();
                let again: Vec<usize> = (0..fetches.len())
                    .filter(|i| answers[*i].is_none())
                    .collect();
                let singles =
                    futures::future::join_all(again.iter().map(|i| self.get_secret(&fetches[*i])))
                        .await;
                let mut answers = answers;
                for (i, single) in again.into_iter().zip(singles) {
                    answers[i] = Some(single);
                }
                answers.into_iter().flatten().collect()
            }
            Err(e) if batch_unavailable(&e) => {
                let answers = self.read_secrets_each(&fetches).await;
                // Denied for the batch but not for single reads: the batch permission is what
                // is missing. Everything denied: the identity itself is (its reads say so).
                if e.kind != ErrorKind::AccessDenied || answers.iter().any(Result::is_ok) {
                    self.refuse_batches(&e);
                }
                answers
            }
            Err(e) if matches!(e.kind, ErrorKind::InvalidRequest | ErrorKind::NotFound) => {
                self.read_secrets_each(&fetches).await
            }
            Err(e) => fetches
                .iter()
                .map(|f| {
                    Err(SourceError {
                        key: f.key.clone(),
                        ..e.clone()
                    })
                })
                .collect(),
        }
    }

    /// One BatchGetSecretValue of `ids` in the serving region, its ARNs as the primary's.
    async fn batch_get(
        &self,
        ids: &[&str],
        label: &str,
    ) -> Result<BatchGetSecretValueOutput, SourceError> {
        let primary = &self.regions.primary().region;
        self.regions
            .call(Quota::SecretsManagerBatch, |r| async move {
                let ids = ids.iter().map(|id| in_region(id, &r.region).into_owned());
                let mut out = r
                    .client
                    .batch_get_secret_value()
                    .set_secret_id_list(Some(ids.collect()))
                    .send()
                    .await
                    .map_err(|e| from_sdk(&e, SERVICE, "BatchGetSecretValue", label))?;
                if r.region != *primary {
                    for entry in out.secret_values.iter_mut().flatten() {
                        arn_in(&mut entry.arn, primary);
                    }
                    for error in out.errors.iter_mut().flatten() {
                        arn_in(&mut error.secret_id, primary);
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn read_secrets_each(&self, fetches: &[Fetch]) -> Answers {
        futures::future::join_all(fetches.iter().map(|f| self.get_secret(f))).await
    }

    pub(crate) async fn find_secrets(
        &self,
        name_regexp: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Value>, SourceError> {
        let key = name_regexp.unwrap_or("");
        let name = name_regexp
            .map(|re| {
                Regex::new(re).map_err(|e| SourceError {
                    kind: ErrorKind::InvalidRequest,
                    service: SERVICE.into(),
                    operation: "ListSecrets",
                    key: re.to_string(),
                    code: "InvalidRegexp".into(),
                    message: e.to_string(),
                })
            })
            .transpose()?;
        let arns: Vec<String> = self
            .list_matching(key, name.as_ref(), tags)
            .await?
            .into_iter()
            .filter_map(|e| e.arn)
            .collect();
        let mut values = if self.batch_fallback().is_some() {
            self.read_each(&arns).await?
        } else {
            match self.read_batches(&arns, key).await {
                Err(e) if batch_unavailable(&e) => {
                    let values = self.read_each(&arns).await?;
                    self.refuse_batches(&e);
                    values
                }
                other => other?,
            }
        };
        values.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(values)
    }

    /// The secrets whose names match and which carry every tag (metadata only), each with its
    /// ARN as the primary region's. ListSecrets filters narrow the listing (a literal name
    /// prefix, tag keys and values) but match by prefix and OR their values, so the exact test
    /// is made here.
    pub(super) async fn list_matching(
        &self,
        key: &str,
        name: Option<&Regex>,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<SecretListEntry>, SourceError> {
        let filters = list_filters(name, tags);
        let mut found = Vec::new();
        let mut next_token = None;
        let primary = &self.regions.primary().region;
        // Page tokens are the region's own: later pages come from the region of the first
        // (a region switch mid-listing fails this find, which is retried from its first page).
        let mut region = None;
        loop {
            let token = &next_token;
            let filters = &filters;
            let (page, served) = self
                .regions
                .call_in(Quota::SecretsManagerList, region, |r| async move {
                    r.client
                        .list_secrets()
                        .set_filters((!filters.is_empty()).then(|| filters.clone()))
                        .max_results(LIST_PAGE)
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| from_sdk(&e, SERVICE, "ListSecrets", key))
                })
                .await?;
            region = Some(served);
            next_token = page.next_token().map(String::from);
            for mut entry in page.secret_list.unwrap_or_default() {
                let Some(secret_name) = entry.name() else {
                    continue;
                };
                let tagged = tags.iter().all(|(k, v)| {
                    entry
                        .tags()
                        .iter()
                        .any(|t| t.key() == Some(k.as_str()) && t.value() == Some(v.as_str()))
                });
                if tagged && name.is_none_or(|re| re.is_match(secret_name)) {
                    let arn = entry.arn().unwrap_or(secret_name);
                    entry.arn = Some(in_region(arn, primary).into_owned());
                    found.push(entry);
                }
            }
            if next_token.is_none() {
                return Ok(found);
            }
        }
    }

    /// AWSCURRENT of each secret, 20 per call. A secret deleted since the listing, or without a
    /// current version, is skipped; any other per-secret error fails the find.
    async fn read_batches(&self, arns: &[String], key: &str) -> Result<Vec<Value>, SourceError> {
        let op = "BatchGetSecretValue";
        let mut values = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(BATCH) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let out = self.batch_get(&ids, key).await?;
            for e in out.errors() {
                let code = e.error_code().unwrap_or("Unknown");
                let kind = kind_for_code(code, None);
                if kind != ErrorKind::NotFound {
                    return Err(SourceError {
                        kind,
                        service: SERVICE.into(),
                        operation: op,
                        key: e.secret_id().unwrap_or(key).to_string(),
                        code: code.to_string(),
                        message: e.message().unwrap_or_default().to_string(),
                    });
                }
            }
            for entry in out.secret_values() {
                if let Some(value) = entry_value(entry) {
                    values.push(value);
                }
            }
        }
        Ok(values)
    }

    async fn read_each(&self, arns: &[String]) -> Result<Vec<Value>, SourceError> {
        let fetches: Vec<Fetch> = arns
            .iter()
            .map(|arn| Fetch {
                service: SERVICE,
                key: arn.clone(),
                selector: Selector::Stage("AWSCURRENT".into()),
            })
            .collect();
        let reads = futures::stream::iter(fetches)
            .map(|fetch| async move {
                match self.get_secret(&fetch).await {
                    Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
                    other => other.map(Some),
                }
            })
            .buffer_unordered(PARALLEL_READS);
        let values: Vec<Option<Value>> = reads.try_collect().await?;
        Ok(values.into_iter().flatten().collect())
    }
}

/// The answer of a BatchGetSecretValue for one read, when it has one: the secret's value (only
/// when the entry is the AWSCURRENT version and has a value), or its per-secret error.
fn batch_answer(out: &BatchGetSecretValueOutput, f: &Fetch) -> Option<Result<Value, SourceError>> {
    let entry = out
        .secret_values()
        .iter()
        .find(|e| e.name().is_some_and(|n| refers_to(&f.key, n, e.arn())));
    if let Some(entry) = entry {
        let current = entry.version_stages().iter().any(|s| s == "AWSCURRENT");
        return current.then(|| entry_value(entry)).flatten().map(Ok);
    }
    let error = out.errors().iter().find(|e| {
        e.secret_id().is_some_and(|id| {
            id == f.key || refers_to(id, &f.key, None) || refers_to(&f.key, id, None)
        })
    })?;
    let code = error.error_code().unwrap_or("Unknown");
    Some(Err(SourceError {
        kind: kind_for_code(code, None),
        service: SERVICE.into(),
        operation: "GetSecretValue",
        key: f.key.clone(),
        code: code.to_string(),
        message: error.message().unwrap_or_default().to_string(),
    }))
}

/// Batch reads need their own IAM action; a store allowed only GetSecretValue still works.
fn batch_unavailable(e: &SourceError) -> bool {
    e.kind == ErrorKind::AccessDenied
        || e.code.contains("UnknownOperation")
        || e.code.contains("NotImplemented")
}

fn list_filters(name: Option<&Regex>, tags: &BTreeMap<String, String>) -> Vec<Filter> {
    let mut filters = Vec::new();
    if let Some(prefix) = name.and_then(|re| literal_prefix(re.as_str())) {
        filters.push(filter(FilterNameStringType::Name, vec![prefix]));
    }
    let usable = |s: &&String| filter_value_ok(s);
    let keys: Vec<String> = tags
        .keys()
        .filter(usable)
        .take(MAX_FILTER_VALUES)
        .cloned()
        .collect();
    // Every tag must match, so any one unusable key or value only widens the listing: the
    // exact check after listing still applies.
    if !keys.is_empty() {
        filters.push(filter(FilterNameStringType::TagKey, keys));
    }
    let values: Vec<String> = tags
        .values()
        .filter(usable)
        .take(MAX_FILTER_VALUES)
        .cloned()
        .collect();
    if !values.is_empty() {
        filters.push(filter(FilterNameStringType::TagValue, values));
    }
    filters
}

fn filter(key: FilterNameStringType, values: Vec<String>) -> Filter {
    Filter::builder().key(key).set_values(Some(values)).build()
}

/// ListSecrets filter values allow only these characters, and a leading `!` negates.
fn filter_value_ok(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('!')
        && s.len() <= 512
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || " :_@/+=.-".contains(c))
}

/// The literal text every match of an anchored regexp starts with (`^prod/app/.*` →
/// `prod/app/`), usable as a ListSecrets name prefix filter.
fn literal_prefix(re: &str) -> Option<String> {
    let rest = re.strip_prefix('^')?;
    let mut prefix = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_alphanumeric() || "/_@+=-:".contains(c) {
            prefix.push(c);
            chars.next();
        } else if c == '\\' {
            chars.next();
            match chars.next() {
                Some(e) if "./+-=@:_".contains(e) => prefix.push(e),
                _ => return None,
            }
        } else {
            break;
        }
    }
    // A quantifier or alternation after the prefix makes its last character optional or the
    // whole prefix one alternative only.
    match chars.peek() {
        Some('?' | '*' | '{') => {
            prefix.pop();
        }
        Some('|') => return None,
        _ => {}
    }
    if rest.contains('|') {
        return None;
    }
    (filter_value_ok(&prefix)).then_some(prefix)
}

fn secret_value(out: GetSecretValueOutput, key: &str) -> Result<Value, SourceError> {
    let (data, binary) = match (out.secret_string, out.secret_binary) {
        (Some(s), _) => (s.into_bytes(), false),
        (None, Some(b)) => (b.into_inner(), true),
        (None, None) => {
            return Err(SourceError {
                kind: ErrorKind::NotFound,
                service: SERVICE.into(),
                operation: "GetSecretValue",
                key: key.to_string(),
                code: "NoSecretValue".into(),
                message: "the version has neither SecretString nor SecretBinary".into(),
            })
        }
    };
    Ok(Value {
        service: SERVICE,
        name: out.name.unwrap_or_else(|| key.to_string()),
        data: SecretBytes(data),
        binary,
        version: out.version_id.unwrap_or_default(),
        created: out.created_date.and_then(|d| SystemTime::try_from(d).ok()),
    })
}

fn entry_value(entry: &SecretValueEntry) -> Option<Value> {
    let (data, binary) = match (&entry.secret_string, &entry.secret_binary) {
        (Some(s), _) => (s.clone().into_bytes(), false),
        (None, Some(b)) => (b.as_ref().to_vec(), true),
        (None, None) => return None,
    };
    Some(Value {
        service: SERVICE,
        name: entry.name.clone().or_else(|| entry.arn.clone())?,
        data: SecretBytes(data),
        binary,
        version: entry.version_id.clone().unwrap_or_default(),
        created: entry
            .created_date
            .and_then(|d| SystemTime::try_from(d).ok()),
    })
}

fn invalid_selector(operation: &'static str, fetch: &Fetch) -> SourceError {
    SourceError {
        kind: ErrorKind::InvalidRequest,
        service: fetch.service.into(),
        operation,
        key: fetch.key.clone(),
        code: "InvalidSelector".into(),
        message: format!("{:?} does not apply to {}", fetch.selector, fetch.service),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefixes_of_regexps() {
        assert_eq!(literal_prefix("^prod/app/.*").as_deref(), Some("prod/app/"));
        assert_eq!(literal_prefix("^prod-db").as_deref(), Some("prod-db"));
        assert_eq!(literal_prefix("^prod\\.db").as_deref(), Some("prod.db"));
        assert_eq!(literal_prefix("^prods?").as_deref(), Some("prod"));
        assert_eq!(literal_prefix("prod/"), None);
        assert_eq!(literal_prefix("^a|^b"), None);
        assert_eq!(literal_prefix("^(a|b)"), None);
        assert_eq!(literal_prefix("^\\d+"), None);
    }

    #[test]
    fn filters_only_widen() {
        let tags = BTreeMap::from([
            ("team".to_string(), "pay".to_string()),
            ("odd".to_string(), "va|ue".to_string()),
        ]);
        let re = Regex::new("^prod/").unwrap();
        let filters = list_filters(Some(&re), &tags);
        let shown: Vec<(String, Vec<String>)> = filters
            .iter()
            .map(|f| (f.key().unwrap().as_str().to_string(), f.values().to_vec()))
            .collect();
        assert_eq!(
            shown,
            [
                ("name".to_string(), vec!["prod/".to_string()]),
                (
                    "tag-key".to_string(),
                    vec!["odd".to_string(), "team".to_string()]
                ),
                ("tag-value".to_string(), vec!["pay".to_string()]),
            ]
        );
    }
}
