//! The consumer against moto (SQS, and EventBridge rules routing events to the queue), behind
//! the call-counting, fault-injecting proxy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_fault_proxy::{Fault, FaultKind};

use super::moto_env::{health_becomes, quick, Env, FakeSink, ACCOUNT};
use super::*;
use crate::source::test_logs::logged;

#[tokio::test(flavor = "current_thread")]
async fn routed_events_are_acknowledged_only_after_they_were_applied() {
    let env = Env::start();
    let (url, _) = env.routed_queue("acks").await;
    let sink = Arc::new(FakeSink::default());
    let consumer = env.consumer(
        &url,
        sink.clone(),
        ConsumerOptions {
            visibility_timeout: Some(Duration::from_secs(2)),
            ..quick()
        },
    );

    // A label move routed by the rule: handed over as its canonical key, deleted once applied.
    sink.set("prod/db", Outcome::Applied);
    env.label_updated(&["prod/db"]).await;
    let report = consumer.poll_once().await.unwrap();
    assert_eq!((report.received, report.deleted, report.left), (1, 1, 0));
    let calls = sink.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0][0].key,
        EventKey {
            region: "us-east-1".into(),
            account: Some(ACCOUNT.into()),
            service: Service::SecretsManager,
            name: "prod/db".into(),
        }
    );
    assert!(calls[0][0].time.is_some());
    assert_eq!(env.depth(&url).await, (0, 0));
    assert!(consumer.stats().snapshot().last_lag.is_some());

    // A failed re-read leaves the message; it comes back after the visibility timeout.
    sink.set("prod/api", Outcome::Failed);
    env.label_updated(&["prod/api"]).await;
    let report = consumer.poll_once().await.unwrap();
    assert_eq!((report.received, report.deleted, report.left), (1, 0, 1));
    assert_eq!(env.depth(&url).await, (0, 1), "in flight, not deleted");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    sink.set("prod/api", Outcome::Applied);
    let report = consumer.poll_once().await.unwrap();
    assert_eq!((report.received, report.deleted), (1, 1), "delivered again");
    assert_eq!(env.depth(&url).await, (0, 0));

    // Duplicates in one batch: one change handed over, every copy deleted. A message naming a
    // failed key stays while the other goes.
    sink.set("prod/web", Outcome::Applied);
    sink.set("prod/flaky", Outcome::Failed);
    env.label_updated(&["prod/web", "prod/web", "prod/flaky"])
        .await;
    let report = consumer.poll_once().await.unwrap();
    assert_eq!((report.received, report.deleted, report.left), (3, 2, 1));
    let last = sink.calls().pop().unwrap();
    assert_eq!(last.len(), 2, "{last:?}");
    assert_eq!(env.depth(&url).await, (0, 1));

    // Parameter Store: Update through the rule; a Delete says so.
    sink.set("/prod/db/url", Outcome::Applied);
    env.parameter_change("/prod/db/url", "Update").await;
    env.parameter_change("/prod/db/url", "Create").await; // not in the rule's pattern
    env.parameter_change("/prod/old", "Delete").await;
    let report = consumer.poll_once().await.unwrap();
    assert_eq!(report.received, 2);
    let last = sink.calls().pop().unwrap();
    assert!(
        last.contains(&("/prod/db/url".into(), ChangeKind::VersionMoved)),
        "{last:?}"
    );
    assert!(
        last.contains(&("/prod/old".into(), ChangeKind::Deleted)),
        "{last:?}"
    );
    assert_eq!(report.unmatched, 1, "nobody watches /prod/old");

    let counts = consumer.stats().snapshot();
    assert_eq!(counts.received, 1 + 2 + 3 + 2);
    assert_eq!(counts.deleted, 1 + 1 + 2 + 2);
    assert_eq!(counts.failed, 2);
    assert_eq!(
        (counts.unmatched, counts.malformed, counts.errors),
        (1, 0, 0)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn malformed_and_unwatched_messages_are_deleted_counted_and_logged_by_id_only() {
    let env = Env::start();
    let (url, _) = env.routed_queue("junk").await;
    let sink = Arc::new(FakeSink::default());
    let consumer = env.consumer(&url, sink.clone(), quick());
    let body = "{\"password\": \"hunter2-never-logged\"}";
    let sent = env
        .admin
        .send_message()
        .queue_url(&url)
        .message_body(body)
        .send()
        .await
        .unwrap();
    env.label_updated(&["nobody/watches"]).await;
    let (report, logs) = logged(consumer.poll_once()).await;
    let report = report.unwrap();
    assert_eq!(
        (
            report.received,
            report.deleted,
            report.malformed,
            report.unmatched
        ),
        (2, 2, 1, 1)
    );
    assert_eq!(
        sink.names_seen(),
        ["nobody/watches"],
        "garbage never reaches the sink"
    );
    assert_eq!(env.depth(&url).await, (0, 0));
    let counts = consumer.stats().snapshot();
    assert_eq!(
        (counts.malformed, counts.unmatched, counts.deleted),
        (1, 1, 2)
    );
    assert!(logs.contains(sent.message_id().unwrap()), "{logs}");
    assert!(!logs.contains("hunter2"), "{logs}");
}

#[tokio::test(flavor = "current_thread")]
async fn an_idle_queue_costs_only_long_polls_and_an_event_lands_at_once() {
    let env = Env::start();
    let (_, arn) = env.routed_queue("idle").await;
    let sink = Arc::new(FakeSink::default());
    let consumer = Arc::new(env.consumer(
        &arn,
        sink.clone(),
        ConsumerOptions {
            wait: Duration::from_secs(1),
            ..ConsumerOptions::default()
        },
    ));
    let mut health = consumer.health();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let consumer = consumer.clone();
        async move { consumer.run(async { _ = stopped.await }).await }
    });
    health_becomes(&mut health, Duration::from_secs(10), "healthy", |h| {
        *h == Health::Healthy
    })
    .await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let counts = env.proxy.counts();
    let polls = env.proxy.count("sqs", "ReceiveMessage");
    assert!((3..=6).contains(&polls), "{counts:?}");
    assert_eq!(
        env.proxy.count("sqs", "GetQueueUrl"),
        1,
        "the ARN is resolved once"
    );
    assert_eq!(
        env.proxy.total(),
        polls + 1,
        "nothing but long polls: {counts:?}"
    );
    assert_eq!(sink.calls().len(), 0);
    stop.send(()).unwrap();
    task.await.unwrap();
    // The poll abandoned on stop still runs on the SQS side for up to its wait: a message
    // arriving then would be delivered to nobody and come back only after its visibility
    // timeout.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // With the full 20 s long poll: an event is handed over as soon as it is in the queue, and
    // shutdown does not wait for a poll in flight.
    let consumer = Arc::new(env.consumer(&arn, sink.clone(), ConsumerOptions::default()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let consumer = consumer.clone();
        async move { consumer.run(async { _ = stopped.await }).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.label_updated(&["prod/fast"]).await;
    let took = sink.wait_for("prod/fast", Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("run stops during a long poll")
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "current_thread")]
async fn throttling_and_a_deleted_queue_make_it_unhealthy_never_stop_it() {
    let env = Env::start();
    let (url, arn) = env.routed_queue("fragile").await;
    let sink = Arc::new(FakeSink::default());
    sink.set("prod/after-throttle", Outcome::Applied);
    sink.set("prod/after-recreate", Outcome::Applied);
    let consumer = Arc::new(env.consumer(&arn, sink.clone(), quick()));
    let mut health = consumer.health();
    env.proxy
        .inject(Fault::on("sqs", "ReceiveMessage", FaultKind::Throttle).times(3));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let consumer = consumer.clone();
        async move { consumer.run(async { _ = stopped.await }).await }
    });

    let h = health_becomes(&mut health, Duration::from_secs(10), "failing", |h| {
        matches!(h, Health::Failing(_))
    })
    .await;
    assert!(
        matches!(&h, Health::Failing(e) if e.starts_with("ReceiveMessage: ") && e.contains("Throttl")),
        "{h:?}"
    );
    health_becomes(&mut health, Duration::from_secs(10), "healthy", |h| {
        *h == Health::Healthy
    })
    .await;
    assert_eq!(env.proxy.faulted("sqs", "ReceiveMessage"), 3);
    env.label_updated(&["prod/after-throttle"]).await;
    sink.wait_for("prod/after-throttle", Duration::from_secs(5))
        .await;

    // The queue goes away: the condition says so, the consumer keeps trying.
    env.admin
        .delete_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    let h = health_becomes(&mut health, Duration::from_secs(10), "failing", |h| {
        matches!(h, Health::Failing(_))
    })
    .await;
    let Health::Failing(error) = &h else {
        unreachable!()
    };
    assert!(
        error.contains("QueueDoesNotExist") || error.contains("NonExistentQueue"),
        "{error}"
    );
    let errors = consumer.stats().snapshot().errors;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(consumer.stats().snapshot().errors > errors, "still trying");
    assert!(!task.is_finished());

    // Created again (same name, same rule target): the ARN is resolved anew and events flow.
    let resolved = env.proxy.count("sqs", "GetQueueUrl");
    env.admin
        .create_queue()
        .queue_name("fragile")
        .send()
        .await
        .unwrap();
    health_becomes(&mut health, Duration::from_secs(10), "healthy", |h| {
        *h == Health::Healthy
    })
    .await;
    assert!(env.proxy.count("sqs", "GetQueueUrl") > resolved);
    env.label_updated(&["prod/after-recreate"]).await;
    sink.wait_for("prod/after-recreate", Duration::from_secs(5))
        .await;
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_deletion_keeps_it_unhealthy_until_a_deletion_succeeds() {
    let env = Env::start();
    let (url, _) = env.routed_queue("undeletable").await;
    let sink = Arc::new(FakeSink::default());
    sink.set("prod/db", Outcome::Applied);
    let consumer = Arc::new(env.consumer(&url, sink.clone(), quick()));
    let mut health = consumer.health();
    env.proxy.inject(Fault::on(
        "sqs",
        "DeleteMessageBatch",
        FaultKind::AccessDenied,
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let consumer = consumer.clone();
        async move { consumer.run(async { _ = stopped.await }).await }
    });
    env.label_updated(&["prod/db"]).await;
    let h = health_becomes(&mut health, Duration::from_secs(10), "failing", |h| {
        matches!(h, Health::Failing(_))
    })
    .await;
    assert!(
        matches!(&h, Health::Failing(e) if e.starts_with("DeleteMessageBatch: AccessDenied")),
        "{h:?}"
    );
    // Empty polls while the message is hidden do not make it look healthy; the message comes
    // back and is handled again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(*health.borrow(), h);
    assert!(sink.names_seen().len() >= 2, "{:?}", sink.calls());

    env.proxy.clear_faults();
    health_becomes(&mut health, Duration::from_secs(10), "healthy", |h| {
        *h == Health::Healthy
    })
    .await;
    assert_eq!(env.depth(&url).await, (0, 0));
    stop.send(()).unwrap();
    task.await.unwrap();
}
