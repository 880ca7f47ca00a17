//! The validated ExternalSecret spec: what `plan` and the reconciler work from. Every entry is
//! one of the shapes arnsync can read, so later steps never meet an impossible combination.

use std::time::Duration;

use crate::api::{parse_duration, DataItem, ExternalSecret, FindRef, RemoteRef, Rewrite};
use crate::source::{SourceError, Value};

/// An ExternalSecret whose spec passed [`validate`].
#[derive(Debug)]
pub struct ValidSpec<'a> {
    /// The object itself, for its metadata, target and status.
    pub es: &'a ExternalSecret,
    /// `ExternalSecret ns/name`, the subject of every message.
    pub who: String,
    /// `spec.refreshInterval`; zero reads once.
    pub refresh: Duration,
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
    let refresh = parse_duration(&es.spec.refresh_interval)
        .map_err(|e| format!("{who}: spec.refreshInterval: {e}"))?;
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
        data: &es.spec.data,
        data_from,
    })
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
