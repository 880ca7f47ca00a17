//! What the consumer reports: its health (for the store condition `EventsReady`), its
//! counters (for the metrics), and the SQS errors behind them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Whether the queue is being read (for the store condition `EventsReady`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// No answer from SQS yet.
    Starting,
    /// The last SQS calls succeeded.
    Healthy,
    /// The last SQS call failed: its operation and error (no message content).
    Failing(String),
}

/// Counters, cumulative since start (the metrics side reads them).
#[derive(Debug)]
pub struct EventStats {
    /// ReceiveMessage calls answered.
    pub polls: AtomicU64,
    /// Messages received (a message that comes back is counted again).
    pub received: AtomicU64,
    /// Messages deleted.
    pub deleted: AtomicU64,
    /// Messages whose changes nothing watches, or that announced none (deleted).
    pub unmatched: AtomicU64,
    /// Messages that are not events (deleted).
    pub malformed: AtomicU64,
    /// Messages left in the queue because a change could not be applied.
    pub failed: AtomicU64,
    /// SQS calls that failed, and messages whose deletion failed.
    pub errors: AtomicU64,
    /// Age of the oldest message of the last non-empty batch (now − `SentTimestamp`), in
    /// milliseconds; `u64::MAX` before the first.
    pub last_lag_ms: AtomicU64,
}

impl Default for EventStats {
    fn default() -> Self {
        EventStats {
            polls: AtomicU64::new(0),
            received: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_lag_ms: AtomicU64::new(u64::MAX),
        }
    }
}

/// A snapshot of [`EventStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventCounts {
    pub polls: u64,
    pub received: u64,
    pub deleted: u64,
    pub unmatched: u64,
    pub malformed: u64,
    pub failed: u64,
    pub errors: u64,
    pub last_lag: Option<Duration>,
}

impl EventStats {
    pub fn snapshot(&self) -> EventCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let lag = get(&self.last_lag_ms);
        EventCounts {
            polls: get(&self.polls),
            received: get(&self.received),
            deleted: get(&self.deleted),
            unmatched: get(&self.unmatched),
            malformed: get(&self.malformed),
            failed: get(&self.failed),
            errors: get(&self.errors),
            last_lag: (lag != u64::MAX).then(|| Duration::from_millis(lag)),
        }
    }

    pub(super) fn add(&self, c: &AtomicU64, n: usize) {
        c.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A failed SQS call: the operation and the service's error code and message, or the local
/// failure (timeout, connection). Carries no message content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct SqsError {
    pub operation: &'static str,
    /// The AWS error code when the service answered (`QueueDoesNotExist`, `RequestThrottled`,
    /// `AccessDenied`, ...).
    pub code: Option<String>,
    pub message: String,
}

impl SqsError {
    pub(super) fn from_sdk<E, R>(operation: &'static str, err: SdkError<E, R>) -> SqsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let code = err.code().map(str::to_string);
        let message = match (&code, err.message()) {
            (Some(code), Some(m)) => format!("{code}: {m}"),
            (Some(code), None) => code.clone(),
            _ => {
                let mut m = DisplayErrorContext(&err).to_string();
                m.truncate(512);
                m
            }
        };
        SqsError {
            operation,
            code,
            message,
        }
    }

    /// The queue is gone (deleted, or never created): an ARN is resolved again next time.
    pub fn is_missing_queue(&self) -> bool {
        self.code.as_deref().is_some_and(|c| {
            c == "QueueDoesNotExist"
                || c == "AWS.SimpleQueueService.NonExistentQueue"
                || c.ends_with("#QueueDoesNotExist")
        })
    }
}
