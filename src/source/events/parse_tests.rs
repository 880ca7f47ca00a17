//! Parsing every event shape AWS sends for the two services, SNS envelopes, and garbage.

use serde_json::json;

use super::tests::{key, parameter, secret, ARN};
use super::*;

fn changes(body: &serde_json::Value) -> Vec<(EventKey, ChangeKind)> {
    parse(&body.to_string())
        .expect("an event")
        .into_iter()
        .map(|c| (c.key, c.kind))
        .collect()
}

fn label_updated() -> serde_json::Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Secret Label Updated",
        "source": "aws.secretsmanager",
        "account": "012345678901",
        "time": "2024-02-06T16:43:48Z",
        "region": "us-west-2",
        "resources": [ARN],
        "detail": {"name": "prod/db", "labelUpdated": "AWSCURRENT",
                   "versionId": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"}
    })
}

fn cloudtrail(event_name: &str, detail: serde_json::Value) -> serde_json::Value {
    let mut d = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "AssumedRole", "accountId": "012345678901"},
        "eventTime": "2024-05-02T10:11:12Z",
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": event_name,
        "awsRegion": "us-west-2",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0",
        "requestID": "2c1b8a5e-0000-4000-8000-000000000000",
        "eventID": "9b1c2d3e-0000-4000-8000-000000000000",
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "012345678901",
        "eventCategory": "Management"
    });
    d.as_object_mut()
        .unwrap()
        .extend(detail.as_object().unwrap().clone());
    json!({
        "version": "0",
        "id": "c0ffee00-0000-4000-8000-000000000000",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.secretsmanager",
        "account": "012345678901",
        "time": "2024-05-02T10:11:12Z",
        "region": "us-west-2",
        "resources": [],
        "detail": d
    })
}

#[test]
fn secret_label_updated_names_the_secret_without_its_suffix() {
    let all = parse(&label_updated().to_string()).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].key, secret("prod/db"));
    assert_eq!(all[0].kind, ChangeKind::VersionMoved);
    let t = all[0].time.unwrap();
    assert_eq!(
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
        1_707_237_828
    );

    // Without detail.name the ARN says it; without `account` (moto's bodies) the ARN fills in.
    let mut e = label_updated();
    e["detail"].as_object_mut().unwrap().remove("name");
    e.as_object_mut().unwrap().remove("account");
    assert_eq!(changes(&e), [(secret("prod/db"), ChangeKind::VersionMoved)]);
    // Neither `account` nor an ARN: the account is unknown.
    let mut e = label_updated();
    e.as_object_mut().unwrap().remove("account");
    e["resources"] = json!([]);
    assert_eq!(
        changes(&e),
        [(
            key(Service::SecretsManager, "us-west-2", None, "prod/db"),
            ChangeKind::VersionMoved
        )]
    );
    // A name that itself ends like a suffix keeps it: only the ARN's suffix goes.
    let mut e = label_updated();
    e["detail"]["name"] = json!("api-key-v2");
    e["resources"] =
        json!(["arn:aws:secretsmanager:us-west-2:012345678901:secret:api-key-v2-Zx9Yw8"]);
    assert_eq!(changes(&e)[0].0.name, "api-key-v2");
}

#[test]
fn parameter_store_changes_keep_the_leading_slash_and_report_deletes() {
    let event = |operation: &str| {
        json!({
            "version": "0",
            "id": "2ada935b-482a-1f19-50a1-21aa9b6b7e2c",
            "detail-type": "Parameter Store Change",
            "source": "aws.ssm",
            "account": "123456789012",
            "time": "2024-06-08T23:06:33Z",
            "region": "us-east-1",
            "resources": ["arn:aws:ssm:us-east-1:123456789012:parameter/prod/db/url"],
            "detail": {"name": "/prod/db/url", "type": "SecureString", "operation": operation,
                       "description": "the database URL"}
        })
    };
    for (op, kind) in [
        ("Create", ChangeKind::VersionMoved),
        ("Update", ChangeKind::VersionMoved),
        ("LabelParameterVersion", ChangeKind::VersionMoved),
        ("Delete", ChangeKind::Deleted),
    ] {
        assert_eq!(
            changes(&event(op)),
            [(parameter("/prod/db/url"), kind)],
            "{op}"
        );
    }
    // The name from the ARN alone gets its leading slash back.
    let mut e = event("Update");
    e["detail"].as_object_mut().unwrap().remove("name");
    assert_eq!(changes(&e)[0].0, parameter("/prod/db/url"));
    // A name without a slash stays as it is.
    let mut e = event("Update");
    e["detail"]["name"] = json!("plain");
    assert_eq!(changes(&e)[0].0, parameter("plain"));
}

#[test]
fn cloudtrail_secret_calls_name_the_secret_from_every_place_aws_puts_it() {
    let arn_response = json!({"requestParameters": {"secretId": "prod/db"},
                              "responseElements": {"arn": ARN, "name": "prod/db"}});
    for (name, kind) in [
        ("PutSecretValue", ChangeKind::VersionMoved),
        ("UpdateSecretVersionStage", ChangeKind::VersionMoved),
        ("UpdateSecret", ChangeKind::VersionMoved),
        ("RotateSecret", ChangeKind::VersionMoved),
        ("DeleteSecret", ChangeKind::Deleted),
        ("RestoreSecret", ChangeKind::Restored),
    ] {
        let e = cloudtrail(name, arn_response.clone());
        assert_eq!(changes(&e), [(secret("prod/db"), kind)], "{name}");
    }
    // Events before February 2024 spell it `aRN`.
    let e = cloudtrail(
        "DeleteSecret",
        json!({"requestParameters": {"secretId": ARN, "recoveryWindowInDays": 7},
               "responseElements": {"aRN": ARN, "name": "prod/db",
                                    "deletionDate": "May 9, 2024, 10:11:12 AM"}}),
    );
    assert_eq!(changes(&e), [(secret("prod/db"), ChangeKind::Deleted)]);
    // The caller's secretId alone: a name, a full ARN, or a partial ARN.
    for id in [
        "prod/db",
        ARN,
        "arn:aws:secretsmanager:us-west-2:012345678901:secret:prod/db",
    ] {
        let e = cloudtrail(
            "PutSecretValue",
            json!({"requestParameters": {"secretId": id, "clientRequestToken": "t"},
                   "responseElements": null}),
        );
        assert_eq!(changes(&e)[0].0, secret("prod/db"), "{id}");
    }
    // CreateSecret carries the new name in requestParameters.name.
    let e = cloudtrail(
        "CreateSecret",
        json!({"requestParameters": {"name": "prod/new"}, "responseElements": {"arn":
            "arn:aws:secretsmanager:us-west-2:012345678901:secret:prod/new-Qw3rTy"}}),
    );
    assert_eq!(
        changes(&e),
        [(secret("prod/new"), ChangeKind::VersionMoved)]
    );
}

#[test]
fn rotation_service_events_carry_the_secret_elsewhere() {
    let mut e = cloudtrail(
        "RotationSucceeded",
        json!({"requestParameters": null, "responseElements": null,
               "additionalEventData": {"SecretId": ARN},
               "eventType": "AwsServiceEvent",
               "userIdentity": {"accountId": "012345678901",
                                "invokedBy": "secretsmanager.amazonaws.com"}}),
    );
    e["detail-type"] = json!("AWS Service Event via CloudTrail");
    assert_eq!(changes(&e), [(secret("prod/db"), ChangeKind::VersionMoved)]);
    let mut e = cloudtrail(
        "RotationSucceeded",
        json!({"serviceEventDetails": {"secretId": ARN}, "eventType": "AwsServiceEvent"}),
    );
    e["detail-type"] = json!("AWS Service Event via CloudTrail");
    // Region from the detail when the envelope lacks it.
    e.as_object_mut().unwrap().remove("region");
    assert_eq!(changes(&e)[0].0, secret("prod/db"));
}

#[test]
fn calls_that_change_nothing_announce_nothing() {
    for name in [
        "GetSecretValue",
        "DescribeSecret",
        "TagResource",
        "RotationStarted",
        "RotationFailed",
    ] {
        let e = cloudtrail(name, json!({"requestParameters": {"secretId": ARN}}));
        assert_eq!(parse(&e.to_string()), Ok(vec![]), "{name}");
    }
    // A call that failed changed nothing either.
    let e = cloudtrail(
        "PutSecretValue",
        json!({"errorCode": "AccessDenied", "errorMessage": "denied",
               "requestParameters": {"secretId": "prod/db"}}),
    );
    assert_eq!(parse(&e.to_string()), Ok(vec![]));
    // Other services' events.
    let e = json!({"version": "0", "id": "x", "detail-type": "EC2 Instance State-change Notification",
                   "source": "aws.ec2", "region": "us-east-1", "detail": {"state": "running"}});
    assert_eq!(parse(&e.to_string()), Ok(vec![]));
}

#[test]
fn cloudtrail_parameter_calls() {
    let call = |name: &str, request: serde_json::Value| {
        json!({
            "version": "0", "id": "x", "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.ssm", "account": "123456789012", "region": "us-east-1",
            "time": "2024-05-02T10:11:12Z",
            "detail": {"eventSource": "ssm.amazonaws.com", "eventName": name,
                       "awsRegion": "us-east-1", "requestParameters": request}
        })
    };
    assert_eq!(
        changes(&call(
            "PutParameter",
            json!({"name": "/prod/db/url", "type": "SecureString", "overwrite": true})
        )),
        [(parameter("/prod/db/url"), ChangeKind::VersionMoved)]
    );
    assert_eq!(
        changes(&call(
            "DeleteParameters",
            json!({"names": ["/a/b", "/a/c"]})
        )),
        [
            (parameter("/a/b"), ChangeKind::Deleted),
            (parameter("/a/c"), ChangeKind::Deleted)
        ]
    );
    assert_eq!(
        parse(&call("GetParameters", json!({"names": ["/a/b"]})).to_string()),
        Ok(vec![])
    );
}

#[test]
fn sns_envelopes_are_unwrapped() {
    let envelope = json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-west-2:012345678901:secret-changes",
        "Message": label_updated().to_string(),
        "Timestamp": "2024-02-06T16:43:49.123Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-west-2.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe"
    });
    assert_eq!(
        changes(&envelope),
        [(secret("prod/db"), ChangeKind::VersionMoved)]
    );
    let mut bad = envelope.clone();
    bad["Message"] = json!("not json at all");
    assert_eq!(parse(&bad.to_string()), Err(Malformed::BadSnsMessage));
}

#[test]
fn garbage_is_malformed_and_the_error_never_repeats_the_body() {
    let secretish = "hunter2-s3cr3t-value";
    let bodies = [
        format!("{secretish} not json"),
        format!("[\"{secretish}\"]"),
        json!({"password": secretish}).to_string(),
        json!({"detail-type": "Secret Label Updated", "source": "aws.secretsmanager",
               "region": "us-east-1", "detail": {"labelUpdated": secretish}})
        .to_string(),
        json!({"detail-type": "Secret Label Updated", "source": "aws.secretsmanager",
               "region": "us-east-1", "resources": [format!("arn:aws:s3:::{secretish}")],
               "detail": {}})
        .to_string(),
        json!({"detail-type": "Parameter Store Change", "source": "aws.ssm",
               "detail": {"name": "/x", "operation": "Update"}})
        .to_string(),
        String::new(),
    ];
    for body in &bodies {
        let err = parse(body).expect_err(body);
        let message = err.to_string();
        assert!(!message.contains(secretish), "{message}");
        assert!(!message.is_empty());
    }
    assert_eq!(parse(&bodies[0]), Err(Malformed::NotJson));
    assert_eq!(parse(&bodies[2]), Err(Malformed::NotAnEvent("detail-type")));
    assert!(parse(&bodies[5])
        .unwrap_err()
        .to_string()
        .contains("without a region"));
}
