use super::*;

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

fn run_on(options: &Options, stdin: &str) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(options, &mut stdin.as_bytes(), &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn exit_codes_and_the_report() {
    let clean = format!("{STORE}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: app}}\n");
    let (code, out, err) = run_on(&Options::default(), &clean);
    assert_eq!((code, err.as_str()), (EXIT_OK, ""));
    assert_eq!(out.matches("\n---\n").count() + 1, 2, "{out}");
    let push = "apiVersion: external-secrets.io/v1alpha1\nkind: PushSecret\nmetadata: {name: p, namespace: app}\n";
    let (code, out, err) = run_on(&Options::default(), &format!("{clean}---\n{push}"));
    assert_eq!(code, EXIT_LEFT_OUT);
    assert!(!out.contains("PushSecret"), "left out of the output: {out}");
    assert!(
        out.contains("kind: Namespace") && out.contains("arnsync.io/v1alpha1"),
        "{out}"
    );
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with("<stdin>#3 PushSecret app/p: arnsync only reads from AWS"),
        "{err}"
    );
    let (code, out, _) = run_on(
        &Options {
            check: true,
            ..Options::default()
        },
        &format!("{clean}---\n{push}"),
    );
    assert_eq!((code, out.as_str()), (EXIT_LEFT_OUT, ""));
    let (code, out, err) = run_on(&Options::default(), &format!("{STORE}---\na: [1\n"));
    assert_eq!((code, out.as_str()), (EXIT_ERROR, ""));
    assert!(err.contains("<stdin>: not valid YAML"), "{err}");
    let missing = Options {
        paths: vec!["/nonexistent/eso.yaml".into()],
        ..Options::default()
    };
    assert_eq!(run_on(&missing, "").0, EXIT_ERROR);
}

#[test]
fn a_duplicate_key_refuses_its_document_only() {
    let text = format!("{STORE}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{a: b}}\ndata: {{c: d}}\n---\n{STORE}");
    let (code, out, err) = run_on(&Options::default(), &text);
    assert_eq!(code, EXIT_LEFT_OUT);
    assert!(
        err.starts_with("<stdin>#2 ?: not valid YAML: duplicate entry with key \"data\""),
        "{err}"
    );
    assert_eq!(out.matches("kind: SecretStore").count(), 2, "{out}");
}

#[test]
fn a_kubectl_list_is_converted_item_by_item() {
    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: external-secrets.io/v1\n  kind: ClusterSecretStore\n  metadata: {name: aws}\n  spec: {provider: {aws: {service: SecretsManager, region: us-east-1}}}\n- apiVersion: external-secrets.io/v1\n  kind: ClusterSecretStore\n  metadata: {name: gcp}\n  spec: {provider: {gcpsm: {projectID: p}}}\n";
    let (code, out, err) = run_on(&Options::default(), list);
    assert_eq!(code, EXIT_LEFT_OUT);
    assert!(
        err.starts_with("<stdin>#1.items[1] ClusterSecretStore gcp: spec.provider.gcpsm:"),
        "{err}"
    );
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&out)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 1, "{out}");
    let store: ClusterSecretStore = serde_yaml::from_value(docs[0].clone()).unwrap();
    assert_eq!(store.metadata.name.as_deref(), Some("aws"));
}
