//! Request counters and fault injection, keyed by (verb, resource) where verb is one of
//! get|list|watch|create|update|patch|delete|deletecollection and resource is the plural,
//! with `/status` appended for the status subresource.

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
