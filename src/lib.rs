//! arnsync: keeps Kubernetes Secrets in step with AWS Secrets Manager and Parameter Store.
// One exception, in `memory` (a call into the allocator, mimalloc), is allowed there.
#![deny(unsafe_code)]

pub mod api;
pub mod controller;
pub mod convert;
pub mod cost;
pub mod iam;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod server;
pub mod source;
pub mod sync;
