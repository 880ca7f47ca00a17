//! The AWS cost estimate: `arnsync_aws_estimated_monthly_cost_dollars` follows the calls the
//! operator counted, and the store shows it in status and in `kubectl get`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{http_get, Env, Operator};
use arnsync::api::SecretStore;

/// Sum of the samples of `family` whose line contains every one of `labels`.
fn sum(metrics: &str, family: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(op: &Operator) -> Option<String> {
    let (code, body) = http_get(op.metrics_addr()?, "/metrics").await?;
    (code == 200).then_some(body)
}

/// `kubectl get secretstores -n NS`: the Table the API server prints, as (columns, first row).
async fn printed(env: &Env, ns: &str) -> Option<(Vec<String>, Vec<serde_json::Value>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = env.kube.addr();
    let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
    let path = format!("/apis/arnsync.io/v1alpha1/namespaces/{ns}/secretstores");
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json;as=Table;g=meta.k8s.io;v=v1\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await.ok()?;
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await.ok()?;
    let table: serde_json::Value = serde_json::from_str(raw.split_once("\r\n\r\n")?.1).ok()?;
    let columns = table["columnDefinitions"]
        .as_array()?
        .iter()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    let row = table["rows"].get(0)?["cells"].as_array()?.clone();
    Some((columns, row))
}

fn dollars(s: &str) -> f64 {
    s.strip_prefix('$')
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("{s:?} is not $N.NN"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cost_estimate_follows_the_counted_calls_and_the_store_shows_it() {
    let env = Env::start_without_operator().await;
    let started = Instant::now();
    let op = env.spawn_operator(
        "cost",
        &[
            "--cost-status-interval",
            "1s",
            "--rotation-check-interval",
            "1h",
        ],
    );
    env.namespace("cost", json!({})).await;
    env.put_secret("prod/cost", "val-Cost-1").await;
    let mut spec = env.store_spec("SecretsManager", json!({}));
    // Checked every second, so that status follows the estimate at once.
    spec["refreshInterval"] = json!(1);
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "aws", "namespace": "cost"}, "spec": spec
    }))
    .await;
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": "app", "namespace": "cost"},
        "spec": {"secretStoreRef": {"name": "aws"}, "refreshInterval": "1h",
                 "data": [{"secretKey": "value", "remoteRef": {"key": "prod/cost"}}]}
    }))
    .await;
    env.secret_value("cost", "app", "value", b"val-Cost-1")
        .await;

    // Once the Secrets Manager calls stop (the sync and the first rotation check are done),
    // the gauge is those calls over the time observed (at least a minute) x 730 h x $0.05 per
    // 10,000. The gauge is published every 5 seconds: two scrapes 6 seconds apart with the same
    // count hold an estimate made from that count.
    let stores = kube::Api::<SecretStore>::namespaced(env.client.clone(), "cost");
    let identity = env
        .eventually(
            "identityHash in status",
            Duration::from_secs(30),
            || async { stores.get("aws").await.ok()?.status?.identity_hash },
        )
        .await;
    let label = format!("identity=\"{identity}\"");
    let (calls, gauge, elapsed) = env
        .eventually(
            "a steady count and its estimate",
            Duration::from_secs(60),
            || async {
                let before = scrape(&op).await?;
                tokio::time::sleep(Duration::from_secs(6)).await;
                let after = scrape(&op).await?;
                let elapsed = started.elapsed().as_secs_f64();
                let sm = ["service=\"secretsmanager\""];
                let calls = sum(&after, "arnsync_aws_requests_total", &sm);
                let gauge = sum(
                    &after,
                    "arnsync_aws_estimated_monthly_cost_dollars",
                    &[sm[0], &label],
                );
                (calls > 0.0
                    && calls == sum(&before, "arnsync_aws_requests_total", &sm)
                    && gauge > 0.0)
                    .then_some((calls, gauge, elapsed))
            },
        )
        .await;
    let proxied: u64 = env
        .proxy
        .counts()
        .iter()
        .filter(|((service, _), _)| service == "secretsmanager")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(calls, proxied as f64, "the calls the proxy saw");
    let window = calls * 3600.0 * 730.0 * 0.05 / 10_000.0 / gauge;
    assert!(
        window >= 59.9 && window <= elapsed.max(60.0) + 0.1,
        "{calls} calls and ${gauge}/month imply a window of {window:.1} s, after {elapsed:.1} s"
    );
    let metrics = scrape(&op).await.unwrap();
    for free in ["sts", "ssm", "sqs"] {
        let service = format!("service=\"{free}\"");
        let g = sum(
            &metrics,
            "arnsync_aws_estimated_monthly_cost_dollars",
            &[&service, &label],
        );
        assert_eq!(g, 0.0, "{free} is free by default");
    }
    assert!(
        sum(&metrics, "arnsync_aws_requests_total", &["service=\"sts\""]) > 0.0,
        "the store checks call STS"
    );

    // The store shows the identity's estimate, two significant digits.
    let shown = env
        .eventually("a cost in status", Duration::from_secs(30), || async {
            let cost = stores
                .get("aws")
                .await
                .ok()?
                .status?
                .estimated_monthly_cost?;
            (dollars(&cost) > 0.0).then_some(cost)
        })
        .await;
    let total = sum(
        &scrape(&op).await.unwrap(),
        "arnsync_aws_estimated_monthly_cost_dollars",
        &[&label],
    );
    assert!(
        dollars(&shown) > total / 2.0 && dollars(&shown) < total * 2.0,
        "status {shown} against the gauges' ${total}"
    );
    // The estimate holds still while nothing is called (the window is still the one-minute
    // minimum): the store's checks write no status.
    let written = stores.get("aws").await.unwrap().metadata.resource_version;
    let checked = env.proxy.count("sts", "GetCallerIdentity");
    env.eventually(
        "three more store checks",
        Duration::from_secs(30),
        || async { (env.proxy.count("sts", "GetCallerIdentity") >= checked + 3).then_some(()) },
    )
    .await;
    if started.elapsed() < Duration::from_secs(55) {
        assert_eq!(
            stores.get("aws").await.unwrap().metadata.resource_version,
            written,
            "an unchanged estimate writes no status"
        );
    }
    let (columns, row) = env
        .eventually("the printed table", Duration::from_secs(10), || async {
            printed(&env, "cost").await
        })
        .await;
    let at = columns
        .iter()
        .position(|c| c == "Cost/Month")
        .unwrap_or_else(|| panic!("no Cost/Month column in {columns:?}"));
    let cell = row[at].as_str().expect("a string cell");
    assert!(dollars(cell) > 0.0, "{cell}");
    assert!(!metrics.contains("val-Cost-1"));
}
