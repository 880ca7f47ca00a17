//! The validated ExternalSecret spec: what `plan` and the reconciler work from. Every entry is
//! one of the shapes arnsync can read, so later steps never meet an impossible combination.

use std::time::Duration;

use crate::api::{
    parse_duration, DataItem, EngineVersion, ExternalSecret, FindRef, MetadataPolicy,
    RefreshPolicy, RemoteRef, Rewrite, Service,
};
use crate::source::{SourceError, Value};

/// An ExternalSecret whose spec passed [`validate`].
#[derive(Debug)]
pub struct ValidSpec<'a> {
    /// The object itself, for its metadata, target and status.
    pub es: &'a ExternalSecret,
    /// `ExternalSecret ns/name`, the subject of every message.
    pub who: String,
    /// `spec.refreshInterval`; zero reads once (also for refreshPolicy OnChange and CreatedOnce).
    pub refresh: Duration,
    pub policy: RefreshPolicy,
    pub data: &'a [DataItem],
    pub data_from: Vec<DataFrom<'a>>,
}

/// One `spec.dataFrom` entry: exactly one way to produce keys.
#[derive(Debug, Clone, Copy)]
pub enum DataFrom<'a> {
    /// Every JSON field of one value.
    Extract {
        remote: &'a RemoteRef,
        rewrite: &'a [Rewrite],
    },
    /// Every secret or parameter a search finds.
    Find {
        find: &'a FindRef,
        rewrite: &'a [Rewrite],
    },
}

/// The read of one value: a remote that does not exist is `Gone`, so that `plan` applies the
/// deletion policy (any other error stops before `plan`).
#[derive(Debug, Clone)]
pub enum Read {
    Value(Value),
    Gone(SourceError),
}

/// One `spec.dataFrom` entry with what was read for it.
#[derive(Debug, Clone)]
pub enum ReadFrom<'a> {
    Extract {
        remote: &'a RemoteRef,
        rewrite: &'a [Rewrite],
        read: Read,
    },
    Find {
        find: &'a FindRef,
        rewrite: &'a [Rewrite],
        values: Vec<Value>,
    },
}

/// Everything read for a [`ValidSpec`], entry by entry, in spec order.
#[derive(Debug, Clone, Default)]
pub struct Reads<'a> {
    pub data: Vec<(&'a DataItem, Read)>,
    pub data_from: Vec<ReadFrom<'a>>,
}

/// Checks what the CRD schema cannot (or what a cluster that does not enforce its rules lets
/// through). The error is the message of an `InvalidSpec`.
pub fn validate(es: &ExternalSecret) -> Result<ValidSpec<'_>, String> {
    let who = es.label();
    let policy = es.spec.refresh_policy.unwrap_or_default();
    let refresh = match policy {
        RefreshPolicy::Periodic => parse_duration(&es.spec.refresh_interval)
            .map_err(|e| format!("{who}: spec.refreshInterval: {e}"))?,
        RefreshPolicy::OnChange | RefreshPolicy::CreatedOnce => Duration::ZERO,
    };
    refuse_unsupported(es).map_err(|e| format!("{who}: {e}"))?;
    let data_from = es
        .spec
        .data_from
        .iter()
        .enumerate()
        .map(|(i, d)| match (&d.extract, &d.find) {
            // The CRD refuses both; where it is not enforced, extract wins as it always did.
            (Some(remote), _) => Ok(DataFrom::Extract {
                remote,
                rewrite: &d.rewrite,
            }),
            (None, Some(find)) => Ok(DataFrom::Find {
                find,
                rewrite: &d.rewrite,
            }),
            (None, None) => Err(format!(
                "{who}: dataFrom[{i}] sets neither extract nor find; set exactly one"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ValidSpec {
        es,
        who,
        refresh,
        policy,
        data: &es.spec.data,
        data_from,
    })
}

/// What the CRD's rules refuse, checked again for clusters that do not enforce them, and what
/// depends on the store (bound by [`ExternalSecret::bound_to`]).
fn refuse_unsupported(es: &ExternalSecret) -> Result<(), String> {
    let spec = &es.spec;
    if spec.sync_windows.is_some() {
        return Err(
            "spec.syncWindows is not supported: arnsync syncs whenever a value changes; remove it"
                .into(),
        );
    }
    if spec
        .target
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .is_some_and(|m| !m.finalizers.is_empty())
    {
        return Err("spec.target.template.metadata.finalizers is not supported: arnsync writes only labels and annotations; remove it".into());
    }
    for (i, d) in spec.data.iter().enumerate() {
        if d.source_ref.is_some() {
            return Err(format!("spec.data[{i}].sourceRef is not supported: arnsync reads only from spec.secretStoreRef (no generators, no per-entry stores); use one ExternalSecret per store"));
        }
        remote_supported(&d.remote_ref, &format!("spec.data[{i}].remoteRef"))?;
    }
    for (i, d) in spec.data_from.iter().enumerate() {
        let at = format!("spec.dataFrom[{i}]");
        if d.source_ref.is_some() {
            return Err(format!("{at}.sourceRef is not supported: arnsync reads only from spec.secretStoreRef (no generators, no per-entry stores); use one ExternalSecret per store"));
        }
        if let Some(r) = &d.extract {
            remote_supported(r, &format!("{at}.extract"))?;
        }
        if let Some(f) = &d.find {
            find_supported(f, &format!("{at}.find"))?;
        }
        for (j, r) in d.rewrite.iter().enumerate() {
            if r.regexp.is_some() == r.transform.is_some() {
                return Err(format!(
                    "{at}.rewrite[{j}]: set exactly one of regexp and transform"
                ));
            }
        }
    }
    if let Some(t) = &spec.target.template {
        if t.engine_version == Some(EngineVersion::V1) {
            return Err("spec.target.template.engineVersion v1 is not supported (External Secrets Operator deprecated it): write the template for v2 and set engineVersion: v2".into());
        }
    }
    Ok(())
}

fn remote_supported(r: &RemoteRef, at: &str) -> Result<(), String> {
    if r.metadata_policy == Some(MetadataPolicy::Fetch) {
        return Err(format!(
            "{at}.metadataPolicy Fetch (reading tags instead of the value) is not supported; remove it to read the value"
        ));
    }
    Ok(())
}

fn find_supported(f: &FindRef, at: &str) -> Result<(), String> {
    if let Some(n) = &f.name {
        regex::Regex::new(&n.regexp).map_err(|_| {
            format!(
                "{at}.name.regexp {:?} is not a valid regular expression",
                n.regexp
            )
        })?;
    }
    if f.service == Some(Service::ParameterStore) && !f.tags.is_empty() {
        return Err(format!(
            "{at}.tags: a ParameterStore find takes path and name.regexp, not tags"
        ));
    }
    Ok(())
}

impl ValidSpec<'_> {
    /// Every remote reference that reads one value: `data` then `dataFrom` extracts.
    pub fn remote_refs(&self) -> impl Iterator<Item = &RemoteRef> {
        self.data
            .iter()
            .map(|d| &d.remote_ref)
            .chain(self.data_from.iter().filter_map(|d| match d {
                DataFrom::Extract { remote, .. } => Some(*remote),
                DataFrom::Find { .. } => None,
            }))
    }

    /// True when some `dataFrom` entry is a find.
    pub fn finds(&self) -> bool {
        self.data_from
            .iter()
            .any(|d| matches!(d, DataFrom::Find { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn es(spec: serde_json::Value) -> ExternalSecret {
        serde_json::from_value(json!({
            "apiVersion": "arnsync.io/v1alpha1",
            "kind": "ExternalSecret",
            "metadata": {"name": "db", "namespace": "app"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn a_valid_spec_has_its_interval_and_one_shape_per_data_from_entry() {
        let es = es(json!({
            "secretStoreRef": {"name": "aws"},
            "refreshInterval": "90s",
            "data": [{"secretKey": "k", "remoteRef": {"key": "prod/db"}}],
            "dataFrom": [
                {"extract": {"key": "prod/cfg"}},
                {"find": {"service": "ParameterStore", "path": "/p/"}}
            ]
        }));
        let v = validate(&es).unwrap();
        assert_eq!(v.who, "ExternalSecret app/db");
        assert_eq!(v.refresh, Duration::from_secs(90));
        assert_eq!(v.data.len(), 1);
        assert!(
            matches!(v.data_from[0], DataFrom::Extract { remote, .. } if remote.key == "prod/cfg")
        );
        assert!(
            matches!(v.data_from[1], DataFrom::Find { find, .. } if find.path.as_deref() == Some("/p/"))
        );
        let refs: Vec<&str> = v.remote_refs().map(|r| r.key.as_str()).collect();
        assert_eq!(refs, vec!["prod/db", "prod/cfg"]);
        assert!(v.finds());
    }

    #[test]
    fn a_bad_interval_or_an_empty_data_from_entry_is_refused_naming_the_field() {
        let bad = es(json!({"secretStoreRef": {"name": "aws"}, "refreshInterval": "soon"}));
        let e = validate(&bad).unwrap_err();
        assert!(
            e.starts_with("ExternalSecret app/db: spec.refreshInterval:"),
            "{e}"
        );
        let empty = es(
            json!({"secretStoreRef": {"name": "aws"}, "dataFrom": [{"extract": {"key": "a"}}, {}]}),
        );
        let e = validate(&empty).unwrap_err();
        assert!(
            e.contains("dataFrom[1] sets neither extract nor find"),
            "{e}"
        );
    }
}
