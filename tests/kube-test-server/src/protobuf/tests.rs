//! Bodies built by encoding k8s-pb structs with prost, as a Go client would send them.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as pb_apps;
use k8s_pb::api::core::v1 as pb_core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::json;

use super::*;
use crate::registry::Registry;

fn rt(group: &str, plural: &str) -> ResourceType {
    let version = "v1";
    Registry::builtin()
        .find(group, version, plural)
        .cloned()
        .expect("built-in resource")
}

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [MAGIC.to_vec(), unknown.encode_to_vec()].concat()
}

/// ObjectMeta the way Go encodes it: every non-pointer field is on the wire, even empty.
fn meta(name: &str, namespace: &str) -> pb_meta::ObjectMeta {
    pb_meta::ObjectMeta {
        name: Some(name.into()),
        generate_name: Some(String::new()),
        namespace: Some(namespace.into()),
        self_link: Some(String::new()),
        uid: Some(String::new()),
        resource_version: Some(String::new()),
        generation: Some(0),
        creation_timestamp: Some(pb_meta::Time::default()),
        ..Default::default()
    }
}

fn err_of(r: ApiResult<Value>) -> (u16, String) {
    let e = r.expect_err("decoding should fail");
    (
        e.code,
        e.to_status()["message"].as_str().unwrap().to_string(),
    )
}

#[test]
fn secret_data_becomes_base64_and_go_zero_values_are_omitted() {
    let secret = pb_core::Secret {
        metadata: Some(meta("s", "demo")),
        immutable: None,
        data: BTreeMap::from([("k".into(), b"v".to_vec()), ("bin".into(), vec![0, 255])]),
        string_data: BTreeMap::new(),
        r#type: Some("Opaque".into()),
    };
    let body = envelope("v1", "Secret", secret.encode_to_vec());
    let obj = decode(&body, &rt("", "secrets"), "v1").unwrap();
    assert_eq!(
        obj,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": "demo"},
            "data": {"bin": "AP8=", "k": "dg=="},
            "type": "Opaque",
        })
    );
}

#[test]
fn pointer_fields_keep_their_zero_value() {
    let secret = pb_core::Secret {
        metadata: Some(meta("s", "demo")),
        immutable: Some(false),
        r#type: Some(String::new()),
        ..Default::default()
    };
    let body = envelope("v1", "Secret", secret.encode_to_vec());
    let obj = decode(&body, &rt("", "secrets"), "v1").unwrap();
    assert_eq!(obj["immutable"], json!(false));
    assert!(obj.get("type").is_none(), "{obj}");
}

fn container() -> pb_core::Container {
    let probe = pb_core::Probe {
        handler: Some(pb_core::ProbeHandler {
            http_get: Some(pb_core::HttpGetAction {
                path: Some("/healthz".into()),
                port: Some(IntOrString {
                    r#type: Some(1),
                    int_val: Some(0),
                    str_val: Some("http".into()),
                }),
                host: Some(String::new()),
                scheme: Some("HTTP".into()),
                http_headers: vec![],
            }),
            ..Default::default()
        }),
        initial_delay_seconds: Some(5),
        timeout_seconds: Some(0),
        period_seconds: Some(10),
        success_threshold: Some(0),
        failure_threshold: Some(3),
        termination_grace_period_seconds: None,
    };
    pb_core::Container {
        name: Some("web".into()),
        image: Some("nginx".into()),
        ports: vec![pb_core::ContainerPort {
            name: Some("http".into()),
            host_port: Some(0),
            container_port: Some(80),
            protocol: Some("TCP".into()),
            host_ip: Some(String::new()),
        }],
        env: vec![
            pb_core::EnvVar {
                name: Some("MODE".into()),
                value: Some("prod".into()),
                value_from: None,
            },
            pb_core::EnvVar {
                name: Some("PASSWORD".into()),
                value: Some(String::new()),
                value_from: Some(pb_core::EnvVarSource {
                    secret_key_ref: Some(pb_core::SecretKeySelector {
                        local_object_reference: Some(pb_core::LocalObjectReference {
                            name: Some("creds".into()),
                        }),
                        key: Some("password".into()),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            },
        ],
        resources: Some(pb_core::ResourceRequirements {
            limits: BTreeMap::from([(
                "memory".into(),
                Quantity {
                    string: Some("128Mi".into()),
                },
            )]),
            requests: BTreeMap::from([(
                "cpu".into(),
                Quantity {
                    string: Some("250m".into()),
                },
            )]),
            claims: vec![],
        }),
        liveness_probe: Some(probe),
        termination_message_path: Some(String::new()),
        image_pull_policy: Some(String::new()),
        stdin: Some(false),
        tty: Some(false),
        ..Default::default()
    }
}

#[test]
fn deployment_pod_template_converts_field_by_field() {
    let deployment = pb_apps::Deployment {
        metadata: Some(meta("web", "demo")),
        spec: Some(pb_apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(pb_meta::LabelSelector {
                match_labels: BTreeMap::from([("app".into(), "web".into())]),
                match_expressions: vec![],
            }),
            template: Some(pb_core::PodTemplateSpec {
                metadata: Some(pb_meta::ObjectMeta {
                    labels: BTreeMap::from([("app".into(), "web".into())]),
                    ..meta("", "")
                }),
                spec: Some(pb_core::PodSpec {
                    containers: vec![container()],
                    restart_policy: Some(String::new()),
                    host_network: Some(false),
                    automount_service_account_token: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(pb_apps::DeploymentStrategy {
                r#type: Some("RollingUpdate".into()),
                rolling_update: Some(pb_apps::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(1),
                        str_val: Some(String::new()),
                    }),
                    max_surge: None,
                }),
            }),
            min_ready_seconds: Some(0),
            revision_history_limit: None,
            paused: Some(false),
            progress_deadline_seconds: None,
        }),
        status: Some(pb_apps::DeploymentStatus::default()),
    };
    let body = envelope("apps/v1", "Deployment", deployment.encode_to_vec());
    let obj = decode(&body, &rt("apps", "deployments"), "v1").unwrap();
    assert_eq!(
        obj,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "automountServiceAccountToken": false,
                        "containers": [{
                            "name": "web",
                            "image": "nginx",
                            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                            "env": [
                                {"name": "MODE", "value": "prod"},
                                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {
                                    "name": "creds", "key": "password", "optional": false,
                                }}},
                            ],
                            "resources": {
                                "limits": {"memory": "128Mi"},
                                "requests": {"cpu": "250m"},
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                                "initialDelaySeconds": 5,
                                "periodSeconds": 10,
                                "failureThreshold": 3,
                            },
                        }],
                    },
                },
            },
            "status": {},
        })
    );
}

#[test]
fn timestamps_and_managed_fields() {
    let mut m = meta("n", "");
    m.creation_timestamp = Some(pb_meta::Time {
        seconds: Some(1_700_000_000),
        nanos: Some(123),
    });
    m.managed_fields = vec![pb_meta::ManagedFieldsEntry {
        manager: Some("kubectl".into()),
        operation: Some("Update".into()),
        api_version: Some("v1".into()),
        time: Some(pb_meta::Time {
            seconds: Some(1_700_000_001),
            nanos: None,
        }),
        fields_type: Some("FieldsV1".into()),
        fields_v1: Some(pb_meta::FieldsV1 {
            raw: Some(br#"{"f:metadata":{}}"#.to_vec()),
        }),
        subresource: Some(String::new()),
    }];
    let ns = pb_core::Namespace {
        metadata: Some(m),
        spec: Some(pb_core::NamespaceSpec::default()),
        status: Some(pb_core::NamespaceStatus::default()),
    };
    let body = envelope("v1", "Namespace", ns.encode_to_vec());
    let obj = decode(&body, &rt("", "namespaces"), "v1").unwrap();
    assert_eq!(obj["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(
        obj["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2023-11-14T22:13:21Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {}},
        }])
    );
    assert_eq!(obj["spec"], json!({}));
}

#[test]
fn missing_type_meta_defaults_to_the_endpoint_kind() {
    let cm = pb_core::ConfigMap {
        metadata: Some(meta("c", "demo")),
        data: BTreeMap::from([("a".into(), "b".into())]),
        ..Default::default()
    };
    let unknown = Unknown {
        raw: Some(cm.encode_to_vec()),
        ..Default::default()
    };
    let body = [MAGIC.to_vec(), unknown.encode_to_vec()].concat();
    let obj = decode(&body, &rt("", "configmaps"), "v1").unwrap();
    assert_eq!(obj["kind"], "ConfigMap");
    assert_eq!(obj["data"], json!({"a": "b"}));
}

#[test]
fn malformed_bodies_are_bad_requests() {
    let secrets = rt("", "secrets");
    let (code, msg) = err_of(decode(br#"{"kind":"Secret"}"#, &secrets, "v1"));
    assert_eq!(code, 400);
    assert_eq!(
        msg,
        "the object provided is unrecognized (must be of type Secret): provided data does not \
         appear to be a protobuf message, expected prefix [107 56 115 0] ({\"kind\":\"Secret\"})"
    );
    let (code, msg) = err_of(decode(&MAGIC, &secrets, "v1"));
    assert_eq!((code, msg.contains("empty body")), (400, true), "{msg}");

    let good = envelope("v1", "Secret", pb_core::Secret::default().encode_to_vec());
    let (code, msg) = err_of(decode(&good[..good.len() - 3], &secrets, "v1"));
    assert_eq!(code, 400);
    assert!(
        msg.starts_with("the object provided is unrecognized (must be of type Secret): failed to decode Protobuf message"),
        "{msg}"
    );

    let secret = pb_core::Secret {
        metadata: Some(meta("s", "demo")),
        ..Default::default()
    }
    .encode_to_vec();
    let body = envelope("v1", "Secret", secret[..secret.len() - 2].to_vec());
    let (code, msg) = err_of(decode(&body, &secrets, "v1"));
    assert_eq!(code, 400);
    assert!(
        msg.starts_with("Secret in version \"v1\" cannot be handled as a Secret: failed to decode Protobuf message"),
        "{msg}"
    );
}

#[test]
fn unregistered_kinds_and_fields_newer_than_the_json_model_are_refused() {
    let (code, msg) = err_of(decode(
        &envelope("v1", "Pod", vec![]),
        &rt("", "secrets"),
        "v1",
    ));
    assert_eq!(code, 400);
    assert!(
        msg.starts_with(
            "Pod in version \"v1\" cannot be handled as a Secret: no kind \"Pod\" is registered"
        ),
        "{msg}"
    );

    let deployment = pb_apps::Deployment {
        metadata: Some(meta("web", "demo")),
        spec: Some(pb_apps::DeploymentSpec {
            template: Some(pb_core::PodTemplateSpec {
                metadata: None,
                spec: Some(pb_core::PodSpec {
                    workload_ref: Some(pb_core::WorkloadReference::default()),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let body = envelope("apps/v1", "Deployment", deployment.encode_to_vec());
    let (code, msg) = err_of(decode(&body, &rt("apps", "deployments"), "v1"));
    assert_eq!(code, 400);
    assert_eq!(
        msg,
        "Deployment in version \"v1\" cannot be handled as a Deployment: PodSpec.workloadRef is \
         not supported by this server (its API is Kubernetes 1.34)"
    );

    let mut bad_port = container();
    bad_port.ports.clear();
    bad_port
        .liveness_probe
        .as_mut()
        .unwrap()
        .handler
        .as_mut()
        .unwrap()
        .http_get
        .as_mut()
        .unwrap()
        .port = Some(IntOrString {
        r#type: Some(7),
        ..Default::default()
    });
    let deployment = pb_apps::Deployment {
        spec: Some(pb_apps::DeploymentSpec {
            template: Some(pb_core::PodTemplateSpec {
                metadata: None,
                spec: Some(pb_core::PodSpec {
                    containers: vec![bad_port],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let body = envelope("apps/v1", "Deployment", deployment.encode_to_vec());
    let (code, msg) = err_of(decode(&body, &rt("apps", "deployments"), "v1"));
    assert_eq!(
        (code, msg.ends_with("impossible IntOrString.Type 7")),
        (400, true),
        "{msg}"
    );
}

#[test]
fn custom_resources_do_not_take_protobuf() {
    let mut crs = rt("", "secrets");
    crs.custom = true;
    let (code, msg) = err_of(decode(&envelope("v1", "Secret", vec![]), &crs, "v1"));
    assert_eq!(code, 415);
    assert!(msg.contains("application/vnd.kubernetes.protobuf"), "{msg}");
}

#[test]
fn delete_options_take_the_envelope_type() {
    let opts = pb_meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(pb_meta::Preconditions {
            uid: Some("u-1".into()),
            resource_version: None,
        }),
        orphan_dependents: None,
        propagation_policy: Some("Foreground".into()),
        dry_run: vec!["All".into()],
        ignore_store_read_error_with_cluster_breaking_potential: None,
    };
    let body = envelope("v1", "DeleteOptions", opts.encode_to_vec());
    let obj = decode_delete_options(&body, &rt("", "secrets"), "v1").unwrap();
    assert_eq!(
        obj,
        json!({
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "u-1"},
            "propagationPolicy": "Foreground",
            "dryRun": ["All"],
        })
    );
}

#[test]
fn fields_newer_than_the_k8s_pb_messages_are_refused() {
    // A ConfigMap whose metadata (field 1) carries a field 99 that ObjectMeta does not have.
    let configmap = |extra: &[u8]| {
        let mut m = meta("c", "demo").encode_to_vec();
        m.extend(extra);
        let mut raw = vec![0x0a, u8::try_from(m.len()).unwrap()];
        raw.extend(m);
        envelope("v1", "ConfigMap", raw)
    };
    let (code, msg) = err_of(decode(
        &configmap(&[0x9a, 0x06, 0x01, b'x']),
        &rt("", "configmaps"),
        "v1",
    ));
    assert_eq!(code, 400);
    assert_eq!(
        msg,
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: protobuf field .1.99 is \
         unknown to this server (its messages are Kubernetes 1.35's)"
    );
    // The same field left empty, as a newer Go client encodes an unset non-pointer field.
    let obj = decode(&configmap(&[0x9a, 0x06, 0x00]), &rt("", "configmaps"), "v1").unwrap();
    assert_eq!(obj["metadata"], json!({"name": "c", "namespace": "demo"}));
}
