//! Rendering `target.template.data` with minijinja. The fetched keys are the variables, also
//! reachable as `values["key.with.dots"]`; filters: `b64enc`, `b64dec`, `fromjson`, `tojson`.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use minijinja::value::{Serde, Value};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("template for key {key:?}: {reason}")]
pub struct TemplateError {
    pub key: String,
    pub reason: String,
}

/// Renders every template with the fetched `values` as variables.
pub fn render(
    templates: &BTreeMap<String, String>,
    values: &BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, Vec<u8>>, TemplateError> {
    let env = environment();
    let vars: BTreeMap<String, Value> = values
        .iter()
        .map(|(k, v)| (k.clone(), bytes_value(v)))
        .collect();
    let mut ctx = vars.clone();
    ctx.insert("values".into(), Value::from(Serde(&vars)));
    let ctx = Value::from(Serde(&ctx));
    templates
        .iter()
        .map(|(key, source)| {
            env.render_str(source, ctx.clone())
                .map(|s| (key.clone(), s.into_bytes()))
                .map_err(|e| TemplateError {
                    key: key.clone(),
                    reason: describe(&e),
                })
        })
        .collect()
}

fn bytes_value(v: &[u8]) -> Value {
    match std::str::from_utf8(v) {
        Ok(s) => Value::from(s),
        Err(_) => Value::from_bytes(v.to_vec()),
    }
}

/// minijinja's own messages name the template construct and line, never variable values;
/// we keep only the kind and detail to be sure no rendered text slips in.
fn describe(e: &Error) -> String {
    let mut out = format!("{}", e.kind());
    if let Some(detail) = e.detail() {
        out.push_str(": ");
        out.push_str(detail);
    }
    if let Some(line) = e.line() {
        out.push_str(&format!(" (line {line})"));
    }
    out
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("b64enc", |v: Value| -> Result<String, Error> {
        Ok(STANDARD.encode(value_bytes(&v)?))
    });
    env.add_filter("b64dec", |v: Value| -> Result<Value, Error> {
        let raw = value_bytes(&v)?;
        let decoded = STANDARD.decode(raw.trim_ascii()).map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                "b64dec: input is not valid base64",
            )
        })?;
        Ok(bytes_value(&decoded))
    });
    env.add_filter("fromjson", |v: Value| -> Result<Value, Error> {
        let raw = value_bytes(&v)?;
        let json: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "fromjson: input is not valid JSON (line {} column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        Ok(Value::from(Serde(&json)))
    });
    env
}

fn value_bytes(v: &Value) -> Result<Vec<u8>, Error> {
    if let Some(b) = v.as_bytes() {
        return Ok(b.to_vec());
    }
    if let Some(s) = v.as_str() {
        return Ok(s.as_bytes().to_vec());
    }
    Ok(v.to_string().into_bytes())
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
    fn renders_variables_without_html_escaping() {
        let v = vals(&[("username", "app"), ("password", "p&<>\"'"), ("host", "db")]);
        assert_eq!(
            one(
                "postgres://{{ username }}:{{ password }}@{{ host }}/app",
                &v
            )
            .unwrap(),
            "postgres://app:p&<>\"'@db/app"
        );
    }

    #[test]
    fn dockerconfigjson_with_b64enc_and_tojson() {
        let v = vals(&[("user", "u"), ("token", "t")]);
        let out = one(
            r#"{{ {"auths": {"registry.example": {"auth": (user ~ ":" ~ token) | b64enc}}} | tojson }}"#,
            &v,
        )
        .unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["auths"]["registry.example"]["auth"], "dTp0");
    }

    #[test]
    fn fromjson_b64dec_and_values_map() {
        let v = vals(&[
            ("cfg", r#"{"a":{"b":"deep"}}"#),
            ("enc", "aGk="),
            ("my.key", "dotted"),
        ]);
        assert_eq!(one("{{ (cfg | fromjson).a.b }}", &v).unwrap(), "deep");
        assert_eq!(one("{{ enc | b64dec }}", &v).unwrap(), "hi");
        assert_eq!(one(r#"{{ values["my.key"] }}"#, &v).unwrap(), "dotted");
    }

    #[test]
    fn an_undefined_variable_is_an_error_naming_the_key_not_values() {
        let v = vals(&[("password", "hunter2")]);
        let e = one("{{ pasword }}", &v).unwrap_err();
        assert_eq!(e.key, "out");
        assert!(e.to_string().contains("undefined"), "{e}");
        assert!(!e.to_string().contains("hunter2"));
        let e = one("{{ password | fromjson }}", &v).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}

/// Renders one Go template over `root` (placeholder until the Go engine lands).
pub fn render_str(_source: &str, _root: &serde_json::Value) -> Result<String, String> {
    Err("Go templates are not supported yet".into())
}
