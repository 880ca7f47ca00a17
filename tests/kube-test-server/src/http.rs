//! HTTP front: routing of Kubernetes REST paths, content negotiation (JSON, YAML bodies;
//! Table / PartialObjectMetadata / aggregated-discovery responses), counting and fault
//! injection, and the translation of each verb into a [`Store`] call.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine;
use http::{HeaderMap, Method};
use serde_json::{json, Value};

use crate::discovery;
use crate::faults::{Counters, Faults, Latencies};
use crate::fields::Scope;
use crate::openapi;
use crate::patch;
use crate::present::{self, ListBody, Presented};
use crate::prune::{self, FieldValidation};
use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{success_status, ApiError, ApiResult};
use crate::store::{
    DeleteOptions, DeleteOutcome, Obj, ObjKey, Propagation, Store, Stored, WriteCtx,
};
use crate::table;
use crate::watch::{self, WatchRequest};

/// State shared by all connections.
pub struct Shared {
    pub store: Mutex<Store>,
    pub counters: Mutex<Counters>,
    pub latencies: Mutex<Latencies>,
    pub faults: Mutex<Faults>,
    /// Bumped by `drop_watches()`: every open watch aborts.
    pub drop_watches: tokio::sync::watch::Sender<u64>,
    /// Set on shutdown: watches end so graceful shutdown can finish.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub bookmark_interval: Duration,
    pub addr: SocketAddr,
}

const MAX_BODY: usize = 64 * 1024 * 1024;
const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

fn json_response(code: u16, v: &Value) -> Response {
    json_response_typed(code, v, "application/json")
}

fn json_response_typed(code: u16, v: &Value, content_type: &str) -> Response {
    bytes_response(code, present::to_vec(v), content_type)
}

fn bytes_response(code: u16, body: Vec<u8>, content_type: &str) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", content_type)
        .header("cache-control", "no-cache, private")
        .body(Body::from(body))
        .expect("response")
}

/// One `Warning: 299 - "text"` header per distinct warning, as the real server sends them.
fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    let mut sent: Vec<&String> = Vec::new();
    for w in warnings {
        if sent.contains(&w) {
            continue;
        }
        sent.push(w);
        let text = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = http::HeaderValue::from_bytes(format!("299 - \"{text}\"").as_bytes()) {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

/// What the client asked to receive.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Output {
    Json,
    Metadata,
    Table,
    AggregatedV2,
    AggregatedV2Beta1,
}

/// Picks the first media range we can produce (protobuf/CBOR ranges are skipped, so clients
/// that list JSON as a fallback get JSON).
fn negotiate(headers: &HeaderMap) -> Output {
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    for range in accept.split(',') {
        let mut parts = range.split(';').map(|s| s.trim());
        let mime = parts.next().unwrap_or_default();
        if !matches!(mime, "application/json" | "*/*" | "application/*") {
            continue;
        }
        let params: HashMap<&str, &str> = parts.filter_map(|p| p.split_once('=')).collect();
        match (params.get("as"), params.get("g"), params.get("v")) {
            (None, _, _) => return Output::Json,
            (Some(&"Table"), Some(&"meta.k8s.io"), _) => return Output::Table,
            (
                Some(&"PartialObjectMetadata") | Some(&"PartialObjectMetadataList"),
                Some(&"meta.k8s.io"),
                _,
            ) => return Output::Metadata,
            (Some(&"APIGroupDiscoveryList"), Some(&"apidiscovery.k8s.io"), Some(&"v2")) => {
                return Output::AggregatedV2
            }
            (Some(&"APIGroupDiscoveryList"), Some(&"apidiscovery.k8s.io"), Some(&"v2beta1")) => {
                return Output::AggregatedV2Beta1
            }
            _ => continue,
        }
    }
    Output::Json
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "1" || v == "true")
}

/// A request aimed at a resource.
#[derive(Debug, Clone)]
struct ResPath {
    group: String,
    version: String,
    ns: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

enum Route {
    Version,
    Health,
    Api,
    Apis,
    Group(String),
    GroupVersion(String, String),
    Resource(ResPath),
    OpenApiV3,
    OpenApiV3Gv(String, String),
    NotFound,
}

fn parse_route(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let resource = |group: &str, version: &str, rest: &[&str]| -> Route {
        let (ns, rest) = if rest[0] == "namespaces"
            && rest.len() >= 3
            && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"))
        {
            (Some(rest[1].to_string()), &rest[2..])
        } else {
            (None, rest)
        };
        if rest.len() > 3 || rest.iter().any(|s| s.is_empty()) {
            return Route::NotFound;
        }
        Route::Resource(ResPath {
            group: group.into(),
            version: version.into(),
            ns,
            plural: rest[0].into(),
            name: rest.get(1).map(|s| s.to_string()),
            sub: rest.get(2).map(|s| s.to_string()),
        })
    };
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["openapi", "v3"] => Route::OpenApiV3,
        ["openapi", "v3", "api", "v1"] => Route::OpenApiV3Gv(String::new(), "v1".into()),
        ["openapi", "v3", "apis", g, v] => Route::OpenApiV3Gv(g.to_string(), v.to_string()),
        ["healthz"] | ["livez"] | ["readyz"] => Route::Health,
        ["api"] => Route::Api,
        ["api", "v1"] => Route::GroupVersion(String::new(), "v1".into()),
        ["api", "v1", rest @ ..] => resource("", "v1", rest),
        ["apis"] => Route::Apis,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::GroupVersion(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => resource(g, v, rest),
        _ => Route::NotFound,
    }
}

pub async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let query = parse_query(parts.uri.query());
    let output = negotiate(&parts.headers);
    let route = parse_route(parts.uri.path());
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error_response(&ApiError::bad_request(format!("reading body: {e}"))),
    };
    let reg = || shared.store.lock().expect("store lock").registry.clone();
    match route {
        Route::Version => json_response(200, &discovery::version()),
        Route::Health => Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .body(Body::from("ok"))
            .expect("response"),
        Route::Api | Route::Apis => {
            let core = matches!(route, Route::Api);
            let reg = reg();
            match output {
                Output::AggregatedV2 => json_response_typed(
                    200,
                    &discovery::aggregated(&reg, core, "apidiscovery.k8s.io/v2"),
                    AGGREGATED_V2,
                ),
                Output::AggregatedV2Beta1 => json_response_typed(
                    200,
                    &discovery::aggregated(&reg, core, "apidiscovery.k8s.io/v2beta1"),
                    AGGREGATED_V2BETA1,
                ),
                _ if core => json_response(200, &discovery::api_versions(&shared.addr.to_string())),
                _ => json_response(200, &discovery::api_group_list(&reg)),
            }
        }
        Route::Group(g) => match discovery::api_group(&reg(), &g) {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::no_route()),
        },
        Route::GroupVersion(g, v) => match discovery::api_resource_list(&reg(), &g, &v) {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::no_route()),
        },
        Route::OpenApiV3 => json_response(200, &openapi::index(&reg())),
        Route::OpenApiV3Gv(g, v) => match openapi::group_version(&reg(), &g, &v) {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::no_route()),
        },
        Route::NotFound => error_response(&ApiError::no_route()),
        Route::Resource(rp) => {
            match resource(
                &shared,
                &parts.method,
                &parts.headers,
                &query,
                output,
                &body,
                rp,
            )
            .await
            {
                Ok(r) => r,
                Err(e) => error_response(&e),
            }
        }
    }
}

fn verb_of(method: &Method, named: bool, watch: bool) -> Option<&'static str> {
    Some(match (method.as_str(), named) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    })
}

/// `fieldManager` or, like the real server, the User-Agent up to its first `/`.
fn manager(query: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|ua| {
            ua.split('/')
                .next()
                .unwrap_or(ua)
                .chars()
                .take(128)
                .collect()
        })
        .filter(|s: &String| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn decode_body(r: &Request2, headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = content_type(headers);
    match ct.as_str() {
        crate::protobuf::MEDIA_TYPE => crate::protobuf::decode(body, &r.rt, &r.rp.version),
        "" | "application/json" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}"))),
        "application/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}"))),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

struct Request2<'a> {
    shared: &'a Arc<Shared>,
    rt: ResourceType,
    rp: ResPath,
    query: &'a HashMap<String, String>,
    output: Output,
}

impl Request2<'_> {
    fn ns(&self) -> &str {
        self.rp.ns.as_deref().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.rp.name.as_deref().unwrap_or_default()
    }

    fn scope(&self) -> Scope {
        if self.rp.sub.is_some() {
            Scope::Status
        } else {
            Scope::Main {
                has_status: self.rt.has_status,
            }
        }
    }

    fn api_version(&self) -> String {
        self.rt.api_version(&self.rp.version)
    }

    fn include_object(&self) -> &str {
        self.query
            .get("includeObject")
            .map(String::as_str)
            .unwrap_or("Metadata")
    }

    /// Single-object response in the negotiated representation, serialized from the stored
    /// object (call it without the store lock held).
    fn object_response(&self, code: u16, obj: &Stored) -> Response {
        let av = self.api_version();
        let body = match self.output {
            Output::Metadata => present::to_vec(&Presented::Metadata(obj)),
            Output::Table => present::to_vec(&table::table(
                &self.rt,
                &[obj],
                &av,
                json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
                self.include_object(),
            )),
            _ => present::to_vec(&Presented::Stored {
                obj,
                api_version: &av,
            }),
        };
        bytes_response(code, body, "application/json")
    }

    /// A list body of `items` in the negotiated representation.
    fn list_response(&self, items: &[Obj], meta: Value) -> Response {
        let av = self.api_version();
        let body = match self.output {
            Output::Metadata => present::to_vec(&ListBody {
                kind: "PartialObjectMetadataList",
                api_version: "meta.k8s.io/v1",
                metadata: &meta,
                items: items.iter().map(|o| Presented::Metadata(o)).collect(),
            }),
            Output::Table => {
                let objs: Vec<&Value> = items.iter().map(|o| o.value()).collect();
                present::to_vec(&table::table(
                    &self.rt,
                    &objs,
                    &av,
                    meta,
                    self.include_object(),
                ))
            }
            _ => present::to_vec(&ListBody {
                kind: &self.rt.list_kind,
                api_version: &av,
                metadata: &meta,
                items: items
                    .iter()
                    .map(|o| Presented::Stored {
                        obj: o,
                        api_version: &av,
                    })
                    .collect(),
            }),
        };
        bytes_response(200, body, "application/json")
    }

    fn selectors(&self) -> ApiResult<(LabelSelector, FieldSelector)> {
        let labels = LabelSelector::parse(
            self.query
                .get("labelSelector")
                .map(String::as_str)
                .unwrap_or_default(),
        )?;
        let fields = FieldSelector::parse(
            self.query
                .get("fieldSelector")
                .map(String::as_str)
                .unwrap_or_default(),
            &self.rt.group,
            &self.rt.plural,
        )?;
        Ok((labels, fields))
    }

    fn write_ctx(&self, headers: &HeaderMap) -> ApiResult<WriteCtx> {
        let dry_run = match self.query.get("dryRun").map(String::as_str) {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid dry run value: {other:?}; supported values: \"All\""
                )))
            }
        };
        Ok(WriteCtx {
            rt: self.rt.clone(),
            version: self.rp.version.clone(),
            manager: manager(self.query, headers),
            dry_run,
        })
    }
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    shared: &Arc<Shared>,
    method: &Method,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    output: Output,
    body: &[u8],
    rp: ResPath,
) -> ApiResult<Response> {
    let watch = truthy(query, "watch");
    let token_request = is_token_request(&rp);
    let verb = match method.as_str() {
        "POST" if token_request => Some("create"),
        _ => verb_of(method, rp.name.is_some(), watch),
    }
    .ok_or_else(|| {
        ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )
    })?;
    let counted = match &rp.sub {
        Some(sub) => format!("{}/{sub}", rp.plural),
        None => rp.plural.clone(),
    };
    {
        let mut counters = shared.counters.lock().expect("lock");
        counters.hit(verb, &counted);
        if token_request {
            let (ns, name) = (rp.ns.as_deref(), rp.name.as_deref());
            counters.token_request(ns.unwrap_or_default(), name.unwrap_or_default());
        }
    }
    let started = std::time::Instant::now();
    let answer = serve_resource(
        shared,
        headers,
        query,
        output,
        body,
        rp,
        verb,
        &counted,
        token_request,
    )
    .await;
    shared
        .latencies
        .lock()
        .expect("lock")
        .record(verb, &counted, started.elapsed());
    answer
}

#[allow(clippy::too_many_arguments)]
async fn serve_resource(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    output: Output,
    body: &[u8],
    rp: ResPath,
    verb: &'static str,
    counted: &str,
    token_request: bool,
) -> ApiResult<Response> {
    let fault = shared.faults.lock().expect("lock").take(verb, counted);
    if let Some(f) = fault {
        if let Some(d) = f.latency {
            tokio::time::sleep(d).await;
        }
        if let Some(code) = f.status {
            return Err(ApiError::injected(code));
        }
    }

    let rt = shared
        .store
        .lock()
        .expect("store lock")
        .registry
        .find(&rp.group, &rp.version, &rp.plural)
        .cloned()
        .ok_or_else(ApiError::no_route)?;
    if token_request {
        if verb != "create" {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({verb} {counted})"
            )));
        }
        let (ns, name) = (rp.ns.as_deref(), rp.name.as_deref());
        let store = shared.store.lock().expect("store lock");
        let request = crate::token::decode(&content_type(headers), body, &rt)?;
        let issued = crate::token::create(
            &store,
            ns.unwrap_or_default(),
            name.unwrap_or_default(),
            request,
        )?;
        return Ok(json_response(201, &issued));
    }
    if let Some(sub) = &rp.sub {
        if sub != "status" || !rt.has_status || rp.name.is_none() {
            return Err(ApiError::no_route());
        }
        if !matches!(verb, "get" | "update" | "patch") {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({verb} {counted})"
            )));
        }
    }
    if rt.namespaced != rp.ns.is_some() && (rp.name.is_some() || !rt.namespaced) {
        // Named namespaced objects need a namespace; cluster-scoped ones must not have one.
        return Err(ApiError::no_route());
    }
    if rt.namespaced && rp.ns.is_none() && !matches!(verb, "list" | "watch") {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let r = Request2 {
        shared,
        rt,
        rp,
        query,
        output,
    };
    match verb {
        "get" => get(&r),
        "list" => list(&r),
        "watch" => watch_(&r),
        "create" => create(&r, headers, body),
        "update" => update(&r, headers, body),
        "patch" => patch_(&r, headers, body),
        "delete" => delete(&r, headers, body),
        "deletecollection" => delete_collection(&r, headers, body),
        _ => unreachable!("verb_of returns known verbs"),
    }
}

/// `serviceaccounts/{name}/token` in a namespace (core/v1).
fn is_token_request(rp: &ResPath) -> bool {
    rp.group.is_empty()
        && rp.version == "v1"
        && rp.plural == "serviceaccounts"
        && rp.ns.is_some()
        && rp.name.is_some()
        && rp.sub.as_deref() == Some("token")
}

fn get(r: &Request2) -> ApiResult<Response> {
    let ns = if r.rt.namespaced { r.ns() } else { "" };
    let obj = r
        .shared
        .store
        .lock()
        .expect("store lock")
        .get(&r.rt.key(), ns, r.name())
        .cloned()
        .ok_or_else(|| ApiError::not_found(&r.rt.group, &r.rt.plural, r.name()))?;
    Ok(r.object_response(200, &obj))
}

/// Continue tokens pin the list's resourceVersion and the last key returned.
fn encode_continue(rv: u64, key: &ObjKey) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!({"rv": rv, "ns": key.0, "name": key.1})).expect("json"))
}

fn decode_continue(token: &str) -> ApiResult<(u64, ObjKey)> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((
        v["rv"].as_u64().ok_or_else(bad)?,
        (
            v["ns"].as_str().ok_or_else(bad)?.to_string(),
            v["name"].as_str().ok_or_else(bad)?.to_string(),
        ),
    ))
}

fn list(r: &Request2) -> ApiResult<Response> {
    let (labels, fields) = r.selectors()?;
    let limit: usize = match r.query.get("limit") {
        Some(l) if !l.is_empty() => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
            .max(0) as usize,
        _ => 0,
    };
    // Where to look: the request's namespace (or a `metadata.namespace` field selector's),
    // "" for cluster-scoped resources, and a `metadata.name` field selector's object.
    let ns: Option<String> = if r.rt.namespaced {
        r.rp.ns
            .clone()
            .or_else(|| fields.required("metadata.namespace").map(String::from))
    } else {
        Some(String::new())
    };
    let ns = ns.as_deref();
    let store = r.shared.store.lock().expect("store lock");
    let current = store.current_rv();
    let (snapshot_rv, start_after) = match r.query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, key) = decode_continue(token)?;
            (Some(rv), Some(key))
        }
        None => {
            let exact = r.query.get("resourceVersionMatch").map(String::as_str) == Some("Exact");
            match r
                .query
                .get("resourceVersion")
                .filter(|v| !v.is_empty() && *v != "0")
            {
                Some(v) => {
                    let rv: u64 = v.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid resource version: {v:?}"))
                    })?;
                    if rv > current {
                        return Err(ApiError::new(
                            504,
                            "Timeout",
                            format!("Too large resource version: {rv}, current: {current}"),
                        ));
                    }
                    (if exact { Some(rv) } else { None }, None)
                }
                None => (None, None),
            }
        }
    };
    // Under the lock only shared handles are taken; serialization (and, for unpaged lists, the
    // selectors) come after. Like the real server, a paged list with selectors stops at the
    // page and leaves `remainingItemCount` unset; without selectors the rest is only counted.
    let filtered = !labels.is_empty() || !fields.is_empty();
    let mut page: Vec<Obj> = Vec::new();
    let mut more = 0usize;
    let mut visit = |o: &Obj| -> bool {
        if limit == 0 {
            page.push(o.clone());
            return true;
        }
        if filtered && !(labels.matches(o) && fields.matches(o)) {
            return true;
        }
        if page.len() < limit {
            page.push(o.clone());
            return true;
        }
        more += 1;
        !filtered
    };
    match snapshot_rv {
        Some(rv) if rv < current => store
            .snapshot(&r.rt.key(), ns, rv, start_after.as_ref(), &mut visit)
            .ok_or_else(|| {
                if start_after.is_some() {
                    ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
                } else {
                    ApiError::gone(format!("Timeout: Too old resource version: {rv} ({})", store.oldest_rv() + 1))
                }
            })?,
        _ => store.select(
            &r.rt.key(),
            ns,
            &labels,
            fields.required("metadata.name"),
            start_after.as_ref(),
            &mut visit,
        ),
    };
    let list_rv = snapshot_rv.unwrap_or(current);
    drop(store);
    if limit == 0 && filtered {
        page.retain(|o| labels.matches(o) && fields.matches(o));
    }
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if more > 0 {
        let last = key_of(page.last().expect("a full page"));
        meta["continue"] = json!(encode_continue(list_rv, &last));
        if !filtered {
            meta["remainingItemCount"] = json!(more);
        }
    }
    Ok(r.list_response(&page, meta))
}

fn key_of(o: &Value) -> ObjKey {
    (
        o["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn watch_(r: &Request2) -> ApiResult<Response> {
    let (labels, mut fields) = r.selectors()?;
    if let Some(name) = &r.rp.name {
        // Legacy single-object watch path: same as a metadata.name field selector.
        fields = FieldSelector::parse(&format!("metadata.name={name}"), &r.rt.group, &r.rt.plural)?;
    }
    let timeout = match r.query.get("timeoutSeconds") {
        Some(t) if !t.is_empty() => Duration::from_secs(
            t.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        _ => Duration::from_secs(1800),
    };
    let send_initial_events = truthy(r.query, "sendInitialEvents");
    let w = WatchRequest {
        rt: r.rt.clone(),
        version: r.rp.version.clone(),
        ns: r.rp.ns.clone(),
        labels,
        fields,
        resource_version: r.query.get("resourceVersion").cloned(),
        timeout,
        bookmarks: truthy(r.query, "allowWatchBookmarks"),
        send_initial_events,
        metadata_only: r.output == Output::Metadata,
    };
    watch::serve(r.shared, w)
}

fn create(r: &Request2, headers: &HeaderMap, body: &[u8]) -> ApiResult<Response> {
    let mode = FieldValidation::from_query(r.query.get("fieldValidation"), "CreateOptions")?;
    let mut obj = decode_body(r, headers, body)?;
    let warnings = prune::request_object(&r.rt, &r.rp.version, mode, &mut obj)?;
    let ctx = r.write_ctx(headers)?;
    let created = r
        .shared
        .store
        .lock()
        .expect("store lock")
        .create(&ctx, r.ns(), obj)?;
    Ok(with_warnings(r.object_response(201, &created), &warnings))
}

fn update(r: &Request2, headers: &HeaderMap, body: &[u8]) -> ApiResult<Response> {
    let mode = FieldValidation::from_query(r.query.get("fieldValidation"), "UpdateOptions")?;
    let mut obj = decode_body(r, headers, body)?;
    let warnings = prune::request_object(&r.rt, &r.rp.version, mode, &mut obj)?;
    let ctx = r.write_ctx(headers)?;
    let updated = r.shared.store.lock().expect("store lock").update(
        &ctx,
        r.ns(),
        r.name(),
        obj,
        r.scope(),
    )?;
    Ok(with_warnings(r.object_response(200, &updated), &warnings))
}

fn patch_(r: &Request2, headers: &HeaderMap, body: &[u8]) -> ApiResult<Response> {
    let ct = content_type(headers);
    let mode = FieldValidation::from_query(r.query.get("fieldValidation"), "PatchOptions")?;
    let mut ctx = r.write_ctx(headers)?;
    let kind = r.rt.kind.clone();
    let name = r.name().to_string();
    let scope = r.scope();
    if ct == "application/apply-patch+yaml" || ct == "application/apply-patch+cbor" {
        if ct.ends_with("cbor") {
            return Err(ApiError::unsupported_media_type(&ct));
        }
        match r.query.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(m) => ctx.manager = m.clone(),
            None => {
                return Err(ApiError::bad_request(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ))
            }
        }
        let applied = crate::apply::parse_body(body)?;
        prune::check_applied(&r.rt, &r.rp.version, &applied)?;
        let force = truthy(r.query, "force");
        let (obj, created) = r.shared.store.lock().expect("store lock").apply(
            &ctx,
            r.ns(),
            &name,
            applied,
            scope,
            force,
        )?;
        return Ok(r.object_response(if created { 201 } else { 200 }, &obj));
    }
    let patch_body: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut warnings = Vec::new();
    let mut prune_patched = |o: &mut Value| -> ApiResult<()> {
        warnings = prune::patched_object(&r.rt, &r.rp.version, mode, o)?;
        Ok(())
    };
    let mut store = r.shared.store.lock().expect("store lock");
    let obj = match ct.as_str() {
        "application/merge-patch+json" => store.patch(&ctx, r.ns(), &name, scope, |o| {
            patch::merge_patch(o, &patch_body);
            prune_patched(o)
        })?,
        "application/json-patch+json" => store.patch(&ctx, r.ns(), &name, scope, |o| {
            patch::json_patch(o, &patch_body, &kind, &name)?;
            prune_patched(o)
        })?,
        "application/strategic-merge-patch+json" => {
            if r.rt.custom {
                // The real server has no schema for custom resources' strategic merge keys.
                return Err(ApiError::unsupported_media_type(&ct));
            }
            store.patch(&ctx, r.ns(), &name, scope, |o| {
                patch::strategic_merge_patch(o, &patch_body)
            })?
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    drop(store);
    Ok(with_warnings(r.object_response(200, &obj), &warnings))
}

fn delete_options(r: &Request2, headers: &HeaderMap, body: &[u8]) -> ApiResult<DeleteOptions> {
    let b: Value = if body.iter().all(|c| c.is_ascii_whitespace()) {
        json!({})
    } else if content_type(headers) == crate::protobuf::MEDIA_TYPE {
        crate::protobuf::decode_delete_options(body, &r.rt, &r.rp.version)?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let policy = r
        .query
        .get("propagationPolicy")
        .cloned()
        .or_else(|| b["propagationPolicy"].as_str().map(String::from));
    let orphan_flag = r
        .query
        .get("orphanDependents")
        .map(|v| v == "true")
        .or_else(|| b["orphanDependents"].as_bool());
    let propagation = match policy.as_deref() {
        Some("Orphan") => Some(Propagation::Orphan),
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some(other) => {
            return Err(ApiError::invalid(
                "",
                "DeleteOptions",
                "",
                vec![(
                    "propagationPolicy".into(),
                    format!("Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""),
                )],
            ))
        }
        None => match orphan_flag {
            Some(true) => Some(Propagation::Orphan),
            _ => None,
        },
    };
    let dry_run = r.query.get("dryRun").map(String::as_str) == Some("All")
        || b["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "All"));
    Ok(DeleteOptions {
        propagation,
        precondition_uid: b["preconditions"]["uid"].as_str().map(String::from),
        precondition_rv: b["preconditions"]["resourceVersion"]
            .as_str()
            .map(String::from),
        dry_run,
    })
}

fn delete_body(r: &Request2, outcome: DeleteOutcome) -> Response {
    match outcome {
        DeleteOutcome::Pending(obj) => r.object_response(200, &obj),
        DeleteOutcome::Deleted(obj) if r.rt.custom => r.object_response(200, &obj),
        DeleteOutcome::Deleted(obj) => json_response(
            200,
            &success_status(
                &r.rt.group,
                &r.rt.plural,
                obj["metadata"]["name"].as_str().unwrap_or_default(),
                obj["metadata"]["uid"].as_str().unwrap_or_default(),
            ),
        ),
    }
}

fn delete(r: &Request2, headers: &HeaderMap, body: &[u8]) -> ApiResult<Response> {
    let opts = delete_options(r, headers, body)?;
    let ctx = r.write_ctx(headers)?;
    let outcome =
        r.shared
            .store
            .lock()
            .expect("store lock")
            .delete(&ctx, r.ns(), r.name(), &opts)?;
    Ok(delete_body(r, outcome))
}

fn delete_collection(r: &Request2, headers: &HeaderMap, body: &[u8]) -> ApiResult<Response> {
    let opts = delete_options(r, headers, body)?;
    let (labels, fields) = r.selectors()?;
    let ctx = r.write_ctx(headers)?;
    let mut store = r.shared.store.lock().expect("store lock");
    let targets: Vec<ObjKey> = store
        .list(&r.rt.key(), r.rp.ns.as_deref())
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .map(|o| key_of(&o))
        .collect();
    let mut items = Vec::new();
    for (ns, name) in targets {
        match store.delete(&ctx, &ns, &name, &opts) {
            Ok(DeleteOutcome::Deleted(o)) | Ok(DeleteOutcome::Pending(o)) => items.push(o),
            // Already removed by garbage collection of an earlier target.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let rv = store.current_rv();
    drop(store);
    let av = r.api_version();
    let meta = json!({"resourceVersion": rv.to_string()});
    let body = ListBody {
        kind: &r.rt.list_kind,
        api_version: &av,
        metadata: &meta,
        items: items
            .iter()
            .map(|o| Presented::Stored {
                obj: o,
                api_version: &av,
            })
            .collect(),
    };
    Ok(bytes_response(
        200,
        present::to_vec(&body),
        "application/json",
    ))
}
