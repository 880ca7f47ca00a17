//! arnsync: keeps Kubernetes Secrets in step with AWS Secrets Manager and Parameter Store.
// One exception, `memory::return_free_memory` (a call into the C allocator), is allowed there.
#![deny(unsafe_code)]

pub mod api;
pub mod controller;
pub mod convert;
pub mod leader;
mod memory;
pub mod metrics;
pub mod server;
pub mod source;
pub mod sync;
