//! Values as the Secret receives them: JSON property lookup and decoding.

use serde_json::Value as Json;

use crate::api::DecodingStrategy;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PropertyError {
    #[error("the value is not valid JSON ({0}), so property {1:?} cannot be read")]
    InvalidJson(String, String),
    #[error("property {0:?} is not in the value")]
    Missing(String),
}

/// Looks up `path` in a JSON document. A field whose name contains dots is found first as a
/// whole (`"db.password"` as one key), then the path is followed one dotted segment at a time;
/// a numeric segment indexes an array.
pub fn lookup<'a>(doc: &'a Json, path: &str) -> Option<&'a Json> {
    if let Some(v) = doc.as_object().and_then(|o| o.get(path)) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    let next = match doc {
        Json::Object(o) => o.get(head)?,
        Json::Array(a) => a.get(head.parse::<usize>().ok()?)?,
        _ => return None,
    };
    if let Some(v) = next.as_object().and_then(|o| o.get(rest)) {
        return Some(v);
    }
    lookup(next, rest).or_else(|| match next {
        Json::Array(a) => a.get(rest.parse::<usize>().ok()?),
        _ => None,
    })
}

/// The bytes a JSON value becomes in a Secret: strings as they are, anything else as JSON.
pub fn json_to_bytes(v: &Json) -> Vec<u8> {
    match v {
        Json::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

/// Reads `property` from a raw value.
pub fn property(raw: &[u8], property: &str) -> Result<Vec<u8>, PropertyError> {
    let doc = parse_json(raw, property)?;
    lookup(&doc, property)
        .map(json_to_bytes)
        .ok_or_else(|| PropertyError::Missing(property.to_string()))
}

/// Parses a raw value as JSON; the error names what was being looked for, never the value.
pub fn parse_json(raw: &[u8], wanted: &str) -> Result<Json, PropertyError> {
    serde_json::from_slice(raw).map_err(|e| {
        // serde_json's message has line/column only, never the content.
        PropertyError::InvalidJson(
            format!(
                "{} at line {} column {}",
                category(&e),
                e.line(),
                e.column()
            ),
            wanted.to_string(),
        )
    })
}

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "data error",
        serde_json::error::Category::Eof => "unexpected end",
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("decodingStrategy {0}: the value is not valid base64 ({1})")]
pub struct DecodeError(&'static str, &'static str);

/// Applies a decoding strategy. `Auto` decodes when the value is valid base64 and keeps it as
/// it is otherwise.
pub fn decode(raw: Vec<u8>, strategy: DecodingStrategy) -> Result<Vec<u8>, DecodeError> {
    match strategy {
        DecodingStrategy::None => Ok(raw),
        DecodingStrategy::Base64 => {
            base64_decode(&raw, ANY).ok_or(DecodeError("Base64", "standard or URL-safe"))
        }
        DecodingStrategy::Base64Url => {
            base64_decode(&raw, URL).ok_or(DecodeError("Base64URL", "URL-safe"))
        }
        DecodingStrategy::Auto => Ok(base64_decode(&raw, ANY).unwrap_or(raw)),
    }
}

use base64::engine::general_purpose::{
    GeneralPurpose, STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
};

const ANY: &[GeneralPurpose] = &[STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD];
const URL: &[GeneralPurpose] = &[URL_SAFE, URL_SAFE_NO_PAD];

fn base64_decode(raw: &[u8], engines: &[GeneralPurpose]) -> Option<Vec<u8>> {
    use base64::Engine;
    let trimmed: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if trimmed.is_empty() {
        return None;
    }
    engines.iter().find_map(|e| e.decode(&trimmed).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_dotted_and_literal_dotted_properties() {
        let raw =
            br#"{"db":{"password":"p","port":5432,"hosts":["a","b"]},"a.b":"literal","flag":true}"#;
        assert_eq!(property(raw, "db.password").unwrap(), b"p");
        assert_eq!(property(raw, "db.port").unwrap(), b"5432");
        assert_eq!(property(raw, "db.hosts.1").unwrap(), b"b");
        assert_eq!(property(raw, "a.b").unwrap(), b"literal");
        assert_eq!(property(raw, "flag").unwrap(), b"true");
        assert_eq!(
            property(raw, "db").unwrap(),
            br#"{"hosts":["a","b"],"password":"p","port":5432}"#
        );
    }

    #[test]
    fn missing_property_and_bad_json_name_the_property_but_not_the_value() {
        assert_eq!(
            property(br#"{"user":"u"}"#, "password"),
            Err(PropertyError::Missing("password".into()))
        );
        let e = property(b"hunter2-not-json", "password").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("password") && !msg.contains("hunter2"),
            "{msg}"
        );
    }

    #[test]
    fn lookup_in_arrays_at_top_level() {
        assert_eq!(lookup(&json!([{"x": 1}]), "0.x"), Some(&json!(1)));
    }

    #[test]
    fn decoding_strategies() {
        assert_eq!(
            decode(b"aGVsbG8=".to_vec(), DecodingStrategy::Base64).unwrap(),
            b"hello"
        );
        assert_eq!(
            decode(b"aGVsbG8".to_vec(), DecodingStrategy::Base64).unwrap(),
            b"hello"
        );
        assert_eq!(
            decode(b"not base64!".to_vec(), DecodingStrategy::Base64),
            Err(DecodeError("Base64", "standard or URL-safe"))
        );
        assert_eq!(
            decode(b"not base64!".to_vec(), DecodingStrategy::Auto).unwrap(),
            b"not base64!"
        );
        assert_eq!(
            decode(b"aGVsbG8=".to_vec(), DecodingStrategy::Auto).unwrap(),
            b"hello"
        );
        assert_eq!(
            decode(b"aGVsbG8=".to_vec(), DecodingStrategy::None).unwrap(),
            b"aGVsbG8="
        );
    }
}
