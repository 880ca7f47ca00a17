//! Batched first reads and pacing against moto behind the call-counting fault proxy: N
//! concurrent reads cost ceil(N/20) BatchGetSecretValue and ceil(P/10) GetParameters, each
//! caller gets its own value or error, a denied BatchGetSecretValue falls back to single reads
//! (and says so), and every call goes through the pacer.

use std::sync::Arc;
use std::time::Duration;

use aws_fault_proxy::moto::Moto;
use aws_fault_proxy::{Fault, FaultKind, FaultProxy};
use aws_sdk_ssm::types::ParameterType;

use super::clients::AwsClients;
use super::moto_tests::static_identity;
use super::*;
use crate::source::*;

/// Options for a fresh source: a window wide enough that every read a test starts at once
/// lands in one batch, and no read sharing, so each step reads AWS again.
fn options() -> SourceOptions {
    SourceOptions {
        cache_ttl: Duration::ZERO,
        tracked_ttl: Duration::ZERO,
        read_batch_window: Duration::from_millis(50),
        ..SourceOptions::default()
    }
}

fn current(key: &str) -> Fetch {
    Fetch::secret(key, Selector::Stage("AWSCURRENT".into()))
}

struct Setup {
    _moto: Moto,
    proxy: FaultProxy,
    admin: AwsClients,
}

impl Setup {
    fn start() -> Setup {
        let moto = Moto::start().expect("moto (run tests/setup.sh)");
        let proxy = FaultProxy::start(&moto.url()).expect("fault proxy");
        let admin = AwsClients::new(
            &static_identity(&moto.url()),
            Metrics::default(),
            &SourceOptions::default(),
            http_client(),
            Arc::new(crate::source::token::NoTokenSource),
        );
        Setup {
            _moto: moto,
            proxy,
            admin,
        }
    }

    fn source(&self, options: SourceOptions) -> Arc<AwsSource> {
        Sources::new(Metrics::default(), options).source(&static_identity(&self.proxy.url()))
    }

    async fn secret(&self, name: &str, value: &str) -> String {
        self.admin
            .secrets_manager
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap()
    }

    async fn parameter(&self, name: &str, value: &str) {
        self.admin
            .ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }

    /// Value reads counted by the proxy: (BatchGetSecretValue, GetSecretValue, decrypted
    /// GetParameters, GetParameter).
    fn reads(&self) -> (u64, u64, u64, u64) {
        let p = &self.proxy;
        (
            p.count("secretsmanager", "BatchGetSecretValue"),
            p.count("secretsmanager", "GetSecretValue"),
            p.count_decrypted("ssm", "GetParameters"),
            p.count("ssm", "GetParameter"),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_reads_against_moto() {
    let env = Setup::start();
    for i in 0..45 {
        env.secret(&format!("app/s{i:02}"), &format!("secret {i}"))
            .await;
    }
    for i in 0..25 {
        env.parameter(&format!("/app/p{i:02}"), &format!("param {i}"))
            .await;
    }
    // A second version of two parameters, read at version 1 and at a label.
    for i in [23, 24] {
        env.parameter(&format!("/app/p{i:02}"), "newer").await;
    }
    env.admin
        .ssm
        .label_parameter_version()
        .name("/app/p24")
        .parameter_version(1)
        .labels("stable")
        .send()
        .await
        .unwrap();

    coalescing(&env).await;
    stages(&env).await;
    denied_everywhere_is_not_a_batch_refusal(&env).await;
    denied_batches_fall_back(&env).await;
    pacing(&env).await;
}

/// 47 secret reads (2 missing) and 27 parameter reads (2 missing) at once.
async fn coalescing(env: &Setup) {
    let source = env.source(options());
    env.proxy.reset_counts();
    let mut secrets: Vec<Fetch> = (0..45).map(|i| current(&format!("app/s{i:02}"))).collect();
    secrets.push(current("app/missing-1"));
    secrets.push(current("app/missing-2"));
    let mut params: Vec<Fetch> = (0..23)
        .map(|i| Fetch::parameter(&format!("/app/p{i:02}"), Selector::Latest))
        .collect();
    params.push(Fetch::parameter(
        "/app/p23",
        Selector::ParameterVersion("1".into()),
    ));
    params.push(Fetch::parameter(
        "/app/p24",
        Selector::ParameterVersion("stable".into()),
    ));
    params.push(Fetch::parameter("/app/missing-1", Selector::Latest));
    params.push(Fetch::parameter(
        "/app/p00",
        Selector::ParameterVersion("9".into()),
    ));
    let all: Vec<&Fetch> = secrets.iter().chain(&params).collect();
    let answers = futures::future::join_all(all.iter().map(|f| source.get(f))).await;

    for (f, a) in all.iter().zip(&answers) {
        let missing =
            f.key.contains("missing") || f.selector == Selector::ParameterVersion("9".into());
        match a {
            Ok(v) => {
                assert!(!missing, "{f:?} read");
                // p23 at version 1 and p24 at its label are their first values too.
                let k = f.key.as_str();
                let want = match k.strip_prefix("app/s") {
                    Some(n) => format!("secret {}", n.parse::<u32>().unwrap()),
                    None => format!("param {}", k[6..].parse::<u32>().unwrap()),
                };
                assert_eq!(String::from_utf8_lossy(&v.data.0), want, "{f:?}");
            }
            Err(e) => {
                assert!(missing, "{f:?}: {e}");
                assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
                assert_eq!(e.key, f.key, "the error goes to the read that asked");
            }
        }
    }
    let err = |key: &str| {
        all.iter()
            .zip(&answers)
            .find(|(f, _)| f.key == key)
            .map(|(_, a)| a.clone().unwrap_err())
            .unwrap()
    };
    // The same error a single read gives.
    let e = err("app/missing-1");
    assert_eq!(
        (e.operation, e.code.as_str()),
        ("GetSecretValue", "ResourceNotFoundException")
    );
    let e = err("/app/missing-1");
    assert_eq!(
        (e.operation, e.code.as_str()),
        ("GetParameter", "ParameterNotFound")
    );
    let nine = answers.last().unwrap().clone().unwrap_err();
    assert_eq!(nine.code, "ParameterVersionNotFound");

    // ceil(47/20) batches, no single secret read; ceil(27/10) GetParameters, plus one
    // GetParameter for each name GetParameters listed as invalid (to report its exact error).
    assert_eq!(env.reads(), (3, 0, 3, 2), "{:?}", env.proxy.counts());
}

/// BatchGetSecretValue reads AWSCURRENT; moto answers with the version current before an
/// UpdateSecretVersionStage, which is then read again by stage. Other stages are read alone.
async fn stages(env: &Setup) {
    let v1 = env.secret("app/staged", "first").await;
    let v2 = env
        .admin
        .secrets_manager
        .put_secret_value()
        .secret_id("app/staged")
        .secret_string("second")
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    env.admin
        .secrets_manager
        .update_secret_version_stage()
        .secret_id("app/staged")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&v1)
        .remove_from_version_id(&v2)
        .send()
        .await
        .unwrap();
    let source = env.source(options());
    env.proxy.reset_counts();
    let previous = Fetch::secret("app/staged", Selector::Stage("AWSPREVIOUS".into()));
    let (s0, s1, st) = (
        current("app/s00"),
        current("app/s01"),
        current("app/staged"),
    );
    let (a, b, staged, prev) = futures::join!(
        source.get(&s0),
        source.get(&s1),
        source.get(&st),
        source.get(&previous)
    );
    assert_eq!(a.unwrap().data.0, b"secret 0");
    assert_eq!(b.unwrap().data.0, b"secret 1");
    let staged = staged.unwrap();
    assert_eq!(
        (staged.data.0.as_slice(), staged.version.as_str()),
        (&b"first"[..], v1.as_str())
    );
    assert_eq!(prev.unwrap().version, v2);
    // One batch; AWSPREVIOUS alone, and the stale batch answer of app/staged again by stage.
    assert_eq!(env.reads().0, 1);
    assert_eq!(env.reads().1, 2);
}

async fn denied_everywhere_is_not_a_batch_refusal(env: &Setup) {
    let source = env.source(options());
    env.proxy.reset_counts();
    env.proxy.inject(Fault::on(
        "secretsmanager",
        "BatchGetSecretValue",
        FaultKind::AccessDenied,
    ));
    env.proxy.inject(Fault::on(
        "secretsmanager",
        "GetSecretValue",
        FaultKind::AccessDenied,
    ));
    let (s0, s1) = (current("app/s00"), current("app/s01"));
    let (a, b) = futures::join!(source.get(&s0), source.get(&s1));
    let (a, b) = (a.unwrap_err(), b.unwrap_err());
    assert_eq!(
        (a.kind, a.key.as_str()),
        (ErrorKind::AccessDenied, "app/s00")
    );
    assert_eq!(
        (b.kind, b.key.as_str()),
        (ErrorKind::AccessDenied, "app/s01")
    );
    assert_eq!(
        source.batch_fallback(),
        None,
        "the identity is denied, not the batch"
    );
    env.proxy.clear_faults();
}

async fn denied_batches_fall_back(env: &Setup) {
    let source = env.source(options());
    env.proxy.reset_counts();
    env.proxy.inject(Fault::on(
        "secretsmanager",
        "BatchGetSecretValue",
        FaultKind::AccessDenied,
    ));
    let keys: Vec<Fetch> = (0..10).map(|i| current(&format!("app/s{i:02}"))).collect();
    let values = futures::future::join_all(keys.iter().map(|f| source.get(f))).await;
    assert!(values.iter().all(Result::is_ok), "{values:?}");
    assert_eq!(env.reads(), (1, 10, 0, 0));
    let why = source.batch_fallback().expect("the fallback is reported");
    assert!(
        why.contains("secretsmanager:BatchGetSecretValue is denied")
            && why.contains("one secret per call"),
        "{why}"
    );
    // From then on, single reads only: BatchGetSecretValue is not asked again.
    let more: Vec<Fetch> = (10..20).map(|i| current(&format!("app/s{i:02}"))).collect();
    let values = futures::future::join_all(more.iter().map(|f| source.get(f))).await;
    assert!(values.iter().all(Result::is_ok));
    assert_eq!(env.reads(), (1, 20, 0, 0));
    env.proxy.clear_faults();
}

/// Every call passes the pacer of its quota; past its burst a caller waits its turn.
async fn pacing(env: &Setup) {
    let source = env.source(SourceOptions {
        rates: Rates::unlimited().with(Quota::Sts, 2.0),
        ..options()
    });
    env.proxy.reset_counts();
    let fetches: Vec<Fetch> = (0..25)
        .map(|i| current(&format!("app/s{i:02}")))
        .chain((0..12).map(|i| Fetch::parameter(&format!("/app/p{i:02}"), Selector::Latest)))
        .chain([Fetch::secret(
            "app/staged",
            Selector::Stage("AWSPREVIOUS".into()),
        )])
        .collect();
    futures::future::join_all(fetches.iter().map(|f| source.get(f))).await;
    source
        .find(&Find::ParameterPath {
            path: "/app".into(),
            recursive: true,
        })
        .await
        .unwrap();
    source.list_secret_versions(None).await.unwrap();
    source.describe_secret_versions("app/s00").await.unwrap();
    source
        .parameter_versions(&["/app/p00".to_string()])
        .await
        .unwrap();
    let p = &env.proxy;
    let ssm = p.count("ssm", "GetParameter")
        + p.count("ssm", "GetParameters")
        + p.count("ssm", "GetParametersByPath");
    assert_eq!(source.paced(Quota::Ssm).0, ssm);
    assert_eq!(
        source.paced(Quota::SecretsManagerBatch).0,
        p.count("secretsmanager", "BatchGetSecretValue")
    );
    assert_eq!(
        source.paced(Quota::SecretsManager).0,
        p.count("secretsmanager", "GetSecretValue") + p.count("secretsmanager", "DescribeSecret")
    );
    assert_eq!(
        source.paced(Quota::SecretsManagerList).0,
        p.count("secretsmanager", "ListSecrets")
    );

    // Five identity checks at 2 per second: two go at once, three wait their turn.
    let checks = (0..5).map(|_| source.caller_identity());
    for arn in futures::future::join_all(checks).await {
        assert!(arn.unwrap().starts_with("arn:aws:"));
    }
    assert_eq!(source.paced(Quota::Sts), (5, 3));
    assert_eq!(p.count("sts", "GetCallerIdentity"), 5);
}
