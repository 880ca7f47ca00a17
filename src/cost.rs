//! An estimate of what one store identity's AWS calls cost per month: the calls of the last hour
//! (a sliding window of one-minute buckets), extrapolated to 730 hours, times a price per call.
//!
//! Before an hour has passed the window is the time observed so far (at least one minute), so
//! an estimate made soon after start extrapolates from little: a sync wave at start looks like
//! a steady rate until the window has seen an hour. The estimate leaves out what calls do not
//! show: the monthly charge per secret, KMS requests, data transfer and free tiers.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The services whose calls are counted, as the metrics name them.
pub const SERVICES: [&str; 4] = ["secretsmanager", "ssm", "sts", "sqs"];

/// Hours in AWS's billing month.
pub const HOURS_PER_MONTH: f64 = 730.0;

const BUCKET: Duration = Duration::from_secs(60);
const BUCKETS: u64 = 60;
/// An estimate divides by at least this much observed time.
const MIN_OBSERVED: Duration = Duration::from_secs(60);

fn index(service: &str) -> Option<usize> {
    SERVICES.iter().position(|s| *s == service)
}

/// Dollars per 10,000 calls, per service.
#[derive(Clone, Debug, PartialEq)]
pub struct Prices([f64; 4]);

impl Default for Prices {
    /// Secrets Manager $0.05 per 10,000 calls; Parameter Store standard throughput free; STS
    /// free; SQS $0.40 per million requests ($0.004 per 10,000), free tier not counted.
    fn default() -> Self {
        Prices([0.05, 0.0, 0.0, 0.004])
    }
}

impl Prices {
    /// Dollars per 10,000 calls of `service` (0 for a service not counted).
    pub fn per_10k(&self, service: &str) -> f64 {
        index(service).map_or(0.0, |i| self.0[i])
    }

    pub fn with(mut self, service: &str, per_10k: f64) -> Prices {
        if let Some(i) = index(service) {
            self.0[i] = per_10k;
        }
        self
    }
}

impl FromStr for Prices {
    type Err = String;

    /// `secretsmanager=0.05,ssm=0.05,...` in dollars per 10,000 calls; services not named keep
    /// their default.
    fn from_str(s: &str) -> Result<Prices, String> {
        let mut prices = Prices::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?}: expected SERVICE=DOLLARS_PER_10000_CALLS"))?;
            let i = index(name.trim()).ok_or_else(|| {
                format!(
                    "{:?} is not a service; use one of {}",
                    name.trim(),
                    SERVICES.join(", ")
                )
            })?;
            prices.0[i] = value
                .trim()
                .parse()
                .ok()
                .filter(|p: &f64| p.is_finite() && *p >= 0.0)
                .ok_or_else(|| format!("{item:?}: the price must be dollars per 10,000 calls"))?;
        }
        Ok(prices)
    }
}

/// Calls per service in the last hour of one identity, and the estimate shown in store status.
pub struct Spend {
    prices: Prices,
    start: Instant,
    /// (minute since `start`, calls per service in that minute), oldest first.
    window: Mutex<VecDeque<(u64, [u64; 4])>>,
    /// The estimate stores show, and when it was made (see [`Spend::published`]).
    published: Mutex<Option<(Instant, f64)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Spend {
    pub fn new(prices: Prices, start: Instant) -> Spend {
        Spend {
            prices,
            start,
            window: Mutex::default(),
            published: Mutex::default(),
        }
    }

    fn minute(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs() / BUCKET.as_secs()
    }

    /// Counts one call of `service` at `now` (services not in [`SERVICES`] are not counted).
    pub fn record(&self, service: &str, now: Instant) {
        let Some(i) = index(service) else { return };
        let minute = self.minute(now);
        let mut window = lock(&self.window);
        match window.back_mut() {
            Some((m, calls)) if *m == minute => calls[i] += 1,
            _ => {
                let mut calls = [0; 4];
                calls[i] = 1;
                window.push_back((minute, calls));
            }
        }
        while window.front().is_some_and(|(m, _)| m + BUCKETS <= minute) {
            window.pop_front();
        }
    }

    /// Calls per service in the window at `now`, and the time the window spans.
    pub fn calls(&self, now: Instant) -> ([u64; 4], Duration) {
        let minute = self.minute(now);
        let mut calls = [0; 4];
        for (m, c) in lock(&self.window).iter() {
            if m + BUCKETS > minute {
                for (total, n) in calls.iter_mut().zip(c) {
                    *total += n;
                }
            }
        }
        let elapsed = now.saturating_duration_since(self.start);
        let span = if minute < BUCKETS {
            elapsed
        } else {
            // The current minute so far and the 59 before it.
            elapsed - BUCKET * (minute - (BUCKETS - 1)) as u32
        };
        (calls, span.max(MIN_OBSERVED))
    }

    /// Estimated dollars per month, per service (in [`SERVICES`] order).
    pub fn monthly(&self, now: Instant) -> [f64; 4] {
        let (calls, span) = self.calls(now);
        let per_hour = 3600.0 / span.as_secs_f64();
        let mut out = [0.0; 4];
        for (i, n) in calls.iter().enumerate() {
            out[i] = *n as f64 * per_hour * HOURS_PER_MONTH * self.prices.0[i] / 10_000.0;
        }
        out
    }

    /// The monthly total stores show: made again only when the last one is `every` old, so
    /// that store status changes at most that often.
    pub fn published(&self, now: Instant, every: Duration) -> f64 {
        let mut published = lock(&self.published);
        match *published {
            Some((at, total)) if now.saturating_duration_since(at) < every => total,
            _ => {
                let total = self.monthly(now).iter().sum();
                *published = Some((now, total));
                total
            }
        }
    }
}

/// Dollars as store status shows them: two significant digits (cents below $1), so that a
/// steady rate gives a steady string and status is rarely written.
pub struct Dollars(pub f64);

impl fmt::Display for Dollars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.0.is_finite() {
            self.0.max(0.0)
        } else {
            0.0
        };
        if v < 1.0 {
            return write!(f, "${:.2}", v);
        }
        let step = 10f64.powi(v.log10().floor() as i32 - 1);
        let rounded = (v / step).round() * step;
        if rounded < 10.0 {
            write!(f, "${rounded:.2}")
        } else {
            write!(f, "${rounded:.0}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn spend() -> (Spend, Instant) {
        let t0 = Instant::now();
        (Spend::new(Prices::default(), t0), t0)
    }

    #[test]
    fn a_steady_rate_extrapolates_to_730_hours() {
        let (s, t0) = spend();
        // 10 Secrets Manager calls a minute for two hours: 600 an hour.
        for m in 0..120 {
            for _ in 0..10 {
                s.record("secretsmanager", t0 + MIN * m);
            }
        }
        let now = t0 + MIN * 120 - Duration::from_secs(1);
        let (calls, span) = s.calls(now);
        assert_eq!(calls[0], 600, "the last 60 minutes");
        assert_eq!(span, Duration::from_secs(3599));
        let monthly = s.monthly(now);
        let expected = 600.0 * 3600.0 / 3599.0 * 730.0 * 0.05 / 10_000.0;
        assert!((monthly[0] - expected).abs() < 1e-9, "{monthly:?}");
        assert!((monthly[0] - 2.19).abs() < 0.01);
    }

    #[test]
    fn before_an_hour_the_time_observed_so_far_is_extrapolated() {
        let (s, t0) = spend();
        for _ in 0..100 {
            s.record("secretsmanager", t0 + Duration::from_secs(5));
        }
        // Ten minutes in: 100 calls in 10 minutes is 600 an hour.
        let (calls, span) = s.calls(t0 + MIN * 10);
        assert_eq!((calls[0], span), (100, MIN * 10));
        let m = s.monthly(t0 + MIN * 10)[0];
        assert!((m - 600.0 * 730.0 * 0.05 / 10_000.0).abs() < 1e-9);
        // Within the first minute the divisor is a minute, not a few seconds.
        assert_eq!(s.calls(t0 + Duration::from_secs(6)).1, MIN);
    }

    #[test]
    fn calls_older_than_the_window_drop_out() {
        let (s, t0) = spend();
        s.record("ssm", t0);
        s.record("sqs", t0 + MIN * 30);
        assert_eq!(s.calls(t0 + MIN * 59).0, [0, 1, 0, 1]);
        assert_eq!(s.calls(t0 + MIN * 60).0, [0, 0, 0, 1]);
        assert_eq!(s.calls(t0 + MIN * 200).0, [0, 0, 0, 0]);
        s.record("sts", t0 + MIN * 200);
        assert_eq!(s.calls(t0 + MIN * 200).0, [0, 0, 1, 0]);
        assert_eq!(lock(&s.window).len(), 1, "old buckets are dropped");
        s.record("kms", t0 + MIN * 200);
        assert_eq!(s.calls(t0 + MIN * 200).0, [0, 0, 1, 0]);
    }

    #[test]
    fn free_services_cost_nothing_unless_priced() {
        let (s, t0) = spend();
        for _ in 0..1000 {
            s.record("ssm", t0);
            s.record("sts", t0);
            s.record("sqs", t0);
        }
        // 1000 calls in half an hour: 2000 an hour.
        let m = s.monthly(t0 + MIN * 30);
        assert_eq!((m[1], m[2]), (0.0, 0.0));
        assert!((m[3] - 2000.0 * 730.0 * 0.40 / 1_000_000.0).abs() < 1e-9);
        let higher = Spend::new(Prices::default().with("ssm", 0.05), t0);
        higher.record("ssm", t0);
        assert!(higher.monthly(t0 + MIN * 30)[1] > 0.0);
    }

    #[test]
    fn the_published_estimate_changes_at_most_every_interval() {
        let (s, t0) = spend();
        let every = MIN * 5;
        assert_eq!(s.published(t0, every), 0.0);
        for _ in 0..10_000 {
            s.record("secretsmanager", t0 + MIN);
        }
        assert_eq!(s.published(t0 + MIN * 4, every), 0.0, "too soon");
        let later = s.published(t0 + MIN * 5, every);
        assert!(later > 0.0);
        assert_eq!(s.published(t0 + MIN * 6, every), later);
    }

    #[test]
    fn prices_parse_by_service() {
        let p: Prices = "ssm=0.05, sqs=0".parse().unwrap();
        assert_eq!(p.per_10k("ssm"), 0.05);
        assert_eq!(p.per_10k("sqs"), 0.0);
        assert_eq!(p.per_10k("secretsmanager"), 0.05);
        assert_eq!("".parse::<Prices>().unwrap(), Prices::default());
        assert!("kms=1"
            .parse::<Prices>()
            .unwrap_err()
            .contains("secretsmanager"));
        assert!("ssm".parse::<Prices>().is_err());
        assert!("ssm=-1".parse::<Prices>().is_err());
    }

    #[test]
    fn dollars_keep_two_significant_digits() {
        let s = |v: f64| Dollars(v).to_string();
        assert_eq!(s(0.0), "$0.00");
        assert_eq!(s(0.004), "$0.00");
        assert_eq!(s(0.4249), "$0.42");
        assert_eq!(s(4.249), "$4.20");
        assert_eq!(s(9.99), "$10");
        assert_eq!(s(42.4), "$42");
        assert_eq!(s(425.0), "$430");
        assert_eq!(s(12_345.0), "$12000");
        assert_eq!(s(-1.0), "$0.00");
        assert_eq!(s(f64::NAN), "$0.00");
        // Noise of a few percent leaves the string as it is.
        assert_eq!(s(4.21), s(4.24));
        assert_eq!(s(123.0), s(121.0));
    }
}
