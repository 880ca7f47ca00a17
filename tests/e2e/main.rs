//! End to end: the `arnsync` binary against the Kubernetes test server and moto (behind the
//! fault proxy). Assertions wait for an outcome ("eventually"), never for a duration.

mod api_reads;
mod batching;
mod cluster_external_secret;
mod cost;
mod eso_manifests;
mod events;
mod examples;
mod failover;
mod failures;
mod harness;
mod iam_policy;
mod leader;
mod policies;
mod rotation;
mod stores;
mod sync;
