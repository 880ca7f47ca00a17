//! The version watcher: one per store identity. It tracks every remote value that any
//! ExternalSecret reading through that identity uses, deduplicated, with the version in use, and
//! checks with the cheapest calls whether a version moved (a rotation, a new parameter version).
//! When one moved it reads the new value once, by its exact version, and names the subscribers
//! (ExternalSecrets) to wake.
//!
//! Cost of one check with nothing moving: ceil(K/100) ListSecrets for K tracked secrets (one
//! filtered call when K ≤ 10), ceil(P/10) GetParameters for P tracked parameters, DescribeSecret
//! only for secrets whose scheduled rotation is due, and no value reads. The number of
//! subscribers sharing a key never changes it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::aws::{AwsSource, Sources};
use super::versions::{base_name, SecretVersions, MAX_NAME_FILTERS, PARAMETERS_PER_CALL};
use super::{Fetch, Identity, Selector, Service, Source};
use crate::metrics::{Metrics, ServiceLabels};

/// How long after a scheduled rotation date DescribeSecret keeps being asked.
const DUE_WINDOW: Duration = Duration::from_secs(600);
/// How often a due rotation is checked with DescribeSecret.
const DUE_CHECK: Duration = Duration::from_secs(5);

/// One tracked remote value: a mutable selector (a stage, the latest parameter, a label).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Watch {
    pub service: Service,
    pub key: String,
    pub selector: Selector,
}

impl Watch {
    pub fn fetch(&self) -> Fetch {
        Fetch {
            service: self.service,
            key: self.key.clone(),
            selector: self.selector.clone(),
        }
    }

    /// The read of exactly `version` of this value.
    pub fn pinned(&self, version: &str) -> Fetch {
        let selector = match self.service {
            Service::SecretsManager => Selector::VersionId(version.to_string()),
            Service::ParameterStore => Selector::ParameterVersion(version.to_string()),
        };
        Fetch {
            service: self.service,
            key: self.key.clone(),
            selector,
        }
    }

    /// GetParameters request name: `name` or `name:label`.
    fn parameter_request(&self) -> String {
        match &self.selector {
            Selector::ParameterVersion(label) => format!("{}:{label}", self.key),
            _ => self.key.clone(),
        }
    }
}

/// A version that moved, and who uses it.
#[derive(Clone, Debug)]
pub struct Moved {
    pub watch: Watch,
    pub from: Option<String>,
    pub to: String,
    pub subscribers: Vec<String>,
    pub detected: Instant,
}

#[derive(Default)]
struct Tracked {
    version: Option<String>,
    subscribers: BTreeSet<String>,
    /// Check with DescribeSecret until then: a scheduled rotation is due.
    due_until: Option<Instant>,
}

#[derive(Default)]
struct State {
    tracked: HashMap<Watch, Tracked>,
    by_subscriber: HashMap<String, Vec<Watch>>,
    /// Check interval asked for by each store using this identity; the shortest wins.
    intervals: BTreeMap<String, Duration>,
}

pub struct VersionWatcher {
    source: Arc<AwsSource>,
    metrics: Metrics,
    state: Mutex<State>,
    moved: mpsc::UnboundedSender<Moved>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl VersionWatcher {
    pub fn new(
        source: Arc<AwsSource>,
        metrics: Metrics,
        moved: mpsc::UnboundedSender<Moved>,
    ) -> Self {
        VersionWatcher {
            source,
            metrics,
            state: Mutex::default(),
            moved,
        }
    }

    /// Sets the interval a store asks for.
    pub fn set_interval(&self, store: &str, interval: Duration) {
        lock(&self.state)
            .intervals
            .insert(store.to_string(), interval.max(Duration::from_millis(200)));
    }

    pub fn interval(&self) -> Duration {
        lock(&self.state)
            .intervals
            .values()
            .min()
            .copied()
            .unwrap_or(Duration::from_secs(60))
    }

    /// Replaces what `subscriber` uses, with the version it read of each (None: unknown). A
    /// subscriber that read an older version than the one already known is woken at once.
    pub fn track(&self, subscriber: &str, watches: Vec<(Watch, Option<String>)>) {
        let mut behind = vec![];
        {
            let mut st = lock(&self.state);
            forget(&mut st, subscriber);
            let mut mine = vec![];
            for (w, version) in watches {
                let t = st.tracked.entry(w.clone()).or_default();
                t.subscribers.insert(subscriber.to_string());
                match (&t.version, version) {
                    (None, v) => t.version = v,
                    (Some(known), Some(v)) if *known != v => behind.push(Moved {
                        watch: w.clone(),
                        from: Some(v),
                        to: known.clone(),
                        subscribers: vec![subscriber.to_string()],
                        detected: Instant::now(),
                    }),
                    _ => {}
                }
                mine.push(w);
            }
            st.by_subscriber.insert(subscriber.to_string(), mine);
        }
        for m in behind {
            let _ = self.moved.send(m);
        }
    }

    /// Stops tracking for `subscriber` (deleted ExternalSecret).
    pub fn untrack(&self, subscriber: &str) {
        forget(&mut lock(&self.state), subscriber);
    }

    /// The version of `watch` as last checked, if known: the version index.
    pub fn current(&self, watch: &Watch) -> Option<String> {
        lock(&self.state)
            .tracked
            .get(watch)
            .and_then(|t| t.version.clone())
    }

    pub fn subscribers(&self) -> Vec<String> {
        lock(&self.state).by_subscriber.keys().cloned().collect()
    }

    pub fn tracked_count(&self) -> usize {
        lock(&self.state).tracked.len()
    }

    /// One full check. Returns how many versions moved. Errors are logged and the check goes
    /// on with the other service: a throttled ListSecrets must not hide parameter moves.
    pub async fn check(&self) -> usize {
        let (secrets, parameters) = {
            let st = lock(&self.state);
            let mut s: Vec<Watch> = vec![];
            let mut p: Vec<Watch> = vec![];
            for w in st.tracked.keys() {
                match w.service {
                    Service::SecretsManager => s.push(w.clone()),
                    Service::ParameterStore => p.push(w.clone()),
                }
            }
            s.sort();
            p.sort();
            (s, p)
        };
        let mut moved = 0;
        if !secrets.is_empty() {
            moved += self.check_secrets(&secrets).await;
        }
        if !parameters.is_empty() {
            moved += self.check_parameters(&parameters).await;
        }
        moved
    }

    async fn check_secrets(&self, watches: &[Watch]) -> usize {
        let mut keys: Vec<String> = watches.iter().map(|w| w.key.clone()).collect();
        keys.dedup();
        // A filter by names costs one call however large the account is; it only works for
        // plain names (filters match name prefixes, not ARNs).
        let filter = keys.len() <= MAX_NAME_FILTERS && keys.iter().all(|k| !k.starts_with("arn:"));
        let listed = match self
            .source
            .list_secret_versions(filter.then_some(keys.as_slice()))
            .await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "rotation check: ListSecrets failed; retrying next check");
                return 0;
            }
        };
        let now = SystemTime::now();
        let mut moved = 0;
        for w in watches {
            let Some(entry) = listed.iter().find(|e| e.answers_to(&w.key)) else {
                continue;
            };
            if self.observe_secret(w, entry, now).await {
                moved += 1;
            }
        }
        moved
    }

    /// Compares one secret's stage with the known version; wakes subscribers when it moved.
    async fn observe_secret(&self, w: &Watch, entry: &SecretVersions, now: SystemTime) -> bool {
        let Selector::Stage(stage) = &w.selector else {
            return false;
        };
        let due = entry.rotation_enabled
            && entry.next_rotation.is_some_and(|at| {
                let until = at + DUE_WINDOW;
                let from = at.checked_sub(self.interval()).unwrap_or(at);
                now >= from && now <= until
            });
        {
            let mut st = lock(&self.state);
            if let Some(t) = st.tracked.get_mut(w) {
                t.due_until = due.then(|| Instant::now() + DUE_WINDOW);
            }
        }
        match entry.stages.get(stage) {
            Some(v) => self.observe(w, v).await,
            None => false,
        }
    }

    /// DescribeSecret for the secrets whose scheduled rotation is due (ListSecrets may lag).
    pub async fn check_due(&self) -> usize {
        let due: Vec<Watch> = {
            let now = Instant::now();
            lock(&self.state)
                .tracked
                .iter()
                .filter(|(_, t)| t.due_until.is_some_and(|u| u > now))
                .map(|(w, _)| w.clone())
                .collect()
        };
        let mut moved = 0;
        for w in due {
            match self.source.describe_secret_versions(&w.key).await {
                Ok(d) => {
                    let Selector::Stage(stage) = &w.selector else {
                        continue;
                    };
                    if let Some(v) = d.stages.get(stage) {
                        if self.observe(&w, v).await {
                            moved += 1;
                            if let Some(t) = lock(&self.state).tracked.get_mut(&w) {
                                t.due_until = None;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "rotation check: DescribeSecret failed"),
            }
        }
        moved
    }

    async fn check_parameters(&self, watches: &[Watch]) -> usize {
        let mut moved = 0;
        for batch in parameter_batches(watches) {
            let requests: Vec<String> = batch.iter().map(|w| w.parameter_request()).collect();
            match self.source.parameter_versions(&requests).await {
                Ok(versions) => {
                    for (w, r) in batch.iter().zip(&requests) {
                        if let Some(v) = versions.get(r) {
                            if self.observe(w, v).await {
                                moved += 1;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rotation check: GetParameters failed; retrying next check")
                }
            }
        }
        moved
    }

    /// Records `version` for `w`. A first sighting only sets the baseline; a change reads the new
    /// value once (by its exact version, so every subscriber shares it) and wakes subscribers.
    async fn observe(&self, w: &Watch, version: &str) -> bool {
        let (from, subscribers) = {
            let mut st = lock(&self.state);
            let Some(t) = st.tracked.get_mut(w) else {
                return false;
            };
            match &t.version {
                Some(v) if v == version => return false,
                None => {
                    t.version = Some(version.to_string());
                    return false;
                }
                Some(old) => {
                    let from = old.clone();
                    t.version = Some(version.to_string());
                    (from, t.subscribers.iter().cloned().collect::<Vec<_>>())
                }
            }
        };
        let detected = Instant::now();
        self.metrics
            .rotations_detected
            .get_or_create(&ServiceLabels {
                service: match w.service {
                    Service::SecretsManager => "SecretsManager",
                    Service::ParameterStore => "ParameterStore",
                },
            })
            .inc();
        tracing::info!(service = %w.service, key = %w.key, from = %from, to = %version, subscribers = subscribers.len(), "remote version moved");
        self.source.invalidate(&w.fetch());
        if let Err(e) = self.source.get(&w.pinned(version)).await {
            tracing::warn!(error = %e, "reading the new version failed; subscribers will retry");
        }
        let _ = self.moved.send(Moved {
            watch: w.clone(),
            from: Some(from),
            to: version.to_string(),
            subscribers,
            detected,
        });
        true
    }

    /// Checks every interval, and due rotations every few seconds, until the registry drops.
    async fn run(me: Weak<VersionWatcher>) {
        let mut next_full = Instant::now();
        loop {
            let Some(w) = me.upgrade() else { return };
            let interval = w.interval();
            if Instant::now() >= next_full {
                if w.tracked_count() > 0 {
                    w.check().await;
                }
                next_full = Instant::now() + interval;
            } else {
                w.check_due().await;
            }
            drop(w);
            let step = DUE_CHECK.min(interval);
            let until_full = next_full.saturating_duration_since(Instant::now());
            tokio::time::sleep(step.min(until_full).max(Duration::from_millis(50))).await;
        }
    }
}

fn forget(st: &mut State, subscriber: &str) {
    for w in st.by_subscriber.remove(subscriber).unwrap_or_default() {
        if let Some(t) = st.tracked.get_mut(&w) {
            t.subscribers.remove(subscriber);
            if t.subscribers.is_empty() {
                st.tracked.remove(&w);
            }
        }
    }
}

/// Batches of at most 10 parameter requests with no parameter twice in a batch (answers are
/// matched by name).
fn parameter_batches(watches: &[Watch]) -> Vec<Vec<Watch>> {
    let mut batches: Vec<Vec<Watch>> = vec![];
    for w in watches {
        let base = base_name(&w.parameter_request()).to_string();
        let slot = batches.iter_mut().find(|b| {
            b.len() < PARAMETERS_PER_CALL
                && b.iter().all(|o| base_name(&o.parameter_request()) != base)
        });
        match slot {
            Some(b) => b.push(w.clone()),
            None => batches.push(vec![w.clone()]),
        }
    }
    batches
}

/// The watchers of every identity, and the one channel their moves arrive on.
pub struct Watchers {
    sources: Sources,
    metrics: Metrics,
    map: Mutex<HashMap<[u8; 32], Arc<VersionWatcher>>>,
    tx: mpsc::UnboundedSender<Moved>,
}

impl Watchers {
    pub fn new(sources: Sources, metrics: Metrics) -> (Watchers, mpsc::UnboundedReceiver<Moved>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Watchers {
                sources,
                metrics,
                map: Mutex::default(),
                tx,
            },
            rx,
        )
    }

    /// The watcher of `identity`, started on first use.
    pub fn watcher(&self, identity: &Identity) -> Arc<VersionWatcher> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(identity.fingerprint())
            .or_insert_with(|| {
                let w = Arc::new(VersionWatcher::new(
                    self.sources.source(identity),
                    self.metrics.clone(),
                    self.tx.clone(),
                ));
                tokio::spawn(VersionWatcher::run(Arc::downgrade(&w)));
                w
            })
            .clone()
    }

    /// Stops tracking `subscriber` on every identity but `identity` (its store changed).
    pub fn untrack_elsewhere(&self, subscriber: &str, identity: &Identity) {
        let keep = identity.fingerprint();
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for (fp, w) in map.iter() {
            if *fp != keep {
                w.untrack(subscriber);
            }
        }
    }

    /// Every subscriber of every identity.
    pub fn subscribers(&self) -> BTreeSet<String> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.values().flat_map(|w| w.subscribers()).collect()
    }

    /// Stops tracking `subscriber` on every identity.
    pub fn untrack(&self, subscriber: &str) {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for w in map.values() {
            w.untrack(subscriber);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(key: &str, selector: Selector) -> Watch {
        Watch {
            service: Service::ParameterStore,
            key: key.into(),
            selector,
        }
    }

    #[test]
    fn parameter_batches_hold_ten_and_never_the_same_parameter_twice() {
        let mut ws: Vec<Watch> = (0..25)
            .map(|i| param(&format!("/p/{i}"), Selector::Latest))
            .collect();
        ws.push(param("/p/0", Selector::ParameterVersion("stable".into())));
        let batches = parameter_batches(&ws);
        assert_eq!(batches.len(), 3);
        assert!(batches.iter().all(|b| b.len() <= 10));
        for b in &batches {
            let mut names: Vec<&str> = b.iter().map(|w| w.key.as_str()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), b.len());
        }
    }
}
