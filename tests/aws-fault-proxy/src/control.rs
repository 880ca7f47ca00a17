//! Control API, served on the proxy's own port under `/__proxy/` (never forwarded, never
//! counted). For scripts and the demo:
//!
//! | request | effect | answer |
//! |---|---|---|
//! | `GET /__proxy/counts` | | 200 `{"calls":{"secretsmanager:GetSecretValue":3},"faulted":{"secretsmanager:GetSecretValue":1},"regions":{"us-east-1":{"secretsmanager:GetSecretValue":3}},"total":3}` |
//! | `DELETE /__proxy/counts` | zero the counters | 204 |
//! | `GET /__proxy/faults` | | 200 JSON array of the active rules (remaining `times`) |
//! | `POST /__proxy/faults` | add a rule, body = JSON [`Fault`] | 201 with the rule; 400 if invalid |
//! | `DELETE /__proxy/faults` | remove every rule | 204 |
//! | `POST /__proxy/reset` | zero the counters and remove every rule | 204 |
//!
//! `calls` counts every attempt (faulted included); `faulted` only those a rule applied to;
//! `regions` the signed attempts per region of the SigV4 credential scope. Keys are
//! `service:Operation`. A fault rule may name a `region` (see [`Fault`]).
//!
//! ```sh
//! P=http://127.0.0.1:PORT
//! curl -sf -XPOST $P/__proxy/faults -d '{"service":"secretsmanager","operation":"GetSecretValue","kind":"throttle","times":3}'
//! curl -sf -XPOST $P/__proxy/faults -d '{"kind":"server_error","status":503}'
//! curl -sf -XPOST $P/__proxy/faults -d '{"service":"ssm","kind":"latency","ms":1500}'
//! curl -sf $P/__proxy/counts | jq '.calls["secretsmanager:GetSecretValue"] // 0'
//! curl -sf -XPOST $P/__proxy/reset
//! ```

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Method, Response, StatusCode};

use crate::faults::Fault;
use crate::proxy::{full, plain, ProxyBody, State};

/// Path prefix of the control API.
pub const PREFIX: &str = "/__proxy/";

pub(crate) fn is_control_path(path: &str) -> bool {
    path.starts_with(PREFIX) || path == PREFIX.trim_end_matches('/')
}

pub(crate) fn handle(
    state: &State,
    parts: &http::request::Parts,
    body: &Bytes,
) -> Response<ProxyBody> {
    let route = parts
        .uri
        .path()
        .trim_start_matches(PREFIX)
        .trim_end_matches('/');
    match (&parts.method, route) {
        (&Method::GET, "counts") => {
            let snapshot = state.counters.snapshot();
            let mut calls = BTreeMap::new();
            let mut faulted = BTreeMap::new();
            let mut total = 0u64;
            for ((service, operation), (n, f)) in snapshot {
                let key = format!("{service}:{operation}");
                total += n;
                if f > 0 {
                    faulted.insert(key.clone(), f);
                }
                calls.insert(key, n);
            }
            let mut regions: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
            for ((region, service, operation), n) in state.regional.snapshot() {
                regions
                    .entry(region)
                    .or_default()
                    .insert(format!("{service}:{operation}"), n);
            }
            json(
                StatusCode::OK,
                &serde_json::json!({ "calls": calls, "faulted": faulted, "regions": regions, "total": total }),
            )
        }
        (&Method::DELETE, "counts") => {
            state.counters.reset();
            state.regional.reset();
            no_content()
        }
        (&Method::GET, "faults") => json(StatusCode::OK, &state.faults.list()),
        (&Method::POST, "faults") => match serde_json::from_slice::<Fault>(body) {
            Ok(fault) => {
                state.faults.inject(fault.clone());
                json(StatusCode::CREATED, &fault)
            }
            Err(e) => plain(StatusCode::BAD_REQUEST, format!("invalid fault: {e}\n")),
        },
        (&Method::DELETE, "faults") => {
            state.faults.clear();
            no_content()
        }
        (&Method::POST, "reset") => {
            state.counters.reset();
            state.regional.reset();
            state.faults.clear();
            no_content()
        }
        (_, "counts" | "faults" | "reset") => plain(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} not allowed on {}\n", parts.method, parts.uri.path()),
        ),
        _ => plain(
            StatusCode::NOT_FOUND,
            format!("no control endpoint {}\n", parts.uri.path()),
        ),
    }
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<ProxyBody> {
    let mut text =
        serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text.push('\n');
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(full(text))
        .expect("valid response")
}

fn no_content() -> Response<ProxyBody> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(full(Bytes::new()))
        .expect("valid response")
}
