//! The SQS side: long polls one queue, hands each batch's distinct changes to the sink,
//! deletes what was handled, counts, and reports its health. Never exits on errors (backs off
//! instead); stops when told to.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use aws_smithy_types::timeout::TimeoutConfig;
use tokio::sync::watch;

use super::status::{EventStats, Health, SqsError};
use super::{parse, Change, EventKey, EventSink, Outcome, Queue};

/// How the consumer polls and backs off.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    /// Long-poll wait (`WaitTimeSeconds`, whole seconds, at most 20).
    pub wait: Duration,
    /// `MaxNumberOfMessages` (1 to 10).
    pub max_messages: i32,
    /// `VisibilityTimeout` asked on receive: how long a message that could not be handled
    /// stays hidden before it comes back. `None`: the queue's own setting.
    pub visibility_timeout: Option<Duration>,
    /// First pause after an SQS error; doubles per error in a row up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            wait: Duration::from_secs(20),
            max_messages: 10,
            visibility_timeout: None,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// What one batch came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub received: usize,
    pub deleted: usize,
    pub unmatched: usize,
    pub malformed: usize,
    /// Left in the queue (a change failed).
    pub left: usize,
}

/// Reads one SQS queue for one store identity.
pub struct EventConsumer {
    sqs: aws_sdk_sqs::Client,
    queue: Queue,
    /// The URL of a queue given by ARN, once GetQueueUrl answered.
    url: Mutex<Option<String>>,
    /// The last failed deletion and when it failed. It keeps the health failing through the
    /// empty polls while the undeleted messages are hidden, until a deletion succeeds or the
    /// messages had time to come back ([`EventConsumer::redelivery`]) and did not fail again.
    delete_error: Mutex<Option<(SqsError, Instant)>>,
    sink: Arc<dyn EventSink>,
    options: ConsumerOptions,
    stats: Arc<EventStats>,
    health: watch::Sender<Health>,
    /// The next receive does not wait: on start and after an error, so that the health is
    /// known at once rather than after a whole long poll.
    short_next: std::sync::atomic::AtomicBool,
}

impl EventConsumer {
    /// `sqs` must be a client for the queue's region ([`Queue::region`]) with the identity's
    /// credentials. Its timeouts do not matter: receives set their own, longer than the wait.
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        queue: Queue,
        sink: Arc<dyn EventSink>,
        options: ConsumerOptions,
    ) -> EventConsumer {
        EventConsumer {
            sqs,
            queue,
            url: Mutex::default(),
            delete_error: Mutex::default(),
            sink,
            options,
            stats: Arc::default(),
            health: watch::channel(Health::Starting).0,
            short_next: std::sync::atomic::AtomicBool::new(true),
        }
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    pub fn stats(&self) -> Arc<EventStats> {
        self.stats.clone()
    }

    /// Changes whenever the health does (not on every poll).
    pub fn health(&self) -> watch::Receiver<Health> {
        self.health.subscribe()
    }

    /// Polls until `shutdown` resolves (a long poll in flight is abandoned; a batch being
    /// handled is finished first). SQS errors set [`Health::Failing`] and back off.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut errors_in_row: u32 = 0;
        loop {
            let received = tokio::select! {
                biased;
                _ = &mut shutdown => return,
                r = self.receive() => r,
            };
            let result = match received {
                Ok(messages) => self.process(messages).await.map(|_| ()),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    if errors_in_row > 0 {
                        tracing::info!(queue = %self.queue, "event queue readable again");
                    }
                    errors_in_row = 0;
                    let health = {
                        let mut delete_error = lock(&self.delete_error);
                        if delete_error
                            .as_ref()
                            .is_some_and(|(_, at)| at.elapsed() > self.redelivery())
                        {
                            *delete_error = None;
                        }
                        match &*delete_error {
                            Some((e, _)) => Health::Failing(e.to_string()),
                            None => Health::Healthy,
                        }
                    };
                    self.set_health(health);
                }
                Err(e) => {
                    self.short_next
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    errors_in_row = errors_in_row.saturating_add(1);
                    let pause = self.backoff(errors_in_row);
                    tracing::warn!(queue = %self.queue, error = %e, retry_in = ?pause, "event queue error");
                    self.set_health(Health::Failing(e.to_string()));
                    tokio::select! {
                        biased;
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    /// One receive and the handling of what it brought.
    pub async fn poll_once(&self) -> Result<BatchReport, SqsError> {
        let messages = self.receive().await?;
        self.process(messages).await
    }

    fn set_health(&self, health: Health) {
        self.health.send_if_modified(|h| {
            let changed = *h != health;
            *h = health;
            changed
        });
    }

    /// How long an undeleted message takes at most to come back: its visibility timeout
    /// (the queue's default of 30 s when none is asked) and one long poll.
    fn redelivery(&self) -> Duration {
        self.options
            .visibility_timeout
            .unwrap_or(Duration::from_secs(30))
            + self.options.wait
            + Duration::from_secs(5)
    }

    fn backoff(&self, errors_in_row: u32) -> Duration {
        let base = self
            .options
            .backoff_min
            .saturating_mul(1 << errors_in_row.saturating_sub(1).min(16))
            .min(self.options.backoff_max);
        // ±20 % so that many consumers do not retry in step.
        base.mul_f64(rand::random_range(0.8..1.2))
    }

    async fn url(&self) -> Result<String, SqsError> {
        let (account, name) = match &self.queue {
            Queue::Url { url, .. } => return Ok(url.clone()),
            Queue::Arn { account, name, .. } => (account, name),
        };
        if let Some(url) = lock(&self.url).clone() {
            return Ok(url);
        }
        let out = self
            .sqs
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("GetQueueUrl", e))?;
        let url = out.queue_url().unwrap_or_default().to_string();
        if url.is_empty() {
            return Err(SqsError {
                operation: "GetQueueUrl",
                code: None,
                message: "the answer carried no QueueUrl".into(),
            });
        }
        *lock(&self.url) = Some(url.clone());
        Ok(url)
    }

    async fn receive(&self) -> Result<Vec<Message>, SqsError> {
        let url = self
            .url()
            .await
            .inspect_err(|_| self.stats.add(&self.stats.errors, 1))?;
        let short = self
            .short_next
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        let wait = if short {
            0
        } else {
            self.options.wait.as_secs().min(20) as i32
        };
        // The call waits up to `wait` by design: its timeouts must be longer than that.
        let attempt = Duration::from_secs(wait as u64 + 10);
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(attempt)
            .operation_timeout(attempt * 3)
            .build();
        let result = self
            .sqs
            .receive_message()
            .queue_url(&url)
            .wait_time_seconds(wait)
            .max_number_of_messages(self.options.max_messages.clamp(1, 10))
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .set_visibility_timeout(
                self.options
                    .visibility_timeout
                    .map(|v| v.as_secs().min(43_200) as i32),
            )
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(timeouts))
            .send()
            .await;
        match result {
            Ok(out) => {
                self.stats.add(&self.stats.polls, 1);
                Ok(out.messages.unwrap_or_default())
            }
            Err(e) => {
                self.stats.add(&self.stats.errors, 1);
                let e = SqsError::from_sdk("ReceiveMessage", e);
                if e.is_missing_queue() && matches!(self.queue, Queue::Arn { .. }) {
                    *lock(&self.url) = None;
                }
                Err(e)
            }
        }
    }

    /// Parses, hands the distinct changes to the sink, deletes what may go.
    async fn process(&self, messages: Vec<Message>) -> Result<BatchReport, SqsError> {
        let mut report = BatchReport {
            received: messages.len(),
            ..BatchReport::default()
        };
        if messages.is_empty() {
            return Ok(report);
        }
        self.stats.add(&self.stats.received, messages.len());
        self.record_lag(&messages);
        let parsed: Vec<Result<Vec<Change>, parse::Malformed>> = messages
            .iter()
            .map(|m| parse(m.body().unwrap_or_default()))
            .collect();
        let changes = coalesce(parsed.iter().flatten().flatten());
        let outcomes = if changes.is_empty() {
            vec![]
        } else {
            self.sink.handle(&changes).await
        };
        let outcome: HashMap<&EventKey, Outcome> = changes
            .iter()
            .enumerate()
            .map(|(i, c)| (&c.key, outcomes.get(i).copied().unwrap_or(Outcome::Failed)))
            .collect();
        let mut delete: Vec<&Message> = vec![];
        for (m, parsed) in messages.iter().zip(&parsed) {
            let id = m.message_id().unwrap_or("<no id>");
            match parsed {
                Err(e) => {
                    tracing::warn!(message_id = id, error = %e, "event message is not an event; deleting it");
                    report.malformed += 1;
                    delete.push(m);
                }
                Ok(changes) => {
                    let of = |c: &Change| outcome.get(&c.key).copied().unwrap_or(Outcome::Failed);
                    if changes.iter().any(|c| of(c) == Outcome::Failed) {
                        report.left += 1;
                    } else {
                        if changes.iter().all(|c| of(c) == Outcome::Unwatched) {
                            report.unmatched += 1;
                        }
                        delete.push(m);
                    }
                }
            }
        }
        for c in &changes {
            tracing::debug!(key = %c.key, kind = ?c.kind, outcome = ?outcome.get(&c.key), "event");
        }
        self.stats.add(&self.stats.malformed, report.malformed);
        self.stats.add(&self.stats.unmatched, report.unmatched);
        self.stats.add(&self.stats.failed, report.left);
        match self.delete(&delete).await {
            Ok(deleted) => {
                if deleted > 0 {
                    *lock(&self.delete_error) = None;
                }
                report.deleted = deleted;
                Ok(report)
            }
            Err(e) => {
                // A queue that is gone takes its messages with it; receives report it anyway.
                if !e.is_missing_queue() {
                    *lock(&self.delete_error) = Some((e.clone(), Instant::now()));
                }
                Err(e)
            }
        }
    }

    fn record_lag(&self, messages: &[Message]) {
        let oldest = messages
            .iter()
            .filter_map(|m| {
                m.attributes
                    .as_ref()?
                    .get(&MessageSystemAttributeName::SentTimestamp)
            })
            .filter_map(|t| t.parse::<u64>().ok())
            .min();
        if let Some(sent) = oldest {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            self.stats
                .last_lag_ms
                .store(now.saturating_sub(sent), Ordering::Relaxed);
        }
    }

    /// DeleteMessageBatch (at most 10 a call); returns how many went.
    async fn delete(&self, messages: &[&Message]) -> Result<usize, SqsError> {
        let url = self.url().await?;
        let mut deleted = 0;
        for chunk in messages.chunks(10) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .receipt_handle(m.receipt_handle()?)
                        .build()
                        .ok()
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            let out = self
                .sqs
                .delete_message_batch()
                .queue_url(&url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    self.stats.add(&self.stats.errors, 1);
                    SqsError::from_sdk("DeleteMessageBatch", e)
                })?;
            deleted += out.successful.len();
            self.stats.add(&self.stats.deleted, out.successful.len());
            if !out.failed.is_empty() {
                self.stats.add(&self.stats.errors, out.failed.len());
                let first = &out.failed[0];
                let ids: Vec<&str> = out
                    .failed
                    .iter()
                    .filter_map(|f| f.id.strip_prefix('m')?.parse::<usize>().ok())
                    .filter_map(|i| chunk.get(i)?.message_id())
                    .collect();
                tracing::warn!(message_ids = ?ids, code = %first.code, "messages could not be deleted; they will come back");
                return Err(SqsError {
                    operation: "DeleteMessageBatch",
                    code: Some(first.code.clone()),
                    message: format!(
                        "{}: {}",
                        first.code,
                        first.message.as_deref().unwrap_or("entry refused")
                    ),
                });
            }
        }
        Ok(deleted)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One change per key; when a batch names a key twice, the later event (by its time, else by
/// its place in the batch) decides the kind.
fn coalesce<'a>(changes: impl Iterator<Item = &'a Change>) -> Vec<Change> {
    let mut by_key: BTreeMap<&EventKey, &Change> = BTreeMap::new();
    for c in changes {
        by_key
            .entry(&c.key)
            .and_modify(|kept| {
                if c.time >= kept.time || c.time.is_none() {
                    *kept = c;
                }
            })
            .or_insert(c);
    }
    by_key.into_values().cloned().collect()
}

#[cfg(test)]
pub(super) fn coalesce_for_tests(changes: &[Change]) -> Vec<Change> {
    coalesce(changes.iter())
}
