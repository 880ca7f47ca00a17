//! Prometheus metrics. Every family is prefixed `arnsync_`; labels never carry object names,
//! keys or free text, so cardinality stays fixed however many objects a cluster has.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `ExternalSecret`, `SecretStore` or `ClusterSecretStore`.
    pub kind: String,
    /// The status reason: `SecretSynced`, `SecretNotFound`, `AccessDenied`, ...
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsRequestLabels {
    /// `secretsmanager`, `ssm` or `sts`.
    pub service: &'static str,
    /// The AWS operation, e.g. `GetSecretValue`.
    pub operation: &'static str,
    /// `success` or an error category such as `throttled`, `access_denied`, `not_found`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    /// `SecretsManager` or `ParameterStore`.
    pub service: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkloadLabels {
    /// `Deployment`, `StatefulSet`, `DaemonSet` or `Rollout`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    /// Ready condition status: `True`, `False` or `Unknown`.
    pub ready: &'static str,
}

fn seconds_buckets() -> Histogram {
    Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
}

/// The metrics every part of the operator writes to. Cheap to clone (shared counters).
#[derive(Clone)]
pub struct Metrics {
    pub aws_requests: Family<AwsRequestLabels, Counter>,
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub reconcile_seconds: Family<ReconcileLabels, Histogram, fn() -> Histogram>,
    pub rotations_detected: Family<ServiceLabels, Counter>,
    pub workload_restarts: Family<WorkloadLabels, Counter>,
    /// From a detected version move to the Secret written.
    pub rotation_to_secret_seconds: Histogram,
    /// From the Secret written to the workload's rollout patched.
    pub secret_to_rollout_seconds: Histogram,
    /// ExternalSecrets by Ready status.
    pub external_secrets: Family<ConditionLabels, Gauge>,
    /// 1 while this process leads (or runs without leader election).
    pub leader: Gauge,
    /// Store identities with a live source (clients, credentials, cache).
    pub sources: Gauge,
    /// Store identities whose Secrets Manager reads a replica region serves (failoverRegions).
    pub failed_over_sources: Gauge,
    /// Event queue messages by what became of them.
    pub event_messages: Family<EventLabels, Counter>,
    /// Failed SQS calls of the event consumers.
    pub event_errors: Counter,
    /// Age of the oldest message of the last batch received (now − SentTimestamp).
    pub event_queue_lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// From an event's `time` (the change in AWS) to the Secret written.
    pub event_to_secret_seconds: Histogram,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// received, deleted, unmatched, malformed, failed.
    pub outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            aws_requests: Family::default(),
            reconciles: Family::default(),
            reconcile_seconds: Family::new_with_constructor(seconds_buckets),
            rotations_detected: Family::default(),
            workload_restarts: Family::default(),
            rotation_to_secret_seconds: seconds_buckets(),
            secret_to_rollout_seconds: seconds_buckets(),
            external_secrets: Family::default(),
            leader: Gauge::default(),
            sources: Gauge::default(),
            failed_over_sources: Gauge::default(),
            event_messages: Family::default(),
            event_errors: Counter::default(),
            event_queue_lag_seconds: Gauge::default(),
            event_to_secret_seconds: seconds_buckets(),
        }
    }
}

impl Metrics {
    /// Registers every family in `registry` and returns the handles.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        registry.register(
            "arnsync_aws_requests",
            "AWS API call attempts by service, operation and outcome",
            m.aws_requests.clone(),
        );
        registry.register(
            "arnsync_reconciles",
            "Reconciles by kind and resulting status reason",
            m.reconciles.clone(),
        );
        registry.register(
            "arnsync_reconcile_duration_seconds",
            "Time spent in one reconcile",
            m.reconcile_seconds.clone(),
        );
        registry.register(
            "arnsync_rotations_detected",
            "Remote version moves (rotations, new parameter versions) detected by the version watcher",
            m.rotations_detected.clone(),
        );
        registry.register(
            "arnsync_workload_restarts",
            "Rollouts started because a Secret a workload uses changed",
            m.workload_restarts.clone(),
        );
        registry.register(
            "arnsync_rotation_to_secret_seconds",
            "Time from detecting a remote version move to the Secret written",
            m.rotation_to_secret_seconds.clone(),
        );
        registry.register(
            "arnsync_secret_to_rollout_seconds",
            "Time from a Secret written to the workload rollout patched",
            m.secret_to_rollout_seconds.clone(),
        );
        registry.register(
            "arnsync_event_messages",
            "Event queue messages received, deleted, unmatched (nothing watches their keys), malformed, and failed (left in the queue)",
            m.event_messages.clone(),
        );
        registry.register(
            "arnsync_event_errors",
            "Failed SQS calls of the event consumers",
            m.event_errors.clone(),
        );
        registry.register(
            "arnsync_event_queue_lag_seconds",
            "Age of the oldest message of the last batch received from an event queue (from SentTimestamp)",
            m.event_queue_lag_seconds.clone(),
        );
        registry.register(
            "arnsync_event_to_secret_seconds",
            "Time from a change event's time (the change in AWS) to the Secret written",
            m.event_to_secret_seconds.clone(),
        );
        registry.register(
            "arnsync_external_secrets",
            "ExternalSecrets by Ready condition status",
            m.external_secrets.clone(),
        );
        registry.register(
            "arnsync_leader",
            "1 while this replica leads (or runs without leader election), else 0",
            m.leader.clone(),
        );
        registry.register(
            "arnsync_sources",
            "Store identities with a live AWS source (clients, credentials, cache)",
            m.sources.clone(),
        );
        registry.register(
            "arnsync_failed_over_sources",
            "Store identities whose Secrets Manager reads are served by a failoverRegions replica",
            m.failed_over_sources.clone(),
        );
        m
    }

    pub fn reconcile(&self, kind: &str, reason: &str, took: std::time::Duration) {
        let labels = ReconcileLabels {
            kind: kind.to_string(),
            reason: reason.to_string(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn aws_request(
        &self,
        service: &'static str,
        operation: &'static str,
        outcome: &'static str,
    ) {
        self.aws_requests
            .get_or_create(&AwsRequestLabels {
                service,
                operation,
                outcome,
            })
            .inc();
    }
}
