//! Pure planning: from an ExternalSecret, the values fetched for it and the current Secret, the
//! desired Secret and status. Nothing here touches the network or the clock.

mod gotemplate;
mod hash;
pub mod keys;
mod plan;
pub mod property;
mod secret;
mod spec;
pub mod template;
mod templating;
#[cfg(test)]
mod test_input;
#[cfg(test)]
mod tests;

pub use hash::data_hash;
pub use plan::{plan, Action, Plan, PlanError, PlanInput, MAX_SECRET_BYTES};
pub use secret::{written_by, HASH_ANNOTATION, MANAGED_LABEL, OWNER_ANNOTATION};
pub use spec::{validate, DataFrom, Read, ReadFrom, Reads, ValidSpec};
pub use templating::{named_sources, TemplateSources};
