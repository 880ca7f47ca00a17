//! Leader election: two replicas against one API server, hand-over on SIGKILL, release on
//! SIGTERM, exit on a lost Lease; /readyz and /metrics.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use kube_test_server::Fault;
use serde_json::json;

use futures::StreamExt;

use crate::harness::{data_str, http_get, Env, Operator};

const ELECTION: [&str; 5] = [
    "--leader-election",
    "--leader-election-namespace",
    "default",
    "--lease-duration",
    "2s",
];

/// Polls `check` until Some; on timeout panics with `what` and every operator's log tail.
async fn wait_for<T, F, Fut>(ops: &[&Operator], what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if std::time::Instant::now() > deadline {
            let mut logs = String::new();
            for op in ops {
                let log = op.log();
                let lines: Vec<_> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                logs.push_str(&format!("\n--- {} log tail ---\n{tail}", op.name));
            }
            panic!("timed out waiting for {what}{logs}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const WAIT: Duration = Duration::from_secs(30);

async fn lease(env: &Env) -> Option<LeaseSpec> {
    Api::<Lease>::namespaced(env.client.clone(), "default")
        .get_opt("arnsync")
        .await
        .ok()??
        .spec
}

async fn holder(env: &Env) -> Option<String> {
    lease(env).await?.holder_identity.filter(|h| !h.is_empty())
}

/// Waits until one of `a`, `b` holds the Lease; returns (leader, standby).
async fn elected(env: &Env, a: Operator, b: Operator) -> (Operator, Operator) {
    let h = wait_for(&[&a, &b], "a leader", WAIT, || holder(env)).await;
    assert!(h == a.name || h == b.name, "unexpected holder {h}");
    if h == a.name {
        (a, b)
    } else {
        (b, a)
    }
}

fn reconciled(op: &Operator, es: &str) -> bool {
    op.log()
        .lines()
        .any(|l| l.contains("reconciled") && l.contains(&format!("ExternalSecret {es}")))
}

async fn metrics(op: &Operator) -> Option<String> {
    let (code, body) = http_get(op.metrics_addr()?, "/metrics").await?;
    (code == 200).then_some(body)
}

async fn readyz(op: &Operator) -> Option<(u16, String)> {
    http_get(op.metrics_addr()?, "/readyz").await
}

async fn external_secret(env: &Env, name: &str, key: &str) {
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": "app"},
        "spec": {
            "secretStoreRef": {"name": "aws"},
            "refreshInterval": "1h",
            "data": [{"secretKey": "value", "remoteRef": {"key": key}}]
        }
    }))
    .await;
}

async fn synced(env: &Env, ops: &[&Operator], name: &str, value: &str) -> String {
    wait_for(ops, &format!("Secret app/{name}"), WAIT, || async {
        let s = env.secret("app", name).await?;
        (data_str(&s, "value") == value).then(|| s.resource_version().unwrap_or_default())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_the_leader_hands_over_without_rewrites_or_restarts() {
    let env = Env::start_without_operator().await;
    env.namespace("app", json!({})).await;
    env.store("app").await;
    env.put_secret("leader/one", "one-Golf-7").await;
    env.put_secret("leader/two", "two-Hotel-8").await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), "app");
    let web: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "annotations": {"arnsync.io/restart-on-rotation": "true"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "web", "image": "busybox",
                    "envFrom": [{"secretRef": {"name": "one"}}]
                }]}
            }
        }
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &web)
        .await
        .unwrap();

    let a = env.spawn_operator("arnsync-a", &ELECTION);
    let b = env.spawn_operator("arnsync-b", &ELECTION);
    let (leader, standby) = elected(&env, a, b).await;
    let ops = [&leader, &standby];
    external_secret(&env, "one", "leader/one").await;
    let one_rv = synced(&env, &ops, "one", "one-Golf-7").await;
    wait_for(&ops, "ExternalSecret app/one reconciled", WAIT, || async {
        reconciled(&leader, "app/one").then_some(())
    })
    .await;

    // The standby stands by healthily: ready, not leading, not reconciling.
    let (code, body) = wait_for(&ops, "standby /readyz", WAIT, || readyz(&standby)).await;
    assert_eq!((code, body.as_str()), (200, "standby"));
    let m = wait_for(&ops, "standby /metrics", WAIT, || metrics(&standby)).await;
    assert!(m.contains("\narnsync_leader 0\n"), "{m}");
    let m = wait_for(&ops, "leader /metrics", WAIT, || metrics(&leader)).await;
    assert!(m.contains("\narnsync_leader 1\n"), "{m}");
    assert!(
        !standby.log().contains("reconciled"),
        "the standby reconciled:\n{}",
        standby.log()
    );

    let template = |d: Deployment| serde_json::to_value(d.spec.unwrap().template).unwrap();
    let template_before = template(deployments.get("web").await.unwrap());
    let patches_before = env.kube.request_count("patch", "secrets");
    let transitions = lease(&env).await.unwrap().lease_transitions.unwrap_or(0);

    leader.signal("KILL");
    wait_for(&ops, "the killed leader to exit", WAIT, || {
        std::future::ready(leader.exited())
    })
    .await;
    let now_leading = wait_for(
        &[&leader, &standby],
        "the standby to take the Lease",
        WAIT,
        || async { holder(&env).await.filter(|h| *h == standby.name) },
    )
    .await;
    assert_eq!(now_leading, standby.name);
    assert_eq!(
        lease(&env).await.unwrap().lease_transitions,
        Some(transitions + 1)
    );

    external_secret(&env, "two", "leader/two").await;
    let ops = [&leader, &standby];
    synced(&env, &ops, "two", "two-Hotel-8").await;
    // The new leader has looked at `one` too, and left it alone.
    wait_for(
        &ops,
        "the new leader to reconcile app/one",
        WAIT,
        || async { reconciled(&standby, "app/one").then_some(()) },
    )
    .await;
    let one = env.secret("app", "one").await.unwrap();
    assert_eq!(
        one.resource_version().as_deref(),
        Some(one_rv.as_str()),
        "Secret one was rewritten by the new leader"
    );
    assert_eq!(
        env.kube.request_count("patch", "secrets"),
        patches_before + 1,
        "only Secret two is written across the hand-over"
    );
    assert_eq!(
        template(deployments.get("web").await.unwrap()),
        template_before,
        "the hand-over rolled the Deployment"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_releases_the_lease_and_the_standby_takes_over() {
    let env = Env::start_without_operator().await;
    let a = env.spawn_operator("arnsync-a", &ELECTION);
    let b = env.spawn_operator("arnsync-b", &ELECTION);
    let (leader, standby) = elected(&env, a, b).await;
    let transitions = lease(&env).await.unwrap().lease_transitions.unwrap_or(0);

    // Every version of the Lease from now on.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<LeaseSpec>::new()));
    let recorder = {
        let seen = seen.clone();
        let api: Api<Lease> = Api::namespaced(env.client.clone(), "default");
        tokio::spawn(async move {
            let mut stream = watcher(
                api,
                watcher::Config::default().fields("metadata.name=arnsync"),
            )
            .applied_objects()
            .boxed();
            while let Some(Ok(l)) = stream.next().await {
                seen.lock().unwrap().push(l.spec.unwrap_or_default());
            }
        })
    };
    wait_for(&[&leader, &standby], "the Lease watch", WAIT, || async {
        (!seen.lock().unwrap().is_empty()).then_some(())
    })
    .await;

    leader.signal("TERM");
    let status = wait_for(&[&leader, &standby], "the leader to exit", WAIT, || {
        std::future::ready(leader.exited())
    })
    .await;
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    assert!(
        leader.log().contains("released the Lease"),
        "{}",
        leader.log()
    );
    wait_for(
        &[&leader, &standby],
        "the standby to take the Lease",
        WAIT,
        || async { holder(&env).await.filter(|h| *h == standby.name) },
    )
    .await;
    let (code, body) = wait_for(
        &[&leader, &standby],
        "the new leader ready",
        WAIT,
        || async { readyz(&standby).await.filter(|(_, b)| b == "ready") },
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "ready"));
    recorder.abort();

    let seen = seen.lock().unwrap().clone();
    let release = seen
        .iter()
        .position(|s| s.holder_identity.is_none() && s.lease_duration_seconds == Some(1));
    let taken = seen
        .iter()
        .position(|s| s.holder_identity.as_deref() == Some(standby.name.as_str()));
    assert!(
        matches!((release, taken), (Some(r), Some(t)) if r < t),
        "expected a release, then the standby's claim: {seen:?}"
    );
    assert_eq!(
        seen.last().unwrap().lease_transitions,
        Some(transitions + 1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_that_cannot_renew_stops_and_exits_non_zero() {
    let env = Env::start_without_operator().await;
    let a = env.spawn_operator("arnsync-a", &ELECTION);
    let b = env.spawn_operator("arnsync-b", &ELECTION);
    let (leader, standby) = elected(&env, a, b).await;

    // A partition of Lease writes: nobody can renew or take the Lease.
    env.kube.inject(
        Fault::default()
            .verb("update")
            .resource("leases")
            .status(503),
    );
    let status = wait_for(&[&leader, &standby], "the leader to give up", WAIT, || {
        std::future::ready(leader.exited())
    })
    .await;
    assert!(!status.success(), "a lost Lease exits non-zero: {status:?}");
    assert!(leader.log().contains("lost leadership"), "{}", leader.log());
    assert_eq!(holder(&env).await.as_deref(), Some(leader.name.as_str()));

    env.kube.clear_faults();
    wait_for(
        &[&leader, &standby],
        "the standby to take the Lease",
        WAIT,
        || async { holder(&env).await.filter(|h| *h == standby.name) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_waits_for_the_cache_and_metrics_expose_every_family() {
    let env = Env::start_without_operator().await;
    env.kube.inject(
        Fault::default()
            .verb("list")
            .resource("externalsecrets")
            .status(503),
    );
    let op = env.spawn_operator("arnsync-solo", &ELECTION);
    let ops = [&op];
    let (code, _) = wait_for(&ops, "/healthz", WAIT, || async {
        http_get(op.metrics_addr()?, "/healthz").await
    })
    .await;
    assert_eq!(code, 200);
    wait_for(&ops, "the Lease", WAIT, || async {
        holder(&env).await.filter(|h| *h == op.name)
    })
    .await;
    wait_for(&ops, "a failed list of ExternalSecrets", WAIT, || async {
        (env.kube.request_count("list", "externalsecrets") > 0).then_some(())
    })
    .await;
    let (code, body) = readyz(&op).await.unwrap();
    assert_eq!(
        (code, body.as_str()),
        (503, "starting"),
        "leading, but the cache has not synced"
    );

    env.kube.clear_faults();
    wait_for(&ops, "/readyz 200", WAIT, || async {
        readyz(&op).await.filter(|(c, b)| *c == 200 && b == "ready")
    })
    .await;

    env.namespace("app", json!({})).await;
    env.store("app").await;
    env.put_secret("leader/metrics", "metrics-India-9").await;
    external_secret(&env, "m", "leader/metrics").await;
    synced(&env, &ops, "m", "metrics-India-9").await;
    let text = wait_for(&ops, "the ExternalSecret gauge", WAIT, || async {
        metrics(&op)
            .await
            .filter(|m| m.contains("arnsync_external_secrets{ready=\"True\"} 1\n"))
    })
    .await;
    for family in [
        "arnsync_aws_requests_total{service=\"secretsmanager\",operation=\"GetSecretValue\",outcome=\"success\"}",
        "arnsync_reconciles_total{kind=\"ExternalSecret\",reason=\"SecretSynced\"}",
        "arnsync_reconcile_duration_seconds_bucket{",
        "arnsync_reconcile_duration_seconds_count{kind=\"ExternalSecret\",reason=\"SecretSynced\"}",
        "\narnsync_leader 1\n",
        // Families without labels print from the start; a labelled family (such as
        // arnsync_rotations_detected) appears with its first sample.
        "arnsync_rotation_to_secret_seconds_count 0\n",
        "# EOF",
    ] {
        assert!(text.contains(family), "missing {family:?} in\n{text}");
    }
    assert!(
        !text.contains("metrics-India-9") && !text.contains("leader/metrics"),
        "no values or keys in metrics"
    );
}
