//! The one place the ExternalSecret pipeline meets the version watcher: subscribing to the
//! remote values an ExternalSecret uses, the inbox of version moves per ExternalSecret, the
//! versions to pin a rotation read at, and letting go of what is no longer used.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use kube::runtime::reflector::Store;
use kube::ResourceExt;
use tokio::sync::mpsc::UnboundedReceiver;

use super::fetch::fetch_of;
use crate::api::{parse_duration, RemoteRef, RotatedSource, Service};
use crate::controller::cached_external_secret::{CachedExternalSecret, EsRef};
use crate::controller::store::ResolvedStore;
use crate::controller::{Options, SyncError};
use crate::metrics::Metrics;
use crate::source::events::Health;
use crate::source::{key, Fetch, Moved, Poller, Selector, Sources, Subscriber, Tracker, Watchers};
use crate::sync::{Read, ReadFrom, Reads, ValidSpec};

/// The version watchers of every identity, and the moves they reported, per ExternalSecret.
pub struct VersionWatch {
    watchers: Watchers,
    moved: tokio::sync::Mutex<UnboundedReceiver<Moved>>,
    /// Per ExternalSecret: version moves not yet applied.
    inbox: Mutex<HashMap<Subscriber, Vec<Moved>>>,
}

/// One ExternalSecret's subscription with the watcher of its store's identity.
pub(super) struct Subscription {
    watcher: Arc<Poller>,
    subscriber: Subscriber,
}

/// The versions a rotation read is pinned at (none for any other read).
pub(super) struct Pins<'a>(Option<&'a Tracker>);

impl VersionWatch {
    pub fn new(sources: Sources, metrics: Metrics) -> VersionWatch {
        let (watchers, moved) = Watchers::new(sources, metrics);
        VersionWatch {
            watchers,
            moved: tokio::sync::Mutex::new(moved),
            inbox: Mutex::default(),
        }
    }

    /// Subscribes `spec`'s ExternalSecret to the watcher of `store`'s identity (only that one)
    /// and sets the store's check interval (`default` when the store sets none).
    pub(super) fn subscribe(
        &self,
        spec: &ValidSpec<'_>,
        store: &ResolvedStore,
        options: &Options,
    ) -> Result<Subscription, SyncError> {
        let default = options.rotation_check_interval;
        let watcher = self.watchers.watcher(&store.identity);
        self.events(store, options)?;
        let interval = match &store.rotation_check_interval {
            Some(text) => parse_duration(text).map_err(|e| {
                SyncError::InvalidSpec(format!(
                    "{}: spec.arnsync.rotationCheckInterval: {e}",
                    store.display
                ))
            })?,
            None => default,
        };
        watcher.set_interval(&store.display, interval);
        let subscriber = subscriber_of(spec.es);
        self.watchers
            .untrack_elsewhere(&subscriber, &store.identity);
        Ok(Subscription {
            watcher,
            subscriber,
        })
    }

    /// The health of `store`'s event queue, its consumer started on first use; `None` without
    /// a queue.
    pub fn events(
        &self,
        store: &ResolvedStore,
        options: &Options,
    ) -> Result<Option<tokio::sync::watch::Receiver<Health>>, SyncError> {
        let Some(queue) = &store.event_queue else {
            return Ok(None);
        };
        self.watchers
            .events(&store.identity, queue, options.event_safety_interval)
            .map(Some)
            .map_err(|e| SyncError::InvalidSpec(format!("{}: spec.arnsync.{e}", store.display)))
    }

    /// The version moves waiting for `sub`, oldest first. They stay pending until
    /// [`VersionWatch::settle`]: a read that fails must not forget a rotation.
    pub(super) fn pending(&self, sub: &Subscription) -> Vec<Moved> {
        let inbox = self.inbox.lock().expect("inbox lock");
        inbox.get(&sub.subscriber).cloned().unwrap_or_default()
    }

    /// Drops the `applied` oldest pending moves of `sub` once a sync has written them; moves
    /// that arrived during that sync stay pending.
    pub(super) fn settle(&self, sub: &Subscription, applied: usize) {
        let mut inbox = self.inbox.lock().expect("inbox lock");
        if let Some(pending) = inbox.get_mut(&sub.subscriber) {
            pending.drain(..applied.min(pending.len()));
            if pending.is_empty() {
                inbox.remove(&sub.subscriber);
            }
        }
    }

    /// Files every version move in the inbox of its subscribers and wakes them, at once.
    pub(super) async fn deliver(&self, wake: futures::channel::mpsc::UnboundedSender<EsRef>) {
        let mut moved = self.moved.lock().await;
        while let Some(m) = moved.recv().await {
            for sub in &m.subscribers {
                let mut inbox = self.inbox.lock().expect("inbox lock");
                inbox.entry(sub.clone()).or_default().push(m.clone());
                drop(inbox);
                let _ = wake.unbounded_send(EsRef::new(sub.name()).within(sub.namespace()));
            }
        }
    }

    /// Drops the watchers (and sources) of identities not in `in_use`.
    pub(super) fn retain(&self, in_use: &[crate::source::Identity]) {
        let dropped = self.watchers.retain(in_use);
        if dropped > 0 {
            tracing::info!(
                dropped,
                "freed the sources of AWS identities no longer used"
            );
        }
    }

    /// Stops watching versions for ExternalSecrets that are no longer in `cache`.
    pub(super) fn untrack_missing(&self, cache: &Store<CachedExternalSecret>) {
        let present: BTreeSet<Subscriber> = cache
            .state()
            .iter()
            .map(|es| subscriber_of(es.as_ref()))
            .collect();
        for gone in self.watchers.subscribers().difference(&present) {
            self.watchers.untrack(gone);
        }
    }
}

impl Subscription {
    /// Tracks what `reads` read, at the version each value had.
    pub(super) fn track_reads(&self, reads: &Reads<'_>) {
        let mut out = vec![];
        for (d, read) in &reads.data {
            push_read(&mut out, &d.remote_ref, read);
        }
        for r in &reads.data_from {
            match r {
                ReadFrom::Extract { remote, read, .. } => push_read(&mut out, remote, read),
                ReadFrom::Find { values, .. } => out.extend(
                    values
                        .iter()
                        .map(|v| (found(v.service, &v.name), Some(v.version.clone()))),
                ),
            }
        }
        self.watcher.tracker().track(&self.subscriber, out);
    }

    /// Tracks what the spec uses when no read happened, at the versions of the status's last
    /// read, so that a rotation while the operator was down is still noticed.
    pub(super) fn track_from_status(&self, spec: &ValidSpec<'_>) {
        let sources = spec
            .es
            .status
            .as_ref()
            .map(|s| s.sources.as_slice())
            .unwrap_or_default();
        let version_of = |w: &Fetch| {
            sources
                .iter()
                .find(|s| s.service == w.service && key::refers_to(&w.key, &s.key, None))
                .and_then(|s| s.version_id.clone().or_else(|| s.version.clone()))
        };
        let mut out: Vec<(Fetch, Option<String>)> = spec
            .remote_refs()
            .filter_map(watch_of)
            .map(|w| {
                let v = version_of(&w);
                (w, v)
            })
            .collect();
        // Values found by dataFrom.find are watched by name.
        let named: BTreeSet<String> = out.iter().map(|(w, _)| w.key.clone()).collect();
        if spec.finds() {
            for s in sources.iter().filter(|s| !named.contains(&s.key)) {
                let version = s.version_id.clone().or_else(|| s.version.clone());
                out.push((found(s.service, &s.key), version));
            }
        }
        self.watcher.tracker().track(&self.subscriber, out);
    }

    /// The watcher's versions when `pinned`, else none.
    pub(super) fn pins(&self, pinned: bool) -> Pins<'_> {
        Pins(pinned.then_some(self.watcher.tracker()))
    }
}

impl Pins<'_> {
    /// The read of `r`: at the watcher's version when pinned and `r` can move.
    pub(super) fn fetch(&self, r: &RemoteRef) -> Fetch {
        if let (Some(w), Some(watch)) = (self.0, watch_of(r)) {
            if let Some(pinned) = w.current(&watch).and_then(|v| watch.pinned(&v)) {
                return pinned;
            }
        }
        fetch_of(r)
    }
}

/// The rotations a sync that changed the Secret applied, for the status; records how long each
/// took from detection, and from its move in AWS, to the Secret.
pub(super) fn applied(pending: &[Moved], metrics: &Metrics) -> Vec<RotatedSource> {
    pending
        .iter()
        .map(|m| {
            metrics
                .rotation_to_secret_seconds
                .observe(m.detected.elapsed().as_secs_f64());
            if let Some(lag) = m.announced.and_then(|t| t.elapsed().ok()) {
                metrics.event_to_secret_seconds.observe(lag.as_secs_f64());
            }
            if let Some(at) = rotated_at(m) {
                metrics.rotation_lag(SECRET_WRITTEN, at);
            }
            RotatedSource {
                service: m.watch.service,
                key: m.watch.key.clone(),
                from: m.from.clone(),
                to: m.to.clone(),
            }
        })
        .collect()
}

/// `arnsync_rotation_lag_seconds{stage}` of a Secret written with rotated values.
pub(super) const SECRET_WRITTEN: &str = "secret_written";

/// When the version `m` applies moved in AWS; `None` when `m` is no rotation (a wake-up after
/// a deletion or restore, a subscriber found behind) or its time is not known.
fn rotated_at(m: &Moved) -> Option<std::time::SystemTime> {
    (m.from.as_deref() != Some(m.to.as_str()))
        .then_some(m.moved_at)
        .flatten()
}

/// The earliest move in AWS among the rotations of `pending`: what a restart of a workload
/// using the Secret they were written to is measured from.
pub(super) fn earliest_move(pending: &[Moved]) -> Option<std::time::SystemTime> {
    pending.iter().filter_map(rotated_at).min()
}

fn subscriber_of(es: &impl ResourceExt) -> Subscriber {
    Subscriber::new(&es.namespace().unwrap_or_default(), &es.name_any())
}

fn push_read(out: &mut Vec<(Fetch, Option<String>)>, r: &RemoteRef, read: &Read) {
    if let Some(w) = watch_of(r) {
        let version = match read {
            Read::Value(v) => Some(v.version.clone()),
            Read::Gone(_) => None,
        };
        out.push((w, version));
    }
}

/// The watch of a remote reference when its selector can move (stages, latest, labels).
fn watch_of(r: &RemoteRef) -> Option<Fetch> {
    let fetch = fetch_of(r);
    (!fetch.selector.is_immutable()).then_some(fetch)
}

/// The watch of a value a find returned: its current version, by name.
fn found(service: Service, key: &str) -> Fetch {
    let selector = match service {
        Service::SecretsManager => Selector::Stage("AWSCURRENT".into()),
        Service::ParameterStore => Selector::Latest,
    };
    Fetch {
        service,
        key: key.to_string(),
        selector,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant, SystemTime};

    fn moved(from: &str, to: &str, at: Option<u64>) -> Moved {
        Moved {
            watch: Fetch::secret("db", Selector::Stage("AWSCURRENT".into())),
            from: Some(from.into()),
            to: to.into(),
            subscribers: vec![],
            detected: Instant::now(),
            announced: None,
            from_confirmed: None,
            moved_at: at.map(|s| SystemTime::now() - Duration::from_secs(s)),
        }
    }

    fn lag(metrics: &Metrics) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("lag", "", metrics.rotation_lag_seconds.clone());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn only_rotations_with_a_known_move_count_in_the_rotation_lag() {
        let pending = [
            moved("v1", "v2", Some(30)),
            moved("v2", "v3", Some(10)),
            // A wake-up after a deletion or restore: no rotation.
            moved("v3", "v3", Some(100)),
            // A subscriber found behind: no time.
            moved("v0", "v3", None),
        ];
        let metrics = Metrics::default();
        assert_eq!(applied(&pending, &metrics).len(), 4);
        let text = lag(&metrics);
        assert!(
            text.contains("lag_count{stage=\"secret_written\"} 2"),
            "{text}"
        );
        let sum: f64 = text
            .lines()
            .find(|l| l.starts_with("lag_sum{stage=\"secret_written\"}"))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap();
        assert!((40.0..45.0).contains(&sum), "{sum}");
        let earliest = earliest_move(&pending).unwrap();
        assert!(earliest.elapsed().unwrap() >= Duration::from_secs(30));
        assert!(earliest.elapsed().unwrap() < Duration::from_secs(40));
    }

    #[test]
    fn a_move_dated_in_the_future_counts_as_no_lag() {
        let metrics = Metrics::default();
        let mut m = moved("v1", "v2", None);
        m.moved_at = Some(SystemTime::now() + Duration::from_secs(60));
        applied(&[m], &metrics);
        let text = lag(&metrics);
        assert!(
            text.contains("lag_sum{stage=\"secret_written\"} 0.0"),
            "{text}"
        );
        assert!(
            text.contains("lag_bucket{le=\"0.5\",stage=\"secret_written\"} 1"),
            "{text}"
        );
    }
}
