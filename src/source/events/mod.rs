//! AWS change events as a version source: EventBridge (native Secrets Manager and Parameter
//! Store events, CloudTrail API calls) → SQS (optionally through SNS) → [`EventConsumer`] →
//! an [`EventSink`] (the store identity's tracker, which re-reads the exact version).
//!
//! Events are hints, never data: a message only says "look at this key again". They can be
//! lost, duplicated or reordered, so the sink confirms every change with a strongly consistent
//! read, and polling stays as the safety net. A message is deleted only once every key it
//! named was handled (or is watched by nobody); otherwise it reappears after its visibility
//! timeout. Bodies that are not events are deleted and counted, logged by message id only.
//!
//! Layout: [`parse`] (body → [`Change`]s, pure), `consumer` (the SQS long-poll loop,
//! acknowledgements, counters, health); this file holds the shared types, the queue address
//! and how a key matches a watched value.

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;

use super::key::base_name;
use super::{Fetch, Service};
use parse::{parameter_name, secret_name, Arn};

mod consumer;
pub mod parse;
mod status;

pub use consumer::{BatchReport, ConsumerOptions, EventConsumer};
pub use parse::{parse, Malformed};
pub use status::{EventCounts, EventStats, Health, SqsError};

/// The canonical key of a remote value an event names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKey {
    pub region: String,
    /// The account, when the event (or an ARN in it) says.
    pub account: Option<String>,
    pub service: Service,
    /// Secret name without the ARN's random `-AbCdEf` suffix; parameter name as AWS reports it
    /// (with its leading `/` for hierarchical names).
    pub name: String,
}

impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}:", self.service, self.region)?;
        if let Some(account) = &self.account {
            write!(f, "{account}:")?;
        }
        f.write_str(&self.name)
    }
}

impl EventKey {
    /// True when this key names what `fetch` reads through an identity in `region` (and
    /// `account`, when known): `fetch.key` may be a name, a full ARN or a secret ARN without
    /// its suffix. An ARN key must agree on region and account too. For parameters a leading
    /// `/` is ignored (a one-segment ARN does not tell): at worst a needless re-read.
    pub fn names(&self, fetch: &Fetch, region: &str, account: Option<&str>) -> bool {
        if fetch.service != self.service || self.region != region {
            return false;
        }
        let other_account = |a: &str| self.account.as_deref().is_some_and(|mine| mine != a);
        if account.is_some_and(other_account) {
            return false;
        }
        match self.service {
            Service::SecretsManager => match Arn::parse(&fetch.key, "secretsmanager", "secret:") {
                Some(arn) => {
                    arn.region == self.region
                        && !other_account(arn.account)
                        && secret_name(arn.resource) == self.name
                }
                None => !fetch.key.starts_with("arn:") && fetch.key == self.name,
            },
            Service::ParameterStore => {
                let key = base_name(&fetch.key);
                let name = match Arn::parse(key, "ssm", "parameter") {
                    Some(arn) if arn.region != self.region || other_account(arn.account) => {
                        return false
                    }
                    Some(arn) => parameter_name(arn.resource),
                    None if key.starts_with("arn:") => return false,
                    None => key.to_string(),
                };
                name.trim_start_matches('/') == self.name.trim_start_matches('/')
            }
        }
    }
}

/// What an event says happened to the value. Only a hint: the sink reads to confirm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A new version, a moved stage or label, a created value.
    VersionMoved,
    /// DeleteSecret (scheduled or forced), DeleteParameter(s).
    Deleted,
    /// RestoreSecret.
    Restored,
}

/// One announced change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub key: EventKey,
    pub kind: ChangeKind,
    /// The event's `time`, when it carried one (for the rotation lag: event → Secret write).
    pub time: Option<SystemTime>,
}

/// What the sink made of one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Confirmed by a read (moved or not) and applied: the message may go.
    Applied,
    /// Nothing watches this key: the message may go (counted as unmatched).
    Unwatched,
    /// The confirming read failed: the message stays and comes back after its visibility
    /// timeout.
    Failed,
}

/// Where the distinct changes of a batch go. One call per received batch, never two at once
/// for one consumer.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// One outcome per change, in order (a missing outcome counts as [`Outcome::Failed`]).
    async fn handle(&self, changes: &[Change]) -> Vec<Outcome>;
}

/// The queue a store names in `eventQueue`: its URL, or its ARN (resolved with GetQueueUrl).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Queue {
    Url {
        url: String,
        /// Read from an AWS endpoint's host name; `None` for other hosts (a local endpoint).
        region: Option<String>,
    },
    Arn {
        region: String,
        account: String,
        name: String,
    },
}

/// A malformed `eventQueue`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("eventQueue {0:?} is neither an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME) nor a queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME)")]
pub struct QueueError(pub String);

impl Queue {
    pub fn parse(queue: &str) -> Result<Queue, QueueError> {
        let bad = || QueueError(queue.to_string());
        let queue = queue.trim();
        if queue.starts_with("arn:") {
            let mut parts = queue.splitn(6, ':');
            let (_, partition, service) = (parts.next(), parts.next(), parts.next());
            let (region, account, name) = (parts.next(), parts.next(), parts.next());
            return match (partition, service, region, account, name) {
                (Some(p), Some("sqs"), Some(r), Some(a), Some(n))
                    if !p.is_empty()
                        && !r.is_empty()
                        && !a.is_empty()
                        && !n.is_empty()
                        && !n.contains([':', '/']) =>
                {
                    Ok(Queue::Arn {
                        region: r.into(),
                        account: a.into(),
                        name: n.into(),
                    })
                }
                _ => Err(bad()),
            };
        }
        let rest = queue
            .strip_prefix("https://")
            .or_else(|| queue.strip_prefix("http://"))
            .ok_or_else(bad)?;
        let (host, path) = rest.split_once('/').ok_or_else(bad)?;
        let segments: Vec<&str> = path.split('/').collect();
        if host.is_empty() || segments.len() != 2 || segments.iter().any(|s| s.is_empty()) {
            return Err(bad());
        }
        Ok(Queue::Url {
            url: queue.to_string(),
            region: region_of_host(host),
        })
    }

    /// The queue's region, when its address tells (an ARN always does): the SQS client must be
    /// made for it.
    pub fn region(&self) -> Option<&str> {
        match self {
            Queue::Url { region, .. } => region.as_deref(),
            Queue::Arn { region, .. } => Some(region),
        }
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Queue::Url { url, .. } => f.write_str(url),
            Queue::Arn {
                region,
                account,
                name,
            } => write!(f, "arn:aws:sqs:{region}:{account}:{name}"),
        }
    }
}

/// `sqs.REGION.amazonaws.com[.cn]`, `sqs-fips.REGION...`, `REGION.queue.amazonaws.com`,
/// `queue.amazonaws.com` (us-east-1).
fn region_of_host(host: &str) -> Option<String> {
    let host = host.split(':').next().unwrap_or(host);
    if host == "queue.amazonaws.com" {
        return Some("us-east-1".into());
    }
    let labels: Vec<&str> = host.split('.').collect();
    let aws = |rest: &[&str]| matches!(rest, ["amazonaws", "com"] | ["amazonaws", "com", "cn"]);
    match labels.as_slice() {
        ["sqs" | "sqs-fips", region, rest @ ..] if aws(rest) => Some(region.to_string()),
        [region, "queue", rest @ ..] if aws(rest) => Some(region.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod moto_env;
#[cfg(test)]
mod moto_tests;
#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod tests;
