//! Shared by the smoke tests: moto + proxy, and AWS SDK clients pointed at the proxy.
#![allow(dead_code)]

use std::time::Duration;

use aws_fault_proxy::moto::Moto;
use aws_fault_proxy::FaultProxy;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Field order matters: the proxy stops before moto is killed.
pub struct Env {
    pub proxy: FaultProxy,
    pub moto: Moto,
}

pub fn env() -> Env {
    let moto = Moto::start().expect("start moto (run tests/setup.sh if it is missing)");
    let proxy = FaultProxy::start(&moto.url()).expect("start proxy");
    Env { proxy, moto }
}

fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

fn credentials() -> Credentials {
    Credentials::new("AKIDTESTTESTTEST", "test-secret", None, None, "static")
}

/// `attempts` = 1 disables SDK retries, so every fault surfaces.
pub fn retry(attempts: u32) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(50))
}

pub fn secrets(endpoint: &str, attempts: u32) -> aws_sdk_secretsmanager::Client {
    secrets_in(endpoint, attempts, "us-east-1")
}

/// A Secrets Manager client signing for `region`.
pub fn secrets_in(endpoint: &str, attempts: u32, region: &str) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .http_client(http_client())
        .retry_config(retry(attempts))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

pub fn ssm(endpoint: &str, attempts: u32) -> aws_sdk_ssm::Client {
    let conf = aws_sdk_ssm::Config::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new("us-east-1"))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .http_client(http_client())
        .retry_config(retry(attempts))
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

pub fn sts(endpoint: &str, attempts: u32) -> aws_sdk_sts::Client {
    let conf = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new("us-east-1"))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .http_client(http_client())
        .retry_config(retry(attempts))
        .build();
    aws_sdk_sts::Client::from_conf(conf)
}

/// Plain HTTP call (control API): returns status and body text.
pub async fn http(method: &str, url: &str, body: &str) -> (u16, String) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = client.request(req).await.expect("http request");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}
