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
    /// `secretsmanager`, `ssm`, `sts` or `sqs`.
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CostLabels {
    /// The store identity's short hash (`status.identityHash` of the stores using it).
    pub identity: String,
    /// `secretsmanager`, `ssm`, `sts` or `sqs`.
    pub service: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LagLabels {
    /// `secret_written` or `workload_restarted`.
    pub stage: &'static str,
}

fn seconds_buckets() -> Histogram {
    Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
}

/// Rotation lag: seconds to minutes, up to half an hour.
fn lag_buckets() -> Histogram {
    Histogram::new([
        0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    ])
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

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
    /// Estimated dollars per month of each identity's calls, per service.
    pub aws_estimated_monthly_cost: Family<CostLabels, FloatGauge>,
    /// From the version's move in AWS to the Secret written and to the workload patched.
    pub rotation_lag_seconds: Family<LagLabels, Histogram, fn() -> Histogram>,
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
            aws_estimated_monthly_cost: Family::default(),
            rotation_lag_seconds: Family::new_with_constructor(lag_buckets),
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
            "arnsync_aws_estimated_monthly_cost_dollars",
            "Estimated AWS bill of each store identity's calls per month, by service: calls of the last hour (or of the time observed, at least a minute) x 730 h x price",
            m.aws_estimated_monthly_cost.clone(),
        );
        registry.register(
            "arnsync_rotation_lag_seconds",
            "Time from a version's move in AWS (event time, else the new version's CreatedDate or LastModifiedDate) to the Secret written and to the workload patched",
            m.rotation_lag_seconds.clone(),
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

    /// Observes a rotation's lag at `stage`, from `moved` (clock skew counts as 0).
    pub fn rotation_lag(&self, stage: &'static str, moved: std::time::SystemTime) {
        let lag = moved.elapsed().unwrap_or_default();
        self.rotation_lag_seconds
            .get_or_create(&LagLabels { stage })
            .observe(lag.as_secs_f64());
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
