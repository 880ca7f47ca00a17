//! `plan`: spec + fetched values + the current Secret → the desired Secret and the status.
//! Pure: no I/O, no clock. Most behaviour is tested here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::secret::{check_target, desired_secret, differs, written_by};
use super::spec::{Read, ReadFrom, Reads, ValidSpec};
use super::templating::{self, Rendered, TemplateSources};
use super::{data_hash, keys, property};
use crate::api::{CreationPolicy, DeletionPolicy, Service, SourceStatus};
use crate::source::{SourceError, Value};

#[derive(Debug)]
pub struct PlanInput<'a> {
    pub spec: &'a ValidSpec<'a>,
    /// What was read for each entry of `spec`.
    pub reads: Reads<'a>,
    /// The target Secret as it is now.
    pub existing: Option<&'a Secret>,
    /// The ConfigMaps and Secrets `target.template.templateFrom` names.
    pub templates: &'a TemplateSources,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Server-side apply this body; `changed` is false when the Secret already holds it.
    Apply { secret: Box<Secret>, changed: bool },
    /// Delete the target Secret (deletionPolicy Delete and nothing left to write).
    Delete,
    /// Leave the target Secret exactly as it is.
    Keep,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub action: Action,
    /// Hash of the data now in the Secret (None when kept or deleted).
    pub data_hash: Option<String>,
    pub sources: Vec<SourceStatus>,
    /// Ready condition: `None` for success, or the reason and message of a remote that is gone.
    pub gone: Option<(String, String)>,
}

/// Why a plan could not be made. Every message names the ExternalSecret and the entry.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("{0}")]
    PropertyNotFound(String),
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidKey(String),
    #[error("{0}")]
    KeyCollision(String),
    #[error("{0}")]
    Template(String),
    #[error("{0}")]
    Decode(String),
    #[error("{0}")]
    TargetNotFound(String),
    #[error("{0}")]
    TargetConflict(String),
    #[error("{0}")]
    SecretTooLarge(String),
    #[error("{0}")]
    TargetImmutable(String),
}

/// Kubernetes refuses a Secret whose values add up to more than 1 MiB.
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;

impl PlanError {
    /// Status and event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            PlanError::PropertyNotFound(_) => "PropertyNotFound",
            PlanError::InvalidJson(_) => "InvalidJSON",
            PlanError::InvalidKey(_) => "InvalidKey",
            PlanError::KeyCollision(_) => "KeyCollision",
            PlanError::Template(_) => "TemplateError",
            PlanError::Decode(_) => "DecodingError",
            PlanError::TargetNotFound(_) => "TargetNotFound",
            PlanError::TargetConflict(_) => "TargetConflict",
            PlanError::SecretTooLarge(_) => "SecretTooLarge",
            PlanError::TargetImmutable(_) => "TargetImmutable",
        }
    }
}

/// Where a key came from, for messages.
fn origin(field: &str, index: usize, service: Service, key: &str) -> String {
    format!("{field}[{index}] ({service} {key:?})")
}

pub fn plan(input: PlanInput<'_>) -> Result<Plan, PlanError> {
    let es = input.spec.es;
    let who = input.spec.who.as_str();
    let target = es.target_name();
    let spec = &es.spec;

    let mut values: BTreeMap<String, (Vec<u8>, String)> = BTreeMap::new();
    let mut used: Vec<&Value> = Vec::new();
    let mut gone: Vec<&SourceError> = Vec::new();
    let mut insert = |key: String, bytes: Vec<u8>, from: String| -> Result<(), PlanError> {
        keys::validate(&key).map_err(|e| PlanError::InvalidKey(format!("{who}: {from}: {e}")))?;
        if let Some((_, first)) = values.get(&key) {
            return Err(PlanError::KeyCollision(format!(
                "{who}: key {key:?} comes from both {first} and {from}; rename one with secretKey or a rewrite rule"
            )));
        }
        values.insert(key, (bytes, from));
        Ok(())
    };

    for (i, (item, read)) in input.reads.data.iter().enumerate() {
        let r = &item.remote_ref;
        let from = origin("data", i, r.service(), &r.key);
        let v = match read {
            Read::Value(v) => v,
            Read::Gone(e) => {
                gone.push(e);
                continue;
            }
        };
        used.push(v);
        let raw = match &r.property {
            Some(p) => {
                property::property(&v.data.0, p).map_err(|e| property_error(who, &from, e))?
            }
            None => v.data.0.clone(),
        };
        let bytes = property::decode(raw, r.decoding_strategy.unwrap_or_default())
            .map_err(|e| PlanError::Decode(format!("{who}: {from}: {e}")))?;
        insert(item.secret_key.clone(), bytes, from)?;
    }

    for (i, read) in input.reads.data_from.iter().enumerate() {
        match read {
            ReadFrom::Extract {
                read: Read::Gone(e),
                ..
            } => gone.push(e),
            ReadFrom::Extract {
                remote: r,
                rewrite,
                read: Read::Value(v),
            } => {
                used.push(v);
                let from = origin("dataFrom", i, r.service(), &r.key);
                let wanted = r.property.as_deref().unwrap_or("(all fields)");
                let doc = property::parse_json(&v.data.0, wanted)
                    .map_err(|e| property_error(who, &from, e))?;
                let obj = match &r.property {
                    Some(p) => property::lookup(&doc, p).ok_or_else(|| {
                        property_error(who, &from, property::PropertyError::Missing(p.clone()))
                    })?,
                    None => &doc,
                };
                let obj = obj.as_object().ok_or_else(|| {
                    PlanError::InvalidJson(format!(
                        "{who}: {from}: extract needs a JSON object, and the value is not one"
                    ))
                })?;
                for (field, fv) in obj {
                    let key = keys::rewrite(field, rewrite)
                        .map_err(|e| PlanError::InvalidKey(format!("{who}: {from}: {e}")))?;
                    let bytes = property::decode(
                        property::json_to_bytes(fv),
                        r.decoding_strategy.unwrap_or_default(),
                    )
                    .map_err(|e| {
                        PlanError::Decode(format!("{who}: {from} field {field:?}: {e}"))
                    })?;
                    insert(key, bytes, format!("{from} field {field:?}"))?;
                }
            }
            ReadFrom::Find {
                find: f,
                rewrite,
                values: vs,
            } => {
                let what = f
                    .path
                    .clone()
                    .or_else(|| f.name.as_ref().map(|n| n.regexp.clone()))
                    .unwrap_or_else(|| "tags".into());
                let from = origin("dataFrom", i, f.service(), &what);
                for v in vs {
                    used.push(v);
                    let key = keys::rewrite(&v.name, rewrite)
                        .map_err(|e| PlanError::InvalidKey(format!("{who}: {from}: {e}")))?;
                    let key = keys::sanitize_path(&key);
                    let bytes =
                        property::decode(v.data.0.clone(), f.decoding_strategy.unwrap_or_default())
                            .map_err(|e| {
                                PlanError::Decode(format!("{who}: {from} {:?}: {e}", v.name))
                            })?;
                    insert(key, bytes, format!("{from} {:?}", v.name))?;
                }
            }
        }
    }

    let sources = source_statuses(&used);
    let ours = input.existing.filter(|s| written_by(s, es));
    check_target(who, &target, es, input.existing)?;

    if let Some(first) = gone.first() {
        let all = gone
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        let retain = spec.target.deletion_policy == DeletionPolicy::Retain || ours.is_none();
        if retain {
            let kept = if ours.is_some() {
                "kept the Secret's last data (deletionPolicy Retain)".to_string()
            } else {
                format!(
                    "Secret {target} not written (deletionPolicy {:?})",
                    spec.target.deletion_policy
                )
            };
            return Ok(Plan {
                action: Action::Keep,
                data_hash: None,
                sources,
                gone: Some((
                    first.kind.reason().to_string(),
                    format!("{who}: {all}; {kept}"),
                )),
            });
        }
        if values.is_empty()
            && spec.target.creation_policy != CreationPolicy::Merge
            && spec.target.deletion_policy == DeletionPolicy::Delete
        {
            return Ok(Plan {
                action: Action::Delete,
                data_hash: None,
                sources,
                gone: Some((
                    first.kind.reason().to_string(),
                    format!("{who}: {all}; deleted Secret {target} (deletionPolicy Delete)"),
                )),
            });
        }
    }

    let plain: BTreeMap<String, Vec<u8>> = values.into_iter().map(|(k, (v, _))| (k, v)).collect();
    let rendered = match spec.target.template.as_ref() {
        Some(t) => templating::render_target(who, t, plain, input.templates)?,
        None => Rendered {
            data: plain,
            ..Rendered::default()
        },
    };
    let data = &rendered.data;

    let size: usize = data.values().map(Vec::len).sum();
    if size > MAX_SECRET_BYTES {
        return Err(PlanError::SecretTooLarge(format!(
            "{who}: Secret {target} would hold {size} bytes of data, over the Kubernetes limit of {MAX_SECRET_BYTES} bytes (1 MiB); split the keys across several ExternalSecrets or select fewer (property, rewrite)"
        )));
    }
    let hash = data_hash(data);
    let desired = desired_secret(es, &target, &rendered, &hash);
    let changed = match input.existing {
        Some(current) => differs(current, &desired),
        None => true,
    };
    if changed && input.existing.is_some_and(|s| s.immutable == Some(true)) {
        return Err(PlanError::TargetImmutable(format!(
            "{who}: Secret {target} is immutable (target.immutable) and its data would change; delete the Secret to let arnsync write it again"
        )));
    }
    let gone_note = gone.first().map(|first| {
        let all = gone
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        (
            first.kind.reason().to_string(),
            format!(
                "{who}: {all}; removed its keys from Secret {target} (deletionPolicy {:?})",
                spec.target.deletion_policy
            ),
        )
    });
    if spec.target.creation_policy == CreationPolicy::None {
        // Read and report only: nothing is written, and nothing the Secret holds is claimed.
        return Ok(Plan {
            action: Action::Keep,
            data_hash: Some(hash),
            sources,
            gone: gone_note,
        });
    }
    Ok(Plan {
        action: Action::Apply {
            secret: Box::new(desired),
            changed,
        },
        data_hash: Some(hash),
        sources,
        gone: gone_note,
    })
}

fn property_error(who: &str, from: &str, e: property::PropertyError) -> PlanError {
    let msg = format!("{who}: {from}: {e}");
    match e {
        property::PropertyError::Missing(_) => PlanError::PropertyNotFound(msg),
        property::PropertyError::InvalidJson(..) => PlanError::InvalidJson(msg),
    }
}

fn source_statuses(used: &[&Value]) -> Vec<SourceStatus> {
    let mut out: Vec<SourceStatus> = used
        .iter()
        .map(|v| {
            let (version_id, version) = match v.service {
                Service::SecretsManager => (Some(v.version.clone()), None),
                Service::ParameterStore => (None, Some(v.version.clone())),
            };
            SourceStatus {
                service: v.service,
                key: v.name.clone(),
                version_id,
                version,
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
