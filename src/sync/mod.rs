//! Pure planning: from an ExternalSecret, the values fetched for it and the current Secret, the
//! desired Secret and status. Nothing here touches the network or the clock.

mod hash;
pub mod keys;
mod plan;
pub mod property;
mod spec;
pub mod template;
#[cfg(test)]
mod tests;

pub use hash::data_hash;
pub use plan::{
    plan, written_by, Action, Plan, PlanError, PlanInput, HASH_ANNOTATION, MANAGED_LABEL,
    MAX_SECRET_BYTES, OWNER_ANNOTATION,
};
pub use spec::{validate, DataFrom, Read, ReadFrom, Reads, ValidSpec};
