//! The version tracker of one store identity: which remote values are watched, by whom, and the
//! version last seen of each. Whatever learns of a version (the [`super::Poller`] today, an
//! event listener later) reports it with [`Tracker::observe`]; a move wakes exactly the
//! subscribers of that value, however many share it.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use super::{Fetch, Service};
use crate::metrics::{Metrics, ServiceLabels};

/// Who uses a tracked value: a namespaced object (an ExternalSecret). Shared: the tracker keeps
/// a subscriber once per value it uses, and each copy is a pointer to one allocation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subscriber(Arc<Named>);

#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Named {
    namespace: Box<str>,
    name: Box<str>,
}

impl Subscriber {
    pub fn new(namespace: &str, name: &str) -> Subscriber {
        Subscriber(Arc::new(Named {
            namespace: namespace.into(),
            name: name.into(),
        }))
    }

    pub fn namespace(&self) -> &str {
        &self.0.namespace
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }
}

impl fmt::Display for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.namespace, self.0.name)
    }
}

/// A version that moved, and who uses it.
#[derive(Clone, Debug)]
pub struct Moved {
    /// The watched read (a mutable selector: a stage, the latest parameter, a label).
    pub watch: Fetch,
    pub from: Option<String>,
    pub to: String,
    pub subscribers: Vec<Subscriber>,
    pub detected: Instant,
    /// When AWS says the change happened (an event's `time`), for the rotation lag.
    pub announced: Option<SystemTime>,
    /// When a version check or an event last confirmed `from`: the move came after it.
    pub from_confirmed: Option<SystemTime>,
    /// When the version moved in AWS, as well as it is known (see [`moved_at`]); `None` for a
    /// wake-up that is no rotation.
    pub moved_at: Option<SystemTime>,
}

/// When a version moved in AWS, from what is known without another call: the event's time
/// when an event brought the move; else the new version's CreatedDate (or the parameter's
/// LastModifiedDate), but never before the old version was last confirmed (a stage moved to
/// a version made long before); else that confirmation.
pub fn moved_at(
    announced: Option<SystemTime>,
    created: Option<SystemTime>,
    from_confirmed: Option<SystemTime>,
) -> Option<SystemTime> {
    announced.or(match (created, from_confirmed) {
        (Some(c), Some(f)) => Some(c.max(f)),
        (c, f) => c.or(f),
    })
}

/// The wall-clock time of `at` (an instant in the past).
fn wall_clock(at: Instant) -> SystemTime {
    SystemTime::now()
        .checked_sub(at.elapsed())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[derive(Default)]
struct Tracked {
    version: Option<String>,
    /// When a version check or an event last reported `version` (reads do not count: they may
    /// come from a cache).
    seen: Option<Instant>,
    subscribers: BTreeSet<Subscriber>,
}

#[derive(Default)]
struct State {
    tracked: HashMap<Fetch, Tracked>,
    by_subscriber: HashMap<Subscriber, Vec<Fetch>>,
}

pub struct Tracker {
    metrics: Metrics,
    state: Mutex<State>,
    moved: mpsc::UnboundedSender<Moved>,
}

impl Tracker {
    /// Moves are sent on `moved`.
    pub fn new(metrics: Metrics, moved: mpsc::UnboundedSender<Moved>) -> Tracker {
        Tracker {
            metrics,
            state: Mutex::default(),
            moved,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces what `subscriber` uses, with the version it read of each (None: unknown). A
    /// subscriber that read another version than the one already known is woken at once.
    pub fn track(&self, subscriber: &Subscriber, watches: Vec<(Fetch, Option<String>)>) {
        let mut behind = vec![];
        {
            let mut st = self.state();
            forget(&mut st, subscriber);
            let mut mine = Vec::with_capacity(watches.len());
            for (w, version) in watches {
                let t = st.tracked.entry(w.clone()).or_default();
                t.subscribers.insert(subscriber.clone());
                match (&t.version, version) {
                    (None, v) => t.version = v,
                    (Some(known), Some(v)) if *known != v => behind.push(Moved {
                        watch: w.clone(),
                        from: Some(v),
                        to: known.clone(),
                        subscribers: vec![subscriber.clone()],
                        detected: Instant::now(),
                        announced: None,
                        from_confirmed: None,
                        moved_at: None,
                    }),
                    _ => {}
                }
                mine.push(w);
            }
            st.by_subscriber.insert(subscriber.clone(), mine);
        }
        for m in behind {
            self.wake(m);
        }
    }

    /// Stops tracking for `subscriber` (deleted ExternalSecret, or one that changed store).
    pub fn untrack(&self, subscriber: &Subscriber) {
        forget(&mut self.state(), subscriber);
    }

    /// The version of `watch` as last seen, if known.
    pub fn current(&self, watch: &Fetch) -> Option<String> {
        self.state()
            .tracked
            .get(watch)
            .and_then(|t| t.version.clone())
    }

    /// The version of `watch` as last seen, and when a check or an event last reported it.
    pub fn confirmed(&self, watch: &Fetch) -> Option<(String, Option<Instant>)> {
        let st = self.state();
        let t = st.tracked.get(watch)?;
        Some((t.version.clone()?, t.seen))
    }

    pub fn is_tracked(&self, watch: &Fetch) -> bool {
        self.state().tracked.contains_key(watch)
    }

    /// Every tracked value, sorted.
    pub fn watches(&self) -> Vec<Fetch> {
        let mut all: Vec<Fetch> = self.state().tracked.keys().cloned().collect();
        all.sort();
        all
    }

    pub fn subscribers(&self) -> Vec<Subscriber> {
        self.state().by_subscriber.keys().cloned().collect()
    }

    pub fn tracked_count(&self) -> usize {
        self.state().tracked.len()
    }

    /// Records that `watch` is at `version` and wakes its subscribers when that is a move.
    /// Returns whether it was. A first sighting only sets the baseline; the version already
    /// known, or a value nobody tracks, changes nothing.
    pub fn observe(&self, watch: &Fetch, version: &str) -> bool {
        match self.record(watch, version) {
            Some(moved) => {
                self.wake(moved);
                true
            }
            None => false,
        }
    }

    /// The first half of [`Tracker::observe`]: records the version and returns the move, for a
    /// caller that does something (reading the new value once) before [`Tracker::wake`].
    pub fn record(&self, watch: &Fetch, version: &str) -> Option<Moved> {
        let (from, subscribers, from_confirmed) = {
            let mut st = self.state();
            let t = st.tracked.get_mut(watch)?;
            let confirmed = t.seen.replace(Instant::now());
            match &t.version {
                Some(v) if v == version => return None,
                None => {
                    t.version = Some(version.to_string());
                    return None;
                }
                Some(old) => {
                    let from = old.clone();
                    t.version = Some(version.to_string());
                    (
                        from,
                        t.subscribers.iter().cloned().collect::<Vec<_>>(),
                        confirmed.map(wall_clock),
                    )
                }
            }
        };
        self.metrics
            .rotations_detected
            .get_or_create(&ServiceLabels {
                service: match watch.service {
                    Service::SecretsManager => "SecretsManager",
                    Service::ParameterStore => "ParameterStore",
                },
            })
            .inc();
        tracing::info!(service = %watch.service, key = %watch.key, from = %from, to = %version, subscribers = subscribers.len(), "remote version moved");
        Some(Moved {
            watch: watch.clone(),
            from: Some(from),
            to: version.to_string(),
            subscribers,
            detected: Instant::now(),
            announced: None,
            from_confirmed,
            moved_at: None,
        })
    }

    /// A wake-up of `watch`'s subscribers at its known version, without a move: an event says
    /// the value was deleted or restored, which the subscribers' reads then find out.
    pub fn touch(&self, watch: &Fetch) -> Option<Moved> {
        let st = self.state();
        let t = st.tracked.get(watch)?;
        let version = t.version.clone().unwrap_or_default();
        Some(Moved {
            watch: watch.clone(),
            from: Some(version.clone()),
            to: version,
            subscribers: t.subscribers.iter().cloned().collect(),
            detected: Instant::now(),
            announced: None,
            from_confirmed: None,
            moved_at: None,
        })
    }

    /// Sends `moved` to the subscribers' wake-up channel.
    pub fn wake(&self, moved: Moved) {
        let _ = self.moved.send(moved);
    }
}

fn forget(st: &mut State, subscriber: &Subscriber) {
    for w in st.by_subscriber.remove(subscriber).unwrap_or_default() {
        if let Some(t) = st.tracked.get_mut(&w) {
            t.subscribers.remove(subscriber);
            if t.subscribers.is_empty() {
                st.tracked.remove(&w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Selector;

    fn tracker() -> (Tracker, mpsc::UnboundedReceiver<Moved>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Tracker::new(Metrics::default(), tx), rx)
    }

    fn current(key: &str) -> Fetch {
        Fetch::secret(key, Selector::Stage("AWSCURRENT".into()))
    }

    fn sub(name: &str) -> Subscriber {
        Subscriber::new("ns", name)
    }

    fn woken(rx: &mut mpsc::UnboundedReceiver<Moved>) -> Vec<(String, Vec<Subscriber>)> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|m| (m.watch.key, m.subscribers))
            .collect()
    }

    #[test]
    fn a_move_wakes_exactly_the_subscribers_of_that_value() {
        let (t, mut rx) = tracker();
        t.track(&sub("a"), vec![(current("db"), Some("v1".into()))]);
        t.track(&sub("b"), vec![(current("db"), Some("v1".into()))]);
        t.track(&sub("c"), vec![(current("api"), Some("v1".into()))]);
        assert!(t.observe(&current("db"), "v2"));
        assert_eq!(
            woken(&mut rx),
            [("db".to_string(), vec![sub("a"), sub("b")])]
        );
        assert_eq!(t.current(&current("db")).as_deref(), Some("v2"));
        assert_eq!(t.current(&current("api")).as_deref(), Some("v1"));
    }

    #[test]
    fn baselines_repeats_and_untracked_values_wake_nobody() {
        let (t, mut rx) = tracker();
        t.track(&sub("a"), vec![(current("db"), None)]);
        assert!(
            !t.observe(&current("db"), "v1"),
            "a first sighting is a baseline"
        );
        assert!(!t.observe(&current("db"), "v1"), "the known version again");
        assert!(!t.observe(&current("nobody"), "v9"));
        assert!(woken(&mut rx).is_empty());
        assert!(!t.is_tracked(&current("nobody")));
        assert!(t.observe(&current("db"), "v2"));
        assert_eq!(woken(&mut rx).len(), 1);
    }

    #[test]
    fn a_move_is_dated_by_the_event_else_the_new_version_but_not_before_the_old_was_seen() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(moved_at(Some(t(50)), Some(t(40)), Some(t(45))), Some(t(50)));
        assert_eq!(moved_at(None, Some(t(40)), Some(t(30))), Some(t(40)));
        // AWSCURRENT moved back to a version made long ago: after the old one was last seen.
        assert_eq!(moved_at(None, Some(t(10)), Some(t(30))), Some(t(30)));
        assert_eq!(moved_at(None, Some(t(10)), None), Some(t(10)));
        assert_eq!(moved_at(None, None, Some(t(30))), Some(t(30)));
        assert_eq!(moved_at(None, None, None), None);
    }

    #[test]
    fn a_move_says_when_the_old_version_was_last_confirmed() {
        let (t, _rx) = tracker();
        t.track(&sub("a"), vec![(current("db"), Some("v1".into()))]);
        let before = SystemTime::now();
        assert!(t.record(&current("db"), "v1").is_none());
        let m = t.record(&current("db"), "v2").expect("a move");
        let confirmed = m.from_confirmed.expect("confirmed by the first check");
        assert!(confirmed >= before - std::time::Duration::from_secs(1));
        assert!(confirmed <= SystemTime::now());
        let m = t.record(&current("db"), "v3").expect("a move");
        assert!(m.from_confirmed.is_some());
        assert!(t.touch(&current("db")).unwrap().from_confirmed.is_none());
    }

    #[test]
    fn a_subscriber_behind_the_known_version_is_woken_at_once() {
        let (t, mut rx) = tracker();
        t.track(&sub("a"), vec![(current("db"), Some("v2".into()))]);
        t.track(&sub("b"), vec![(current("db"), Some("v1".into()))]);
        assert_eq!(woken(&mut rx), [("db".to_string(), vec![sub("b")])]);
    }

    #[test]
    fn untracked_subscribers_are_not_woken_and_unused_values_are_dropped() {
        let (t, mut rx) = tracker();
        t.track(&sub("a"), vec![(current("db"), Some("v1".into()))]);
        t.track(
            &sub("b"),
            vec![
                (current("db"), Some("v1".into())),
                (current("api"), Some("v1".into())),
            ],
        );
        t.untrack(&sub("b"));
        assert_eq!(t.subscribers(), [sub("a")]);
        assert_eq!(t.watches(), [current("db")]);
        assert!(!t.observe(&current("api"), "v2"));
        assert!(t.observe(&current("db"), "v2"));
        assert_eq!(woken(&mut rx), [("db".to_string(), vec![sub("a")])]);
        t.untrack(&sub("a"));
        assert_eq!(t.tracked_count(), 0);
    }
}
