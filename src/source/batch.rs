//! Coalescing of single reads into batch calls: reads that arrive within a short window (a few
//! milliseconds) are handed together to one batch read of at most `max` items, and each caller
//! gets the answer for its own item.
//!
//! The first read of a batch starts its window; a batch that fills up goes at once. The batch
//! runs on its own task, so a caller that gives up (its future dropped) never strands the others.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use super::{Fetch, SourceError, Value};

/// One answer per item, in the order of the items.
pub type Answers = Vec<Result<Value, SourceError>>;

type Run = Arc<dyn Fn(Vec<Fetch>) -> BoxFuture<'static, Answers> + Send + Sync>;

struct Pending {
    items: Vec<(Fetch, oneshot::Sender<Result<Value, SourceError>>)>,
    /// Bumped whenever a batch is taken, so a window timer of a batch that already went (it
    /// filled up) leaves the next batch alone.
    generation: u64,
}

/// Collects reads for one kind of batch call (one service of one identity).
pub struct Batcher {
    window: Duration,
    max: usize,
    run: Run,
    pending: Arc<Mutex<Pending>>,
}

impl Batcher {
    /// `run` reads up to `max` items in one call and answers each.
    pub fn new<F, Fut>(window: Duration, max: usize, run: F) -> Batcher
    where
        F: Fn(Vec<Fetch>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Answers> + Send + 'static,
    {
        Batcher {
            window,
            max: max.max(1),
            run: Arc::new(move |items| Box::pin(run(items))),
            pending: Arc::new(Mutex::new(Pending {
                items: Vec::new(),
                generation: 0,
            })),
        }
    }

    /// Reads `fetch` as part of the next batch. `None` when the batch task died (a panic).
    pub async fn read(&self, fetch: Fetch) -> Option<Result<Value, SourceError>> {
        let (tx, rx) = oneshot::channel();
        let full = {
            let mut p = lock(&self.pending);
            p.items.push((fetch, tx));
            if p.items.len() >= self.max {
                p.generation += 1;
                Some(std::mem::take(&mut p.items))
            } else {
                if p.items.len() == 1 {
                    self.start_window(p.generation);
                }
                None
            }
        };
        if let Some(items) = full {
            tokio::spawn(answer(self.run.clone(), items));
        }
        rx.await.ok()
    }

    fn start_window(&self, generation: u64) {
        let pending = Arc::clone(&self.pending);
        let run = self.run.clone();
        let window = self.window;
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            let items = {
                let mut p = lock(&pending);
                if p.generation != generation || p.items.is_empty() {
                    return;
                }
                p.generation += 1;
                std::mem::take(&mut p.items)
            };
            answer(run, items).await;
        });
    }
}

async fn answer(run: Run, items: Vec<(Fetch, oneshot::Sender<Result<Value, SourceError>>)>) {
    let (fetches, senders): (Vec<Fetch>, Vec<_>) = items.into_iter().unzip();
    let answers = run(fetches).await;
    debug_assert_eq!(answers.len(), senders.len());
    for (tx, answer) in senders.into_iter().zip(answers) {
        // A caller that gave up has dropped its receiver: nothing to do.
        let _ = tx.send(answer);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{ErrorKind, SecretBytes, Selector, Service};

    fn value(key: &str) -> Value {
        Value {
            service: Service::SecretsManager,
            name: key.into(),
            data: SecretBytes(key.as_bytes().to_vec()),
            binary: false,
            version: "v1".into(),
            created: None,
        }
    }

    /// A batcher whose batch call records the size of each batch, and fails items named `bad*`.
    fn recording(window: Duration, max: usize) -> (Batcher, Arc<Mutex<Vec<usize>>>) {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Batcher::new(window, max, move |items: Vec<Fetch>| {
            seen.lock().unwrap().push(items.len());
            async move {
                items
                    .iter()
                    .map(|f| {
                        if f.key.starts_with("bad") {
                            Err(SourceError {
                                kind: ErrorKind::NotFound,
                                service: Service::SecretsManager.into(),
                                operation: "GetSecretValue",
                                key: f.key.clone(),
                                code: "ResourceNotFoundException".into(),
                                message: "Secrets Manager can't find the specified secret.".into(),
                            })
                        } else {
                            Ok(value(&f.key))
                        }
                    })
                    .collect()
            }
        });
        (batcher, sizes)
    }

    fn fetch(key: &str) -> Fetch {
        Fetch::secret(key, Selector::Stage("AWSCURRENT".into()))
    }

    #[tokio::test]
    async fn concurrent_reads_share_batches_of_at_most_max() {
        let (batcher, sizes) = recording(Duration::from_millis(20), 20);
        let keys: Vec<String> = (0..45).map(|i| format!("k{i}")).collect();
        let reads = keys.iter().map(|k| batcher.read(fetch(k)));
        let answers = futures::future::join_all(reads).await;
        for (k, a) in keys.iter().zip(&answers) {
            assert_eq!(
                a.clone().unwrap().unwrap().name,
                *k,
                "each caller gets its own"
            );
        }
        let mut sizes = sizes.lock().unwrap().clone();
        sizes.sort();
        assert_eq!(sizes, [5, 20, 20]);
    }

    #[tokio::test]
    async fn a_failed_item_fails_only_its_caller() {
        let (batcher, sizes) = recording(Duration::from_millis(20), 20);
        let (a, bad, b) = futures::join!(
            batcher.read(fetch("a")),
            batcher.read(fetch("bad")),
            batcher.read(fetch("b"))
        );
        assert_eq!(a.unwrap().unwrap().name, "a");
        assert_eq!(b.unwrap().unwrap().name, "b");
        let err = bad.unwrap().unwrap_err();
        assert_eq!((err.kind, err.key.as_str()), (ErrorKind::NotFound, "bad"));
        assert_eq!(*sizes.lock().unwrap(), [3]);
    }

    #[tokio::test]
    async fn reads_after_the_window_make_a_new_batch() {
        let (batcher, sizes) = recording(Duration::from_millis(5), 20);
        batcher.read(fetch("a")).await.unwrap().unwrap();
        batcher.read(fetch("b")).await.unwrap().unwrap();
        assert_eq!(*sizes.lock().unwrap(), [1, 1]);
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_strand_the_others() {
        let (batcher, _) = recording(Duration::from_millis(20), 20);
        let batcher = Arc::new(batcher);
        let quitter = {
            let b = batcher.clone();
            tokio::spawn(async move { b.read(fetch("quits")).await })
        };
        tokio::task::yield_now().await;
        let stays = batcher.read(fetch("stays"));
        quitter.abort();
        assert_eq!(stays.await.unwrap().unwrap().name, "stays");
    }
}
