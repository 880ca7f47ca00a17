//! Pacing: a token bucket per (AWS account or identity, region, quota) in front of every call a
//! source makes, so that a sync wave waits its turn instead of running into AWS throttling
//! (which would cost retries, and errors for the calls that run out of them).
//!
//! Buckets follow AWS's own quota groups, which are per account and region: one for the SSM
//! reads (GetParameter, GetParameters and GetParametersByPath share Parameter Store's standard
//! throughput of 40 per second), one for GetSecretValue and DescribeSecret, one each for
//! BatchGetSecretValue and ListSecrets (100 per second each), and one for STS
//! GetCallerIdentity. The defaults stay well below AWS's so that the workloads sharing the
//! account keep room.
//!
//! A minimal bucket on tokio time rather than a crate (`governor` brings its own clock, a timer
//! thread and a concurrent map by default): a caller reserves the next slot under a short lock
//! and sleeps until it, so waiters are served in arrival order and nobody fails for want of a
//! token.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// An AWS quota group: the calls that share one bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quota {
    /// GetParameter, GetParameters, GetParametersByPath (Parameter Store throughput: 40/s).
    Ssm,
    /// GetSecretValue and DescribeSecret (10,000/s combined).
    SecretsManager,
    /// BatchGetSecretValue (100/s).
    SecretsManagerBatch,
    /// ListSecrets (100/s).
    SecretsManagerList,
    /// STS GetCallerIdentity.
    Sts,
}

impl Quota {
    pub const ALL: [Quota; 5] = [
        Quota::Ssm,
        Quota::SecretsManager,
        Quota::SecretsManagerBatch,
        Quota::SecretsManagerList,
        Quota::Sts,
    ];

    /// The name used in `--aws-rate`.
    pub fn name(self) -> &'static str {
        match self {
            Quota::Ssm => "ssm",
            Quota::SecretsManager => "secretsmanager",
            Quota::SecretsManagerBatch => "secretsmanager-batch",
            Quota::SecretsManagerList => "secretsmanager-list",
            Quota::Sts => "sts",
        }
    }

    /// Calls per second per account (or identity) and region when `--aws-rate` says nothing.
    fn default_rate(self) -> f64 {
        match self {
            Quota::Ssm => 20.0,
            Quota::SecretsManager => 500.0,
            Quota::SecretsManagerBatch => 50.0,
            Quota::SecretsManagerList => 50.0,
            Quota::Sts => 20.0,
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Calls per second per quota; 0 leaves a quota unpaced. Parsed from
/// `ssm=20,secretsmanager=500,...` (quotas not named keep their defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct Rates(BTreeMap<Quota, f64>);

impl Default for Rates {
    fn default() -> Self {
        Rates(Quota::ALL.iter().map(|q| (*q, q.default_rate())).collect())
    }
}

impl Rates {
    /// No pacing at all.
    pub fn unlimited() -> Rates {
        Rates(Quota::ALL.iter().map(|q| (*q, 0.0)).collect())
    }

    pub fn get(&self, quota: Quota) -> f64 {
        self.0.get(&quota).copied().unwrap_or(0.0)
    }

    pub fn with(mut self, quota: Quota, rate: f64) -> Rates {
        self.0.insert(quota, rate);
        self
    }
}

impl FromStr for Rates {
    type Err = String;

    fn from_str(s: &str) -> Result<Rates, String> {
        let mut rates = Rates::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?}: expected QUOTA=CALLS_PER_SECOND"))?;
            let quota = Quota::ALL
                .into_iter()
                .find(|q| q.name() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<&str> = Quota::ALL.iter().map(|q| q.name()).collect();
                    format!("{name:?} is not a quota; use one of {}", names.join(", "))
                })?;
            let rate: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite() && *r >= 0.0)
                .ok_or_else(|| {
                    format!("{item:?}: the rate must be a number of calls per second, 0 for none")
                })?;
            rates.0.insert(quota, rate);
        }
        Ok(rates)
    }
}

/// One bucket: `rate` calls per second with a burst of one second's worth (at least 1).
/// Kept as the theoretical arrival time of the next call (GCRA), so there is no refill task.
struct Bucket {
    interval: Duration,
    tolerance: Duration,
    next: Mutex<Option<Instant>>,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        let interval = Duration::from_secs_f64(1.0 / rate);
        let burst = rate.ceil().max(1.0);
        Bucket {
            interval,
            tolerance: interval.mul_f64(burst - 1.0),
            next: Mutex::new(None),
        }
    }

    /// Takes the next slot: how long after `now` the caller may go.
    fn reserve(&self, now: Instant) -> Duration {
        let mut next = lock(&self.next);
        let at = next.map_or(now, |n| n.max(now));
        *next = Some(at + self.interval);
        (at.checked_sub(self.tolerance).unwrap_or(now)).saturating_duration_since(now)
    }
}

/// The buckets of one (account or identity, region): every source of that scope shares them.
pub struct Pacer {
    buckets: HashMap<Quota, Bucket>,
    taken: [AtomicU64; Quota::ALL.len()],
    waited: [AtomicU64; Quota::ALL.len()],
}

impl Pacer {
    pub fn new(rates: &Rates) -> Pacer {
        Pacer {
            buckets: Quota::ALL
                .into_iter()
                .filter(|q| rates.get(*q) > 0.0)
                .map(|q| (q, Bucket::new(rates.get(q))))
                .collect(),
            taken: Default::default(),
            waited: Default::default(),
        }
    }

    /// Waits for a token of `quota` (none to wait for when it is unpaced).
    pub async fn pace(&self, quota: Quota) {
        let index = quota as usize;
        self.taken[index].fetch_add(1, Ordering::Relaxed);
        let Some(bucket) = self.buckets.get(&quota) else {
            return;
        };
        let wait = bucket.reserve(Instant::now());
        if !wait.is_zero() {
            self.waited[index].fetch_add(1, Ordering::Relaxed);
            tracing::trace!(
                quota = quota.name(),
                wait_ms = wait.as_millis() as u64,
                "paced"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Calls of `quota` that went through this pacer.
    pub fn taken(&self, quota: Quota) -> u64 {
        self.taken[quota as usize].load(Ordering::Relaxed)
    }

    /// Of those, the calls that had to wait for their slot.
    pub fn waited(&self, quota: Quota) -> u64 {
        self.waited[quota as usize].load(Ordering::Relaxed)
    }
}

/// The pacers of every scope, shared by the registry's sources.
#[derive(Default)]
pub struct Pacers {
    map: Mutex<HashMap<(String, String), Arc<Pacer>>>,
}

impl Pacers {
    /// The pacer of `scope` (an account id, or an identity's fingerprint when the account is
    /// not known up front) in `region`.
    pub fn pacer(&self, scope: &str, region: &str, rates: &Rates) -> Arc<Pacer> {
        let mut map = lock(&self.map);
        // Pacers nobody uses any more (their sources were dropped) go too.
        map.retain(|_, p| Arc::strong_count(p) > 1);
        map.entry((scope.to_string(), region.to_string()))
            .or_insert_with(|| Arc::new(Pacer::new(rates)))
            .clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_a_burst_through_then_spaces_calls_in_arrival_order() {
        let bucket = Bucket::new(4.0);
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..10).map(|_| bucket.reserve(t0)).collect();
        let ms: Vec<u128> = waits.iter().map(|w| w.as_millis()).collect();
        // A burst of 4 (one second's worth), then one call every 250 ms, first come first served.
        assert_eq!(ms, [0, 0, 0, 0, 250, 500, 750, 1000, 1250, 1500]);
        // Later arrivals queue behind the reservations already made.
        assert_eq!(bucket.reserve(t0 + Duration::from_secs(1)).as_millis(), 750);
        // After a quiet spell the bucket is full again.
        let later = t0 + Duration::from_secs(10);
        let burst: Vec<u128> = (0..5).map(|_| bucket.reserve(later).as_millis()).collect();
        assert_eq!(burst, [0, 0, 0, 0, 250]);
    }

    #[test]
    fn slow_rates_still_let_one_call_through() {
        let bucket = Bucket::new(0.5);
        let t0 = Instant::now();
        assert_eq!(bucket.reserve(t0), Duration::ZERO);
        assert_eq!(bucket.reserve(t0), Duration::from_secs(2));
    }

    #[test]
    fn rates_parse_by_quota_name_and_keep_the_other_defaults() {
        let rates: Rates = "ssm=10, secretsmanager-batch=0".parse().unwrap();
        assert_eq!(rates.get(Quota::Ssm), 10.0);
        assert_eq!(rates.get(Quota::SecretsManagerBatch), 0.0);
        assert_eq!(rates.get(Quota::SecretsManagerList), 50.0);
        assert_eq!("".parse::<Rates>().unwrap(), Rates::default());
        let err = "kms=3".parse::<Rates>().unwrap_err();
        assert!(
            err.contains("\"kms\"") && err.contains("secretsmanager-list"),
            "{err}"
        );
        assert!("ssm".parse::<Rates>().unwrap_err().contains("QUOTA="));
        assert!("ssm=-1".parse::<Rates>().is_err());
        assert!("ssm=fast".parse::<Rates>().is_err());
    }

    #[test]
    fn defaults_stay_below_the_aws_quotas() {
        let d = Rates::default();
        // Parameter Store standard throughput 40/s; BatchGetSecretValue and ListSecrets 100/s;
        // GetSecretValue + DescribeSecret 10,000/s.
        assert!(d.get(Quota::Ssm) <= 40.0);
        assert!(d.get(Quota::SecretsManagerBatch) <= 100.0);
        assert!(d.get(Quota::SecretsManagerList) <= 100.0);
        assert!(d.get(Quota::SecretsManager) <= 10_000.0);
    }

    #[tokio::test]
    async fn unpaced_quotas_count_calls_but_never_wait() {
        let pacer = Pacer::new(&Rates::unlimited().with(Quota::Ssm, 1000.0));
        for _ in 0..5 {
            pacer.pace(Quota::Sts).await;
        }
        assert_eq!((pacer.taken(Quota::Sts), pacer.waited(Quota::Sts)), (5, 0));
        for _ in 0..1000 {
            pacer.pace(Quota::Ssm).await;
        }
        assert_eq!(pacer.waited(Quota::Ssm), 0, "a burst of 1000 fits");
    }

    #[test]
    fn sources_of_one_scope_and_region_share_a_pacer() {
        let pacers = Pacers::default();
        let rates = Rates::default();
        let a = pacers.pacer("123456789012", "eu-west-1", &rates);
        let b = pacers.pacer("123456789012", "eu-west-1", &rates);
        let c = pacers.pacer("123456789012", "us-east-1", &rates);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        drop((a, b, c));
        pacers.pacer("other", "eu-west-1", &rates);
        assert_eq!(lock(&pacers.map).len(), 1, "unused pacers are dropped");
    }
}
