//! sprig's list and dict functions. Maps are shared like Go maps: `set` and `unset` change
//! them in place.

use std::collections::BTreeMap;

use super::format::strval;
use super::funcs::{equal, string, want, Func};
use super::{Map, Value, MAX_NESTING};

pub(super) fn lookup(name: &str) -> Option<Func> {
    let f: Func = match name {
        "join" => |a| {
            want(&a, 2)?;
            Ok(Value::from(strslice(&a[1]).join(&string(&a, 0)?)))
        },
        "sortAlpha" => |a| {
            want(&a, 1)?;
            let mut l = strslice(&a[0]);
            l.sort();
            Ok(Value::list(l.into_iter().map(Value::from).collect()))
        },
        "list" => |a| Ok(Value::list(a)),
        "append" | "push" => |a| {
            want(&a, 2)?;
            let mut l = list(&a, 0)?;
            l.push(a[1].clone());
            Ok(Value::list(l))
        },
        "first" => |a| Ok(list1(a)?.first().cloned().unwrap_or(Value::Nil)),
        "last" => |a| Ok(list1(a)?.last().cloned().unwrap_or(Value::Nil)),
        "has" => |a| {
            want(&a, 2)?;
            Ok(Value::Bool(match &a[1] {
                Value::List(l) => l.iter().any(|v| deep_eq(v, &a[0])),
                _ => false,
            }))
        },
        "dict" => |a| {
            let mut m = BTreeMap::new();
            for pair in a.chunks(2) {
                m.insert(
                    strval(&pair[0]),
                    pair.get(1).cloned().unwrap_or(Value::from("")),
                );
            }
            Ok(Value::Map(Map::new(m)))
        },
        "get" => |a| {
            want(&a, 2)?;
            Ok(map(&a, 0)?.get(&string(&a, 1)?).unwrap_or(Value::from("")))
        },
        "set" => |a| {
            want(&a, 3)?;
            let m = map(&a, 0)?;
            insertable(&m, &a[2])?;
            m.insert(string(&a, 1)?, a[2].clone());
            Ok(a[0].clone())
        },
        "unset" => |a| {
            want(&a, 2)?;
            map(&a, 0)?.remove(&string(&a, 1)?);
            Ok(a[0].clone())
        },
        "hasKey" => |a| {
            want(&a, 2)?;
            Ok(Value::Bool(map(&a, 0)?.get(&string(&a, 1)?).is_some()))
        },
        "keys" => |a| {
            let mut keys = Vec::new();
            for i in 0..a.len() {
                keys.extend(map(&a, i)?.keys());
            }
            keys.sort();
            Ok(Value::list(keys.into_iter().map(Value::from).collect()))
        },
        "values" => |a| {
            want(&a, 1)?;
            Ok(Value::list(
                map(&a, 0)?.entries().into_iter().map(|(_, v)| v).collect(),
            ))
        },
        _ => return None,
    };
    Some(f)
}

/// `set` changes a map in place, so it must not make the map contain itself.
fn insertable(target: &Map, v: &Value) -> Result<(), String> {
    fn reaches(v: &Value, target: &Map, left: usize) -> Option<bool> {
        match v {
            Value::List(_) | Value::Map(_) if left == 0 => None,
            Value::List(l) => l
                .iter()
                .try_fold(false, |hit, e| Some(hit || reaches(e, target, left - 1)?)),
            Value::Map(m) if m.ptr_eq(target) => Some(true),
            Value::Map(m) => m.entries().iter().try_fold(false, |hit, (_, e)| {
                Some(hit || reaches(e, target, left - 1)?)
            }),
            _ => Some(false),
        }
    }
    match reaches(v, target, MAX_NESTING) {
        Some(false) => Ok(()),
        Some(true) => Err("a map cannot be set inside itself".into()),
        None => Err(format!(
            "lists and maps nest deeper than {MAX_NESTING} levels"
        )),
    }
}

fn list(a: &[Value], i: usize) -> Result<Vec<Value>, String> {
    match &a[i] {
        Value::List(l) => Ok(l.to_vec()),
        v => Err(format!(
            "argument {} must be a list, got {}",
            i + 1,
            v.kind()
        )),
    }
}

fn list1(a: Vec<Value>) -> Result<Vec<Value>, String> {
    want(&a, 1)?;
    list(&a, 0)
}

fn map(a: &[Value], i: usize) -> Result<Map, String> {
    match &a[i] {
        Value::Map(m) => Ok(m.clone()),
        v => Err(format!(
            "argument {} must be a map, got {}",
            i + 1,
            v.kind()
        )),
    }
}

/// sprig's `strslice`: list items (nil dropped) as strings, or a lone value as one string.
fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(strval)
            .collect(),
        Value::Nil => Vec::new(),
        v => vec![strval(v)],
    }
}

/// `reflect.DeepEqual` for template values (false past `MAX_NESTING`).
fn deep_eq(a: &Value, b: &Value) -> bool {
    fn within(a: &Value, b: &Value, left: usize) -> bool {
        match (a, b) {
            (Value::List(_) | Value::Map(_), _) if left == 0 => false,
            (Value::List(x), Value::List(y)) => {
                x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| within(p, q, left - 1))
            }
            (Value::Map(x), Value::Map(y)) => {
                let (x, y) = (x.entries(), y.entries());
                x.len() == y.len()
                    && x.iter()
                        .zip(y.iter())
                        .all(|((kx, vx), (ky, vy))| kx == ky && within(vx, vy, left - 1))
            }
            (Value::Int(_), Value::Float(_)) | (Value::Float(_), Value::Int(_)) => false,
            _ => equal(a, b).unwrap_or(false),
        }
    }
    within(a, b, MAX_NESTING)
}
