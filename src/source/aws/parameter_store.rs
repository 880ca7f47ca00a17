//! Parameter Store reads: GetParameter, batches of them (GetParameters, which takes the same
//! `name`, `name:version` and `name:label` selectors), and GetParametersByPath, always
//! decrypted.

use std::time::Instant;

use aws_sdk_ssm::types::Parameter;

use super::clients::{log_call, AwsClients};
use super::errors::from_sdk;
use super::pacing::Quota;
use crate::source::batch::Answers;
use crate::source::{ErrorKind, Fetch, SecretBytes, Selector, Service, SourceError, Value};

const SERVICE: Service = Service::ParameterStore;
/// GetParametersByPath allows at most 10 per page.
const PATH_PAGE: i32 = 10;

impl AwsClients {
    /// GetParameter with decryption. A version or label is asked for as `name:selector`, which
    /// AWS accepts for names and ARNs alike; String and StringList values come back as stored,
    /// SecureString values decrypted.
    pub(crate) async fn get_parameter(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        let start = Instant::now();
        let result = self.get_parameter_once(fetch).await;
        log_call("ssm", "GetParameter", &fetch.key, start, &result);
        result
    }

    async fn get_parameter_once(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        let op = "GetParameter";
        let name = match request(fetch) {
            Some(name) => name,
            None => {
                return Err(SourceError {
                    kind: ErrorKind::InvalidRequest,
                    service: SERVICE.into(),
                    operation: op,
                    key: fetch.key.clone(),
                    code: "InvalidSelector".into(),
                    message: format!("{:?} does not apply to ParameterStore", fetch.selector),
                })
            }
        };
        self.pacer.pace(Quota::Ssm).await;
        let out = self
            .ssm
            .get_parameter()
            .name(&name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| from_sdk(&e, SERVICE, op, &fetch.key))?;
        out.parameter
            .and_then(parameter_value)
            .ok_or_else(|| SourceError {
                kind: ErrorKind::NotFound,
                service: SERVICE.into(),
                operation: op,
                key: fetch.key.clone(),
                code: "ParameterNotFound".into(),
                message: "the response carried no parameter value".into(),
            })
    }

    /// Every parameter under `path`, decrypted, sorted by name.
    pub(crate) async fn parameters_by_path(
        &self,
        path: &str,
        recursive: bool,
    ) -> Result<Vec<Value>, SourceError> {
        let mut values = Vec::new();
        let mut next_token = None;
        loop {
            self.pacer.pace(Quota::Ssm).await;
            let page = self
                .ssm
                .get_parameters_by_path()
                .path(path)
                .recursive(recursive)
                .with_decryption(true)
                .max_results(PATH_PAGE)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| from_sdk(&e, SERVICE, "GetParametersByPath", path))?;
            next_token = page.next_token;
            values.extend(
                page.parameters
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(parameter_value),
            );
            if next_token.is_none() {
                break;
            }
        }
        values.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(values)
    }
}

impl AwsClients {
    /// Up to 10 parameter reads in GetParameters calls (decrypted), each answer for its own
    /// read. A call never names one parameter twice (answers are matched by name: moto leaves
    /// out `Selector`), so reads of one parameter at several selectors take several calls.
    /// What a call cannot answer (a name in `InvalidParameters`, or absent) is read on its own
    /// with GetParameter, whose error (ParameterNotFound, ParameterVersionNotFound) is then
    /// exactly the one a single read gives; so is every read of a call refused as malformed.
    pub(crate) async fn read_parameter_batch(&self, fetches: Vec<Fetch>) -> Answers {
        let mut answers: Vec<Option<Result<Value, SourceError>>> = vec![None; fetches.len()];
        if fetches.len() > 1 {
            for round in rounds(&fetches) {
                if round.len() == 1 {
                    continue;
                }
                for (i, answer) in self.get_parameters(&fetches, &round).await {
                    answers[i] = Some(answer);
                }
            }
        }
        let again: Vec<usize> = (0..fetches.len())
            .filter(|i| answers[*i].is_none())
            .collect();
        let singles =
            futures::future::join_all(again.iter().map(|i| self.get_parameter(&fetches[*i]))).await;
        for (i, single) in again.into_iter().zip(singles) {
            answers[i] = Some(single);
        }
        answers.into_iter().flatten().collect()
    }

    /// One GetParameters for `fetches[round]`: the answers it has (values, or the call's error
    /// for each when it failed for another reason than a malformed request).
    async fn get_parameters(
        &self,
        fetches: &[Fetch],
        round: &[usize],
    ) -> Vec<(usize, Result<Value, SourceError>)> {
        let op = "GetParameters";
        let names: Vec<String> = round.iter().filter_map(|i| request(&fetches[*i])).collect();
        let label = format!("({} parameters)", names.len());
        self.pacer.pace(Quota::Ssm).await;
        let start = Instant::now();
        let result = self
            .ssm
            .get_parameters()
            .set_names(Some(names))
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| from_sdk(&e, SERVICE, op, &label));
        log_call("ssm", op, &label, start, &result);
        match result {
            Ok(out) => {
                let mut found = Vec::new();
                for p in out.parameters.unwrap_or_default() {
                    let (name, arn) = (p.name().unwrap_or_default(), p.arn().unwrap_or_default());
                    let asked = round.iter().find(|i| {
                        let base = base_name_of(&fetches[**i]);
                        base == name || base == arn
                    });
                    if let (Some(i), Some(value)) = (asked, parameter_value(p.clone())) {
                        found.push((*i, Ok(value)));
                    }
                }
                found
            }
            Err(e) if matches!(e.kind, ErrorKind::InvalidRequest | ErrorKind::NotFound) => vec![],
            Err(e) => round
                .iter()
                .map(|i| {
                    let key = fetches[*i].key.clone();
                    (*i, Err(SourceError { key, ..e.clone() }))
                })
                .collect(),
        }
    }
}

/// The name GetParameter(s) is asked for: `name`, or `name:version` / `name:label`.
fn request(fetch: &Fetch) -> Option<String> {
    match &fetch.selector {
        Selector::Latest => Some(fetch.key.clone()),
        Selector::ParameterVersion(v) => Some(format!("{}:{v}", fetch.key)),
        Selector::Stage(_) | Selector::VersionId(_) => None,
    }
}

/// The parameter a read names (its key carries no selector: that is in `selector`).
fn base_name_of(fetch: &Fetch) -> &str {
    &fetch.key
}

/// Indices of `fetches` split into calls of distinct parameters (in order; a read of a
/// parameter already in every earlier call opens a new one). Invalid selectors go alone (a
/// single read reports them).
fn rounds(fetches: &[Fetch]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (i, f) in fetches.iter().enumerate() {
        if request(f).is_none() {
            rounds.push(vec![i]);
            continue;
        }
        let slot = rounds.iter_mut().find(|r| {
            r.iter().all(|j| {
                request(&fetches[*j]).is_some() && base_name_of(&fetches[*j]) != base_name_of(f)
            })
        });
        match slot {
            Some(r) => r.push(i),
            None => rounds.push(vec![i]),
        }
    }
    rounds
}

fn parameter_value(p: Parameter) -> Option<Value> {
    Some(Value {
        service: SERVICE,
        name: p.name?,
        data: SecretBytes(p.value?.into_bytes()),
        binary: false,
        version: p.version.to_string(),
        created: p
            .last_modified_date
            .and_then(|d| std::time::SystemTime::try_from(d).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_never_names_one_parameter_twice() {
        let f = |key: &str, sel: Selector| Fetch::parameter(key, sel);
        let fetches = [
            f("/a", Selector::Latest),
            f("/b", Selector::Latest),
            f("/a", Selector::ParameterVersion("prod".into())),
            f("/c", Selector::ParameterVersion("3".into())),
            f("/a", Selector::ParameterVersion("2".into())),
            f("/d", Selector::Stage("AWSCURRENT".into())),
        ];
        assert_eq!(rounds(&fetches), [vec![0, 1, 3], vec![2], vec![4], vec![5]]);
    }
}
