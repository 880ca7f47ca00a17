//! Rotation by event: EventBridge routes Secrets Manager's `Secret Label Updated` to an SQS
//! queue a store names; the operator re-reads the exact version and writes the Secret within
//! seconds while polling runs only at its safety interval, and an idle queue costs no Secrets
//! Manager or Parameter Store call.

use std::time::{Duration, Instant};

use kube::api::Api;
use serde_json::json;

use crate::harness::Env;
use arnsync::api::SecretStore;

use crate::harness::MOTO_ACCOUNT as ACCOUNT;

/// A queue fed by an EventBridge rule for `Secret Label Updated`, as the README sets it up.
async fn routed_queue(env: &Env, name: &str) -> String {
    let sqs = aws_sdk_sqs::Client::new(&env.moto_config());
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let pattern =
        json!({"source": ["aws.secretsmanager"], "detail-type": ["Secret Label Updated"]});
    env.event_rule("secrets", name, pattern).await;
    url
}

fn calls(env: &Env, service: &str) -> u64 {
    env.proxy
        .counts()
        .iter()
        .filter(|((s, _), _)| s == service)
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_arrives_by_event_with_polling_at_its_safety_interval() {
    let mut env = Env::start_without_operator().await;
    // Polling is effectively off: a full check on start (and when the queue turns healthy),
    // then every hour.
    env.start_operator_with(&[
        "--rotation-check-interval",
        "1h",
        "--event-safety-interval",
        "1h",
    ]);
    env.namespace("app", json!({})).await;
    let queue = routed_queue(&env, "arnsync-events").await;
    env.put_secret("prod/db", "pw-Echo-1").await;
    let mut spec = env.store_spec("SecretsManager", json!({}));
    spec["arnsync"]["eventQueue"] = json!(queue);
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "aws", "namespace": "app"}, "spec": spec
    }))
    .await;
    env.apply(json!({
        "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": "db", "namespace": "app"},
        "spec": {"secretStoreRef": {"name": "aws"}, "refreshInterval": "1h",
                 "data": [{"secretKey": "password", "remoteRef": {"key": "prod/db"}}]}
    }))
    .await;
    env.secret_value("app", "db", "password", b"pw-Echo-1")
        .await;
    let stores: Api<SecretStore> = Api::namespaced(env.client.clone(), "app");
    env.eventually("EventsReady True", Duration::from_secs(40), || async {
        let store = stores.get("aws").await.ok()?;
        let c = store
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "EventsReady")?;
        (c.status == arnsync::api::ConditionStatus::True).then_some(())
    })
    .await;

    // Idle: over a fixed window, only ReceiveMessage long polls.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sm, ssm) = (calls(&env, "secretsmanager"), calls(&env, "ssm"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        calls(&env, "secretsmanager"),
        sm,
        "{:?}",
        env.proxy.counts()
    );
    assert_eq!(calls(&env, "ssm"), ssm, "{:?}", env.proxy.counts());
    assert!(env.proxy.count("sqs", "ReceiveMessage") >= 1);

    // A rotation, announced by its event: one strongly consistent read and one value read.
    let describe = env.proxy.count("secretsmanager", "DescribeSecret");
    let get = env.proxy.count("secretsmanager", "GetSecretValue");
    let lists = env.proxy.count("secretsmanager", "ListSecrets");
    let version = env
        .sm
        .put_secret_value()
        .secret_id("prod/db")
        .secret_string("pw-Foxtrot-2")
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    env.label_updated("prod/db", &version).await;
    let sent = Instant::now();
    env.secret_value("app", "db", "password", b"pw-Foxtrot-2")
        .await;
    println!("event to Secret: {:?}", sent.elapsed());
    assert_eq!(
        env.proxy.count("secretsmanager", "DescribeSecret") - describe,
        1
    );
    assert_eq!(env.proxy.count("secretsmanager", "GetSecretValue") - get, 1);
    assert_eq!(
        env.proxy.count("secretsmanager", "ListSecrets"),
        lists,
        "no polling"
    );

    // A duplicate of the same event changes nothing and costs one confirming read.
    env.label_updated("prod/db", &version).await;
    env.eventually("the duplicate handled", Duration::from_secs(30), || async {
        (env.proxy.count("secretsmanager", "DescribeSecret") - describe == 2).then_some(())
    })
    .await;
    assert_eq!(env.proxy.count("secretsmanager", "GetSecretValue") - get, 1);
    env.assert_no_leaks(&["pw-Echo-1", "pw-Foxtrot-2"]).await;
}

async fn events_ready(env: &Env, store: &str, want: &str) -> String {
    let stores: Api<SecretStore> = Api::namespaced(env.client.clone(), "app");
    env.eventually(
        &format!("EventsReady {want}"),
        Duration::from_secs(60),
        || async {
            let c = stores
                .get(store)
                .await
                .ok()?
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "EventsReady")?;
            (format!("{:?}", c.status) == want).then_some(c.message)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_reads_stay_queued_parameters_and_deletes_arrive_and_a_lost_queue_falls_back_to_polling(
) {
    let mut env = Env::start_without_operator().await;
    env.start_operator_with(&[
        "--rotation-check-interval",
        "1s",
        "--event-safety-interval",
        "1h",
    ]);
    env.namespace("app", json!({})).await;
    let sqs = aws_sdk_sqs::Client::new(&env.moto_config());
    let queue = sqs
        .create_queue()
        .queue_name("events")
        // A message whose re-read failed is back after two seconds.
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "2",
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    env.event_rule(
        "labels",
        "events",
        json!({"source": ["aws.secretsmanager"], "detail-type": ["Secret Label Updated"]}),
    )
    .await;
    env.event_rule(
        "parameters",
        "events",
        json!({"source": ["aws.ssm"], "detail-type": ["Parameter Store Change"]}),
    )
    .await;
    env.event_rule(
        "deletes",
        "events",
        json!({"source": ["aws.secretsmanager"], "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventName": ["DeleteSecret", "RestoreSecret"]}}),
    )
    .await;
    for (name, service) in [("aws", "SecretsManager"), ("aws-ssm", "ParameterStore")] {
        let mut spec = env.store_spec(service, json!({}));
        spec["arnsync"]["eventQueue"] = json!(queue);
        env.apply(json!({
            "apiVersion": "arnsync.io/v1alpha1", "kind": "SecretStore",
            "metadata": {"name": name, "namespace": "app"}, "spec": spec
        }))
        .await;
    }
    env.put_secret("prod/db", "pw-Golf-1").await;
    env.put_secret("prod/other", "other-Hotel-1").await;
    env.put_param("/prod/flag", "flag-India-1", "String").await;
    env.ssm
        .label_parameter_version()
        .name("/prod/flag")
        .parameter_version(1)
        .labels("stable")
        .send()
        .await
        .unwrap();
    let es = |name: &str, store: &str, key: &str, version: Option<&str>| {
        let mut remote = json!({"key": key});
        if let Some(v) = version {
            remote["version"] = json!(v);
        }
        json!({
            "apiVersion": "arnsync.io/v1alpha1", "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": "app"},
            "spec": {"secretStoreRef": {"name": store}, "refreshInterval": "1h",
                     "target": {"deletionPolicy": "Delete"},
                     "data": [{"secretKey": "value", "remoteRef": remote}]}
        })
    };
    env.apply(es("db", "aws", "prod/db", None)).await;
    env.apply(es("other", "aws", "prod/other", None)).await;
    env.apply(es("flag", "aws-ssm", "/prod/flag", Some("stable")))
        .await;
    env.apply(es("latest", "aws-ssm", "/prod/flag", None)).await;
    env.secret_value("app", "db", "value", b"pw-Golf-1").await;
    env.secret_value("app", "flag", "value", b"flag-India-1")
        .await;
    events_ready(&env, "aws", "True").await;

    // The confirming read fails (AccessDenied is not retried): the message stays, comes back
    // after the visibility timeout, and then lands (polling is at its one-hour safety interval).
    env.proxy.inject(
        aws_fault_proxy::Fault::on(
            "secretsmanager",
            "DescribeSecret",
            aws_fault_proxy::FaultKind::AccessDenied,
        )
        .times(1),
    );
    let version = env
        .sm
        .put_secret_value()
        .secret_id("prod/db")
        .secret_string("pw-Golf-2")
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    env.label_updated("prod/db", &version).await;
    env.secret_value("app", "db", "value", b"pw-Golf-2").await;
    assert_eq!(env.proxy.faulted("secretsmanager", "DescribeSecret"), 1);

    // A new parameter version (Update), then a label moved to it (LabelParameterVersion), each
    // announced by Parameter Store's event: the latest follows the first, the label the second.
    env.ssm
        .put_parameter()
        .name("/prod/flag")
        .value("flag-India-2")
        .overwrite(true)
        .send()
        .await
        .unwrap();
    env.put_event(
        "aws.ssm",
        "Parameter Store Change",
        None,
        json!({"operation": "Update", "name": "/prod/flag", "type": "String"}),
    )
    .await;
    env.secret_value("app", "latest", "value", b"flag-India-2")
        .await;
    assert_eq!(
        crate::harness::data_str(&env.secret("app", "flag").await.unwrap(), "value"),
        "flag-India-1",
        "the label has not moved yet"
    );
    env.ssm
        .label_parameter_version()
        .name("/prod/flag")
        .parameter_version(2)
        .labels("stable")
        .send()
        .await
        .unwrap();
    env.put_event(
        "aws.ssm",
        "Parameter Store Change",
        None,
        json!({"operation": "LabelParameterVersion", "name": "/prod/flag", "type": "String"}),
    )
    .await;
    env.secret_value("app", "flag", "value", b"flag-India-2")
        .await;

    // A deletion arrives through CloudTrail: deletionPolicy Delete removes the Secret.
    env.sm
        .delete_secret()
        .secret_id("prod/db")
        .send()
        .await
        .unwrap();
    env.put_event("aws.secretsmanager", "AWS API Call via CloudTrail", None, json!({
        "eventSource": "secretsmanager.amazonaws.com", "eventName": "DeleteSecret",
        "awsRegion": "us-east-1",
        "requestParameters": {"secretId": "prod/db"},
        "responseElements": {"arn": format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/db-AbC123")}
    })).await;
    env.eventually("the Secret deleted", Duration::from_secs(30), || async {
        env.secret("app", "db").await.is_none().then_some(())
    })
    .await;

    // The queue is gone: EventsReady goes False with the SQS error, and polling is back at
    // rotationCheckInterval, so a rotation without any event still lands.
    sqs.delete_queue().queue_url(&queue).send().await.unwrap();
    let message = events_ready(&env, "aws", "False").await;
    assert!(message.contains("events"), "{message}");
    env.sm
        .put_secret_value()
        .secret_id("prod/other")
        .secret_string("other-Hotel-2")
        .send()
        .await
        .unwrap();
    env.secret_value("app", "other", "value", b"other-Hotel-2")
        .await;
    env.assert_no_leaks(&["pw-Golf-1", "pw-Golf-2", "flag-India-2", "other-Hotel-2"])
        .await;
}
