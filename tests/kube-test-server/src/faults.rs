//! Request counters, latencies and fault injection, keyed by (verb, resource) where verb is one
//! of get|list|watch|create|update|patch|delete|deletecollection (the API server's audit verbs)
//! and resource is the plural, with `/status` appended for the status subresource.

use std::collections::BTreeMap;
use std::time::Duration;

/// A fault to inject into matching requests. Fields left `None` match everything / do nothing.
///
/// ```
/// # use kube_test_server::Fault;
/// # use std::time::Duration;
/// // The next two `patch` requests on secrets answer 503 after 100ms.
/// let f = Fault::default()
///     .verb("patch")
///     .resource("secrets")
///     .latency(Duration::from_millis(100))
///     .status(503)
///     .times(2);
/// assert_eq!(f.times, Some(2));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fault {
    /// Verb to match (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...).
    pub verb: Option<String>,
    /// Resource to match: plural, `/status` for the subresource (e.g. `externalsecrets/status`).
    pub resource: Option<String>,
    /// Delay before the request is handled (or answered with `status`).
    pub latency: Option<Duration>,
    /// Answer with a `metav1.Status` of this HTTP code instead of handling the request.
    pub status: Option<u16>,
    /// How many matching requests this fault applies to; `None` = until cleared.
    pub times: Option<u32>,
}

impl Fault {
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_string());
        self
    }
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_string());
        self
    }
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }
    pub fn status(mut self, code: u16) -> Self {
        self.status = Some(code);
        self
    }
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, verb: &str, resource: &str) -> bool {
        self.verb.as_deref().is_none_or(|v| v == verb)
            && self.resource.as_deref().is_none_or(|r| r == resource)
    }
}

#[derive(Debug, Default)]
pub struct Faults {
    active: Vec<Fault>,
}

impl Faults {
    pub fn inject(&mut self, f: Fault) {
        if f.times != Some(0) {
            self.active.push(f);
        }
    }

    pub fn clear(&mut self) {
        self.active.clear();
    }

    /// The first matching fault, consuming one of its `times`.
    pub fn take(&mut self, verb: &str, resource: &str) -> Option<Fault> {
        let i = self.active.iter().position(|f| f.matches(verb, resource))?;
        let f = self.active[i].clone();
        if let Some(n) = self.active[i].times.as_mut() {
            *n -= 1;
            if *n == 0 {
                self.active.remove(i);
            }
        }
        Some(f)
    }
}

#[derive(Debug, Default)]
pub struct Counters {
    counts: BTreeMap<(String, String), u64>,
    /// TokenRequests per ServiceAccount `(namespace, name)`, answered or not.
    tokens: BTreeMap<(String, String), u64>,
}

impl Counters {
    pub fn hit(&mut self, verb: &str, resource: &str) {
        *self
            .counts
            .entry((verb.to_string(), resource.to_string()))
            .or_default() += 1;
    }

    pub fn get(&self, verb: &str, resource: &str) -> u64 {
        self.counts
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub fn all(&self) -> BTreeMap<(String, String), u64> {
        self.counts.clone()
    }

    pub fn token_request(&mut self, ns: &str, name: &str) {
        *self
            .tokens
            .entry((ns.to_string(), name.to_string()))
            .or_default() += 1;
    }

    pub fn token_requests(&self, ns: &str, name: &str) -> u64 {
        self.tokens
            .get(&(ns.to_string(), name.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub fn reset(&mut self) {
        self.counts.clear();
        self.tokens.clear();
    }
}

/// How long the server took to answer one (verb, resource), from [`crate::TestServer::latencies`]:
/// from routing the request (its body already read) to the response being ready to send, with
/// the whole body serialized (for a watch: until its stream starts). Injected fault latency is
/// included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub total: Duration,
}

/// Samples per (verb, resource), in microseconds; past this many, only count, total and max
/// are kept up to date.
const MAX_SAMPLES: usize = 1_000_000;

#[derive(Debug, Default)]
struct Samples {
    micros: Vec<u32>,
    count: u64,
    total_micros: u64,
    max_micros: u64,
}

#[derive(Debug, Default)]
pub struct Latencies {
    by_key: BTreeMap<(String, String), Samples>,
}

impl Latencies {
    pub fn record(&mut self, verb: &str, resource: &str, took: Duration) {
        let key = (verb.to_string(), resource.to_string());
        let s = self.by_key.entry(key).or_default();
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if s.micros.len() < MAX_SAMPLES {
            s.micros.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
        s.count += 1;
        s.total_micros = s.total_micros.saturating_add(us);
        s.max_micros = s.max_micros.max(us);
    }

    pub fn summaries(&self) -> BTreeMap<(String, String), LatencySummary> {
        self.by_key
            .iter()
            .map(|(k, s)| {
                let mut v = s.micros.clone();
                v.sort_unstable();
                let pct = |p: usize| -> Duration {
                    v.get((v.len() * p / 100).min(v.len().saturating_sub(1)))
                        .map(|us| Duration::from_micros(u64::from(*us)))
                        .unwrap_or_default()
                };
                let summary = LatencySummary {
                    count: s.count,
                    p50: pct(50),
                    p90: pct(90),
                    p99: pct(99),
                    max: Duration::from_micros(s.max_micros),
                    total: Duration::from_micros(s.total_micros),
                };
                (k.clone(), summary)
            })
            .collect()
    }

    pub fn reset(&mut self) {
        self.by_key.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.record("list", "secrets", Duration::from_millis(ms));
        }
        l.record("get", "secrets", Duration::from_micros(7));
        let s = l.summaries();
        let list = s[&("list".to_string(), "secrets".to_string())];
        assert_eq!(list.count, 100);
        assert_eq!(list.p50, Duration::from_millis(51));
        assert_eq!(list.p99, Duration::from_millis(100));
        assert_eq!(list.max, Duration::from_millis(100));
        assert_eq!(list.total, Duration::from_millis(5050));
        assert_eq!(
            s[&("get".to_string(), "secrets".to_string())].p50,
            Duration::from_micros(7)
        );
        l.reset();
        assert!(l.summaries().is_empty());
    }
}
