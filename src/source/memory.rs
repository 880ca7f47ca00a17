//! An in-memory [`Source`] for tests: secrets with versions and stages, parameters with versions
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

    pub fn delete_secret(&self, name: &str) {
        self.state().secrets.remove(name);
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

    pub fn delete_parameter(&self, name: &str) {
        self.state().parameters.remove(name);
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
        service,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(s: &str) -> Selector {
        Selector::Stage(s.into())
    }

    #[tokio::test]
    async fn secrets_versions_and_stages() {
        let m = MemorySource::new();
        let v1 = m.put_secret_string("app", "one");
        let v2 = m.put_secret_binary("app", &[0, 159, 146, 150]);

        let current = m
            .get(&Fetch::secret("app", stage("AWSCURRENT")))
            .await
            .unwrap();
        assert_eq!(current.data.0, vec![0, 159, 146, 150]);
        assert!(current.binary);
        assert_eq!(current.version, v2);
        assert_eq!(current.name, "app");

        let previous = m
            .get(&Fetch::secret("app", stage("AWSPREVIOUS")))
            .await
            .unwrap();
        assert_eq!(previous.data.0, b"one");
        assert!(!previous.binary);

        let pinned = m
            .get(&Fetch::secret("app", Selector::VersionId(v1.clone())))
            .await;
        assert_eq!(pinned.unwrap().version, v1);

        m.set_secret_stage("app", "AWSCURRENT", &v1);
        let current = m
            .get(&Fetch::secret("app", stage("AWSCURRENT")))
            .await
            .unwrap();
        assert_eq!(current.version, v1);
        let previous = m
            .get(&Fetch::secret("app", stage("AWSPREVIOUS")))
            .await
            .unwrap();
        assert_eq!(previous.version, v2);

        m.set_secret_stage("app", "blue", &v2);
        let blue = m.get(&Fetch::secret("app", stage("blue"))).await.unwrap();
        assert_eq!(blue.version, v2);
        assert_eq!(m.calls("GetSecretValue"), 6);
    }

    #[tokio::test]
    async fn missing_secrets_and_versions_are_not_found() {
        let m = MemorySource::new();
        m.put_secret_string("app", "one");
        for fetch in [
            Fetch::secret("nope", stage("AWSCURRENT")),
            Fetch::secret("app", stage("AWSPENDING")),
            Fetch::secret("app", Selector::VersionId("nope".into())),
        ] {
            let err = m.get(&fetch).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::NotFound);
            assert_eq!(err.code, "ResourceNotFoundException");
            assert_eq!(err.operation, "GetSecretValue");
        }
        let err = m
            .get(&Fetch::secret("app", Selector::Latest))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidRequest);
    }

    #[tokio::test]
    async fn parameters_versions_and_labels() {
        let m = MemorySource::new();
        m.put_parameter("/app/db", "a");
        let v2 = m.put_parameter("/app/db", "b,c");
        m.put_parameter("/app/db", "d");
        m.label_parameter("/app/db", v2, "stable");

        let latest = m
            .get(&Fetch::parameter("/app/db", Selector::Latest))
            .await
            .unwrap();
        assert_eq!(
            (latest.data.0.as_slice(), latest.version.as_str()),
            (&b"d"[..], "3")
        );
        let one = Fetch::parameter("/app/db", Selector::ParameterVersion("1".into()));
        assert_eq!(m.get(&one).await.unwrap().data.0, b"a");
        let stable = Fetch::parameter("/app/db", Selector::ParameterVersion("stable".into()));
        let stable = m.get(&stable).await.unwrap();
        assert_eq!(
            (stable.data.0.as_slice(), stable.version.as_str()),
            (&b"b,c"[..], "2")
        );

        let err = m
            .get(&Fetch::parameter("/nope", Selector::Latest))
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_str()),
            (ErrorKind::NotFound, "ParameterNotFound")
        );
        let nine = Fetch::parameter("/app/db", Selector::ParameterVersion("9".into()));
        let err = m.get(&nine).await.unwrap_err();
        assert_eq!(err.code, "ParameterVersionNotFound");
        assert_eq!(m.calls("GetParameter"), 5);
    }

    #[tokio::test]
    async fn parameter_paths() {
        let m = MemorySource::new();
        m.put_parameter("/app/b", "2");
        m.put_parameter("/app/a", "1");
        m.put_parameter("/app/deep/c", "3");
        m.put_parameter("/application", "no");
        let names = |values: Vec<Value>| values.into_iter().map(|v| v.name).collect::<Vec<_>>();
        let flat = Find::ParameterPath {
            path: "/app".into(),
            recursive: false,
        };
        assert_eq!(names(m.find(&flat).await.unwrap()), ["/app/a", "/app/b"]);
        let deep = Find::ParameterPath {
            path: "/app/".into(),
            recursive: true,
        };
        assert_eq!(
            names(m.find(&deep).await.unwrap()),
            ["/app/a", "/app/b", "/app/deep/c"]
        );
    }

    #[tokio::test]
    async fn secrets_by_name_and_tags() {
        let m = MemorySource::new();
        m.put_secret_string("prod/b", "b");
        m.put_secret_string("prod/a", "a");
        m.put_secret_string("dev/a", "x");
        m.tag_secret("prod/a", "team", "pay");
        m.tag_secret("dev/a", "team", "pay");
        let find = |re: Option<&str>, tags: &[(&str, &str)]| Find::Secrets {
            name_regexp: re.map(String::from),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let names = |values: Vec<Value>| values.into_iter().map(|v| v.name).collect::<Vec<_>>();
        let by_name = m.find(&find(Some("^prod/"), &[])).await.unwrap();
        assert_eq!(names(by_name), ["prod/a", "prod/b"]);
        let by_tag = m.find(&find(None, &[("team", "pay")])).await.unwrap();
        assert_eq!(names(by_tag), ["dev/a", "prod/a"]);
        let both = m
            .find(&find(Some("^prod/"), &[("team", "pay")]))
            .await
            .unwrap();
        assert_eq!(names(both), ["prod/a"]);
        let bad = m.find(&find(Some("("), &[])).await.unwrap_err();
        assert_eq!(bad.kind, ErrorKind::InvalidRequest);
    }

    #[tokio::test]
    async fn injected_failures_and_counts() {
        let m = MemorySource::new();
        m.put_parameter("/p", "v");
        m.fail(
            Service::ParameterStore,
            "/p",
            ErrorKind::AccessDenied,
            "AccessDeniedException",
        );
        let err = m
            .get(&Fetch::parameter("/p", Selector::Latest))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::AccessDenied);
        assert_eq!(err.operation, "GetParameter");
        assert_eq!(err.key, "/p");
        m.clear_failure(Service::ParameterStore, "/p");
        m.get(&Fetch::parameter("/p", Selector::Latest))
            .await
            .unwrap();
        assert_eq!(m.calls("GetParameter"), 2);
        assert_eq!(m.calls("GetSecretValue"), 0);
    }

    #[test]
    fn secret_bytes_debug_is_redacted() {
        let v = Value {
            service: Service::SecretsManager,
            name: "n".into(),
            data: SecretBytes(b"hunter2".to_vec()),
            binary: false,
            version: "1".into(),
        };
        let shown = format!("{v:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("7 bytes redacted"), "{shown}");
    }
}
