//! The CRDs' CEL rules (x-kubernetes-validations), evaluated client-side with kube's CEL
//! validator: every rule compiles, good manifests pass, and each bad spec is refused with our
//! message, as the API server would refuse it at `kubectl apply`.

use kube::core::cel::Validator;
use kube::CustomResourceExt;
use serde_json::{json, Value};

use arnsync::api::{ClusterExternalSecret, ClusterSecretStore, ExternalSecret, SecretStore};

fn schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .unwrap()
}

fn check<K: CustomResourceExt>(spec: Value) -> Result<(), String> {
    let obj = json!({
        "apiVersion": "arnsync.io/v1alpha1",
        "kind": K::crd().spec.names.kind,
        "metadata": {"name": "x", "namespace": "app"},
        "spec": spec,
    });
    Validator::new()
        .validate(&schema::<K>(), &obj, None)
        .map_err(|e| format!("{e:?}"))
}

fn es(data: Value) -> Value {
    json!({"secretStoreRef": {"name": "aws"}, "data": data})
}

fn refused(result: Result<(), String>, message: &str) {
    match result {
        Ok(()) => panic!("expected a refusal with {message:?}"),
        Err(e) => assert!(
            e.contains(message),
            "refused, but not with {message:?}: {e}"
        ),
    }
}

#[test]
fn good_external_secrets_pass() {
    for spec in [
        es(
            json!([{"secretKey": "a", "remoteRef": {"key": "prod/db", "property": "p", "version": "AWSPREVIOUS",
                    "conversionStrategy": "Default", "decodingStrategy": "None", "metadataPolicy": "None"}}]),
        ),
        es(json!([{"secretKey": "a", "remoteRef": {"key": "prod/db", "version": "uuid/v1"}}])),
        es(
            json!([{"secretKey": "a", "remoteRef": {"key": "arn:aws:ssm:us-east-1:123456789012:parameter/p", "version": "stable"}}]),
        ),
        json!({"secretStoreRef": {"name": "aws"}, "target": {"name": "db-creds.v1"},
               "dataFrom": [{"extract": {"key": "prod/db"}},
                            {"find": {"path": "/prod/"}, "rewrite": [{"transform": {"template": "{{ .value | upper }}"}}]},
                            {"find": {"name": {"regexp": "^prod/"}, "tags": {"team": "a"}}}]}),
        json!({"secretStoreRef": {"name": "aws"}, "target": {"template": {"engineVersion": "v2", "data": {"k": "static"}}}}),
        json!({"secretStoreRef": {"name": "aws"}, "target": {"template": {"templateFrom": [{"literal": "k: v"}]}}}),
    ] {
        check::<ExternalSecret>(spec.clone()).unwrap_or_else(|e| panic!("{spec}: {e}"));
    }
}

#[test]
fn bad_external_secrets_are_refused_with_a_message_that_says_what_to_do() {
    refused(
        check::<ExternalSecret>(
            json!({"secretStoreRef": {"name": "aws"}, "dataFrom": [{"extract": {"key": "k"}, "find": {"name": {"regexp": "x"}}}]}),
        ),
        "set exactly one of extract and find",
    );
    refused(
        check::<ExternalSecret>(
            json!({"secretStoreRef": {"name": "aws"}, "dataFrom": [{"sourceRef": {"generatorRef": {"kind": "ECRAuthorizationToken", "name": "ecr"}}}]}),
        ),
        "sourceRef is not supported",
    );
    refused(
        check::<ExternalSecret>(es(
            json!([{"secretKey": "a", "remoteRef": {"key": "k"}, "sourceRef": {"storeRef": {"name": "other"}}}]),
        )),
        "sourceRef is not supported",
    );
    refused(
        check::<ExternalSecret>(
            json!({"secretStoreRef": {"name": "aws"}, "target": {"template": {"engineVersion": "v1", "data": {"k": "v"}}}}),
        ),
        "engineVersion v1 is not supported",
    );
    refused(
        check::<ExternalSecret>(
            json!({"secretStoreRef": {"name": "aws"}, "target": {"creationPolicy": "Merge", "deletionPolicy": "Delete"}, "data": [{"secretKey": "a", "remoteRef": {"key": "k"}}]}),
        ),
        "use deletionPolicy Merge or Retain",
    );
    refused(
        check::<ExternalSecret>(
            json!({"secretStoreRef": {"name": "aws"}, "dataFrom": [{"extract": {"key": "k"}, "rewrite": [{}]}]}),
        ),
        "set exactly one of regexp and transform",
    );
    refused(
        check::<ExternalSecret>(
            json!({"secretStoreRef": {"name": "aws"}, "syncWindows": {"kind": "Allow", "windows": []},
                   "data": [{"secretKey": "a", "remoteRef": {"key": "k"}}]}),
        ),
        "spec.syncWindows is not supported",
    );
    refused(
        check::<ExternalSecret>(
            json!({"secretStoreRef": {"name": "aws"}, "target": {"template": {"metadata": {"finalizers": ["x"]}}},
                   "data": [{"secretKey": "a", "remoteRef": {"key": "k"}}]}),
        ),
        "target.template.metadata.finalizers is not supported",
    );
    refused(
        check::<ExternalSecret>(es(
            json!([{"secretKey": "a", "remoteRef": {"key": "k", "metadataPolicy": "Fetch"}}]),
        )),
        "metadataPolicy Fetch",
    );
    refused(
        check::<ExternalSecret>(
            json!({"secretStoreRef": {"name": "aws"}, "target": {"name": "Bad_Name"}, "data": [{"secretKey": "a", "remoteRef": {"key": "k"}}]}),
        ),
        "target.name must be a DNS subdomain",
    );
    refused(
        check::<ExternalSecret>(json!({"secretStoreRef": {"name": "aws"}})),
        "nothing to sync",
    );
}

fn store(aws: Value) -> Value {
    let mut provider = json!({"service": "SecretsManager", "region": "us-east-1"});
    for (k, v) in aws.as_object().into_iter().flatten() {
        provider[k] = v.clone();
    }
    json!({"provider": {"aws": provider}})
}

#[test]
fn stores_keep_credentials_where_they_belong() {
    let keys = |ns: Option<&str>| {
        let mut sel = json!({"name": "aws-keys", "key": "id"});
        if let Some(ns) = ns {
            sel["namespace"] = json!(ns);
        }
        json!({"secretRef": {"accessKeyIDSecretRef": sel.clone(), "secretAccessKeySecretRef": sel}})
    };
    let jwt = |ns: Option<&str>| {
        let mut sa = json!({"name": "app"});
        if let Some(ns) = ns {
            sa["namespace"] = json!(ns);
        }
        json!({"jwt": {"serviceAccountRef": sa}})
    };
    check::<SecretStore>(store(json!({"auth": keys(None)}))).unwrap();
    check::<SecretStore>(store(json!({"auth": jwt(None)}))).unwrap();
    refused(
        check::<SecretStore>(store(json!({"auth": keys(Some("other"))}))),
        "a SecretStore reads credentials only from its own namespace",
    );
    refused(
        check::<SecretStore>(store(json!({"auth": jwt(Some("other"))}))),
        "a SecretStore may use only a ServiceAccount of its own namespace",
    );
    refused(
        check::<SecretStore>(store(json!({"region": ""}))),
        "region must not be empty",
    );
    refused(
        check::<SecretStore>(store(
            json!({"sessionTagsPolicy": "Custom", "customSessionTags": {"a": "b"}}),
        )),
        "sessionTagsPolicy and customSessionTags are not supported",
    );
    check::<SecretStore>(store(
        json!({"failoverRegions": ["us-west-2", "eu-west-1"]}),
    ))
    .unwrap();
    refused(
        check::<SecretStore>(store(
            json!({"failoverRegions": ["us-west-2", "us-west-2"]}),
        )),
        "provider.aws.failoverRegions must not repeat a region",
    );
    refused(
        check::<ClusterSecretStore>(store(json!({"failoverRegions": ["us-east-1"]}))),
        "provider.aws.failoverRegions must not list provider.aws.region itself",
    );
    let both = json!({"secretRef": keys(None)["secretRef"], "jwt": jwt(None)["jwt"]});
    refused(
        check::<SecretStore>(store(json!({"auth": both}))),
        "set at most one of secretRef and jwt",
    );
    check::<ClusterSecretStore>(store(json!({"auth": keys(Some("ops"))}))).unwrap();
    refused(
        check::<ClusterSecretStore>(store(json!({"auth": keys(None)}))),
        "a ClusterSecretStore must name the namespace of every provider.aws.auth.secretRef",
    );
    refused(
        check::<ClusterSecretStore>(store(json!({"auth": jwt(None)}))),
        "a ClusterSecretStore must name the namespace of provider.aws.auth.jwt.serviceAccountRef",
    );
    let mut conditions =
        store(json!({"role": "arn:aws:iam::123456789012:role/r", "externalID": "x"}));
    conditions["conditions"] = json!([{"namespaces": ["a"]}, {"namespaceSelector": {"matchLabels": {"k": "v"}}},
                                      {"namespaceRegexes": ["team-.*"]}]);
    check::<ClusterSecretStore>(conditions).unwrap();
}

/// The real API server estimates each rule's worst-case cost from the schema's bounds and
/// refuses a CRD over 10,000,000 per rule or 100,000,000 in all (the Kubernetes test server
/// implements the same estimate). The shipped CRDs keep a tenth of that at most, so that bounds
/// can grow and rules can be added without a surprise at `kubectl apply`.
#[test]
fn rule_cost_estimates_stay_far_below_the_api_servers_budget() {
    const PER_RULE_LIMIT: u64 = 10_000_000;
    const TOTAL_LIMIT: u64 = 100_000_000;
    let crds =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/arnsync.io.yaml"))
            .expect("crds/arnsync.io.yaml");
    for doc in serde_yaml::Deserializer::from_str(&crds) {
        let crd: Value = serde::Deserialize::deserialize(doc).expect("CRD YAML");
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        kube_test_server::cel_cost::check_crd(&crd)
            .unwrap_or_else(|causes| panic!("{name} would be refused: {causes:#?}"));
        let costs = kube_test_server::cel_cost::rule_costs(&crd);
        assert!(!costs.is_empty(), "{name} has CEL rules");
        let total: u64 = costs.iter().map(|c| c.cost).sum();
        for c in &costs {
            println!("{name} {} {}", c.field, c.cost);
            assert!(
                c.cost <= PER_RULE_LIMIT / 10,
                "{name}: {} costs {}: bound the strings and lists it reads",
                c.field,
                c.cost
            );
        }
        println!("{name} total {total}");
        assert!(total <= TOTAL_LIMIT / 10, "{name}: total {total}");
    }
}

#[test]
fn a_cluster_external_secret_carries_the_external_secret_rules() {
    let ces = |spec: Value| json!({"namespaceSelectors": [{}], "externalSecretSpec": spec});
    check::<ClusterExternalSecret>(ces(es(
        json!([{"secretKey": "a", "remoteRef": {"key": "k"}}]),
    )))
    .unwrap();
    refused(
        check::<ClusterExternalSecret>(ces(json!({"secretStoreRef": {"name": "aws"}}))),
        "nothing to sync",
    );
    refused(
        check::<ClusterExternalSecret>(ces(json!({"secretStoreRef": {"name": "aws"},
            "dataFrom": [{"sourceRef": {"generatorRef": {"kind": "Password", "name": "p"}}}]}))),
        "sourceRef is not supported",
    );
}
