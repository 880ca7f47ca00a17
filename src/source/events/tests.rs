//! Coalescing, key matching, queue addresses; the keys the parse tests expect.

use super::consumer::coalesce_for_tests;
use super::*;
use crate::source::Selector;

pub(super) const ARN: &str = "arn:aws:secretsmanager:us-west-2:012345678901:secret:prod/db-a1B2c3";

pub(super) fn key(service: Service, region: &str, account: Option<&str>, name: &str) -> EventKey {
    EventKey {
        region: region.into(),
        account: account.map(Into::into),
        service,
        name: name.into(),
    }
}

pub(super) fn secret(name: &str) -> EventKey {
    key(
        Service::SecretsManager,
        "us-west-2",
        Some("012345678901"),
        name,
    )
}

pub(super) fn parameter(name: &str) -> EventKey {
    key(
        Service::ParameterStore,
        "us-east-1",
        Some("123456789012"),
        name,
    )
}

#[test]
fn duplicates_in_a_batch_become_one_change_and_the_latest_decides() {
    let at = |secs: u64| Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    let c = |name: &str, kind, time| Change {
        key: secret(name),
        kind,
        time,
    };
    let batch = [
        c("a", ChangeKind::Restored, at(20)),
        c("b", ChangeKind::VersionMoved, at(5)),
        c("a", ChangeKind::Deleted, at(10)),
        c("a", ChangeKind::VersionMoved, at(30)),
        c("b", ChangeKind::VersionMoved, at(5)),
    ];
    let merged = coalesce_for_tests(&batch);
    assert_eq!(merged.len(), 2);
    assert_eq!(
        (&merged[0].key.name[..], merged[0].kind),
        ("a", ChangeKind::VersionMoved)
    );
    assert_eq!(merged[1].key, secret("b"));
    // Reordered delivery: the delete after the restore (by event time) wins.
    let merged = coalesce_for_tests(&[
        c("a", ChangeKind::Deleted, at(40)),
        c("a", ChangeKind::Restored, at(20)),
    ]);
    assert_eq!(merged[0].kind, ChangeKind::Deleted);
}

#[test]
fn keys_match_names_full_and_partial_arns_of_the_same_region_and_account() {
    let k = secret("prod/db");
    let sm = |key: &str| Fetch::secret(key, Selector::Stage("AWSCURRENT".into()));
    let region = "us-west-2";
    assert!(k.names(&sm("prod/db"), region, None));
    assert!(k.names(&sm(ARN), region, Some("012345678901")));
    assert!(k.names(
        &sm("arn:aws:secretsmanager:us-west-2:012345678901:secret:prod/db"),
        region,
        None
    ));
    assert!(!k.names(&sm("prod/db2"), region, None));
    assert!(!k.names(&sm("prod/db"), "eu-west-1", None), "other region");
    assert!(
        !k.names(&sm("prod/db"), region, Some("999999999999")),
        "other account"
    );
    assert!(!k.names(
        &sm("arn:aws:secretsmanager:us-west-2:999999999999:secret:prod/db-a1B2c3"),
        region,
        None
    ));
    let unknown_account = key(Service::SecretsManager, region, None, "prod/db");
    assert!(unknown_account.names(&sm(ARN), region, Some("012345678901")));
    let p = Fetch::parameter("/prod/db/url", Selector::Latest);
    assert!(!k.names(&p, region, None), "other service");

    let k = parameter("/prod/db/url");
    assert!(k.names(&p, "us-east-1", None));
    assert!(k.names(
        &Fetch::parameter(
            "arn:aws:ssm:us-east-1:123456789012:parameter/prod/db/url",
            Selector::ParameterVersion("stable".into())
        ),
        "us-east-1",
        None
    ));
    assert!(!k.names(
        &Fetch::parameter("/prod/db", Selector::Latest),
        "us-east-1",
        None
    ));
    // A one-segment parameter ARN does not say whether the name had a leading slash.
    let plain = parameter("plain");
    assert!(plain.names(
        &Fetch::parameter(
            "arn:aws:ssm:us-east-1:123456789012:parameter/plain",
            Selector::Latest
        ),
        "us-east-1",
        None
    ));
    assert!(plain.names(
        &Fetch::parameter("/plain", Selector::Latest),
        "us-east-1",
        None
    ));
}

#[test]
fn queue_urls_and_arns() {
    let q =
        Queue::parse("https://sqs.eu-central-1.amazonaws.com/123456789012/arnsync-events").unwrap();
    assert_eq!(q.region(), Some("eu-central-1"));
    let q = Queue::parse("https://eu-west-1.queue.amazonaws.com/123456789012/q").unwrap();
    assert_eq!(q.region(), Some("eu-west-1"));
    let q = Queue::parse("http://127.0.0.1:5000/123456789012/q").unwrap();
    assert_eq!(q.region(), None);
    let q = Queue::parse("arn:aws:sqs:us-east-2:123456789012:arnsync-events").unwrap();
    assert_eq!(
        q,
        Queue::Arn {
            region: "us-east-2".into(),
            account: "123456789012".into(),
            name: "arnsync-events".into()
        }
    );
    assert_eq!(
        q.to_string(),
        "arn:aws:sqs:us-east-2:123456789012:arnsync-events"
    );
    for bad in [
        "arnsync-events",
        "arn:aws:sns:us-east-2:123456789012:topic",
        "arn:aws:sqs:us-east-2::q",
        "https://sqs.us-east-1.amazonaws.com/q",
        "https://sqs.us-east-1.amazonaws.com/123456789012/q/extra",
    ] {
        let e = Queue::parse(bad).unwrap_err();
        assert!(
            e.to_string().contains("eventQueue") && e.to_string().contains(bad),
            "{e}"
        );
    }
}
