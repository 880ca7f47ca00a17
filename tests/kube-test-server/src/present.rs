//! Objects as served, serialized straight from the stored JSON: the stored object is never
//! copied to set the `apiVersion` a client asked for, to cut it down to metadata, or to wrap
//! it in a list or a watch event; served in its stored version, its cached encoding is copied
//! out as is.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

use crate::store::Stored;

/// One object in a response.
#[derive(Clone, Copy)]
pub enum Presented<'a> {
    /// The stored object with `apiVersion` replaced.
    Full {
        obj: &'a Value,
        api_version: &'a str,
    },
    /// A stored object, from its cached encoding when served in its stored version.
    Stored {
        obj: &'a Stored,
        api_version: &'a str,
    },
    /// `PartialObjectMetadata`: kind, apiVersion and the object's metadata.
    Metadata(&'a Value),
}

impl<'a> Presented<'a> {
    pub fn new(obj: &'a Stored, api_version: &'a str, metadata_only: bool) -> Self {
        if metadata_only {
            Presented::Metadata(obj)
        } else {
            Presented::Stored { obj, api_version }
        }
    }
}

impl Serialize for Presented<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Presented::Stored { obj, api_version } => match obj.encoded_as(api_version) {
                Some(raw) => raw.serialize(s),
                None => Presented::Full { obj, api_version }.serialize(s),
            },
            Presented::Full {
                obj: Value::Object(m),
                api_version,
            } => {
                let absent = !m.contains_key("apiVersion");
                let mut map = s.serialize_map(Some(m.len() + usize::from(absent)))?;
                if absent {
                    map.serialize_entry("apiVersion", api_version)?;
                }
                for (k, v) in m {
                    if k == "apiVersion" {
                        map.serialize_entry(k, api_version)?;
                    } else {
                        map.serialize_entry(k, v)?;
                    }
                }
                map.end()
            }
            Presented::Full { obj, .. } => obj.serialize(s),
            Presented::Metadata(obj) => {
                let mut map = s.serialize_map(Some(3))?;
                map.serialize_entry("kind", "PartialObjectMetadata")?;
                map.serialize_entry("apiVersion", "meta.k8s.io/v1")?;
                map.serialize_entry("metadata", &obj["metadata"])?;
                map.end()
            }
        }
    }
}

/// A `...List` (or `PartialObjectMetadataList`) body.
#[derive(Serialize)]
pub struct ListBody<'a> {
    pub kind: &'a str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'a str,
    pub metadata: &'a Value,
    pub items: Vec<Presented<'a>>,
}

/// One watch event line: `{"type": ..., "object": ...}` and a newline.
pub fn watch_line(etype: &str, object: &impl Serialize) -> Vec<u8> {
    #[derive(Serialize)]
    struct Line<'a, T: Serialize> {
        #[serde(rename = "type")]
        etype: &'a str,
        object: &'a T,
    }
    let mut buf = Vec::with_capacity(512);
    serde_json::to_writer(&mut buf, &Line { etype, object }).expect("serializable");
    buf.push(b'\n');
    buf
}

pub fn to_vec(v: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(v).expect("serializable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn serializes_like_the_edited_copy() {
        let obj =
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "spec": {"n": 1}});
        let stored = Stored::new(obj.clone());
        let mut edited = obj.clone();
        edited["apiVersion"] = json!("x/v2");
        let parse = |p: Presented| -> Value { serde_json::from_slice(&to_vec(&p)).unwrap() };
        assert_eq!(parse(Presented::new(&stored, "x/v2", false)), edited);
        // In the stored version (from the cached encoding, twice).
        assert_eq!(parse(Presented::new(&stored, "x/v1", false)), obj);
        assert_eq!(parse(Presented::new(&stored, "x/v1", false)), obj);
        assert_eq!(
            parse(Presented::new(&stored, "x/v2", true)),
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "a"}})
        );
        let line: Value = serde_json::from_slice(&watch_line(
            "ADDED",
            &Presented::new(&stored, "x/v1", false),
        ))
        .unwrap();
        assert_eq!(line, json!({"type": "ADDED", "object": obj}));
        let items = [Arc::new(Stored::new(obj.clone()))];
        let meta = json!({"resourceVersion": "7"});
        let list = ListBody {
            kind: "KList",
            api_version: "x/v1",
            metadata: &meta,
            items: items
                .iter()
                .map(|o| Presented::new(o, "x/v1", false))
                .collect(),
        };
        assert_eq!(
            serde_json::from_slice::<Value>(&to_vec(&list)).unwrap(),
            json!({"kind": "KList", "apiVersion": "x/v1", "metadata": meta, "items": [obj]})
        );
    }
}
