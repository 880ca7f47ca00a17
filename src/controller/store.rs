//! Store resolution: which store an ExternalSecret may use, and the identity it reads as.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};

use super::caches::{Lookup, Named};
use super::error::SyncError;
use super::Context;
use crate::api::{
    parse_duration, AwsSettings, ClusterSecretStore, ClusterStoreCondition, ExternalSecret,
    RetrySettings, SecretKeySelector, SecretStore, Service, ServiceAccountRef, StoreKind,
};
use crate::source::{AssumeRole, Identity, Retry, StaticKeys, WebIdentity};

/// The store an ExternalSecret resolved to.
#[derive(Debug, Clone)]
pub struct ResolvedStore {
    /// `SecretStore app/aws` or `ClusterSecretStore aws`.
    pub display: String,
    /// uid and generation: a change means the ExternalSecret must read again.
    pub version: (String, i64),
    pub identity: Identity,
    /// `provider.aws.service`: what the ExternalSecrets' keys name.
    pub service: Service,
    /// `provider.aws.prefix`, put in front of every key that is not an ARN.
    pub prefix: Option<String>,
    /// `spec.arnsync.eventQueue`: an SQS queue of change events (URL or ARN).
    pub event_queue: Option<String>,
    /// `spec.arnsync.rotationCheckInterval`, as written.
    pub rotation_check_interval: Option<String>,
}

/// Gets an object, absent as `None`; an API error is reported for `who`.
async fn find<K>(api: Api<K>, name: &str, who: &str) -> Result<Option<K>, SyncError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.map_err(|source| SyncError::Kube {
        who: who.to_string(),
        source,
    })
}

/// An object from its watched cache; read from the API server only when the cache does not
/// hold it (it may be newer than the cache, or not exist).
async fn cached<K>(
    cache: &Store<K>,
    api: Api<K>,
    name: &str,
    ns: Option<&str>,
    who: &str,
) -> Result<Option<Arc<K>>, SyncError>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let key = match ns {
        Some(ns) => ObjectRef::new(name).within(ns),
        None => ObjectRef::new(name),
    };
    if let Some(obj) = cache.get(&key) {
        return Ok(Some(obj));
    }
    Ok(find(api, name, who).await?.map(Arc::new))
}

/// Finds the store `es` names, checks that `es` may use it, and reads its credentials.
pub async fn resolve_for(ctx: &Context, es: &ExternalSecret) -> Result<ResolvedStore, SyncError> {
    let client = &ctx.client;
    let single_namespace = ctx.options.namespace.is_some();
    let ns = es.namespace().unwrap_or_default();
    let who = es.label();
    let r = &es.spec.secret_store_ref;
    match r.kind {
        StoreKind::SecretStore => {
            let api = Api::<SecretStore>::namespaced(client.clone(), &ns);
            let store = cached(&ctx.caches.secret_stores, api, &r.name, Some(&ns), &who)
                .await?
                .ok_or_else(|| {
                    SyncError::StoreNotFound(format!(
                        "{who}: SecretStore {ns}/{} does not exist; create it or fix spec.secretStoreRef (an ExternalSecret may only use a SecretStore of its own namespace, or a ClusterSecretStore with kind: ClusterSecretStore)",
                        r.name
                    ))
                })?;
            resolve_secret_store(ctx, &store).await
        }
        StoreKind::ClusterSecretStore if single_namespace => Err(SyncError::StoreNotAllowed(format!(
            "{who}: arnsync runs for namespace {ns} only (--namespace), without access to ClusterSecretStores; use a SecretStore"
        ))),
        StoreKind::ClusterSecretStore => {
            let api = Api::<ClusterSecretStore>::all(client.clone());
            let store = cached(&ctx.caches.cluster_stores, api, &r.name, None, &who)
                .await?
                .ok_or_else(|| {
                    SyncError::StoreNotFound(format!(
                        "{who}: ClusterSecretStore {} does not exist; create it or fix spec.secretStoreRef",
                        r.name
                    ))
                })?;
            let labels = match ctx.caches.namespaces.get(&ObjectRef::new(&ns)) {
                Some(n) => n.labels().clone(),
                None => find(Api::<Namespace>::all(client.clone()), &ns, &who)
                    .await?
                    .map(|n| n.labels().clone())
                    .unwrap_or_default(),
            };
            if !admits(&store.spec.conditions, &ns, &labels) {
                return Err(SyncError::StoreNotAllowed(format!(
                    "{who}: ClusterSecretStore {} does not admit namespace {ns}; add the namespace (or a matching namespaceSelector) to its spec.conditions",
                    r.name
                )));
            }
            resolve_cluster_store(ctx, &store).await
        }
    }
}

pub async fn resolve_secret_store(
    ctx: &Context,
    store: &SecretStore,
) -> Result<ResolvedStore, SyncError> {
    let ns = store.namespace().unwrap_or_default();
    let display = format!("SecretStore {ns}/{}", store.name_any());
    resolve(ctx, display, store, store.spec.aws(), Some(&ns)).await
}

pub async fn resolve_cluster_store(
    ctx: &Context,
    store: &ClusterSecretStore,
) -> Result<ResolvedStore, SyncError> {
    let display = format!("ClusterSecretStore {}", store.name_any());
    for (i, c) in store.spec.conditions.iter().enumerate() {
        for re in &c.namespace_regexes {
            regex::Regex::new(re).map_err(|_| {
                SyncError::InvalidSpec(format!(
                    "{display}: spec.conditions[{i}].namespaceRegexes: {re:?} is not a valid regular expression"
                ))
            })?;
        }
    }
    resolve(ctx, display, store, store.spec.aws(), None).await
}

/// Reads a store's credentials and names its identity. `own_namespace`: see [`read_keys`].
async fn resolve<K: ResourceExt>(
    ctx: &Context,
    display: String,
    store: &K,
    settings: AwsSettings,
    own_namespace: Option<&str>,
) -> Result<ResolvedStore, SyncError> {
    check_provider(&display, &settings)?;
    let keys = read_keys(ctx, &display, &settings, own_namespace).await?;
    let mut roles: Vec<AssumeRole> = settings.roles.iter().map(Into::into).collect();
    let web_identity = match &settings.jwt {
        Some(sa) => Some(web_identity(ctx, &display, sa, &mut roles, own_namespace).await?),
        None => None,
    };
    Ok(ResolvedStore {
        version: (
            store.uid().unwrap_or_default(),
            store.meta().generation.unwrap_or_default(),
        ),
        identity: Identity {
            region: settings.region.clone(),
            failover_regions: settings.failover_regions.clone(),
            endpoints: settings.endpoints.clone(),
            static_keys: keys,
            web_identity,
            roles,
            retry: retry_of(&display, settings.retry.as_ref())?,
        },
        service: settings.service,
        prefix: settings.prefix.clone(),
        rotation_check_interval: settings.rotation_check_interval.clone(),
        event_queue: settings.event_queue.clone(),
        display,
    })
}

/// The checks a store's spec gets before its first AWS call, without reading anything from the
/// cluster (for `arnsync convert`). Messages start with `display`.
pub fn check_spec(display: &str, settings: &AwsSettings) -> Result<(), SyncError> {
    check_provider(display, settings)?;
    retry_of(display, settings.retry.as_ref()).map(drop)
}

/// What the CRD's rules refuse, again for clusters that do not enforce them, and roles that are
/// not ARNs (STS takes only ARNs; ESO's documentation shows short names, which AWS refuses).
fn check_provider(display: &str, settings: &AwsSettings) -> Result<(), SyncError> {
    if settings.refused_session_tags {
        return Err(SyncError::InvalidSpec(format!(
            "{display}: provider.aws.sessionTagsPolicy and customSessionTags are not supported: list the tags in provider.aws.sessionTags"
        )));
    }
    for (i, region) in settings.failover_regions.iter().enumerate() {
        if region.is_empty()
            || *region == settings.region
            || settings.failover_regions[..i].contains(region)
        {
            return Err(SyncError::InvalidSpec(format!(
                "{display}: provider.aws.failoverRegions[{i}] {region:?} must be a region name other than provider.aws.region and the regions listed before it"
            )));
        }
    }
    for role in &settings.roles {
        if !role.arn.starts_with("arn:") {
            return Err(SyncError::InvalidSpec(format!(
                "{display}: provider.aws role {:?} is not an ARN; write arn:aws:iam::ACCOUNT:role/{}",
                role.arn, role.arn
            )));
        }
    }
    Ok(())
}

/// `retrySettings`: `maxRetries` retries after the first attempt, the first after `retryInterval`.
fn retry_of(display: &str, settings: Option<&RetrySettings>) -> Result<Option<Retry>, SyncError> {
    let Some(r) = settings else {
        return Ok(None);
    };
    let initial_backoff = match r.retry_interval.as_deref() {
        Some(text) => Some(parse_duration(text).map_err(|e| {
            SyncError::InvalidSpec(format!("{display}: spec.retrySettings.retryInterval: {e}"))
        })?),
        None => None,
    };
    Ok(Some(Retry {
        max_attempts: r.max_retries.unwrap_or(2).max(0) as u32 + 1,
        initial_backoff,
    }))
}

/// The annotation naming the role a ServiceAccount's tokens are exchanged for (as for IRSA).
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The annotation naming the token audience (as for IRSA); default `sts.amazonaws.com`.
pub const AUDIENCE_ANNOTATION: &str = "eks.amazonaws.com/audience";

/// `auth.jwt.serviceAccountRef`: the ServiceAccount whose tokens are exchanged, with the role of
/// its `eks.amazonaws.com/role-arn` annotation (the store's `role`, when set, is then assumed on
/// top). Without the annotation, the tokens are exchanged for the store's `role` directly.
async fn web_identity(
    ctx: &Context,
    display: &str,
    sa: &ServiceAccountRef,
    roles: &mut Vec<AssumeRole>,
    own_namespace: Option<&str>,
) -> Result<WebIdentity, SyncError> {
    let field = "provider.aws.auth.jwt.serviceAccountRef";
    let ns = credentials_namespace(display, field, own_namespace, sa.namespace.as_deref())?;
    let api = Api::<ServiceAccount>::namespaced(ctx.client.clone(), &ns);
    let annotations = named(&ctx.caches.service_accounts, api, &ns, &sa.name, display, |a| {
        a.metadata.annotations.unwrap_or_default()
    })
    .await?
    .ok_or_else(|| {
        SyncError::StoreNotReady(format!(
            "{display}: {field}: ServiceAccount {ns}/{} does not exist; create it (annotated with {ROLE_ARN_ANNOTATION}) or fix the name",
            sa.name
        ))
    })?;
    let role_arn = match annotations.get(ROLE_ARN_ANNOTATION) {
        Some(arn) => arn.clone(),
        None if roles.len() == 1 => roles.remove(0).arn,
        None => {
            return Err(SyncError::StoreNotReady(format!(
                "{display}: {field}: ServiceAccount {ns}/{} has no {ROLE_ARN_ANNOTATION} annotation{}; annotate it with the role its tokens are exchanged for{}",
                sa.name,
                if roles.is_empty() { " and the store sets no provider.aws.role" } else { "" },
                if roles.is_empty() { ", or set provider.aws.role" } else { " (with additionalRoles the chain starts from that role)" },
            )))
        }
    };
    let mut audiences: Vec<String> = vec![annotations
        .get(AUDIENCE_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| crate::source::token::DEFAULT_AUDIENCE.to_string())];
    audiences.extend(
        sa.audiences
            .iter()
            .filter(|a| !audiences.contains(a))
            .cloned()
            .collect::<Vec<_>>(),
    );
    Ok(WebIdentity {
        namespace: ns,
        service_account: sa.name.clone(),
        audiences,
        role_arn,
    })
}

/// What a store needs of object `ns/name`: from the cache of named objects, else read (and
/// kept until the object changes). `None` when it does not exist.
async fn named<K, V>(
    cache: &Named<V>,
    api: Api<K>,
    ns: &str,
    name: &str,
    who: &str,
    keep: impl FnOnce(K) -> V,
) -> Result<Option<Arc<V>>, SyncError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let ticket = match cache.lookup(ns, name) {
        Lookup::Hit(v) => return Ok(Some(v)),
        Lookup::Miss(t) => t,
    };
    let Some(obj) = find(api, name, who).await? else {
        return Ok(None);
    };
    let rv = obj.meta().resource_version.clone().unwrap_or_default();
    let value = Arc::new(keep(obj));
    cache.put(ns, name, ticket, rv, value.clone());
    Ok(Some(value))
}

/// Reads static keys. `own_namespace` is the SecretStore's namespace: it may read only there.
/// For a ClusterSecretStore (`None`) every reference must name its namespace.
async fn read_keys(
    ctx: &Context,
    display: &str,
    settings: &AwsSettings,
    own_namespace: Option<&str>,
) -> Result<Option<StaticKeys>, SyncError> {
    let Some(auth) = &settings.auth else {
        return Ok(None);
    };
    let read = |field: &'static str, sel: SecretKeySelector| async move {
        let ns = credentials_namespace(display, field, own_namespace, sel.namespace.as_deref())?;
        let api = Api::<Secret>::namespaced(ctx.client.clone(), &ns);
        let data = named(&ctx.caches.credentials, api, &ns, &sel.name, display, |s| {
            s.data.unwrap_or_default()
        })
        .await?
        .ok_or_else(|| {
            SyncError::StoreNotReady(format!(
                "{display}: {field}: Secret {ns}/{} does not exist; create it with key {:?}",
                sel.name, sel.key
            ))
        })?;
        let bytes = data.get(&sel.key).map(|b| b.0.clone()).ok_or_else(|| {
            SyncError::StoreNotReady(format!(
                "{display}: {field}: Secret {ns}/{} has no key {:?}",
                sel.name, sel.key
            ))
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            SyncError::StoreNotReady(format!(
                "{display}: {field}: key {:?} of Secret {ns}/{} is not UTF-8 text",
                sel.key, sel.name
            ))
        })?;
        Ok::<String, SyncError>(text.trim().to_string())
    };
    let access_key_id = read(
        "provider.aws.auth.secretRef.accessKeyIDSecretRef",
        auth.access_key_id_secret_ref.clone(),
    )
    .await?;
    let secret_access_key = read(
        "provider.aws.auth.secretRef.secretAccessKeySecretRef",
        auth.secret_access_key_secret_ref.clone(),
    )
    .await?;
    let session_token = match auth.session_token_secret_ref.clone() {
        Some(sel) => Some(read("provider.aws.auth.secretRef.sessionTokenSecretRef", sel).await?),
        None => None,
    };
    Ok(Some(StaticKeys {
        access_key_id,
        secret_access_key,
        session_token,
    }))
}

/// Where a store may read a credentials Secret from. `own_namespace` is a SecretStore's
/// namespace (it may read only there); `None` is a ClusterSecretStore, which must name one.
fn credentials_namespace(
    display: &str,
    field: &str,
    own_namespace: Option<&str>,
    named: Option<&str>,
) -> Result<String, SyncError> {
    match (own_namespace, named) {
        (Some(own), None) => Ok(own.to_string()),
        (Some(own), Some(other)) if other == own => Ok(own.to_string()),
        (Some(_), Some(other)) => Err(SyncError::StoreNotAllowed(format!(
            "{display}: {field} names namespace {other}; a SecretStore may only read credentials from its own namespace: use a ClusterSecretStore"
        ))),
        (None, Some(ns)) => Ok(ns.to_string()),
        (None, None) => Err(SyncError::InvalidSpec(format!(
            "{display}: {field}.namespace is required on a ClusterSecretStore"
        ))),
    }
}

/// True when `conditions` admit namespace `ns` with `labels`. No conditions admit everyone.
pub fn admits(
    conditions: &[ClusterStoreCondition],
    ns: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    conditions.is_empty()
        || conditions.iter().any(|c| {
            c.namespaces.iter().any(|n| n == ns)
                || c.namespace_regexes.iter().any(|re| whole_match(re, ns))
                || c.namespace_selector
                    .as_ref()
                    .is_some_and(|s| selector_matches(s, labels))
        })
}

/// True when regular expression `re` matches all of `name`. An invalid expression matches
/// nothing (the store's status reports it: [`resolve_cluster_store`]).
fn whole_match(re: &str, name: &str) -> bool {
    regex::Regex::new(&format!("^(?:{re})$")).is_ok_and(|r| r.is_match(name))
}

/// Label selector semantics (matchLabels and matchExpressions: In, NotIn, Exists, DoesNotExist).
/// An empty selector matches everything, as in Kubernetes.
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        let have = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn credentials_are_read_only_where_the_store_may_read() {
        let f = "provider.aws.auth.secretRef.accessKeyIDSecretRef";
        assert_eq!(
            credentials_namespace("s", f, Some("app"), None).unwrap(),
            "app"
        );
        assert_eq!(
            credentials_namespace("s", f, Some("app"), Some("app")).unwrap(),
            "app"
        );
        let e =
            credentials_namespace("SecretStore app/aws", f, Some("app"), Some("ops")).unwrap_err();
        assert_eq!(e.reason(), "StoreNotAllowed");
        assert!(
            e.to_string().contains("own namespace") && e.to_string().contains(f),
            "{e}"
        );
        assert_eq!(
            credentials_namespace("c", f, None, Some("ops")).unwrap(),
            "ops"
        );
        let e = credentials_namespace("ClusterSecretStore aws", f, None, None).unwrap_err();
        assert_eq!(e.reason(), "InvalidSpec");
        assert!(e.to_string().contains("namespace is required"), "{e}");
    }

    #[test]
    fn conditions_admit_by_name_or_selector_and_empty_admits_all() {
        assert!(admits(&[], "any", &labels(&[])));
        let by_name = ClusterStoreCondition {
            namespaces: vec!["team-a".into()],
            ..ClusterStoreCondition::default()
        };
        assert!(admits(
            std::slice::from_ref(&by_name),
            "team-a",
            &labels(&[])
        ));
        assert!(!admits(
            std::slice::from_ref(&by_name),
            "team-b",
            &labels(&[])
        ));
        let by_label = ClusterStoreCondition {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(labels(&[("secrets", "aws")])),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["dev".into()]),
                }]),
            }),
            ..ClusterStoreCondition::default()
        };
        let conds = [by_name, by_label];
        assert!(admits(
            &conds,
            "team-b",
            &labels(&[("secrets", "aws"), ("env", "prod")])
        ));
        assert!(!admits(
            &conds,
            "team-b",
            &labels(&[("secrets", "aws"), ("env", "dev")])
        ));
        assert!(!admits(&conds, "team-b", &labels(&[("env", "prod")])));
        let by_regex = [ClusterStoreCondition {
            namespace_regexes: vec!["team-.*".into()],
            ..ClusterStoreCondition::default()
        }];
        assert!(admits(&by_regex, "team-c", &labels(&[])));
        assert!(!admits(&by_regex, "my-team-c", &labels(&[])));
    }

    #[test]
    fn failover_regions_are_other_regions_listed_once() {
        let spec = |regions: &[&str]| {
            let spec: crate::api::SecretStoreSpec = serde_json::from_value(serde_json::json!({
                "provider": {"aws": {"service": "SecretsManager", "region": "us-east-1",
                                     "failoverRegions": regions}}
            }))
            .unwrap();
            spec.aws()
        };
        check_spec("SecretStore app/aws", &spec(&["us-west-2", "eu-west-1"])).unwrap();
        for bad in [&["us-east-1"][..], &["us-west-2", "us-west-2"], &[""]] {
            let e = check_spec("SecretStore app/aws", &spec(bad)).unwrap_err();
            assert!(
                e.to_string().contains("provider.aws.failoverRegions["),
                "{bad:?}: {e}"
            );
        }
    }
}
