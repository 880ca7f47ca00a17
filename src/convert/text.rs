//! Multi-document YAML in and out. Documents that are kept, or whose only change is the
//! `apiVersion` line, are written as they were found, comments included; the others are
//! serialized again. Each verbatim text is checked to read back as the same document.

use serde::Deserialize;
use serde_yaml::Value;

use super::rules::TARGET_API_VERSION;

/// One document of a stream: its value (or why it cannot be read) and, when the stream could
/// be split at its `---` lines, its own text.
pub struct Parsed {
    pub value: Result<Value, String>,
    pub text: Option<String>,
}

/// Reads every document of `text`. A syntax error fails the whole stream (the parser cannot
/// tell where the next document starts); an error inside one document (a duplicate key) is
/// that document's.
pub fn parse(text: &str) -> Result<Vec<Parsed>, String> {
    let mut values: Vec<Result<Value, String>> = Vec::new();
    let mut last_error = None;
    for doc in serde_yaml::Deserializer::from_str(text) {
        match Value::deserialize(doc) {
            Ok(v) => {
                last_error = None;
                values.push(Ok(v));
            }
            Err(e) => {
                let e = e.to_string();
                // After a syntax error the parser yields the same error again and again.
                if last_error.as_ref() == Some(&e) {
                    return Err(e);
                }
                last_error = Some(e.clone());
                values.push(Err(e));
            }
        }
    }
    let mut chunks = Some(split(text))
        .filter(|c| c.len() == values.len())
        .map(Vec::into_iter);
    Ok(values
        .into_iter()
        .map(|value| Parsed {
            value,
            text: chunks.as_mut().and_then(Iterator::next),
        })
        .collect())
}

/// The text of each document, cut at the lines that start a document (`---`).
fn split(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    let mut markers = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") {
            chunks.push(&text[start..offset]);
            start = offset + line.len();
            markers += 1;
        }
        offset += line.len();
    }
    chunks.push(&text[start..]);
    let blank = |c: &str| {
        c.lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    };
    let mut chunks: Vec<String> = chunks.into_iter().map(str::to_string).collect();
    // Comments before the first `---` are not a document: they stay with the first one.
    if markers > 0 && chunks.len() > 1 && blank(&chunks[0]) {
        let header = chunks.remove(0);
        chunks[0].insert_str(0, &header);
    }
    chunks
}

/// The YAML of `value`: `text` when it reads back as `value` (also with its `apiVersion`
/// line changed), else `value` serialized.
pub fn render(value: &Value, text: Option<&str>) -> String {
    let same = |t: &str| {
        serde_yaml::from_str::<Value>(t).is_ok_and(|v| &v == value) && !t.trim().is_empty()
    };
    let verbatim = text.and_then(|t| {
        if same(t) {
            return Some(t.to_string());
        }
        let patched = patch_api_version(t)?;
        same(&patched).then_some(patched)
    });
    let mut out = verbatim
        .unwrap_or_else(|| serde_yaml::to_string(value).expect("a YAML value always serializes"));
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// `text` with its top-level `apiVersion: external-secrets.io/...` line naming arnsync's.
fn patch_api_version(text: &str) -> Option<String> {
    let re = regex::Regex::new(
        r#"(?m)^apiVersion:[ \t]*["']?external-secrets\.io/v1(?:alpha1|beta1)?["']?([ \t]+#[^\r\n]*)?[ \t]*(\r?)$"#,
    )
    .expect("a valid regular expression");
    let found = re.captures(text)?;
    let keep = |i| found.get(i).map_or("", |m| m.as_str());
    let range = found.get(0)?.range();
    Some(format!(
        "{}apiVersion: {TARGET_API_VERSION}{}{}{}",
        &text[..range.start],
        keep(1),
        keep(2),
        &text[range.end..]
    ))
}
