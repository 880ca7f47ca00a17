//! arnsync: keeps Kubernetes Secrets in step with AWS Secrets Manager and Parameter Store.
#![forbid(unsafe_code)]

pub mod api;
pub mod metrics;
pub mod source;
pub mod sync;
