//! The CEL view of an OpenAPI schema node, as kube-apiserver builds it for cost estimation
//! (`SchemaDeclType` in k8s.io/apiserver/pkg/cel/common): each node knows the smallest JSON it
//! can serialize to and the largest size (`size()`) a value of it can have in one request.

use std::collections::BTreeMap;

use serde_json::Value;

/// The request body limit the estimator assumes (3 MiB).
pub const MAX_REQUEST_SIZE_BYTES: u64 = 3 * 1024 * 1024;
/// A string with no bound fills the request, minus its quotes.
const MAX_STRING_PER_REQUEST: u64 = MAX_REQUEST_SIZE_BYTES - 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Duration,
    Timestamp,
    Null,
    List,
    Map,
    Object,
    /// x-kubernetes-int-or-string, `dyn(...)` and anything the estimator cannot type.
    Dyn,
}

impl Kind {
    /// Types CEL gives a fixed size of 1 when nothing better is known.
    pub fn is_scalar(self) -> bool {
        matches!(
            self,
            Kind::Bool | Kind::Int | Kind::Uint | Kind::Double | Kind::Duration | Kind::Timestamp
        )
    }

    pub fn is_text(self) -> bool {
        matches!(self, Kind::String | Kind::Bytes)
    }
}

#[derive(Debug, Clone)]
pub struct Decl {
    pub kind: Kind,
    /// `size()` bound: characters, bytes, items or entries (0 for scalars and objects).
    pub max_elements: u64,
    /// Smallest JSON serialization, in bytes.
    pub min_size: u64,
    /// Object fields by their CEL (escaped) names.
    pub fields: BTreeMap<String, Decl>,
    /// List items or map values.
    pub elem: Option<Box<Decl>>,
}

impl Decl {
    pub fn scalar(kind: Kind, min_size: u64) -> Decl {
        Decl {
            kind,
            max_elements: 0,
            min_size,
            fields: BTreeMap::new(),
            elem: None,
        }
    }

    /// Map keys are plain CEL strings: the estimator knows no bound for them (max 0).
    pub fn map_key() -> Decl {
        Decl::scalar(Kind::String, 2)
    }

    /// Builds the declaration of `s`; `None` where CEL cannot see the node (no type, or items /
    /// values it cannot see). `root` adds `apiVersion`, `kind` and `metadata.name` /
    /// `metadata.generateName`, as for the root of a resource or an embedded resource.
    pub fn from_schema(s: &Value, root: bool) -> Option<Decl> {
        let max_length = non_negative(&s["maxLength"]);
        if s["x-kubernetes-int-or-string"] == Value::Bool(true) {
            let mut d = Decl::scalar(Kind::Dyn, 1);
            d.max_elements = max_length.map_or(MAX_STRING_PER_REQUEST, |l| l.saturating_mul(4));
            return Some(d);
        }
        match s["type"].as_str()? {
            "array" => {
                let items = &s["items"];
                let elem = Decl::from_schema(items, embedded(items))?;
                let max = non_negative(&s["maxItems"])
                    .unwrap_or(MAX_STRING_PER_REQUEST / (elem.min_size + 1));
                Some(Decl::container(Kind::List, max, elem))
            }
            "object" if s["additionalProperties"].is_object() => {
                let values = &s["additionalProperties"];
                let elem = Decl::from_schema(values, embedded(values))?;
                // key, quotes, colon and comma around the smallest value
                let max = non_negative(&s["maxProperties"])
                    .unwrap_or(MAX_STRING_PER_REQUEST / (elem.min_size + 6));
                Some(Decl::container(Kind::Map, max, elem))
            }
            "object" => Some(Decl::object(s, root)),
            "string" => Some(Decl::string(s, max_length)),
            "boolean" => Some(Decl::scalar(Kind::Bool, 4)),
            "number" => Some(Decl::scalar(Kind::Double, 1)),
            "integer" => Some(Decl::scalar(Kind::Int, 1)),
            _ => None,
        }
    }

    fn container(kind: Kind, max_elements: u64, elem: Decl) -> Decl {
        Decl {
            kind,
            max_elements,
            min_size: 2,
            fields: BTreeMap::new(),
            elem: Some(Box::new(elem)),
        }
    }

    fn object(s: &Value, root: bool) -> Decl {
        let mut props = s["properties"].as_object().cloned().unwrap_or_default();
        if root && !has_type_and_object_meta(&props) {
            let string = serde_json::json!({"type": "string"});
            props.insert("kind".into(), string.clone());
            props.insert("apiVersion".into(), string.clone());
            props.insert(
                "metadata".into(),
                serde_json::json!({"type": "object", "properties":
                    {"name": string.clone(), "generateName": string}}),
            );
        }
        let required: Vec<&str> = s["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // `{}`, plus each required property that the server does not default
        let mut min_size = 2;
        let mut fields = BTreeMap::new();
        for (name, prop) in &props {
            let Some(d) = Decl::from_schema(prop, embedded(prop)) else {
                continue;
            };
            if required.contains(&name.as_str()) && prop.get("default").is_none() {
                min_size += name.len() as u64 + d.min_size + 4;
            }
            if let Some(escaped) = escape(name) {
                fields.insert(escaped, d);
            }
        }
        Decl {
            kind: Kind::Object,
            max_elements: 0,
            min_size,
            fields,
            elem: None,
        }
    }

    fn string(s: &Value, max_length: Option<u64>) -> Decl {
        let (kind, min_size, max) = match s["format"].as_str() {
            Some("byte") => (Kind::Bytes, 2, max_length.unwrap_or(MAX_STRING_PER_REQUEST)),
            Some("duration") => (Kind::Duration, 3, 32),
            Some("date") => (Kind::Timestamp, 12, 12),
            Some("date-time") => (Kind::Timestamp, 21, 32),
            _ => {
                let longest_enum = s["enum"].as_array().filter(|e| !e.is_empty()).map(|e| {
                    e.iter()
                        .filter_map(Value::as_str)
                        .map(|v| v.len() as u64)
                        .max()
                        .unwrap_or(0)
                });
                // maxLength counts code points; a code point is up to 4 bytes
                let max = max_length
                    .map(|l| l.saturating_mul(4))
                    .or(longest_enum)
                    .unwrap_or(MAX_STRING_PER_REQUEST);
                (Kind::String, 2, max)
            }
        };
        let mut d = Decl::scalar(kind, min_size);
        d.max_elements = max;
        d
    }
}

fn non_negative(v: &Value) -> Option<u64> {
    v.as_i64().map(|n| n.max(0) as u64)
}

fn embedded(s: &Value) -> bool {
    s["x-kubernetes-embedded-resource"] == Value::Bool(true)
}

fn has_type_and_object_meta(props: &serde_json::Map<String, Value>) -> bool {
    let is = |v: &Value, t: &str| v["type"].as_str() == Some(t);
    let meta = props.get("metadata").unwrap_or(&Value::Null);
    props.get("kind").is_some_and(|k| is(k, "string"))
        && props.get("apiVersion").is_some_and(|a| is(a, "string"))
        && is(meta, "object")
        && is(&meta["properties"]["name"], "string")
        && is(&meta["properties"]["generateName"], "string")
}

/// CEL's reserved words, which property names escape to `__word__`.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The CEL identifier for a property name, as the API server escapes it; `None` for names CEL
/// cannot address (those fields are invisible to rules).
pub fn escape(name: &str) -> Option<String> {
    let first = name.chars().next()?;
    if first.is_ascii_digit() {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut out = String::new();
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("__") {
            out.push_str("__underscores__");
            rest = &rest[2..];
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}
