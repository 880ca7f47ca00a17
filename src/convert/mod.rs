//! `arnsync convert`: External Secrets Operator manifests in, arnsync manifests out, and a
//! report of every document that cannot be carried over (it is left out, never half-converted).
//!
//! A document is rewritten by [`rules`], then checked as the cluster and the operator would
//! check it: against the CRD's OpenAPI schema and its CEL rules ([`schema`], which also names
//! fields arnsync does not have), as the typed object, and with the operator's own checks
//! ([`crate::sync::validate`] for ExternalSecrets, [`crate::controller::store::check_spec`] for
//! stores).

mod cli;
#[cfg(test)]
mod cli_tests;
mod rules;
mod schema;
#[cfg(test)]
mod shared_tests;
#[cfg(test)]
mod tests;
mod text;

use std::fmt;
use std::sync::OnceLock;

use kube::CustomResourceExt;
use serde_json::Value as Json;
use serde_yaml::Value;

pub use cli::{converted_documents, run, Options, EXIT_ERROR, EXIT_LEFT_OUT, EXIT_OK};

use crate::api::{
    parse_duration, AwsSettings, ClusterExternalSecret, ClusterSecretStore, ExternalSecret,
    SecretStore,
};
use rules::{Class, Kind};

/// One thing that cannot be carried over: the field (a path like `spec.provider.vault`; empty
/// when the message names it or the whole document is meant) and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl Problem {
    fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            field: field.into(),
            message: message.into(),
        }
    }

    fn whole(message: impl Into<String>) -> Self {
        Problem::at("", message)
    }

    /// The field the problem is about: `field`, or the path its message starts with.
    fn subject(&self) -> String {
        if !self.field.is_empty() {
            return self.field.clone();
        }
        self.message
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// What became of one document.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// An ESO object, now arnsync's.
    Converted(Value),
    /// Not an ESO object (or already arnsync's): unchanged.
    Kept(Value),
    /// An empty document: nothing to write.
    Empty,
    /// Left out: everything that stops it from carrying over.
    Refused(Vec<Problem>),
}

/// Converts one document.
pub fn convert(doc: Value) -> Outcome {
    let Value::Mapping(mut map) = doc else {
        return match doc {
            Value::Null => Outcome::Empty,
            other => Outcome::Kept(other),
        };
    };
    let field = |m: &serde_yaml::Mapping, k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (kind, version) = match rules::classify(&field(&map, "apiVersion"), &field(&map, "kind")) {
        Class::Keep => return Outcome::Kept(Value::Mapping(map)),
        Class::Refuse(why) => return Outcome::Refused(vec![Problem::whole(why)]),
        Class::Convert { kind, version } => (kind, version),
    };
    let mut problems = rules::rewrite(kind, &version, &mut map);
    let schema = schema_of(kind);
    problems.extend(schema::check(schema, &map));
    let doc = Value::Mapping(map);
    let json = match serde_json::to_value(&doc) {
        Ok(json) => json,
        Err(e) => {
            return Outcome::Refused(vec![Problem::whole(format!(
                "cannot be read as a Kubernetes object (mapping keys must be strings): {e}"
            ))])
        }
    };
    let structural = problems.is_empty();
    problems.extend(schema::rules(schema, &json, structural));
    problems.extend(typed(kind, &json, &problems));
    let problems = rules::explain(&json, problems);
    if problems.is_empty() {
        Outcome::Converted(doc)
    } else {
        Outcome::Refused(problems)
    }
}

/// Reads `json` as the arnsync object; on what the cluster would accept (`found` is empty),
/// the operator's own checks follow. Type errors the schema already named are not repeated.
fn typed(kind: Kind, json: &Json, found: &[Problem]) -> Vec<Problem> {
    fn read<T: serde::de::DeserializeOwned>(json: &Json) -> Result<T, Problem> {
        serde_path_to_error::deserialize(json).map_err(|e| {
            let field = e.path().to_string();
            // serde quotes the offending value (`1234`); a manifest field may be sensitive.
            let quoted = regex::Regex::new(r" `[^`]*`").expect("a valid regular expression");
            let message = quoted.replace_all(&e.inner().to_string(), "").into_owned();
            Problem::at(if field == "." { String::new() } else { field }, message)
        })
    }
    let mut problems = names(json.get("metadata"));
    let checked = match kind {
        Kind::SecretStore => read::<SecretStore>(json).map(|s| store(&s.spec.aws())),
        Kind::ClusterSecretStore => read::<ClusterSecretStore>(json).map(|s| store(&s.spec.aws())),
        Kind::ExternalSecret => read::<ExternalSecret>(json).map(|es| operator(&es, "spec")),
        Kind::ClusterExternalSecret => read::<ClusterExternalSecret>(json).map(|ces| {
            // What the ClusterExternalSecret writes into each namespace.
            let es = ExternalSecret {
                metadata: kube::api::ObjectMeta {
                    name: Some(ces.external_secret_name()),
                    ..Default::default()
                },
                spec: ces.spec.external_secret_spec.clone(),
                status: None,
            };
            let mut problems = operator(&es, "spec.externalSecretSpec");
            if let Err(e) = parse_duration(&ces.spec.refresh_time) {
                problems.push(Problem::at("spec.refreshTime", e.to_string()));
            }
            problems
        }),
    };
    match checked {
        Ok(refusals) if found.is_empty() => problems.extend(refusals),
        Err(p) if found.is_empty() || p.field.starts_with("metadata") => problems.push(p),
        _ => {}
    }
    problems
}

/// What the API server checks of every object's name and namespace.
fn names(meta: Option<&Json>) -> Vec<Problem> {
    let text = |k: &str| meta.and_then(|m| m.get(k)).and_then(Json::as_str);
    let label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    let mut problems = Vec::new();
    match text("name") {
        None if text("generateName").is_none() => problems.push(Problem::at(
            "metadata.name",
            "required, but missing: add it",
        )),
        Some(name) if name.len() > 253 || !name.split('.').all(label) => {
            problems.push(Problem::at(
                "metadata.name",
                format!(
                "{name:?} is not a valid name (lowercase letters, digits, '-' and '.'): rename it"
            ),
            ))
        }
        _ => {}
    }
    if let Some(ns) = text("namespace").filter(|ns| !label(ns)) {
        problems.push(Problem::at(
            "metadata.namespace",
            format!(
                "{ns:?} is not a valid namespace (lowercase letters, digits and '-'): rename it"
            ),
        ));
    }
    problems
}

/// The first refusal of the operator's checks of a store.
fn store(settings: &AwsSettings) -> Vec<Problem> {
    const WHO: &str = "store";
    let Err(refusal) = crate::controller::store::check_spec(WHO, settings) else {
        return Vec::new();
    };
    let refusal = refusal.to_string();
    let message = refusal
        .strip_prefix(&format!("{WHO}: "))
        .unwrap_or(&refusal);
    let message = match message.strip_prefix("provider.") {
        Some(rest) => format!("spec.provider.{rest}"),
        None => message.to_string(),
    };
    vec![Problem::whole(message)]
}

/// The first refusal of [`crate::sync::validate`], its paths under `within`.
fn operator(es: &ExternalSecret, within: &str) -> Vec<Problem> {
    let Err(refusal) = crate::sync::validate(es) else {
        return Vec::new();
    };
    let message = refusal
        .strip_prefix(&format!("{}: ", es.label()))
        .unwrap_or(&refusal);
    let message = match message.strip_prefix("spec.") {
        Some(rest) => format!("{within}.{rest}"),
        None => message.to_string(),
    };
    vec![Problem::whole(message)]
}

/// The `openAPIV3Schema` of the kind's CRD.
fn schema_of(kind: Kind) -> &'static Json {
    static SCHEMAS: OnceLock<[Json; 4]> = OnceLock::new();
    fn openapi<K: CustomResourceExt>() -> Json {
        let crd = K::crd();
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        serde_json::to_value(schema).expect("a CRD schema is JSON")
    }
    let schemas = SCHEMAS.get_or_init(|| {
        [
            openapi::<SecretStore>(),
            openapi::<ClusterSecretStore>(),
            openapi::<ExternalSecret>(),
            openapi::<ClusterExternalSecret>(),
        ]
    });
    match kind {
        Kind::SecretStore => &schemas[0],
        Kind::ClusterSecretStore => &schemas[1],
        Kind::ExternalSecret => &schemas[2],
        Kind::ClusterExternalSecret => &schemas[3],
    }
}
