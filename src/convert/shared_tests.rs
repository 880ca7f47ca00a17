//! Third-party ESO manifests, read in place from `../shared/eso-manifests`.

use std::path::Path;

use super::*;
use crate::api::ClusterExternalSecret;

/// Third-party ESO manifests (../shared/eso-manifests): every document converts into a valid
/// arnsync object or is reported with a reason.
#[test]
fn every_shared_eso_manifest_converts_or_is_reported() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/eso-manifests"
    ));
    if !dir.is_dir() {
        println!("skipped: {} is absent", dir.display());
        return;
    }
    let mut outcomes = std::collections::BTreeMap::new();
    for file in std::fs::read_dir(dir).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let docs = text::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for (i, doc) in docs.into_iter().enumerate() {
            let at = format!("{}#{}", &name[..3], i + 1);
            let outcome = match doc.value {
                Err(e) => format!("yaml: {e}"),
                Ok(v) => match convert(v) {
                    Outcome::Converted(v) => {
                        let kind = v["kind"].as_str().unwrap().to_string();
                        let json = serde_json::to_value(&v).unwrap();
                        let typed = match kind.as_str() {
                            "SecretStore" => serde_json::from_value::<SecretStore>(json).map(drop),
                            "ClusterSecretStore" => {
                                serde_json::from_value::<ClusterSecretStore>(json).map(drop)
                            }
                            "ClusterExternalSecret" => {
                                serde_json::from_value::<ClusterExternalSecret>(json).map(drop)
                            }
                            _ => serde_json::from_value::<ExternalSecret>(json).map(drop),
                        };
                        typed.unwrap_or_else(|e| panic!("{at}: converted, but not a {kind}: {e}"));
                        format!("converted {kind}")
                    }
                    Outcome::Refused(p) => {
                        assert!(
                            !p.is_empty() && p.iter().all(|p| p.message.len() > 20),
                            "{at}: {p:?}"
                        );
                        format!(
                            "refused: {}",
                            p.iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(" | ")
                        )
                    }
                    Outcome::Kept(_) => "kept".into(),
                    Outcome::Empty => continue,
                },
            };
            outcomes.insert(at, outcome);
        }
    }
    let get = |at: &str| {
        outcomes
            .get(at)
            .unwrap_or_else(|| panic!("no {at}: {outcomes:#?}"))
    };
    let expect = |at: &str, starts: &str, contains: &str| {
        let o = get(at);
        assert!(o.starts_with(starts) && o.contains(contains), "{at}: {o}");
    };
    expect("017#1", "converted ClusterSecretStore", "");
    expect("028#1", "converted SecretStore", "");
    expect("028#2", "converted ExternalSecret", "");
    expect("035#2", "converted ExternalSecret", "");
    expect("006#1", "refused", "never writes");
    expect("016#1", "refused", "never writes");
    expect("015#1", "refused", "generator ECRAuthorizationToken");
    expect("029#4", "converted ClusterExternalSecret", "");
    expect("005#1", "refused", "metadataPolicy Fetch");
    expect(
        "004#4",
        "refused: spec.provider.aws.sessionTagsPolicy and customSessionTags are not supported",
        "",
    );
    expect("012#1", "refused", "spec.secretStoreRef");
    expect("004#1", "refused", "role \"team-b\" is not an ARN");
    expect(
        "031#1",
        "refused",
        "metadata.name: \"NAME\" is not a valid name",
    );
    expect("046#1", "yaml: ", "duplicate entry with key \"dataFrom\"");
    let converted = outcomes
        .values()
        .filter(|o| o.starts_with("converted"))
        .count();
    assert!(converted >= 25, "{outcomes:#?}");
}
