//! The event consumers of the store identities: one per (identity, queue), feeding that
//! identity's poller ([`super::Poller::apply_change`]), started when a store names the queue
//! and stopped with the identity's watcher.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{oneshot, watch};

use super::events::{
    Change, ConsumerOptions, EventConsumer, EventCounts, EventSink, EventStats, Health, Outcome,
    Queue, QueueError,
};
use super::{AwsSource, Identity, Poller};
use crate::metrics::{EventLabels, Metrics};

/// A running consumer: dropping it stops the consumer.
pub(super) struct Running {
    pub health: watch::Receiver<Health>,
    _stop: oneshot::Sender<()>,
}

/// The sink of one identity: its poller, while it lives.
struct PollerSink {
    poller: Weak<Poller>,
    region: String,
}

#[async_trait]
impl EventSink for PollerSink {
    async fn handle(&self, changes: &[Change]) -> Vec<Outcome> {
        let Some(poller) = self.poller.upgrade() else {
            return vec![Outcome::Failed; changes.len()];
        };
        let mut out = Vec::with_capacity(changes.len());
        for c in changes {
            out.push(poller.apply_change(c, &self.region).await);
        }
        out
    }
}

/// Starts the consumer of `queue` for `identity`, feeding `poller`.
pub(super) fn start(
    identity: &Identity,
    queue: &str,
    source: &AwsSource,
    poller: &Arc<Poller>,
    safety: Duration,
    metrics: &Metrics,
) -> Result<Running, QueueError> {
    let parsed = Queue::parse(queue)?;
    let region = parsed.region().unwrap_or(&identity.region).to_string();
    let sink = Arc::new(PollerSink {
        poller: Arc::downgrade(poller),
        region: identity.region.clone(),
    });
    let consumer = EventConsumer::new(
        source.sqs(&region),
        parsed,
        sink,
        ConsumerOptions::default(),
    );
    let health = consumer.health();
    poller.set_events(health.clone(), safety);
    let (stop, stopped) = oneshot::channel::<()>();
    let stats = consumer.stats();
    let metrics = metrics.clone();
    tokio::spawn(async move {
        let counting = count(stats, metrics);
        tokio::select! {
            _ = consumer.run(async { let _ = stopped.await; }) => {}
            _ = counting => {}
        }
    });
    Ok(Running {
        health,
        _stop: stop,
    })
}

/// Copies a consumer's counters into the metrics every second (as increments).
async fn count(stats: Arc<EventStats>, metrics: Metrics) {
    let mut seen = EventCounts::default();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = stats.snapshot();
        for (outcome, was, is) in [
            ("received", seen.received, now.received),
            ("deleted", seen.deleted, now.deleted),
            ("unmatched", seen.unmatched, now.unmatched),
            ("malformed", seen.malformed, now.malformed),
            ("failed", seen.failed, now.failed),
        ] {
            if is > was {
                metrics
                    .event_messages
                    .get_or_create(&EventLabels { outcome })
                    .inc_by(is - was);
            }
        }
        if now.errors > seen.errors {
            metrics.event_errors.inc_by(now.errors - seen.errors);
        }
        if let Some(lag) = now.last_lag {
            metrics.event_queue_lag_seconds.set(lag.as_secs_f64());
        }
        seen = now;
    }
}
