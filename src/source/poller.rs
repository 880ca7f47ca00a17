//! The poller of one store identity: feeds its [`Tracker`] by asking a [`VersionSource`], with
//! the cheapest calls, whether a tracked version moved (a rotation, a new parameter version).
//! When one moved it reads the new value once, by its exact version, then wakes subscribers.
//!
//! Cost of one check with nothing moving: ceil(K/100) ListSecrets for K tracked secrets (one
//! filtered call when K ≤ 10), ceil(P/10) GetParameters for P tracked parameters, DescribeSecret
//! only for secrets whose scheduled rotation is due, and no value reads. The number of
//! subscribers sharing a key never changes it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use super::events::{Change, ChangeKind, Health, Outcome};
use super::key::base_name;
use super::versions::{SecretVersions, VersionSource, MAX_NAME_FILTERS, PARAMETERS_PER_CALL};
use super::{moved_at, ErrorKind, Fetch, Selector, Service, Tracker};

/// How long after a scheduled rotation date DescribeSecret keeps being asked.
const DUE_WINDOW: Duration = Duration::from_secs(600);
/// How often a due rotation is checked with DescribeSecret.
const DUE_CHECK: Duration = Duration::from_secs(5);

pub struct Poller {
    source: Arc<dyn VersionSource>,
    tracker: Arc<Tracker>,
    /// With an event queue: its health, and the long interval polling keeps while it is
    /// healthy (events bring the moves; polling is the safety net).
    events: Mutex<Option<(tokio::sync::watch::Receiver<Health>, Duration)>>,
    /// Check interval asked for by each store using this identity; the shortest wins.
    intervals: Mutex<BTreeMap<String, Duration>>,
    /// Secrets to check with DescribeSecret until then: a scheduled rotation is due.
    due: Mutex<HashMap<Fetch, Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Poller {
    pub fn new(source: Arc<dyn VersionSource>, tracker: Arc<Tracker>) -> Poller {
        Poller {
            source,
            tracker,
            events: Mutex::default(),
            intervals: Mutex::default(),
            due: Mutex::default(),
        }
    }

    /// An event queue feeds this identity: while its consumer is healthy, full checks run
    /// every `safety` only.
    pub fn set_events(&self, health: tokio::sync::watch::Receiver<Health>, safety: Duration) {
        *lock(&self.events) = Some((health, safety));
    }

    /// True while an event queue feeds this identity and its consumer is healthy.
    pub fn events_healthy(&self) -> bool {
        lock(&self.events)
            .as_ref()
            .is_some_and(|(h, _)| *h.borrow() == Health::Healthy)
    }

    /// What this poller feeds.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Sets the interval a store asks for.
    pub fn set_interval(&self, store: &str, interval: Duration) {
        lock(&self.intervals).insert(store.to_string(), interval.max(Duration::from_millis(200)));
    }

    pub fn interval(&self) -> Duration {
        let asked = lock(&self.intervals)
            .values()
            .min()
            .copied()
            .unwrap_or(Duration::from_secs(60));
        match &*lock(&self.events) {
            Some((health, safety)) if *health.borrow() == Health::Healthy => asked.max(*safety),
            _ => asked,
        }
    }

    /// One full check. Returns how many versions moved. Errors are logged and the check goes
    /// on with the other service: a throttled ListSecrets must not hide parameter moves.
    pub async fn check(&self) -> usize {
        let (secrets, parameters): (Vec<Fetch>, Vec<Fetch>) = self
            .tracker
            .watches()
            .into_iter()
            .partition(|w| w.service == Service::SecretsManager);
        lock(&self.due).retain(|w, _| self.tracker.is_tracked(w));
        let mut moved = 0;
        if !secrets.is_empty() {
            moved += self.check_secrets(&secrets).await;
        }
        if !parameters.is_empty() {
            moved += self.check_parameters(&parameters).await;
        }
        moved
    }

    async fn check_secrets(&self, watches: &[Fetch]) -> usize {
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
    async fn observe_secret(&self, w: &Fetch, entry: &SecretVersions, now: SystemTime) -> bool {
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
            let mut due_until = lock(&self.due);
            match due {
                true => due_until.insert(w.clone(), Instant::now() + DUE_WINDOW),
                false => due_until.remove(w),
            };
        }
        match entry.stages.get(stage) {
            Some(v) => self.found(w, v).await,
            None => false,
        }
    }

    /// DescribeSecret for the secrets whose scheduled rotation is due (ListSecrets may lag).
    pub async fn check_due(&self) -> usize {
        let due: Vec<Fetch> = {
            let now = Instant::now();
            lock(&self.due)
                .iter()
                .filter(|(w, until)| **until > now && self.tracker.is_tracked(w))
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
                        if self.found(&w, v).await {
                            moved += 1;
                            lock(&self.due).remove(&w);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "rotation check: DescribeSecret failed"),
            }
        }
        moved
    }

    async fn check_parameters(&self, watches: &[Fetch]) -> usize {
        let mut moved = 0;
        for batch in parameter_batches(watches) {
            let requests: Vec<String> = batch.iter().map(parameter_request).collect();
            match self.source.parameter_versions(&requests).await {
                Ok(versions) => {
                    for (w, r) in batch.iter().zip(&requests) {
                        if let Some(v) = versions.get(r) {
                            if self.found(w, v).await {
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

    /// Reports `version` of `w` to the tracker. A move reads the new value once (by its exact
    /// version, so every subscriber shares it) before the subscribers wake.
    async fn found(&self, w: &Fetch, version: &str) -> bool {
        self.found_at(w, version, None).await
    }

    /// [`Poller::found`], with when AWS says the change happened (an event's time).
    async fn found_at(&self, w: &Fetch, version: &str, announced: Option<SystemTime>) -> bool {
        let Some(mut moved) = self.tracker.record(w, version) else {
            return false;
        };
        moved.announced = announced;
        self.source.invalidate(w);
        let mut created = None;
        if let Some(exact) = w.pinned(version) {
            match self.source.get(&exact).await {
                Ok(v) => created = v.created,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the new version failed; subscribers will retry")
                }
            }
        }
        moved.moved_at = moved_at(announced, created, moved.from_confirmed);
        self.tracker.wake(moved);
        true
    }

    /// Checks every interval, and due rotations every few seconds, until the registry drops.
    /// The interval is read again on every turn, and nothing counts as checked before something
    /// is tracked, so a store's interval set just after the poller started applies at once.
    pub(super) async fn run(me: Weak<Poller>) {
        let mut last_full: Option<Instant> = None;
        let mut was_healthy = false;
        loop {
            let Some(p) = me.upgrade() else { return };
            // Events may have been missed while the queue was not read: a full check when its
            // consumer becomes healthy (on start, and after an error streak).
            let healthy = p.events_healthy();
            if healthy && !was_healthy {
                last_full = None;
            }
            was_healthy = healthy;
            let interval = p.interval();
            let due = last_full.is_none_or(|t| t.elapsed() >= interval);
            if !due {
                p.check_due().await;
            } else if p.tracker.tracked_count() > 0 {
                tracing::debug!(
                    interval_ms = interval.as_millis() as u64,
                    events = p.events_healthy(),
                    "full version check"
                );
                p.check().await;
                last_full = Some(Instant::now());
            } else {
                // Nothing to check: the first value tracked is checked within one short step.
                last_full = None;
            }
            drop(p);
            let until_full = last_full.map_or(Duration::from_millis(200), |t| {
                interval.saturating_sub(t.elapsed())
            });
            let step = DUE_CHECK.min(interval).min(until_full);
            tokio::time::sleep(step.max(Duration::from_millis(50))).await;
        }
    }
}

impl Poller {
    /// Applies one announced change to the tracked values it names (`region`: the identity's):
    /// confirms it with a strongly consistent read (DescribeSecret, GetParameters), wakes the
    /// subscribers of what moved, and, for a deletion or restore, wakes them to find out.
    pub async fn apply_change(&self, change: &Change, region: &str) -> Outcome {
        let watches: Vec<Fetch> = self
            .tracker
            .watches()
            .into_iter()
            .filter(|w| change.key.names(w, region, None))
            .collect();
        if watches.is_empty() {
            return Outcome::Unwatched;
        }
        let touched = matches!(change.kind, ChangeKind::Deleted | ChangeKind::Restored);
        let confirmed = match change.key.service {
            Service::SecretsManager => self.confirm_secret(&watches, change.time).await,
            Service::ParameterStore => self.confirm_parameters(&watches, change.time).await,
        };
        match confirmed {
            Ok(moved) => {
                if touched && moved == 0 {
                    for w in &watches {
                        if let Some(m) = self.tracker.touch(w) {
                            // The subscribers read at the known version: forget it too, so
                            // that they ask AWS and find out.
                            self.source.invalidate(w);
                            if let Some(exact) = w.pinned(&m.to) {
                                self.source.invalidate(&exact);
                            }
                            self.tracker.wake(m);
                        }
                    }
                }
                Outcome::Applied
            }
            Err(()) => Outcome::Failed,
        }
    }

    /// DescribeSecret once for the watches of one secret. A secret that is gone wakes its
    /// subscribers (their reads apply the deletion policy).
    async fn confirm_secret(
        &self,
        watches: &[Fetch],
        announced: Option<SystemTime>,
    ) -> Result<usize, ()> {
        match self.source.describe_secret_versions(&watches[0].key).await {
            Ok(d) => {
                let mut moved = 0;
                for w in watches {
                    if let Selector::Stage(stage) = &w.selector {
                        if let Some(v) = d.stages.get(stage) {
                            if self.found_at(w, v, announced).await {
                                moved += 1;
                            }
                        }
                    }
                }
                Ok(moved)
            }
            Err(e) if e.kind == ErrorKind::NotFound => Ok(0),
            Err(e) => {
                tracing::warn!(error = %e, "event: DescribeSecret failed; the message stays queued");
                Err(())
            }
        }
    }

    /// GetParameters for the watches of one parameter (each label and the latest).
    async fn confirm_parameters(
        &self,
        watches: &[Fetch],
        announced: Option<SystemTime>,
    ) -> Result<usize, ()> {
        let mut moved = 0;
        for batch in parameter_batches(watches) {
            let requests: Vec<String> = batch.iter().map(parameter_request).collect();
            match self.source.parameter_versions(&requests).await {
                Ok(versions) => {
                    for (w, r) in batch.iter().zip(&requests) {
                        if let Some(v) = versions.get(r) {
                            if self.found_at(w, v, announced).await {
                                moved += 1;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event: GetParameters failed; the message stays queued");
                    return Err(());
                }
            }
        }
        Ok(moved)
    }
}

/// GetParameters request name: `name` or `name:label`.
fn parameter_request(w: &Fetch) -> String {
    match &w.selector {
        Selector::ParameterVersion(label) => format!("{}:{label}", w.key),
        _ => w.key.clone(),
    }
}

/// Batches of at most 10 parameter requests with no parameter twice in a batch (answers are
/// matched by name).
fn parameter_batches(watches: &[Fetch]) -> Vec<Vec<Fetch>> {
    let mut batches: Vec<Vec<Fetch>> = vec![];
    for w in watches {
        let request = parameter_request(w);
        let base = base_name(&request);
        let slot = batches.iter_mut().find(|b| {
            b.len() < PARAMETERS_PER_CALL
                && b.iter().all(|o| base_name(&parameter_request(o)) != base)
        });
        match slot {
            Some(b) => b.push(w.clone()),
            None => batches.push(vec![w.clone()]),
        }
    }
    batches
}

#[cfg(test)]
mod tests;
