//! arnsync: keeps Kubernetes Secrets in step with AWS Secrets Manager and Parameter Store.
// Two exceptions, in `memory` (calls into the C allocator: `malloc_trim`, `mallopt`), are allowed
// there.
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
