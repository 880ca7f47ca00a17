//! The `/__proxy/` control API, the standalone binary, and the moto launcher's lifecycle.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use aws_fault_proxy::moto::Moto;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata as _;
use common::http;

#[tokio::test]
async fn control_api_drives_faults_and_counts() {
    let env = common::env();
    let base = env.proxy.url();
    let sm = common::secrets(&base, 1);
    sm.create_secret()
        .name("s")
        .secret_string("v")
        .send()
        .await
        .unwrap();

    let (status, body) = http(
        "POST",
        &format!("{base}/__proxy/faults"),
        r#"{"service":"secretsmanager","operation":"GetSecretValue","kind":"throttle","times":1}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = http("GET", &format!("{base}/__proxy/faults"), "").await;
    assert_eq!(status, 200);
    let rules: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rules[0]["kind"], "throttle");
    assert_eq!(rules[0]["times"], 1);

    let err = sm
        .get_secret_value()
        .secret_id("s")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"));
    sm.get_secret_value().secret_id("s").send().await.unwrap();

    let (status, body) = http("GET", &format!("{base}/__proxy/counts"), "").await;
    assert_eq!(status, 200);
    let counts: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        counts["calls"]["secretsmanager:GetSecretValue"], 2,
        "{body}"
    );
    assert_eq!(counts["calls"]["secretsmanager:CreateSecret"], 1, "{body}");
    assert_eq!(
        counts["faulted"]["secretsmanager:GetSecretValue"], 1,
        "{body}"
    );
    assert_eq!(counts["total"], 3, "{body}");
    // Control requests are neither forwarded nor counted.
    assert_eq!(env.proxy.total(), 3);

    // Invalid rules are refused and change nothing.
    for bad in [
        r#"{"kind":"server_error","status":200}"#,
        r#"{"kind":"meteor"}"#,
        "not json",
    ] {
        let (status, _) = http("POST", &format!("{base}/__proxy/faults"), bad).await;
        assert_eq!(status, 400, "{bad}");
    }
    assert!(env.proxy.faults().is_empty());

    let (status, _) = http(
        "POST",
        &format!("{base}/__proxy/faults"),
        r#"{"kind":"access_denied"}"#,
    )
    .await;
    assert_eq!(status, 201);
    let err = sm.list_secrets().send().await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    let (status, _) = http("DELETE", &format!("{base}/__proxy/faults"), "").await;
    assert_eq!(status, 204);
    sm.list_secrets().send().await.unwrap();

    let (status, _) = http(
        "POST",
        &format!("{base}/__proxy/faults"),
        r#"{"kind":"latency","ms":50}"#,
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = http("POST", &format!("{base}/__proxy/reset"), "").await;
    assert_eq!(status, 204);
    assert!(env.proxy.faults().is_empty());
    assert!(env.proxy.counts().is_empty());

    sm.list_secrets().send().await.unwrap();
    let (status, _) = http("DELETE", &format!("{base}/__proxy/counts"), "").await;
    assert_eq!(status, 204);
    assert_eq!(env.proxy.total(), 0);

    let (status, _) = http("GET", &format!("{base}/__proxy/nope"), "").await;
    assert_eq!(status, 404);
    let (status, _) = http("PUT", &format!("{base}/__proxy/counts"), "").await;
    assert_eq!(status, 405);
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_prints_its_url_proxies_and_stops_on_sigterm() {
    let moto = Moto::start().unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_aws-fault-proxy"))
            .args(["--listen", "127.0.0.1:0", "--upstream", &moto.url()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().expect("one line").unwrap();
    let url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_ne!(url, "http://127.0.0.1:0");

    let ssm = common::ssm(&url, 1);
    ssm.put_parameter()
        .name("/bin/p")
        .value("x")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let (status, _) = http(
        "POST",
        &format!("{url}/__proxy/faults"),
        r#"{"service":"ssm","kind":"server_error","status":503,"times":1}"#,
    )
    .await;
    assert_eq!(status, 201);
    let err = ssm.get_parameter().name("/bin/p").send().await.unwrap_err();
    assert_eq!(
        aws_sdk_ssm::error::ProvideErrorMetadata::code(&err),
        Some("ServiceUnavailable")
    );
    let got = ssm.get_parameter().name("/bin/p").send().await.unwrap();
    assert_eq!(got.parameter().and_then(|p| p.value()), Some("x"));
    let (_, body) = http("GET", &format!("{url}/__proxy/counts"), "").await;
    let counts: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(counts["calls"]["ssm:GetParameter"], 2, "{body}");
    assert_eq!(counts["calls"]["ssm:PutParameter"], 1, "{body}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.0.wait().unwrap();
    assert!(status.success(), "exit on SIGTERM: {status:?}");
    assert!(lines.next().is_none(), "exactly one line on stdout");
}

#[tokio::test]
async fn moto_reset_forgets_everything_and_drop_kills_it() {
    let moto = Moto::start().unwrap();
    let sm = common::secrets(&moto.url(), 1);
    sm.create_secret()
        .name("gone")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    moto.reset().await.unwrap();
    let err = sm
        .get_secret_value()
        .secret_id("gone")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    let pid = moto.pid();
    let addr = format!("127.0.0.1:{}", moto.port());
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(moto);
    // Killed and reaped: no process (not even a zombie) and nothing listening.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test]
async fn proxy_answers_502_when_upstream_is_down_and_stops_on_drop() {
    let moto = Moto::start().unwrap();
    let proxy = aws_fault_proxy::FaultProxy::start(&moto.url()).unwrap();
    let url = proxy.url();
    drop(moto);
    let sm = common::secrets(&url, 1);
    let err = sm.list_secrets().send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(502));
    assert_eq!(proxy.count("secretsmanager", "ListSecrets"), 1);
    let addr = proxy.addr();
    drop(proxy);
    // The aborted accept task is dropped the next time the runtime gets to it.
    let mut closed = false;
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed, "proxy still listening on {addr} after drop");
}
