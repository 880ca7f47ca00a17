//! A Go `text/template` engine with the function set ExternalSecret templates use (engine v2):
//! Go's builtins, the sprig functions seen in real manifests, and `toYaml`/`fromYaml`.
//!
//! Semantics follow Go with `missingkey=error`: `.missing` on a map is an error, while
//! `index . "missing"` yields the map's zero value (`""` for the map of fetched strings).
//! Error messages name the template line, the failing action and types, never data.

mod encode;
mod exec;
mod format;
mod funcs;
mod lexer;
mod lists;
mod parse;
mod sprig;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_funcs;
mod tree;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

pub use tree::Template;

/// A template value: what Go's `interface{}` holds after JSON/YAML decoding, plus raw bytes
/// for fetched values that are not UTF-8 (Go strings may hold any bytes).
#[derive(Clone)]
pub enum Value {
    /// Go's nil interface: printed as `<no value>` at the top level, `<nil>` inside lists.
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    List(Rc<List>),
    /// Maps are shared like Go maps, so sprig's `set`/`unset` change them in place.
    Map(Map),
}

/// Lists and maps may nest at most this deep where a value is walked recursively (printing,
/// JSON/YAML, comparison); dropping them is iterative, so no depth can overflow the stack.
pub(super) const MAX_NESTING: usize = 100;

pub struct List(Vec<Value>);

impl std::ops::Deref for List {
    type Target = Vec<Value>;
    fn deref(&self) -> &Vec<Value> {
        &self.0
    }
}

#[derive(Clone)]
pub struct Map(Rc<RefCell<MapData>>);

struct MapData {
    entries: BTreeMap<String, Value>,
    /// A `map[string]string` in Go: `index` of a missing key gives `""` instead of nil.
    strings: bool,
}

impl Map {
    pub fn new(entries: BTreeMap<String, Value>) -> Map {
        Map(Rc::new(RefCell::new(MapData {
            entries,
            strings: false,
        })))
    }

    pub fn of_strings(entries: BTreeMap<String, Value>) -> Map {
        Map(Rc::new(RefCell::new(MapData {
            entries,
            strings: true,
        })))
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        self.0.borrow().entries.get(key).cloned()
    }

    /// What `index` yields for a missing key.
    pub fn zero(&self) -> Value {
        if self.0.borrow().strings {
            Value::from("")
        } else {
            Value::Nil
        }
    }

    pub fn insert(&self, key: String, v: Value) {
        self.0.borrow_mut().entries.insert(key, v);
    }

    pub fn remove(&self, key: &str) {
        self.0.borrow_mut().entries.remove(key);
    }

    pub fn len(&self) -> usize {
        self.0.borrow().entries.len()
    }

    pub fn ptr_eq(&self, other: &Map) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }

    pub fn keys(&self) -> Vec<String> {
        self.0.borrow().entries.keys().cloned().collect()
    }

    /// A snapshot of the entries in Go's order for `range` and printing (sorted keys).
    pub fn entries(&self) -> Vec<(String, Value)> {
        let d = self.0.borrow();
        d.entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(Rc::from(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(Rc::from(s))
    }
}

impl Value {
    /// Bytes as a Go string: text when it is UTF-8, raw bytes otherwise.
    pub fn from_bytes(b: &[u8]) -> Value {
        match std::str::from_utf8(b) {
            Ok(s) => Value::from(s),
            Err(_) => Value::Bytes(Rc::from(b)),
        }
    }

    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Rc::new(List(items)))
    }

    /// The type name used in error messages (never the value itself).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) | Value::Bytes(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// Go's truth: false, 0, nil and empty strings, lists and maps are false.
    pub fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Bytes(b) => !b.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => m.len() > 0,
        }
    }

    /// The string's bytes, for string-like values.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s.as_bytes()),
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn from_json(j: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match j {
            J::Null => Value::Nil,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::from(s.as_str()),
            J::Array(a) => Value::list(a.iter().map(Value::from_json).collect()),
            J::Object(o) => Value::Map(Map::new(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            )),
        }
    }

    /// JSON form for `toJson`/`toYaml`; fails on NaN or infinite floats and on values
    /// nested deeper than `MAX_NESTING`.
    pub fn to_json(&self) -> Result<serde_json::Value, String> {
        self.to_json_within(MAX_NESTING)
    }

    fn to_json_within(&self, depth: usize) -> Result<serde_json::Value, String> {
        use serde_json::Value as J;
        if depth == 0 && matches!(self, Value::List(_) | Value::Map(_)) {
            return Err(format!(
                "lists and maps nest deeper than {MAX_NESTING} levels"
            ));
        }
        let inner = |v: &Value| v.to_json_within(depth - 1);
        Ok(match self {
            Value::Nil => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .ok_or("a NaN or infinite number has no JSON form")?,
            Value::Str(s) => J::String(s.to_string()),
            Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
            Value::List(l) => J::Array(l.iter().map(inner).collect::<Result<_, _>>()?),
            Value::Map(m) => J::Object(
                m.entries()
                    .into_iter()
                    .map(|(k, v)| Ok((k, inner(&v)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }
}

/// Frees nested lists and maps with an explicit stack instead of recursion.
fn release(mut stack: Vec<Value>) {
    while let Some(v) = stack.pop() {
        match v {
            Value::List(l) => {
                if let Ok(mut l) = Rc::try_unwrap(l) {
                    stack.append(&mut l.0);
                }
            }
            Value::Map(m) => {
                if let Ok(cell) = Rc::try_unwrap(m.0) {
                    let mut data = cell.into_inner();
                    stack.extend(std::mem::take(&mut data.entries).into_values());
                }
            }
            _ => {}
        }
    }
}

impl Drop for List {
    fn drop(&mut self) {
        release(std::mem::take(&mut self.0));
    }
}

impl Drop for MapData {
    fn drop(&mut self) {
        release(std::mem::take(&mut self.entries).into_values().collect());
    }
}
