//! Which AWS operation a request is, and per-operation call counters.

use std::collections::BTreeMap;
use std::sync::Mutex;

use http::{HeaderMap, Method};

/// The `(service, operation)` a request was identified as, e.g. `("ssm", "GetParameters")`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey {
    /// SigV4 signing name: `secretsmanager`, `ssm`, `sts`, ... or `unknown`.
    pub service: String,
    /// API operation name: `GetSecretValue`, `AssumeRole`, ... or `<METHOD> <path>` if unknown.
    pub operation: String,
}

/// Identifies the AWS service and operation of a request (see the crate docs for the rules).
pub fn identify(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> CallKey {
    let scope_service = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(service_from_authorization);
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split_once('.'));
    let action = query
        .and_then(|q| form_value(q.as_bytes(), "Action"))
        .or_else(|| {
            let is_form = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
            if is_form {
                form_value(body, "Action")
            } else {
                None
            }
        });
    let (target_service, operation) = match (target, action) {
        (Some((prefix, op)), _) => (
            Some(service_from_target_prefix(prefix)),
            Some(op.to_string()),
        ),
        (None, Some(action)) => (None, Some(action)),
        (None, None) => (None, None),
    };
    match operation {
        Some(operation) => CallKey {
            service: scope_service
                .or(target_service)
                .or_else(|| unsigned_service(&operation))
                .unwrap_or_else(|| "unknown".to_string()),
            operation,
        },
        None => CallKey {
            service: "unknown".to_string(),
            operation: format!("{method} {path}"),
        },
    }
}

/// The STS operations that are called without a signature (the caller has no credentials yet).
fn unsigned_service(operation: &str) -> Option<String> {
    matches!(
        operation,
        "AssumeRoleWithWebIdentity" | "AssumeRoleWithSAML"
    )
    .then(|| "sts".to_string())
}

/// The region a request is signed for: `Credential=AKID/20250101/us-west-2/secretsmanager/
/// aws4_request` in the SigV4 `Authorization` header → `us-west-2`. `None` for unsigned
/// requests.
pub fn region_of(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    let cred = cred.split([',', ' ']).next()?;
    let mut parts = cred.rsplit('/');
    let (terminator, _service, region) = (parts.next()?, parts.next()?, parts.next()?);
    (terminator == "aws4_request" && !region.is_empty()).then(|| region.to_string())
}

/// Attempts per (region, service, operation), for signed requests.
#[derive(Debug, Default)]
pub(crate) struct RegionCounters {
    inner: Mutex<BTreeMap<(String, String, String), u64>>,
}

impl RegionCounters {
    pub(crate) fn record(&self, region: &str, key: &CallKey) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((
            region.to_string(),
            key.service.clone(),
            key.operation.clone(),
        ))
        .or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<(String, String, String), u64> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn reset(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// `AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/sts/aws4_request, ...` → `sts`.
fn service_from_authorization(auth: &str) -> Option<String> {
    let cred = auth.split("Credential=").nth(1)?;
    let cred = cred.split([',', ' ']).next()?;
    let mut parts = cred.rsplit('/');
    let terminator = parts.next()?;
    let service = parts.next()?;
    (terminator == "aws4_request" && !service.is_empty()).then(|| service.to_string())
}

fn service_from_target_prefix(prefix: &str) -> String {
    match prefix {
        "AmazonSSM" => "ssm".to_string(),
        "AmazonSQS" => "sqs".to_string(),
        "TrentService" => "kms".to_string(),
        other => other.to_ascii_lowercase(),
    }
}

/// Value of `key` in an `application/x-www-form-urlencoded` string.
pub(crate) fn form_value(form: &[u8], key: &str) -> Option<String> {
    form.split(|b| *b == b'&').find_map(|pair| {
        let mut it = pair.splitn(2, |b| *b == b'=');
        let k = percent_decode(it.next()?);
        (k == key).then(|| percent_decode(it.next().unwrap_or_default()))
    })
}

fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => {
                let hex = std::str::from_utf8(&raw[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Per-operation counters: all attempts, and those to which a fault applied.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    inner: Mutex<BTreeMap<(String, String), (u64, u64)>>,
}

impl Counters {
    pub(crate) fn record(&self, key: &CallKey, faulted: bool) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map
            .entry((key.service.clone(), key.operation.clone()))
            .or_default();
        entry.0 += 1;
        if faulted {
            entry.1 += 1;
        }
    }

    pub(crate) fn get(&self, service: &str, operation: &str) -> (u64, u64) {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(service.to_string(), operation.to_string()))
            .copied()
            .unwrap_or_default()
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<(String, String), (u64, u64)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn reset(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const SM_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20250101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";

    #[test]
    fn json_target_with_scope() {
        let h = headers(&[
            ("x-amz-target", "secretsmanager.GetSecretValue"),
            ("authorization", SM_AUTH),
        ]);
        let k = identify(&Method::POST, "/", None, &h, b"{}");
        assert_eq!(
            (k.service.as_str(), k.operation.as_str()),
            ("secretsmanager", "GetSecretValue")
        );
    }

    #[test]
    fn an_unsigned_web_identity_exchange_is_sts() {
        let h = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        let body = b"Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=x";
        let k = identify(&Method::POST, "/", None, &h, body);
        assert_eq!(
            (k.service.as_str(), k.operation.as_str()),
            ("sts", "AssumeRoleWithWebIdentity")
        );
    }

    #[test]
    fn json_target_without_scope_maps_prefix() {
        let h = headers(&[("x-amz-target", "AmazonSSM.GetParameters")]);
        let k = identify(&Method::POST, "/", None, &h, b"{}");
        assert_eq!(
            (k.service.as_str(), k.operation.as_str()),
            ("ssm", "GetParameters")
        );
    }

    #[test]
    fn query_protocol_action_in_form_body() {
        let h = headers(&[
            ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=x",
            ),
        ]);
        let body =
            b"Version=2011-06-15&Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr";
        let k = identify(&Method::POST, "/", None, &h, body);
        assert_eq!(
            (k.service.as_str(), k.operation.as_str()),
            ("sts", "AssumeRole")
        );
        assert_eq!(
            form_value(body, "RoleArn").unwrap(),
            "arn:aws:iam::1:role/r"
        );
    }

    #[test]
    fn action_in_query_string() {
        let k = identify(
            &Method::GET,
            "/",
            Some("Action=GetCallerIdentity&Version=2011-06-15"),
            &HeaderMap::new(),
            b"",
        );
        assert_eq!(
            (k.service.as_str(), k.operation.as_str()),
            ("unknown", "GetCallerIdentity")
        );
    }

    #[test]
    fn unidentified_request_keeps_method_and_path() {
        let k = identify(&Method::GET, "/moto-api/", None, &HeaderMap::new(), b"");
        assert_eq!(
            (k.service.as_str(), k.operation.as_str()),
            ("unknown", "GET /moto-api/")
        );
    }

    #[test]
    fn the_region_comes_from_the_credential_scope() {
        let h = headers(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-west-2/secretsmanager/aws4_request, SignedHeaders=host, Signature=x",
        )]);
        assert_eq!(region_of(&h).as_deref(), Some("us-west-2"));
        assert_eq!(region_of(&HeaderMap::new()), None);
        let bad = headers(&[("authorization", "Bearer x")]);
        assert_eq!(region_of(&bad), None);
    }

    #[test]
    fn percent_decoding_edge_cases() {
        assert_eq!(percent_decode(b"a%2Fb+c"), "a/b c");
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%zz"), "%zz");
    }
}
