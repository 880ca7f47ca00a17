//! Server-side apply ownership, finalizers, garbage collection, CRD status subresource,
//! Secret admission, counters and fault injection.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
    PostParams, PropagationPolicy,
};
use kube::ResourceExt;
use kube_test_server::{Fault, TestServer};
use serde_json::{json, Value};

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn apply(manager: &str) -> PatchParams {
    PatchParams::apply(manager)
}

#[tokio::test]
async fn server_side_apply_tracks_ownership_and_conflicts() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let doc = |data: Value, labels: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "cfg", "labels": labels}, "data": data})
    };
    // Creates when absent.
    let c = api
        .patch(
            "cfg",
            &apply("alice"),
            &Patch::Apply(doc(json!({"a": "1", "b": "2"}), json!({"owner": "alice"}))),
        )
        .await
        .unwrap();
    let mf = c.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("alice"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    assert_eq!(mf[0].fields_type.as_deref(), Some("FieldsV1"));
    assert_eq!(
        mf[0].fields_v1.as_ref().unwrap().0,
        json!({"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:owner": {}}}})
    );
    // Another manager adds its own key.
    api.patch(
        "cfg",
        &apply("bob"),
        &Patch::Apply(doc(json!({"c": "3"}), json!({}))),
    )
    .await
    .unwrap();
    // alice stops sending b: removed; bob's c stays.
    let c = api
        .patch(
            "cfg",
            &apply("alice"),
            &Patch::Apply(doc(json!({"a": "1"}), json!({"owner": "alice"}))),
        )
        .await
        .unwrap();
    let data = c.data.unwrap();
    assert_eq!(data.keys().cloned().collect::<Vec<_>>(), ["a", "c"]);
    // bob changing alice's key without force: 409 naming the field and the owner.
    let err = api_err(
        api.patch(
            "cfg",
            &apply("bob"),
            &Patch::Apply(doc(json!({"c": "3", "a": "x"}), json!({}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    let causes = err.details.unwrap().causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, ".data.a");
    assert!(causes[0].message.contains("\"alice\""));
    // Applying the same value is shared ownership, not a conflict.
    api.patch(
        "cfg",
        &apply("bob"),
        &Patch::Apply(doc(json!({"c": "3", "a": "1"}), json!({}))),
    )
    .await
    .unwrap();
    // force takes over.
    let c = api
        .patch(
            "cfg",
            &apply("bob").force(),
            &Patch::Apply(doc(json!({"c": "3", "a": "x"}), json!({}))),
        )
        .await
        .unwrap();
    assert_eq!(c.data.as_ref().unwrap()["a"], "x");
    let owners: Vec<(String, Value)> = c
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|e| (e.manager.unwrap(), e.fields_v1.unwrap().0))
        .collect();
    let alice = &owners.iter().find(|(m, _)| m == "alice").unwrap().1;
    assert!(
        alice["f:data"].get("f:a").is_none(),
        "alice lost .data.a: {alice}"
    );
    // Non-apply writes are recorded as Update entries of their manager.
    let c = api
        .patch(
            "cfg",
            &PatchParams {
                field_manager: Some("editor".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"e": "5"}})),
        )
        .await
        .unwrap();
    let editor = c
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|e| e.manager.as_deref() == Some("editor"))
        .unwrap();
    assert_eq!(editor.operation.as_deref(), Some("Update"));
    assert_eq!(editor.fields_v1.unwrap().0, json!({"f:data": {"f:e": {}}}));
    // fieldManager is required for apply.
    let (code, _) = {
        let e = api_err(
            api.patch(
                "cfg",
                &PatchParams::default(),
                &Patch::Apply(doc(json!({}), json!({}))),
            )
            .await
            .unwrap_err(),
        );
        (e.code, e.reason)
    };
    assert_eq!(code, 400);
}

#[tokio::test]
async fn apply_to_a_deployment_keeps_other_managers_annotations() {
    let server = TestServer::start().await.unwrap();
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    let doc = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    });
    api.patch("web", &apply("helm"), &Patch::Apply(doc.clone()))
        .await
        .unwrap();
    // An operator rolls the workload by owning one pod-template annotation.
    let roll = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"metadata": {"annotations": {"arnsync.io/hash": "abc"}}}}});
    let d = api
        .patch("web", &apply("arnsync"), &Patch::Apply(roll))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(2));
    // The original manager re-applies without the annotation: it stays (arnsync owns it).
    let d = api
        .patch("web", &apply("helm"), &Patch::Apply(doc))
        .await
        .unwrap();
    let ann = d
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert_eq!(ann["arnsync.io/hash"], "abc");
    assert_eq!(d.metadata.generation, Some(2));
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let c: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "f", "finalizers": ["test.io/hold"]}}))
            .unwrap();
    api.create(&PostParams::default(), &c).await.unwrap();
    let res = api.delete("f", &DeleteParams::default()).await.unwrap();
    let held = res
        .left()
        .expect("object returned while finalizers hold it");
    assert!(held.metadata.deletion_timestamp.is_some());
    let still = api.get("f").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    // New finalizers cannot be added during deletion.
    let err = api_err(
        api.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["test.io/hold", "other"]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    // Emptying the finalizers completes the deletion.
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(api.get_opt("f").await.unwrap().is_none());
}

fn owned_cm(name: &str, owner: &ConfigMap) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": owner.name_any(),
        "uid": owner.uid().unwrap(), "controller": true, "blockOwnerDeletion": true
    }]}}))
    .unwrap()
}

#[tokio::test]
async fn cascading_delete_and_orphan() {
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let pp = PostParams::default();
    let mk =
        |n: &str| serde_json::from_value::<ConfigMap>(json!({"metadata": {"name": n}})).unwrap();
    let owner = api.create(&pp, &mk("owner")).await.unwrap();
    let child = api.create(&pp, &owned_cm("child", &owner)).await.unwrap();
    api.create(&pp, &owned_cm("grandchild", &child))
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert!(api.get_opt("child").await.unwrap().is_none());
    assert!(api.get_opt("grandchild").await.unwrap().is_none());

    let owner = api.create(&pp, &mk("owner2")).await.unwrap();
    api.create(&pp, &owned_cm("kept", &owner)).await.unwrap();
    api.delete("owner2", &DeleteParams::orphan()).await.unwrap();
    let kept = api.get("kept").await.unwrap();
    assert!(kept
        .metadata
        .owner_references
        .unwrap_or_default()
        .is_empty());

    let owner = api.create(&pp, &mk("owner3")).await.unwrap();
    api.create(&pp, &owned_cm("fg", &owner)).await.unwrap();
    api.delete(
        "owner3",
        &DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(api.get_opt("fg").await.unwrap().is_none());

    // Deleting a namespace deletes its contents.
    let nss: Api<Namespace> = Api::all(server.client());
    nss.create(
        &pp,
        &serde_json::from_value(json!({"metadata": {"name": "tmp"}})).unwrap(),
    )
    .await
    .unwrap();
    let in_tmp: Api<ConfigMap> = Api::namespaced(server.client(), "tmp");
    in_tmp.create(&pp, &mk("x")).await.unwrap();
    nss.delete("tmp", &DeleteParams::default()).await.unwrap();
    assert!(nss.get_opt("tmp").await.unwrap().is_none());
    let err = api_err(in_tmp.get("x").await.unwrap_err());
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn crd_registration_and_status_subresource() {
    let server = TestServer::start().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.test.io"},
        "spec": {"group": "test.io", "scope": "Namespaced",
                 "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo", "shortNames": ["gz"]},
                 "versions": [
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                    {"name": "v1beta1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
                 ]}
    })).unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conds = created.status.unwrap().conditions.unwrap();
    assert!(conds
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True"));

    // Discovery lists both versions, the status subresource and the short name.
    let disc = kube::discovery::Discovery::new(server.client())
        .run()
        .await
        .unwrap();
    let group = disc.get("test.io").expect("group discovered");
    let versions: Vec<String> = group.versions().map(String::from).collect();
    assert_eq!(versions, ["v1", "v1beta1"]);
    let (ar, caps) = disc
        .resolve_gvk(&GroupVersionKind::gvk("test.io", "v1", "Gizmo"))
        .unwrap();
    assert_eq!(ar.plural, "gizmos");
    assert!(!caps.subresources.is_empty());

    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.io", "v1", "Gizmo"),
        "gizmos",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(server.client(), "default", &ar);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "test.io/v1", "kind": "Gizmo", "metadata": {"name": "g"},
        "spec": {"n": 1}, "status": {"phase": "ignored"}
    }))
    .unwrap();
    let g = api.create(&PostParams::default(), &obj).await.unwrap();
    assert!(g.data.get("status").is_none(), "status dropped on create");
    assert_eq!(g.metadata.generation, Some(1));
    // Main resource ignores status; /status ignores everything else.
    let g = api
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"n": 2}, "status": {"phase": "x"}})),
        )
        .await
        .unwrap();
    assert!(g.data.get("status").is_none());
    assert_eq!(g.metadata.generation, Some(2));
    let g = api
        .patch_status(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"n": 99}, "status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    assert_eq!(g.data["status"]["phase"], "Ready");
    assert_eq!(g.data["spec"]["n"], 2);
    assert_eq!(g.metadata.generation, Some(2));
    // Apply on /status: the merge patch above made its manager own .status.phase, so a
    // non-forced apply conflicts and a forced one takes over, recorded for the subresource.
    let status_doc = json!({"apiVersion": "test.io/v1", "kind": "Gizmo", "metadata": {"name": "g"}, "status": {"phase": "Done"}});
    let err = api_err(
        api.patch_status(
            "g",
            &PatchParams::apply("ctl"),
            &Patch::Apply(status_doc.clone()),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    let g = api
        .patch_status(
            "g",
            &PatchParams::apply("ctl").force(),
            &Patch::Apply(status_doc),
        )
        .await
        .unwrap();
    assert_eq!(g.data["status"]["phase"], "Done");
    let entry = g
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|e| e.manager.as_deref() == Some("ctl"))
        .unwrap();
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    // Served under the other version too, with that apiVersion.
    let ar_beta = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.io", "v1beta1", "Gizmo"),
        "gizmos",
    );
    let beta: Api<DynamicObject> = Api::namespaced_with(server.client(), "default", &ar_beta);
    assert_eq!(
        beta.get("g").await.unwrap().types.unwrap().api_version,
        "test.io/v1beta1"
    );
    // Strategic merge patch is not supported for custom resources.
    let err = api_err(
        api.patch(
            "g",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"n": 3}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 415);
    // Delete of a custom resource returns the object.
    let res = api.delete("g", &DeleteParams::default()).await.unwrap();
    assert!(res.is_left());

    // Deleting the CRD removes the resource from discovery and its objects.
    api.create(&PostParams::default(), &obj).await.unwrap();
    crds.delete("gizmos.test.io", &DeleteParams::default())
        .await
        .unwrap();
    let err = api_err(api.get("g").await.unwrap_err());
    assert_eq!(err.code, 404);
    let disc = kube::discovery::Discovery::new(server.client())
        .run()
        .await
        .unwrap();
    assert!(!disc.has_group("test.io"));
}

#[tokio::test]
async fn secrets_fold_string_data_and_validate() {
    let server = TestServer::start().await.unwrap();
    let api: Api<Secret> = Api::default_namespaced(server.client());
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "hello", "a": "over"}})).unwrap();
    let s = api.create(&PostParams::default(), &s).await.unwrap();
    assert!(s.string_data.is_none());
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    let data = s.data.unwrap();
    assert_eq!(data["b"].0, b"hello");
    assert_eq!(data["a"].0, b"over");

    let err = api_err(
        api.patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"type": "kubernetes.io/tls"})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));

    let bad_key: Secret =
        serde_json::from_value(json!({"metadata": {"name": "k"}, "stringData": {"bad/key": "x"}}))
            .unwrap();
    let err = api_err(
        api.create(&PostParams::default(), &bad_key)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);

    let big: Secret = serde_json::from_value(
        json!({"metadata": {"name": "big"}, "stringData": {"blob": "x".repeat(1024 * 1024 + 1)}}),
    )
    .unwrap();
    let err = api_err(api.create(&PostParams::default(), &big).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let fits: Secret = serde_json::from_value(
        json!({"metadata": {"name": "fits"}, "stringData": {"blob": "x".repeat(1024 * 1024)}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &fits).await.unwrap();

    // Undecodable base64 fails decoding (400), as on the real server.
    let err = api_err(
        api.patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"z": "not base64!"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn request_counters_and_fault_injection() {
    let server = TestServer::start().await.unwrap();
    let api: Api<Secret> = Api::default_namespaced(server.client());
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "s"}})).unwrap();
    api.create(&PostParams::default(), &s).await.unwrap();
    api.get("s").await.unwrap();
    api.get("s").await.unwrap();
    api.list(&Default::default()).await.unwrap();
    assert_eq!(server.request_count("create", "secrets"), 1);
    assert_eq!(server.request_count("get", "secrets"), 2);
    assert_eq!(server.request_count("list", "secrets"), 1);
    assert_eq!(
        server.request_counts()[&("get".to_string(), "secrets".to_string())],
        2
    );
    server.reset_counters();
    assert_eq!(server.request_count("get", "secrets"), 0);

    // kube-rs retries 503 (and 429, 504) by itself: two injected 503s are invisible to the
    // caller, but the server saw three requests.
    server.inject(
        Fault::default()
            .verb("get")
            .resource("secrets")
            .status(503)
            .times(2),
    );
    api.get("s").await.unwrap();
    assert_eq!(server.request_count("get", "secrets"), 3);
    server.inject(
        Fault::default()
            .verb("get")
            .resource("secrets")
            .status(500)
            .times(1),
    );
    let err = api_err(api.get("s").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    api.get("s").await.unwrap();
    // No verb: every verb on the resource, until cleared.
    server.inject(Fault::default().resource("secrets").status(403));
    let err = api_err(api.list(&Default::default()).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    let err = api_err(api.get("s").await.unwrap_err());
    assert_eq!(err.code, 403);
    server.clear_faults();
    api.list(&Default::default()).await.unwrap();

    server.inject(
        Fault::default()
            .verb("get")
            .latency(Duration::from_millis(300))
            .times(1),
    );
    let t = std::time::Instant::now();
    api.get("s").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    let t = std::time::Instant::now();
    api.get("s").await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(300));
    // Status subresource is counted separately.
    let deploys: Api<Deployment> = Api::default_namespaced(server.client());
    let _ = deploys.get_status("nope").await;
    assert_eq!(server.request_count("get", "deployments/status"), 1);
    assert_eq!(server.request_count("get", "deployments"), 0);
}

#[tokio::test]
async fn kube_runtime_finalizer_helper_works_end_to_end() {
    use kube::runtime::controller::Action;
    use kube::runtime::finalizer::{finalizer, Event};
    use std::sync::Arc;
    let server = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let c: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "fin"}})).unwrap();
    api.create(&PostParams::default(), &c).await.unwrap();
    let run = |obj: ConfigMap| {
        let api = api.clone();
        async move {
            finalizer(&api, "test.io/cleanup", Arc::new(obj), |ev| async move {
                Ok::<_, std::convert::Infallible>(match ev {
                    Event::Apply(_) => Action::requeue(Duration::from_secs(7)),
                    Event::Cleanup(_) => Action::await_change(),
                })
            })
            .await
        }
    };
    // First pass adds the finalizer (JSON patch with a `test` op), second pass applies.
    run(api.get("fin").await.unwrap()).await.unwrap();
    let obj = api.get("fin").await.unwrap();
    assert_eq!(obj.finalizers(), ["test.io/cleanup"]);
    assert_eq!(
        run(obj).await.unwrap(),
        Action::requeue(Duration::from_secs(7))
    );
    api.delete("fin", &DeleteParams::default()).await.unwrap();
    let obj = api.get("fin").await.unwrap();
    assert!(obj.metadata.deletion_timestamp.is_some());
    assert_eq!(run(obj).await.unwrap(), Action::await_change());
    assert!(api.get_opt("fin").await.unwrap().is_none());
}
