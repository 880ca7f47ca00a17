//! Rendering `target.template` with Go templates, as ExternalSecret's engine v2 does: every
//! fetched key is a string field of the root (`{{ .password }}`, or `{{ index . "my.key" }}`
//! for keys with dots or dashes), with Go's builtins, sprig's functions and `toYaml`/`fromYaml`
//! (see `gotemplate`). A missing key is an error (`missingkey=error`); errors never hold values.

use std::collections::BTreeMap;

use super::gotemplate::{Map, Template, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("template for key {key:?}: {reason}")]
pub struct TemplateError {
    pub key: String,
    pub reason: String,
}

/// Renders every template with the fetched `values` as the root map of strings.
pub fn render(
    templates: &BTreeMap<String, String>,
    values: &BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, Vec<u8>>, TemplateError> {
    let root = Value::Map(Map::of_strings(
        values
            .iter()
            .map(|(k, v)| (k.clone(), Value::from_bytes(v)))
            .collect(),
    ));
    templates
        .iter()
        .map(|(key, source)| {
            Template::parse(source)
                .and_then(|t| t.execute(&root))
                .map(|out| (key.clone(), out))
                .map_err(|reason| TemplateError {
                    key: key.clone(),
                    reason: scrub(reason, values.values().map(Vec::as_slice)),
                })
        })
        .collect()
}

/// Renders one template with a JSON `root` (`{"value": ...}` for rewrite transforms, the
/// fetched keys for metadata and `templateFrom`). An object of strings behaves like the
/// map of fetched values. The output must be UTF-8.
pub fn render_str(source: &str, root_json: &serde_json::Value) -> Result<String, String> {
    let root = match root_json {
        serde_json::Value::Object(o) if o.values().all(serde_json::Value::is_string) => {
            Value::Map(Map::of_strings(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ))
        }
        j => Value::from_json(j),
    };
    let mut leaves = Vec::new();
    json_strings(root_json, &mut leaves);
    let out = Template::parse(source)
        .and_then(|t| t.execute(&root))
        .map_err(|e| scrub(e, leaves.iter().map(|s| s.as_bytes())))?;
    String::from_utf8(out).map_err(|_| "the rendered text is not valid UTF-8".to_string())
}

fn json_strings<'a>(j: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match j {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|v| json_strings(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| json_strings(v, out)),
        _ => {}
    }
}

/// Belt and braces: engine messages hold no data, but a template may hand a value to `fail`
/// or `required` itself. Any value (or line of one) of 4+ characters is blanked out.
fn scrub<'a>(mut reason: String, values: impl Iterator<Item = &'a [u8]>) -> String {
    for v in values {
        let Ok(text) = std::str::from_utf8(v) else {
            continue;
        };
        for piece in std::iter::once(text).chain(text.lines()) {
            let piece = piece.trim();
            if piece.chars().count() >= 4 && reason.contains(piece) {
                reason = reason.replace(piece, "[redacted]");
            }
        }
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn one(t: &str, values: &BTreeMap<String, Vec<u8>>) -> Result<String, TemplateError> {
        let mut ts = BTreeMap::new();
        ts.insert("out".to_string(), t.to_string());
        render(&ts, values).map(|m| String::from_utf8(m["out"].clone()).unwrap())
    }

    #[test]
    fn renders_each_target_key_from_the_fetched_strings() {
        let v = vals(&[
            ("username", "app"),
            ("password", "p&<>\"'"),
            ("db-host", "db"),
        ]);
        let mut ts = BTreeMap::new();
        ts.insert(
            "url".to_string(),
            r#"postgres://{{ .username }}:{{ .password }}@{{ index . "db-host" }}/app"#.to_string(),
        );
        ts.insert("user".to_string(), "{{ .username | upper }}".to_string());
        let out = render(&ts, &v).unwrap();
        assert_eq!(out["url"], b"postgres://app:p&<>\"'@db/app");
        assert_eq!(out["user"], b"APP");
    }

    #[test]
    fn binary_values_pass_through_byte_for_byte() {
        let mut v = BTreeMap::new();
        v.insert("bin".to_string(), vec![0xff, 0x00, 0xfe]);
        let mut ts = BTreeMap::new();
        ts.insert("raw".to_string(), "{{ .bin }}".to_string());
        ts.insert("enc".to_string(), "{{ .bin | b64enc }}".to_string());
        let out = render(&ts, &v).unwrap();
        assert_eq!(out["raw"], vec![0xff, 0x00, 0xfe]);
        assert_eq!(out["enc"], b"/wD+");
    }

    #[test]
    fn a_missing_key_names_the_target_key_and_the_missing_field_not_values() {
        let v = vals(&[("password", "hunter2")]);
        let e = one("x{{ .pasword }}", &v).unwrap_err();
        assert_eq!(e.key, "out");
        assert_eq!(
            e.reason,
            r#"line 1 col 5: at <.pasword>: map has no entry for key "pasword""#
        );
        assert!(!e.to_string().contains("hunter2"));
        let e = one("{{ .password | mustFromJson }}", &v).unwrap_err();
        assert!(e.reason.contains("not valid JSON"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn a_value_the_template_itself_puts_in_a_message_is_redacted() {
        let v = vals(&[("password", "hunter2\nline-two"), ("env", "prod")]);
        let e = one(r#"{{ fail (printf "bad %s" .password) }}"#, &v).unwrap_err();
        assert_eq!(
            e.reason,
            "line 1 col 4: at <fail (printf \"bad %s\" .password)>: fail: bad [redacted]"
        );
        let root = serde_json::json!({"value": "topsecret"});
        let e = render_str("{{ required .value nil }}", &root).unwrap_err();
        assert!(e.ends_with("required: [redacted]"), "{e}");
    }

    #[test]
    fn a_parse_error_names_the_line() {
        let e = one("ok\n{{ if .a }}never closed", &vals(&[("a", "1")])).unwrap_err();
        assert_eq!(e.reason, "line 2 col 4: {{if}} has no {{end}}");
    }

    #[test]
    fn render_str_takes_a_json_root() {
        let root = serde_json::json!({"value": "prod/db-password"});
        assert_eq!(
            render_str(r#"{{ .value | replace "/" "_" | upper }}"#, &root).unwrap(),
            "PROD_DB-PASSWORD"
        );
        assert_eq!(
            render_str(r#"[{{ index . "missing" }}]"#, &root).unwrap(),
            "[]",
            "an object of strings behaves like the fetched values"
        );
        let nested = serde_json::json!({"a": {"b": [1, 2]}});
        assert_eq!(render_str("{{ index .a.b 1 }}", &nested).unwrap(), "2");
        let e = render_str("{{ .value.x }}", &root).unwrap_err();
        assert_eq!(
            e,
            r#"line 1 col 4: at <.value.x>: can't evaluate field "x" in a string"#
        );
    }
}
