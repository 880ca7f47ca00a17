//! Lease decisions, from plain values.
use super::*;

const T0: i64 = 1_700_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

fn held(by: &str, renewed: i64, duration: i32, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(by.into()),
        lease_duration_seconds: Some(duration),
        acquire_time: Some(MicroTime(at(0))),
        renew_time: Some(MicroTime(at(renewed))),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

#[test]
fn absent_or_free_leases_are_taken() {
    assert_eq!(decide(None, "a", at(0)), Decision::Acquire);
    assert_eq!(
        decide(Some(&LeaseSpec::default()), "a", at(0)),
        Decision::Acquire
    );
    let mut empty = held("", 0, 15, 3);
    assert_eq!(decide(Some(&empty), "a", at(1)), Decision::Acquire);
    empty.holder_identity = None;
    assert_eq!(decide(Some(&empty), "a", at(1)), Decision::Acquire);
}

#[test]
fn a_valid_claim_of_another_holder_is_waited_for_until_it_expires() {
    let lease = held("b", 10, 15, 0);
    let wait = Decision::Wait { holder: "b".into() };
    assert_eq!(decide(Some(&lease), "a", at(10)), wait);
    assert_eq!(
        decide(Some(&lease), "a", at(25)),
        wait,
        "expiry is inclusive"
    );
    assert_eq!(decide(Some(&lease), "a", at(26)), Decision::Acquire);
    // A claim without renewTime or duration cannot be valid.
    let mut no_renew = lease.clone();
    no_renew.renew_time = None;
    assert_eq!(decide(Some(&no_renew), "a", at(10)), Decision::Acquire);
    let mut no_duration = lease;
    no_duration.lease_duration_seconds = None;
    assert_eq!(decide(Some(&no_duration), "a", at(11)), Decision::Acquire);
}

#[test]
fn our_own_claim_is_renewed_even_when_expired() {
    let lease = held("a", 10, 15, 2);
    assert_eq!(decide(Some(&lease), "a", at(11)), Decision::Renew);
    assert_eq!(decide(Some(&lease), "a", at(100)), Decision::Renew);
}

#[test]
fn renewing_keeps_acquire_time_and_transitions() {
    let lease = held("a", 10, 15, 2);
    let next = claimed(Some(&lease), "a", at(15), 15);
    assert_eq!(next.holder_identity.as_deref(), Some("a"));
    assert_eq!(next.acquire_time, Some(MicroTime(at(0))));
    assert_eq!(next.renew_time, Some(MicroTime(at(15))));
    assert_eq!(next.lease_transitions, Some(2));
    assert_eq!(next.lease_duration_seconds, Some(15));
}

#[test]
fn taking_over_counts_a_transition_and_resets_acquire_time() {
    let lease = held("b", 10, 15, 2);
    let next = claimed(Some(&lease), "a", at(30), 15);
    assert_eq!(next.holder_identity.as_deref(), Some("a"));
    assert_eq!(next.acquire_time, Some(MicroTime(at(30))));
    assert_eq!(next.renew_time, Some(MicroTime(at(30))));
    assert_eq!(next.lease_transitions, Some(3));

    let first = claimed(None, "a", at(0), 2);
    assert_eq!(first.lease_transitions, Some(0));
    assert_eq!(first.lease_duration_seconds, Some(2));
}

#[test]
fn a_released_lease_is_free_at_once_and_counts_the_next_holder() {
    let lease = held("a", 10, 15, 4);
    let free = released(&lease, at(12));
    assert_eq!(free.holder_identity, None);
    assert_eq!(free.lease_duration_seconds, Some(1));
    assert_eq!(free.renew_time, Some(MicroTime(at(12))));
    assert_eq!(free.lease_transitions, Some(4));
    assert_eq!(decide(Some(&free), "b", at(12)), Decision::Acquire);
    assert_eq!(
        claimed(Some(&free), "b", at(12), 15).lease_transitions,
        Some(5)
    );
}

#[test]
fn the_leader_gives_up_before_a_standby_may_take_over() {
    let c = Config {
        namespace: "default".into(),
        name: "arnsync".into(),
        identity: "a".into(),
        lease_duration: Duration::from_secs(15),
    };
    assert_eq!(c.retry_period(), Duration::from_secs(5));
    assert!(c.renew_deadline() < c.lease_duration);
    assert_eq!(c.duration_seconds(), 15);
    let short = Config {
        lease_duration: Duration::from_millis(1500),
        ..c
    };
    assert_eq!(short.duration_seconds(), 2, "rounded up");
}
