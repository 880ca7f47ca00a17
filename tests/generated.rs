//! Generated artifacts are never edited by hand: these tests fail when they drift.

use std::path::Path;

#[test]
fn committed_crds_match_the_rust_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/arnsync.io.yaml");
    let committed = std::fs::read_to_string(&path).expect("crds/arnsync.io.yaml");
    assert!(
        committed == arnsync::api::crds_yaml(),
        "crds/arnsync.io.yaml is out of date: run `cargo run -- crds > crds/arnsync.io.yaml`"
    );
}

#[test]
fn crd_short_names_do_not_clash_with_external_secrets_operator() {
    let yaml = arnsync::api::crds_yaml();
    for eso in ["es", "ss", "css", "ces"] {
        assert!(
            !yaml.contains(&format!("\n    - {eso}\n")),
            "short name {eso} belongs to ESO"
        );
    }
    for ours in ["arnes", "arnss", "arncss", "arnces"] {
        assert!(yaml.contains(&format!("\n    - {ours}\n")), "{ours}");
    }
}
