//! Replica-region failover for Secrets Manager (`provider.aws.failoverRegions`).
//!
//! Every Secrets Manager call of an identity (value reads, batches, finds, version checks) goes
//! through [`Regions::call`]. Without failover regions that is the primary client and its pacer,
//! nothing more. With them, a call the primary answers as unavailable (5xx, timeout, connection
//! error: [`ErrorKind::Unavailable`], after the SDK's own retries) is made again in the first
//! replica region that is not known to be down, in the order listed. Any other answer (a value,
//! access denied, not found, a validation error, throttling) is the region's answer and is
//! returned as it is: only an outage moves reads.
//!
//! A region that failed is skipped for a backoff (`--failover-retry`, 30 s, doubling to 5 min)
//! and then tried again by the next call (a value read or a version check), one call at a time:
//! the primary serves again as soon as it answers. Which region served last is shared by every
//! call of the identity, logged when it changes, counted in `arnsync_failed_over_sources`, and
//! announced on the registry's [`watch`] channel so that store status can say it at once.
//!
//! Secret ARNs name their region. A key that is a full Secrets Manager ARN is rewritten to the
//! serving region's ARN (same partition, account, name and suffix) before the call, and ARNs in
//! answers are rewritten back to the primary's, so that nothing above this layer (the cache,
//! the batcher, the version tracker) sees which region served. Replicas keep the primary's
//! VersionIds, so a switch is not a rotation.

use std::borrow::Cow;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use super::pacing::{Pacer, Quota};
use crate::source::{ErrorKind, SourceError};

/// The first wait before a failed region is tried again, by default (`--failover-retry`).
#[cfg(test)]
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(30);
/// The longest wait between tries of a failed region (unless the first is longer).
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The Secrets Manager client and pacer of one region.
pub(crate) struct RegionClient {
    pub(crate) region: String,
    pub(crate) client: aws_sdk_secretsmanager::Client,
    pub(crate) pacer: Arc<Pacer>,
}

/// How one identity's calls are paced, per region, and whom a region switch is told.
pub(crate) struct Pacing {
    /// The primary region's pacer (every service).
    pub(crate) pacer: Arc<Pacer>,
    /// One per failover region, in order (Secrets Manager only).
    pub(crate) replicas: Vec<Arc<Pacer>>,
    /// Bumped whenever the serving region of any identity changes.
    pub(crate) switched: Option<Arc<watch::Sender<u64>>>,
}

/// Who hears of a region switch: the registry's channel and the failed-over gauge.
#[derive(Clone, Default)]
pub(crate) struct Switches {
    pub(crate) channel: Option<Arc<watch::Sender<u64>>>,
    /// Identities served by a replica region (`arnsync_failed_over_sources`).
    pub(crate) failed_over: Gauge,
}

/// One region's health, as the calls found it.
#[derive(Clone, Copy, Debug, Default)]
struct Health {
    /// Set while the region is considered down: it is skipped until then.
    retry_at: Option<Instant>,
    /// The next wait after another failure.
    backoff: Duration,
}

struct State {
    health: Vec<Health>,
    /// The index of the region that answered last.
    serving: usize,
}

/// The regions of one identity's Secrets Manager calls: the primary first, then the replicas.
pub(crate) struct Regions {
    clients: Vec<RegionClient>,
    state: Mutex<State>,
    switches: Switches,
    /// The first wait before a failed region is tried again.
    first_backoff: Duration,
}

impl Regions {
    /// `clients[0]` is the primary.
    pub(crate) fn new(
        clients: Vec<RegionClient>,
        switches: Switches,
        first_backoff: Duration,
    ) -> Regions {
        assert!(!clients.is_empty(), "a primary region");
        Regions {
            switches,
            first_backoff: first_backoff.max(Duration::from_millis(100)),
            state: Mutex::new(State {
                health: vec![Health::default(); clients.len()],
                serving: 0,
            }),
            clients,
        }
    }

    pub(crate) fn primary(&self) -> &RegionClient {
        &self.clients[0]
    }

    /// True when replica regions are configured.
    pub(crate) fn fails_over(&self) -> bool {
        self.clients.len() > 1
    }

    /// The region that answered the last call (the primary until a failover).
    pub(crate) fn serving(&self) -> String {
        self.clients[self.lock().serving].region.clone()
    }

    /// Runs `call` in the primary region, or, while it is unavailable, in the first replica
    /// region that answers, pacing each attempt with that region's pacer. With every region
    /// tried unavailable, the first one's error is returned.
    pub(crate) async fn call<'a, T, F, Fut>(
        &'a self,
        quota: Quota,
        call: F,
    ) -> Result<T, SourceError>
    where
        F: Fn(&'a RegionClient) -> Fut,
        Fut: Future<Output = Result<T, SourceError>> + 'a,
    {
        self.call_in(quota, None, call)
            .await
            .map(|(answer, _)| answer)
    }

    /// [`Regions::call`], also saying which region answered; with `only`, in that region alone
    /// (the later pages of a listing: page tokens are the region's own).
    pub(crate) async fn call_in<'a, T, F, Fut>(
        &'a self,
        quota: Quota,
        only: Option<usize>,
        call: F,
    ) -> Result<(T, usize), SourceError>
    where
        F: Fn(&'a RegionClient) -> Fut,
        Fut: Future<Output = Result<T, SourceError>> + 'a,
    {
        if !self.fails_over() {
            let primary = self.primary();
            primary.pacer.pace(quota).await;
            return call(primary).await.map(|answer| (answer, 0));
        }
        let order = match only {
            Some(i) => vec![i.min(self.clients.len() - 1)],
            None => self.order(Instant::now()),
        };
        let mut first_error = None;
        for i in order {
            let region = &self.clients[i];
            region.pacer.pace(quota).await;
            match call(region).await {
                Err(e) if e.kind == ErrorKind::Unavailable => {
                    self.failed(i, &e);
                    first_error.get_or_insert(e);
                }
                answer => {
                    self.answered(i);
                    return answer.map(|answer| (answer, i));
                }
            }
        }
        Err(first_error.expect("at least one region was tried"))
    }

    /// The regions to try, in order: those not waiting out a backoff; when every one is, all.
    /// The first call to find a failed region's backoff over probes it, and claims the probe:
    /// calls arriving meanwhile skip the region rather than all wait on it.
    fn order(&self, now: Instant) -> Vec<usize> {
        let mut state = self.lock();
        let mut up = Vec::with_capacity(self.clients.len());
        for (i, health) in state.health.iter_mut().enumerate() {
            match health.retry_at {
                None => up.push(i),
                Some(at) if at <= now => {
                    health.retry_at = Some(now + health.backoff.max(self.first_backoff));
                    up.push(i);
                }
                Some(_) => {}
            }
        }
        if up.is_empty() {
            (0..self.clients.len()).collect()
        } else {
            up
        }
    }

    fn failed(&self, i: usize, e: &SourceError) {
        let mut state = self.lock();
        let health = &mut state.health[i];
        let wait = if health.backoff.is_zero() {
            self.first_backoff
        } else {
            health.backoff
        };
        health.retry_at = Some(Instant::now() + wait);
        health.backoff = (wait * 2).min(MAX_BACKOFF.max(self.first_backoff));
        tracing::warn!(
            region = %self.clients[i].region,
            operation = e.operation,
            code = %e.code,
            retry_in_ms = wait.as_millis() as u64,
            "Secrets Manager region unavailable"
        );
    }

    fn answered(&self, i: usize) {
        let mut state = self.lock();
        state.health[i] = Health::default();
        if state.serving == i {
            return;
        }
        let from = &self.clients[state.serving].region;
        let to = &self.clients[i].region;
        if i == 0 {
            self.switches.failed_over.dec();
            tracing::warn!(from = %from, to = %to, "Secrets Manager reads are back in the primary region");
        } else {
            if state.serving == 0 {
                self.switches.failed_over.inc();
            }
            tracing::warn!(from = %from, to = %to, "Secrets Manager reads failed over to a replica region");
        }
        state.serving = i;
        if let Some(channel) = &self.switches.channel {
            channel.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Regions {
    /// A source dropped while failed over (its store deleted or changed) leaves the gauge.
    fn drop(&mut self) {
        if self.lock().serving != 0 {
            self.switches.failed_over.dec();
        }
    }
}

/// `key` as read in `region`: a full Secrets Manager ARN gets `region` in its region field;
/// names (and other strings) are unchanged.
pub(crate) fn in_region<'a>(key: &'a str, region: &str) -> Cow<'a, str> {
    let mut parts = key.splitn(5, ':');
    let (Some("arn"), Some(partition), Some("secretsmanager"), Some(from), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Cow::Borrowed(key);
    };
    if from == region {
        return Cow::Borrowed(key);
    }
    Cow::Owned(format!("arn:{partition}:secretsmanager:{region}:{rest}"))
}

/// [`in_region`] for an optional owned ARN in an answer.
pub(crate) fn arn_in(arn: &mut Option<String>, region: &str) {
    if let Some(a) = arn.as_mut() {
        if let Cow::Owned(moved) = in_region(a, region) {
            *a = moved;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::AwsService;
    use crate::source::Rates;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn secret_arns_move_to_the_replica_region() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf";
        assert_eq!(
            in_region(arn, "us-west-2"),
            "arn:aws:secretsmanager:us-west-2:123456789012:secret:prod/db-AbCdEf"
        );
        assert!(matches!(in_region(arn, "us-east-1"), Cow::Borrowed(_)));
        assert_eq!(in_region("prod/db", "us-west-2"), "prod/db");
        let parameter = "arn:aws:ssm:us-east-1:123456789012:parameter/prod/db";
        assert_eq!(in_region(parameter, "us-west-2"), parameter);
        let gov = "arn:aws-us-gov:secretsmanager:us-gov-west-1:1:secret:a:b-AbCdEf";
        assert_eq!(
            in_region(gov, "us-gov-east-1"),
            "arn:aws-us-gov:secretsmanager:us-gov-east-1:1:secret:a:b-AbCdEf"
        );
    }

    fn regions(names: &[&str]) -> Regions {
        regions_with(names, Switches::default())
    }

    fn regions_with(names: &[&str], switches: Switches) -> Regions {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        Regions::new(
            names
                .iter()
                .map(|r| RegionClient {
                    region: r.to_string(),
                    client: aws_sdk_secretsmanager::Client::from_conf(config.clone()),
                    pacer: Arc::new(Pacer::new(&Rates::default())),
                })
                .collect(),
            switches,
            FIRST_BACKOFF,
        )
    }

    fn error(kind: ErrorKind, code: &str) -> SourceError {
        SourceError {
            kind,
            service: AwsService::SecretsManager,
            operation: "GetSecretValue",
            key: "prod/db".into(),
            code: code.into(),
            message: String::new(),
        }
    }

    /// Calls `regions` once with the primary answering `primary`, replicas answering with their
    /// name; returns the answer and the regions asked.
    async fn call_with(
        regions: &Regions,
        primary: Option<SourceError>,
    ) -> (Result<String, SourceError>, Vec<String>) {
        let asked = Mutex::new(Vec::new());
        let answer = regions
            .call(Quota::SecretsManager, |r| {
                asked.lock().unwrap().push(r.region.clone());
                let primary = primary.clone();
                async move {
                    match (r.region.as_str(), primary) {
                        ("us-east-1", Some(e)) => Err(e),
                        (region, _) => Ok(region.to_string()),
                    }
                }
            })
            .await;
        (answer, asked.into_inner().unwrap())
    }

    #[tokio::test]
    async fn only_an_outage_of_the_primary_moves_reads() {
        let r = regions(&["us-east-1", "us-west-2", "eu-west-1"]);
        for (kind, code) in [
            (ErrorKind::AccessDenied, "AccessDeniedException"),
            (ErrorKind::NotFound, "ResourceNotFoundException"),
            (ErrorKind::InvalidRequest, "ValidationException"),
            (ErrorKind::Throttled, "ThrottlingException"),
            (ErrorKind::Credentials, "CredentialsError"),
            (ErrorKind::Other, "Unknown"),
        ] {
            let (answer, asked) = call_with(&r, Some(error(kind, code))).await;
            assert_eq!(answer.unwrap_err().code, code);
            assert_eq!(asked, ["us-east-1"], "{code} must not fail over");
            assert_eq!(r.serving(), "us-east-1");
        }
        let (answer, asked) = call_with(
            &r,
            Some(error(ErrorKind::Unavailable, "ServiceUnavailable")),
        )
        .await;
        assert_eq!(answer.unwrap(), "us-west-2");
        assert_eq!(asked, ["us-east-1", "us-west-2"]);
        assert_eq!(r.serving(), "us-west-2");
        // While the primary waits out its backoff, calls go straight to the replica.
        let (answer, asked) = call_with(&r, None).await;
        assert_eq!(answer.unwrap(), "us-west-2");
        assert_eq!(asked, ["us-west-2"]);
    }

    #[tokio::test]
    async fn the_primary_is_tried_again_after_a_doubling_backoff_and_serves_again() {
        let (channel, mut changes) = watch::channel(0);
        let switches = Switches {
            channel: Some(Arc::new(channel)),
            failed_over: Gauge::default(),
        };
        let r = regions_with(&["us-east-1", "us-west-2"], switches);
        let down = || Some(error(ErrorKind::Unavailable, "Timeout"));
        call_with(&r, down()).await.0.unwrap();
        assert_eq!(*changes.borrow_and_update(), 1);
        assert_eq!(r.serving(), "us-west-2");
        let backoff = |r: &Regions| {
            let s = r.lock();
            (
                s.health[0].retry_at.unwrap() - Instant::now(),
                s.health[0].backoff,
            )
        };
        let (wait, next) = backoff(&r);
        assert!(wait <= FIRST_BACKOFF && wait > FIRST_BACKOFF - Duration::from_secs(5));
        assert_eq!(next, FIRST_BACKOFF * 2);
        // The backoff is over: the next call probes the primary, which is still down.
        r.lock().health[0].retry_at = Some(Instant::now());
        let (_, asked) = call_with(&r, down()).await;
        assert_eq!(asked, ["us-east-1", "us-west-2"]);
        assert_eq!(backoff(&r).1, FIRST_BACKOFF * 4);
        for _ in 0..5 {
            r.lock().health[0].retry_at = Some(Instant::now());
            call_with(&r, down()).await.0.unwrap();
        }
        assert_eq!(backoff(&r).1, MAX_BACKOFF);
        // It answers again: it serves, and its backoff starts over.
        r.lock().health[0].retry_at = Some(Instant::now());
        let (answer, asked) = call_with(&r, None).await;
        assert_eq!(answer.unwrap(), "us-east-1");
        assert_eq!(asked, ["us-east-1"]);
        assert_eq!(r.serving(), "us-east-1");
        assert_eq!(*changes.borrow_and_update(), 2);
        assert!(r.lock().health[0].retry_at.is_none());
        assert_eq!(r.switches.failed_over.get(), 0);
    }

    #[tokio::test]
    async fn the_gauge_counts_identities_served_by_a_replica() {
        let gauge = Gauge::default();
        let switches = Switches {
            channel: None,
            failed_over: gauge.clone(),
        };
        let r = regions_with(&["us-east-1", "us-west-2", "eu-west-1"], switches);
        call_with(&r, Some(error(ErrorKind::Unavailable, "Timeout")))
            .await
            .0
            .unwrap();
        assert_eq!(gauge.get(), 1);
        // From one replica to another: still one identity failed over.
        r.answered(2);
        assert_eq!(gauge.get(), 1);
        drop(r);
        assert_eq!(gauge.get(), 0);
    }

    #[tokio::test]
    async fn one_call_probes_a_failed_region_while_the_others_skip_it() {
        let r = regions(&["us-east-1", "us-west-2"]);
        call_with(&r, Some(error(ErrorKind::Unavailable, "Timeout")))
            .await
            .0
            .unwrap();
        let now = Instant::now();
        assert_eq!(r.order(now), [1]);
        r.lock().health[0].retry_at = Some(now);
        assert_eq!(r.order(now), [0, 1], "the probe");
        assert_eq!(r.order(now), [1], "calls during the probe");
    }

    #[tokio::test]
    async fn with_every_region_down_the_primarys_error_is_returned() {
        let r = regions(&["us-east-1", "us-west-2"]);
        let calls = AtomicUsize::new(0);
        let answer: Result<(), SourceError> = r
            .call(Quota::SecretsManager, |region| {
                calls.fetch_add(1, Ordering::Relaxed);
                let code = format!("down in {}", region.region);
                async move { Err(error(ErrorKind::Unavailable, &code)) }
            })
            .await;
        assert_eq!(answer.unwrap_err().code, "down in us-east-1");
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        assert_eq!(r.serving(), "us-east-1");
        // Both wait out a backoff: the next call tries both again, in order.
        assert_eq!(r.order(Instant::now()), [0, 1]);
    }

    #[tokio::test]
    async fn a_call_in_one_region_does_not_fail_over() {
        let r = regions(&["us-east-1", "us-west-2"]);
        let answer: Result<(u8, usize), SourceError> = r
            .call_in(Quota::SecretsManagerList, Some(0), |region| {
                let down = region.region == "us-east-1";
                async move {
                    if down {
                        Err(error(ErrorKind::Unavailable, "ServiceUnavailable"))
                    } else {
                        Ok(1)
                    }
                }
            })
            .await;
        assert_eq!(answer.unwrap_err().code, "ServiceUnavailable");
        let answer = r
            .call_in(Quota::SecretsManagerList, Some(1), |_| async { Ok(2) })
            .await
            .unwrap();
        assert_eq!(answer, (2, 1));
        assert_eq!(r.serving(), "us-west-2");
    }

    #[tokio::test]
    async fn a_single_region_calls_only_the_primary() {
        let r = regions(&["us-east-1"]);
        let (answer, asked) = call_with(
            &r,
            Some(error(ErrorKind::Unavailable, "ServiceUnavailable")),
        )
        .await;
        assert_eq!(answer.unwrap_err().code, "ServiceUnavailable");
        assert_eq!(asked, ["us-east-1"]);
    }
}
