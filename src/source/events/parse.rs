//! An SQS message body → the changes it announces, as canonical keys. Pure: no I/O, no clock.
//!
//! Accepted shapes (raw EventBridge events, or the same wrapped in an SNS notification
//! envelope `{"Type":"Notification","Message":"<event JSON>"}`):
//! - `Secret Label Updated` (`aws.secretsmanager`): `detail.name`, else the ARN in
//!   `resources[0]`; a label moved (PutSecretValue, rotation, UpdateSecretVersionStage).
//! - `Parameter Store Change` (`aws.ssm`): `detail.name` (leading `/` kept), `detail.operation`
//!   `Create | Update | LabelParameterVersion` (moved) or `Delete`.
//! - CloudTrail (`AWS API Call via CloudTrail`, `AWS Service Event via CloudTrail`) for Secrets
//!   Manager (the secret from `responseElements.arn` / `aRN`, `additionalEventData.SecretId`,
//!   `serviceEventDetails.secretId`, `requestParameters.secretId` or `.name`) and for Parameter
//!   Store (`requestParameters.name` / `.names`). Calls that failed (`errorCode`) and calls
//!   that change no value (reads, tags, policies) announce nothing.
//!
//! Other well-formed events announce nothing; bodies that are not events are [`Malformed`],
//! whose messages name only fields, never anything the body carried.

use std::time::SystemTime;

use serde_json::{Map, Value};

use super::{Change, ChangeKind, EventKey};
use crate::source::Service;

/// Why a message body is not an event this module understands. Never carries any part of the
/// body (it can hold names and, in a mis-routed message, anything at all).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the body is not JSON")]
    NotJson,
    #[error("the body is JSON but not an object")]
    NotAnObject,
    #[error("the SNS envelope's `Message` is missing or not a JSON event")]
    BadSnsMessage,
    #[error("not an EventBridge event: `{0}` is missing or not a string")]
    NotAnEvent(&'static str),
    #[error("{detail_type} event without {what}")]
    Missing {
        detail_type: &'static str,
        what: &'static str,
    },
    #[error("{detail_type} event: `{field}` is not a {service} ARN")]
    BadArn {
        detail_type: &'static str,
        field: &'static str,
        service: &'static str,
    },
}

const LABEL_UPDATED: &str = "Secret Label Updated";
const PARAMETER_CHANGE: &str = "Parameter Store Change";
const CLOUDTRAIL: &str = "CloudTrail";

/// The changes a message body announces (often one, none for an event that changes no watched
/// value, several for a CloudTrail `DeleteParameters`).
pub fn parse(body: &str) -> Result<Vec<Change>, Malformed> {
    let value: Value = serde_json::from_str(body).map_err(|_| Malformed::NotJson)?;
    let mut event = value.as_object().ok_or(Malformed::NotAnObject)?;
    let inner: Value;
    if str_field(event, "Type") == Some("Notification") && !event.contains_key("detail-type") {
        let message = str_field(event, "Message").ok_or(Malformed::BadSnsMessage)?;
        inner = serde_json::from_str(message).map_err(|_| Malformed::BadSnsMessage)?;
        event = inner.as_object().ok_or(Malformed::BadSnsMessage)?;
    }
    parse_event(event)
}

fn parse_event(event: &Map<String, Value>) -> Result<Vec<Change>, Malformed> {
    let detail_type =
        str_field(event, "detail-type").ok_or(Malformed::NotAnEvent("detail-type"))?;
    let source = str_field(event, "source").ok_or(Malformed::NotAnEvent("source"))?;
    let empty = Map::new();
    let detail = event
        .get("detail")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let envelope = Envelope {
        region: str_field(event, "region").or_else(|| str_field(detail, "awsRegion")),
        account: str_field(event, "account"),
        time: str_field(event, "time").and_then(parse_time),
    };
    match (source, detail_type) {
        ("aws.secretsmanager", LABEL_UPDATED) => {
            let change = envelope.secret(
                non_empty(str_field(detail, "name")),
                first_resource(event).map(|a| (a, "resources[0]")),
                ChangeKind::VersionMoved,
                LABEL_UPDATED,
            )?;
            Ok(vec![change])
        }
        ("aws.ssm", PARAMETER_CHANGE) => {
            let kind = match str_field(detail, "operation") {
                Some("Delete") => ChangeKind::Deleted,
                _ => ChangeKind::VersionMoved,
            };
            let change = envelope.parameter(
                non_empty(str_field(detail, "name")),
                first_resource(event),
                kind,
                PARAMETER_CHANGE,
            )?;
            Ok(vec![change])
        }
        (_, "AWS API Call via CloudTrail" | "AWS Service Event via CloudTrail") => {
            cloudtrail(&envelope, source, detail)
        }
        _ => Ok(vec![]),
    }
}

/// The event's own region, account and time, used for every key it yields (an ARN fills in
/// what the event leaves out).
struct Envelope<'a> {
    region: Option<&'a str>,
    account: Option<&'a str>,
    time: Option<SystemTime>,
}

impl Envelope<'_> {
    fn key(
        &self,
        service: Service,
        name: String,
        arn: Option<Arn<'_>>,
        detail_type: &'static str,
    ) -> Result<EventKey, Malformed> {
        let region = non_empty(self.region)
            .or(arn.as_ref().map(|a| a.region))
            .and_then(|r| non_empty(Some(r)))
            .ok_or(Malformed::Missing {
                detail_type,
                what: "a region (`region`, `detail.awsRegion` or an ARN)",
            })?;
        let account = non_empty(self.account)
            .or_else(|| arn.as_ref().and_then(|a| non_empty(Some(a.account))))
            .map(str::to_string);
        Ok(EventKey {
            region: region.to_string(),
            account,
            service,
            name,
        })
    }

    /// A secret named by `name` and/or `arn` (with the field it came from); a name that is
    /// itself an ARN (a caller's `secretId`) counts as one.
    fn secret(
        &self,
        name: Option<&str>,
        arn: Option<(&str, &'static str)>,
        kind: ChangeKind,
        detail_type: &'static str,
    ) -> Result<Change, Malformed> {
        let (name, arn) = match (name, arn) {
            (Some(n), None) if n.starts_with("arn:") => (None, Some((n, "the secret id"))),
            other => other,
        };
        // An ARN that does not parse is an error only when nothing else names the secret.
        let arn = match arn.map(|(id, field)| (Arn::parse(id, "secretsmanager", "secret:"), field))
        {
            Some((None, field)) if name.is_none() => {
                return Err(Malformed::BadArn {
                    detail_type,
                    field,
                    service: "Secrets Manager secret",
                })
            }
            Some((arn, _)) => arn,
            None => None,
        };
        let name = match (name, &arn) {
            (Some(n), _) => n.to_string(),
            (None, Some(a)) => secret_name(a.resource).to_string(),
            (None, None) => {
                return Err(Malformed::Missing {
                    detail_type,
                    what: "the secret's name or ARN",
                })
            }
        };
        Ok(Change {
            key: self.key(Service::SecretsManager, name, arn, detail_type)?,
            kind,
            time: self.time,
        })
    }

    /// A parameter named by `name` (a name or an ARN) and/or the ARN in `resources[0]`.
    fn parameter(
        &self,
        name: Option<&str>,
        resource: Option<&str>,
        kind: ChangeKind,
        detail_type: &'static str,
    ) -> Result<Change, Malformed> {
        let (name, resource) = match (name, resource) {
            (Some(n), _) if n.starts_with("arn:") => (None, Some(n)),
            other => other,
        };
        let arn = match resource.map(|id| Arn::parse(id, "ssm", "parameter")) {
            Some(None) if name.is_none() => {
                return Err(Malformed::BadArn {
                    detail_type,
                    field: "the parameter ARN",
                    service: "Parameter Store parameter",
                })
            }
            Some(arn) => arn,
            None => None,
        };
        let name = match (name, &arn) {
            (Some(n), _) => n.to_string(),
            (None, Some(a)) => parameter_name(a.resource),
            (None, None) => {
                return Err(Malformed::Missing {
                    detail_type,
                    what: "`detail.name`",
                })
            }
        };
        Ok(Change {
            key: self.key(Service::ParameterStore, name, arn, detail_type)?,
            kind,
            time: self.time,
        })
    }
}

fn first_resource(event: &Map<String, Value>) -> Option<&str> {
    event
        .get("resources")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// What a CloudTrail event name means for the value it names; `None`: it changes nothing a
/// Secret is built from (reads, tags, policies, rotation set-up, starts and failures).
fn secret_call(event_name: &str) -> Option<ChangeKind> {
    Some(match event_name {
        "CreateSecret"
        | "PutSecretValue"
        | "UpdateSecret"
        | "UpdateSecretVersionStage"
        | "RotateSecret"
        | "RotationSucceeded"
        | "RotationAbandoned" => ChangeKind::VersionMoved,
        "DeleteSecret" => ChangeKind::Deleted,
        "RestoreSecret" => ChangeKind::Restored,
        _ => return None,
    })
}

fn parameter_call(event_name: &str) -> Option<ChangeKind> {
    Some(match event_name {
        "PutParameter" | "LabelParameterVersion" | "UnlabelParameterVersion" => {
            ChangeKind::VersionMoved
        }
        "DeleteParameter" | "DeleteParameters" => ChangeKind::Deleted,
        _ => return None,
    })
}

fn cloudtrail(
    envelope: &Envelope<'_>,
    source: &str,
    detail: &Map<String, Value>,
) -> Result<Vec<Change>, Malformed> {
    if detail.get("errorCode").is_some_and(|c| !c.is_null()) {
        return Ok(vec![]);
    }
    let event_name = str_field(detail, "eventName").ok_or(Malformed::Missing {
        detail_type: CLOUDTRAIL,
        what: "`detail.eventName`",
    })?;
    let event_source = str_field(detail, "eventSource");
    let empty = Map::new();
    let obj = |field: &str| {
        detail
            .get(field)
            .and_then(Value::as_object)
            .unwrap_or(&empty)
    };
    let (request, response) = (obj("requestParameters"), obj("responseElements"));
    if source == "aws.secretsmanager" || event_source == Some("secretsmanager.amazonaws.com") {
        let Some(kind) = secret_call(event_name) else {
            return Ok(vec![]);
        };
        // Full ARNs first (they carry region and account), then whatever the caller passed
        // (a name, or a full or partial ARN).
        let arns = [
            (response, "arn", "detail.responseElements.arn"),
            (response, "aRN", "detail.responseElements.aRN"),
            (
                obj("additionalEventData"),
                "SecretId",
                "detail.additionalEventData.SecretId",
            ),
            (
                obj("serviceEventDetails"),
                "secretId",
                "detail.serviceEventDetails.secretId",
            ),
        ];
        let arn = arns
            .iter()
            .find_map(|(o, k, field)| non_empty(str_field(o, k)).map(|id| (id, *field)));
        let name = [(request, "secretId"), (response, "name"), (request, "name")]
            .iter()
            .find_map(|(o, k)| non_empty(str_field(o, k)));
        let name = match (name, arn) {
            // A caller's ARN (maybe partial) adds nothing to the full one.
            (Some(n), Some(_)) if n.starts_with("arn:") => None,
            (n, _) => n,
        };
        if name.is_none() && arn.is_none() {
            return Err(Malformed::Missing {
                detail_type: CLOUDTRAIL,
                what: "the secret (`responseElements.arn`, `requestParameters.secretId`, ...)",
            });
        }
        return Ok(vec![envelope.secret(name, arn, kind, CLOUDTRAIL)?]);
    }
    if source == "aws.ssm" || event_source == Some("ssm.amazonaws.com") {
        let Some(kind) = parameter_call(event_name) else {
            return Ok(vec![]);
        };
        let mut names: Vec<&str> = non_empty(str_field(request, "name")).into_iter().collect();
        if let Some(list) = request.get("names").and_then(Value::as_array) {
            names.extend(
                list.iter()
                    .filter_map(Value::as_str)
                    .filter(|n| !n.is_empty()),
            );
        }
        if names.is_empty() {
            return Err(Malformed::Missing {
                detail_type: CLOUDTRAIL,
                what: "`requestParameters.name` or `requestParameters.names`",
            });
        }
        return names
            .into_iter()
            .map(|n| envelope.parameter(Some(n), None, kind, CLOUDTRAIL))
            .collect();
    }
    Ok(vec![])
}

/// `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`, checked for its service and resource type.
pub(super) struct Arn<'a> {
    pub region: &'a str,
    pub account: &'a str,
    /// Everything after the account: `secret:NAME-AbCdEf`, `parameter/prod/db`, `QUEUE`.
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(arn: &'a str, service: &str, resource_prefix: &str) -> Option<Arn<'a>> {
        let mut parts = arn.splitn(6, ':');
        let (scheme, partition) = (parts.next()?, parts.next()?);
        let (svc, region, account, resource) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        (scheme == "arn"
            && !partition.is_empty()
            && svc == service
            && resource.starts_with(resource_prefix)
            && resource.len() > resource_prefix.len())
        .then_some(Arn {
            region,
            account,
            resource,
        })
    }
}

/// `secret:NAME-AbCdEf` → `NAME`. A secret ARN ends with `-` and six random characters;
/// a partial ARN may leave them out, and, as Secrets Manager itself does, an ending of that
/// shape is taken for the suffix.
pub(super) fn secret_name(resource: &str) -> &str {
    let name = resource.strip_prefix("secret:").unwrap_or(resource);
    let b = name.as_bytes();
    match b.len() {
        n if n > 7 && b[n - 7] == b'-' && b[n - 6..].iter().all(u8::is_ascii_alphanumeric) => {
            &name[..n - 7]
        }
        _ => name,
    }
}

/// `parameter/prod/db` → `/prod/db`; `parameter/plain` → `plain`. (A one-segment ARN does not
/// say whether the name had a leading `/`: matching ignores it there.)
pub(super) fn parameter_name(resource: &str) -> String {
    let path = resource.strip_prefix("parameter").unwrap_or(resource);
    let path = path.strip_prefix('/').unwrap_or(path);
    if path.contains('/') {
        format!("/{path}")
    } else {
        path.to_string()
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

fn parse_time(s: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| SystemTime::from(t.with_timezone(&chrono::Utc)))
}
