//! Watch streams: newline-delimited JSON `{"type": ..., "object": ...}` events, one chunk per
//! event, flushed as written.
//!
//! A watch starts either from "now" with synthetic ADDED events for the current objects
//! (`resourceVersion` empty or "0", or `sendInitialEvents=true`, which also ends the initial
//! batch with a BOOKMARK annotated `k8s.io/initial-events-end`), or after a given
//! `resourceVersion` by replaying the bounded history — and when that history no longer reaches
//! back far enough, with a single ERROR event carrying a 410 `Expired` Status, as the real
//! server does. Bookmarks (if asked for) carry the current global resourceVersion, sent only
//! after every earlier event of the stream.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::channel::mpsc;
use futures::SinkExt;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::http::Shared;
use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::store::{EventType, ResKey, StoredEvent};

pub struct WatchRequest {
    pub rt: ResourceType,
    pub version: String,
    pub ns: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub timeout: Duration,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub metadata_only: bool,
}

impl WatchRequest {
    fn res(&self) -> ResKey {
        self.rt.key()
    }

    fn selected(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.ns {
            if obj["metadata"]["namespace"].as_str() != Some(ns.as_str()) {
                return false;
            }
        }
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    fn present(&self, obj: &Value) -> Value {
        if self.metadata_only {
            return json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            });
        }
        let mut o = obj.clone();
        o["apiVersion"] = json!(self.rt.api_version(&self.version));
        o
    }

    fn line(&self, etype: &str, obj: &Value) -> Bytes {
        let mut s = serde_json::to_string(&json!({"type": etype, "object": self.present(obj)}))
            .expect("serializable");
        s.push('\n');
        Bytes::from(s)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (kind, api_version) = if self.metadata_only {
            (
                "PartialObjectMetadata".to_string(),
                "meta.k8s.io/v1".to_string(),
            )
        } else {
            (self.rt.kind.clone(), self.rt.api_version(&self.version))
        };
        let mut s = serde_json::to_string(&json!({
            "type": "BOOKMARK",
            "object": {"kind": kind, "apiVersion": api_version, "metadata": meta},
        }))
        .expect("serializable");
        s.push('\n');
        Bytes::from(s)
    }

    /// Translates a stored change into what this watch sees, honouring selector transitions.
    fn translate(&self, ev: &StoredEvent) -> Option<Bytes> {
        if ev.res != self.res() {
            return None;
        }
        let now_in = self.selected(&ev.object);
        let was_in = ev.prev.as_ref().is_some_and(|p| self.selected(p));
        match ev.etype {
            EventType::Added if now_in => Some(self.line("ADDED", &ev.object)),
            EventType::Modified => match (was_in, now_in) {
                (true, true) => Some(self.line("MODIFIED", &ev.object)),
                (false, true) => Some(self.line("ADDED", &ev.object)),
                (true, false) => Some(self.line("DELETED", &ev.object)),
                (false, false) => None,
            },
            EventType::Deleted if was_in || now_in => Some(self.line("DELETED", &ev.object)),
            _ => None,
        }
    }
}

pub fn serve(shared: &Arc<Shared>, w: WatchRequest) -> ApiResult<Response> {
    let store = shared.store.lock().expect("store lock");
    let mut rx = store.subscribe();
    let start_rv = store.current_rv();
    let mut initial: Vec<Bytes> = Vec::new();
    let mut expired = false;
    let from_now = matches!(w.resource_version.as_deref(), None | Some("") | Some("0"));
    if from_now || w.send_initial_events {
        for obj in store.list(&w.res(), w.ns.as_deref()) {
            if w.selected(obj) {
                initial.push(w.line("ADDED", obj));
            }
        }
        if w.send_initial_events && w.bookmarks {
            initial.push(w.bookmark(start_rv, true));
        }
    } else {
        let rv_str = w.resource_version.clone().unwrap_or_default();
        let rv: u64 = rv_str
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv_str:?}")))?;
        match store.events_after(rv) {
            Some(events) => initial.extend(events.iter().filter_map(|e| w.translate(e))),
            None => {
                expired = true;
                let status = ApiError::gone(format!(
                    "too old resource version: {rv} ({})",
                    store.oldest_rv() + 1
                ))
                .to_status();
                let mut s = serde_json::to_string(&json!({"type": "ERROR", "object": status}))
                    .expect("serializable");
                s.push('\n');
                initial.push(Bytes::from(s));
            }
        }
    }
    drop(store);

    let (mut tx, body_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let shared = shared.clone();
    let mut drop_rx = shared.drop_watches.subscribe();
    let mut shutdown_rx = shared.shutdown.subscribe();
    let bookmark_every = shared.bookmark_interval;
    tokio::spawn(async move {
        for line in initial {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        if expired {
            return;
        }
        let deadline = tokio::time::sleep(w.timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(bookmark_every);
        tick.tick().await;
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= start_rv { continue; }
                        if let Some(line) = w.translate(&ev) {
                            if tx.send(Ok(line)).await.is_err() { return; }
                        }
                    }
                    // Fell behind the broadcast buffer: end the watch; the client resumes from
                    // its last resourceVersion (replayed from history, or 410 if too old).
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    if tx.is_closed() { return; }
                    if w.bookmarks {
                        let rv = shared.store.lock().expect("store lock").current_rv();
                        // Everything committed up to `rv` is already in our receiver: send it
                        // before the bookmark so the bookmark never skips an event.
                        loop {
                            match rx.try_recv() {
                                Ok(ev) => {
                                    if ev.rv <= start_rv { continue; }
                                    if let Some(line) = w.translate(&ev) {
                                        if tx.send(Ok(line)).await.is_err() { return; }
                                    }
                                }
                                Err(TryRecvError::Empty) => break,
                                Err(_) => return,
                            }
                        }
                        if tx.send(Ok(w.bookmark(rv.max(start_rv), false))).await.is_err() { return; }
                    }
                }
                _ = &mut deadline => return,
                _ = drop_rx.changed() => {
                    // Abort the body: the connection is cut without the final chunk, like a
                    // server or proxy going away.
                    let _ = tx.send(Err(std::io::Error::other("watch dropped"))).await;
                    return;
                }
                _ = shutdown_rx.changed() => {
                    let _ = tx.send(Err(std::io::Error::other("server shutting down"))).await;
                    return;
                }
            }
        }
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(Body::from_stream(body_rx))
        .expect("response"))
}
