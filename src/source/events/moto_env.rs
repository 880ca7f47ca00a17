//! What the consumer's moto tests share: moto behind the proxy, SQS and EventBridge clients,
//! a queue fed by EventBridge rules, a fake sink, log capture.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_fault_proxy::moto::Moto;
use aws_fault_proxy::FaultProxy;
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;
use tokio::sync::watch;

use super::*;

pub(super) const ACCOUNT: &str = "123456789012";

fn config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("test", "test", None, None, "events"),
            ),
        )
        // One attempt a call: every failure reaches the consumer, and counts are exact.
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .http_client(crate::source::aws::http_client())
        .build()
}

pub(super) struct Env {
    _moto: Moto,
    pub(super) proxy: FaultProxy,
    /// Through the proxy: what the consumer uses.
    pub(super) sqs: aws_sdk_sqs::Client,
    /// Straight to moto: the test's own set-up and checks, not counted.
    pub(super) admin: aws_sdk_sqs::Client,
    pub(super) events: aws_sdk_eventbridge::Client,
}

impl Env {
    pub(super) fn start() -> Env {
        let moto = Moto::start().expect("moto (run tests/setup.sh)");
        let proxy = FaultProxy::start(&moto.url()).expect("fault proxy");
        let direct = config(&moto.url());
        Env {
            sqs: aws_sdk_sqs::Client::new(&config(&proxy.url())),
            admin: aws_sdk_sqs::Client::new(&direct),
            events: aws_sdk_eventbridge::Client::new(&direct),
            proxy,
            _moto: moto,
        }
    }

    /// A queue that receives every `Secret Label Updated` and `Parameter Store Change` event
    /// put on the default bus, through an EventBridge rule with an event pattern.
    pub(super) async fn routed_queue(&self, name: &str) -> (String, String) {
        let url = self
            .admin
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let arn = format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}");
        for (rule, pattern) in [
            (
                "secrets",
                json!({"source": ["aws.secretsmanager"], "detail-type": ["Secret Label Updated"]}),
            ),
            (
                "parameters",
                json!({"source": ["aws.ssm"], "detail-type": ["Parameter Store Change"],
                       "detail": {"operation": ["Update", "LabelParameterVersion", "Delete"]}}),
            ),
        ] {
            let rule = format!("{name}-{rule}");
            self.events
                .put_rule()
                .name(&rule)
                .event_pattern(pattern.to_string())
                .send()
                .await
                .unwrap();
            self.events
                .put_targets()
                .rule(&rule)
                .targets(Target::builder().id("queue").arn(&arn).build().unwrap())
                .send()
                .await
                .unwrap();
        }
        (url, arn)
    }

    /// Puts `Secret Label Updated` events on the default bus, as Secrets Manager would.
    pub(super) async fn label_updated(&self, names: &[&str]) {
        let mut call = self.events.put_events();
        for name in names {
            let arn = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}-AbC123");
            call = call.entries(
                PutEventsRequestEntry::builder()
                    .source("aws.secretsmanager")
                    .detail_type("Secret Label Updated")
                    .resources(arn)
                    .detail(
                        json!({"name": name, "labelUpdated": "AWSCURRENT",
                               "versionId": "01234567-89ab-4cde-8f01-23456789abcd"})
                        .to_string(),
                    )
                    .build(),
            );
        }
        let out = call.send().await.unwrap();
        assert_eq!(out.failed_entry_count, 0);
    }

    pub(super) async fn parameter_change(&self, name: &str, operation: &str) {
        let out = self
            .events
            .put_events()
            .entries(
                PutEventsRequestEntry::builder()
                    .source("aws.ssm")
                    .detail_type("Parameter Store Change")
                    .resources(format!("arn:aws:ssm:us-east-1:{ACCOUNT}:parameter{name}"))
                    .detail(
                        json!({"name": name, "type": "String", "operation": operation}).to_string(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_entry_count, 0);
    }

    /// (visible, in flight) messages.
    pub(super) async fn depth(&self, url: &str) -> (u64, u64) {
        let attrs = self
            .admin
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        let n = |a: QueueAttributeName| attrs.get(&a).and_then(|v| v.parse().ok()).unwrap_or(0);
        (
            n(QueueAttributeName::ApproximateNumberOfMessages),
            n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    pub(super) fn consumer(
        &self,
        queue: &str,
        sink: Arc<FakeSink>,
        options: ConsumerOptions,
    ) -> EventConsumer {
        EventConsumer::new(
            self.sqs.clone(),
            Queue::parse(queue).unwrap(),
            sink,
            options,
        )
    }
}

/// Answers per name (default: unwatched) and records every call.
#[derive(Default)]
pub(super) struct FakeSink {
    outcomes: Mutex<HashMap<String, Outcome>>,
    pub(super) calls: Mutex<Vec<Vec<Change>>>,
    notify: tokio::sync::Notify,
}

impl FakeSink {
    pub(super) fn set(&self, name: &str, outcome: Outcome) {
        self.outcomes.lock().unwrap().insert(name.into(), outcome);
    }

    pub(super) fn calls(&self) -> Vec<Vec<(String, ChangeKind)>> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .map(|c| c.iter().map(|c| (c.key.name.clone(), c.kind)).collect())
            .collect()
    }

    pub(super) fn names_seen(&self) -> Vec<String> {
        self.calls().into_iter().flatten().map(|(n, _)| n).collect()
    }

    pub(super) async fn wait_for(&self, name: &str, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let notified = self.notify.notified();
            if self.names_seen().iter().any(|n| n == name) {
                return start.elapsed();
            }
            if tokio::time::timeout_at((start + within).into(), notified)
                .await
                .is_err()
            {
                panic!("{name} never reached the sink; calls: {:?}", self.calls());
            }
        }
    }
}

#[async_trait]
impl EventSink for FakeSink {
    async fn handle(&self, changes: &[Change]) -> Vec<Outcome> {
        self.calls.lock().unwrap().push(changes.to_vec());
        self.notify.notify_waiters();
        let outcomes = self.outcomes.lock().unwrap();
        changes
            .iter()
            .map(|c| {
                outcomes
                    .get(&c.key.name)
                    .copied()
                    .unwrap_or(Outcome::Unwatched)
            })
            .collect()
    }
}

pub(super) fn quick() -> ConsumerOptions {
    ConsumerOptions {
        wait: Duration::from_secs(1),
        visibility_timeout: Some(Duration::from_secs(1)),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        ..ConsumerOptions::default()
    }
}

pub(super) async fn health_becomes(
    rx: &mut watch::Receiver<Health>,
    within: Duration,
    what: &str,
    ok: impl Fn(&Health) -> bool,
) -> Health {
    let reached = match tokio::time::timeout(within, rx.wait_for(|h| ok(h))).await {
        Ok(Ok(h)) => Some(h.clone()),
        _ => None,
    };
    reached.unwrap_or_else(|| panic!("health never became {what}; it is {:?}", *rx.borrow()))
}
