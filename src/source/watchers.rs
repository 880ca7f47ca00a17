//! The version watchers of every store identity (a [`Tracker`] fed by a [`Poller`] each), and
//! the one channel their moves arrive on.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::event_queues::{self, Running};
use super::events::{Health, QueueError};
use super::{Identity, Moved, Poller, Sources, Subscriber, Tracker};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
use crate::metrics::Metrics;

pub struct Watchers {
    sources: Sources,
    metrics: Metrics,
    map: Mutex<HashMap<[u8; 32], Arc<Poller>>>,
    /// Event consumers by (identity, queue).
    queues: Mutex<HashMap<([u8; 32], String), Running>>,
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
                queues: Mutex::default(),
                tx,
            },
            rx,
        )
    }

    fn map(&self) -> MutexGuard<'_, HashMap<[u8; 32], Arc<Poller>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The watcher of `identity`, started on first use. Its poller runs until it is dropped
    /// here ([`Watchers::retain`]).
    pub fn watcher(&self, identity: &Identity) -> Arc<Poller> {
        self.map()
            .entry(identity.fingerprint())
            .or_insert_with(|| {
                let tracker = Arc::new(Tracker::new(self.metrics.clone(), self.tx.clone()));
                let source = self.sources.source(identity);
                source.follow(&tracker);
                let p = Arc::new(Poller::new(source, tracker));
                tokio::spawn(Poller::run(Arc::downgrade(&p)));
                p
            })
            .clone()
    }

    /// The health of the consumer of `queue` for `identity`, started on first use: from then
    /// on its events feed the identity's watcher, which polls only every `safety` while the
    /// consumer is healthy.
    pub fn events(
        &self,
        identity: &Identity,
        queue: &str,
        safety: Duration,
    ) -> Result<watch::Receiver<Health>, QueueError> {
        let key = (identity.fingerprint(), queue.to_string());
        if let Some(r) = lock(&self.queues).get(&key) {
            return Ok(r.health.clone());
        }
        let poller = self.watcher(identity);
        let source = self.sources.source(identity);
        let running =
            event_queues::start(identity, queue, &source, &poller, safety, &self.metrics)?;
        let health = running.health.clone();
        lock(&self.queues).insert(key, running);
        Ok(health)
    }

    /// Stops the consumers of queues no store of `identity` names any more.
    pub fn retain_queues(&self, identity: &Identity, queues: &[String]) {
        let fp = identity.fingerprint();
        lock(&self.queues).retain(|(f, q), _| *f != fp || queues.contains(q));
    }

    /// Drops the watchers and the sources of every identity not in `in_use`: nothing reads
    /// through them any more. Returns how many watchers were dropped.
    pub fn retain(&self, in_use: &[Identity]) -> usize {
        let keep: HashSet<[u8; 32]> = in_use.iter().map(Identity::fingerprint).collect();
        let dropped = {
            let mut map = self.map();
            let before = map.len();
            map.retain(|fingerprint, _| keep.contains(fingerprint));
            before - map.len()
        };
        lock(&self.queues).retain(|(fingerprint, _), _| keep.contains(fingerprint));
        self.sources.retain(in_use);
        dropped
    }

    /// How many identities have a watcher.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// Stops tracking `subscriber` on every identity but `identity` (its store changed).
    pub fn untrack_elsewhere(&self, subscriber: &Subscriber, identity: &Identity) {
        let keep = identity.fingerprint();
        for (fp, p) in self.map().iter() {
            if *fp != keep {
                p.tracker().untrack(subscriber);
            }
        }
    }

    /// Every subscriber of every identity.
    pub fn subscribers(&self) -> BTreeSet<Subscriber> {
        self.map()
            .values()
            .flat_map(|p| p.tracker().subscribers())
            .collect()
    }

    /// Stops tracking `subscriber` on every identity.
    pub fn untrack(&self, subscriber: &Subscriber) {
        for p in self.map().values() {
            p.tracker().untrack(subscriber);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceOptions;

    fn identity(region: &str) -> Identity {
        Identity {
            region: region.into(),
            failover_regions: vec![],
            endpoints: Default::default(),
            static_keys: None,
            web_identity: None,
            roles: vec![],
            retry: None,
        }
    }

    #[tokio::test]
    async fn watchers_and_sources_of_unused_identities_are_dropped() {
        let metrics = Metrics::default();
        let sources = Sources::new(metrics.clone(), SourceOptions::default());
        let (watchers, _rx) = Watchers::new(sources.clone(), metrics.clone());
        let (a, b) = (identity("eu-west-1"), identity("us-east-1"));
        let first = watchers.watcher(&a);
        watchers.watcher(&b);
        assert!(Arc::ptr_eq(&first, &watchers.watcher(&a)));
        assert_eq!(
            (watchers.len(), sources.len(), metrics.sources.get()),
            (2, 2, 2)
        );

        assert_eq!(watchers.retain(std::slice::from_ref(&b)), 1);
        assert_eq!(
            (watchers.len(), sources.len(), metrics.sources.get()),
            (1, 1, 1)
        );
        assert!(!Arc::ptr_eq(&first, &watchers.watcher(&a)), "a new watcher");

        assert_eq!(watchers.retain(&[]), 2);
        assert!(watchers.is_empty() && sources.is_empty());
        assert_eq!(metrics.sources.get(), 0);
    }
}
