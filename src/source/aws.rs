//! Reads from Secrets Manager and Parameter Store through the AWS SDK, one [`AwsSource`] per
//! [`Identity`], kept in the [`Sources`] registry so that clients, credentials and the cache are
//! built once and shared by every ExternalSecret using that identity.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::identity::SharedIdentityCache;
use aws_types::region::Region;

use super::attempts::CountAttempts;
use super::cache::Cached;
use super::credentials::{AssumeRoleCredentials, LazyDefaultChain};
use super::errors::from_sdk;
use super::versions::SecretVersions;
use super::{Fetch, Find, Identity, Service, Source, SourceError, Value};
use crate::metrics::Metrics;

/// Assumed (and other expiring) credentials are renewed this long before they expire, so a read
/// never waits on STS at the moment of expiry.
const CREDENTIALS_REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// How long reads of mutable selectors (stages, latest, labels, finds) are shared.
    pub cache_ttl: Duration,
    /// Bound on cached single values (and, separately, on cached finds) per identity.
    pub max_cache_entries: usize,
    /// Per attempt; the whole call, retries included, may take `max_attempts` times this.
    pub timeout: Duration,
    /// SDK attempts per call (standard retry mode: exponential backoff with jitter).
    pub max_attempts: u32,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            cache_ttl: Duration::from_secs(2),
            max_cache_entries: 10_000,
            timeout: Duration::from_secs(10),
            max_attempts: 3,
        }
    }
}

/// The registry of sources, one per identity. Cheap to clone.
#[derive(Clone)]
pub struct Sources {
    inner: Arc<Registry>,
}

struct Registry {
    metrics: Metrics,
    options: SourceOptions,
    http: SharedHttpClient,
    sources: Mutex<HashMap<[u8; 32], Arc<AwsSource>>>,
}

impl Sources {
    pub fn new(metrics: Metrics, options: SourceOptions) -> Sources {
        Sources {
            inner: Arc::new(Registry {
                metrics,
                options,
                http: http_client(),
                sources: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The source for `identity`, created on first use and shared afterwards.
    pub fn source(&self, identity: &Identity) -> Arc<AwsSource> {
        let key = identity.fingerprint();
        let mut sources = self.inner.sources.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(sources.entry(key).or_insert_with(|| {
            Arc::new(AwsSource::new(
                identity,
                self.inner.metrics.clone(),
                &self.inner.options,
                self.inner.http.clone(),
            ))
        }))
    }

    /// Drops the source of an identity no store uses any more (keys rotated, store deleted).
    /// Returns whether one existed.
    pub fn forget(&self, identity: &Identity) -> bool {
        let key = identity.fingerprint();
        let mut sources = self.inner.sources.lock().unwrap_or_else(|p| p.into_inner());
        sources.remove(&key).is_some()
    }

    /// How many identities have a source.
    pub fn len(&self) -> usize {
        self.inner
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One HTTP client (one connection pool) for every identity: rustls with ring, http and https.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// Reads for one identity, cached (see [`Cached`]).
pub struct AwsSource {
    cache: Cached<AwsClients>,
}

impl AwsSource {
    pub fn new(
        identity: &Identity,
        metrics: Metrics,
        options: &SourceOptions,
        http: SharedHttpClient,
    ) -> AwsSource {
        let clients = AwsClients::new(identity, metrics, options, http);
        AwsSource {
            cache: Cached::new(clients, options.cache_ttl, options.max_cache_entries),
        }
    }

    /// The ARN of the principal these reads run as (sts:GetCallerIdentity): a cheap check that
    /// the credentials and role work, and the identity shown in store status.
    pub async fn caller_identity(&self) -> Result<String, SourceError> {
        self.cache.inner().caller_identity().await
    }

    /// Forgets the cached value of `fetch`.
    pub fn invalidate(&self, fetch: &Fetch) {
        self.cache.invalidate(fetch);
    }

    /// Every secret's staging labels (ListSecrets), optionally only names starting with one of
    /// `names` (at most 10).
    pub async fn list_secret_versions(
        &self,
        names: Option<&[String]>,
    ) -> Result<Vec<SecretVersions>, SourceError> {
        let start = Instant::now();
        let result = self.cache.inner().list_secret_versions(names).await;
        log_call(
            "secretsmanager",
            "ListSecrets",
            "(version check)",
            start,
            &result,
        );
        result
    }

    /// One secret's staging labels, strongly consistent (DescribeSecret).
    pub async fn describe_secret_versions(&self, key: &str) -> Result<SecretVersions, SourceError> {
        let start = Instant::now();
        let result = self.cache.inner().describe_secret_versions(key).await;
        log_call("secretsmanager", "DescribeSecret", key, start, &result);
        result
    }

    /// Current versions of up to 10 parameters (GetParameters, not decrypted).
    pub async fn parameter_versions(
        &self,
        requests: &[String],
    ) -> Result<std::collections::BTreeMap<String, String>, SourceError> {
        let start = Instant::now();
        let result = self.cache.inner().parameter_versions(requests).await;
        log_call("ssm", "GetParameters", "(version check)", start, &result);
        result
    }

    /// Reads `fetch` from AWS, ignoring a cached value.
    pub async fn get_fresh(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        self.cache.get_fresh(fetch).await
    }
}

#[async_trait]
impl Source for AwsSource {
    async fn get(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        self.cache.get(fetch).await
    }

    async fn find(&self, find: &Find) -> Result<Vec<Value>, SourceError> {
        self.cache.find(find).await
    }
}

/// The SDK clients of one identity: the uncached [`Source`].
pub(crate) struct AwsClients {
    pub(crate) secrets_manager: aws_sdk_secretsmanager::Client,
    pub(crate) ssm: aws_sdk_ssm::Client,
    sts: aws_sdk_sts::Client,
    /// Set once BatchGetSecretValue is refused (its IAM permission is separate from
    /// GetSecretValue's), so finds stop trying it.
    pub(crate) batch_refused: AtomicBool,
}

/// What every client of one identity shares. The identity cache is shared too, so the three
/// clients resolve (and assume) credentials once, not once each.
struct ClientParts {
    region: Region,
    http: SharedHttpClient,
    identity_cache: SharedIdentityCache,
    retry: RetryConfig,
    timeouts: TimeoutConfig,
    metrics: Metrics,
}

macro_rules! client {
    ($sdk:ident, $parts:expr, $credentials:expr, $endpoint:expr, $service:literal) => {{
        let parts: &ClientParts = $parts;
        let mut builder = $sdk::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(parts.region.clone())
            .http_client(parts.http.clone())
            .identity_cache(parts.identity_cache.clone())
            .retry_config(parts.retry.clone())
            .timeout_config(parts.timeouts.clone())
            .interceptor(CountAttempts::new(parts.metrics.clone(), $service));
        // The provider is passed shared as it is: wrapping it again would give each client its
        // own identity cache partition.
        builder.set_credentials_provider(Some($credentials));
        if let Some(url) = $endpoint {
            builder = builder.endpoint_url(url);
        }
        $sdk::Client::from_conf(builder.build())
    }};
}

impl AwsClients {
    pub(crate) fn new(
        identity: &Identity,
        metrics: Metrics,
        options: &SourceOptions,
        http: SharedHttpClient,
    ) -> AwsClients {
        let attempts = options.max_attempts.max(1);
        let parts = ClientParts {
            region: Region::new(identity.region.clone()),
            http,
            identity_cache: IdentityCache::lazy()
                .buffer_time(CREDENTIALS_REFRESH_BEFORE_EXPIRY)
                .build(),
            retry: RetryConfig::standard().with_max_attempts(attempts),
            timeouts: TimeoutConfig::builder()
                .connect_timeout(options.timeout)
                .operation_attempt_timeout(options.timeout)
                .operation_timeout(options.timeout * attempts + Duration::from_secs(5))
                .build(),
            metrics,
        };
        let base = match &identity.static_keys {
            Some(keys) => SharedCredentialsProvider::new(Credentials::new(
                &keys.access_key_id,
                &keys.secret_access_key,
                keys.session_token.clone(),
                None,
                "arnsync-static-keys",
            )),
            None => SharedCredentialsProvider::new(LazyDefaultChain::new(
                parts.region.clone(),
                parts.http.clone(),
            )),
        };
        let sts_endpoint = identity.endpoints.sts.clone();
        let credentials = match &identity.role {
            Some(role) => {
                let base_sts = client!(aws_sdk_sts, &parts, base, sts_endpoint.clone(), "sts");
                SharedCredentialsProvider::new(AssumeRoleCredentials::new(base_sts, role.clone()))
            }
            None => base,
        };
        AwsClients {
            secrets_manager: client!(
                aws_sdk_secretsmanager,
                &parts,
                credentials.clone(),
                identity.endpoints.secrets_manager.clone(),
                "secretsmanager"
            ),
            ssm: client!(
                aws_sdk_ssm,
                &parts,
                credentials.clone(),
                identity.endpoints.ssm.clone(),
                "ssm"
            ),
            sts: client!(aws_sdk_sts, &parts, credentials, sts_endpoint, "sts"),
            batch_refused: AtomicBool::new(false),
        }
    }

    async fn caller_identity(&self) -> Result<String, SourceError> {
        let start = Instant::now();
        let result = self.sts.get_caller_identity().send().await;
        // SourceError has no STS service; the operation name makes the origin plain.
        let result = result
            .map_err(|e| from_sdk(&e, Service::SecretsManager, "GetCallerIdentity", "sts"))
            .map(|out| out.arn.unwrap_or_default());
        log_call("sts", "GetCallerIdentity", "", start, &result);
        result
    }
}

#[async_trait]
impl Source for AwsClients {
    async fn get(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        let start = Instant::now();
        let (service, operation, result) = match fetch.service {
            Service::SecretsManager => (
                "secretsmanager",
                "GetSecretValue",
                self.get_secret(fetch).await,
            ),
            Service::ParameterStore => ("ssm", "GetParameter", self.get_parameter(fetch).await),
        };
        log_call(service, operation, &fetch.key, start, &result);
        result
    }

    async fn find(&self, find: &Find) -> Result<Vec<Value>, SourceError> {
        let start = Instant::now();
        let (service, operation, key, result) = match find {
            Find::ParameterPath { path, recursive } => (
                "ssm",
                "GetParametersByPath",
                path.as_str(),
                self.parameters_by_path(path, *recursive).await,
            ),
            Find::Secrets { name_regexp, tags } => (
                "secretsmanager",
                "ListSecrets",
                name_regexp.as_deref().unwrap_or(""),
                self.find_secrets(name_regexp.as_deref(), tags).await,
            ),
        };
        log_call(service, operation, key, start, &result);
        result
    }
}

/// One debug line per logical call: names and outcome, never values.
fn log_call<T>(
    service: &str,
    operation: &str,
    key: &str,
    start: Instant,
    result: &Result<T, SourceError>,
) {
    let millis = start.elapsed().as_millis() as u64;
    match result {
        Ok(_) => tracing::debug!(
            service,
            operation,
            key,
            outcome = "success",
            millis,
            "aws call"
        ),
        Err(e) => tracing::debug!(
            service,
            operation = e.operation,
            key,
            outcome = e.kind.outcome(),
            code = %e.code,
            millis,
            "aws call"
        ),
    }
}
