//! # kube-test-server
//!
//! A Kubernetes API server for tests: it speaks the real REST protocol over plain HTTP on
//! loopback and keeps objects in memory. kube-rs clients (including `watcher`, `reflector`,
//! `metadata_watcher` and `Controller`) and kubectl talk to it through an ordinary kubeconfig.
//!
//! ## As a library
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use kube_test_server::{Fault, TestServer};
//! let server = TestServer::start().await?;          // 127.0.0.1, ephemeral port
//! let client: kube::Client = server.client();       // default namespace "default"
//! server.inject(Fault::default().verb("patch").resource("secrets").status(503).times(1));
//! // ... exercise the code under test ...
//! assert!(server.request_count("patch", "secrets") >= 1);
//! server.shutdown().await;                          // also on Drop
//! # Ok(()) }
//! ```
//!
//! Public API:
//! - [`cel_cost::check_crd`], [`cel_cost::rule_costs`]: the CRD cost check, without a server
//! - [`TestServer::start`], [`TestServer::start_on`], [`TestServer::start_with`]
//!   ([`ServerOptions`]: watch history bound, bookmark interval)
//! - [`TestServer::url`], [`TestServer::client`], [`TestServer::kubeconfig_yaml`],
//!   [`TestServer::write_kubeconfig`]
//! - [`TestServer::request_count`], [`TestServer::request_counts`],
//!   [`TestServer::reset_counters`]: verbs are the API server's audit verbs (`get` for one
//!   object, `list` for a collection, `watch` for `?watch=true`, `create|update|patch|delete|
//!   deletecollection`), resources the plural (`secrets`), with `/status` for the subresource
//!   (and `serviceaccounts/token` for TokenRequests); [`TestServer::token_requests`] counts
//!   TokenRequests per ServiceAccount; [`TestServer::latencies`] summarizes how long the server
//!   took per (verb, resource) ([`LatencySummary`]: count, p50, p90, p99, max, total)
//! - [`TestServer::inject`] / [`TestServer::clear_faults`] with [`Fault`]
//! - [`TestServer::drop_watches`]: aborts every open watch connection
//! - [`TestServer::shutdown`]
//!
//! ## As a binary
//!
//! `kube-test-server --listen 127.0.0.1:0 --kubeconfig PATH` writes a kubeconfig for the bound
//! address, prints exactly one line `listening on http://127.0.0.1:PORT` and serves until
//! SIGTERM/SIGINT. `--history-limit N` and `--bookmark-interval-ms N` tune watches.
//!
//! ## What it serves
//!
//! - Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{g}`, `/apis/{g}/{v}`, and the
//!   aggregated `apidiscovery.k8s.io/v2` (and v2beta1) form when asked via `Accept`.
//!   `/openapi/v3` publishes paths and operations without schemas (enough for kubectl to
//!   leave validation to the server); `/openapi/v2` answers 404.
//! - Built-in resources: namespaces, secrets, configmaps, serviceaccounts, events (core/v1 and
//!   events.k8s.io/v1, stored separately), deployments/statefulsets/daemonsets (apps/v1, with
//!   `/status`), leases (coordination.k8s.io/v1), customresourcedefinitions; services,
//!   poddisruptionbudgets (policy/v1), networkpolicies (networking.k8s.io/v1) and the four RBAC kinds (rbac.authorization.k8s.io/v1) are
//!   stored as given, without their controllers (no cluster IPs, no RBAC enforcement). Creating a CRD
//!   serves its resource (every served version, scope, names, `/status` if declared) at once
//!   and sets its `Established` condition; deleting it removes the resource and its objects.
//!   A CRD whose CEL rules are estimated over kube-apiserver's cost budget (per rule, or in
//!   total per schema) is refused on every write (create, update, patch, apply, dry run) with
//!   the real server's 422 causes; [`cel_cost::check_crd`] runs the same check without a
//!   server and [`cel_cost::rule_costs`] lists each rule's estimate.
//! - ServiceAccount tokens: the TokenRequest subresource
//!   (`POST .../serviceaccounts/{name}/token`, authentication.k8s.io/v1) with the real checks and
//!   codes (422 for a name or namespace that differs from the path, 404 for a missing
//!   ServiceAccount, 422 for `spec.expirationSeconds` outside [600, 2^32]; default 3600) and a
//!   201 answer carrying `status.token` and `status.expirationTimestamp`. The token is a JWT with
//!   the real claims (`iss` [`TOKEN_ISSUER`], `sub` `system:serviceaccount:NS:NAME`, `aud`
//!   defaulting to the issuer, `exp`, `iat`, `nbf`, `jti`, `kubernetes.io`) and a dummy
//!   signature: nothing can verify it.
//! - Reads: get, list (label selectors with `=`, `==`, `!=`, `in`, `notin`, `k`, `!k`, `>`,
//!   `<`; field selectors on `metadata.name`, `metadata.namespace` and a few per-kind fields;
//!   `limit`/`continue` over a consistent snapshot, with `remainingItemCount` only when no
//!   selector filters the list, as on the real server; `resourceVersionMatch=Exact` served from
//!   history), watch (see [`ServerOptions`]), `kubectl get` Tables, and metadata-only
//!   (`PartialObjectMetadata[List]`) responses.
//! - Request bodies: JSON, YAML, and `application/vnd.kubernetes.protobuf` (what kubectl's typed
//!   `create namespace|secret|configmap|deployment|serviceaccount|service|pdb|role|...` send)
//!   for create, update and DeleteOptions of the built-in kinds above except CRDs, and for
//!   TokenRequests (`kubectl create token`). Protobuf is decoded with k8s-pb and
//!   stored as the JSON a Go client would have sent (Go's `omitempty` for non-pointer fields).
//! - Writes: create (`generateName`), update (optimistic concurrency on `resourceVersion`),
//!   merge / JSON / strategic merge patches, server-side apply with `managedFields` and
//!   conflicts, `/status`, delete with finalizers, preconditions and propagation policies,
//!   deletecollection, `dryRun=All`.
//! - Custom resources are pruned, defaulted and validated against the `openAPIV3Schema` of the
//!   version they are written in, with the real 422 causes (`type`, `nullable`, `enum`,
//!   `pattern`, lengths, bounds, item and property counts, `required`, `additionalProperties`,
//!   `x-kubernetes-int-or-string`, `-preserve-unknown-fields`, `-embedded-resource`, `format`),
//!   then their CEL rules are evaluated. Unknown fields follow `fieldValidation` (absent means
//!   `Warn`, kube-rs sends none, kubectl sends `Strict`): Strict refuses a create/update (400) or
//!   merge/JSON patch (422), Warn answers `Warning: 299 - "unknown field \"spec.x\""` headers,
//!   Ignore prunes silently. Server-side apply of an undeclared field is a 500 whatever the
//!   directive, as on the real server.
//!
//! ## Scale
//!
//! Built to hold 10 000 objects of each kind with GET, apply and watch-event latencies that do
//! not grow with the object count and LISTs that cost in proportion to what they return:
//! - Each object is kept once, as a shared `Arc` of its JSON value that the store, the change
//!   history (as one event's object and the next one's previous state), watches and responses
//!   all point to; its encoding is made on first read and then copied into every GET, LIST and
//!   watch event that serves it in its stored version (no re-serialization per request).
//! - Indexes, updated on each write in O(log n): per resource, objects by (namespace, name), so
//!   a namespace is one range; by label (key, value), used when a selector has an `=`/`==` or
//!   `in` requirement; across resources, by uid, dependents by owner uid (garbage collection),
//!   and object counts per namespace. A `metadata.name` field selector in a namespace is a
//!   lookup. No write scans the store or the history (found in it by binary search).
//! - Requests hold the one store lock only to write or to take handles to what they return;
//!   selectors of unpaged lists, serialization (Table rows borrow the objects too) and watch
//!   events' encoding run after it. A paged
//!   list (`limit`) stops at the page (it only counts the rest, for `remainingItemCount`).
//! - Watch events go to each watch as a shared handle; a watch that falls more than 4096 events
//!   behind takes what it missed from the history instead of being cut off (and ends, for the
//!   client to resume and get 410, only once the history no longer reaches back).
//!
//! Measured with `cargo run -q -p kube-test-server --example load -- 1000 10000` (debug build,
//! the profile tests use; server in its own process; N Secrets and N custom objects over 4
//! namespaces created by server-side apply with 32 in flight while two kube-runtime reflectors
//! watch all Secrets; server-side p50 and the server's CPU per request; on a shared 2-core
//! machine, so wall times vary), before and after this design:
//!
//! | 10 000 Secrets + 10 000 custom objects         | before                   | after                  |
//! |------------------------------------------------|--------------------------|------------------------|
//! | apply (create), server CPU per request         | 1.2 ms                   | 0.9 ms (p50 0.6 ms)    |
//! | GET, server CPU per request                    | 0.6 ms                   | 0.4 ms (p50 < 0.1 ms)  |
//! | LIST all Secrets (7 MiB): p50, server CPU      | 2 190 ms, 1 505 ms       | 112 ms, 39 ms          |
//! | LIST all custom objects: p50, server CPU       | 1 546 ms, 1 138 ms       | 46 ms, 27 ms           |
//! | LIST one namespace, `app=load,shard=3` (500)   | 167 ms, 121 ms           | 6 ms, 4.8 ms           |
//! | LIST all in pages of 500: walk, CPU per page   | 12.4 s, 353 ms           | 0.46 s, 4.8 ms         |
//! | `kubectl get secrets -A`: run, CPU per page    | 11.0 s, 333 ms           | 2.7 s, 25 ms           |
//! | write to its event on an open watch, p50       | 4.6 ms                   | 2.2 ms                 |
//! | LIST all while every Secret is re-applied, p50 | 4.2 s                    | 0.23 s                 |
//! | apply while LISTs run, p99 / max               | 618 ms / 5.1 s           | 168 ms / 0.29 s        |
//! | server RSS: 20 000 objects / after the updates | 286 / 898 MiB            | 240 / 341 MiB          |
//!
//! At 1 000 of each, LIST all Secrets went from 161 ms to 10 ms and a page of 500 costs the
//! server 4.4 ms of CPU, as at 10 000. Wall times of applies are the load client's (32 in
//! flight, debug build); the server answers one in 0.6 ms (p50). What stays per object is mostly
//! `serde_json::Value`'s map nodes (about 11 KiB for a Secret with its managedFields; the
//! encoding adds under 1 KiB); after the updates the history (10 000 events) also holds each
//! object's previous state. kubectl's own printing is most of its 2.7 s.

//! ## Differences from a real API server
//!
//! - No authentication/authorization, no admission webhooks, no OpenAPI documents, HTTP/1.1
//!   only. Responses are always JSON (also when `Accept` asks for protobuf or CBOR first); no
//!   CBOR bodies.
//! - Protobuf request bodies: not for CustomResourceDefinitions (415; the real server takes
//!   them). TokenRequests bound to an object (`spec.boundObjectRef`) are issued unbound,
//!   without looking the object up. The messages are Kubernetes 1.35's (k8s-pb 0.9), the JSON model 1.34's: a body
//!   setting a 1.35-only field (`PodSpec.workloadRef`, `podCertificate.userAnnotations`) is
//!   answered 400, and so is one setting a field newer than 1.35 (by field number; a real
//!   server skips unknown protobuf fields). Empty unknown fields are ignored.
//! - CRD CEL cost estimates follow cel-go's estimator for literals, field selection, `has()`,
//!   logical and comparison operators, the ternary, `in`, `+`, indexing, `size`, comprehensions
//!   (`all`, `exists`, `map`, ...), `matches`, `contains`, `startsWith`, `endsWith`, `find`,
//!   `lowerAscii` & co. and the list library; other functions are costed as O(1) (cel-go's
//!   default), so e.g. `split`, `join`, `url` or `quantity` are underestimated. Rules that do
//!   not parse are not reported at CRD write time (no CEL type checking either).
//! - Built-in kinds have no schema: they get only the validation listed in the `validation`
//!   module (names, labels, Secret/ConfigMap rules), keep unknown fields and ignore
//!   `fieldValidation`. No conversion between CRD versions: objects are stored once and
//!   returned with the requested `apiVersion`.
//! - CRD schemas: `anyOf`/`oneOf`/`not`, `uniqueItems`, `x-kubernetes-list-type` uniqueness,
//!   ratcheting of unchanged invalid fields, duplicate JSON fields under Strict, and formats
//!   other than `uuid`(3/4/5), `date`, `date-time`, `byte`, `ipv4`, `ipv6`, `cidr` are not
//!   checked. Schema errors are answered without evaluating CEL rules (the real server still
//!   adds CEL failures when its schema errors are only `Invalid value` ones). A server-side apply
//!   body of the wrong scalar type is refused by the 422 validation instead of the real typed
//!   conversion's 500. `Warning` headers are sent on successful writes only.
//! - Server-side apply tracks ownership per map key; lists are atomic (owned and replaced whole),
//!   so two managers cannot co-own items of `containers`, `env`, etc. `stringData` applied to a
//!   Secret is owned as `f:stringData` (as on the real server) and folded into `data`.
//!   Non-apply writes record an `Update` entry for the manager from `fieldManager`, else the
//!   User-Agent up to its first `/` (e.g. `kubectl`, `kube-rs`... whatever the client sends).
//! - Strategic merge patch knows the merge keys of the common pod-spec lists (containers,
//!   volumes, env, ports, volumeMounts, ...) by field name instead of from the schema; all other
//!   lists are replaced. Custom resources answer 415 as on the real server.
//! - Garbage collection and the namespace controller run synchronously inside the delete
//!   request. `Foreground` deletes dependents before the owner in the same request instead of
//!   holding the owner with a `foregroundDeletion` finalizer. Deleting a CRD removes its objects
//!   regardless of their finalizers.
//! - A paged list with selectors sets `continue` only when another match exists (the real
//!   server may send a token leading to an empty page).
//! - Plain `resourceVersion` on list is "not older than" (served from current state);
//!   `resourceVersionMatch=Exact` and continue tokens are served from the event history and
//!   answer 410 when it no longer reaches back. The history is global (all resources), bounded
//!   by [`ServerOptions::history_limit`].
//! - No pods, replica sets, services or controllers: Deployments never get status unless a
//!   test writes it.
//! - Invalid base64 in Secret `data` is answered 400 BadRequest (it fails decoding on the real
//!   server too, before validation); bad keys, `type` changes and size over 1 MiB are 422.

#![forbid(unsafe_code)]

mod apply;
pub mod cel_cost;
mod discovery;
mod faults;
mod fields;
mod gofmt;
mod http;
mod openapi;
mod patch;
mod present;
mod protobuf;
mod prune;
mod registry;
mod schema;
mod selectors;
mod status;
mod store;
mod table;
mod token;
mod validation;
mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
pub use faults::{Fault, LatencySummary};
pub use token::ISSUER as TOKEN_ISSUER;

/// Tuning knobs; [`Default`] is what [`TestServer::start`] uses.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How many change events (across all resources) watches can resume from. A watch or an
    /// exact list from an older resourceVersion gets 410 Gone. Default 10 000.
    pub history_limit: usize,
    /// How often watches that asked for bookmarks get one. Default 1 s.
    pub bookmark_interval: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(1),
        }
    }
}

/// A running server. Stops on [`TestServer::shutdown`] or when dropped.
pub struct TestServer {
    shared: Arc<http::Shared>,
    addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts on `127.0.0.1:0` (an ephemeral port) with default options.
    pub async fn start() -> anyhow::Result<TestServer> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(addr: SocketAddr) -> anyhow::Result<TestServer> {
        Self::start_with(addr, ServerOptions::default()).await
    }

    pub async fn start_with(addr: SocketAddr, opts: ServerOptions) -> anyhow::Result<TestServer> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(http::Shared {
            store: Mutex::new(store::Store::new(opts.history_limit)),
            counters: Mutex::new(faults::Counters::default()),
            latencies: Mutex::new(faults::Latencies::default()),
            faults: Mutex::new(faults::Faults::default()),
            drop_watches: tokio::sync::watch::channel(0).0,
            shutdown: tokio::sync::watch::channel(false).0,
            bookmark_interval: opts.bookmark_interval,
            addr,
        });
        let app = axum::Router::new()
            .fallback(http::handle)
            .with_state(shared.clone());
        let mut stop = shared.shutdown.subscribe();
        let task = tokio::spawn(async move {
            let graceful = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            // Go's net package, and so kube-apiserver, turns Nagle's algorithm off: small
            // watch events go out at once instead of waiting for the peer's delayed ACK.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .await
            {
                tracing::error!("kube-test-server: {e}");
            }
        });
        Ok(TestServer {
            shared,
            addr,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube-rs client for this server with default namespace `default`. Call inside a Tokio
    /// runtime.
    pub fn client(&self) -> kube::Client {
        let mut cfg = kube::Config::new(self.url().parse().expect("valid url"));
        cfg.default_namespace = "default".into();
        kube::Client::try_from(cfg).expect("kube client for test server")
    }

    /// A kubeconfig with one cluster/user/context named `kube-test-server`, namespace `default`.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_yaml(&self.url())
    }

    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
            .with_context(|| format!("writing kubeconfig {}", path.display()))
    }

    /// Requests seen for `verb` on `resource` (plural, `plural/status` for the subresource).
    pub fn request_count(&self, verb: &str, resource: &str) -> u64 {
        self.shared
            .counters
            .lock()
            .expect("lock")
            .get(verb, resource)
    }

    pub fn request_counts(&self) -> BTreeMap<(String, String), u64> {
        self.shared.counters.lock().expect("lock").all()
    }

    /// TokenRequests (`create serviceaccounts/token`) seen for ServiceAccount `ns/name`,
    /// whether a token was issued or not. Also counted as `("create", "serviceaccounts/token")`.
    pub fn token_requests(&self, ns: &str, name: &str) -> u64 {
        self.shared
            .counters
            .lock()
            .expect("lock")
            .token_requests(ns, name)
    }

    /// How long the server took per (verb, resource) (see [`LatencySummary`]); the keys are
    /// those of [`TestServer::request_counts`].
    pub fn latencies(&self) -> BTreeMap<(String, String), LatencySummary> {
        self.shared.latencies.lock().expect("lock").summaries()
    }

    /// Zeroes the request counters, TokenRequest counts and latencies.
    pub fn reset_counters(&self) {
        self.shared.counters.lock().expect("lock").reset();
        self.shared.latencies.lock().expect("lock").reset();
    }

    /// Adds a fault; the first matching fault applies to a request.
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.lock().expect("lock").inject(fault)
    }

    pub fn clear_faults(&self) {
        self.shared.faults.lock().expect("lock").clear()
    }

    /// Ends every open watch abruptly (connection cut mid-stream); clients must resume.
    pub fn drop_watches(&self) {
        self.shared.drop_watches.send_modify(|n| *n += 1);
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.lock().expect("lock").current_rv()
    }

    /// Stops accepting, ends watches and waits (up to 5 s) for connections to close.
    pub async fn shutdown(mut self) {
        let _ = self.shared.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.shared.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The kubeconfig document for a server URL.
pub fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-test-server
  cluster:
    server: {url}
users:
- name: kube-test-server
  user: {{}}
contexts:
- name: kube-test-server
  context:
    cluster: kube-test-server
    user: kube-test-server
    namespace: default
current-context: kube-test-server
preferences: {{}}
"
    )
}
