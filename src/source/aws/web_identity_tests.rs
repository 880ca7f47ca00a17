//! Web identities against moto and the Kubernetes test server: ServiceAccount tokens from the
//! TokenRequest API, exchanged with sts:AssumeRoleWithWebIdentity, cached for the credentials'
//! lifetime, chained with further roles; errors that name the ServiceAccount and never the token.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_types::sdk_config::{SharedTimeSource, TimeSource};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube_test_server::TestServer;
use serde_json::json;

use crate::source::test_logs::logged;

use super::clients::AwsClients;
use super::moto_tests::{attempts, Moto};
use super::*;
use crate::controller::KubeTokens;
use crate::metrics::Metrics;
use crate::source::token::{ServiceAccountToken, TokenError, TokenSource};
use crate::source::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/web-reader";

/// A clock the test moves forward; the credentials cache reads it.
#[derive(Clone, Debug, Default)]
struct Clock(Arc<Mutex<Duration>>);

impl Clock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl TimeSource for Clock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + *self.0.lock().unwrap()
    }
}

/// Passes requests on and records the audiences asked for.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn TokenSource>,
    audiences: Mutex<Vec<Vec<String>>>,
}

#[async_trait]
impl TokenSource for Recording {
    async fn token(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[String],
    ) -> Result<ServiceAccountToken, TokenError> {
        self.audiences.lock().unwrap().push(audiences.to_vec());
        self.inner
            .token(namespace, service_account, audiences)
            .await
    }
}

/// Always the same, recognisable token.
#[derive(Debug)]
struct Fixed;

const FIXED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2VuLWJvZHk.fixed-token-signature";

#[async_trait]
impl TokenSource for Fixed {
    async fn token(
        &self,
        _: &str,
        _: &str,
        _: &[String],
    ) -> Result<ServiceAccountToken, TokenError> {
        Ok(ServiceAccountToken::new(FIXED_TOKEN.into()))
    }
}

struct World {
    moto: Moto,
    kube: TestServer,
    metrics: Metrics,
    clock: Clock,
}

impl World {
    async fn start() -> World {
        let moto = Moto::start();
        let kube = TestServer::start().await.unwrap();
        let namespaces: Api<Namespace> = Api::all(kube.client());
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "team-a"}})).unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        let world = World {
            moto,
            kube,
            metrics: Metrics::default(),
            clock: Clock::default(),
        };
        world.service_account("reader").await;
        let admin = AwsClients::new(
            &world.moto.identity(),
            Metrics::default(),
            &SourceOptions::default(),
            http_client(),
            Arc::new(token::NoTokenSource),
        );
        admin
            .secrets_manager
            .create_secret()
            .name("app/db")
            .secret_string("hunter2")
            .send()
            .await
            .unwrap();
        world
    }

    async fn service_account(&self, name: &str) {
        let sas: Api<ServiceAccount> = Api::namespaced(self.kube.client(), "team-a");
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        sas.create(&PostParams::default(), &sa).await.unwrap();
    }

    fn sources(&self, tokens: Arc<dyn TokenSource>) -> Sources {
        let options = SourceOptions {
            cache_ttl: Duration::ZERO,
            clock: Some(SharedTimeSource::new(self.clock.clone())),
            ..SourceOptions::default()
        };
        Sources::with_tokens(self.metrics.clone(), options, tokens)
    }

    fn kube_tokens(&self) -> Arc<Recording> {
        Arc::new(Recording {
            inner: Arc::new(KubeTokens::new(self.kube.client())),
            audiences: Mutex::default(),
        })
    }

    fn identity(&self, service_account: &str) -> Identity {
        Identity {
            static_keys: None,
            web_identity: Some(WebIdentity {
                namespace: "team-a".into(),
                service_account: service_account.into(),
                audiences: vec![],
                role_arn: ROLE.into(),
            }),
            ..self.moto.identity()
        }
    }

    fn web_identity_calls(&self) -> u64 {
        attempts(&self.metrics, "sts", "AssumeRoleWithWebIdentity")
    }
}

async fn read(source: &AwsSource) -> Result<Value, SourceError> {
    source
        .get(&Fetch::secret(
            "app/db",
            Selector::Stage("AWSCURRENT".into()),
        ))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_reads_with_one_token_per_credentials_lifetime() {
    let world = World::start().await;
    let tokens = world.kube_tokens();
    let sources = world.sources(tokens.clone());
    let source = sources.source(&world.identity("reader"));

    let arn = source.caller_identity().await.unwrap();
    assert!(arn.contains(":assumed-role/web-reader/arnsync"), "{arn}");
    let reads = (0..20).map(|_| read(&source));
    for value in futures::future::join_all(reads).await {
        assert_eq!(value.unwrap().data.0, b"hunter2");
    }
    for _ in 0..10 {
        read(&source).await.unwrap();
    }
    assert_eq!(world.kube.token_requests("team-a", "reader"), 1);
    assert_eq!(world.web_identity_calls(), 1);
    assert_eq!(
        *tokens.audiences.lock().unwrap(),
        [vec!["sts.amazonaws.com".to_string()]],
        "no audiences given: STS's"
    );

    // Moto's credentials last an hour. Until a few minutes before expiry they are used...
    world.clock.advance(Duration::from_secs(30 * 60));
    read(&source).await.unwrap();
    world.clock.advance(Duration::from_secs(30 * 60 - 400));
    read(&source).await.unwrap();
    assert_eq!(world.kube.token_requests("team-a", "reader"), 1);
    assert_eq!(world.web_identity_calls(), 1);
    // ...then renewed before they expire (150 to 300 s before): one new token, one exchange.
    world.clock.advance(Duration::from_secs(400 - 120));
    for value in futures::future::join_all((0..10).map(|_| read(&source))).await {
        value.unwrap();
    }
    assert_eq!(world.kube.token_requests("team-a", "reader"), 2);
    assert_eq!(world.web_identity_calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_chained_on_top_of_the_web_identity() {
    let world = World::start().await;
    let sources = world.sources(world.kube_tokens());
    let mut identity = world.identity("reader");
    identity.web_identity.as_mut().unwrap().audiences =
        vec!["sts.amazonaws.com".into(), "extra".into()];
    identity.roles = vec![
        AssumeRole {
            arn: "arn:aws:iam::123456789012:role/hop".into(),
            ..AssumeRole::default()
        },
        AssumeRole {
            arn: "arn:aws:iam::123456789012:role/target".into(),
            session_name: Some("chained".into()),
            ..AssumeRole::default()
        },
    ];
    let source = sources.source(&identity);
    let arn = source.caller_identity().await.unwrap();
    assert!(arn.contains(":assumed-role/target/chained"), "{arn}");
    for _ in 0..5 {
        read(&source).await.unwrap();
    }
    source.caller_identity().await.unwrap();
    assert_eq!(world.kube.token_requests("team-a", "reader"), 1);
    assert_eq!(world.web_identity_calls(), 1);
    assert_eq!(attempts(&world.metrics, "sts", "AssumeRole"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_service_account_is_named_and_recovers_once_created() {
    let world = World::start().await;
    let sources = world.sources(world.kube_tokens());
    let source = sources.source(&world.identity("ghost"));

    let err = read(&source).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Credentials, "{err}");
    let text = err.to_string();
    for part in [
        "ServiceAccount team-a/ghost",
        ROLE,
        "Kubernetes TokenRequest failed",
        "serviceaccounts \"ghost\" not found",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert_eq!(world.web_identity_calls(), 0, "no token, no STS call");
    let err = source.caller_identity().await.unwrap_err();
    assert!(
        err.to_string().contains("ServiceAccount team-a/ghost"),
        "{err}"
    );

    // Failures are not cached: once the ServiceAccount exists, the next read works.
    world.service_account("ghost").await;
    assert_eq!(read(&source).await.unwrap().data.0, b"hunter2");
    assert_eq!(world.kube.token_requests("team-a", "ghost"), 3);
    assert_eq!(world.web_identity_calls(), 1);
}

/// An STS endpoint that refuses every token, quoting the request (the token included) in its
/// message, as no real STS does: the message still reaches the error without the token.
async fn quoting_sts() -> String {
    use axum::body::Bytes;
    let app = axum::Router::new().fallback(|body: Bytes| async move {
        let quoted = String::from_utf8_lossy(&body).replace('&', " ");
        let xml = format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>\
             <Message>refused {quoted}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        );
        (
            axum::http::StatusCode::BAD_REQUEST,
            [("content-type", "text/xml")],
            xml,
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "current_thread")]
async fn the_token_is_never_logged_or_shown() {
    let moto = Moto::start();
    let mut identity = Identity {
        static_keys: None,
        web_identity: Some(WebIdentity {
            namespace: "team-a".into(),
            service_account: "reader".into(),
            audiences: vec![],
            role_arn: ROLE.into(),
        }),
        ..moto.identity()
    };
    let metrics = Metrics::default();
    let sources = Sources::with_tokens(metrics.clone(), SourceOptions::default(), Arc::new(Fixed));
    let source = sources.source(&identity);
    let (arn, logs) = logged(source.caller_identity()).await;
    assert!(arn.unwrap().contains("assumed-role/web-reader"));
    // (Whether this thread's subscriber sees the SDK's lines depends on callsite interest that
    // tests on other threads share; the token must not be in whatever it saw.)
    assert!(!logs.contains(FIXED_TOKEN), "{logs}");

    identity.endpoints.sts = Some(quoting_sts().await);
    let source = sources.source(&identity);
    let (err, logs) = logged(source.caller_identity()).await;
    let err = err.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("InvalidIdentityToken"), "{shown}");
    assert!(shown.contains("refused"), "{shown}");
    assert!(shown.contains("ServiceAccount team-a/reader"), "{shown}");
    assert!(
        shown.contains("WebIdentityToken=<token>"),
        "the quoted token is replaced: {shown}"
    );
    assert!(!shown.contains(FIXED_TOKEN), "{shown}");
    assert!(!logs.contains(FIXED_TOKEN), "{logs}");
    assert!(!format!("{identity:?}").contains(FIXED_TOKEN));
    // A refused token is a credentials problem, not a request error, in the attempt metric.
    let refused = metrics
        .aws_requests
        .get_or_create(&crate::metrics::AwsRequestLabels {
            service: "sts",
            operation: "AssumeRoleWithWebIdentity",
            outcome: "credentials",
        })
        .get();
    assert_eq!(refused, 1);
}
