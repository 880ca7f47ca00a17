//! The plan input the tests write (values in spec order), paired with the validated entries as
//! the fetch step pairs them.

use k8s_openapi::api::core::v1::Secret;

use super::{validate, DataFrom, Plan, PlanError, Read, ReadFrom, Reads};
use crate::api::ExternalSecret;
use crate::source::{SourceError, Value};

/// What the tests read for one entry; [`plan`] pairs them with the validated entries.
#[derive(Debug, Clone)]
pub(super) enum Fetched {
    One(Value),
    Many(Vec<Value>),
    Gone(SourceError),
}

/// The plan input the tests write: values in spec order.
pub(super) struct PlanInput<'a> {
    pub es: &'a ExternalSecret,
    pub data: Vec<Fetched>,
    pub data_from: Vec<Fetched>,
    pub existing: Option<&'a Secret>,
    pub templates: super::TemplateSources,
}

/// Validates `es`, pairs each entry with its value, and plans.
pub(super) fn plan(input: PlanInput<'_>) -> Result<Plan, PlanError> {
    let spec = validate(input.es).expect("a valid spec");
    let one = |f: Fetched| match f {
        Fetched::One(v) => Read::Value(v),
        Fetched::Gone(e) => Read::Gone(e),
        Fetched::Many(_) => panic!("a test gave many values to a one-value entry"),
    };
    let data = spec.data.iter().zip(input.data).map(|(d, f)| (d, one(f)));
    let data_from = spec
        .data_from
        .iter()
        .zip(input.data_from)
        .map(|(d, f)| match (*d, f) {
            (DataFrom::Find { find, rewrite }, Fetched::Many(values)) => ReadFrom::Find {
                find,
                rewrite,
                values,
            },
            (DataFrom::Extract { remote, rewrite }, f) => ReadFrom::Extract {
                remote,
                rewrite,
                read: one(f),
            },
            (DataFrom::Find { .. }, _) => panic!("a test gave one value to a find"),
        });
    let reads = Reads {
        data: data.collect(),
        data_from: data_from.collect(),
    };
    super::plan(super::PlanInput {
        spec: &spec,
        reads,
        existing: input.existing,
        templates: &input.templates,
    })
}
