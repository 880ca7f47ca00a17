//! Dereference: the inputs of a sync besides the spec — the target Secret as it is, and the
//! store with its credentials — and which changes of them wake an ExternalSecret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller};
use kube::ResourceExt;

use super::super::store::{self, ResolvedStore};
use super::super::Context;
use crate::api::{ClusterSecretStore, ExternalSecret, SecretStore, StoreKind};
use crate::controller::SyncError;
use crate::sync::{named_sources, PlanError, TemplateSources, MANAGED_LABEL, OWNER_ANNOTATION};

pub(super) struct Inputs {
    /// The Secrets of the ExternalSecret's namespace.
    pub secrets: Api<Secret>,
    /// The target Secret, if it exists.
    pub existing: Option<Secret>,
    pub store: ResolvedStore,
    /// The ConfigMaps and Secrets `target.template.templateFrom` names.
    pub templates: TemplateSources,
}

pub(super) async fn inputs(es: &ExternalSecret, ctx: &Context) -> Result<Inputs, SyncError> {
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &es.namespace().unwrap_or_default());
    let existing = secrets
        .get_opt(&es.target_name())
        .await
        .map_err(|source| SyncError::Kube {
            who: es.label(),
            source,
        })?;
    let store = store::resolve_for(&ctx.client, es, ctx.options.namespace.is_some()).await?;
    let templates = template_sources(es, ctx).await?;
    Ok(Inputs {
        secrets,
        existing,
        store,
        templates,
    })
}

/// Reads the ConfigMaps and Secrets of the ExternalSecret's namespace that
/// `target.template.templateFrom` names (their texts are templates, not values).
async fn template_sources(
    es: &ExternalSecret,
    ctx: &Context,
) -> Result<TemplateSources, SyncError> {
    let mut out = TemplateSources::default();
    let Some(t) = es.spec.target.template.as_ref() else {
        return Ok(out);
    };
    let (config_maps, secrets) = named_sources(t);
    let ns = es.namespace().unwrap_or_default();
    let who = es.label();
    let missing = |kind: &str, name: &str| {
        SyncError::Plan(PlanError::Template(format!(
            "{who}: target.template.templateFrom: {kind} {ns}/{name} does not exist; create it or fix the name"
        )))
    };
    let kube = |source| SyncError::Kube {
        who: who.clone(),
        source,
    };
    for name in config_maps {
        let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&name)
            .await
            .map_err(kube)?
            .ok_or_else(|| missing("ConfigMap", &name))?;
        out.config_maps.insert(name, cm.data.unwrap_or_default());
    }
    for name in secrets {
        let secret = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&name)
            .await
            .map_err(kube)?
            .ok_or_else(|| missing("Secret", &name))?;
        let texts = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect();
        out.secrets.insert(name, texts);
    }
    Ok(out)
}

/// Per ExternalSecret uid: the store (uid, generation) of its last read, so that a store change
/// is applied at once while an operator restart does not re-read everything.
#[derive(Default)]
pub struct InputsMemo(Mutex<HashMap<String, (String, i64)>>);

impl InputsMemo {
    pub(super) fn remember(&self, es: &ExternalSecret, store: &ResolvedStore) {
        self.0
            .lock()
            .expect("inputs lock")
            .insert(es.uid().unwrap_or_default(), store.version.clone());
    }

    /// False when this process read for `es` with another store version.
    pub(super) fn same(&self, es: &ExternalSecret, store: &ResolvedStore) -> bool {
        self.0
            .lock()
            .expect("inputs lock")
            .get(&es.uid().unwrap_or_default())
            .is_none_or(|v| *v == store.version)
    }
}

/// Wakes an ExternalSecret when its Secret (metadata only: arnsync never keeps Secret values in
/// memory between reconciles) or its store changes.
pub(super) fn wake_on_inputs(
    controller: Controller<ExternalSecret>,
    ctx: &Arc<Context>,
    cache: &Store<ExternalSecret>,
) -> Controller<ExternalSecret> {
    let owned_secrets = watcher::Config::default().labels(&format!("{MANAGED_LABEL}=true"));
    let for_stores = cache.clone();
    let controller = controller
        .watches(
            ctx.api::<PartialObjectMeta<Secret>>(),
            owned_secrets,
            |meta: PartialObjectMeta<Secret>| {
                let owner = meta.annotations().get(OWNER_ANNOTATION).cloned();
                let ns = meta.namespace();
                owner.and_then(|name: String| {
                    ns.map(|ns: String| ObjectRef::<ExternalSecret>::new(&name).within(&ns))
                })
            },
        )
        .watches(
            ctx.api::<SecretStore>(),
            watcher::Config::default(),
            move |store: SecretStore| {
                users_of(
                    &for_stores,
                    StoreKind::SecretStore,
                    &store.name_any(),
                    store.namespace(),
                )
            },
        );
    // ClusterSecretStores are cluster-scoped: in single-namespace mode (namespaced RBAC only)
    // they are not watched, and ExternalSecrets that name one are told so.
    if ctx.options.namespace.is_some() {
        return controller;
    }
    let for_cluster_stores = cache.clone();
    controller.watches(
        Api::<ClusterSecretStore>::all(ctx.client.clone()),
        watcher::Config::default(),
        move |store: ClusterSecretStore| {
            users_of(
                &for_cluster_stores,
                StoreKind::ClusterSecretStore,
                &store.name_any(),
                None,
            )
        },
    )
}

/// The ExternalSecrets (from the controller's cache) that use a store.
fn users_of(
    cache: &Store<ExternalSecret>,
    kind: StoreKind,
    name: &str,
    namespace: Option<String>,
) -> Vec<ObjectRef<ExternalSecret>> {
    cache
        .state()
        .iter()
        .filter(|es| {
            es.spec.secret_store_ref.kind == kind
                && es.spec.secret_store_ref.name == name
                && (namespace.is_none() || es.namespace() == namespace)
        })
        .map(|es| ObjectRef::from_obj(es.as_ref()))
        .collect()
}
