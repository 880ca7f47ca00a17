//! Which namespaces a ClusterExternalSecret selects, and what to do in each: pure functions over
//! what the reconciler listed, so that every rule is tested without an API server.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::ClusterExternalSecretSpec;
use crate::controller::store::selector_matches;

/// True when `spec` selects namespace `name` with `labels`: by name, or by any selector (the
/// older `namespaceSelector` included). With neither names nor selectors nothing is selected;
/// an empty selector (`{}`) selects every namespace, as in Kubernetes.
pub fn selects(
    spec: &ClusterExternalSecretSpec,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    spec.namespaces.iter().any(|n| n == name)
        || spec.selectors().any(|s| selector_matches(s, labels))
}

/// A namespace as the selection sees it.
pub struct NamespaceView<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// Being deleted: nothing is written there, and what is there goes with the namespace.
    pub terminating: bool,
}

/// The selected namespaces.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Selected and live: the ExternalSecret belongs there.
    pub live: BTreeSet<String>,
    /// Selected but being deleted.
    pub terminating: BTreeSet<String>,
}

impl Selection {
    pub fn of<'a>(
        spec: &ClusterExternalSecretSpec,
        namespaces: impl IntoIterator<Item = NamespaceView<'a>>,
    ) -> Selection {
        let mut s = Selection::default();
        for ns in namespaces {
            if !selects(spec, ns.name, ns.labels) {
                continue;
            }
            let set = if ns.terminating {
                &mut s.terminating
            } else {
                &mut s.live
            };
            set.insert(ns.name.to_string());
        }
        s
    }

    fn keeps(&self, namespace: &str) -> bool {
        self.live.contains(namespace) || self.terminating.contains(namespace)
    }
}

/// An ExternalSecret that exists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Existing {
    pub namespace: String,
    pub name: String,
    /// Created by this ClusterExternalSecret (its controller ownerReference has this uid).
    pub ours: bool,
}

/// What the reconciler does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Namespaces to server-side apply the ExternalSecret in (created or kept up to date).
    pub apply: Vec<String>,
    /// Selected namespaces that hold an ExternalSecret of the same name this one did not create:
    /// left untouched and reported.
    pub taken: Vec<String>,
    /// ExternalSecrets this one created that are no longer wanted (namespace no longer
    /// selected, or `externalSecretName` changed): (namespace, name).
    pub delete: Vec<(String, String)>,
}

pub fn plan(selection: &Selection, es_name: &str, existing: &[Existing]) -> Plan {
    let mut p = Plan::default();
    for ns in &selection.live {
        let foreign = existing
            .iter()
            .any(|e| &e.namespace == ns && e.name == es_name && !e.ours);
        if foreign {
            p.taken.push(ns.clone());
        } else {
            p.apply.push(ns.clone());
        }
    }
    let mut delete: BTreeSet<(String, String)> = BTreeSet::new();
    for e in existing.iter().filter(|e| e.ours) {
        if e.name != es_name || !selection.keeps(&e.namespace) {
            delete.insert((e.namespace.clone(), e.name.clone()));
        }
    }
    p.delete = delete.into_iter().collect();
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn spec(json: serde_json::Value) -> ClusterExternalSecretSpec {
        let mut full = json;
        full["externalSecretSpec"] = serde_json::json!({
            "secretStoreRef": {"name": "aws"},
            "data": [{"secretKey": "k", "remoteRef": {"key": "prod/db"}}]
        });
        serde_json::from_value(full).unwrap()
    }

    #[test]
    fn without_names_or_selectors_nothing_is_selected() {
        let s = spec(serde_json::json!({}));
        assert!(!selects(&s, "default", &labels(&[])));
        assert!(!selects(&s, "team-a", &labels(&[("team", "a")])));
    }

    #[test]
    fn an_empty_selector_selects_every_namespace() {
        let s = spec(serde_json::json!({"namespaceSelectors": [{}]}));
        assert!(selects(&s, "anything", &labels(&[])));
    }

    #[test]
    fn names_and_selectors_are_ored() {
        let s = spec(serde_json::json!({
            "namespaces": ["named"],
            "namespaceSelectors": [
                {"matchLabels": {"team": "a"}},
                {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]}
            ]
        }));
        assert!(selects(&s, "named", &labels(&[])));
        assert!(selects(&s, "x", &labels(&[("team", "a")])));
        assert!(selects(&s, "x", &labels(&[("tier", "api")])));
        assert!(!selects(&s, "x", &labels(&[("team", "b"), ("tier", "db")])));
        assert!(!selects(&s, "other", &labels(&[])));
    }

    #[test]
    fn match_labels_and_expressions_of_one_selector_must_all_hold() {
        let s = ClusterExternalSecretSpec {
            namespace_selectors: vec![LabelSelector {
                match_labels: Some(labels(&[("secrets", "aws")])),
                match_expressions: Some(vec![
                    LabelSelectorRequirement {
                        key: "env".into(),
                        operator: "NotIn".into(),
                        values: Some(vec!["dev".into()]),
                    },
                    LabelSelectorRequirement {
                        key: "frozen".into(),
                        operator: "DoesNotExist".into(),
                        values: None,
                    },
                ]),
            }],
            ..Default::default()
        };
        assert!(selects(
            &s,
            "a",
            &labels(&[("secrets", "aws"), ("env", "prod")])
        ));
        assert!(selects(&s, "a", &labels(&[("secrets", "aws")])));
        assert!(!selects(
            &s,
            "a",
            &labels(&[("secrets", "aws"), ("env", "dev")])
        ));
        assert!(!selects(
            &s,
            "a",
            &labels(&[("secrets", "aws"), ("frozen", "")])
        ));
        assert!(!selects(&s, "a", &labels(&[("env", "prod")])));
    }

    #[test]
    fn the_older_single_selector_is_honoured() {
        let s = spec(serde_json::json!({"namespaceSelector": {"matchLabels": {"cool": "label"}}}));
        assert!(selects(&s, "x", &labels(&[("cool", "label")])));
        assert!(!selects(&s, "x", &labels(&[("cool", "other")])));
    }

    #[test]
    fn terminating_namespaces_are_selected_apart() {
        let s = spec(serde_json::json!({"namespaceSelectors": [{"matchLabels": {"team": "a"}}]}));
        let a = labels(&[("team", "a")]);
        let none = labels(&[]);
        let sel = Selection::of(
            &s,
            [
                NamespaceView {
                    name: "live",
                    labels: &a,
                    terminating: false,
                },
                NamespaceView {
                    name: "going",
                    labels: &a,
                    terminating: true,
                },
                NamespaceView {
                    name: "unrelated",
                    labels: &none,
                    terminating: false,
                },
            ],
        );
        assert_eq!(sel.live, BTreeSet::from(["live".to_string()]));
        assert_eq!(sel.terminating, BTreeSet::from(["going".to_string()]));
    }

    fn existing(ns: &str, name: &str, ours: bool) -> Existing {
        Existing {
            namespace: ns.into(),
            name: name.into(),
            ours,
        }
    }

    fn selection(live: &[&str], terminating: &[&str]) -> Selection {
        Selection {
            live: live.iter().map(|s| s.to_string()).collect(),
            terminating: terminating.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn applies_where_selected_and_never_over_a_foreign_external_secret() {
        let p = plan(
            &selection(&["a", "b", "c"], &[]),
            "db",
            &[
                existing("a", "db", true),
                existing("b", "db", false),
                existing("c", "other", false),
            ],
        );
        assert_eq!(p.apply, ["a", "c"]);
        assert_eq!(p.taken, ["b"]);
        assert!(p.delete.is_empty());
    }

    #[test]
    fn deletes_only_its_own_where_no_longer_wanted() {
        let p = plan(
            &selection(&["a"], &["going"]),
            "db",
            &[
                existing("a", "db", true),
                existing("gone", "db", true),
                existing("going", "db", true),
                existing("foreign", "db", false),
                existing("a", "old-name", true),
            ],
        );
        assert_eq!(p.apply, ["a"]);
        assert_eq!(
            p.delete,
            [
                ("a".to_string(), "old-name".to_string()),
                ("gone".to_string(), "db".to_string())
            ]
        );
    }
}
