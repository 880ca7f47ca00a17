//! Discovery, CRUD status codes, selectors, pagination, generation and concurrency.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::Discovery;
use kube::ResourceExt;
use kube_test_server::TestServer;
use serde_json::{json, Value};

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"}
    }))
    .unwrap()
}

fn api_code(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn raw_get(url: &str) -> (u16, Value) {
    let (code, body) = raw(url, "GET", None, &[]).await;
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Minimal HTTP/1.1 client so tests can check exact wire responses.
async fn raw(
    url: &str,
    method: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(bytes::Bytes::from(
            body.unwrap_or("").to_string(),
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8_lossy(&bytes).to_string())
}

#[tokio::test]
async fn discovery_documents_list_resources_with_verbs_and_subresources() {
    let server = TestServer::start().await.unwrap();
    let url = server.url();
    let (code, v) = raw_get(&format!("{url}/version")).await;
    assert_eq!(code, 200);
    assert_eq!(v["major"], "1");

    let (_, core) = raw_get(&format!("{url}/api/v1")).await;
    let secrets = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "secrets")
        .unwrap();
    assert_eq!(secrets["kind"], "Secret");
    assert_eq!(secrets["namespaced"], true);
    assert_eq!(secrets["singularName"], "secret");
    assert!(secrets["verbs"]
        .as_array()
        .unwrap()
        .contains(&json!("watch")));

    let (_, apps) = raw_get(&format!("{url}/apis/apps/v1")).await;
    let names: Vec<&str> = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in [
        "deployments",
        "deployments/status",
        "statefulsets",
        "daemonsets/status",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let deploy = &apps["resources"].as_array().unwrap()
        [names.iter().position(|n| *n == "deployments").unwrap()];
    assert_eq!(deploy["shortNames"], json!(["deploy"]));

    let (_, groups) = raw_get(&format!("{url}/apis")).await;
    let gnames: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in [
        "apps",
        "coordination.k8s.io",
        "events.k8s.io",
        "apiextensions.k8s.io",
    ] {
        assert!(gnames.contains(&g));
    }
    let (code, _) = raw_get(&format!("{url}/apis/nope.example.com/v1")).await;
    assert_eq!(code, 404);

    // Aggregated discovery, as kubectl asks for it.
    let (code, body) = raw(
        &format!("{url}/apis"),
        "GET",
        None,
        &[(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )],
    )
    .await;
    assert_eq!(code, 200);
    let agg: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(agg["kind"], "APIGroupDiscoveryList");
    let apps = agg["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .unwrap();
    let dep = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .unwrap();
    assert_eq!(dep["scope"], "Namespaced");
    assert_eq!(dep["subresources"][0]["subresource"], "status");

    // kube-rs discovery works end to end.
    let disc = Discovery::new(server.client()).run().await.unwrap();
    assert!(disc.has_group("apps"));
    let (ar, caps) = disc
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "apps",
            "v1",
            "Deployment",
        ))
        .unwrap();
    assert_eq!(ar.plural, "deployments");
    assert!(caps
        .subresources
        .iter()
        .any(|(s, _)| s.plural == "deployments/status" || s.plural == "status"));
    server.shutdown().await;
}

#[tokio::test]
async fn crud_and_error_codes() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let rv1: u64 = created.resource_version().unwrap().parse().unwrap();

    let (code, reason) = api_code(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    let (code, reason) = api_code(api.get("missing").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));

    // Namespace must exist.
    let other: Api<ConfigMap> = Api::namespaced(server.client(), "nope");
    let (code, _) = api_code(
        other
            .create(&PostParams::default(), &cm("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404);
    let nss: Api<Namespace> = Api::all(server.client());
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert!(names.contains(&"default".to_string()) && names.contains(&"kube-system".to_string()));

    // Update with the current RV succeeds and bumps the RV; a stale RV is a 409 Conflict.
    let mut c = created.clone();
    c.data = Some([("k".to_string(), "v2".to_string())].into());
    let updated = api.replace("a", &PostParams::default(), &c).await.unwrap();
    let rv2: u64 = updated.resource_version().unwrap().parse().unwrap();
    assert!(rv2 > rv1);
    let (code, reason) = api_code(
        api.replace("a", &PostParams::default(), &c)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    // No resourceVersion: unconditional.
    c.metadata.resource_version = None;
    c.data = Some([("k".to_string(), "v3".to_string())].into());
    let u3 = api.replace("a", &PostParams::default(), &c).await.unwrap();
    assert_eq!(u3.data.unwrap()["k"], "v3");

    // generateName
    let mut g = cm("", json!({}));
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let gen = api.create(&PostParams::default(), &g).await.unwrap();
    assert!(gen.name_any().starts_with("gen-") && gen.name_any().len() == 9);

    // Delete of a built-in answers a Status; then 404.
    let res = api.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(res.is_right());
    let (code, _) = api_code(api.delete("a", &DeleteParams::default()).await.unwrap_err());
    assert_eq!(code, 404);

    // Invalid name: 422.
    let (code, reason) = api_code(
        api.create(&PostParams::default(), &cm("Bad_Name", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));

    // Unknown patch type: 415; wrong method: 405.
    let (code, body) = raw(
        &format!(
            "{}/api/v1/namespaces/default/configmaps/{}",
            server.url(),
            gen.name_any()
        ),
        "PATCH",
        Some("{}"),
        &[("content-type", "text/plain")],
    )
    .await;
    assert_eq!(code, 415, "{body}");
    let (code, _) = raw(
        &format!("{}/api/v1/namespaces/default/configmaps", server.url()),
        "PUT",
        Some("{}"),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(code, 405);
    // Malformed body: 400.
    let (code, body) = raw(
        &format!("{}/api/v1/namespaces/default/configmaps", server.url()),
        "POST",
        Some("{not json"),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(code, 400);
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "BadRequest");

    // dryRun=All does not persist.
    let dry = api
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &cm("dry", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(dry.name_any(), "dry");
    assert!(api.get_opt("dry").await.unwrap().is_none());
}

#[tokio::test]
async fn label_and_field_selectors_support_every_operator() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    for (name, labels) in [
        ("a", json!({"app": "web", "tier": "front"})),
        ("b", json!({"app": "web", "tier": "back"})),
        ("c", json!({"app": "db"})),
        ("d", json!({})),
    ] {
        api.create(&PostParams::default(), &cm(name, labels))
            .await
            .unwrap();
    }
    kube::Api::<ConfigMap>::namespaced(server.client(), "kube-system")
        .create(&PostParams::default(), &cm("e", json!({"app": "web"})))
        .await
        .unwrap();
    let names = |lp: ListParams| {
        let api = api.clone();
        async move {
            let mut v: Vec<String> = api
                .list(&lp)
                .await
                .unwrap()
                .items
                .iter()
                .map(|o| o.name_any())
                .collect();
            v.sort();
            v.join(",")
        }
    };
    let l = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(l("app=web")).await, "a,b");
    assert_eq!(names(l("app==web")).await, "a,b");
    assert_eq!(names(l("app!=web")).await, "c,d");
    assert_eq!(names(l("tier in (front,back)")).await, "a,b");
    assert_eq!(names(l("tier notin (front)")).await, "b,c,d");
    assert_eq!(names(l("tier")).await, "a,b");
    assert_eq!(names(l("!tier")).await, "c,d");
    assert_eq!(names(l("app=web,tier=back")).await, "b");
    let f = |s: &str| ListParams::default().fields(s);
    assert_eq!(names(f("metadata.name=c")).await, "c");
    assert_eq!(names(f("metadata.name!=c")).await, "a,b,d");
    assert_eq!(names(f("metadata.namespace=default")).await, "a,b,c,d");

    // All namespaces.
    let all: Api<ConfigMap> = Api::all(server.client());
    let mut v: Vec<String> = all
        .list(&l("app=web"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| format!("{}/{}", o.namespace().unwrap(), o.name_any()))
        .collect();
    v.sort();
    assert_eq!(v, ["default/a", "default/b", "kube-system/e"]);
    let list = all
        .list(&f("metadata.namespace=kube-system"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);

    // Malformed selectors are 400.
    let (code, _) = api_code(api.list(&l("app in (x")).await.unwrap_err());
    assert_eq!(code, 400);
    let (code, _) = api_code(api.list(&f("spec.nope=x")).await.unwrap_err());
    assert_eq!(code, 400);
}

#[tokio::test]
async fn limit_and_continue_paginate_a_consistent_snapshot() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    for i in 0..7 {
        api.create(&PostParams::default(), &cm(&format!("cm-{i}"), json!({})))
            .await
            .unwrap();
    }
    let first = api.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.metadata.remaining_item_count, Some(4));
    let list_rv = first.metadata.resource_version.clone().unwrap();
    // A change between pages does not show up in later pages of the same list.
    api.create(&PostParams::default(), &cm("cm-9", json!({})))
        .await
        .unwrap();
    api.delete("cm-5", &DeleteParams::default()).await.unwrap();
    let mut names: Vec<String> = first.items.iter().map(|o| o.name_any()).collect();
    let mut token = first.metadata.continue_.clone();
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = api
            .list(&ListParams::default().limit(3).continue_token(&t))
            .await
            .unwrap();
        assert_eq!(
            page.metadata.resource_version.as_deref(),
            Some(list_rv.as_str())
        );
        names.extend(page.items.iter().map(|o| o.name_any()));
        token = page.metadata.continue_.clone();
    }
    assert_eq!(names, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
    // List RV equals the global RV at list time.
    let now = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        now.metadata.resource_version.unwrap(),
        server.resource_version().to_string()
    );
}

#[tokio::test]
async fn paged_lists_with_selectors_walk_every_match_across_namespaces() {
    let server = TestServer::start().await.unwrap();
    let client = server.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["p1", "p2"] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        namespaces.create(&PostParams::default(), &n).await.unwrap();
    }
    for i in 0..12 {
        let ns = if i % 2 == 0 { "p1" } else { "p2" };
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let labels = json!({"app": if i % 3 == 0 { "a" } else { "b" }, "i": i.to_string()});
        api.create(&PostParams::default(), &cm(&format!("cm-{i:02}"), labels))
            .await
            .unwrap();
    }
    let all: Api<ConfigMap> = Api::all(client.clone());
    let walk =
        |lp: ListParams| {
            let all = all.clone();
            async move {
                let mut names = Vec::new();
                let mut token: Option<String> = None;
                let mut remaining = Vec::new();
                loop {
                    let mut p = lp.clone().limit(2);
                    if let Some(t) = &token {
                        p = p.continue_token(t);
                    }
                    let page = all.list(&p).await.unwrap();
                    names.extend(page.items.iter().map(|o| {
                        format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
                    }));
                    remaining.push(page.metadata.remaining_item_count);
                    token = page.metadata.continue_.filter(|t| !t.is_empty());
                    if token.is_none() {
                        return (names, remaining);
                    }
                }
            }
        };
    let want = |f: &dyn Fn(usize) -> bool| -> Vec<String> {
        let mut v: Vec<String> = (0..12)
            .filter(|i| f(*i))
            .map(|i| format!("{}/cm-{i:02}", if i % 2 == 0 { "p1" } else { "p2" }))
            .collect();
        v.sort();
        v
    };
    // Label selector (from the label index), across namespaces, in pages.
    let (names, remaining) = walk(ListParams::default().labels("app=a")).await;
    assert_eq!(names, want(&|i| i % 3 == 0));
    // Like the real server: no remainingItemCount when selectors filter the list.
    assert!(remaining.iter().all(Option::is_none));
    let (names, _) = walk(ListParams::default().labels("app in (a,b),i!=4")).await;
    assert_eq!(names, want(&|i| i != 4));
    let (names, _) = walk(ListParams::default().fields("metadata.namespace=p2")).await;
    assert_eq!(names, want(&|i| i % 2 == 1));
    let (names, _) = walk(ListParams::default().fields("metadata.name=cm-03")).await;
    assert_eq!(names, want(&|i| i == 3));
    // Without selectors every page but the last counts what is left.
    let (names, remaining) = walk(ListParams::default()).await;
    assert!(names.len() >= 12);
    assert_eq!(
        remaining.first().copied().flatten(),
        Some(names.len() as i64 - 2)
    );
    assert_eq!(remaining.last().copied().flatten(), None);
}

#[tokio::test]
async fn generation_bumps_only_on_spec_changes() {
    let server = TestServer::start().await.unwrap();
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        "status": {"replicas": 99}
    }))
    .unwrap();
    let d = api.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    assert!(
        d.status.is_none(),
        "status is ignored on create for kinds with /status"
    );
    let pp = PatchParams::default();
    let d = api
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1), "metadata change");
    let d = api
        .patch_status(
            "web",
            &pp,
            &Patch::Merge(json!({"status": {"replicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1), "status change");
    assert_eq!(d.status.unwrap().replicas, Some(1));
    let d = api
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"spec": {"replicas": 3}, "status": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(2), "spec change");
    assert_eq!(
        d.status.unwrap().replicas,
        Some(1),
        "status ignored on main resource"
    );
    // A no-op write changes nothing, not even the resourceVersion.
    let before = d.metadata.resource_version.clone();
    let d = api
        .patch("web", &pp, &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .unwrap();
    assert_eq!(d.metadata.resource_version, before);
    // JSON patch and strategic merge patch.
    let d = api
        .patch(
            "web",
            &pp,
            &Patch::<()>::Json(
                serde_json::from_value(json!([
                    {"op": "replace", "path": "/spec/replicas", "value": 4},
                    {"op": "test", "path": "/spec/replicas", "value": 4}
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(d.metadata.generation, Some(3));
    let (code, _) = api_code(
        api.patch(
            "web",
            &pp,
            &Patch::<()>::Json(
                serde_json::from_value(json!([
                    {"op": "test", "path": "/spec/replicas", "value": 9}
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422);
    let d = api.patch("web", &pp, &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox"}]}}}}))).await.unwrap();
    let containers: Vec<String> = d
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(containers, ["c", "side"]);
}

#[tokio::test]
async fn merge_patch_with_stale_resource_version_conflicts() {
    let server = TestServer::start().await.unwrap();
    let api: Api<Secret> = Api::default_namespaced(server.client());
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"a": "1"}}))
            .unwrap();
    let s = api.create(&PostParams::default(), &s).await.unwrap();
    let rv = s.resource_version().unwrap();
    api.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"stringData": {"b": "2"}})),
    )
    .await
    .unwrap();
    let (code, reason) = api_code(
        api.patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": rv}, "stringData": {"c": "3"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    let s = api.get("s").await.unwrap();
    let keys: Vec<&String> = s.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["a", "b"]);
}

/// `metadata.generation` follows the real registry strategies, kind by kind: Deployments count
/// annotation changes (they are copied to ReplicaSets), StatefulSets and DaemonSets only
/// `spec`, custom resources everything but metadata (status too without a status subresource).
#[tokio::test]
async fn generation_follows_each_kinds_rules() {
    let server = TestServer::start().await.unwrap();
    let client = server.client();
    let pp = PatchParams::default();
    let annotate = |v: &str| Patch::Merge(json!({"metadata": {"annotations": {"a": v}}}));
    let workload = |kind: &str| {
        json!({
            "apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w"},
            "spec": {"selector": {"matchLabels": {"app": "w"}}, "serviceName": "w",
                     "template": {"metadata": {"labels": {"app": "w"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
        })
    };

    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let mut d = workload("Deployment");
    d["spec"].as_object_mut().unwrap().remove("serviceName");
    deployments
        .create(&PostParams::default(), &serde_json::from_value(d).unwrap())
        .await
        .unwrap();
    let d = deployments.patch("w", &pp, &annotate("1")).await.unwrap();
    assert_eq!(
        d.metadata.generation,
        Some(2),
        "a Deployment annotation change bumps generation"
    );
    let d = deployments
        .patch(
            "w",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"l": "x"}}})),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(2), "labels do not");

    let sts: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::default_namespaced(client.clone());
    sts.create(
        &PostParams::default(),
        &serde_json::from_value(workload("StatefulSet")).unwrap(),
    )
    .await
    .unwrap();
    let s = sts.patch("w", &pp, &annotate("1")).await.unwrap();
    assert_eq!(s.metadata.generation, Some(1), "StatefulSet: spec only");

    let ds: Api<k8s_openapi::api::apps::v1::DaemonSet> = Api::default_namespaced(client.clone());
    let mut d = workload("DaemonSet");
    d["spec"].as_object_mut().unwrap().remove("serviceName");
    ds.create(&PostParams::default(), &serde_json::from_value(d).unwrap())
        .await
        .unwrap();
    let s = ds.patch("w", &pp, &annotate("1")).await.unwrap();
    assert_eq!(s.metadata.generation, Some(1), "DaemonSet: spec only");

    // A custom resource without a status subresource: status is part of what counts.
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DynamicObject};
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "plains.test.io"},
            "spec": {"group": "test.io", "scope": "Namespaced",
                     "names": {"plural": "plains", "kind": "Plain"},
                     "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object",
                            "x-kubernetes-preserve-unknown-fields": true}}}]}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let ar = ApiResource {
        group: "test.io".into(),
        version: "v1".into(),
        api_version: "test.io/v1".into(),
        kind: "Plain".into(),
        plural: "plains".into(),
    };
    let plains: Api<DynamicObject> = Api::default_namespaced_with(client, &ar);
    plains
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "test.io/v1", "kind": "Plain", "metadata": {"name": "p"},
                "spec": {"n": 1}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let p = plains.patch("p", &pp, &annotate("1")).await.unwrap();
    assert_eq!(p.metadata.generation, Some(1), "custom resource metadata");
    let p = plains
        .patch("p", &pp, &Patch::Merge(json!({"status": {"phase": "x"}})))
        .await
        .unwrap();
    assert_eq!(
        p.metadata.generation,
        Some(2),
        "status without a status subresource"
    );
}
