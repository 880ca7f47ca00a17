//! Test harness for arnsync's AWS side: a launcher for the moto server and a call-counting,
//! fault-injecting HTTP proxy to put in front of it.
//!
//! ```text
//! AWS SDK client --(endpoint_url)--> FaultProxy --(plain HTTP)--> moto_server
//! ```
//!
//! * [`moto::Moto`] starts `moto_server` (from `.venv`, installed by `tests/setup.sh`, or from
//!   `$ARNSYNC_MOTO_SERVER`) on a free loopback port and kills it on drop.
//! * [`FaultProxy`] forwards every request unchanged to the upstream and streams the answer
//!   back. It counts every attempt per `(service, operation)` and answers with injected
//!   [`Fault`]s shaped exactly like real AWS error responses, so the AWS SDK turns them into
//!   the same modeled / unmodeled errors the operator sees in production.
//! * The same port serves a control API under `/__proxy/` for scripts (see [`control`]).
//! * The `aws-fault-proxy` binary runs the proxy standalone:
//!   `aws-fault-proxy --listen 127.0.0.1:0 --upstream http://127.0.0.1:PORT` prints exactly one
//!   line `listening on http://127.0.0.1:PORT` and serves until SIGTERM / SIGINT.
//!
//! # Counting
//!
//! The operation of a request is identified from (in this order):
//! * `X-Amz-Target: secretsmanager.GetSecretValue` / `AmazonSSM.GetParameters` (awsJson),
//! * `Action=AssumeRole` in the form body or the query string (awsQuery, e.g. STS).
//!
//! The service is the signing name from the SigV4 `Authorization` credential scope
//! (`Credential=AKID/20250101/us-east-1/sts/aws4_request` → `sts`), falling back to the target
//! prefix (`AmazonSSM` → `ssm`, `secretsmanager` → `secretsmanager`). Requests that fit
//! neither are counted as `("unknown", "<METHOD> <path>")`.
//!
//! [`FaultProxy::count`] counts **all attempts**, including those answered by a fault (an SDK
//! retry is a separate attempt). [`FaultProxy::faulted`] counts the subset to which a fault rule
//! applied (for [`FaultKind::Latency`] the call was still forwarded).
//!
//! # Faults
//!
//! Rules are kept in injection order; a request uses the first rule that matches its service
//! (case-insensitive, `None` = any), operation (`None` = any) and signing region (`None` =
//! any; see [`region_of`]; [`FaultProxy::count_in`] counts per region) and still has `times` left
//! (`None` = until [`FaultProxy::clear_faults`]). Exhausted rules are removed. See
//! [`FaultKind`] for the exact wire answers.
//!
//! # moto behaviour the tests rely on (moto 5.2, pinned by `tests/setup.sh`; asserted in `tests/moto_quirks.rs`)
//!
//! * Secret stages: after `UpdateSecretVersionStage` moves `AWSCURRENT` to another version,
//!   reading with an explicit `VersionStage` or `VersionId` returns the right value, and the
//!   version it moved away from becomes `AWSPREVIOUS`; custom stage labels work too.
//!   **Gap:** a read *without* `VersionStage` still returns the version that was current
//!   before the move (its `VersionStages` then says `AWSPREVIOUS`). Always ask for a stage or
//!   a version id.
//! * `GetParametersByPath` honours `MaxResults` and returns a `NextToken` until the last page;
//!   following the tokens yields every parameter exactly once. `Recursive=false` returns only
//!   direct children; `WithDecryption` returns `SecureString` values in clear.
//! * `ListSecrets` filters: `name`, `tag-key`, `tag-value` are case-sensitive prefix matches,
//!   a leading `!` negates, several filters are ANDed.
//! * SSM labels: `LabelParameterVersion` attaches a label, `GetParameter(s)` with `name:label`
//!   (or `name:version`) returns that version, labelling another version moves the label,
//!   an unknown label lands in `InvalidParameters`. **Gap:** moto omits `Selector` in the
//!   answer (AWS returns `":label"`); do not rely on it.
//! * Replicas (`AddReplicaRegions`, `ReplicateSecretToRegions`) show the primary's versions as
//!   they change, VersionIds included, under the replica region's ARN; they cannot be written.
//! * moto does not throttle, never fails on its own and has no size limits: use the proxy.
//!   It also answers a missing `Type` on a new `PutParameter` with `ValidationException`.

#![forbid(unsafe_code)]

pub mod control;
mod counting;
mod faults;
pub mod moto;
mod proxy;

pub use counting::{identify, region_of, CallKey};
pub use faults::{Fault, FaultKind};
pub use proxy::FaultProxy;
