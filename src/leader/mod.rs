//! Leader election on a `coordination.k8s.io/v1` Lease, with the semantics of client-go's
//! `leaderelection`: a candidate takes the Lease when it has no holder or its holder let it
//! expire (`renewTime + leaseDurationSeconds < now`); every write carries the `resourceVersion`
//! that was read, so two candidates cannot both win (the loser gets 409 and re-reads);
//! `leaseTransitions` counts holder changes.
//!
//! Timing, from the lease duration D: the leader renews every D/3 and a standby retries every
//! D/3 (plus jitter). A leader that has not renewed for 2D/3 gives up, so it has stopped acting
//! before any standby may take the Lease at D. The decision itself ([`decide`], [`claimed`],
//! [`released`]) is pure and tested from plain values; [`Elector`] does the I/O.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};

/// Where the Lease lives, who we are, and how long a holder's claim lasts.
#[derive(Clone, Debug)]
pub struct Config {
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity, written to `holderIdentity`.
    pub identity: String,
    pub lease_duration: Duration,
}

impl Config {
    /// How often the leader renews and a standby tries again.
    pub fn retry_period(&self) -> Duration {
        self.lease_duration / 3
    }

    /// A leader that has not renewed for this long stops. Shorter than the lease duration, so
    /// the old leader has stopped before a standby may take the Lease.
    pub fn renew_deadline(&self) -> Duration {
        self.lease_duration * 2 / 3
    }

    /// `leaseDurationSeconds`: whole seconds, rounded up, at least 1.
    fn duration_seconds(&self) -> i32 {
        let ms = self.lease_duration.as_millis().max(1);
        i32::try_from(ms.div_ceil(1000)).unwrap_or(i32::MAX)
    }
}

/// This replica's identity: `POD_NAME` when set (stable across container restarts, and what
/// `kubectl get lease` readers expect), else the hostname with a random suffix so that two
/// processes on one host never share an identity.
pub fn identity() -> String {
    if let Some(pod) = std::env::var("POD_NAME").ok().filter(|p| !p.is_empty()) {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "arnsync".to_string());
    format!("{host}-{:08x}", rand::random::<u32>())
}

/// What a candidate should do with the Lease it just read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Absent, without a holder, or expired: take it.
    Acquire,
    /// Ours: renew it.
    Renew,
    /// Another holder's claim is still valid.
    Wait { holder: String },
}

fn holder(spec: Option<&LeaseSpec>) -> Option<&str> {
    spec.and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

/// The decision for `identity` given the Lease's spec (None: no Lease yet) at `now`.
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let (Some(spec), Some(current)) = (spec, holder(spec)) else {
        return Decision::Acquire;
    };
    if current == identity {
        return Decision::Renew;
    }
    let expires = spec.renew_time.as_ref().map(|t| {
        let secs = spec.lease_duration_seconds.unwrap_or(0).max(0);
        t.0.checked_add(SignedDuration::from_secs(i64::from(secs)))
            .unwrap_or(Timestamp::MAX)
    });
    match expires {
        Some(expires) if expires >= now => Decision::Wait {
            holder: current.to_string(),
        },
        _ => Decision::Acquire,
    }
}

/// The spec `identity` writes to take or renew the Lease: renewing keeps `acquireTime` and
/// `leaseTransitions`; taking it from anyone else (or from nobody, after a release) sets
/// `acquireTime` and counts a transition. A new Lease starts at 0 transitions.
pub fn claimed(
    current: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    duration_seconds: i32,
) -> LeaseSpec {
    let renewing = holder(current) == Some(identity);
    let transitions = match current {
        None => 0,
        Some(s) if renewing => s.lease_transitions.unwrap_or(0),
        Some(s) => s.lease_transitions.unwrap_or(0).saturating_add(1),
    };
    let acquire_time = match current {
        Some(s) if renewing => s.acquire_time.clone().unwrap_or(MicroTime(now)),
        _ => MicroTime(now),
    };
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(duration_seconds),
        acquire_time: Some(acquire_time),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..current.cloned().unwrap_or_default()
    }
}

/// The spec a leader writes when it steps down: no holder (new candidates take it at once), and
/// for readers that only look at expiry, a 1-second lease renewed now.
pub fn released(current: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        ..current.clone()
    }
}

/// Why a leader stopped leading.
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    #[error("could not renew the Lease for {0:?} (renew deadline); another replica may take it")]
    Deadline(Duration),
    #[error("the Lease is now held by {0}")]
    Taken(String),
}

/// The result of one read-decide-write round.
enum Round {
    Held,
    HeldBy(String),
}

/// Acquires, renews and releases one Lease.
pub struct Elector {
    api: Api<Lease>,
    config: Config,
    /// The Lease as last read or written: its resourceVersion guards the next write.
    observed: Option<Lease>,
    /// When the last successful write was sent (its renewTime is no earlier than this).
    renewed_at: Option<Instant>,
}

impl Elector {
    pub fn new(client: Client, config: Config) -> Elector {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            renewed_at: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Tries until this replica holds the Lease (true), or `shutdown` resolves first (false).
    /// `standing_by` is called after every round that found another valid holder.
    pub async fn acquire(
        &mut self,
        mut standing_by: impl FnMut(&str),
        shutdown: impl Future<Output = ()>,
    ) -> bool {
        tokio::pin!(shutdown);
        let mut last_holder: Option<String> = None;
        loop {
            let period = self.config.retry_period();
            let round = tokio::select! {
                _ = &mut shutdown => return false,
                r = tokio::time::timeout(period, self.round()) => r,
            };
            match round {
                Ok(Ok(Round::Held)) => {
                    tracing::info!(
                        identity = %self.config.identity,
                        lease = %self.lease_name(),
                        transitions = self.transitions(),
                        "became leader"
                    );
                    return true;
                }
                Ok(Ok(Round::HeldBy(holder))) => {
                    if last_holder.as_deref() != Some(holder.as_str()) {
                        tracing::info!(
                            identity = %self.config.identity,
                            lease = %self.lease_name(),
                            leader = %holder,
                            "standing by"
                        );
                    }
                    standing_by(&holder);
                    last_holder = Some(holder);
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.lease_name(), error = %e, "could not read or take the Lease")
                }
                Err(_) => {
                    tracing::warn!(lease = %self.lease_name(), "reading the Lease timed out")
                }
            }
            let jittered = period.mul_f64(rand::random_range(1.0..1.2));
            tokio::select! {
                _ = &mut shutdown => return false,
                _ = tokio::time::sleep(jittered) => {}
            }
        }
    }

    /// Renews the Lease until `stop` resolves (Ok), or until this replica can no longer claim
    /// it (Err). Call after [`Elector::acquire`] returned true.
    pub async fn hold(&mut self, stop: impl Future<Output = ()>) -> Result<(), Lost> {
        tokio::pin!(stop);
        let deadline = self.config.renew_deadline();
        // After a failed attempt, try again sooner: the renew deadline is two periods away.
        let mut wait = self.config.retry_period();
        loop {
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            let started = Instant::now();
            let renewed_at = self.renewed_at.unwrap_or(started);
            let left = (renewed_at + deadline).saturating_duration_since(started);
            let round = tokio::select! {
                _ = &mut stop => return Ok(()),
                r = tokio::time::timeout(left, self.round()) => r,
            };
            match round {
                Ok(Ok(Round::Held)) => {
                    wait = self.config.retry_period();
                    continue;
                }
                Ok(Ok(Round::HeldBy(holder))) => return Err(Lost::Taken(holder)),
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.lease_name(), error = %e, "could not renew the Lease")
                }
                Err(_) => {
                    tracing::warn!(lease = %self.lease_name(), "renewing the Lease timed out")
                }
            }
            if renewed_at.elapsed() >= deadline {
                return Err(Lost::Deadline(deadline));
            }
            wait = (self.config.retry_period() / 4).max(Duration::from_millis(50));
        }
    }

    /// Gives the Lease up if this replica still holds it, so a standby takes over without
    /// waiting for it to expire. Failures are logged: the Lease then simply expires.
    pub async fn release(&mut self) {
        let deadline = self.config.renew_deadline();
        match tokio::time::timeout(deadline, self.write_release()).await {
            Ok(Ok(true)) => {
                tracing::info!(identity = %self.config.identity, lease = %self.lease_name(), "released the Lease")
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.lease_name(), error = %e, "could not release the Lease; it expires on its own")
            }
            Err(_) => {
                tracing::warn!(lease = %self.lease_name(), "releasing the Lease timed out; it expires on its own")
            }
        }
    }

    async fn write_release(&mut self) -> Result<bool, kube::Error> {
        for _ in 0..2 {
            let lease = match self.observed.take() {
                Some(l) => l,
                None => match self.api.get_opt(&self.config.name).await? {
                    Some(l) => l,
                    None => return Ok(false),
                },
            };
            if holder(lease.spec.as_ref()) != Some(self.config.identity.as_str()) {
                return Ok(false);
            }
            let mut next = lease.clone();
            next.spec = Some(released(&lease.spec.unwrap_or_default(), Timestamp::now()));
            match self
                .api
                .replace(&self.config.name, &PostParams::default(), &next)
                .await
            {
                Ok(_) => return Ok(true),
                // Written meanwhile (by our own in-flight renewal, or a new holder): re-read.
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Reads the Lease (or reuses our last write while we hold it), decides, and writes with
    /// the resourceVersion read. A conflict means someone else wrote: read again, once.
    async fn round(&mut self) -> Result<Round, kube::Error> {
        let identity = self.config.identity.clone();
        let mut conflicts = 0;
        loop {
            let ours = self
                .observed
                .take()
                .filter(|l| holder(l.spec.as_ref()) == Some(identity.as_str()));
            let current = match ours {
                Some(l) => Some(l),
                None => self.api.get_opt(&self.config.name).await?,
            };
            let now = Timestamp::now();
            let spec = current.as_ref().and_then(|l| l.spec.as_ref());
            if let Decision::Wait { holder } = decide(spec, &identity, now) {
                self.observed = current;
                return Ok(Round::HeldBy(holder));
            }
            let next_spec = claimed(spec, &identity, now, self.config.duration_seconds());
            let sent = Instant::now();
            let pp = PostParams::default();
            let written = match current {
                Some(mut lease) => {
                    lease.spec = Some(next_spec);
                    self.api.replace(&self.config.name, &pp, &lease).await
                }
                None => {
                    let lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(self.config.name.clone()),
                            namespace: Some(self.config.namespace.clone()),
                            ..ObjectMeta::default()
                        },
                        spec: Some(next_spec),
                    };
                    self.api.create(&pp, &lease).await
                }
            };
            match written {
                Ok(lease) => {
                    self.observed = Some(lease);
                    self.renewed_at = Some(sent);
                    return Ok(Round::Held);
                }
                Err(kube::Error::Api(e)) if e.code == 409 && conflicts == 0 => conflicts += 1,
                Err(e) => return Err(e),
            }
        }
    }

    fn lease_name(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }

    fn transitions(&self) -> i32 {
        self.observed
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
