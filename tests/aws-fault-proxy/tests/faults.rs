//! Each fault kind, through the proxy in front of moto, surfaces as the error the operator's
//! AWS SDK clients will see; call counting per operation.

mod common;

use std::time::Duration;

use aws_fault_proxy::{Fault, FaultKind};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata as _, SdkError};

const SM: &str = "secretsmanager";

async fn seed_secret(sm: &aws_sdk_secretsmanager::Client, name: &str, value: &str) {
    sm.create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create secret");
}

#[tokio::test]
async fn forwards_and_counts_per_operation() {
    let env = common::env();
    let sm = common::secrets(&env.proxy.url(), 1);
    let ssm = common::ssm(&env.proxy.url(), 1);

    seed_secret(&sm, "app/db", "v1").await;
    sm.put_secret_value()
        .secret_id("app/db")
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    for _ in 0..3 {
        let got = sm
            .get_secret_value()
            .secret_id("app/db")
            .version_stage("AWSCURRENT")
            .send()
            .await
            .unwrap();
        assert_eq!(got.secret_string(), Some("v2"));
    }
    ssm.put_parameter()
        .name("/app/url")
        .value("https://example.test")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let got = ssm
        .get_parameters()
        .names("/app/url")
        .names("/app/missing")
        .send()
        .await
        .unwrap();
    assert_eq!(got.parameters().len(), 1);
    assert_eq!(got.invalid_parameters(), ["/app/missing"]);

    assert_eq!(env.proxy.count(SM, "CreateSecret"), 1);
    assert_eq!(env.proxy.count(SM, "PutSecretValue"), 1);
    assert_eq!(env.proxy.count(SM, "GetSecretValue"), 3);
    assert_eq!(env.proxy.count("ssm", "PutParameter"), 1);
    assert_eq!(env.proxy.count("ssm", "GetParameters"), 1);
    assert_eq!(env.proxy.count("ssm", "GetParameter"), 0);
    assert_eq!(env.proxy.total(), 7, "{:?}", env.proxy.counts());
    assert_eq!(env.proxy.faulted(SM, "GetSecretValue"), 0);

    env.proxy.reset_counts();
    assert!(env.proxy.counts().is_empty());
    sm.describe_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    let counts = env.proxy.counts();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[&(SM.to_string(), "DescribeSecret".to_string())], 1);
}

#[tokio::test]
async fn throttle_surfaces_as_throttling_exception_and_times_limits_it() {
    let env = common::env();
    let sm = common::secrets(&env.proxy.url(), 1);
    seed_secret(&sm, "s", "value").await;

    env.proxy
        .inject(Fault::on(SM, "GetSecretValue", FaultKind::Throttle).times(2));
    for _ in 0..2 {
        let err = sm
            .get_secret_value()
            .secret_id("s")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
        assert_eq!(err.message(), Some("Rate exceeded"));
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    }
    // Only GetSecretValue is faulted.
    sm.describe_secret().secret_id("s").send().await.unwrap();
    // The rule is used up.
    let ok = sm.get_secret_value().secret_id("s").send().await.unwrap();
    assert_eq!(ok.secret_string(), Some("value"));
    assert!(env.proxy.faults().is_empty());
    assert_eq!(env.proxy.count(SM, "GetSecretValue"), 3);
    assert_eq!(env.proxy.faulted(SM, "GetSecretValue"), 2);
    assert_eq!(env.proxy.faulted(SM, "DescribeSecret"), 0);
}

#[tokio::test]
async fn sdk_retries_absorb_a_single_fault() {
    let env = common::env();
    let sm = common::secrets(&env.proxy.url(), 3);
    let ssm = common::ssm(&env.proxy.url(), 3);
    seed_secret(&sm, "s", "value").await;
    ssm.put_parameter()
        .name("p")
        .value("pv")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();

    for kind in [
        FaultKind::Throttle,
        FaultKind::ServerError(500),
        FaultKind::ServerError(503),
        FaultKind::DropConnection,
    ] {
        env.proxy.reset_counts();
        env.proxy
            .inject(Fault::on(SM, "GetSecretValue", kind.clone()).times(1));
        let ok = sm.get_secret_value().secret_id("s").send().await;
        assert_eq!(
            ok.expect("retried").secret_string(),
            Some("value"),
            "{kind:?}"
        );
        assert_eq!(env.proxy.count(SM, "GetSecretValue"), 2, "{kind:?}");
        assert_eq!(env.proxy.faulted(SM, "GetSecretValue"), 1, "{kind:?}");
    }

    // A persistent fault exhausts the attempts: the operator sees the error after 3 calls.
    env.proxy.reset_counts();
    env.proxy
        .inject(Fault::on("ssm", "GetParameter", FaultKind::Throttle));
    let err = ssm.get_parameter().name("p").send().await.unwrap_err();
    assert_eq!(
        aws_sdk_ssm::error::ProvideErrorMetadata::code(&err),
        Some("ThrottlingException")
    );
    assert_eq!(env.proxy.count("ssm", "GetParameter"), 3);

    // Access denied is not retried.
    env.proxy.clear_faults();
    env.proxy.reset_counts();
    env.proxy
        .inject(Fault::new(FaultKind::AccessDenied).service("ssm"));
    let err = ssm.get_parameter().name("p").send().await.unwrap_err();
    assert_eq!(
        aws_sdk_ssm::error::ProvideErrorMetadata::code(&err),
        Some("AccessDeniedException")
    );
    assert_eq!(env.proxy.count("ssm", "GetParameter"), 1);
}

#[tokio::test]
async fn access_denied_names_the_action_and_resource() {
    let env = common::env();
    let sm = common::secrets(&env.proxy.url(), 1);
    let ssm = common::ssm(&env.proxy.url(), 1);
    env.proxy.inject(Fault::new(FaultKind::AccessDenied));

    let err = sm
        .get_secret_value()
        .secret_id("team/api-key")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert_eq!(
        err.message(),
        Some(
            "User: arn:aws:iam::123456789012:user/test is not authorized to perform: \
             secretsmanager:GetSecretValue on resource: \
             arn:aws:secretsmanager:us-east-1:123456789012:secret:team/api-key because no \
             identity-based policy allows the secretsmanager:GetSecretValue action"
        )
    );

    let err = ssm
        .get_parameters()
        .names("/team/url")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_ssm::error::ProvideErrorMetadata::code(&err),
        Some("AccessDeniedException")
    );
    let msg = aws_sdk_ssm::error::ProvideErrorMetadata::message(&err).unwrap();
    assert!(
        msg.contains("perform: ssm:GetParameters on resource: arn:aws:ssm:us-east-1:123456789012:parameter/team/url because"),
        "{msg}"
    );
    // Nothing reached moto.
    env.proxy.clear_faults();
    let err = sm
        .get_secret_value()
        .secret_id("team/api-key")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn server_errors_map_to_modeled_errors() {
    let env = common::env();
    let sm = common::secrets(&env.proxy.url(), 1);
    let ssm = common::ssm(&env.proxy.url(), 1);

    env.proxy
        .inject(Fault::on(SM, "GetSecretValue", FaultKind::ServerError(500)).times(1));
    let err = sm
        .get_secret_value()
        .secret_id("s")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert!(err.into_service_error().is_internal_service_error());

    env.proxy
        .inject(Fault::on("ssm", "GetParameter", FaultKind::ServerError(500)).times(1));
    let err = ssm.get_parameter().name("p").send().await.unwrap_err();
    assert!(err.into_service_error().is_internal_server_error());

    env.proxy.inject(
        Fault::new(FaultKind::ServerError(503))
            .service("ssm")
            .times(1),
    );
    let err = ssm.get_parameter().name("p").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    assert_eq!(
        aws_sdk_ssm::error::ProvideErrorMetadata::code(&err),
        Some("ServiceUnavailable")
    );
    assert!(!err.into_service_error().is_internal_server_error());

    env.proxy
        .inject(Fault::new(FaultKind::ServerError(502)).times(1));
    let err = sm.list_secrets().send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(502));
    assert_eq!(err.code(), Some("InternalFailure"));
}

#[tokio::test]
async fn dropped_connection_is_a_dispatch_failure() {
    let env = common::env();
    let sm = common::secrets(&env.proxy.url(), 1);
    seed_secret(&sm, "s", "value").await;
    env.proxy
        .inject(Fault::on(SM, "GetSecretValue", FaultKind::DropConnection).times(1));
    let err = sm
        .get_secret_value()
        .secret_id("s")
        .send()
        .await
        .unwrap_err();
    match &err {
        SdkError::DispatchFailure(d) => assert!(d.is_io() || d.is_other(), "{err:?}"),
        other => panic!("expected a dispatch failure, got {other:?}"),
    }
    // The proxy keeps serving new connections.
    let ok = sm.get_secret_value().secret_id("s").send().await.unwrap();
    assert_eq!(ok.secret_string(), Some("value"));
    assert_eq!(env.proxy.count(SM, "GetSecretValue"), 2);
    assert_eq!(env.proxy.faulted(SM, "GetSecretValue"), 1);
}

#[tokio::test]
async fn latency_delays_but_the_call_succeeds() {
    let env = common::env();
    let sm = common::secrets(&env.proxy.url(), 1);
    seed_secret(&sm, "s", "value").await;
    env.proxy.inject(Fault::on(
        SM,
        "GetSecretValue",
        FaultKind::Latency(Duration::from_millis(300)),
    ));
    for _ in 0..2 {
        let ok = sm.get_secret_value().secret_id("s").send().await.unwrap();
        assert_eq!(ok.secret_string(), Some("value"));
    }
    assert_eq!(env.proxy.faulted(SM, "GetSecretValue"), 2);
    assert_eq!(env.proxy.faults().len(), 1, "no times: stays until cleared");
}

#[tokio::test]
async fn sts_query_protocol_is_counted_and_faulted() {
    let env = common::env();
    let sts = common::sts(&env.proxy.url(), 1);
    let role = "arn:aws:iam::123456789012:role/reader";

    let ok = sts
        .assume_role()
        .role_arn(role)
        .role_session_name("arnsync")
        .send()
        .await
        .unwrap();
    assert!(ok.credentials().is_some());
    assert_eq!(env.proxy.count("sts", "AssumeRole"), 1);

    env.proxy
        .inject(Fault::on("sts", "AssumeRole", FaultKind::Throttle).times(1));
    let err = sts
        .assume_role()
        .role_arn(role)
        .role_session_name("arnsync")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_sts::error::ProvideErrorMetadata::code(&err),
        Some("Throttling")
    );
    assert_eq!(
        aws_sdk_sts::error::ProvideErrorMetadata::message(&err),
        Some("Rate exceeded")
    );

    env.proxy
        .inject(Fault::on("sts", "AssumeRole", FaultKind::AccessDenied).times(1));
    let err = sts
        .assume_role()
        .role_arn(role)
        .role_session_name("arnsync")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert_eq!(
        aws_sdk_sts::error::ProvideErrorMetadata::code(&err),
        Some("AccessDenied")
    );
    let msg = aws_sdk_sts::error::ProvideErrorMetadata::message(&err).unwrap();
    assert!(
        msg.contains(&format!("perform: sts:AssumeRole on resource: {role}")),
        "{msg}"
    );

    env.proxy
        .inject(Fault::on("sts", "AssumeRole", FaultKind::ServerError(500)).times(1));
    let err = sts
        .assume_role()
        .role_arn(role)
        .role_session_name("arnsync")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_sts::error::ProvideErrorMetadata::code(&err),
        Some("InternalFailure")
    );

    assert_eq!(env.proxy.count("sts", "AssumeRole"), 4);
    assert_eq!(env.proxy.faulted("sts", "AssumeRole"), 3);
}
