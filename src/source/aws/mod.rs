//! Reads from Secrets Manager and Parameter Store through the AWS SDK, one [`AwsSource`] per
//! [`Identity`], kept in the [`Sources`] registry so that clients, credentials and the cache are
//! built once and shared by every ExternalSecret using that identity.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use super::cache::Cached;
use super::token::{NoTokenSource, TokenSource};
use super::versions::{SecretVersions, VersionSource};
use super::{Fetch, Find, Identity, Service, Source, SourceError, Tracker, Value};
use crate::cost::SERVICES;
use crate::metrics::{CostLabels, Metrics};
pub use clients::SourceOptions;
use clients::{log_call, AwsClients};
pub use keys::KeyOf;
use pacing::Pacers;
pub use pacing::{Quota, Rates};
use regions::Pacing;

mod attempts;
#[cfg(test)]
mod batch_tests;
mod clients;
mod credentials;
mod errors;
#[cfg(test)]
mod failover_tests;
mod keys;
#[cfg(test)]
mod moto_tests;
mod pacing;
mod parameter_store;
mod regions;
mod secrets_manager;
mod versions;
mod web_identity;
#[cfg(test)]
mod web_identity_tests;

pub use web_identity::WebIdentityError;

/// The registry of sources, one per identity. Cheap to clone.
#[derive(Clone)]
pub struct Sources {
    inner: Arc<Registry>,
}

struct Registry {
    metrics: Metrics,
    options: SourceOptions,
    http: SharedHttpClient,
    tokens: Arc<dyn TokenSource>,
    pacers: Pacers,
    /// Bumped when any identity's Secrets Manager reads move to another region.
    switched: Arc<tokio::sync::watch::Sender<u64>>,
    sources: Mutex<HashMap<[u8; 32], Arc<AwsSource>>>,
}

impl Sources {
    /// A registry without ServiceAccount tokens: identities with a web identity fail to get
    /// credentials (see [`Sources::with_tokens`]).
    pub fn new(metrics: Metrics, options: SourceOptions) -> Sources {
        Self::with_tokens(metrics, options, Arc::new(NoTokenSource))
    }

    /// A registry whose web identities get their ServiceAccount tokens from `tokens`.
    pub fn with_tokens(
        metrics: Metrics,
        options: SourceOptions,
        tokens: Arc<dyn TokenSource>,
    ) -> Sources {
        Sources {
            inner: Arc::new(Registry {
                metrics,
                options,
                http: http_client(),
                tokens,
                pacers: Pacers::default(),
                switched: Arc::new(tokio::sync::watch::channel(0).0),
                sources: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<[u8; 32], Arc<AwsSource>>> {
        self.inner.sources.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The source for `identity`, created on first use and shared afterwards.
    pub fn source(&self, identity: &Identity) -> Arc<AwsSource> {
        let mut sources = self.map();
        let source = Arc::clone(sources.entry(identity.fingerprint()).or_insert_with(|| {
            let scope = pacing_scope(identity);
            let rates = &self.inner.options.rates;
            let pacer = self.inner.pacers.pacer(&scope, &identity.region, rates);
            let replica_pacers = identity
                .failover_regions
                .iter()
                .map(|region| self.inner.pacers.pacer(&scope, region, rates))
                .collect();
            let pacing = Pacing {
                pacer,
                replicas: replica_pacers,
                switched: Some(self.inner.switched.clone()),
            };
            Arc::new(AwsSource::with_pacing(
                identity,
                self.inner.metrics.clone(),
                &self.inner.options,
                self.inner.http.clone(),
                self.inner.tokens.clone(),
                pacing,
            ))
        }));
        self.inner.metrics.sources.set(sources.len() as i64);
        source
    }

    /// Changes whenever the region serving some identity's Secrets Manager reads changes (see
    /// [`AwsSource::serving_region`]).
    pub fn region_switches(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.switched.subscribe()
    }

    /// Drops the sources of every identity not in `in_use` (keys rotated, store deleted), so
    /// their clients, credentials and cache are freed.
    pub fn retain(&self, in_use: &[Identity]) {
        let keep: HashSet<[u8; 32]> = in_use.iter().map(Identity::fingerprint).collect();
        let mut sources = self.map();
        let costs = &self.inner.metrics.aws_estimated_monthly_cost;
        sources.retain(|fingerprint, _| {
            let kept = keep.contains(fingerprint);
            if !kept {
                for service in SERVICES {
                    costs.remove(&cost_labels(fingerprint, service));
                }
            }
            kept
        });
        self.inner.metrics.sources.set(sources.len() as i64);
    }

    /// Sets `arnsync_aws_estimated_monthly_cost_dollars` of every identity with a source.
    pub fn publish_costs(&self) {
        let now = Instant::now();
        let costs = &self.inner.metrics.aws_estimated_monthly_cost;
        for (fingerprint, source) in self.map().iter() {
            let monthly = source.monthly_cost(now);
            for (service, dollars) in SERVICES.into_iter().zip(monthly) {
                costs
                    .get_or_create(&cost_labels(fingerprint, service))
                    .set(dollars);
            }
        }
    }

    /// How many identities have a source.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}

/// Whose AWS quotas an identity's calls count against: the account of the role it ends up in
/// when that is known from the spec, else the identity itself (static keys, the default chain).
fn pacing_scope(identity: &Identity) -> String {
    let role = identity
        .roles
        .last()
        .map(|r| r.arn.as_str())
        .or(identity.web_identity.as_ref().map(|w| w.role_arn.as_str()));
    match role
        .and_then(|arn| arn.split(':').nth(4))
        .filter(|a| !a.is_empty())
    {
        Some(account) => format!("account {account}"),
        None => format!("identity {}", identity.short_id()),
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
    /// A source with a pacer of its own.
    pub fn new(
        identity: &Identity,
        metrics: Metrics,
        options: &SourceOptions,
        http: SharedHttpClient,
        tokens: Arc<dyn TokenSource>,
    ) -> AwsSource {
        let pacing = clients::own_pacing(identity, &options.rates);
        Self::with_pacing(identity, metrics, options, http, tokens, pacing)
    }

    fn with_pacing(
        identity: &Identity,
        metrics: Metrics,
        options: &SourceOptions,
        http: SharedHttpClient,
        tokens: Arc<dyn TokenSource>,
        pacing: Pacing,
    ) -> AwsSource {
        let clients = AwsClients::shared(identity, metrics, options, http, tokens, pacing);
        AwsSource {
            cache: Cached::shared(
                clients,
                options.cache_ttl,
                options.tracked_ttl,
                options.max_cache_entries,
            ),
        }
    }

    /// While BatchGetSecretValue is refused for this identity (its IAM action is separate from
    /// GetSecretValue's), what to tell the user, e.g. "secretsmanager:BatchGetSecretValue is
    /// denied (AccessDeniedException): reading one secret per call; allow it to cut Secrets
    /// Manager calls up to 20-fold". Batches are tried again an hour after a refusal.
    pub fn batch_fallback(&self) -> Option<String> {
        self.cache.inner().batch_fallback()
    }

    /// Lets values this identity's version watcher follows stay cached while it confirms their
    /// versions (see [`Cached`]).
    pub fn follow(&self, tracker: &Arc<Tracker>) {
        self.cache.follow(tracker);
    }

    /// Calls of `quota` this source's pacer let through, and how many of them had to wait.
    pub fn paced(&self, quota: Quota) -> (u64, u64) {
        let pacer = &self.cache.inner().pacer;
        (pacer.taken(quota), pacer.waited(quota))
    }

    /// Estimated dollars per month of this identity's calls, per service in
    /// [`crate::cost::SERVICES`] order (see [`crate::cost`]).
    pub fn monthly_cost(&self, now: Instant) -> [f64; 4] {
        self.cache.inner().spend.monthly(now)
    }

    /// The monthly total store status shows, made again at most every `every`.
    pub fn published_cost(&self, every: Duration) -> f64 {
        self.cache.inner().spend.published(Instant::now(), every)
    }

    /// The ARN of the principal these reads run as (sts:GetCallerIdentity): a cheap check that
    /// the credentials and role work, and the identity shown in store status.
    pub async fn caller_identity(&self) -> Result<String, SourceError> {
        self.cache.inner().caller_identity().await
    }

    /// With `failoverRegions`, the region Secrets Manager reads are served from (the primary
    /// until it is unavailable); `None` without them.
    pub fn serving_region(&self) -> Option<String> {
        let regions = &self.cache.inner().regions;
        regions.fails_over().then(|| regions.serving())
    }

    /// The KMS keys of a secret (`below`: of every secret whose name starts with `key`) or a
    /// parameter (`below`: of every parameter under the path `key`), from metadata only.
    pub async fn kms_keys(
        &self,
        service: Service,
        key: &str,
        below: bool,
    ) -> Result<Vec<KeyOf>, SourceError> {
        let clients = self.cache.inner();
        match (service, below) {
            (Service::SecretsManager, false) => clients.secret_key(key).await.map(|k| vec![k]),
            (Service::SecretsManager, true) => clients.secret_keys_below(key).await,
            (Service::ParameterStore, _) => clients.parameter_keys(key, below).await,
        }
    }

    /// An SQS client of this identity for `region` (event queues).
    pub fn sqs(&self, region: &str) -> aws_sdk_sqs::Client {
        self.cache.inner().sqs(region)
    }
}

#[async_trait]
impl Source for AwsSource {
    async fn get(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        self.cache.get(fetch).await
    }

    /// Reads `fetch` from AWS, ignoring a cached value (concurrent identical reads still share
    /// the call, and it may go in a batch).
    async fn get_fresh(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        self.cache.get_fresh(fetch).await
    }

    async fn find(&self, find: &Find) -> Result<Vec<Value>, SourceError> {
        self.cache.find(find).await
    }
}

#[async_trait]
impl VersionSource for AwsSource {
    /// Forgets the cached value of `fetch`.
    fn invalidate(&self, fetch: &Fetch) {
        self.cache.invalidate(fetch);
    }

    /// Every secret's staging labels (ListSecrets), optionally only names starting with one of
    /// `names` (at most 10).
    async fn list_secret_versions(
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
    async fn describe_secret_versions(&self, key: &str) -> Result<SecretVersions, SourceError> {
        let start = Instant::now();
        let result = self.cache.inner().describe_secret_versions(key).await;
        log_call("secretsmanager", "DescribeSecret", key, start, &result);
        result
    }

    /// Current versions of up to 10 parameters (GetParameters, not decrypted).
    async fn parameter_versions(
        &self,
        requests: &[String],
    ) -> Result<BTreeMap<String, String>, SourceError> {
        let start = Instant::now();
        let result = self.cache.inner().parameter_versions(requests).await;
        log_call("ssm", "GetParameters", "(version check)", start, &result);
        result
    }
}

/// The labels of an identity's estimated cost for `service`.
fn cost_labels(fingerprint: &[u8; 32], service: &'static str) -> CostLabels {
    CostLabels {
        identity: super::identity::short_id_of(fingerprint),
        service,
    }
}
