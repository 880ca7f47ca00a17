//! What differs between External Secrets Operator manifests and arnsync's: which kinds carry
//! over, the rewrites of ESO's older API versions, and plain-language explanations of the
//! common things that cannot carry over. What arnsync refuses is not listed here: the CRD
//! schema, its rules and the operator's checks decide that.

use serde_json::Value as Json;
use serde_yaml::{Mapping, Value};

use super::Problem;
use crate::api::GROUP;

/// The arnsync kinds an ESO manifest can become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    SecretStore,
    ClusterSecretStore,
    ExternalSecret,
    ClusterExternalSecret,
}

/// What to do with one document.
#[derive(Debug, PartialEq, Eq)]
pub enum Class {
    /// An ESO object arnsync has: rewritten, then checked. `version` is ESO's API version.
    Convert { kind: Kind, version: String },
    /// Not ESO's (or already arnsync's): written out as it is.
    Keep,
    /// An ESO object arnsync has no counterpart for: why, and what to do.
    Refuse(String),
}

const ESO_GROUP: &str = "external-secrets.io";
const ESO_VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha1"];
/// The apiVersion of every converted document.
pub const TARGET_API_VERSION: &str = "arnsync.io/v1alpha1";

pub fn classify(api_version: &str, kind: &str) -> Class {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let eso = group == ESO_GROUP || group.ends_with(".external-secrets.io");
    if !eso {
        return Class::Keep;
    }
    if group == "generators.external-secrets.io" {
        return Class::Refuse(format!(
            "{kind} is an External Secrets Operator generator; arnsync reads only values stored in \
             Secrets Manager and Parameter Store: keep it on External Secrets Operator"
        ));
    }
    let known = match kind {
        "SecretStore" if group == ESO_GROUP => Some(Kind::SecretStore),
        "ClusterSecretStore" if group == ESO_GROUP => Some(Kind::ClusterSecretStore),
        "ExternalSecret" if group == ESO_GROUP => Some(Kind::ExternalSecret),
        "ClusterExternalSecret" if group == ESO_GROUP => Some(Kind::ClusterExternalSecret),
        _ => None,
    };
    match (known, kind) {
        (Some(kind), _) if ESO_VERSIONS.contains(&version) => Class::Convert {
            kind,
            version: version.to_string(),
        },
        (Some(_), _) => Class::Refuse(format!(
            "apiVersion {api_version} is not one this converter knows ({}): convert it by hand",
            ESO_VERSIONS.map(|v| format!("{ESO_GROUP}/{v}")).join(", ")
        )),
        (None, "PushSecret" | "ClusterPushSecret") => Class::Refuse(
            "arnsync only reads from AWS and never writes to it: keep this object on External \
             Secrets Operator, or write the value to AWS another way (Terraform, the AWS CLI)"
                .into(),
        ),
        (None, _) => Class::Refuse(format!(
            "arnsync has no counterpart of {api_version} {kind} (it has SecretStore, \
             ClusterSecretStore, ExternalSecret and ClusterExternalSecret): keep it on External \
             Secrets Operator"
        )),
    }
}

/// Metadata the API server sets; it describes the ESO object, not the one to create.
const SERVER_METADATA: [&str; 8] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Rewrites an ESO document into arnsync's shape. Returns what cannot be rewritten.
pub fn rewrite(kind: Kind, version: &str, doc: &mut Mapping) -> Vec<Problem> {
    doc.insert("apiVersion".into(), TARGET_API_VERSION.into());
    // ESO's status describes ESO's reconcile; arnsync writes its own.
    doc.remove("status");
    if let Some(Value::Mapping(meta)) = doc.get_mut("metadata") {
        forget_eso(meta);
    }
    let mut problems = Vec::new();
    let (spec, at) = match kind {
        Kind::ExternalSecret => (doc.get_mut("spec"), "spec"),
        Kind::ClusterExternalSecret => (
            doc.get_mut("spec")
                .and_then(|s| s.get_mut("externalSecretSpec")),
            "spec.externalSecretSpec",
        ),
        Kind::SecretStore | Kind::ClusterSecretStore => (None, ""),
    };
    if let (Some(Value::Mapping(spec)), "v1alpha1") = (spec, version) {
        data_from_v1alpha1(spec);
        problems.extend(template_v1alpha1(spec, at));
    }
    problems
}

/// Drops what only made sense for the ESO object: server-set fields, ESO's finalizers and
/// owners, and kubectl's copy of the ESO manifest.
fn forget_eso(meta: &mut Mapping) {
    for key in SERVER_METADATA {
        meta.remove(key);
    }
    let eso = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.contains(ESO_GROUP) && !s.contains(GROUP))
    };
    prune(meta, "finalizers", |f| eso(f));
    prune(meta, "ownerReferences", |o| {
        o.get("apiVersion").is_some_and(eso)
    });
    if let Some(Value::Mapping(annotations)) = meta.get_mut("annotations") {
        if annotations.remove(LAST_APPLIED).is_some() && annotations.is_empty() {
            meta.remove("annotations");
        }
    }
}

/// Removes the entries of list `key` that `drop` selects, and the list when that empties it.
fn prune(meta: &mut Mapping, key: &str, drop: impl Fn(&Value) -> bool) {
    if let Some(Value::Sequence(items)) = meta.get_mut(key) {
        let before = items.len();
        items.retain(|v| !drop(v));
        if items.is_empty() && before > 0 {
            meta.remove(key);
        }
    }
}

/// v1alpha1 `dataFrom` entries are bare remote references (`- key: x`); since v1beta1 they
/// are `- extract: {key: x}`, which is what ESO's own conversion does with them.
fn data_from_v1alpha1(spec: &mut Mapping) {
    let Some(Value::Sequence(entries)) = spec.get_mut("dataFrom") else {
        return;
    };
    for entry in entries {
        if entry.get("key").is_some() {
            let mut wrapped = Mapping::new();
            wrapped.insert("extract".into(), std::mem::take(entry));
            *entry = Value::Mapping(wrapped);
        }
    }
}

/// A v1alpha1 template without `engineVersion` runs on ESO's template engine v1 (values are
/// bytes, several functions have other names); arnsync has only v2. A template with nothing
/// to render (only `type`, or labels without `{{`) means the same on both.
fn template_v1alpha1(spec: &Mapping, at: &str) -> Option<Problem> {
    let template = spec.get("target")?.get("template")?;
    if template.get("engineVersion").is_some() {
        return None;
    }
    let renders = |key: &str| match template.get(key) {
        Some(Value::Mapping(m)) => !m.is_empty(),
        Some(Value::Sequence(s)) => !s.is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    };
    let templated_metadata = template
        .get("metadata")
        .is_some_and(|m| serde_yaml::to_string(m).is_ok_and(|s| s.contains("{{")));
    (renders("data") || renders("templateFrom") || templated_metadata).then(|| {
        Problem::at(
            format!("{at}.target.template.engineVersion"),
            "absent, so this v1alpha1 template runs on ESO's template engine v1, which arnsync \
             does not have (v2 differs: values are strings, not bytes; base64encode is b64enc, \
             fromJSON is fromJson, toString is mostly not needed): rewrite the template for v2 \
             and set engineVersion: v2",
        )
    })
}

/// Replaces the messages of common cases with plain-language ones, and drops problems that
/// only follow from another one. `doc` is the converted document.
pub fn explain(doc: &Json, problems: Vec<Problem>) -> Vec<Problem> {
    let generators = generators(doc);
    let other_provider = problems
        .iter()
        .any(|p| provider_name(&p.field).is_some_and(|n| n != "aws"));
    let follows = |p: &Problem| {
        (other_provider && p.field == "spec.provider.aws")
            // ESO needs no secretStoreRef when generators produce everything.
            || (!generators.is_empty() && store_ref(&p.field))
            // The cluster's and the operator's refusal of the same sourceRef, said better below.
            || generators.iter().any(|g| {
                g.field == p.subject() || g.field.strip_suffix(".sourceRef") == Some(&p.field)
            })
    };
    let rest: Vec<Problem> = problems
        .into_iter()
        .filter(|p| !follows(p))
        .map(friendly)
        .collect();
    generators.into_iter().chain(rest).collect()
}

fn friendly(mut p: Problem) -> Problem {
    if let Some(name) = provider_name(&p.field).filter(|n| *n != "aws") {
        p.message = format!(
            "the {name} provider is not supported: arnsync reads only AWS Secrets Manager and \
             Parameter Store; keep this store on External Secrets Operator"
        );
    } else if p.field == "spec.controller" {
        p.message =
            "arnsync has no controller classes (one arnsync serves every store): remove it".into();
    } else if store_ref(&p.field) {
        p.message = "missing: arnsync reads every value through spec.secretStoreRef \
                     (ESO's per-entry sourceRef is not supported): add secretStoreRef {name, kind}"
            .into();
    }
    p
}

/// `spec.secretStoreRef` of an ExternalSecret or of a ClusterExternalSecret's template.
fn store_ref(field: &str) -> bool {
    matches!(
        field,
        "spec.secretStoreRef" | "spec.externalSecretSpec.secretStoreRef"
    )
}

/// `vault` for `spec.provider.vault`.
fn provider_name(field: &str) -> Option<&str> {
    field
        .strip_prefix("spec.provider.")
        .filter(|rest| !rest.contains(['.', '[']))
}

/// A problem for every `data` and `dataFrom` entry that reads from an ESO generator.
fn generators(doc: &Json) -> Vec<Problem> {
    let mut found = Vec::new();
    for spec in ["spec", "spec.externalSecretSpec"] {
        for list in ["data", "dataFrom"] {
            let at = format!("{spec}.{list}");
            let entries = doc
                .pointer(&format!("/{}", at.replace('.', "/")))
                .and_then(Json::as_array);
            for (i, entry) in entries.into_iter().flatten().enumerate() {
                let Some(generator) = entry.pointer("/sourceRef/generatorRef") else {
                    continue;
                };
                let kind = generator.get("kind").and_then(Json::as_str).unwrap_or("?");
                found.push(Problem::at(
                    format!("{at}[{i}].sourceRef"),
                    format!(
                        "reads from the External Secrets Operator generator {kind}; arnsync \
                         reads only values stored in Secrets Manager and Parameter Store: keep \
                         this ExternalSecret on External Secrets Operator"
                    ),
                ));
            }
        }
    }
    found
}
