//! Secret keys: rewrite rules for `dataFrom`, and the Kubernetes rules for what a key may be.

use regex::Regex;

use crate::api::Rewrite;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("rewrite regexp {regexp:?} does not compile: {reason}")]
    BadRegexp { regexp: String, reason: String },
    #[error("rewrite transform: {reason}")]
    Transform { reason: String },
    #[error("key {key:?} is not a valid Secret key (letters, digits, '-', '_', '.'; at most 253); add a rewrite rule to rename it")]
    Invalid { key: String },
}

/// Applies `rewrite` rules in order. Each rule replaces every match of its source with its target.
pub fn rewrite(key: &str, rules: &[Rewrite]) -> Result<String, KeyError> {
    let mut out = key.to_string();
    for rule in rules {
        if let Some(t) = &rule.transform {
            out = super::template::render_str(&t.template, &serde_json::json!({ "value": out }))
                .map_err(|reason| KeyError::Transform { reason })?;
            continue;
        }
        let Some(re) = &rule.regexp else { continue };
        let compiled = Regex::new(&re.source).map_err(|e| KeyError::BadRegexp {
            regexp: re.source.clone(),
            reason: e.to_string(),
        })?;
        out = compiled.replace_all(&out, re.target.as_str()).into_owned();
    }
    Ok(out)
}

/// A parameter or secret name made into a key when no rewrite made it one: a leading `/` is
/// dropped and the other `/` become `_` (`/prod/app/db` → `prod_app_db`).
pub fn sanitize_path(key: &str) -> String {
    key.trim_start_matches('/').replace('/', "_")
}

/// Checks a key against Kubernetes' rules for Secret keys.
pub fn validate(key: &str) -> Result<(), KeyError> {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(KeyError::Invalid {
            key: key.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RewriteRegexp;

    fn rule(source: &str, target: &str) -> Rewrite {
        Rewrite {
            regexp: Some(RewriteRegexp {
                source: source.into(),
                target: target.into(),
            }),
            transform: None,
        }
    }

    #[test]
    fn rewrites_apply_in_order_with_capture_groups() {
        let rules = [rule("^/prod/app/(.*)$", "$1"), rule("/", "-")];
        assert_eq!(rewrite("/prod/app/db/url", &rules).unwrap(), "db-url");
        assert_eq!(rewrite("/other/x", &rules).unwrap(), "-other-x");
    }

    #[test]
    fn a_transform_renders_the_key_as_a_go_template_after_regexps() {
        let rules = [
            rule("^/prod/app/", ""),
            Rewrite {
                regexp: None,
                transform: Some(crate::api::RewriteTransform {
                    template: "{{ .value | upper | replace \"/\" \"_\" }}".into(),
                }),
            },
        ];
        assert_eq!(rewrite("/prod/app/db/url", &rules).unwrap(), "DB_URL");
        let bad = [Rewrite {
            regexp: None,
            transform: Some(crate::api::RewriteTransform {
                template: "{{ .nope }}".into(),
            }),
        }];
        let e = rewrite("k", &bad).unwrap_err();
        assert!(e.to_string().starts_with("rewrite transform:"), "{e}");
    }

    #[test]
    fn a_bad_regexp_is_named() {
        let e = rewrite("k", &[rule("(", "x")]).unwrap_err();
        assert!(e.to_string().contains("\"(\""), "{e}");
    }

    #[test]
    fn paths_become_keys_and_keys_are_checked() {
        assert_eq!(sanitize_path("/prod/app/db"), "prod_app_db");
        assert!(validate("db.password-1_x").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"x".repeat(254)] {
            let e = validate(bad).unwrap_err();
            assert!(e.to_string().contains("rewrite"), "{e}");
        }
    }
}
