//! The forwarding server.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::counting::{identify, region_of, Counters, RegionCounters};
use crate::faults::{error_response, Fault, FaultKind, FaultSet};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type ProxyBody = BoxBody<Bytes, BoxError>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// Shared by the forwarding path and the control API.
pub(crate) struct State {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    pub(crate) counters: Counters,
    /// The subset of attempts that ask for decrypted values (`"WithDecryption": true`): SSM
    /// value reads, told apart from version checks that use the same operation.
    pub(crate) decrypted: Counters,
    /// Signed attempts per region (from the SigV4 credential scope).
    pub(crate) regional: RegionCounters,
    pub(crate) faults: FaultSet,
}

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
struct DroppedByFault;

impl std::fmt::Display for DroppedByFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by injected fault")
    }
}

impl std::error::Error for DroppedByFault {}

/// A call-counting, fault-injecting HTTP proxy in front of an AWS API endpoint (moto).
///
/// Runs on the Tokio runtime it was started from; stops (closing all its connections) when
/// dropped. See the crate docs for how calls are identified and faults chosen.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream` (e.g. `http://127.0.0.1:5000`).
    ///
    /// Must be called from within a Tokio runtime (e.g. a `#[tokio::test]`).
    pub fn start(upstream: &str) -> anyhow::Result<FaultProxy> {
        FaultProxy::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream)
    }

    /// Like [`FaultProxy::start`], listening on `listen`.
    pub fn start_on(listen: SocketAddr, upstream: &str) -> anyhow::Result<FaultProxy> {
        let runtime = tokio::runtime::Handle::try_current()
            .context("FaultProxy::start must be called from within a Tokio runtime")?;
        let upstream_uri: Uri = upstream
            .parse()
            .with_context(|| format!("invalid upstream URL {upstream:?}"))?;
        anyhow::ensure!(
            upstream_uri.scheme_str() == Some("http") && upstream_uri.authority().is_some(),
            "upstream must be a plain http://host:port URL, got {upstream:?}"
        );
        let std_listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("cannot listen on {listen}"))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            counters: Counters::default(),
            decrypted: Counters::default(),
            regional: RegionCounters::default(),
            faults: FaultSet::default(),
        });
        let task = runtime.spawn(serve(listener, state.clone()));
        Ok(FaultProxy { addr, state, task })
    }

    /// Base URL to give the AWS SDK as `endpoint_url`, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Attempts of `(service, operation)` since the last reset, faulted ones included.
    pub fn count(&self, service: &str, operation: &str) -> u64 {
        self.state.counters.get(service, operation).0
    }

    /// Attempts of `(service, operation)` whose JSON body asks `"WithDecryption": true` (SSM
    /// value reads; a version check's `GetParameters` asks for no decryption).
    pub fn count_decrypted(&self, service: &str, operation: &str) -> u64 {
        self.state.decrypted.get(service, operation).0
    }

    /// Attempts of `(service, operation)` to which a fault rule applied.
    pub fn faulted(&self, service: &str, operation: &str) -> u64 {
        self.state.counters.get(service, operation).1
    }

    /// All attempts per `(service, operation)`, faulted ones included.
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.state
            .counters
            .snapshot()
            .into_iter()
            .map(|(k, (calls, _))| (k, calls))
            .collect()
    }

    /// Attempts of `(service, operation)` signed for `region`, faulted ones included.
    pub fn count_in(&self, region: &str, service: &str, operation: &str) -> u64 {
        let key = (
            region.to_string(),
            service.to_string(),
            operation.to_string(),
        );
        self.state
            .regional
            .snapshot()
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    /// All signed attempts per `(region, service, operation)`, faulted ones included.
    pub fn counts_by_region(&self) -> BTreeMap<(String, String, String), u64> {
        self.state.regional.snapshot()
    }

    /// Sum of all attempts.
    pub fn total(&self) -> u64 {
        self.counts().values().sum()
    }

    pub fn reset_counts(&self) {
        self.state.counters.reset();
        self.state.decrypted.reset();
        self.state.regional.reset();
    }

    /// Adds a fault rule (after the existing ones).
    pub fn inject(&self, fault: Fault) {
        self.state.faults.inject(fault);
    }

    /// The rules still active, with their remaining `times`.
    pub fn faults(&self) -> Vec<Fault> {
        self.state.faults.list()
    }

    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.state.upstream)
            .finish_non_exhaustive()
    }
}

/// Accept loop; owning the connection tasks, so aborting it closes every connection.
async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let state = state.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| handle(state.clone(), req));
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "proxy connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, DroppedByFault> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Ok(plain(StatusCode::BAD_REQUEST, format!("reading body: {e}"))),
    };
    if crate::control::is_control_path(parts.uri.path()) {
        return Ok(crate::control::handle(&state, &parts, &body));
    }
    let key = identify(
        &parts.method,
        parts.uri.path(),
        parts.uri.query(),
        &parts.headers,
        &body,
    );
    let region = region_of(&parts.headers);
    let fault = state.faults.take(&key, region.as_deref());
    state.counters.record(&key, fault.is_some());
    if let Some(region) = &region {
        state.regional.record(region, &key);
    }
    if asks_decryption(&body) {
        state.decrypted.record(&key, fault.is_some());
    }
    match fault {
        None => {}
        Some(FaultKind::Latency(delay)) => tokio::time::sleep(delay).await,
        Some(FaultKind::DropConnection) => return Err(DroppedByFault),
        Some(kind) => {
            return Ok(error_response(&kind, &key, &parts.headers, &body).map(full));
        }
    }
    Ok(forward(&state, parts, body).await)
}

/// True for an awsJson body with `"WithDecryption": true`.
fn asks_decryption(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("WithDecryption").and_then(|d| d.as_bool()))
        .unwrap_or(false)
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(http::header::UPGRADE);
}

async fn forward(state: &State, parts: http::request::Parts, body: Bytes) -> Response<ProxyBody> {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri = match format!("{}{}", state.upstream, path_and_query).parse::<Uri>() {
        Ok(uri) => uri,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("bad request target: {e}")),
    };
    let mut upstream_req = Request::new(Full::new(body));
    *upstream_req.method_mut() = parts.method;
    *upstream_req.uri_mut() = uri;
    *upstream_req.headers_mut() = parts.headers;
    strip_hop_by_hop(upstream_req.headers_mut());
    match state.client.request(upstream_req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.map_err(BoxError::from).boxed())
        }
        Err(e) => plain(
            StatusCode::BAD_GATEWAY,
            format!("aws-fault-proxy: upstream {} failed: {e}", state.upstream),
        ),
    }
}

pub(crate) fn plain(status: StatusCode, text: String) -> Response<ProxyBody> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(text))
        .expect("valid response")
}
