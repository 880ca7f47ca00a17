//! Prometheus metrics. Every family is prefixed `arnsync_`; labels never carry object names,
//! keys or free text, so cardinality stays fixed however many objects a cluster has.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsRequestLabels {
    /// `secretsmanager`, `ssm` or `sts`.
    pub service: &'static str,
    /// The AWS operation, e.g. `GetSecretValue`.
    pub operation: &'static str,
    /// `success` or an error category such as `throttled`, `access_denied`, `not_found`.
    pub outcome: &'static str,
}

/// The metrics every part of the operator writes to. Cheap to clone (shared counters).
#[derive(Clone, Default)]
pub struct Metrics {
    pub aws_requests: Family<AwsRequestLabels, Counter>,
}

impl Metrics {
    /// Registers every family in `registry` and returns the handles.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        registry.register(
            "arnsync_aws_requests",
            "AWS API calls by service, operation and outcome",
            m.aws_requests.clone(),
        );
        m
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
