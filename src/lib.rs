//! arnsync: keeps Kubernetes Secrets in step with AWS Secrets Manager and Parameter Store.
#![forbid(unsafe_code)]

pub mod api;
pub mod controller;
pub mod convert;
pub mod leader;
pub mod metrics;
pub mod server;
pub mod source;
pub mod sync;
