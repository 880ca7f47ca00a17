use super::*;
use crate::api::{ClusterExternalSecret, EngineVersion, Service};

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

fn converted(text: &str) -> Value {
    match convert(yaml(text)) {
        Outcome::Converted(v) => v,
        other => panic!("expected a conversion, got {other:?}"),
    }
}

fn refused(text: &str) -> Vec<Problem> {
    match convert(yaml(text)) {
        Outcome::Refused(p) => p,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn eso_es(spec: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: db, namespace: app}}\nspec:\n{spec}"
    )
}

const STORE: &str = "\
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: aws
  namespace: app
spec:
  provider:
    aws:
      service: ParameterStore  # what the store reads
      region: eu-central-1
      role: arn:aws:iam::123456789012:role/reader
";

#[test]
fn a_clean_v1_store_changes_only_its_api_version_and_keeps_its_comments() {
    let out = converted(STORE);
    let mut expected = yaml(STORE);
    expected["apiVersion"] = "arnsync.io/v1alpha1".into();
    assert_eq!(out, expected);
    let store: SecretStore = serde_yaml::from_value(out.clone()).unwrap();
    assert_eq!(store.spec.provider.aws.service, Service::ParameterStore);
    let written = text::render(&out, Some(STORE));
    assert_eq!(
        written,
        STORE.replace("external-secrets.io/v1", "arnsync.io/v1alpha1")
    );
}

#[test]
fn every_eso_api_version_of_the_three_kinds_converts() {
    for version in ["v1", "v1beta1", "v1alpha1"] {
        for kind in ["SecretStore", "ClusterSecretStore"] {
            let doc = STORE
                .replace(
                    "external-secrets.io/v1",
                    &format!("external-secrets.io/{version}"),
                )
                .replace("kind: SecretStore", &format!("kind: {kind}"));
            assert_eq!(
                converted(&doc)["apiVersion"],
                "arnsync.io/v1alpha1",
                "{version} {kind}"
            );
        }
        let doc = eso_es(
            "  secretStoreRef: {name: aws}\n  data: [{secretKey: k, remoteRef: {key: db}}]\n",
        )
        .replace(
            "external-secrets.io/v1",
            &format!("external-secrets.io/{version}"),
        );
        let es: ExternalSecret = serde_yaml::from_value(converted(&doc)).unwrap();
        assert_eq!(es.spec.data[0].remote_ref.key, "db", "{version}");
    }
}

#[test]
fn v1alpha1_data_from_entries_become_extracts() {
    let doc = eso_es("  secretStoreRef: {name: aws}\n  dataFrom:\n  - key: db\n    property: conn\n    version: AWSPREVIOUS\n  - key: other\n")
        .replace("/v1\n", "/v1alpha1\n");
    let es: ExternalSecret = serde_yaml::from_value(converted(&doc)).unwrap();
    let extract = es.spec.data_from[0].extract.as_ref().unwrap();
    assert_eq!(
        (
            extract.key.as_str(),
            extract.property.as_deref(),
            extract.version.as_deref()
        ),
        ("db", Some("conn"), Some("AWSPREVIOUS"))
    );
    assert_eq!(es.spec.data_from[1].extract.as_ref().unwrap().key, "other");
    // The same shape in v1 is not ESO's either: it is named, not rewritten.
    let p = refused(&doc.replace("/v1alpha1\n", "/v1\n"));
    assert!(p.iter().any(|p| p.field == "spec.dataFrom[0].key"), "{p:?}");
}

#[test]
fn a_v1alpha1_template_that_renders_needs_engine_v2() {
    let spec = "  secretStoreRef: {name: aws}\n  data: [{secretKey: k, remoteRef: {key: db}}]\n  target:\n    template:\n      data: {url: '{{ .k | toString }}'}\n";
    let alpha = eso_es(spec).replace("/v1\n", "/v1alpha1\n");
    let p = refused(&alpha);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].field, "spec.target.template.engineVersion");
    assert!(
        p[0].message.contains("set engineVersion: v2"),
        "{}",
        p[0].message
    );
    // Opted in to v2: carried over as it is.
    let v2 = alpha.replace(
        "    template:\n",
        "    template:\n      engineVersion: v2\n",
    );
    let es: ExternalSecret = serde_yaml::from_value(converted(&v2)).unwrap();
    let template = es.spec.target.template.unwrap();
    assert_eq!(template.engine_version, Some(EngineVersion::V2));
    // Nothing to render (type and plain labels) means the same on both engines.
    let plain = es_alpha_plain_template();
    let out = converted(&plain);
    assert!(out["spec"]["target"]["template"]
        .get("engineVersion")
        .is_none());
    // A v1 document defaults to v2 and converts; one that asks for v1 is refused by the operator.
    converted(&eso_es(spec));
    let v1 = eso_es(spec).replace(
        "    template:\n",
        "    template:\n      engineVersion: v1\n",
    );
    let p = refused(&v1);
    assert!(
        p[0].to_string()
            .contains("engineVersion v1 is not supported"),
        "{p:?}"
    );
}

fn es_alpha_plain_template() -> String {
    eso_es("  secretStoreRef: {name: aws}\n  data: [{secretKey: tls.crt, remoteRef: {key: db}}]\n  target:\n    template:\n      type: kubernetes.io/tls\n      metadata: {labels: {team: a}}\n")
        .replace("/v1\n", "/v1alpha1\n")
}

#[test]
fn a_store_of_another_provider_is_named_once() {
    let p = refused(
        "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: vault}\nspec:\n  provider:\n    vault: {server: 'https://vault:8200', path: secret}\n",
    );
    assert_eq!(p.len(), 1, "no 'aws is missing' on top: {p:?}");
    assert_eq!(p[0].field, "spec.provider.vault");
    assert!(
        p[0].message.contains("vault provider is not supported"),
        "{}",
        p[0].message
    );
}

#[test]
fn push_secrets_and_generators_are_reported_not_written() {
    let push = refused("apiVersion: external-secrets.io/v1alpha1\nkind: PushSecret\nmetadata: {name: p, namespace: app}\nspec: {}\n");
    assert!(push[0].message.contains("never writes"), "{push:?}");
    let generator = refused("apiVersion: generators.external-secrets.io/v1alpha1\nkind: Password\nmetadata: {name: pw}\nspec: {length: 32}\n");
    assert!(
        generator[0]
            .message
            .contains("Password is an External Secrets Operator generator"),
        "{generator:?}"
    );
    let sink = refused("apiVersion: external-secrets.io/v1alpha1\nkind: ClusterPushSecret\nmetadata: {name: c}\nspec: {}\n");
    assert!(sink[0].message.contains("never writes"), "{sink:?}");
}

#[test]
fn a_cluster_external_secret_is_checked_as_the_external_secrets_it_writes() {
    let ces = |spec: &str| {
        format!("apiVersion: external-secrets.io/v1beta1\nkind: ClusterExternalSecret\nmetadata: {{name: shared}}\nspec:\n  namespaceSelectors: [{{matchLabels: {{team: a}}}}]\n  refreshTime: 1m\n  externalSecretSpec:\n{spec}")
    };
    let out = converted(&ces("    secretStoreRef: {name: aws, kind: ClusterSecretStore}\n    data: [{secretKey: k, remoteRef: {key: db}}]\n"));
    let typed: ClusterExternalSecret = serde_yaml::from_value(out).unwrap();
    assert_eq!(typed.spec.external_secret_spec.data[0].remote_ref.key, "db");
    let p = refused(&ces("    secretStoreRef: {name: aws}\n    refreshInterval: 1 day\n    data: [{secretKey: k, remoteRef: {key: db}}]\n"));
    assert!(
        p[0].to_string()
            .starts_with("spec.externalSecretSpec.refreshInterval: invalid duration"),
        "{p:?}"
    );
    let p = refused(&ces(
        "    dataFrom: [{sourceRef: {generatorRef: {kind: Password, name: pw}}}]\n",
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].field, "spec.externalSecretSpec.dataFrom[0].sourceRef");
    // v1alpha1: the embedded spec is rewritten like an ExternalSecret's.
    let alpha = ces("    secretStoreRef: {name: aws}\n    dataFrom: [{key: db}]\n")
        .replace("v1beta1", "v1alpha1");
    let typed: ClusterExternalSecret = serde_yaml::from_value(converted(&alpha)).unwrap();
    assert_eq!(
        typed.spec.external_secret_spec.data_from[0]
            .extract
            .as_ref()
            .unwrap()
            .key,
        "db"
    );
}

#[test]
fn an_external_secret_reading_a_generator_names_the_generator() {
    let p = refused(&eso_es("  dataFrom:\n  - sourceRef:\n      generatorRef: {apiVersion: generators.external-secrets.io/v1alpha1, kind: ECRAuthorizationToken, name: ecr}\n"));
    assert_eq!(
        p.len(),
        1,
        "the missing secretStoreRef follows from the generator: {p:?}"
    );
    assert_eq!(p[0].field, "spec.dataFrom[0].sourceRef");
    assert!(
        p[0].message.contains("generator ECRAuthorizationToken"),
        "{}",
        p[0].message
    );
}

#[test]
fn unknown_fields_and_values_are_named_with_their_path() {
    let p = refused(&eso_es(
        "  secretStoreRef: {name: aws}\n  syncWindows: {kind: allow}\n  target: {manifest: {apiVersion: v1, kind: ConfigMap}}\n  data:\n  - secretKey: k\n    remoteRef: {key: db, conversionStrategy: Unicode}\n",
    ));
    let lines: Vec<String> = p.iter().map(ToString::to_string).collect();
    for expected in [
        // Unknown to arnsync's schema.
        "spec.target.manifest: arnsync has no such field",
        // Outside an enum.
        "spec.data[0].remoteRef.conversionStrategy: Unicode is not allowed: use one of Default",
        // Declared, and refused by a CEL rule of the CRD, as the API server would.
        "spec.syncWindows is not supported",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "{expected:?} in {lines:#?}"
        );
    }
    assert_eq!(lines.len(), 3, "{lines:#?}");
}

#[test]
fn type_errors_say_what_is_expected_without_quoting_the_value() {
    let p = refused(&eso_es(
        "  secretStoreRef: {name: aws}\n  target: {template: {data: {password: 840917}}}\n",
    ));
    assert_eq!(p[0].field, "spec.target.template.data.password");
    assert_eq!(p[0].message, "must be a string (found a number): quote it");
    let report = p.iter().map(ToString::to_string).collect::<String>();
    assert!(!report.contains("840917"), "{report}");
    // Also where the typed object, not the schema, finds it.
    let p = refused(
        &eso_es("  secretStoreRef: {name: aws}\n  data: [{secretKey: k, remoteRef: {key: db}}]\n")
            .replace(
                "metadata: {name: db, namespace: app}",
                "metadata: {name: db, namespace: app, annotations: {sha: 840917}}",
            ),
    );
    assert_eq!(p[0].field, "metadata.annotations.sha");
    assert!(
        !p[0].message.contains("840917") && p[0].message.contains("expected a string"),
        "{p:?}"
    );
}

#[test]
fn the_operators_own_checks_run_on_what_the_schema_accepts() {
    let p = refused(&eso_es(
        "  secretStoreRef: {name: aws}\n  data: [{secretKey: tags, remoteRef: {key: db, metadataPolicy: Fetch}}]\n",
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].to_string()
            .starts_with("spec.data[0]: metadataPolicy Fetch"),
        "{p:?}"
    );
    let p = refused(&eso_es(
        "  secretStoreRef: {name: aws}\n  data: [{secretKey: k, remoteRef: {key: db}, sourceRef: {storeRef: {name: other}}}]\n",
    ));
    assert!(
        p[0].message.contains("use one ExternalSecret per store"),
        "{p:?}"
    );
}

#[test]
fn names_and_the_operators_store_checks_are_part_of_the_check() {
    let p = refused(&STORE.replace(
        "name: aws\n  namespace: app",
        "name: AWS\n  namespace: my_team",
    ));
    let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["metadata.name", "metadata.namespace"], "{p:?}");
    let p = refused(&STORE.replace("arn:aws:iam::123456789012:role/reader", "reader"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].to_string()
            .starts_with("spec.provider.aws role \"reader\" is not an ARN"),
        "{p:?}"
    );
    // The CRD's rules, as the API server evaluates them.
    let keys = "      auth: {secretRef: {accessKeyIDSecretRef: {name: k, key: id, namespace: other}, secretAccessKeySecretRef: {name: k, key: secret}}}\n";
    let p = refused(&format!("{STORE}{keys}"));
    assert!(
        p[0].to_string()
            .contains("a SecretStore reads credentials only from its own namespace"),
        "{p:?}"
    );
    let p = refused(&format!(
        "{STORE}  retrySettings: {{retryInterval: soon}}\n"
    ));
    assert!(
        p[0].to_string()
            .starts_with("spec.retrySettings.retryInterval: invalid duration"),
        "{p:?}"
    );
}

/// ESO has no `failoverRegions`; one written in by hand is kept, under the CRD's and the
/// operator's rules.
#[test]
fn failover_regions_pass_under_the_store_rules() {
    let out = converted(&format!("{STORE}      failoverRegions: [eu-west-1]\n"));
    assert_eq!(
        out["spec"]["provider"]["aws"]["failoverRegions"],
        yaml("[eu-west-1]")
    );
    let p = refused(&format!("{STORE}      failoverRegions: [eu-central-1]\n"));
    assert!(
        p[0].to_string()
            .contains("failoverRegions must not list provider.aws.region itself"),
        "{p:?}"
    );
}

#[test]
fn other_documents_pass_through_unchanged() {
    for doc in [
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n",
        "apiVersion: arnsync.io/v1alpha1\nkind: ExternalSecret\nmetadata: {name: e}\nspec: {anything: goes}\n",
        "just: a mapping\n",
    ] {
        assert_eq!(convert(yaml(doc)), Outcome::Kept(yaml(doc)));
    }
    assert_eq!(convert(Value::Null), Outcome::Empty);
}

#[test]
fn an_exported_object_loses_esos_status_and_server_metadata() {
    let exported = r#"
apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata:
  name: aws
  uid: 0b5e
  resourceVersion: "42"
  generation: 3
  creationTimestamp: "2024-01-01T00:00:00Z"
  finalizers: [externalsecrets.external-secrets.io/finalizer, team.example.com/keep]
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"apiVersion":"external-secrets.io/v1"}'
spec: {provider: {aws: {service: SecretsManager, region: us-east-1}}}
status: {conditions: [{type: Ready, status: "True", reason: Valid}], capabilities: ReadWrite}
"#;
    let out = converted(exported);
    assert!(out.get("status").is_none());
    let meta = &out["metadata"];
    for gone in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "annotations",
    ] {
        assert!(meta.get(gone).is_none(), "{gone} kept: {meta:?}");
    }
    assert_eq!(meta["finalizers"], yaml("[team.example.com/keep]"));
}

#[test]
fn documents_keep_their_text_and_comments_where_they_can() {
    let stream = format!("# header of the file\n---\n{STORE}---\n# a note\nkind: ConfigMap # inline\napiVersion: v1\n");
    let docs = text::parse(&stream).unwrap();
    assert_eq!(docs.len(), 2);
    let store = converted(docs[0].text.as_deref().unwrap());
    let written = text::render(&store, docs[0].text.as_deref());
    assert!(
        written.starts_with("# header of the file\napiVersion: arnsync.io/v1alpha1\n"),
        "{written}"
    );
    assert!(written.contains("# what the store reads"), "{written}");
    let kept = docs[1].value.clone().unwrap();
    assert_eq!(
        text::render(&kept, docs[1].text.as_deref()),
        "# a note\nkind: ConfigMap # inline\napiVersion: v1\n"
    );
    // Windows line ends, and a converted document whose content changed: written again.
    let crlf = STORE.replace('\n', "\r\n");
    let written = text::render(&converted(&crlf), Some(&crlf));
    assert!(
        written.contains("apiVersion: arnsync.io/v1alpha1\r\n"),
        "{written:?}"
    );
    let exported = format!("{STORE}status: {{capabilities: ReadWrite}}\n");
    let written = text::render(&converted(&exported), Some(&exported));
    assert!(
        !written.contains("status") && !written.contains('#'),
        "{written}"
    );
    assert_eq!(yaml(&written), converted(&exported));
}
