use tokio::sync::mpsc;

use super::*;
use crate::metrics::Metrics;
use crate::source::memory::MemorySource;
use crate::source::{ErrorKind, Moved, Subscriber};

fn param(key: &str, selector: Selector) -> Fetch {
    Fetch::parameter(key, selector)
}

fn current(key: &str) -> Fetch {
    Fetch::secret(key, Selector::Stage("AWSCURRENT".into()))
}

fn poller(mem: &Arc<MemorySource>) -> (Poller, mpsc::UnboundedReceiver<Moved>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let tracker = Arc::new(Tracker::new(Metrics::default(), tx));
    (Poller::new(mem.clone(), tracker), rx)
}

#[test]
fn parameter_batches_hold_ten_and_never_the_same_parameter_twice() {
    let mut ws: Vec<Fetch> = (0..25)
        .map(|i| param(&format!("/p/{i}"), Selector::Latest))
        .collect();
    ws.push(param("/p/0", Selector::ParameterVersion("stable".into())));
    let batches = parameter_batches(&ws);
    assert_eq!(batches.len(), 3);
    assert!(batches.iter().all(|b| b.len() <= 10));
    for b in &batches {
        let mut names: Vec<&str> = b.iter().map(|w| w.key.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), b.len());
    }
}

#[tokio::test]
async fn a_rotation_is_read_once_then_wakes_its_subscribers() {
    let mem = Arc::new(MemorySource::new());
    let v1 = mem.put_secret_string("db", "one");
    let (p, mut rx) = poller(&mem);
    let (a, b) = (Subscriber::new("ns", "a"), Subscriber::new("ns", "b"));
    p.tracker()
        .track(&a, vec![(current("db"), Some(v1.clone()))]);
    p.tracker()
        .track(&b, vec![(current("db"), Some(v1.clone()))]);

    assert_eq!(p.check().await, 0, "nothing moved yet");
    let v2 = mem.put_secret_string("db", "two");
    assert_eq!(p.check().await, 1);
    let m = rx.try_recv().expect("a move");
    assert_eq!((m.from, m.to.as_str()), (Some(v1), v2.as_str()));
    assert_eq!(m.subscribers, [a, b]);
    // Without a CreatedDate, the move is dated by the check that last saw the old version.
    let moved = m.moved_at.expect("a move is dated");
    assert!(moved <= std::time::SystemTime::now() && moved >= m.from_confirmed.unwrap());
    assert!(
        rx.try_recv().is_err(),
        "one move for the key, not one per subscriber"
    );
    assert_eq!(
        mem.calls("GetSecretValue"),
        1,
        "the new version is read once"
    );
    assert_eq!(mem.calls("ListSecrets"), 2);
    assert_eq!(p.check().await, 0);
    assert_eq!(p.tracker().current(&current("db")), Some(v2));
}

#[tokio::test]
async fn parameters_move_by_latest_and_by_label_in_one_call() {
    let mem = Arc::new(MemorySource::new());
    let one = mem.put_parameter("/app/url", "a");
    mem.label_parameter("/app/url", one, "stable");
    let (p, mut rx) = poller(&mem);
    let stable = param("/app/url", Selector::ParameterVersion("stable".into()));
    p.tracker().track(
        &Subscriber::new("ns", "a"),
        vec![
            (param("/app/url", Selector::Latest), Some("1".into())),
            (stable.clone(), Some("1".into())),
        ],
    );
    let two = mem.put_parameter("/app/url", "b");
    assert_eq!(p.check().await, 1, "only latest moved");
    assert_eq!(rx.try_recv().unwrap().watch.selector, Selector::Latest);
    mem.label_parameter("/app/url", two, "stable");
    assert_eq!(p.check().await, 1);
    assert_eq!(rx.try_recv().unwrap().watch, stable);
    // Latest and the label are one parameter: never in the same GetParameters call.
    assert_eq!(mem.calls("GetParameters"), 4);
}

#[tokio::test]
async fn a_failed_listing_does_not_hide_parameter_moves() {
    let mem = Arc::new(MemorySource::new());
    let v1 = mem.put_secret_string("db", "one");
    mem.put_parameter("/p", "a");
    let (p, mut rx) = poller(&mem);
    p.tracker().track(
        &Subscriber::new("ns", "a"),
        vec![
            (current("db"), Some(v1)),
            (param("/p", Selector::Latest), Some("1".into())),
        ],
    );
    mem.fail(
        Service::SecretsManager,
        "(version check)",
        ErrorKind::Throttled,
        "ThrottlingException",
    );
    mem.put_secret_string("db", "two");
    mem.put_parameter("/p", "b");
    assert_eq!(p.check().await, 1);
    assert_eq!(rx.try_recv().unwrap().watch.key, "/p");
    mem.clear_failure(Service::SecretsManager, "(version check)");
    assert_eq!(p.check().await, 1);
    assert_eq!(rx.try_recv().unwrap().watch.key, "db");
}
