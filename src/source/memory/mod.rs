//! An in-memory [`Source`] and [`super::VersionSource`] for unit tests (never built into the
//! operator): secrets with versions and stages, parameters with versions
//! and labels, injected failures and call counts. It follows the AWS semantics the operator relies
//! on (stages move on a new version, `name:version` / `name:label` for parameters, paths).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use regex::Regex;

use super::{ErrorKind, Fetch, Find, SecretBytes, Selector, Service, Source, SourceError, Value};

#[derive(Default)]
pub struct MemorySource {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    secrets: BTreeMap<String, Secret>,
    parameters: BTreeMap<String, Vec<ParameterVersion>>,
    failures: HashMap<(Service, String), (ErrorKind, String)>,
    calls: HashMap<&'static str, usize>,
    latency: Duration,
    next_version: u64,
}

#[derive(Default)]
struct Secret {
    versions: Vec<SecretVersion>,
    tags: BTreeMap<String, String>,
}

struct SecretVersion {
    id: String,
    data: Vec<u8>,
    binary: bool,
    stages: BTreeSet<String>,
}

struct ParameterVersion {
    value: String,
    labels: BTreeSet<String>,
}

impl MemorySource {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a SecretString version, makes it AWSCURRENT and the previous current AWSPREVIOUS,
    /// as PutSecretValue does. Returns the new VersionId.
    pub fn put_secret_string(&self, name: &str, value: &str) -> String {
        self.put_secret_version(name, value.as_bytes().to_vec(), false)
    }

    /// Adds a SecretBinary version (see [`Self::put_secret_string`]).
    pub fn put_secret_binary(&self, name: &str, value: &[u8]) -> String {
        self.put_secret_version(name, value.to_vec(), true)
    }

    fn put_secret_version(&self, name: &str, data: Vec<u8>, binary: bool) -> String {
        let mut state = self.state();
        state.next_version += 1;
        let id = format!("v{:08}-{}", state.next_version, name.len());
        let secret = state.secrets.entry(name.to_string()).or_default();
        for v in &mut secret.versions {
            v.stages.remove("AWSPREVIOUS");
            if v.stages.remove("AWSCURRENT") {
                v.stages.insert("AWSPREVIOUS".into());
            }
        }
        secret.versions.push(SecretVersion {
            id: id.clone(),
            data,
            binary,
            stages: BTreeSet::from(["AWSCURRENT".to_string()]),
        });
        id
    }

    /// Moves `stage` to `version_id` (UpdateSecretVersionStage). Moving AWSCURRENT also moves
    /// AWSPREVIOUS to the version that held AWSCURRENT, as AWS does.
    pub fn set_secret_stage(&self, name: &str, stage: &str, version_id: &str) {
        let mut state = self.state();
        let secret = state
            .secrets
            .get_mut(name)
            .expect("set_secret_stage on a secret that does not exist");
        let was_current = secret
            .versions
            .iter()
            .find(|v| v.stages.contains("AWSCURRENT"))
            .map(|v| v.id.clone());
        for v in &mut secret.versions {
            v.stages.remove(stage);
        }
        if stage == "AWSCURRENT" {
            for v in &mut secret.versions {
                v.stages.remove("AWSPREVIOUS");
                if Some(&v.id) == was_current.as_ref() && v.id != version_id {
                    v.stages.insert("AWSPREVIOUS".into());
                }
            }
        }
        secret
            .versions
            .iter_mut()
            .find(|v| v.id == version_id)
            .expect("set_secret_stage to a version that does not exist")
            .stages
            .insert(stage.to_string());
    }

    pub fn tag_secret(&self, name: &str, key: &str, value: &str) {
        let mut state = self.state();
        let secret = state.secrets.entry(name.to_string()).or_default();
        secret.tags.insert(key.into(), value.into());
    }

    /// Adds a parameter version (String, StringList or decrypted SecureString: the value is
    /// returned as it is for every type). Returns the new version number.
    pub fn put_parameter(&self, name: &str, value: &str) -> i64 {
        let mut state = self.state();
        let versions = state.parameters.entry(name.to_string()).or_default();
        versions.push(ParameterVersion {
            value: value.into(),
            labels: BTreeSet::new(),
        });
        versions.len() as i64
    }

    /// Attaches `label` to `version`, removing it from any other version (LabelParameterVersion).
    pub fn label_parameter(&self, name: &str, version: i64, label: &str) {
        let mut state = self.state();
        let versions = state
            .parameters
            .get_mut(name)
            .expect("label_parameter on a parameter that does not exist");
        for v in versions.iter_mut() {
            v.labels.remove(label);
        }
        versions[(version - 1) as usize].labels.insert(label.into());
    }

    /// Every read of `key` (a get, or the find whose path / filter is `key`) fails with `kind`
    /// and AWS error `code` until [`Self::clear_failure`].
    pub fn fail(&self, service: Service, key: &str, kind: ErrorKind, code: &str) {
        self.state()
            .failures
            .insert((service, key.to_string()), (kind, code.to_string()));
    }

    pub fn clear_failure(&self, service: Service, key: &str) {
        self.state().failures.remove(&(service, key.to_string()));
    }

    /// How many times `operation` (`GetSecretValue`, `GetParameter`, `GetParametersByPath`,
    /// `ListSecrets`) was called.
    pub fn calls(&self, operation: &str) -> usize {
        self.state().calls.get(operation).copied().unwrap_or(0)
    }

    /// Makes every call take this long, so tests can overlap calls.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Counts the call, waits the latency, and returns an injected failure if any.
    async fn enter(
        &self,
        service: Service,
        operation: &'static str,
        key: &str,
    ) -> Result<(), SourceError> {
        let (latency, failure) = {
            let mut state = self.state();
            *state.calls.entry(operation).or_default() += 1;
            let failure = state.failures.get(&(service, key.to_string())).cloned();
            (state.latency, failure)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match failure {
            Some((kind, code)) => Err(error(kind, service, operation, key, &code, "injected")),
            None => Ok(()),
        }
    }

    fn get_secret(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        let op = "GetSecretValue";
        let state = self.state();
        let not_found = |msg: &str| {
            error(
                ErrorKind::NotFound,
                Service::SecretsManager,
                op,
                &fetch.key,
                "ResourceNotFoundException",
                msg,
            )
        };
        let secret = state
            .secrets
            .get(&fetch.key)
            .ok_or_else(|| not_found("Secrets Manager can't find the specified secret."))?;
        let version = match &fetch.selector {
            Selector::Stage(stage) => secret.versions.iter().find(|v| v.stages.contains(stage)),
            Selector::VersionId(id) => secret.versions.iter().find(|v| &v.id == id),
            Selector::ParameterVersion(_) | Selector::Latest => {
                return Err(wrong_selector(Service::SecretsManager, op, fetch))
            }
        };
        let version = version.ok_or_else(|| {
            not_found("Secrets Manager can't find the specified secret value for this version.")
        })?;
        Ok(Value {
            service: Service::SecretsManager,
            name: fetch.key.clone(),
            data: SecretBytes(version.data.clone()),
            binary: version.binary,
            version: version.id.clone(),
            created: None,
        })
    }

    fn get_parameter(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        let op = "GetParameter";
        let state = self.state();
        let versions = state.parameters.get(&fetch.key).ok_or_else(|| {
            error(
                ErrorKind::NotFound,
                Service::ParameterStore,
                op,
                &fetch.key,
                "ParameterNotFound",
                "",
            )
        })?;
        let found = match &fetch.selector {
            Selector::Latest => versions.len().checked_sub(1),
            Selector::ParameterVersion(v) => match v.parse::<usize>() {
                Ok(n) => n.checked_sub(1).filter(|i| *i < versions.len()),
                Err(_) => versions.iter().rposition(|p| p.labels.contains(v)),
            },
            Selector::Stage(_) | Selector::VersionId(_) => {
                return Err(wrong_selector(Service::ParameterStore, op, fetch))
            }
        };
        let index = found.ok_or_else(|| {
            error(
                ErrorKind::NotFound,
                Service::ParameterStore,
                op,
                &fetch.key,
                "ParameterVersionNotFound",
                "",
            )
        })?;
        Ok(parameter_value(&fetch.key, index, &versions[index]))
    }

    fn parameters_by_path(&self, path: &str, recursive: bool) -> Vec<Value> {
        let prefix = if path.ends_with('/') {
            path.to_string()
        } else {
            format!("{path}/")
        };
        let state = self.state();
        state
            .parameters
            .iter()
            .filter(|(name, _)| {
                name.strip_prefix(&prefix)
                    .is_some_and(|rest| recursive || !rest.contains('/'))
            })
            .filter_map(|(name, versions)| {
                let last = versions.len().checked_sub(1)?;
                Some(parameter_value(name, last, &versions[last]))
            })
            .collect()
    }

    fn secrets_matching(
        &self,
        name: Option<&Regex>,
        tags: &BTreeMap<String, String>,
    ) -> Vec<Value> {
        let state = self.state();
        state
            .secrets
            .iter()
            .filter(|(n, s)| {
                name.is_none_or(|re| re.is_match(n))
                    && tags.iter().all(|(k, v)| s.tags.get(k) == Some(v))
            })
            .filter_map(|(n, s)| {
                let v = s
                    .versions
                    .iter()
                    .find(|v| v.stages.contains("AWSCURRENT"))?;
                Some(Value {
                    service: Service::SecretsManager,
                    name: n.clone(),
                    data: SecretBytes(v.data.clone()),
                    binary: v.binary,
                    version: v.id.clone(),
                    created: None,
                })
            })
            .collect()
    }
}

fn parameter_value(name: &str, index: usize, version: &ParameterVersion) -> Value {
    Value {
        service: Service::ParameterStore,
        name: name.to_string(),
        data: SecretBytes(version.value.clone().into_bytes()),
        binary: false,
        version: (index + 1).to_string(),
        created: None,
    }
}

fn error(
    kind: ErrorKind,
    service: Service,
    operation: &'static str,
    key: &str,
    code: &str,
    message: &str,
) -> SourceError {
    SourceError {
        kind,
        service: service.into(),
        operation,
        key: key.to_string(),
        code: code.to_string(),
        message: message.to_string(),
    }
}

fn wrong_selector(service: Service, operation: &'static str, fetch: &Fetch) -> SourceError {
    error(
        ErrorKind::InvalidRequest,
        service,
        operation,
        &fetch.key,
        "InvalidSelector",
        &format!("{:?} does not apply to {service}", fetch.selector),
    )
}

#[async_trait]
impl Source for MemorySource {
    async fn get(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        match fetch.service {
            Service::SecretsManager => {
                self.enter(fetch.service, "GetSecretValue", &fetch.key)
                    .await?;
                self.get_secret(fetch)
            }
            Service::ParameterStore => {
                self.enter(fetch.service, "GetParameter", &fetch.key)
                    .await?;
                self.get_parameter(fetch)
            }
        }
    }

    async fn find(&self, find: &Find) -> Result<Vec<Value>, SourceError> {
        match find {
            Find::ParameterPath { path, recursive } => {
                self.enter(Service::ParameterStore, "GetParametersByPath", path)
                    .await?;
                Ok(self.parameters_by_path(path, *recursive))
            }
            Find::Secrets { name_regexp, tags } => {
                let key = name_regexp.as_deref().unwrap_or("");
                self.enter(Service::SecretsManager, "ListSecrets", key)
                    .await?;
                let name = match name_regexp {
                    Some(re) => Some(Regex::new(re).map_err(|e| {
                        error(
                            ErrorKind::InvalidRequest,
                            Service::SecretsManager,
                            "ListSecrets",
                            re,
                            "InvalidRegexp",
                            &e.to_string(),
                        )
                    })?),
                    None => None,
                };
                Ok(self.secrets_matching(name.as_ref(), tags))
            }
        }
    }
}

mod tests;
mod versions;
