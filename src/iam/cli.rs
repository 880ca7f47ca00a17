//! The command line of `arnsync iam-policy`: reading the objects (manifests or the cluster),
//! writing the policies, and `--check`.

use std::io::Write;
use std::path::PathBuf;

use serde_json::Value as Json;

use super::{check, plan, Inputs, Principal, Reader, Store};
use crate::api::{
    ClusterExternalSecret, ClusterSecretStore, ExternalSecret, SecretStore, StoreKind,
};
use crate::controller::store::ROLE_ARN_ANNOTATION;

/// `arnsync iam-policy` as the command line gives it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Manifest files and folders; empty: the cluster.
    pub paths: Vec<PathBuf>,
    /// The account of ARNs built from names.
    pub account: Option<String>,
    /// Only this principal (its id, as the output labels it).
    pub identity: Option<String>,
    /// A written policy to compare with the needed one.
    pub check: Option<PathBuf>,
    /// Ask AWS which KMS keys encrypt what is read (`kms:Decrypt` statements).
    pub resolve_kms: bool,
}

/// The policy was written, or the checked policy grants exactly what is needed.
pub const EXIT_OK: u8 = 0;
/// The checked policy misses a needed permission.
pub const EXIT_MISSING: u8 = 1;
/// Usage, I/O or parse error.
pub const EXIT_ERROR: u8 = 2;
/// The checked policy grants everything needed, and more.
pub const EXIT_EXCESS: u8 = 3;

/// Runs `arnsync iam-policy`; returns the exit code.
pub async fn run(opts: &Options, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8 {
    match run_inner(opts, stdout, stderr).await {
        Ok(code) => code,
        Err(errors) => {
            for e in errors {
                let _ = writeln!(stderr, "arnsync iam-policy: {e}");
            }
            EXIT_ERROR
        }
    }
}

async fn run_inner(
    opts: &Options,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<u8, Vec<String>> {
    let inputs = if opts.paths.is_empty() {
        from_cluster().await.map_err(|e| vec![e])?
    } else {
        let (inputs, notes) = from_files(&opts.paths)?;
        for n in notes {
            let _ = writeln!(stderr, "{n}");
        }
        inputs
    };
    let (principals, unused) = plan(&inputs, opts.account.as_deref());
    for u in unused {
        let _ = writeln!(stderr, "{u}");
    }
    // A store that no ExternalSecret reads through leaves its reading principal nothing to do.
    let (mut principals, idle): (Vec<Principal>, Vec<Principal>) =
        principals.into_iter().partition(|p| !p.grants.is_empty());
    for p in idle {
        let _ = writeln!(
            stderr,
            "{}: no ExternalSecret reads through {}; it needs no policy",
            p.id,
            p.stores.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if opts.resolve_kms {
        let (errors, notes) = super::kms::resolve(&mut principals, opts.account.as_deref()).await;
        for n in notes {
            let _ = writeln!(stderr, "{n}");
        }
        if !errors.is_empty() {
            return Err(errors);
        }
    }
    let principals: Vec<Principal> = match &opts.identity {
        Some(id) => {
            let chosen: Vec<Principal> =
                principals.iter().filter(|p| &p.id == id).cloned().collect();
            if chosen.is_empty() {
                return Err(vec![format!(
                    "--identity {id:?}: no such identity; the stores use {}",
                    ids(&principals)
                )]);
            }
            chosen
        }
        None => principals,
    };
    if principals.is_empty() {
        let why = if inputs.stores.is_empty() {
            "no SecretStore or ClusterSecretStore found"
        } else {
            "no ExternalSecret reads through the stores found"
        };
        return Err(vec![format!("{why}: nothing needs a policy")]);
    }
    match &opts.check {
        Some(path) => {
            let [p] = principals.as_slice() else {
                return Err(vec![format!(
                    "--check compares one identity's policy: choose it with --identity (one of {})",
                    ids(&principals)
                )]);
            };
            compare(p, path, stdout)
        }
        None => {
            let out = render(&principals);
            writeln!(stdout, "{out}")
                .map_err(|e| vec![format!("cannot write to standard output: {e}")])?;
            Ok(EXIT_OK)
        }
    }
}

fn ids(principals: &[Principal]) -> String {
    principals
        .iter()
        .map(|p| format!("{:?}", p.id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One principal: its policy. Several: an object keyed by principal id, each with the stores
/// that use it and its policy.
pub fn render(principals: &[Principal]) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry<'a> {
        stores: &'a std::collections::BTreeSet<String>,
        policy: super::Policy,
    }
    let rendered = match principals {
        [one] => serde_json::to_string_pretty(&one.policy()),
        many => serde_json::to_string_pretty(
            &many
                .iter()
                .map(|p| {
                    (
                        p.id.as_str(),
                        Entry {
                            stores: &p.stores,
                            policy: p.policy(),
                        },
                    )
                })
                .collect::<std::collections::BTreeMap<_, _>>(),
        ),
    };
    rendered.expect("a policy renders as JSON")
}

fn compare(p: &Principal, path: &PathBuf, stdout: &mut dyn Write) -> Result<u8, Vec<String>> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{name}: {e}")])?;
    let json: Json =
        serde_json::from_str(&text).map_err(|e| vec![format!("{name}: not valid JSON: {e}")])?;
    let written = check::parse(&json).map_err(|e| vec![format!("{name}: {e}")])?;
    let report = check::compare(&p.policy(), &written);
    let mut out = String::new();
    for m in &report.missing {
        out.push_str(&format!("{name}: missing: {m}\n"));
    }
    for e in &report.excess {
        out.push_str(&format!("{name}: excess: {e}\n"));
    }
    let code = if !report.missing.is_empty() {
        EXIT_MISSING
    } else if !report.excess.is_empty() {
        EXIT_EXCESS
    } else {
        out.push_str(&format!("{name}: grants exactly what {} needs\n", p.id));
        EXIT_OK
    };
    stdout
        .write_all(out.as_bytes())
        .map_err(|e| vec![format!("cannot write to standard output: {e}")])?;
    Ok(code)
}

/// The objects of manifest files and folders (ESO manifests converted first); the notes name
/// the documents left out.
fn from_files(paths: &[PathBuf]) -> Result<(Inputs, Vec<String>), Vec<String>> {
    let (docs, refused) = crate::convert::converted_documents(paths)?;
    let mut inputs = Inputs::default();
    let mut notes: Vec<String> = refused
        .into_iter()
        .map(|r| format!("{r} (left out: arnsync would not accept it)"))
        .collect();
    for (at, doc) in docs {
        let json = match serde_json::to_value(&doc) {
            Ok(j) => j,
            Err(_) => continue,
        };
        let text = |k: &str| json.get(k).and_then(Json::as_str).unwrap_or_default();
        let (api, kind) = (text("apiVersion"), text("kind"));
        let added = match (api, kind) {
            ("v1", "ServiceAccount") => {
                let meta = &json["metadata"];
                let s = |k: &str| meta.get(k).and_then(Json::as_str).unwrap_or_default();
                let role = meta
                    .get("annotations")
                    .and_then(|a| a.get(ROLE_ARN_ANNOTATION))
                    .and_then(Json::as_str)
                    .map(str::to_string);
                inputs
                    .service_accounts
                    .insert((s("namespace").to_string(), s("name").to_string()), role);
                Ok(())
            }
            ("arnsync.io/v1alpha1", _) => add(&mut inputs, kind, json.clone()),
            _ => Ok(()),
        };
        if let Err(e) = added {
            notes.push(format!("{at} {kind}: {e} (left out)"));
        }
    }
    Ok((inputs, notes))
}

fn add(inputs: &mut Inputs, kind: &str, json: Json) -> Result<(), String> {
    let err = |e: serde_json::Error| e.to_string();
    match kind {
        "SecretStore" => {
            let s: SecretStore = serde_json::from_value(json).map_err(err)?;
            inputs.stores.push(Store {
                kind: StoreKind::SecretStore,
                namespace: s.metadata.namespace.clone(),
                name: s.metadata.name.clone().unwrap_or_default(),
                settings: s.spec.aws(),
            });
        }
        "ClusterSecretStore" => {
            let s: ClusterSecretStore = serde_json::from_value(json).map_err(err)?;
            inputs.stores.push(Store {
                kind: StoreKind::ClusterSecretStore,
                namespace: None,
                name: s.metadata.name.clone().unwrap_or_default(),
                settings: s.spec.aws(),
            });
        }
        "ExternalSecret" => {
            let es: ExternalSecret = serde_json::from_value(json).map_err(err)?;
            inputs.readers.push(Reader {
                label: es.label(),
                namespace: es.metadata.namespace.clone(),
                spec: es.spec,
            });
        }
        "ClusterExternalSecret" => {
            let ces: ClusterExternalSecret = serde_json::from_value(json).map_err(err)?;
            inputs.readers.push(Reader {
                label: ces.label(),
                namespace: None,
                spec: ces.spec.external_secret_spec,
            });
        }
        _ => {}
    }
    Ok(())
}

/// The objects of the cluster (KUBECONFIG, ~/.kube/config, or the in-cluster service account).
async fn from_cluster() -> Result<Inputs, String> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Api, ListParams};
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot reach the cluster: {e}"))?;
    let lp = ListParams::default();
    let listed = |what: &str, e: kube::Error| format!("cannot list {what}: {e}");
    let mut inputs = Inputs::default();
    for s in Api::<SecretStore>::all(client.clone())
        .list(&lp)
        .await
        .map_err(|e| listed("SecretStores", e))?
    {
        inputs.stores.push(Store {
            kind: StoreKind::SecretStore,
            namespace: s.metadata.namespace.clone(),
            name: s.metadata.name.clone().unwrap_or_default(),
            settings: s.spec.aws(),
        });
    }
    for s in Api::<ClusterSecretStore>::all(client.clone())
        .list(&lp)
        .await
        .map_err(|e| listed("ClusterSecretStores", e))?
    {
        inputs.stores.push(Store {
            kind: StoreKind::ClusterSecretStore,
            namespace: None,
            name: s.metadata.name.clone().unwrap_or_default(),
            settings: s.spec.aws(),
        });
    }
    for es in Api::<ExternalSecret>::all(client.clone())
        .list(&lp)
        .await
        .map_err(|e| listed("ExternalSecrets", e))?
    {
        inputs.readers.push(Reader {
            label: es.label(),
            namespace: es.metadata.namespace.clone(),
            spec: es.spec,
        });
    }
    // The ExternalSecrets a ClusterExternalSecret writes are listed above; the ClusterExternalSecret
    // adds its spec for namespaces it has not reached yet.
    for ces in Api::<ClusterExternalSecret>::all(client.clone())
        .list(&lp)
        .await
        .map_err(|e| listed("ClusterExternalSecrets", e))?
    {
        inputs.readers.push(Reader {
            label: ces.label(),
            namespace: None,
            spec: ces.spec.external_secret_spec,
        });
    }
    let wanted: Vec<(String, String)> = inputs
        .stores
        .iter()
        .filter_map(|s| {
            let sa = s.settings.jwt.as_ref()?;
            let ns = sa.namespace.clone().or_else(|| s.namespace.clone())?;
            Some((ns, sa.name.clone()))
        })
        .collect();
    for (ns, name) in wanted {
        let api = Api::<ServiceAccount>::namespaced(client.clone(), &ns);
        if let Ok(Some(sa)) = api.get_opt(&name).await {
            let role = sa
                .metadata
                .annotations
                .and_then(|a| a.get(ROLE_ARN_ANNOTATION).cloned());
            inputs.service_accounts.insert((ns, name), role);
        }
    }
    Ok(inputs)
}
