//! The SDK clients of one identity, their shared parts (HTTP pool, identity cache, retries,
//! timeouts, attempt counter), and the uncached reads dispatched to each service.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::identity::SharedIdentityCache;
use aws_types::region::Region;
use aws_types::sdk_config::SharedTimeSource;

use super::attempts::CountAttempts;
use super::credentials::{AssumeRoleCredentials, LazyDefaultChain};
use super::errors::from_sdk;
use super::pacing::{Pacer, Quota, Rates};
use super::regions::{Pacing, RegionClient, Regions, Switches};
use super::web_identity::WebIdentityCredentials;
use crate::cost::{Prices, Spend};
use crate::metrics::Metrics;
use crate::source::batch::{Answers, Batcher};
use crate::source::token::TokenSource;
use crate::source::{
    AwsService, ErrorKind, Fetch, Find, Identity, Selector, Service, Source, SourceError, Value,
};

/// BatchGetSecretValue takes up to 20 secret ids.
pub(crate) const SECRETS_PER_BATCH: usize = 20;
/// GetParameters takes up to 10 names.
pub(crate) const PARAMETERS_PER_BATCH: usize = 10;
/// After BatchGetSecretValue was refused, single reads are used this long before it is tried
/// again (a policy may have been fixed meanwhile).
const BATCH_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Assumed (and other expiring) credentials are renewed between half of this and this long
/// before they expire (the identity cache jitters the margin), so a read never waits on STS at
/// the moment of expiry.
const CREDENTIALS_REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// How long reads of mutable selectors (stages, latest, labels, finds) are shared.
    pub cache_ttl: Duration,
    /// How long a value of a mutable selector the version watcher follows is shared after its
    /// version was last confirmed (by its read, a version check or an event); 0: only
    /// `cache_ttl`.
    pub tracked_ttl: Duration,
    /// Value reads arriving within this window are sent together (BatchGetSecretValue for
    /// AWSCURRENT, GetParameters); 0: one call per read.
    pub read_batch_window: Duration,
    /// Calls per second per AWS account (or identity) and region, per quota.
    pub rates: Rates,
    /// Bound on cached single values (and, separately, on cached finds) per identity.
    pub max_cache_entries: usize,
    /// Per attempt; the whole call, retries included, may take `max_attempts` times this.
    pub timeout: Duration,
    /// SDK attempts per call (standard retry mode: exponential backoff with jitter).
    pub max_attempts: u32,
    /// How long a region that was unavailable is skipped before it is tried again (doubling
    /// after each failed try, up to 5 minutes or this, when longer).
    pub failover_retry: Duration,
    /// Dollars per 10,000 calls, per service, for the cost estimate.
    pub prices: Prices,
    /// The clock the clients (and so the credentials cache) see: `None`, the system clock;
    /// tests set one to expire credentials without waiting.
    pub clock: Option<SharedTimeSource>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            cache_ttl: Duration::from_secs(2),
            tracked_ttl: Duration::from_secs(15 * 60),
            read_batch_window: Duration::from_millis(50),
            rates: Rates::default(),
            max_cache_entries: 10_000,
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            failover_retry: Duration::from_secs(30),
            prices: Prices::default(),
            clock: None,
        }
    }
}

/// The SDK clients of one identity: the uncached [`Source`].
pub struct AwsClients {
    /// The primary region's client (test admin calls; reads go through `regions`).
    #[cfg(test)]
    pub(crate) secrets_manager: aws_sdk_secretsmanager::Client,
    /// Every Secrets Manager read: the primary region, then `failoverRegions` while it is down.
    pub(crate) regions: Regions,
    pub(crate) ssm: aws_sdk_ssm::Client,
    sts: aws_sdk_sts::Client,
    /// What an SQS client of this identity is built from (an event queue may be in another
    /// region than the store's).
    sqs: SqsParts,
    /// Set when BatchGetSecretValue is refused (its IAM permission is separate from
    /// GetSecretValue's): since when, and what to tell the user. Reads and finds then read one
    /// secret per call until [`BATCH_RETRY_AFTER`] has passed.
    batch_refusal: Mutex<Option<(Instant, String)>>,
    /// Every call waits for its token here.
    pub(crate) pacer: Arc<Pacer>,
    /// Every call attempt of this identity, for its cost estimate.
    pub(crate) spend: Arc<Spend>,
    /// Coalesce AWSCURRENT reads into BatchGetSecretValue, and parameter reads into
    /// GetParameters (none: every read is its own call).
    secret_batches: Option<Batcher>,
    parameter_batches: Option<Batcher>,
}

struct SqsParts {
    parts: ClientParts,
    credentials: SharedCredentialsProvider,
    endpoint: Option<String>,
}

/// What every client of one identity shares. The identity cache is shared too, so the three
/// clients resolve (and assume) credentials once, not once each.
#[derive(Clone)]
struct ClientParts {
    region: Region,
    http: SharedHttpClient,
    identity_cache: SharedIdentityCache,
    retry: RetryConfig,
    timeouts: TimeoutConfig,
    metrics: Metrics,
    spend: Arc<Spend>,
    clock: Option<SharedTimeSource>,
}

/// A client of `$sdk` with the identity's shared parts. `$credentials`: `None` for unsigned
/// calls only (sts:AssumeRoleWithWebIdentity).
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
            .interceptor(CountAttempts::new(
                parts.metrics.clone(),
                $service,
                parts.spend.clone(),
            ));
        // The provider is passed shared as it is: wrapping it again would give each client its
        // own identity cache partition.
        builder.set_credentials_provider($credentials);
        if let Some(clock) = &parts.clock {
            builder.set_time_source(Some(clock.clone()));
        }
        if let Some(url) = $endpoint {
            builder = builder.endpoint_url(url);
        }
        $sdk::Client::from_conf(builder.build())
    }};
}

impl AwsClients {
    /// Clients that read one value per call, with their own pacer (test admin clients).
    #[cfg(test)]
    pub fn new(
        identity: &Identity,
        metrics: Metrics,
        options: &SourceOptions,
        http: SharedHttpClient,
        tokens: Arc<dyn TokenSource>,
    ) -> AwsClients {
        let pacing = own_pacing(identity, &options.rates);
        Self::build(identity, metrics, options, http, tokens, pacing, None)
    }

    /// Clients whose reads are batched (when `options.read_batch_window` is set) and paced by
    /// `pacing` (Secrets Manager calls in a failover region by that region's pacer).
    pub fn shared(
        identity: &Identity,
        metrics: Metrics,
        options: &SourceOptions,
        http: SharedHttpClient,
        tokens: Arc<dyn TokenSource>,
        pacing: Pacing,
    ) -> Arc<AwsClients> {
        Arc::new_cyclic(|me| {
            let batches = !options.read_batch_window.is_zero();
            Self::build(
                identity,
                metrics,
                options,
                http,
                tokens,
                pacing,
                batches.then_some(me),
            )
        })
    }

    fn build(
        identity: &Identity,
        metrics: Metrics,
        options: &SourceOptions,
        http: SharedHttpClient,
        tokens: Arc<dyn TokenSource>,
        pacing: Pacing,
        me: Option<&Weak<AwsClients>>,
    ) -> AwsClients {
        let Pacing {
            pacer,
            replicas: replica_pacers,
            switched,
        } = pacing;
        let attempts = identity
            .retry
            .map_or(options.max_attempts, |r| r.max_attempts)
            .max(1);
        let mut retry = RetryConfig::standard().with_max_attempts(attempts);
        if let Some(backoff) = identity.retry.and_then(|r| r.initial_backoff) {
            retry = retry.with_initial_backoff(backoff);
        }
        let parts = ClientParts {
            region: Region::new(identity.region.clone()),
            http,
            identity_cache: IdentityCache::lazy()
                .buffer_time(CREDENTIALS_REFRESH_BEFORE_EXPIRY)
                .build(),
            retry,
            timeouts: TimeoutConfig::builder()
                .connect_timeout(options.timeout)
                .operation_attempt_timeout(options.timeout)
                .operation_timeout(options.timeout * attempts + Duration::from_secs(5))
                .build(),
            metrics,
            spend: Arc::new(Spend::new(options.prices.clone(), Instant::now())),
            clock: options.clock.clone(),
        };
        let spend = parts.spend.clone();
        let sts_endpoint = identity.endpoints.sts.clone();
        // Every provider below is cached apart in the shared identity cache (its own
        // partition), so each step of a role chain is renewed only shortly before it expires.
        let mut credentials = match (&identity.web_identity, &identity.static_keys) {
            (Some(web), _) => {
                let unsigned = client!(aws_sdk_sts, &parts, None, sts_endpoint.clone(), "sts");
                SharedCredentialsProvider::new(WebIdentityCredentials::new(
                    unsigned,
                    web.clone(),
                    tokens,
                ))
            }
            (None, Some(keys)) => SharedCredentialsProvider::new(Credentials::new(
                &keys.access_key_id,
                &keys.secret_access_key,
                keys.session_token.clone(),
                None,
                "arnsync-static-keys",
            )),
            (None, None) => SharedCredentialsProvider::new(LazyDefaultChain::new(
                parts.region.clone(),
                parts.http.clone(),
            )),
        };
        for role in &identity.roles {
            let sts = client!(
                aws_sdk_sts,
                &parts,
                Some(credentials),
                sts_endpoint.clone(),
                "sts"
            );
            credentials =
                SharedCredentialsProvider::new(AssumeRoleCredentials::new(sts, role.clone()));
        }
        let secrets_manager = client!(
            aws_sdk_secretsmanager,
            &parts,
            Some(credentials.clone()),
            identity.endpoints.secrets_manager.clone(),
            "secretsmanager"
        );
        // Replica regions share the credentials (and their cache) and the endpoint override.
        let mut regions = vec![RegionClient {
            region: identity.region.clone(),
            client: secrets_manager.clone(),
            pacer: pacer.clone(),
        }];
        for (region, pacer) in identity.failover_regions.iter().zip(replica_pacers) {
            let mut replica = parts.clone();
            replica.region = Region::new(region.clone());
            regions.push(RegionClient {
                region: region.clone(),
                client: client!(
                    aws_sdk_secretsmanager,
                    &replica,
                    Some(credentials.clone()),
                    identity.endpoints.secrets_manager.clone(),
                    "secretsmanager"
                ),
                pacer,
            });
        }
        AwsClients {
            #[cfg(test)]
            secrets_manager,
            regions: Regions::new(
                regions,
                Switches {
                    channel: switched,
                    failed_over: parts.metrics.failed_over_sources.clone(),
                },
                options.failover_retry,
            ),
            ssm: client!(
                aws_sdk_ssm,
                &parts,
                Some(credentials.clone()),
                identity.endpoints.ssm.clone(),
                "ssm"
            ),
            sts: client!(
                aws_sdk_sts,
                &parts,
                Some(credentials.clone()),
                sts_endpoint,
                "sts"
            ),
            sqs: SqsParts {
                parts,
                credentials,
                endpoint: identity.endpoints.sqs.clone(),
            },
            batch_refusal: Mutex::new(None),
            pacer,
            spend,
            secret_batches: me.map(|me| {
                batcher(
                    me,
                    options.read_batch_window,
                    SECRETS_PER_BATCH,
                    |c, items| Box::pin(async move { c.read_secret_batch(items).await }),
                )
            }),
            parameter_batches: me.map(|me| {
                batcher(
                    me,
                    options.read_batch_window,
                    PARAMETERS_PER_BATCH,
                    |c, items| Box::pin(async move { c.read_parameter_batch(items).await }),
                )
            }),
        }
    }

    /// Why reads of this identity do not use BatchGetSecretValue, while they do not.
    pub fn batch_fallback(&self) -> Option<String> {
        let refusal = lock(&self.batch_refusal);
        match &*refusal {
            Some((since, message)) if since.elapsed() < BATCH_RETRY_AFTER => Some(message.clone()),
            _ => None,
        }
    }

    /// Records that BatchGetSecretValue was refused with `e` (logged once per refusal).
    pub(crate) fn refuse_batches(&self, e: &SourceError) {
        let message = if e.kind == ErrorKind::AccessDenied {
            format!(
                "secretsmanager:BatchGetSecretValue is denied ({}): reading one secret per call; \
                 allow it to cut Secrets Manager calls up to 20-fold",
                e.code
            )
        } else {
            format!(
                "BatchGetSecretValue is not available at this endpoint ({}): reading one secret \
                 per call",
                e.code
            )
        };
        let mut refusal = lock(&self.batch_refusal);
        let fresh = refusal
            .as_ref()
            .is_none_or(|(since, _)| since.elapsed() >= BATCH_RETRY_AFTER);
        if fresh {
            tracing::warn!(code = %e.code, "{message}");
        }
        *refusal = Some((Instant::now(), message));
    }

    /// An SQS client of this identity for `region` (sharing its credentials and their cache).
    pub fn sqs(&self, region: &str) -> aws_sdk_sqs::Client {
        let mut parts = self.sqs.parts.clone();
        parts.region = Region::new(region.to_string());
        client!(
            aws_sdk_sqs,
            &parts,
            Some(self.sqs.credentials.clone()),
            self.sqs.endpoint.clone(),
            "sqs"
        )
    }

    pub(super) async fn caller_identity(&self) -> Result<String, SourceError> {
        self.pacer.pace(Quota::Sts).await;
        let start = Instant::now();
        let result = self.sts.get_caller_identity().send().await;
        let result = result
            .map_err(|e| from_sdk(&e, AwsService::Sts, "GetCallerIdentity", "sts"))
            .map(|out| out.arn.unwrap_or_default());
        log_call("sts", "GetCallerIdentity", "", start, &result);
        result
    }
}

#[async_trait]
impl Source for AwsClients {
    /// Reads `fetch`: AWSCURRENT and parameter reads as part of the next batch, other
    /// selectors (stages, VersionIds, which BatchGetSecretValue cannot express) on their own.
    async fn get(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        let batcher = match (&fetch.service, &fetch.selector) {
            (Service::SecretsManager, Selector::Stage(stage)) if stage == "AWSCURRENT" => {
                self.secret_batches.as_ref()
            }
            (Service::ParameterStore, Selector::Latest | Selector::ParameterVersion(_)) => {
                self.parameter_batches.as_ref()
            }
            _ => None,
        };
        match (batcher, fetch.service) {
            (Some(b), _) => b.read(fetch.clone()).await.unwrap_or_else(|| {
                Err(SourceError {
                    kind: ErrorKind::Other,
                    service: fetch.service.into(),
                    operation: "BatchRead",
                    key: fetch.key.clone(),
                    code: "BatchAborted".into(),
                    message: "the batch read stopped before answering; the read is retried".into(),
                })
            }),
            (None, Service::SecretsManager) => self.get_secret(fetch).await,
            (None, Service::ParameterStore) => self.get_parameter(fetch).await,
        }
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

/// A batcher whose batch calls run on `me` (answering every item with an error once the clients
/// are gone).
fn batcher(
    me: &Weak<AwsClients>,
    window: Duration,
    max: usize,
    read: fn(Arc<AwsClients>, Vec<Fetch>) -> futures::future::BoxFuture<'static, Answers>,
) -> Batcher {
    let me = me.clone();
    Batcher::new(window, max, move |items: Vec<Fetch>| {
        let clients = me.upgrade();
        async move {
            match clients {
                Some(c) => read(c, items).await,
                None => items
                    .iter()
                    .map(|f| {
                        Err(SourceError {
                            kind: ErrorKind::Other,
                            service: f.service.into(),
                            operation: "BatchRead",
                            key: f.key.clone(),
                            code: "SourceDropped".into(),
                            message: "the store's AWS source was dropped; the read is retried"
                                .into(),
                        })
                    })
                    .collect(),
            }
        }
    })
}

/// Pacers of its own for `identity`'s regions, telling no one of region switches.
pub(crate) fn own_pacing(identity: &Identity, rates: &Rates) -> Pacing {
    Pacing {
        pacer: Arc::new(Pacer::new(rates)),
        replicas: identity
            .failover_regions
            .iter()
            .map(|_| Arc::new(Pacer::new(rates)))
            .collect(),
        switched: None,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One debug line per AWS call: names and outcome, never values.
pub(super) fn log_call<T>(
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
