//! Encodings, hashes and regular expressions: base64, JSON, YAML (ESO's `toYaml`/`fromYaml`),
//! sha1/sha256, `htpasswd`/`bcrypt`, `regex*`, `filterPEM`, `urlquery`. Error messages never quote input.

use std::collections::BTreeMap;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use regex::{NoExpand, Regex};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::format::{sprint, strval};
use super::funcs::{string, want, want_between, Func};
use super::{Map, Value};

/// Go's `base64.StdEncoding`: padding required, non-zero trailing bits accepted.
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Go's bcrypt.DefaultCost, which sprig uses.
const BCRYPT_COST: u32 = 10;

pub(super) fn lookup(name: &str) -> Option<Func> {
    let f: Func = match name {
        "b64enc" => |a| {
            want(&a, 1)?;
            Ok(Value::from(STANDARD.encode(raw(&a, 0)?)))
        },
        "b64dec" => |a| {
            want(&a, 1)?;
            let input: Vec<u8> = raw(&a, 0)?
                .into_iter()
                .filter(|b| !matches!(b, b'\r' | b'\n'))
                .collect();
            let out = GO_STD
                .decode(input)
                .map_err(|_| "the input is not valid base64")?;
            Ok(Value::from_bytes(&out))
        },
        "toJson" | "mustToJson" => |a| json(a, false, true),
        "toPrettyJson" | "mustToPrettyJson" => |a| json(a, true, true),
        "toRawJson" | "mustToRawJson" => |a| json(a, false, false),
        // sprig's fromJson gives nil for bad JSON; mustFromJson fails.
        "fromJson" => |a| Ok(from_json(&a).unwrap_or(Value::Nil)),
        "mustFromJson" => |a| from_json(&a),
        "toYaml" => |a| {
            want(&a, 1)?;
            let text = serde_yaml::to_string(&a[0].to_json()?)
                .map_err(|_| "the value has no YAML form")?;
            Ok(Value::from(text.strip_suffix('\n').unwrap_or(&text)))
        },
        "fromYaml" => |a| {
            want(&a, 1)?;
            Ok(Value::Map(from_yaml(&string(&a, 0)?)))
        },
        "sha1sum" => |a| {
            want(&a, 1)?;
            Ok(Value::from(hex::encode(Sha1::digest(raw(&a, 0)?))))
        },
        "sha256sum" => |a| {
            want(&a, 1)?;
            Ok(Value::from(hex::encode(Sha256::digest(raw(&a, 0)?))))
        },
        "bcrypt" => |a| {
            want(&a, 1)?;
            Ok(Value::from(bcrypt_hash(&raw(&a, 0)?)?))
        },
        "htpasswd" => |a| {
            want_between(&a, 2, 3)?;
            let user = string(&a, 0)?;
            if user.contains(':') {
                return Err("the user name must not contain ':'".into());
            }
            let pass = raw(&a, 1)?;
            let hash = match a.get(2).map(|_| string(&a, 2)).transpose()?.as_deref() {
                Some("sha") => format!("{{SHA}}{}", STANDARD.encode(Sha1::digest(&pass))),
                _ => bcrypt_hash(&pass)?,
            };
            Ok(Value::from(format!("{user}:{hash}")))
        },
        "regexMatch" => |a| {
            want(&a, 2)?;
            Ok(Value::Bool(regex(&a)?.is_match(&string(&a, 1)?)))
        },
        "regexFind" => |a| {
            want(&a, 2)?;
            let s = string(&a, 1)?;
            Ok(Value::from(regex(&a)?.find(&s).map_or("", |m| m.as_str())))
        },
        "regexFindAll" => |a| {
            want(&a, 3)?;
            let (s, n) = (string(&a, 1)?, super::funcs::int(&a, 2)?);
            let limit = usize::try_from(n).unwrap_or(usize::MAX);
            let found = regex(&a)?
                .find_iter(&s)
                .take(limit)
                .map(|m| Value::from(m.as_str()))
                .collect();
            Ok(Value::list(found))
        },
        "regexReplaceAll" => |a| {
            want(&a, 3)?;
            let (s, repl) = (string(&a, 1)?, string(&a, 2)?);
            Ok(Value::from(
                regex(&a)?.replace_all(&s, repl.as_str()).into_owned(),
            ))
        },
        "regexReplaceAllLiteral" => |a| {
            want(&a, 3)?;
            let (s, repl) = (string(&a, 1)?, string(&a, 2)?);
            Ok(Value::from(
                regex(&a)?.replace_all(&s, NoExpand(&repl)).into_owned(),
            ))
        },
        "filterPEM" => |a| {
            want(&a, 2)?;
            Ok(Value::from(filter_pem(&string(&a, 0)?, &string(&a, 1)?)?))
        },
        "urlquery" => |a| {
            let text = match a.as_slice() {
                [v @ (Value::Str(_) | Value::Bytes(_))] => {
                    v.as_bytes().unwrap_or_default().to_vec()
                }
                _ => sprint(&a),
            };
            Ok(Value::from(query_escape(&text)))
        },
        _ => return None,
    };
    Some(f)
}

/// A string parameter's bytes, as Go hands them to hashing and encoding.
fn raw(a: &[Value], i: usize) -> Result<Vec<u8>, String> {
    match a[i].as_bytes() {
        Some(b) => Ok(b.to_vec()),
        None => string(a, i).map(String::into_bytes),
    }
}

/// Go's encoding/json output: sorted keys; `html` escapes `<`, `>`, `&` as json.Marshal does.
fn json(a: Vec<Value>, pretty: bool, html: bool) -> Result<Value, String> {
    want(&a, 1)?;
    let j = a[0].to_json()?;
    let text = if pretty {
        serde_json::to_string_pretty(&j)
    } else {
        serde_json::to_string(&j)
    }
    .map_err(|_| "the value has no JSON form")?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' if html => out.push_str("\\u003c"),
            '>' if html => out.push_str("\\u003e"),
            '&' if html => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Ok(Value::from(out))
}

fn from_json(a: &[Value]) -> Result<Value, String> {
    want(a, 1)?;
    let j: serde_json::Value = serde_json::from_slice(&raw(a, 0)?).map_err(|e| {
        format!(
            "the input is not valid JSON (line {} column {})",
            e.line(),
            e.column()
        )
    })?;
    Ok(Value::from_json(&j))
}

/// ESO's `fromYaml`: a mapping, with a parse failure reported under the key `Error`.
fn from_yaml(s: &str) -> Map {
    let error = |msg: String| Map::new(BTreeMap::from([("Error".to_string(), Value::from(msg))]));
    match serde_yaml::from_str::<serde_yaml::Value>(s) {
        Ok(serde_yaml::Value::Null) => Map::new(BTreeMap::new()),
        Ok(v @ serde_yaml::Value::Mapping(_)) => match from_yaml_value(v) {
            Value::Map(m) => m,
            _ => error("the YAML document is not a mapping".into()),
        },
        Ok(_) => error("the YAML document is not a mapping".into()),
        Err(e) => error(match e.location() {
            Some(l) => format!("invalid YAML at line {} column {}", l.line(), l.column()),
            None => "invalid YAML".into(),
        }),
    }
}

fn from_yaml_value(v: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Nil,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Y::String(s) => Value::from(s),
        Y::Sequence(items) => Value::list(items.into_iter().map(from_yaml_value).collect()),
        Y::Mapping(m) => Value::Map(Map::new(
            m.into_iter()
                .map(|(k, v)| (strval(&from_yaml_value(k)), from_yaml_value(v)))
                .collect(),
        )),
        Y::Tagged(t) => from_yaml_value(t.value),
    }
}

fn bcrypt_hash(pass: &[u8]) -> Result<String, String> {
    let parts = bcrypt::non_truncating_hash_with_result(pass, BCRYPT_COST)
        .map_err(|_| "bcrypt takes passwords of at most 72 bytes")?;
    Ok(parts.format_for_version(bcrypt::Version::TwoA))
}

fn regex(a: &[Value]) -> Result<Regex, String> {
    Regex::new(&string(a, 0)?).map_err(|e| match e {
        regex::Error::CompiledTooBig(_) => "the regular expression is too big".to_string(),
        _ => "argument 1 is not a valid regular expression".to_string(),
    })
}

/// ESO's `filterPEM`: the PEM blocks of one type (any case), re-encoded as Go's pem.Encode
/// writes them (64-column base64).
fn filter_pem(kind: &str, input: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = input;
    while let Some(i) = rest.find("-----BEGIN ") {
        let after = &rest[i + 11..];
        let Some(j) = after.find("-----") else {
            break;
        };
        let typ = &after[..j];
        let end = format!("-----END {typ}-----");
        let Some(k) = after[j + 5..].find(&end) else {
            break;
        };
        let body: String = after[j + 5..j + 5 + k]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        rest = &after[j + 5 + k + end.len()..];
        let Ok(der) = STANDARD.decode(body) else {
            continue;
        };
        if typ.eq_ignore_ascii_case(kind) {
            let b64 = STANDARD.encode(der);
            out.push_str(&format!("-----BEGIN {typ}-----\n"));
            for line in b64.as_bytes().chunks(64) {
                out.push_str(std::str::from_utf8(line).unwrap_or_default());
                out.push('\n');
            }
            out.push_str(&end);
            out.push('\n');
        }
    }
    if out.is_empty() && !rest.trim().is_empty() {
        return Err("the input holds no PEM block of that type, only other text".into());
    }
    Ok(out)
}

/// Go's `url.QueryEscape`.
fn query_escape(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for &c in b {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(c as char)
            }
            b' ' => out.push('+'),
            c => out.push_str(&format!("%{c:02X}")),
        }
    }
    out
}
