//! A read cache in front of any [`Source`]: identical concurrent reads share one call, values of
//! immutable versions are kept (bounded), values of mutable selectors for a short window, or,
//! while the version watcher follows them, for as long as it keeps confirming their version.
//!
//! What an entry holds: the value as read (bytes, name, version), when its short window ends,
//! whether the version watcher follows it, and when it was last used (for the LRU bound).
//! Single reads and finds have a bound each (`max_entries`). A stage or label read is also kept
//! under its exact version (a VersionId, a parameter version number), which never expires.
//!
//! Wave sharing: during a sync wave many ExternalSecrets read the same AWSCURRENT (or latest,
//! or label) over a minute or more, far longer than the short window. A value of a mutable
//! selector stays valid beyond the window while the [`Tracker`] of this identity follows its
//! key at the same version, and that version was confirmed within `tracked_ttl` (by the read
//! that stored the entry, or since by a version check or an event). The tracker then owns
//! freshness: a move is recorded there before the poller invalidates the entry, so once the
//! tracker knows the new version no reader gets the old value from here. Keys nobody tracks
//! (refreshPolicy OnChange, reads before their first tracking) keep the short window, and
//! `tracked_ttl` bounds staleness should version checks keep failing.
//!
//! Errors are never cached: the next read after a failure asks AWS again.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::{BoxFuture, FutureExt, Shared};

use super::{Fetch, Find, Selector, Source, SourceError, Tracker, Value};

/// Wraps a [`Source`] with in-flight deduplication and a bounded cache.
pub struct Cached<S> {
    inner: Arc<S>,
    ttl: Duration,
    tracked_ttl: Duration,
    tracker: Mutex<Weak<Tracker>>,
    gets: Memo<Fetch, Value>,
    finds: Memo<Find, Vec<Value>>,
}

impl<S: Source + 'static> Cached<S> {
    /// `ttl` bounds how long a value of a mutable selector (a stage, the latest parameter, a
    /// label, a find) is reused; `max_entries` bounds each of the two maps (single reads, finds).
    pub fn new(inner: S, ttl: Duration, max_entries: usize) -> Self {
        Self::shared(Arc::new(inner), ttl, Duration::ZERO, max_entries)
    }

    /// Like [`Cached::new`] over an `inner` already shared; `tracked_ttl` (0: off) is how long
    /// after the version watcher last confirmed a tracked value's version it is still reused.
    pub fn shared(inner: Arc<S>, ttl: Duration, tracked_ttl: Duration, max_entries: usize) -> Self {
        Cached {
            inner,
            ttl,
            tracked_ttl,
            tracker: Mutex::new(Weak::new()),
            gets: Memo::new(max_entries),
            finds: Memo::new(max_entries),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The version watcher whose confirmed versions keep values of mutable selectors valid.
    pub fn follow(&self, tracker: &Arc<Tracker>) {
        *lock(&self.tracker) = Arc::downgrade(tracker);
    }

    /// Forgets a cached value and detaches any read in flight, so the next read goes to AWS.
    pub fn invalidate(&self, fetch: &Fetch) {
        self.gets.invalidate(fetch);
    }

    /// Reads from AWS even when a cached value is still fresh (rotation checks). Concurrent
    /// readers that arrive meanwhile share this new read.
    pub async fn get_fresh(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        self.invalidate(fetch);
        self.get(fetch).await
    }

    fn max_entries(&self) -> usize {
        self.gets.max_entries
    }

    fn lifetime(&self, selector: &Selector) -> Lifetime {
        if selector.is_immutable() {
            Lifetime::Forever
        } else if self.tracked_ttl.is_zero() {
            Lifetime::For(self.ttl)
        } else {
            Lifetime::Watched(self.ttl)
        }
    }

    /// The version the version watcher knows for `fetch` (a tracked mutable selector), and
    /// when it last confirmed it.
    fn confirmed(&self, fetch: &Fetch) -> Option<(String, Option<Instant>)> {
        if self.tracked_ttl.is_zero() || fetch.selector.is_immutable() {
            return None;
        }
        lock(&self.tracker).upgrade()?.confirmed(fetch)
    }
}

#[async_trait]
impl<S: Source + 'static> Source for Cached<S> {
    async fn get(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        let inner = Arc::clone(&self.inner);
        let owned = fetch.clone();
        let confirmed = self.confirmed(fetch);
        let tracked_ttl = self.tracked_ttl;
        // Past its window an entry is still good when the watcher follows this version and the
        // version was confirmed recently: by the read that stored it, or since by the watcher.
        let still = |v: &Value, stored: Instant| {
            confirmed.as_ref().is_some_and(|(version, seen)| {
                *version == v.version
                    && seen.map_or(stored, |s| s.max(stored)).elapsed() < tracked_ttl
            })
        };
        let value = self
            .gets
            .get_or_load(
                fetch,
                self.lifetime(&fetch.selector),
                still,
                move || async move { inner.get(&owned).await },
            )
            .await?;
        // A read of a stage or of the latest parameter is also a read of one exact version:
        // keep it under that version, so reads pinned to it (rotation wake-ups) cost nothing.
        if let Some(exact) = fetch.pinned(&value.version) {
            self.gets.remember(exact, value.clone(), self.max_entries());
        }
        Ok(value)
    }

    async fn find(&self, find: &Find) -> Result<Vec<Value>, SourceError> {
        let inner = Arc::clone(&self.inner);
        let owned = find.clone();
        self.finds
            .get_or_load(
                find,
                Lifetime::For(self.ttl),
                |_, _| false,
                move || async move { inner.find(&owned).await },
            )
            .await
    }
}

#[derive(Clone, Copy)]
enum Lifetime {
    Forever,
    For(Duration),
    /// For a short window, and beyond it while the version watcher confirms its version (the
    /// entry is kept even with a zero window).
    Watched(Duration),
}

type Loading<V> = Shared<BoxFuture<'static, Result<V, SourceError>>>;

/// A map of finished values plus a map of loads in flight, under one lock held only briefly.
struct Memo<K, V: Clone> {
    state: Arc<Mutex<MemoState<K, V>>>,
    max_entries: usize,
}

struct MemoState<K, V: Clone> {
    entries: HashMap<K, Entry<V>>,
    in_flight: HashMap<K, Flight<V>>,
    next_flight: u64,
    clock: u64,
}

struct Entry<V> {
    value: V,
    expires: Option<Instant>,
    /// Still usable after `expires` when the version watcher confirms it.
    watched: bool,
    /// When the value was read.
    stored: Instant,
    last_used: u64,
}

struct Flight<V: Clone> {
    id: u64,
    loading: Loading<V>,
}

impl<K, V> Memo<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(max_entries: usize) -> Self {
        Memo {
            state: Arc::new(Mutex::new(MemoState {
                entries: HashMap::new(),
                in_flight: HashMap::new(),
                next_flight: 0,
                clock: 0,
            })),
            max_entries: max_entries.max(1),
        }
    }

    /// A fresh cached value, else the load in flight, else a new load. A watched entry past its
    /// window is still fresh when `still(value, stored)` says so.
    async fn get_or_load<F, Fut>(
        &self,
        key: &K,
        lifetime: Lifetime,
        still: impl Fn(&V, Instant) -> bool,
        load: F,
    ) -> Result<V, SourceError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, SourceError>> + Send + 'static,
    {
        let loading = {
            let mut state = lock(&self.state);
            state.clock += 1;
            let clock = state.clock;
            let now = Instant::now();
            match state.entries.get_mut(key) {
                Some(entry)
                    if entry.expires.is_none_or(|at| at > now)
                        || (entry.watched && still(&entry.value, entry.stored)) =>
                {
                    entry.last_used = clock;
                    return Ok(entry.value.clone());
                }
                Some(_) => {
                    state.entries.remove(key);
                }
                None => {}
            }
            match state.in_flight.get(key) {
                Some(flight) => flight.loading.clone(),
                None => {
                    state.next_flight += 1;
                    let id = state.next_flight;
                    let loading = self.start(key.clone(), id, lifetime, load());
                    state.in_flight.insert(
                        key.clone(),
                        Flight {
                            id,
                            loading: loading.clone(),
                        },
                    );
                    loading
                }
            }
        };
        loading.await
    }

    /// The load records its own result when it finishes, whichever waiter polls it, unless it
    /// was invalidated meanwhile (its result may predate the change that caused that).
    fn start<Fut>(&self, key: K, id: u64, lifetime: Lifetime, load: Fut) -> Loading<V>
    where
        Fut: Future<Output = Result<V, SourceError>> + Send + 'static,
    {
        let state = Arc::clone(&self.state);
        let max_entries = self.max_entries;
        async move {
            let result = load.await;
            let mut state = lock(&state);
            if state.in_flight.get(&key).is_some_and(|f| f.id == id) {
                state.in_flight.remove(&key);
                if let Ok(value) = &result {
                    state.insert(key, value.clone(), lifetime, max_entries);
                }
            }
            result
        }
        .boxed()
        .shared()
    }

    /// Stores a value read some other way, unless one is already cached.
    fn remember(&self, key: K, value: V, max_entries: usize) {
        let mut state = lock(&self.state);
        if !state.entries.contains_key(&key) {
            state.insert(key, value, Lifetime::Forever, max_entries);
        }
    }

    fn invalidate(&self, key: &K) {
        let mut state = lock(&self.state);
        state.entries.remove(key);
        state.in_flight.remove(key);
    }
}

impl<K: Eq + Hash + Clone, V: Clone> MemoState<K, V> {
    fn insert(&mut self, key: K, value: V, lifetime: Lifetime, max_entries: usize) {
        let (expires, watched) = match lifetime {
            Lifetime::Forever => (None, false),
            Lifetime::For(ttl) if ttl.is_zero() => return,
            Lifetime::For(ttl) => (Some(Instant::now() + ttl), false),
            Lifetime::Watched(ttl) => (Some(Instant::now() + ttl), true),
        };
        if self.entries.len() >= max_entries {
            self.evict(max_entries);
        }
        self.clock += 1;
        let last_used = self.clock;
        self.entries.insert(
            key,
            Entry {
                value,
                expires,
                watched,
                stored: Instant::now(),
                last_used,
            },
        );
    }

    /// Drops expired entries (those the watcher may still confirm stay), then the least
    /// recently used down to 90% of the bound, so the O(n) scan runs once per many inserts
    /// rather than on each.
    fn evict(&mut self, max_entries: usize) {
        let now = Instant::now();
        self.entries
            .retain(|_, e| e.watched || e.expires.is_none_or(|at| at > now));
        let target = max_entries - max_entries / 10 - 1;
        if self.entries.len() <= target {
            return;
        }
        let mut ages: Vec<(u64, K)> = self
            .entries
            .iter()
            .map(|(k, e)| (e.last_used, k.clone()))
            .collect();
        ages.sort_unstable_by_key(|(used, _)| *used);
        let excess = self.entries.len() - target;
        for (_, key) in ages.into_iter().take(excess) {
            self.entries.remove(&key);
        }
    }
}

/// A panic while the lock is held cannot leave the maps inconsistent (each update is one
/// insert or remove), so a poisoned lock is still safe to use.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::memory::MemorySource;
    use crate::source::{ErrorKind, Service};

    fn current(key: &str) -> Fetch {
        Fetch {
            service: Service::SecretsManager,
            key: key.into(),
            selector: Selector::Stage("AWSCURRENT".into()),
        }
    }

    #[tokio::test]
    async fn concurrent_identical_reads_share_one_call() {
        let mem = MemorySource::new();
        mem.put_secret_string("db", "{\"password\":\"p\"}");
        mem.set_latency(Duration::from_millis(50));
        let cached = Cached::new(mem, Duration::from_secs(60), 100);
        let fetch = current("db");
        let reads = (0..50).map(|_| cached.get(&fetch));
        let values = futures::future::join_all(reads).await;
        assert!(values
            .iter()
            .all(|v| v.as_ref().unwrap().data.0 == b"{\"password\":\"p\"}"));
        assert_eq!(cached.inner().calls("GetSecretValue"), 1);
    }

    #[tokio::test]
    async fn mutable_selectors_expire_immutable_ones_stay() {
        let mem = MemorySource::new();
        let v1 = mem.put_secret_string("db", "one");
        let cached = Cached::new(mem, Duration::from_millis(30), 100);
        let pinned = Fetch {
            selector: Selector::VersionId(v1.clone()),
            ..current("db")
        };
        assert_eq!(cached.get(&current("db")).await.unwrap().data.0, b"one");
        cached.inner().put_secret_string("db", "two");
        // Within the window the stage read is shared.
        assert_eq!(cached.get(&current("db")).await.unwrap().data.0, b"one");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(cached.get(&current("db")).await.unwrap().data.0, b"two");
        assert_eq!(cached.inner().calls("GetSecretValue"), 2);

        // The first stage read also cached version v1 under its VersionId: pinned reads of it
        // cost nothing, however old.
        cached.get(&pinned).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(cached.get(&pinned).await.unwrap().data.0, b"one");
        assert_eq!(cached.inner().calls("GetSecretValue"), 2);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let mem = MemorySource::new();
        mem.put_secret_string("db", "one");
        mem.fail(
            Service::SecretsManager,
            "db",
            ErrorKind::Throttled,
            "ThrottlingException",
        );
        let cached = Cached::new(mem, Duration::from_secs(60), 100);
        let err = cached.get(&current("db")).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Throttled);
        cached.inner().clear_failure(Service::SecretsManager, "db");
        assert_eq!(cached.get(&current("db")).await.unwrap().data.0, b"one");
        assert_eq!(cached.inner().calls("GetSecretValue"), 2);
    }

    #[tokio::test]
    async fn get_fresh_and_invalidate_bypass_the_window() {
        let mem = MemorySource::new();
        mem.put_secret_string("db", "one");
        let cached = Cached::new(mem, Duration::from_secs(60), 100);
        cached.get(&current("db")).await.unwrap();
        cached.inner().put_secret_string("db", "two");
        assert_eq!(
            cached.get_fresh(&current("db")).await.unwrap().data.0,
            b"two"
        );
        cached.inner().put_secret_string("db", "three");
        cached.invalidate(&current("db"));
        assert_eq!(cached.get(&current("db")).await.unwrap().data.0, b"three");
        assert_eq!(cached.inner().calls("GetSecretValue"), 3);
    }

    #[tokio::test]
    async fn invalidate_during_a_read_discards_its_result() {
        let mem = MemorySource::new();
        mem.put_secret_string("db", "one");
        mem.set_latency(Duration::from_millis(50));
        let cached = Arc::new(Cached::new(mem, Duration::from_secs(60), 100));
        let slow = {
            let cached = Arc::clone(&cached);
            tokio::spawn(async move { cached.get(&current("db")).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        cached.invalidate(&current("db"));
        slow.await.unwrap().unwrap();
        cached.get(&current("db")).await.unwrap();
        assert_eq!(cached.inner().calls("GetSecretValue"), 2);
    }

    #[tokio::test]
    async fn entries_are_bounded() {
        let mem = MemorySource::new();
        let versions: Vec<String> = (0..30)
            .map(|i| mem.put_secret_string("db", &i.to_string()))
            .collect();
        let cached = Cached::new(mem, Duration::from_secs(60), 10);
        for v in &versions {
            let fetch = Fetch {
                selector: Selector::VersionId(v.clone()),
                ..current("db")
            };
            cached.get(&fetch).await.unwrap();
        }
        assert!(lock(&cached.gets.state).entries.len() <= 10);
    }

    #[tokio::test]
    async fn finds_are_shared_within_the_window() {
        let mem = MemorySource::new();
        mem.put_parameter("/app/a", "1");
        let cached = Cached::new(mem, Duration::from_secs(60), 10);
        let find = Find::ParameterPath {
            path: "/app".into(),
            recursive: true,
        };
        cached.find(&find).await.unwrap();
        cached.find(&find).await.unwrap();
        assert_eq!(cached.inner().calls("GetParametersByPath"), 1);
    }

    fn tracked(cached: &Cached<MemorySource>) -> Arc<Tracker> {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let tracker = Arc::new(Tracker::new(crate::metrics::Metrics::default(), tx));
        cached.follow(&tracker);
        tracker
    }

    #[tokio::test]
    async fn tracked_values_are_shared_for_the_whole_wave_until_the_watcher_sees_a_move() {
        let mem = MemorySource::new();
        let v1 = mem.put_secret_string("db", "one");
        mem.put_secret_string("api", "key");
        let cached = Cached::shared(
            Arc::new(mem),
            Duration::from_millis(20),
            Duration::from_secs(600),
            100,
        );
        let tracker = tracked(&cached);
        let es = crate::source::Subscriber::new("ns", "first");
        assert_eq!(cached.get(&current("db")).await.unwrap().data.0, b"one");
        tracker.track(&es, vec![(current("db"), Some(v1.clone()))]);
        cached.get(&current("api")).await.unwrap();

        // Long after the short window, a tracked value at the version the tracker knows is
        // still shared; an untracked one is read again.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(cached.get(&current("db")).await.unwrap().data.0, b"one");
        cached.get(&current("api")).await.unwrap();
        assert_eq!(cached.inner().calls("GetSecretValue"), 3);

        // A rotation the watcher has not seen yet changes nothing (as within the window);
        // once it records the new version, the old value is not handed out any more.
        let v2 = cached.inner().put_secret_string("db", "two");
        assert_eq!(cached.get(&current("db")).await.unwrap().data.0, b"one");
        assert!(tracker.record(&current("db"), &v2).is_some());
        assert_eq!(cached.get(&current("db")).await.unwrap().data.0, b"two");
        assert_eq!(cached.inner().calls("GetSecretValue"), 4);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(cached.get(&current("db")).await.unwrap().data.0, b"two");
        assert_eq!(cached.inner().calls("GetSecretValue"), 4);

        // Nobody tracks it any more: back to the short window.
        tracker.untrack(&es);
        tokio::time::sleep(Duration::from_millis(50)).await;
        cached.get(&current("db")).await.unwrap();
        assert_eq!(cached.inner().calls("GetSecretValue"), 5);
    }

    #[tokio::test]
    async fn tracked_sharing_ends_when_the_version_is_not_confirmed_for_too_long() {
        let mem = MemorySource::new();
        let v1 = mem.put_secret_string("db", "one");
        let cached = Cached::shared(
            Arc::new(mem),
            Duration::ZERO,
            Duration::from_millis(60),
            100,
        );
        let tracker = tracked(&cached);
        cached.get(&current("db")).await.unwrap();
        tracker.track(
            &crate::source::Subscriber::new("ns", "es"),
            vec![(current("db"), Some(v1.clone()))],
        );
        // Even with no short window the tracked value is shared...
        cached.get(&current("db")).await.unwrap();
        assert_eq!(cached.inner().calls("GetSecretValue"), 1);
        // ...while a check keeps confirming it...
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(tracker.record(&current("db"), &v1).is_none());
        tokio::time::sleep(Duration::from_millis(40)).await;
        cached.get(&current("db")).await.unwrap();
        assert_eq!(cached.inner().calls("GetSecretValue"), 1);
        // ...and not once the last confirmation is older than the bound (checks failing).
        tokio::time::sleep(Duration::from_millis(80)).await;
        cached.get(&current("db")).await.unwrap();
        assert_eq!(cached.inner().calls("GetSecretValue"), 2);
    }

    #[test]
    fn immutability_of_selectors() {
        assert!(Selector::VersionId("x".into()).is_immutable());
        assert!(Selector::ParameterVersion("12".into()).is_immutable());
        assert!(!Selector::ParameterVersion("prod".into()).is_immutable());
        assert!(!Selector::Stage("AWSCURRENT".into()).is_immutable());
        assert!(!Selector::Latest.is_immutable());
    }
}
