//! `arnsync convert` as users run it: the built binary on a folder of manifests, its exit
//! codes, `--check`, `-o` and standard input.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const STORE: &str = "\
# the team's store
apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata:
  name: aws
  namespace: app
spec:
  provider:
    aws:
      service: SecretsManager
      region: eu-west-1
";

const EXTERNAL_SECRET: &str = "\
apiVersion: external-secrets.io/v1alpha1
kind: ExternalSecret
metadata:
  name: db
  namespace: app
spec:
  secretStoreRef:
    name: aws
  dataFrom:
  - key: prod/db
";

const PUSH_SECRET: &str = "\
apiVersion: external-secrets.io/v1alpha1
kind: PushSecret
metadata:
  name: push
  namespace: app
spec:
  secretStoreRefs: [{name: aws}]
";

fn arnsync(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_arnsync"))
        .arg("convert")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the arnsync binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn write(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

#[test]
fn a_folder_converts_with_exit_codes_for_ci() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("manifests");
    write(
        &dir,
        "store.yaml",
        &format!("{STORE}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: app}}\n"),
    );
    write(&dir, "apps/db/external-secret.yml", EXTERNAL_SECRET);
    write(&dir, "notes.txt", "not: [yaml");
    write(&dir, ".git/config.yaml", "not: [yaml");
    let dir_arg = dir.to_str().unwrap();

    let out = arnsync(&[dir_arg], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("# the team's store\napiVersion: arnsync.io/v1alpha1\nkind: SecretStore"),
        "{stdout}"
    );
    assert!(
        stdout.contains("kind: Namespace"),
        "other kinds pass through: {stdout}"
    );
    assert!(
        stdout.contains("- extract:\n      key: prod/db"),
        "v1alpha1 dataFrom rewritten: {stdout}"
    );

    write(&dir, "push.yaml", PUSH_SECRET);
    let out = arnsync(&[dir_arg], "");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let push = dir.join("push.yaml");
    assert!(
        stderr.starts_with(&format!(
            "{}#1 PushSecret app/push: arnsync only reads from AWS",
            push.display()
        )),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains("PushSecret") && stdout.contains("kind: ExternalSecret"),
        "{stdout}"
    );

    let out = arnsync(&["--check", dir_arg], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("would be left out"));

    let written = tmp.path().join("arnsync.yaml");
    let out = arnsync(&["-o", written.to_str().unwrap(), dir_arg], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let file = std::fs::read_to_string(&written).unwrap();
    assert_eq!(
        file.matches("apiVersion: arnsync.io/v1alpha1").count(),
        2,
        "{file}"
    );

    write(&dir, "broken.yaml", "kind: [ExternalSecret\n");
    std::fs::remove_file(&written).unwrap();
    let out = arnsync(&["-o", written.to_str().unwrap(), dir_arg], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("broken.yaml: not valid YAML"),
        "{}",
        text(&out.stderr)
    );
    assert!(!written.exists(), "nothing is written after an error");
}

#[test]
fn standard_input_and_usage_errors() {
    let out = arnsync(&[], EXTERNAL_SECRET);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["apiVersion"], "arnsync.io/v1alpha1");
    assert_eq!(doc["spec"]["dataFrom"][0]["extract"]["key"], "prod/db");

    let out = arnsync(&["-", "--check"], &format!("{STORE}---\n{PUSH_SECRET}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("<stdin>#2 PushSecret app/push:"));

    assert_eq!(arnsync(&["--no-such-flag"], "").status.code(), Some(2));
    assert_eq!(
        arnsync(&["/nonexistent/manifests"], "").status.code(),
        Some(2)
    );
}
