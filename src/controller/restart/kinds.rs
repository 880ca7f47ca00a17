//! The workload kinds arnsync can roll, as one table, their caches, and their controllers.

use std::sync::{Arc, Mutex};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, ResourceExt};
use serde_json::Value as Json;

use super::{referenced_secrets, selected, RESTART_ANNOTATION};
use crate::api::WorkloadRef;
use crate::controller::{Context, Shutdown};
use crate::sync::MANAGED_LABEL;

/// One kind of workload arnsync can roll.
#[derive(Clone, Copy, Debug)]
pub struct WorkloadKind {
    pub kind: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    /// JSON pointer to the pod template: where Secrets are referenced and the rollout trigger
    /// goes.
    pub template: &'static str,
    /// Served only where its CRD is installed: asked of API discovery first.
    pub optional: bool,
}

/// Every kind arnsync rolls; a new kind is one more entry.
pub const KINDS: &[WorkloadKind] = &[
    apps("Deployment", "deployments"),
    apps("StatefulSet", "statefulsets"),
    apps("DaemonSet", "daemonsets"),
    WorkloadKind {
        kind: "Rollout",
        group: "argoproj.io",
        version: "v1alpha1",
        plural: "rollouts",
        template: "/spec/template",
        optional: true,
    },
];

const fn apps(kind: &'static str, plural: &'static str) -> WorkloadKind {
    WorkloadKind {
        kind,
        group: "apps",
        version: "v1",
        plural,
        template: "/spec/template",
        optional: false,
    }
}

impl WorkloadKind {
    pub fn resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.into(),
            version: self.version.into(),
            api_version: format!("{}/{}", self.group, self.version),
            kind: self.kind.into(),
            plural: self.plural.into(),
        }
    }

    /// The pod template of a workload of this kind (null when it has none).
    pub fn pod_template<'a>(&self, w: &'a DynamicObject) -> &'a Json {
        w.data.pointer(self.template).unwrap_or(&Json::Null)
    }

    /// The Secrets an opted-in workload's restarts use; empty when it did not opt in.
    fn selected_secrets(&self, w: &DynamicObject) -> std::collections::BTreeSet<String> {
        match w.annotations().get(RESTART_ANNOTATION) {
            Some(opt_in) => selected(opt_in, &referenced_secrets(self.pod_template(w))),
            None => Default::default(),
        }
    }
}

/// The workload caches, to name the workloads a rotation rolls.
#[derive(Default)]
pub struct Workloads(Mutex<Vec<(WorkloadKind, Store<DynamicObject>)>>);

impl Workloads {
    /// The opted-in workloads in `ns` whose restarts use Secret `secret`.
    pub fn using(&self, ns: &str, secret: &str) -> Vec<WorkloadRef> {
        let caches = self.0.lock().expect("workloads lock");
        let mut out: Vec<WorkloadRef> = caches
            .iter()
            .flat_map(|(kind, cache)| {
                cache
                    .state()
                    .into_iter()
                    .filter(|w| w.namespace().as_deref() == Some(ns))
                    .filter(|w| kind.selected_secrets(w).contains(secret))
                    .map(|w| WorkloadRef {
                        kind: kind.kind.to_string(),
                        name: w.name_any(),
                    })
            })
            .collect();
        out.sort();
        out
    }
}

/// One controller per workload kind the cluster serves, woken by changes of managed Secrets.
pub(crate) async fn controllers(ctx: &Arc<Context>, shutdown: Shutdown) {
    let mut runs = vec![];
    for kind in KINDS {
        if kind.optional && !served(&ctx.client, kind).await {
            continue;
        }
        let resource = kind.resource();
        let api: Api<DynamicObject> = match &ctx.options.namespace {
            Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &resource),
            None => Api::all_with(ctx.client.clone(), &resource),
        };
        // The workload cache keeps no managedFields (often half of a Deployment's size).
        let writer = kube::runtime::reflector::store::Writer::new(resource.clone());
        let cache = writer.as_reader();
        let workloads = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(crate::controller::caches::strip)
            .reflect(writer)
            .applied_objects();
        let controller = Controller::for_stream_with(workloads, cache.clone(), resource.clone());
        ctx.restarts
            .workloads
            .0
            .lock()
            .expect("workloads lock")
            .push((*kind, cache.clone()));
        let run = controller
            .watches(
                ctx.api::<PartialObjectMeta<Secret>>(),
                watcher::Config::default().labels(&format!("{MANAGED_LABEL}=true")),
                move |meta: PartialObjectMeta<Secret>| workloads_of(kind, &cache, &resource, &meta),
            )
            .graceful_shutdown_on(shutdown.clone())
            .run(
                move |obj, ctx| async move { super::reconcile(obj, ctx, kind).await },
                super::error_policy,
                ctx.clone(),
            )
            .for_each(|_| futures::future::ready(()));
        runs.push(run.boxed());
    }
    futures::future::join_all(runs).await;
}

async fn served(client: &kube::Client, kind: &WorkloadKind) -> bool {
    kube::discovery::group(client, kind.group)
        .await
        .is_ok_and(|g| g.recommended_kind(kind.kind).is_some())
}

/// The opted-in workloads (from a workload cache) that a managed Secret's change concerns.
fn workloads_of(
    kind: &WorkloadKind,
    cache: &Store<DynamicObject>,
    resource: &ApiResource,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<DynamicObject>> {
    let (Some(ns), name) = (secret.namespace(), secret.name_any()) else {
        return vec![];
    };
    cache
        .state()
        .iter()
        .filter(|w| w.namespace().as_deref() == Some(ns.as_str()))
        .filter(|w| kind.selected_secrets(w).contains(&name))
        .map(|w| ObjectRef::from_obj_with(w.as_ref(), resource.clone()))
        .collect()
}
