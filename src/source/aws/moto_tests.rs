//! The AWS source against a real moto server on loopback: wire protocols, pagination, stages,
//! versions, finds, errors, caller identity and AssumeRole through an STS endpoint override.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_ssm::types::ParameterType;

use super::clients::AwsClients;
use super::*;
use crate::api::Endpoints;
use crate::metrics::{AwsRequestLabels, Metrics};
use crate::source::*;

/// A moto server on a free loopback port, killed when dropped.
pub(super) struct Moto {
    child: Child,
    pub(super) url: String,
}

impl Moto {
    pub(super) fn start() -> Moto {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run `bash tests/setup.sh` to install moto",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// Static test keys against this moto.
    pub(super) fn identity(&self) -> Identity {
        static_identity(&self.url)
    }
}

/// Static test keys against the AWS emulator (or a proxy in front of it) at `url`.
pub(super) fn static_identity(url: &str) -> Identity {
    Identity {
        region: "us-east-1".into(),
        failover_regions: vec![],
        endpoints: Endpoints {
            secrets_manager: Some(url.into()),
            ssm: Some(url.into()),
            sts: Some(url.into()),
            sqs: Some(url.into()),
        },
        static_keys: Some(StaticKeys {
            access_key_id: "AKIAARNSYNCTEST".into(),
            secret_access_key: "test-secret-key".into(),
            session_token: None,
        }),
        web_identity: None,
        roles: vec![],
        retry: None,
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn attempts(metrics: &Metrics, service: &'static str, operation: &'static str) -> u64 {
    metrics
        .aws_requests
        .get_or_create(&AwsRequestLabels {
            service,
            operation,
            outcome: "success",
        })
        .get()
}

fn current() -> Selector {
    Selector::Stage("AWSCURRENT".into())
}

fn names(values: &[Value]) -> Vec<&str> {
    values.iter().map(|v| v.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_source_against_moto() {
    let moto = Moto::start();
    let admin = AwsClients::new(
        &moto.identity(),
        Metrics::default(),
        &SourceOptions::default(),
        http_client(),
        Arc::new(crate::source::token::NoTokenSource),
    );
    let metrics = Metrics::default();
    let sources = Sources::new(
        metrics.clone(),
        SourceOptions {
            cache_ttl: Duration::ZERO,
            ..SourceOptions::default()
        },
    );
    let source = sources.source(&moto.identity());
    assert!(Arc::ptr_eq(&source, &sources.source(&moto.identity())));

    secrets_manager_reads(&admin, &source).await;
    parameter_store_reads(&admin, &source, &metrics).await;
    finds(&admin, &source, &metrics).await;
    coalescing(&admin, &moto, &metrics).await;

    let arn = source.caller_identity().await.unwrap();
    assert!(arn.starts_with("arn:aws:"), "{arn}");

    assume_role(&moto, &metrics).await;
}

async fn secrets_manager_reads(admin: &AwsClients, source: &AwsSource) {
    let sm_admin = &admin.secrets_manager;
    let created = sm_admin
        .create_secret()
        .name("app/db")
        .secret_string(r#"{"user":"app","password":"one"}"#)
        .send()
        .await
        .unwrap();
    let v1 = created.version_id.unwrap();
    let got = source
        .get(&Fetch::secret("app/db", current()))
        .await
        .unwrap();
    assert_eq!(got.data.0, br#"{"user":"app","password":"one"}"#);
    assert!(!got.binary);
    assert_eq!(
        (got.name.as_str(), got.version.as_str()),
        ("app/db", v1.as_str())
    );

    let put = sm_admin
        .put_secret_value()
        .secret_id("app/db")
        .secret_string(r#"{"user":"app","password":"two"}"#)
        .send()
        .await
        .unwrap();
    let v2 = put.version_id.unwrap();
    let now = source
        .get(&Fetch::secret("app/db", current()))
        .await
        .unwrap();
    assert_eq!(
        (now.version.as_str(), now.data.0.as_slice()),
        (v2.as_str(), &br#"{"user":"app","password":"two"}"#[..])
    );
    let before = source
        .get(&Fetch::secret(
            "app/db",
            Selector::Stage("AWSPREVIOUS".into()),
        ))
        .await
        .unwrap();
    assert_eq!(before.version, v1);
    let pinned = source
        .get(&Fetch::secret("app/db", Selector::VersionId(v1.clone())))
        .await
        .unwrap();
    assert_eq!(pinned.data.0, br#"{"user":"app","password":"one"}"#);

    let by_arn = source
        .get(&Fetch::secret(created.arn.as_deref().unwrap(), current()))
        .await
        .unwrap();
    assert_eq!(by_arn.name, "app/db");

    let bytes = vec![0u8, 1, 2, 254, 255];
    sm_admin
        .create_secret()
        .name("app/cert")
        .secret_binary(Blob::new(bytes.clone()))
        .send()
        .await
        .unwrap();
    let binary = source
        .get(&Fetch::secret("app/cert", current()))
        .await
        .unwrap();
    assert!(binary.binary);
    assert_eq!(binary.data.0, bytes);

    for fetch in [
        Fetch::secret("app/nope", current()),
        Fetch::secret(
            "app/db",
            Selector::VersionId("00000000-0000-0000-0000-000000000000".into()),
        ),
    ] {
        let err = source.get(&fetch).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
        assert_eq!(err.code, "ResourceNotFoundException");
        assert_eq!(err.operation, "GetSecretValue");
        assert_eq!(err.key, fetch.key);
    }
}

async fn parameter_store_reads(admin: &AwsClients, source: &AwsSource, metrics: &Metrics) {
    let put = |name: &'static str, value: &'static str, kind: ParameterType| async move {
        admin
            .ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(kind)
            .overwrite(true)
            .send()
            .await
            .unwrap()
            .version
    };
    put("/app/plain", "v1", ParameterType::String).await;
    put("/app/plain", "v2", ParameterType::String).await;
    put("/app/list", "a,b,c", ParameterType::StringList).await;
    put("/app/secure", "s3cr3t", ParameterType::SecureString).await;
    admin
        .ssm
        .label_parameter_version()
        .name("/app/plain")
        .parameter_version(1)
        .labels("stable")
        .send()
        .await
        .unwrap();

    let latest = source
        .get(&Fetch::parameter("/app/plain", Selector::Latest))
        .await
        .unwrap();
    assert_eq!(
        (latest.data.0.as_slice(), latest.version.as_str()),
        (&b"v2"[..], "2")
    );
    assert_eq!(latest.name, "/app/plain");
    let one = Fetch::parameter("/app/plain", Selector::ParameterVersion("1".into()));
    assert_eq!(source.get(&one).await.unwrap().data.0, b"v1");
    let stable = Fetch::parameter("/app/plain", Selector::ParameterVersion("stable".into()));
    let stable = source.get(&stable).await.unwrap();
    assert_eq!(
        (stable.data.0.as_slice(), stable.version.as_str()),
        (&b"v1"[..], "1")
    );
    let arn = "arn:aws:ssm:us-east-1:123456789012:parameter/app/plain";
    let by_arn = Fetch::parameter(arn, Selector::ParameterVersion("1".into()));
    assert_eq!(source.get(&by_arn).await.unwrap().data.0, b"v1");
    let list = source
        .get(&Fetch::parameter("/app/list", Selector::Latest))
        .await
        .unwrap();
    assert_eq!(list.data.0, b"a,b,c");
    let secure = source
        .get(&Fetch::parameter("/app/secure", Selector::Latest))
        .await
        .unwrap();
    assert_eq!(secure.data.0, b"s3cr3t");

    let missing = source
        .get(&Fetch::parameter("/app/nope", Selector::Latest))
        .await
        .unwrap_err();
    assert_eq!(
        (missing.kind, missing.code.as_str()),
        (ErrorKind::NotFound, "ParameterNotFound")
    );
    let nine = Fetch::parameter("/app/plain", Selector::ParameterVersion("9".into()));
    let err = source.get(&nine).await.unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ErrorKind::NotFound, "ParameterVersionNotFound")
    );
    assert_eq!(err.key, "/app/plain");

    for i in 0..12 {
        let name = if i % 3 == 0 {
            format!("/many/deep/p{i:02}")
        } else {
            format!("/many/p{i:02}")
        };
        admin
            .ssm
            .put_parameter()
            .name(name)
            .value(i.to_string())
            .r#type(ParameterType::SecureString)
            .send()
            .await
            .unwrap();
    }
    let pages_before = attempts(metrics, "ssm", "GetParametersByPath");
    let all = source
        .find(&Find::ParameterPath {
            path: "/many".into(),
            recursive: true,
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 12);
    assert!(names(&all).windows(2).all(|w| w[0] < w[1]));
    assert_eq!(all[0].name, "/many/deep/p00");
    assert_eq!(all[0].data.0, b"0");
    assert!(attempts(metrics, "ssm", "GetParametersByPath") - pages_before >= 2);
    let flat = source
        .find(&Find::ParameterPath {
            path: "/many".into(),
            recursive: false,
        })
        .await
        .unwrap();
    assert_eq!(flat.len(), 8);
}

async fn finds(admin: &AwsClients, source: &AwsSource, metrics: &Metrics) {
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    for (name, tags) in [
        ("team/a", vec![tag("team", "pay"), tag("env", "prod")]),
        ("team/b", vec![tag("team", "ops")]),
        ("other/c", vec![tag("team", "pay"), tag("env", "prod")]),
        ("other/d", vec![tag("team", "pay"), tag("env", "dev")]),
    ] {
        admin
            .secrets_manager
            .create_secret()
            .name(name)
            .secret_string(format!("value of {name}"))
            .set_tags(Some(tags))
            .send()
            .await
            .unwrap();
    }
    let find = |re: Option<&str>, tags: &[(&str, &str)]| Find::Secrets {
        name_regexp: re.map(String::from),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    };
    let gets_before = attempts(metrics, "secretsmanager", "GetSecretValue");
    let by_name = source.find(&find(Some("^team/"), &[])).await.unwrap();
    assert_eq!(names(&by_name), ["team/a", "team/b"]);
    assert_eq!(by_name[0].data.0, b"value of team/a");
    let unanchored = source.find(&find(Some("/[ab]$"), &[])).await.unwrap();
    assert_eq!(names(&unanchored), ["team/a", "team/b"]);
    let by_tags = source
        .find(&find(None, &[("team", "pay"), ("env", "prod")]))
        .await
        .unwrap();
    assert_eq!(names(&by_tags), ["other/c", "team/a"]);
    let both = source
        .find(&find(Some("^other/"), &[("team", "pay")]))
        .await
        .unwrap();
    assert_eq!(names(&both), ["other/c", "other/d"]);
    assert!(attempts(metrics, "secretsmanager", "BatchGetSecretValue") >= 4);
    assert_eq!(
        attempts(metrics, "secretsmanager", "GetSecretValue"),
        gets_before
    );

    // iam-policy --resolve-kms: the keys of the secrets under a prefix, from the listing only.
    let keys = source
        .kms_keys(Service::SecretsManager, "team/", true)
        .await
        .unwrap();
    let arns: Vec<&str> = keys.iter().map(|k| k.arn.as_str()).collect();
    assert_eq!(arns.len(), 2, "{arns:?}");
    assert!(arns[0].contains(":secret:team/a-") && arns[1].contains(":secret:team/b-"));
    assert!(keys.iter().all(|k| k.key_id.is_none()), "AWS-managed keys");

    let bad = source
        .find(&find(Some("(unclosed"), &[]))
        .await
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::InvalidRequest);
}

async fn coalescing(admin: &AwsClients, moto: &Moto, metrics: &Metrics) {
    admin
        .secrets_manager
        .create_secret()
        .name("shared/key")
        .secret_string("shared")
        .send()
        .await
        .unwrap();
    // A separate registry with a read window, as the operator runs.
    let sources = Sources::new(metrics.clone(), SourceOptions::default());
    let source = sources.source(&moto.identity());
    let before = attempts(metrics, "secretsmanager", "GetSecretValue");
    let fetch = Fetch::secret("shared/key", current());
    let reads = (0..50).map(|_| source.get(&fetch));
    for value in futures::future::join_all(reads).await {
        assert_eq!(value.unwrap().data.0, b"shared");
    }
    assert_eq!(
        attempts(metrics, "secretsmanager", "GetSecretValue") - before,
        1
    );
    source.get_fresh(&fetch).await.unwrap();
    assert_eq!(
        attempts(metrics, "secretsmanager", "GetSecretValue") - before,
        2
    );
}

async fn assume_role(moto: &Moto, metrics: &Metrics) {
    let mut identity = moto.identity();
    identity.roles = vec![AssumeRole {
        arn: "arn:aws:iam::123456789012:role/reader".into(),
        external_id: Some("ext-123".into()),
        session_name: None,
        session_tags: vec![SessionTag {
            key: "team".into(),
            value: "pay".into(),
        }],
        transitive_tag_keys: vec!["team".into()],
    }];
    let sources = Sources::new(metrics.clone(), SourceOptions::default());
    let source = sources.source(&identity);
    let before = attempts(metrics, "sts", "AssumeRole");
    let arn = source.caller_identity().await.unwrap();
    assert!(arn.contains(":assumed-role/reader/arnsync"), "{arn}");
    let value = source
        .get(&Fetch::secret("app/db", current()))
        .await
        .unwrap();
    assert_eq!(value.name, "app/db");
    source.caller_identity().await.unwrap();
    // Credentials are assumed once and shared by the STS, SM and SSM clients of the identity.
    assert_eq!(attempts(metrics, "sts", "AssumeRole") - before, 1);
}
