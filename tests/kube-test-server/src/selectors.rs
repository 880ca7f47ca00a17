//! Label and field selectors, parsed once per request and evaluated against stored JSON.
//!
//! Label selectors support the full set-based grammar: `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
//! `k notin (a,b)`, `k`, `!k`, plus `k>n` / `k<n`. Field selectors support `=`, `==`, `!=` on
//! `metadata.name`, `metadata.namespace` and the few per-kind fields the real server offers
//! (e.g. `type` on Secrets, `involvedObject.*` on core Events).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::status::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<Req>,
}

/// Splits on commas that are not inside `( )`.
fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn valid_key(k: &str) -> bool {
    // prefix/name, each part made of label characters; the server's exact rules are stricter
    // about lengths but the character set is what clients trip over.
    let name = k.rsplit('/').next().unwrap_or("");
    !k.is_empty()
        && !name.is_empty()
        && k.split('/').count() <= 2
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn bad(sel: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: {why} in selector {sel:?}"
    ))
}

impl LabelSelector {
    pub fn parse(sel: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for part in split_top_level(sel) {
            reqs.push(Self::parse_req(&part).map_err(|why| bad(sel, &why))?);
        }
        Ok(LabelSelector { reqs })
    }

    fn parse_req(p: &str) -> Result<Req, String> {
        let check_key = |k: &str| -> Result<String, String> {
            let k = k.trim();
            if valid_key(k) {
                Ok(k.to_string())
            } else {
                Err(format!("invalid label key {k:?}"))
            }
        };
        let check_val = |v: &str| -> Result<String, String> {
            let v = v.trim();
            if valid_value(v) {
                Ok(v.to_string())
            } else {
                Err(format!("invalid label value {v:?}"))
            }
        };
        if let Some(k) = p.strip_prefix('!') {
            return Ok(Req::NotExists(check_key(k)?));
        }
        if let Some(i) = p.find("!=") {
            return Ok(Req::NotEq(check_key(&p[..i])?, check_val(&p[i + 2..])?));
        }
        if let Some(i) = p.find("==") {
            return Ok(Req::Eq(check_key(&p[..i])?, check_val(&p[i + 2..])?));
        }
        if let Some(i) = p.find('=') {
            return Ok(Req::Eq(check_key(&p[..i])?, check_val(&p[i + 1..])?));
        }
        for (op, gt) in [('>', true), ('<', false)] {
            if let Some(i) = p.find(op) {
                let n: i64 = p[i + 1..].trim().parse().map_err(|_| {
                    "for 'Gt', 'Lt' operators, the value must be an integer".to_string()
                })?;
                let k = check_key(&p[..i])?;
                return Ok(if gt { Req::Gt(k, n) } else { Req::Lt(k, n) });
            }
        }
        if let Some(open) = p.find('(') {
            let head = p[..open].trim();
            let close = p.rfind(')').ok_or("missing ')'")?;
            if close < open || !p[close + 1..].trim().is_empty() {
                return Err("unexpected text after ')'".into());
            }
            let mut words = head.split_whitespace();
            let key = check_key(words.next().ok_or("missing key")?)?;
            let op = words.next().ok_or("missing operator")?;
            if words.next().is_some() {
                return Err("unexpected token".into());
            }
            let values = p[open + 1..close]
                .split(',')
                .map(check_val)
                .collect::<Result<BTreeSet<_>, _>>()?;
            return match op {
                "in" => Ok(Req::In(key, values)),
                "notin" => Ok(Req::NotIn(key, values)),
                _ => Err(format!("unknown operator {op:?}")),
            };
        }
        if p.split_whitespace().count() != 1 {
            return Err("expected an operator".into());
        }
        Ok(Req::Exists(check_key(p)?))
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The requirements a label index can answer: `k=v` and `k in (...)`, as (key, values).
    /// Every object the selector matches has one of the values for each key listed.
    pub fn index_terms(&self) -> Vec<(&str, Vec<&str>)> {
        self.reqs
            .iter()
            .filter_map(|r| match r {
                Req::Eq(k, v) => Some((k.as_str(), vec![v.as_str()])),
                Req::In(k, vs) => Some((k.as_str(), vs.iter().map(String::as_str).collect())),
                _ => None,
            })
            .collect()
    }

    /// Evaluates against an object's `metadata.labels`.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(|v| v.as_str());
        self.reqs.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            Req::NotIn(k, vs) => !get(k).is_some_and(|x| vs.contains(x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
            Req::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Req::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    /// (dotted path, value, negated)
    reqs: Vec<(String, String, bool)>,
}

/// Fields a kind can be selected on, beyond `metadata.name` / `metadata.namespace`.
fn extra_fields(group: &str, plural: &str) -> &'static [&'static str] {
    match (group, plural) {
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "events") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "reason",
            "reportingController",
            "type",
        ],
        _ => &[],
    }
}

impl FieldSelector {
    pub fn parse(sel: &str, group: &str, plural: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for part in split_top_level(sel) {
            let (field, value, neg) = if let Some(i) = part.find("!=") {
                (&part[..i], &part[i + 2..], true)
            } else if let Some(i) = part.find("==") {
                (&part[..i], &part[i + 2..], false)
            } else if let Some(i) = part.find('=') {
                (&part[..i], &part[i + 1..], false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: {sel:?}: expected an operator"
                )));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !extra_fields(group, plural).contains(&field)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push((field.to_string(), value.trim().to_string(), neg));
        }
        Ok(FieldSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The value an un-negated requirement on `field` demands, if any (e.g. the name of a
    /// `metadata.name=x` selector), so a lookup can replace a scan.
    pub fn required(&self, field: &str) -> Option<&str> {
        self.reqs
            .iter()
            .find(|(f, _, neg)| f == field && !neg)
            .map(|(_, v, _)| v.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(field, value, neg)| {
            let mut cur = obj;
            for part in field.split('.') {
                cur = &cur[part];
            }
            let actual: std::borrow::Cow<str> = match cur {
                Value::String(s) => s.as_str().into(),
                Value::Null => "".into(),
                other => other.to_string().into(),
            };
            (actual == value.as_str()) != *neg
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn set_based_operators() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m("app=web,tier in (front, back)"));
        assert!(m("app==web"));
        assert!(!m("app!=web"));
        assert!(m("missing!=x"));
        assert!(m("tier notin (back)"));
        assert!(!m("tier notin (front,back)"));
        assert!(m("app,!missing"));
        assert!(!m("!app"));
        assert!(m("n>4"));
        assert!(!m("n<5"));
        assert!(LabelSelector::parse("app in (a").is_err());
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let f =
            FieldSelector::parse("metadata.name=a,metadata.namespace!=x", "", "secrets").unwrap();
        assert!(f.matches(&o));
        assert!(FieldSelector::parse("spec.foo=a", "", "secrets").is_err());
    }
}
