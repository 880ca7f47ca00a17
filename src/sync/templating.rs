//! `target.template` as a whole: `templateFrom` (ConfigMaps, Secrets, literals), `data`, and the
//! templated labels and annotations, rendered with the Go engine over the fetched values.
//! Pure: the ConfigMaps and Secrets named are read beforehand into [`TemplateSources`].

use std::collections::BTreeMap;

use crate::api::{MergePolicy, Template, TemplateFrom, TemplateRef, TemplateScope, TemplateTarget};

use super::{keys, template, PlanError};

/// The ConfigMaps and Secrets `templateFrom` names, by name: their keys and texts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateSources {
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
}

/// What a template gives the Secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub data: BTreeMap<String, Vec<u8>>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The ConfigMaps (first) and Secrets (second) a template's `templateFrom` reads.
pub fn named_sources(t: &Template) -> (Vec<String>, Vec<String>) {
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    for from in &t.template_from {
        if let Some(r) = &from.config_map {
            config_maps.push(r.name.clone());
        }
        if let Some(r) = &from.secret {
            secrets.push(r.name.clone());
        }
    }
    config_maps.dedup();
    secrets.dedup();
    (config_maps, secrets)
}

/// Renders `t` over `values`. With templates for data (`data` or `templateFrom` to Data), the
/// Secret holds the rendered keys only (mergePolicy Replace, the default) or the fetched keys
/// with the rendered ones written over them (Merge). `templateFrom` renders first, in order;
/// `data` last, so its keys win.
pub fn render_target(
    who: &str,
    t: &Template,
    values: BTreeMap<String, Vec<u8>>,
    sources: &TemplateSources,
) -> Result<Rendered, PlanError> {
    let err = |at: String, reason: String| PlanError::Template(format!("{who}: {at}: {reason}"));
    let root = root_of(&values);
    let mut out = Rendered::default();
    let mut templated_data = !t.data.is_empty();
    for (i, from) in t.template_from.iter().enumerate() {
        let at = format!("target.template.templateFrom[{i}]");
        let pairs = render_from(from, &root, sources).map_err(|e| err(at.clone(), e))?;
        match from.target.unwrap_or_default() {
            TemplateTarget::Data => {
                templated_data = true;
                for (k, v) in pairs {
                    keys::validate(&k)
                        .map_err(|e| PlanError::InvalidKey(format!("{who}: {at}: {e}")))?;
                    out.data.insert(k, v.into_bytes());
                }
            }
            TemplateTarget::Labels => out.labels.extend(pairs),
            TemplateTarget::Annotations => out.annotations.extend(pairs),
        }
    }
    let rendered = template::render(&t.data, &values)
        .map_err(|e| err("target.template.data".into(), e.to_string()))?;
    for k in rendered.keys() {
        keys::validate(k)
            .map_err(|e| PlanError::InvalidKey(format!("{who}: target.template.data: {e}")))?;
    }
    out.data.extend(rendered);
    if let Some(meta) = &t.metadata {
        for (kind, from, to) in [
            ("labels", &meta.labels, &mut out.labels),
            ("annotations", &meta.annotations, &mut out.annotations),
        ] {
            for (k, source) in from {
                let v = template::render_str(source, &root)
                    .map_err(|e| err(format!("target.template.metadata.{kind}[{k:?}]"), e))?;
                to.insert(k.clone(), v);
            }
        }
    }
    out.data = match (templated_data, t.merge_policy.unwrap_or_default()) {
        (false, _) => values,
        (true, MergePolicy::Replace) => out.data,
        (true, MergePolicy::Merge) => values.into_iter().chain(out.data).collect(),
    };
    Ok(out)
}

/// The variables of a template: every fetched key as a string.
fn root_of(values: &BTreeMap<String, Vec<u8>>) -> serde_json::Value {
    serde_json::Value::Object(
        values
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned().into()))
            .collect(),
    )
}

/// One `templateFrom` entry rendered to key/value pairs.
fn render_from(
    from: &TemplateFrom,
    root: &serde_json::Value,
    sources: &TemplateSources,
) -> Result<Vec<(String, String)>, String> {
    if let Some(literal) = &from.literal {
        return keys_and_values(&template::render_str(literal, root)?);
    }
    let (what, r, found) = match (&from.config_map, &from.secret) {
        (Some(r), _) => ("ConfigMap", r, sources.config_maps.get(&r.name)),
        (None, Some(r)) => ("Secret", r, sources.secrets.get(&r.name)),
        (None, None) => return Err("set one of configMap, secret and literal".into()),
    };
    let texts = found.ok_or_else(|| format!("{what} {} was not read", r.name))?;
    render_items(what, r, texts, root)
}

fn render_items(
    what: &str,
    r: &TemplateRef,
    texts: &BTreeMap<String, String>,
    root: &serde_json::Value,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in &r.items {
        let source = texts.get(&item.key).ok_or_else(|| {
            format!(
                "{what} {} has no key {:?}; add it or fix items[].key",
                r.name, item.key
            )
        })?;
        let text = template::render_str(source, root)
            .map_err(|e| format!("{what} {} key {:?}: {e}", r.name, item.key))?;
        match item.template_as.unwrap_or_default() {
            TemplateScope::Values => out.push((item.key.clone(), text)),
            TemplateScope::KeysAndValues => out.extend(keys_and_values(&text)?),
        }
    }
    Ok(out)
}

/// A rendered text that must be a YAML map of keys to values (templateAs KeysAndValues,
/// literal). Non-string values are written as their YAML text.
fn keys_and_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|_| {
        "the rendered template is not YAML: it must render to a map of keys to values".to_string()
    })?;
    let map = match doc {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => return Ok(vec![]),
        _ => return Err("the rendered template must be a YAML map of keys to values".into()),
    };
    map.into_iter()
        .map(|(k, v)| {
            let key = match k {
                serde_yaml::Value::String(s) => s,
                other => yaml_text(&other),
            };
            let value = match v {
                serde_yaml::Value::String(s) => s,
                other => yaml_text(&other),
            };
            Ok((key, value))
        })
        .collect()
}

fn yaml_text(v: &serde_yaml::Value) -> String {
    serde_yaml::to_string(v)
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(t: serde_json::Value) -> Template {
        serde_json::from_value(t).unwrap()
    }

    fn values() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([
            ("user".to_string(), b"app".to_vec()),
            ("password".to_string(), b"pw-Kilo-7".to_vec()),
        ])
    }

    fn text(r: &Rendered, k: &str) -> String {
        String::from_utf8(r.data[k].clone()).unwrap()
    }

    #[test]
    fn template_from_a_config_map_renders_values_and_keys_and_values() {
        let t = template(serde_json::json!({"templateFrom": [
            {"configMap": {"name": "tpl", "items": [
                {"key": "config.yaml", "templateAs": "Values"},
                {"key": "pairs", "templateAs": "KeysAndValues"}]}},
            {"target": "Annotations", "literal": "owner: {{ .user }}"},
            {"target": "Labels", "secret": {"name": "labels", "items": [{"key": "l", "templateAs": "KeysAndValues"}]}}
        ]}));
        let sources = TemplateSources {
            config_maps: BTreeMap::from([(
                "tpl".into(),
                BTreeMap::from([
                    ("config.yaml".into(), "db:\n  user: {{ .user }}\n".into()),
                    (
                        "pairs".into(),
                        "url: postgres://{{ .user }}@db\nport: 5432\n".into(),
                    ),
                ]),
            )]),
            secrets: BTreeMap::from([(
                "labels".into(),
                BTreeMap::from([("l".into(), "team: {{ .user | upper }}".into())]),
            )]),
        };
        let r = render_target("ES a/b", &t, values(), &sources).unwrap();
        assert_eq!(text(&r, "config.yaml"), "db:\n  user: app\n");
        assert_eq!(text(&r, "url"), "postgres://app@db");
        assert_eq!(text(&r, "port"), "5432");
        assert!(
            !r.data.contains_key("password"),
            "Replace keeps only rendered keys"
        );
        assert_eq!(r.annotations["owner"], "app");
        assert_eq!(r.labels["team"], "APP");
    }

    #[test]
    fn merge_policy_merge_keeps_the_fetched_keys_under_the_rendered_ones() {
        let t = template(serde_json::json!({"mergePolicy": "Merge",
            "data": {"password": "{{ .password | b64enc }}", "dsn": "{{ .user }}:{{ .password }}"},
            "metadata": {"labels": {"user": "{{ .user }}"}}}));
        let r = render_target("ES a/b", &t, values(), &TemplateSources::default()).unwrap();
        assert_eq!(text(&r, "user"), "app");
        assert_eq!(text(&r, "password"), "cHctS2lsby03");
        assert_eq!(text(&r, "dsn"), "app:pw-Kilo-7");
        assert_eq!(r.labels["user"], "app");
    }

    #[test]
    fn a_missing_config_map_key_or_a_non_map_literal_is_named_without_values() {
        let t = template(serde_json::json!({"templateFrom": [
            {"configMap": {"name": "tpl", "items": [{"key": "nope"}]}}]}));
        let sources = TemplateSources {
            config_maps: BTreeMap::from([("tpl".into(), BTreeMap::new())]),
            ..TemplateSources::default()
        };
        let e = render_target("ES a/b", &t, values(), &sources).unwrap_err();
        assert!(
            e.to_string()
                .contains("templateFrom[0]: ConfigMap tpl has no key \"nope\""),
            "{e}"
        );
        let t = template(serde_json::json!({"templateFrom": [{"literal": "{{ .password }}"}]}));
        let e = render_target("ES a/b", &t, values(), &TemplateSources::default()).unwrap_err();
        assert!(e.to_string().contains("map of keys to values"), "{e}");
        assert!(!e.to_string().contains("pw-Kilo-7"), "{e}");
    }
}
