//! Replica-region failover against moto behind the fault proxy: with the primary's Secrets
//! Manager answering 503, batched reads, ARN keys, finds and version checks are served by the
//! replica region, still one batch per 20 values, with the primary's ARNs and VersionIds.

use std::time::Duration;

use aws_fault_proxy::moto::Moto;
use aws_fault_proxy::{Fault, FaultKind, FaultProxy};
use aws_sdk_secretsmanager::types::ReplicaRegionType;

use super::moto_tests::static_identity;
use super::*;
use crate::source::*;

const REPLICA: &str = "us-west-2";

fn current(key: &str) -> Fetch {
    Fetch::secret(key, Selector::Stage("AWSCURRENT".into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_the_primary_is_read_from_the_replica_in_batches() {
    let moto = Moto::start().expect("moto (run tests/setup.sh)");
    let proxy = FaultProxy::start(&moto.url()).expect("fault proxy");
    let admin = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_types::region::Region::new("us-east-1"))
            .endpoint_url(moto.url())
            .credentials_provider(aws_credential_types::Credentials::for_tests())
            .http_client(http_client())
            .build(),
    );
    let mut created = Vec::new();
    for i in 0..25 {
        let out = admin
            .create_secret()
            .name(format!("app/s{i:02}"))
            .secret_string(format!("secret {i}"))
            .add_replica_regions(ReplicaRegionType::builder().region(REPLICA).build())
            .send()
            .await
            .unwrap();
        created.push((out.arn.unwrap(), out.version_id.unwrap()));
    }
    let identity = Identity {
        failover_regions: vec![REPLICA.into()],
        ..static_identity(&proxy.url())
    };
    let source = Sources::new(
        Metrics::default(),
        SourceOptions {
            cache_ttl: Duration::ZERO,
            tracked_ttl: Duration::ZERO,
            read_batch_window: Duration::from_millis(100),
            max_attempts: 1,
            failover_retry: Duration::from_secs(600),
            ..SourceOptions::default()
        },
    )
    .source(&identity);
    assert_eq!(source.serving_region().as_deref(), Some("us-east-1"));
    proxy.inject(
        Fault::new(FaultKind::ServerError(503))
            .service("secretsmanager")
            .region("us-east-1"),
    );

    // 24 names and one full ARN of the primary region: two batches, both answered by the
    // replica, the ARN matched to its entry (no single read).
    let mut fetches: Vec<Fetch> = (0..24).map(|i| current(&format!("app/s{i:02}"))).collect();
    fetches.push(current(&created[24].0));
    let values = futures::future::join_all(fetches.iter().map(|f| source.get(f))).await;
    for (i, v) in values.into_iter().enumerate() {
        let v = v.unwrap_or_else(|e| panic!("{}: {e}", fetches[i].key));
        assert_eq!(v.data.0, format!("secret {i}").into_bytes());
        assert_eq!(v.version, created[i].1, "the replica keeps the VersionId");
    }
    assert_eq!(source.serving_region().as_deref(), Some(REPLICA));
    let replica_calls = |op: &str| proxy.count_in(REPLICA, "secretsmanager", op);
    assert_eq!(replica_calls("BatchGetSecretValue"), 2);
    assert_eq!(replica_calls("GetSecretValue"), 0);
    assert!(proxy.count_in("us-east-1", "secretsmanager", "BatchGetSecretValue") >= 1);

    // While the primary waits out its backoff, nothing more is sent to it.
    let primary_before = proxy.faulted("secretsmanager", "BatchGetSecretValue")
        + proxy.faulted("secretsmanager", "GetSecretValue");
    let lone = source.get(&current(&created[3].0)).await.unwrap();
    assert_eq!(lone.data.0, b"secret 3");
    assert_eq!(replica_calls("GetSecretValue"), 1);

    // Version checks and finds answer with the primary's ARNs.
    let listed = source.list_secret_versions(None).await.unwrap();
    let s00 = listed.iter().find(|s| s.name == "app/s00").unwrap();
    assert_eq!(s00.arn, created[0].0);
    assert_eq!(s00.stages["AWSCURRENT"], created[0].1);
    let described = source
        .describe_secret_versions(&created[1].0)
        .await
        .unwrap();
    assert_eq!(described.arn, created[1].0);
    assert_eq!(described.stages["AWSCURRENT"], created[1].1);
    let found = source
        .find(&Find::Secrets {
            name_regexp: Some("^app/s0".into()),
            tags: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 10);
    assert_eq!(
        proxy.faulted("secretsmanager", "BatchGetSecretValue")
            + proxy.faulted("secretsmanager", "GetSecretValue"),
        primary_before
    );
    assert_eq!(
        proxy.count_in("us-east-1", "secretsmanager", "ListSecrets"),
        0
    );
    assert_eq!(
        proxy.count_in("us-east-1", "secretsmanager", "DescribeSecret"),
        0
    );
}
