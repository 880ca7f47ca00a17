//! `arnsync iam-policy` as users run it: the built binary on the repository's examples, on
//! ESO manifests, and `--check` with its exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The public ESO manifests, kept outside the repository (as for `tests/e2e/eso_manifests.rs`);
/// `ESO_MANIFESTS` points elsewhere (a worktree's `../shared` is not the checkout's).
const ESO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/eso-manifests");

fn arnsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arnsync"))
        .arg("iam-policy")
        .args(args)
        // The cluster mode must not be reached by accident.
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .expect("the arnsync binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn examples() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples").to_string()
}

/// The IAM policy grammar: top-level `Version` (2012-10-17), `Statement`, optional `Id`; each
/// statement has `Effect` Allow|Deny, `Action` or `NotAction` (`service:Action` patterns),
/// `Resource` (ARNs or `*`), an optional `Condition` of operator → key → string|array.
fn assert_iam_grammar(policy: &Value) {
    let top = policy.as_object().expect("a policy is an object");
    for key in top.keys() {
        assert!(
            ["Version", "Statement", "Id"].contains(&key.as_str()),
            "unknown top-level key {key}"
        );
    }
    assert_eq!(policy["Version"], "2012-10-17");
    let statements = policy["Statement"]
        .as_array()
        .expect("Statement is an array");
    assert!(!statements.is_empty(), "a policy needs a statement");
    let strings = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => {
                assert!(!items.is_empty(), "an empty list in {v}");
                items
                    .iter()
                    .map(|i| i.as_str().expect("strings only").to_string())
                    .collect()
            }
            other => panic!("expected a string or an array of strings, got {other}"),
        }
    };
    let action = regex::Regex::new(r"^[a-z0-9-]+:[A-Za-z0-9*?]+$").unwrap();
    let mut sids = vec![];
    for s in statements {
        let s = s.as_object().expect("a statement is an object");
        for key in s.keys() {
            assert!(
                [
                    "Sid",
                    "Effect",
                    "Action",
                    "NotAction",
                    "Resource",
                    "NotResource",
                    "Condition",
                    "Principal"
                ]
                .contains(&key.as_str()),
                "unknown statement key {key}"
            );
        }
        if let Some(sid) = s.get("Sid") {
            let sid = sid.as_str().expect("Sid is a string");
            assert!(sid.chars().all(|c| c.is_ascii_alphanumeric()), "Sid {sid}");
            sids.push(sid.to_string());
        }
        assert!(matches!(s["Effect"].as_str(), Some("Allow" | "Deny")));
        let actions = s.get("Action").or(s.get("NotAction")).expect("Action");
        for a in strings(actions) {
            assert!(action.is_match(&a), "action {a}");
        }
        for r in strings(s.get("Resource").expect("Resource")) {
            assert!(r == "*" || r.starts_with("arn:aws"), "resource {r}");
            if r != "*" {
                assert!(r.split(':').count() >= 6, "ARN {r}");
            }
        }
        if let Some(c) = s.get("Condition") {
            for (_, keys) in c.as_object().expect("Condition is an object") {
                for (_, values) in keys.as_object().expect("condition keys are an object") {
                    strings(values);
                }
            }
        }
    }
    let unique = sids.len();
    sids.sort();
    sids.dedup();
    assert_eq!(sids.len(), unique, "Sids are unique");
}

/// Every policy of an output: the policy itself, or those of an object keyed by identity.
fn policies(out: &Value) -> Vec<(String, Value)> {
    if out.get("Version").is_some() {
        return vec![("".into(), out.clone())];
    }
    out.as_object()
        .expect("an object of identities")
        .iter()
        .map(|(id, entry)| {
            assert!(entry["Stores"].as_array().is_some_and(|s| !s.is_empty()));
            (id.clone(), entry["Policy"].clone())
        })
        .collect()
}

fn statement<'a>(policy: &'a Value, sid: &str) -> Option<&'a Value> {
    policy["Statement"]
        .as_array()?
        .iter()
        .find(|s| s["Sid"] == sid)
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|s| s.as_str().unwrap().to_string()).collect(),
        _ => vec![],
    }
}

#[test]
fn the_examples_need_their_secret_and_parameter_path() {
    let out = arnsync(&["-f", &examples(), "--account", "123456789012"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let policy: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_iam_grammar(&policy);
    let sids: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(
        sids,
        [
            "ReadSecrets",
            "ListSecrets",
            "ReadParameters",
            "FindParametersByPath"
        ]
    );
    assert_eq!(
        statement(&policy, "ReadSecrets").unwrap()["Resource"],
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:demo/db-??????"
    );
    assert_eq!(
        strings(&statement(&policy, "FindParametersByPath").unwrap()["Resource"]),
        [
            "arn:aws:ssm:us-east-1:123456789012:parameter/demo/app",
            "arn:aws:ssm:us-east-1:123456789012:parameter/demo/app/*"
        ]
    );
}

const MIXED: &str = "\
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: team, namespace: app}
spec:
  provider:
    aws:
      service: SecretsManager
      region: eu-west-1
      role: arn:aws:iam::222222222222:role/team
      sessionTags: [{key: team, value: a}]
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: db, namespace: app}
spec:
  secretStoreRef: {name: team}
  data:
  - secretKey: password
    remoteRef: {key: prod/db, property: password}
  - secretKey: token
    remoteRef: {key: prod/token}
  dataFrom:
  - find: {name: {regexp: '^prod/shared-.*'}}
---
apiVersion: arnsync.io/v1alpha1
kind: ClusterSecretStore
metadata: {name: parameters}
spec:
  provider:
    aws: {service: ParameterStore, region: eu-west-1, role: arn:aws:iam::222222222222:role/team}
  arnsync:
    eventQueue: https://sqs.eu-west-1.amazonaws.com/222222222222/rotations
---
apiVersion: arnsync.io/v1alpha1
kind: ExternalSecret
metadata: {name: config, namespace: app}
spec:
  secretStoreRef: {kind: ClusterSecretStore, name: parameters}
  data:
  - secretKey: url
    remoteRef: {key: /prod/url}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
";

fn mixed(dir: &Path) -> PathBuf {
    let path = dir.join("mixed.yaml");
    std::fs::write(&path, MIXED).unwrap();
    path
}

#[test]
fn eso_manifests_are_converted_and_every_identity_gets_its_statements() {
    let dir = tempfile::tempdir().unwrap();
    let path = mixed(dir.path());
    let out = arnsync(&["-f", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let all = policies(&out);
    for (_, p) in &all {
        assert_iam_grammar(p);
    }
    let ids: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["arn:aws:iam::222222222222:role/team", "operator"]);
    assert_eq!(
        out["operator"]["Stores"],
        serde_json::json!(["ClusterSecretStore parameters", "SecretStore app/team"])
    );
    let operator = &all[1].1;
    let assume = statement(operator, "AssumeRole").expect("AssumeRole");
    assert_eq!(
        strings(&assume["Action"]),
        ["sts:AssumeRole", "sts:TagSession"]
    );
    assert_eq!(assume["Resource"], "arn:aws:iam::222222222222:role/team");
    let team = &all[0].1;
    let sids: Vec<&str> = team["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(
        sids,
        [
            "ReadSecrets",
            "ListSecrets",
            "BatchReadSecrets",
            "ReadParameters",
            "EventQueue"
        ]
    );
    assert_eq!(
        strings(&statement(team, "ReadSecrets").unwrap()["Resource"]),
        [
            "arn:aws:secretsmanager:eu-west-1:222222222222:secret:prod/db-??????",
            "arn:aws:secretsmanager:eu-west-1:222222222222:secret:prod/shared-*",
            "arn:aws:secretsmanager:eu-west-1:222222222222:secret:prod/token-??????",
        ]
    );
    assert_eq!(
        statement(team, "ReadParameters").unwrap()["Resource"],
        "arn:aws:ssm:eu-west-1:222222222222:parameter/prod/url"
    );
    let queue = statement(team, "EventQueue").unwrap();
    assert_eq!(
        strings(&queue["Action"]),
        ["sqs:DeleteMessage", "sqs:ReceiveMessage"]
    );
    assert_eq!(
        queue["Resource"],
        "arn:aws:sqs:eu-west-1:222222222222:rotations"
    );
}

#[test]
fn check_passes_the_generated_policy_and_names_what_is_missing_or_too_much() {
    let dir = tempfile::tempdir().unwrap();
    let path = mixed(dir.path());
    let manifests = path.to_str().unwrap();
    let role = "arn:aws:iam::222222222222:role/team";
    let out = arnsync(&["-f", manifests, "--identity", role]);
    assert!(out.status.success(), "{}", stderr(&out));
    let policy: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_iam_grammar(&policy);
    let write = |name: &str, p: &Value| {
        let file = dir.path().join(name);
        std::fs::write(&file, serde_json::to_string_pretty(p).unwrap()).unwrap();
        file.to_str().unwrap().to_string()
    };
    let check = |file: &str| arnsync(&["-f", manifests, "--identity", role, "--check", file]);

    let exact = check(&write("exact.json", &policy));
    assert_eq!(exact.status.code(), Some(0), "{}", stdout(&exact));
    assert!(
        stdout(&exact).contains("grants exactly what"),
        "{}",
        stdout(&exact)
    );

    // One resource fewer.
    let mut fewer = policy.clone();
    let read = fewer["Statement"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["Sid"] == "ReadSecrets")
        .unwrap();
    read["Resource"].as_array_mut().unwrap().remove(0);
    let missing = check(&write("fewer.json", &fewer));
    assert_eq!(missing.status.code(), Some(1), "{}", stdout(&missing));
    let report = stdout(&missing);
    assert!(
        report.contains("missing: secretsmanager:DescribeSecret on arn:aws:secretsmanager:eu-west-1:222222222222:secret:prod/db-??????"),
        "{report}"
    );
    assert!(report.contains("missing: secretsmanager:GetSecretValue on arn:aws:secretsmanager:eu-west-1:222222222222:secret:prod/db-??????"));

    // One action fewer.
    let mut no_receive = policy.clone();
    let queue = no_receive["Statement"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["Sid"] == "EventQueue")
        .unwrap();
    queue["Action"] = "sqs:DeleteMessage".into();
    let missing = check(&write("no-receive.json", &no_receive));
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stdout(&missing)
            .lines()
            .filter(|l| l.contains("missing: "))
            .collect::<Vec<_>>(),
        [format!(
            "{}: missing: sqs:ReceiveMessage on arn:aws:sqs:eu-west-1:222222222222:rotations",
            dir.path().join("no-receive.json").display()
        )]
    );

    // Everything, and more: reported, with its own exit code.
    let broad = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["secretsmanager:*", "ssm:Get*", "sqs:*"], "Resource": "*"}
    ]});
    let excess = check(&write("broad.json", &broad));
    assert_eq!(excess.status.code(), Some(3), "{}", stdout(&excess));
    let report = stdout(&excess);
    assert!(!report.contains("missing:"), "{report}");
    assert!(
        report.contains("excess: Statement[0]: ssm:Get* on * is broader than needed (arn:aws:ssm:eu-west-1:222222222222:parameter/prod/url)"),
        "{report}"
    );
}

#[test]
fn check_refuses_malformed_policies_naming_file_statement_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = mixed(dir.path());
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": "*"}, {"Effect": "Allow", "Action": {"x": 1}, "Resource": "*"}]}"#,
    )
    .unwrap();
    let out = arnsync(&[
        "-f",
        path.to_str().unwrap(),
        "--identity",
        "operator",
        "--check",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "arnsync iam-policy: {}: Statement[1]: Action: expected a string or an array of strings",
            bad.display()
        )
    );
    // Several identities: --check asks which one.
    let out = arnsync(&[
        "-f",
        path.to_str().unwrap(),
        "--check",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("choose it with --identity"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn public_eso_manifests_give_valid_policies() {
    let dir = std::env::var("ESO_MANIFESTS").unwrap_or_else(|_| ESO_DIR.to_string());
    if !Path::new(&dir).is_dir() {
        eprintln!("skipped: {dir} is absent (the ESO manifests are kept outside this repository)");
        return;
    }
    let out = arnsync(&["-f", &dir]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Documents arnsync refuses are named, never their values.
    assert!(stderr(&out).contains("left out"), "{}", stderr(&out));
    let out: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let all = policies(&out);
    assert!(all.len() >= 3, "{out:#}");
    let mut seen = std::collections::BTreeSet::new();
    for (id, p) in &all {
        assert_iam_grammar(p);
        for s in p["Statement"].as_array().unwrap() {
            seen.insert(s["Sid"].as_str().unwrap().to_string());
        }
        assert!(id == "operator" || id.starts_with("arn:aws:iam::") || id.contains(':'));
    }
    // The documentation's finds name stores the files do not hold: no find statements here.
    for sid in ["ReadSecrets", "ListSecrets", "ReadParameters", "AssumeRole"] {
        assert!(seen.contains(sid), "no {sid} in {out:#}");
    }
}
