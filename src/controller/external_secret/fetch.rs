//! Fetch: every value a validated spec names, read in parallel through the source layer.

use futures::future::join_all;

use super::watch::Pins;
use crate::api::{FindRef, RemoteRef, Service};
use crate::controller::SyncError;
use crate::source::{ErrorKind, Fetch, Find, Selector, Source, SourceError, Value};
use crate::sync::{DataFrom, Read, ReadFrom, Reads, ValidSpec};

/// Reads `data[]` and `dataFrom[]`, each entry with what was read for it. A remote that does
/// not exist is a [`Read::Gone`] for `plan`; any other error stops the sync. `fresh`: every
/// value from AWS, none from earlier reads (force-sync).
pub(super) async fn read_all<'a>(
    spec: &ValidSpec<'a>,
    source: &dyn Source,
    pins: &Pins<'_>,
    fresh: bool,
) -> Result<Reads<'a>, SyncError> {
    let data = join_all(spec.data.iter().map(|d| async move {
        get(source, &d.remote_ref, pins, fresh)
            .await
            .map(|read| (d, read))
    }));
    let data_from =
        join_all(spec.data_from.iter().map(|d| async move {
            match *d {
                DataFrom::Extract { remote, rewrite } => get(source, remote, pins, fresh)
                    .await
                    .map(|read| ReadFrom::Extract {
                        remote,
                        rewrite,
                        read,
                    }),
                DataFrom::Find { find, rewrite } => {
                    source
                        .find(&find_of(find))
                        .await
                        .map(|values| ReadFrom::Find {
                            find,
                            rewrite,
                            values: found(find, values),
                        })
                }
            }
        }));
    let (data, data_from) = futures::join!(data, data_from);
    let failed = SyncError::from_source(&spec.who);
    Ok(Reads {
        data: data
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(&failed)?,
        data_from: data_from
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(&failed)?,
    })
}

/// One value, at the version `pins` holds for it when there is one.
async fn get(
    source: &dyn Source,
    r: &RemoteRef,
    pins: &Pins<'_>,
    fresh: bool,
) -> Result<Read, SourceError> {
    let fetch = pins.fetch(r);
    let read = if fresh {
        source.get_fresh(&fetch).await
    } else {
        source.get(&fetch).await
    };
    match read {
        Ok(v) => Ok(Read::Value(v)),
        Err(e) if is_gone(&e) => Ok(Read::Gone(e)),
        Err(e) => Err(e),
    }
}

/// A secret that no longer exists, or is scheduled for deletion (Secrets Manager says so in two
/// ways: "...because it was marked for deletion" and "...a secret that's currently marked
/// deleted").
fn is_gone(e: &SourceError) -> bool {
    e.kind == ErrorKind::NotFound
        || (e.kind == ErrorKind::InvalidRequest
            && (e.message.contains("marked for deletion") || e.message.contains("marked deleted")))
}

/// The read a remote reference asks for, with `version` as ESO spells it: for Secrets Manager a
/// staging label or `uuid/<VersionId>` (default AWSCURRENT); for Parameter Store a version
/// number or label (default the latest).
pub(super) fn fetch_of(r: &RemoteRef) -> Fetch {
    let service = r.service();
    let selector = match (service, r.version.as_deref()) {
        (Service::SecretsManager, None) => Selector::Stage("AWSCURRENT".into()),
        (Service::SecretsManager, Some(v)) => match v.strip_prefix("uuid/") {
            Some(id) => Selector::VersionId(id.to_string()),
            None => Selector::Stage(v.to_string()),
        },
        (Service::ParameterStore, Some(v)) => Selector::ParameterVersion(v.to_string()),
        (Service::ParameterStore, None) => Selector::Latest,
    };
    Fetch {
        service,
        key: r.key.clone(),
        selector,
    }
}

/// The search a find asks for. Parameter Store searches below `path` (default `/`), recursively;
/// Secrets Manager lists by name and tags. What the AWS call cannot filter, [`found`] does.
fn find_of(f: &FindRef) -> Find {
    match f.service() {
        Service::ParameterStore => Find::ParameterPath {
            path: f.path.clone().unwrap_or_else(|| "/".into()),
            recursive: true,
        },
        Service::SecretsManager => Find::Secrets {
            name_regexp: f.name.as_ref().map(|n| n.regexp.clone()),
            tags: f.tags.clone(),
        },
    }
}

/// Keeps what a find's AWS call could not filter: Secrets Manager names under `path`, and
/// Parameter Store names matching `name.regexp` (validated before any read).
fn found(f: &FindRef, mut values: Vec<Value>) -> Vec<Value> {
    match f.service() {
        Service::SecretsManager => {
            if let Some(path) = f.path.as_deref() {
                values.retain(|v| v.name.starts_with(path));
            }
        }
        Service::ParameterStore => {
            if let Some(re) = f
                .name
                .as_ref()
                .and_then(|n| regex::Regex::new(&n.regexp).ok())
            {
                values.retain(|v| re.is_match(&v.name));
            }
        }
    }
    values
}
