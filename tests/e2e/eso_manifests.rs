//! External Secrets Operator manifests as published (ESO's documentation and ESO users' GitOps
//! repositories), read in place from `../shared/eso-manifests` and never copied here. Each
//! document, with only `apiVersion` changed, is applied as `kubectl apply --server-side` does
//! (strict field validation) and must have the outcome the table below gives; the
//! ExternalSecrets accepted then sync against moto (`sync`). Without the folder (a clone
//! elsewhere) the tests say so and pass.

mod cases;
mod stores;
mod sync;
mod table;

use std::path::Path;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
    ValidationDirective,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::harness::Env;
use table::{Outcome, DUPLICATE_KEYS, ROWS};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/eso-manifests");

/// The kinds whose objects are cluster-scoped.
const CLUSTER_KINDS: [&str; 2] = ["ClusterSecretStore", "ClusterExternalSecret"];

/// One YAML document of one file, `apiVersion` already changed to ours.
pub struct Doc {
    pub file: String,
    /// Position among the file's non-empty documents, from 0.
    pub index: usize,
    pub body: Value,
    /// The strict YAML parse's error when a mapping repeats a key. kubectl decodes YAML keeping
    /// the last value and sends JSON, so `body` holds the last one, as the server would see it.
    pub duplicate: Option<String>,
}

impl Doc {
    pub fn kind(&self) -> &str {
        self.body["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.body["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// The namespace `kubectl apply` would use: the document's, else `default`.
    pub fn namespace(&self) -> &str {
        self.body["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
    }

    pub fn cluster_scoped(&self) -> bool {
        CLUSTER_KINDS.contains(&self.kind())
    }

    pub fn label(&self) -> String {
        format!(
            "{} #{} {} {}",
            self.file,
            self.index,
            self.kind(),
            self.name()
        )
    }
}

/// Every document of every file, in file order; None (after saying so) when the folder is absent.
pub fn load() -> Option<Vec<Doc>> {
    let dir = Path::new(DIR);
    if !dir.is_dir() {
        eprintln!("skipped: {DIR} is absent (the ESO manifests are kept outside this repository)");
        return None;
    }
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = vec![];
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        // serde_json's maps keep the last of repeated keys; serde_yaml's own refuse them.
        let lenient = serde_yaml::Deserializer::from_str(&text).map(Value::deserialize);
        let strict = serde_yaml::Deserializer::from_str(&text).map(serde_yaml::Value::deserialize);
        let mut index = 0;
        for (doc, strict) in lenient.zip(strict) {
            let mut body = doc.unwrap_or_else(|e| panic!("{file}: {e}"));
            if body.is_null() {
                continue;
            }
            let api_version = body["apiVersion"].as_str().unwrap_or_default();
            assert!(
                api_version.starts_with("external-secrets.io/"),
                "{file} #{index}: apiVersion {api_version:?}"
            );
            body["apiVersion"] = json!("arnsync.io/v1alpha1");
            docs.push(Doc {
                file: file.clone(),
                index,
                body,
                duplicate: strict.err().map(|e| e.to_string()),
            });
            index += 1;
        }
    }
    Some(docs)
}

/// Creates `ns` unless it exists. A name the server refuses (`NAMESPACE`) stays absent: the
/// document's own apply then fails, and that is what the table asserts.
pub async fn ensure_namespace(env: &Env, ns: &str) {
    let api: Api<Namespace> = Api::all(env.client.clone());
    if api.get_opt(ns).await.ok().flatten().is_none() {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        let _ = api.create(&PostParams::default(), &ns).await;
    }
}

/// `kubectl apply --server-side --force-conflicts` (strict field validation) of `body`, through
/// the API its kind would have in our group.
pub async fn apply_doc(env: &Env, doc: &Doc, body: &Value) -> Result<(), kube::Error> {
    let api = dynamic_api(env, doc);
    let pp = PatchParams::apply("eso-manifests")
        .force()
        .validation(ValidationDirective::Strict);
    let name = body["metadata"]["name"].as_str().unwrap_or_default();
    api.patch(name, &pp, &Patch::Apply(body)).await.map(|_| ())
}

fn dynamic_api(env: &Env, doc: &Doc) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(arnsync::api::GROUP, "v1alpha1", doc.kind());
    let ar = ApiResource::from_gvk(&gvk);
    if doc.cluster_scoped() {
        Api::all_with(env.client.clone(), &ar)
    } else {
        Api::namespaced_with(env.client.clone(), doc.namespace(), &ar)
    }
}

/// Deletes the object `doc` made and waits until it is gone.
pub async fn delete_doc(env: &Env, doc: &Doc) {
    let api = dynamic_api(env, doc);
    let name = doc.name();
    api.delete(name, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("delete {}: {e}", doc.label()));
    env.eventually(
        &format!("{} gone", doc.label()),
        std::time::Duration::from_secs(30),
        || async { api.get_opt(name).await.unwrap().is_none().then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn eso_manifests_are_accepted_or_refused_naming_the_field() {
    let Some(docs) = load() else { return };
    let env = Env::start_without_operator().await;

    // The table covers every document, and names each by what it is.
    assert_eq!(docs.len(), ROWS.len(), "documents vs table rows");
    let mut wrong = vec![];
    let mut report = vec![];
    for (doc, row) in docs.iter().zip(ROWS) {
        assert!(
            doc.file.starts_with(row.file)
                && doc.index == row.index
                && doc.kind() == row.kind
                && doc.name() == row.name,
            "table row {}#{} {} {} does not describe {}",
            row.file,
            row.index,
            row.kind,
            row.name,
            doc.label()
        );
        let dup = DUPLICATE_KEYS
            .iter()
            .find(|(f, i, _)| doc.file.starts_with(f) && doc.index == *i);
        match (dup, &doc.duplicate) {
            (None, None) => {}
            (Some((_, _, key)), Some(e)) if e.contains(&format!("{key:?}")) => {}
            (want, got) => wrong.push(format!(
                "{}: duplicated key: expected {want:?}, YAML says {got:?}",
                doc.label()
            )),
        }

        if !doc.cluster_scoped() {
            ensure_namespace(&env, doc.namespace()).await;
        }
        let got = apply_doc(&env, doc, &doc.body).await;
        if got.is_ok() {
            // Each document stands alone: several share a kind and name (ESO's doc variants).
            delete_doc(&env, doc).await;
        }
        let outcome = row.outcome;
        let verdict = match (&outcome, &got) {
            (Outcome::Accepted, Ok(())) => Ok("accepted".to_string()),
            (Outcome::UnknownKind, Err(kube::Error::Api(s)))
                if s.code == 404 && s.message.contains("could not find the requested resource") =>
            {
                Ok(format!("404 {}", s.message))
            }
            (Outcome::Refused(parts), Err(kube::Error::Api(s)))
                if parts.iter().all(|p| s.message.contains(p)) =>
            {
                Ok(format!("refused {}: {}", s.code, s.message))
            }
            _ => Err(format!(
                "{}: expected {outcome:?}, got {}",
                doc.label(),
                match &got {
                    Ok(()) => "accepted".to_string(),
                    Err(kube::Error::Api(s)) => format!("{} {}", s.code, s.message),
                    Err(e) => e.to_string(),
                }
            )),
        };
        match verdict {
            Ok(v) => report.push(format!("{}: {v}", doc.label())),
            Err(e) => wrong.push(e),
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
