//! Watch semantics through kube-rs's runtime (watcher, reflector, metadata_watcher,
//! Controller) and on the wire (bookmarks, 410 ERROR events, selector transitions).

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
#[allow(deprecated)]
use kube::runtime::metadata_watcher;
use kube::runtime::{reflector, watcher, Controller, WatchStreamExt};
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use kube_test_server::{Fault, ServerOptions, TestServer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.arnsync.io",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
pub struct WidgetSpec {
    size: i32,
}

#[derive(Deserialize, Serialize, Clone, Debug, JsonSchema, Default)]
pub struct WidgetStatus {
    observed: i32,
}

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn register_widget_crd(server: &TestServer) {
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    crds.create(&PostParams::default(), &Widget::crd())
        .await
        .unwrap();
}

#[tokio::test]
async fn controller_reconciles_custom_resources_and_writes_status() {
    let server = TestServer::start().await.unwrap();
    register_widget_crd(&server).await;
    let client = server.client();
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());

    async fn reconcile(w: Arc<Widget>, api: Arc<Api<Widget>>) -> Result<Action, kube::Error> {
        api.patch_status(
            &w.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observed": w.spec.size}})),
        )
        .await?;
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<Widget>, _: &kube::Error, _: Arc<Api<Widget>>) -> Action {
        Action::requeue(Duration::from_millis(100))
    }
    let ctl = tokio::spawn(
        Controller::new(widgets.clone(), watcher::Config::default())
            .run(reconcile, error_policy, Arc::new(widgets.clone()))
            .for_each(|_| async {}),
    );
    for (name, size) in [("a", 1), ("b", 2), ("c", 3)] {
        widgets
            .create(
                &PostParams::default(),
                &Widget::new(name, WidgetSpec { size }),
            )
            .await
            .unwrap();
    }
    let check = |want: Vec<(&'static str, i32)>| {
        let widgets = widgets.clone();
        async move {
            for (name, size) in want {
                let w = widgets.get(name).await.unwrap();
                if w.status.map(|s| s.observed) != Some(size) {
                    return false;
                }
            }
            true
        }
    };
    eventually("status of a, b, c", || {
        check(vec![("a", 1), ("b", 2), ("c", 3)])
    })
    .await;
    // A spec change is reconciled too; the status write did not bump generation.
    let b = widgets.get("b").await.unwrap();
    assert_eq!(b.metadata.generation, Some(1));
    widgets
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 20}})),
        )
        .await
        .unwrap();
    eventually("status of b follows spec", || check(vec![("b", 20)])).await;
    assert_eq!(widgets.get("b").await.unwrap().metadata.generation, Some(2));
    assert!(server.request_count("patch", "widgets/status") >= 4);
    ctl.abort();
}

#[tokio::test]
async fn watcher_resumes_after_the_server_drops_watches() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    eventually("a in cache", || {
        let r = reader.clone();
        async move { r.state().iter().any(|o| o.name_any() == "a") }
    })
    .await;
    let watches_before = server.request_count("watch", "configmaps");
    let lists_before = server.request_count("list", "configmaps");
    server.drop_watches();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    eventually("b in cache, a gone", || {
        let r = reader.clone();
        async move {
            let names: Vec<String> = r.state().iter().map(|o| o.name_any()).collect();
            names == ["b"]
        }
    })
    .await;
    assert!(server.request_count("watch", "configmaps") > watches_before);
    // Resumed from its resourceVersion: no relist needed.
    assert_eq!(server.request_count("list", "configmaps"), lists_before);
    task.abort();
}

#[tokio::test]
async fn watcher_relists_after_410_gone() {
    let opts = ServerOptions {
        history_limit: 3,
        ..Default::default()
    };
    let server = TestServer::start_with("127.0.0.1:0".parse().unwrap(), opts)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let (reader, writer) = reflector::store::<ConfigMap>();
    let task = tokio::spawn(
        reflector(writer, watcher(api.clone(), watcher::Config::default()))
            .default_backoff()
            .for_each(|_| async {}),
    );
    api.create(&PostParams::default(), &cm("first", json!({})))
        .await
        .unwrap();
    eventually("first in cache", || {
        let r = reader.clone();
        async move { r.state().len() == 1 }
    })
    .await;
    assert_eq!(server.request_count("list", "configmaps"), 1);
    // Hold the re-watch back while more changes than the history holds happen.
    server.inject(
        Fault::default()
            .verb("watch")
            .latency(Duration::from_millis(800))
            .times(1),
    );
    server.drop_watches();
    for i in 0..6 {
        api.create(&PostParams::default(), &cm(&format!("n{i}"), json!({})))
            .await
            .unwrap();
    }
    eventually("all 7 in cache after relist", || {
        let r = reader.clone();
        async move { r.state().len() == 7 }
    })
    .await;
    assert!(
        server.request_count("list", "configmaps") >= 2,
        "expected a relist"
    );
    task.abort();
}

/// Opens a raw watch and returns a line reader.
async fn raw_watch(url: &str) -> tokio::io::Lines<tokio::io::BufReader<tokio::net::TcpStream>> {
    let u: http::Uri = url.parse().unwrap();
    let mut stream = tokio::net::TcpStream::connect(u.authority().unwrap().as_str())
        .await
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        u.path_and_query().unwrap()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    tokio::io::BufReader::new(stream).lines()
}

/// Next JSON event from a chunked watch response (skips headers and chunk-size lines).
async fn next_event(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::net::TcpStream>>,
) -> Option<Value> {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("watch event in time")
            .unwrap()?;
        if line.starts_with('{') {
            return Some(serde_json::from_str(&line).unwrap());
        }
    }
}

#[tokio::test]
async fn raw_watch_semantics_errors_bookmarks_and_selectors() {
    let opts = ServerOptions {
        history_limit: 3,
        bookmark_interval: Duration::from_millis(100),
    };
    let server = TestServer::start_with("127.0.0.1:0".parse().unwrap(), opts)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let c = api
        .create(&PostParams::default(), &cm("a", json!({"sel": "yes"})))
        .await
        .unwrap();
    let old_rv = c.resource_version().unwrap();
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("x{i}"), json!({})))
            .await
            .unwrap();
    }
    // Too old: a single ERROR event with a 410 Expired Status.
    let base = format!("{}/api/v1/namespaces/default/configmaps", server.url());
    let mut w = raw_watch(&format!("{base}?watch=1&resourceVersion={old_rv}")).await;
    let ev = next_event(&mut w).await.unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    // And list with an Exact too-old RV is HTTP 410.
    let err = api
        .list(
            &ListParams::default()
                .at(&old_rv)
                .matching(kube::api::VersionMatch::Exact),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 410),
        "{err:?}"
    );

    // From "now" with a selector: synthetic ADDED, then transitions in and out of the selection.
    let rv = server.resource_version();
    let mut w = raw_watch(&format!(
        "{base}?watch=true&labelSelector=sel%3Dyes&allowWatchBookmarks=true&resourceVersion={rv}"
    ))
    .await;
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"sel": "no"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "x1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"sel": "yes"}}})),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    let mut bookmark_rv = None;
    while seen.len() < 2 || bookmark_rv.is_none() {
        let ev = next_event(&mut w).await.unwrap();
        let t = ev["type"].as_str().unwrap().to_string();
        if t == "BOOKMARK" {
            bookmark_rv = ev["object"]["metadata"]["resourceVersion"]
                .as_str()
                .map(String::from);
        } else {
            seen.push(format!(
                "{t} {}",
                ev["object"]["metadata"]["name"].as_str().unwrap()
            ));
        }
    }
    assert_eq!(seen, ["DELETED a", "ADDED x1"]);
    assert!(bookmark_rv.unwrap().parse::<u64>().unwrap() >= rv + 2);

    // timeoutSeconds ends the stream cleanly.
    let mut w = raw_watch(&format!(
        "{base}?watch=1&timeoutSeconds=1&resourceVersion={}",
        server.resource_version()
    ))
    .await;
    let start = std::time::Instant::now();
    assert!(next_event(&mut w).await.is_none());
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn streaming_list_watcher_and_metadata_watcher() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("pre", json!({})))
        .await
        .unwrap();

    // metadata_watcher: PartialObjectMetadata objects, sees create, modify, delete.
    #[allow(deprecated)] // the replacement sends the same metadata-only requests
    let mut meta = metadata_watcher(api.clone(), watcher::Config::default()).boxed();
    loop {
        if let watcher::Event::InitDone = meta.try_next().await.unwrap().unwrap() {
            break;
        }
    }
    let mut streaming = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut init_names = Vec::new();
    loop {
        match streaming.try_next().await.unwrap().unwrap() {
            watcher::Event::InitApply(o) => init_names.push(o.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(init_names, ["pre"]);

    let mut got = Vec::new();
    api.create(&PostParams::default(), &cm("m", json!({})))
        .await
        .unwrap();
    api.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"l": "1"}}})),
    )
    .await
    .unwrap();
    api.delete("m", &DeleteParams::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < 3 && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), meta.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::Apply(o) if o.name_any() == "m" => {
                got.push(format!("apply {:?}", o.labels().get("l")))
            }
            watcher::Event::Delete(o) => got.push(format!("delete {}", o.name_any())),
            _ => {}
        }
    }
    assert_eq!(got, ["apply None", "apply Some(\"1\")", "delete m"]);
    // The streaming-list watcher sees the same changes.
    let mut names = Vec::new();
    while names.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(10), streaming.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::Apply(o) | watcher::Event::Delete(o) => names.push(o.name_any()),
            _ => {}
        }
    }
    assert_eq!(names, ["m", "m", "m"]);

    // Metadata-only list and get.
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(list.items[0].metadata.uid.is_some());
    let one = api.get_metadata("pre").await.unwrap();
    assert_eq!(one.types.as_ref().unwrap().kind, "PartialObjectMetadata");
}
