//! Fault rules and the AWS-shaped error answers they produce.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::counting::{form_value, CallKey};

/// Account id used in generated ARNs (moto's default account).
pub const ACCOUNT_ID: &str = "123456789012";
/// The principal named in [`FaultKind::AccessDenied`] messages.
pub const DENIED_PRINCIPAL: &str = "arn:aws:iam::123456789012:user/test";

/// What an injected fault does to a matching request.
///
/// Wire answers (awsJson = Secrets Manager, SSM, anything sent with `X-Amz-Target`;
/// awsQuery = STS and other form-encoded `Action=` requests):
///
/// | kind | awsJson | awsQuery |
/// |---|---|---|
/// | `Throttle` | 400 `ThrottlingException` "Rate exceeded" | 400 `Sender`/`Throttling` "Rate exceeded" |
/// | `AccessDenied` | 400 `AccessDeniedException` | 403 `Sender`/`AccessDenied` |
/// | `ServerError(500)` | 500 `InternalServiceError` (secretsmanager), `InternalServerError` (ssm), else `InternalFailure` | 500 `Receiver`/`InternalFailure` |
/// | `ServerError(503)` | 503 `ServiceUnavailable` | 503 `Receiver`/`ServiceUnavailable` |
/// | `ServerError(other)` | that status, `InternalFailure` | that status, `Receiver`/`InternalFailure` |
///
/// awsJson errors carry `x-amzn-ErrorType: <code>`, `x-amzn-RequestId` and the body
/// `{"__type":"<code>","message":"..."}`; awsQuery errors carry
/// `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`.
/// The access-denied message names the action like IAM does:
/// `User: arn:aws:iam::123456789012:user/test is not authorized to perform:
/// secretsmanager:GetSecretValue on resource: <arn> because no identity-based policy allows the
/// secretsmanager:GetSecretValue action`.
///
/// `Latency(d)` waits `d` and then forwards the call normally. `DropConnection` closes the TCP
/// connection without answering (the SDK reports a dispatch / IO error).
///
/// JSON form (control API), flattened into [`Fault`]: `"kind":"throttle"`,
/// `"kind":"server_error","status":503`, `"kind":"access_denied"`, `"kind":"latency","ms":250`,
/// `"kind":"drop_connection"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "KindRepr", try_from = "KindRepr")]
pub enum FaultKind {
    Throttle,
    ServerError(u16),
    AccessDenied,
    Latency(Duration),
    DropConnection,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum KindRepr {
    Throttle,
    ServerError { status: u16 },
    AccessDenied,
    Latency { ms: u64 },
    DropConnection,
}

impl From<FaultKind> for KindRepr {
    fn from(k: FaultKind) -> Self {
        match k {
            FaultKind::Throttle => KindRepr::Throttle,
            FaultKind::ServerError(status) => KindRepr::ServerError { status },
            FaultKind::AccessDenied => KindRepr::AccessDenied,
            FaultKind::Latency(d) => KindRepr::Latency {
                ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            },
            FaultKind::DropConnection => KindRepr::DropConnection,
        }
    }
}

impl TryFrom<KindRepr> for FaultKind {
    type Error = String;
    fn try_from(k: KindRepr) -> Result<Self, String> {
        Ok(match k {
            KindRepr::Throttle => FaultKind::Throttle,
            KindRepr::ServerError { status } if (500..=599).contains(&status) => {
                FaultKind::ServerError(status)
            }
            KindRepr::ServerError { status } => {
                return Err(format!(
                    "server_error status must be 500..=599, got {status}"
                ))
            }
            KindRepr::AccessDenied => FaultKind::AccessDenied,
            KindRepr::Latency { ms } => FaultKind::Latency(Duration::from_millis(ms)),
            KindRepr::DropConnection => FaultKind::DropConnection,
        })
    }
}

/// A fault rule. `None` service / operation / region match any; `times: None` lasts until
/// cleared. The region is the one a request is signed for (its SigV4 credential scope); a rule
/// with a region never matches an unsigned request.
///
/// JSON (control API): `{"service":"ssm","operation":"GetParameters","kind":"throttle","times":2}`,
/// `{"service":"secretsmanager","region":"us-east-1","kind":"server_error","status":503}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

impl Fault {
    /// A rule matching every request, until cleared.
    pub fn new(kind: FaultKind) -> Self {
        Fault {
            region: None,
            service: None,
            operation: None,
            kind,
            times: None,
        }
    }

    /// A rule for one operation of one service, e.g. `("secretsmanager", "GetSecretValue")`.
    pub fn on(service: &str, operation: &str, kind: FaultKind) -> Self {
        Fault::new(kind).service(service).operation(operation)
    }

    pub fn service(mut self, service: &str) -> Self {
        self.service = Some(service.to_string());
        self
    }

    pub fn operation(mut self, operation: &str) -> Self {
        self.operation = Some(operation.to_string());
        self
    }

    /// Only requests signed for `region`.
    pub fn region(mut self, region: &str) -> Self {
        self.region = Some(region.to_string());
        self
    }

    /// Apply to the next `n` matching requests only.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, key: &CallKey, region: Option<&str>) -> bool {
        self.region.as_deref().is_none_or(|r| Some(r) == region)
            && self
                .service
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(&key.service))
            && self.operation.as_deref().is_none_or(|o| o == key.operation)
    }
}

/// Active rules, in injection order; `Fault::times` is decremented as rules fire.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    rules: Mutex<Vec<Fault>>,
}

impl FaultSet {
    pub(crate) fn inject(&self, fault: Fault) {
        self.lock().push(fault);
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    pub(crate) fn list(&self) -> Vec<Fault> {
        self.lock().clone()
    }

    /// The fault to apply to this request, consuming one use of its rule.
    pub(crate) fn take(&self, key: &CallKey, region: Option<&str>) -> Option<FaultKind> {
        let mut rules = self.lock();
        rules.retain(|f| f.times != Some(0));
        let idx = rules.iter().position(|f| f.matches(key, region))?;
        let kind = rules[idx].kind.clone();
        if let Some(n) = rules[idx].times.as_mut() {
            *n -= 1;
            if *n == 0 {
                rules.remove(idx);
            }
        }
        Some(kind)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Wire protocol of a request, which decides the shape of error answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// awsJson 1.0 / 1.1 (`X-Amz-Target`); carries the request content type.
    Json,
    /// awsQuery (form-encoded `Action=...`), XML answers.
    Query,
}

pub(crate) fn protocol_of(headers: &HeaderMap) -> Protocol {
    if headers.contains_key("x-amz-target") {
        Protocol::Json
    } else {
        let form = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if form {
            Protocol::Query
        } else {
            Protocol::Json
        }
    }
}

/// The AWS error answer for `kind` (not for `Latency` / `DropConnection`, which have none).
pub(crate) fn error_response(
    kind: &FaultKind,
    key: &CallKey,
    req_headers: &HeaderMap,
    req_body: &[u8],
) -> Response<Bytes> {
    let protocol = protocol_of(req_headers);
    let (status, sender, code, message): (u16, bool, &str, String) = match (kind, protocol) {
        (FaultKind::Throttle, Protocol::Json) => {
            (400, true, "ThrottlingException", "Rate exceeded".into())
        }
        (FaultKind::Throttle, Protocol::Query) => (400, true, "Throttling", "Rate exceeded".into()),
        (FaultKind::AccessDenied, p) => {
            let action = format!("{}:{}", key.service, key.operation);
            let resource = resource_arn(key, region_of(req_headers), req_body);
            let message = format!(
                "User: {DENIED_PRINCIPAL} is not authorized to perform: {action} on resource: \
                 {resource} because no identity-based policy allows the {action} action"
            );
            match p {
                Protocol::Json => (400, true, "AccessDeniedException", message),
                Protocol::Query => (403, true, "AccessDenied", message),
            }
        }
        (FaultKind::ServerError(status), p) => {
            let status = if (500..=599).contains(status) {
                *status
            } else {
                500
            };
            let code = match (status, p, key.service.as_str()) {
                (503, _, _) => "ServiceUnavailable",
                (500, Protocol::Json, "secretsmanager") => "InternalServiceError",
                (500, Protocol::Json, "ssm") => "InternalServerError",
                _ => "InternalFailure",
            };
            let message = if status == 503 {
                "Service Unavailable"
            } else {
                "We encountered an internal error. Please try again."
            };
            (status, false, code, message.into())
        }
        (FaultKind::Latency(_) | FaultKind::DropConnection, _) => (
            500,
            false,
            "InternalFailure",
            "fault has no error answer".into(),
        ),
    };
    let request_id = request_id();
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("x-amzn-RequestId", request_id.as_str());
    let body = match protocol {
        Protocol::Json => {
            let content_type = req_headers
                .get(http::header::CONTENT_TYPE)
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("application/x-amz-json-1.1"));
            builder = builder
                .header(http::header::CONTENT_TYPE, content_type)
                .header("x-amzn-ErrorType", code);
            serde_json::json!({ "__type": code, "message": message }).to_string()
        }
        Protocol::Query => {
            builder = builder.header(http::header::CONTENT_TYPE, "text/xml");
            let namespace = match key.service.as_str() {
                "sts" => "https://sts.amazonaws.com/doc/2011-06-15/",
                _ => "http://queue.amazonaws.com/doc/2012-11-05/",
            };
            format!(
                "<ErrorResponse xmlns=\"{namespace}\">\n  <Error>\n    <Type>{}</Type>\n    \
                 <Code>{code}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
                 <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
                if sender { "Sender" } else { "Receiver" },
                xml_escape(&message)
            )
        }
    };
    builder
        .body(Bytes::from(body))
        .expect("static error response parts are valid")
}

fn region_of(headers: &HeaderMap) -> String {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split([',', ' ']).next())
        .and_then(|c| c.split('/').nth(2))
        .filter(|r| !r.is_empty())
        .unwrap_or("us-east-1")
        .to_string()
}

/// Best-effort ARN of the resource a request is about, for access-denied messages.
fn resource_arn(key: &CallKey, region: String, body: &[u8]) -> String {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| -> Option<String> {
        let v = json.as_ref()?.get(name)?;
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(a) => a.first()?.as_str().map(str::to_string),
            _ => None,
        }
    };
    match key.service.as_str() {
        "secretsmanager" => match field("SecretId").or_else(|| field("Name")) {
            Some(id) if id.starts_with("arn:") => id,
            Some(id) => format!("arn:aws:secretsmanager:{region}:{ACCOUNT_ID}:secret:{id}"),
            None => "*".to_string(),
        },
        "ssm" => match field("Name")
            .or_else(|| field("Names"))
            .or_else(|| field("Path"))
        {
            Some(name) if name.starts_with("arn:") => name,
            Some(name) => {
                let name = name.split(':').next().unwrap_or_default();
                let sep = if name.starts_with('/') { "" } else { "/" };
                format!("arn:aws:ssm:{region}:{ACCOUNT_ID}:parameter{sep}{name}")
            }
            None => "*".to_string(),
        },
        "sts" => form_value(body, "RoleArn").unwrap_or_else(|| "*".to_string()),
        _ => "*".to_string(),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn request_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (nanos >> 32) as u32,
        (nanos >> 16) as u16,
        nanos & 0xfff,
        seq & 0xfff,
        (nanos ^ seq.rotate_left(24)) & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str, o: &str) -> CallKey {
        CallKey {
            service: s.into(),
            operation: o.into(),
        }
    }

    #[test]
    fn a_rule_with_a_region_matches_only_requests_signed_for_it() {
        let set = FaultSet::default();
        set.inject(
            Fault::new(FaultKind::ServerError(503))
                .service("secretsmanager")
                .region("us-east-1"),
        );
        let gsv = key("secretsmanager", "GetSecretValue");
        assert_eq!(set.take(&gsv, Some("us-west-2")), None);
        assert_eq!(set.take(&gsv, None), None);
        assert_eq!(
            set.take(&gsv, Some("us-east-1")),
            Some(FaultKind::ServerError(503))
        );
        assert_eq!(
            set.take(&key("ssm", "GetParameter"), Some("us-east-1")),
            None
        );
        let json: Fault = serde_json::from_str(
            r#"{"service":"secretsmanager","region":"us-east-1","kind":"drop_connection"}"#,
        )
        .unwrap();
        assert_eq!(
            json,
            Fault::new(FaultKind::DropConnection)
                .service("secretsmanager")
                .region("us-east-1")
        );
    }

    #[test]
    fn rules_apply_in_order_and_times_run_out() {
        let set = FaultSet::default();
        set.inject(Fault::on("ssm", "GetParameters", FaultKind::Throttle).times(2));
        set.inject(Fault::new(FaultKind::AccessDenied).times(1));
        let gp = key("ssm", "GetParameters");
        assert_eq!(set.take(&gp, None), Some(FaultKind::Throttle));
        assert_eq!(
            set.take(&key("secretsmanager", "GetSecretValue"), None),
            Some(FaultKind::AccessDenied)
        );
        assert_eq!(
            set.take(&key("secretsmanager", "GetSecretValue"), None),
            None
        );
        assert_eq!(set.take(&gp, None), Some(FaultKind::Throttle));
        assert_eq!(set.take(&gp, None), None);
        assert!(set.list().is_empty());
    }

    #[test]
    fn service_match_is_case_insensitive_operation_exact() {
        let set = FaultSet::default();
        set.inject(Fault::on("SSM", "GetParameter", FaultKind::Throttle));
        assert_eq!(set.take(&key("ssm", "GetParameters"), None), None);
        assert_eq!(
            set.take(&key("ssm", "GetParameter"), None),
            Some(FaultKind::Throttle)
        );
        assert_eq!(
            set.take(&key("ssm", "GetParameter"), None),
            Some(FaultKind::Throttle)
        );
    }

    #[test]
    fn json_form_round_trips_and_rejects_bad_status() {
        let f: Fault = serde_json::from_str(
            r#"{"service":"ssm","operation":"GetParameters","kind":"server_error","status":503,"times":2}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            Fault::on("ssm", "GetParameters", FaultKind::ServerError(503)).times(2)
        );
        let f: Fault = serde_json::from_str(r#"{"kind":"latency","ms":250}"#).unwrap();
        assert_eq!(
            f,
            Fault::new(FaultKind::Latency(Duration::from_millis(250)))
        );
        let back: Fault = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"server_error","status":404}"#).is_err());
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"explode"}"#).is_err());
    }

    #[test]
    fn query_access_denied_names_role() {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let body = b"Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fr&Version=2011-06-15";
        let resp = error_response(
            &FaultKind::AccessDenied,
            &key("sts", "AssumeRole"),
            &h,
            body,
        );
        assert_eq!(resp.status(), 403);
        let text = std::str::from_utf8(resp.body()).unwrap();
        assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");
        assert!(
            text.contains("perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/r"),
            "{text}"
        );
    }
}
