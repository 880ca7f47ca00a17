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
use crate::present::{self, Presented};
use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::store::{EventType, Obj, ResKey, Stored, StoredEvent};

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

    /// One event line, serialized from the stored object (no copy).
    fn line(&self, etype: &str, obj: &Stored) -> Bytes {
        let av = self.rt.api_version(&self.version);
        Bytes::from(present::watch_line(
            etype,
            &Presented::new(obj, &av, self.metadata_only),
        ))
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

/// Where a watch begins, taken under the store lock (shared handles only).
enum Start {
    /// Synthetic ADDED events for these objects (then maybe the initial-events bookmark).
    Objects(Vec<Obj>),
    /// Replayed history.
    Events(Vec<Arc<StoredEvent>>),
    /// The history no longer reaches back: one ERROR event, then the end.
    Expired(Bytes),
}

/// The sending half of one watch: what it has delivered so far.
struct Sender {
    w: WatchRequest,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    /// Every change of the watched resource up to this resourceVersion has been delivered (or
    /// filtered out).
    delivered: u64,
}

impl Sender {
    /// Sends `ev` unless it was already delivered; false once the client is gone.
    async fn deliver(&mut self, ev: &StoredEvent) -> bool {
        if ev.rv <= self.delivered {
            return true;
        }
        self.delivered = ev.rv;
        match self.w.translate(ev) {
            Some(line) => self.tx.send(Ok(line)).await.is_ok(),
            None => true,
        }
    }

    /// After falling behind the broadcast buffer: sends what was missed from the history.
    /// False when the history no longer reaches back (the watch ends; the client resumes from
    /// its last resourceVersion and gets 410, as from a real server's compacted watch cache).
    async fn catch_up(&mut self, shared: &Shared) -> bool {
        let missed = {
            let store = shared.store.lock().expect("store lock");
            store
                .events_after(self.delivered, &self.w.res())
                .map(|evs| (evs, store.current_rv()))
        };
        let Some((missed, now)) = missed else {
            return false;
        };
        for ev in &missed {
            if !self.deliver(ev).await {
                return false;
            }
        }
        self.delivered = self.delivered.max(now);
        true
    }
}

pub fn serve(shared: &Arc<Shared>, w: WatchRequest) -> ApiResult<Response> {
    let from_now = matches!(w.resource_version.as_deref(), None | Some("") | Some("0"));
    let resume_rv: Option<u64> =
        if from_now || w.send_initial_events {
            None
        } else {
            let rv_str = w.resource_version.clone().unwrap_or_default();
            Some(rv_str.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version: {rv_str:?}"))
            })?)
        };
    let (mut rx, start_rv, start) = {
        let store = shared.store.lock().expect("store lock");
        let rx = store.subscribe();
        let start_rv = store.current_rv();
        let start = match resume_rv {
            None => {
                let scope = if w.rt.namespaced {
                    w.ns.clone()
                } else {
                    Some(String::new())
                };
                let mut objs = Vec::new();
                store.select(
                    &w.res(),
                    scope.as_deref(),
                    &w.labels,
                    w.fields.required("metadata.name"),
                    None,
                    &mut |o| {
                        objs.push(o.clone());
                        true
                    },
                );
                Start::Objects(objs)
            }
            Some(rv) => match store.events_after(rv, &w.res()) {
                Some(events) => Start::Events(events),
                None => {
                    let status = ApiError::gone(format!(
                        "too old resource version: {rv} ({})",
                        store.oldest_rv() + 1
                    ))
                    .to_status();
                    Start::Expired(Bytes::from(present::watch_line("ERROR", &status)))
                }
            },
        };
        (rx, start_rv, start)
    };

    let (tx, body_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let shared = shared.clone();
    let mut drop_rx = shared.drop_watches.subscribe();
    let mut shutdown_rx = shared.shutdown.subscribe();
    let bookmark_every = shared.bookmark_interval;
    tokio::spawn(async move {
        let mut out = Sender {
            w,
            tx,
            delivered: 0,
        };
        // The initial events are serialized here, outside the store lock.
        match start {
            Start::Objects(objs) => {
                for obj in objs {
                    if out.w.selected(&obj)
                        && out.tx.send(Ok(out.w.line("ADDED", &obj))).await.is_err()
                    {
                        return;
                    }
                }
                if out.w.send_initial_events && out.w.bookmarks {
                    let line = out.w.bookmark(start_rv, true);
                    if out.tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
            Start::Events(events) => {
                for ev in &events {
                    if !out.deliver(ev).await {
                        return;
                    }
                }
            }
            Start::Expired(line) => {
                let _ = out.tx.send(Ok(line)).await;
                return;
            }
        }
        out.delivered = start_rv;
        let deadline = tokio::time::sleep(out.w.timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(bookmark_every);
        tick.tick().await;
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if !out.deliver(&ev).await { return; }
                    }
                    // Fell behind the broadcast buffer: what was missed is in the history.
                    Err(RecvError::Lagged(_)) => {
                        if !out.catch_up(&shared).await { return; }
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    if out.tx.is_closed() { return; }
                    if out.w.bookmarks {
                        let rv = shared.store.lock().expect("store lock").current_rv();
                        // Everything committed up to `rv` is already in our receiver: send it
                        // before the bookmark so the bookmark never skips an event.
                        loop {
                            match rx.try_recv() {
                                Ok(ev) => {
                                    if !out.deliver(&ev).await { return; }
                                }
                                Err(TryRecvError::Lagged(_)) => {
                                    if !out.catch_up(&shared).await { return; }
                                }
                                Err(TryRecvError::Empty) => break,
                                Err(TryRecvError::Closed) => return,
                            }
                        }
                        let line = out.w.bookmark(rv.max(out.delivered), false);
                        if out.tx.send(Ok(line)).await.is_err() { return; }
                    }
                }
                _ = &mut deadline => return,
                _ = drop_rx.changed() => {
                    // Abort the body: the connection is cut without the final chunk, like a
                    // server or proxy going away.
                    let _ = out.tx.send(Err(std::io::Error::other("watch dropped"))).await;
                    return;
                }
                _ = shutdown_rx.changed() => {
                    let _ = out.tx.send(Err(std::io::Error::other("server shutting down"))).await;
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use http_body_util::BodyExt;

    use super::*;
    use crate::faults::{Counters, Faults, Latencies};
    use crate::store::{Store, WriteCtx};

    /// A watcher that falls more than the broadcast buffer behind gets what it missed from the
    /// history: every event once, in order, and the stream stays open.
    #[tokio::test]
    async fn a_lagging_watch_catches_up_from_the_history() {
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(10_000)),
            counters: Mutex::new(Counters::default()),
            latencies: Mutex::new(Latencies::default()),
            faults: Mutex::new(Faults::default()),
            drop_watches: tokio::sync::watch::channel(0).0,
            shutdown: tokio::sync::watch::channel(false).0,
            bookmark_interval: Duration::from_secs(3600),
            addr: "127.0.0.1:1".parse().unwrap(),
        });
        let rt = shared
            .store
            .lock()
            .unwrap()
            .registry
            .find("", "v1", "configmaps")
            .cloned()
            .unwrap();
        let w = WatchRequest {
            rt: rt.clone(),
            version: "v1".into(),
            ns: None,
            labels: LabelSelector::default(),
            fields: FieldSelector::default(),
            resource_version: Some(shared.store.lock().unwrap().current_rv().to_string()),
            timeout: Duration::from_secs(60),
            bookmarks: false,
            send_initial_events: false,
            metadata_only: false,
        };
        let mut body = serve(&shared, w).unwrap().into_body();
        // More writes than the broadcast buffer holds, before the watch task runs at all.
        let ctx = WriteCtx {
            rt,
            version: "v1".into(),
            manager: "test".into(),
            dry_run: false,
        };
        let n = 5000;
        for i in 0..n {
            let obj = json!({"metadata": {"name": format!("cm{i:04}")}});
            shared
                .store
                .lock()
                .unwrap()
                .create(&ctx, "default", obj)
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut buf = Vec::new();
        while seen.len() < n {
            let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
                .await
                .expect("events keep coming")
                .expect("stream open")
                .expect("no stream error");
            buf.extend_from_slice(&frame.into_data().unwrap());
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let ev: Value = serde_json::from_slice(&line).unwrap();
                assert_eq!(ev["type"], "ADDED");
                seen.push(
                    ev["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
            }
        }
        let want: Vec<String> = (0..n).map(|i| format!("cm{i:04}")).collect();
        assert_eq!(seen, want);
    }
}
