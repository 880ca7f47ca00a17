//! The function table: Go's builtins here, sprig's in `sprig`, encodings in `encode`.
//! Messages name argument positions and types, never argument values.

use std::cmp::Ordering;

use super::format::{sprint, sprintf, sprintln};
use super::{encode, sprig, Value};

pub(super) type Func = fn(Vec<Value>) -> Result<Value, String>;

pub(super) fn exists(name: &str) -> bool {
    matches!(name, "and" | "or") || lookup(name).is_some()
}

pub(super) fn lookup(name: &str) -> Option<Func> {
    let f: Func = match name {
        "not" => |a| {
            want(&a, 1)?;
            Ok(Value::Bool(!a[0].truth()))
        },
        "eq" => eq,
        "ne" => |a| {
            want(&a, 2)?;
            Ok(Value::Bool(!equal(&a[0], &a[1])?))
        },
        "lt" => |a| compare(a, |o| o == Ordering::Less),
        "le" => |a| compare(a, |o| o != Ordering::Greater),
        "gt" => |a| compare(a, |o| o == Ordering::Greater),
        "ge" => |a| compare(a, |o| o != Ordering::Less),
        "len" => |a| {
            want(&a, 1)?;
            Ok(Value::Int(match &a[0] {
                Value::Str(_) | Value::Bytes(_) => a[0].as_bytes().map_or(0, <[u8]>::len),
                Value::List(l) => l.len(),
                Value::Map(m) => m.len(),
                v => return Err(format!("len of a {}", v.kind())),
            } as i64))
        },
        "index" => index,
        "slice" => slice,
        "print" => |a| Ok(Value::from_bytes(&sprint(&a))),
        "println" => |a| Ok(Value::from_bytes(&sprintln(&a))),
        "printf" => |a| {
            want_at_least(&a, 1)?;
            Ok(Value::from_bytes(&sprintf(&string(&a, 0)?, &a[1..])?))
        },
        _ => return sprig::lookup(name).or_else(|| encode::lookup(name)),
    };
    Some(f)
}

pub(super) fn want(a: &[Value], n: usize) -> Result<(), String> {
    if a.len() != n {
        let s = if n == 1 { "" } else { "s" };
        return Err(format!("wants {n} argument{s}, got {}", a.len()));
    }
    Ok(())
}

pub(super) fn want_at_least(a: &[Value], n: usize) -> Result<(), String> {
    if a.len() < n {
        let s = if n == 1 { "" } else { "s" };
        return Err(format!("wants at least {n} argument{s}, got {}", a.len()));
    }
    Ok(())
}

pub(super) fn want_between(a: &[Value], min: usize, max: usize) -> Result<(), String> {
    if a.len() < min || a.len() > max {
        return Err(format!("wants {min} to {max} arguments, got {}", a.len()));
    }
    Ok(())
}

/// Argument `i` as a string parameter (Go rejects other types for a string parameter).
pub(super) fn string(a: &[Value], i: usize) -> Result<String, String> {
    match a.get(i) {
        Some(Value::Str(s)) => Ok(s.to_string()),
        Some(Value::Bytes(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        Some(v) => Err(format!(
            "argument {} must be a string, got {}",
            i + 1,
            v.kind()
        )),
        None => Err(format!("argument {} is missing", i + 1)),
    }
}

/// Argument `i` as an int parameter.
pub(super) fn int(a: &[Value], i: usize) -> Result<i64, String> {
    match a.get(i) {
        Some(Value::Int(n)) => Ok(*n),
        Some(v) => Err(format!(
            "argument {} must be an integer, got {}",
            i + 1,
            v.kind()
        )),
        None => Err(format!("argument {} is missing", i + 1)),
    }
}

fn eq(a: Vec<Value>) -> Result<Value, String> {
    if a.len() < 2 {
        return Err("missing argument for comparison".into());
    }
    for b in &a[1..] {
        if equal(&a[0], b)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

/// Go's `eq` on basic values; ints and floats compare by value, nil equals only nil.
pub(super) fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    Ok(match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Nil, _) | (_, Value::Nil) => false,
        (Value::List(_) | Value::Map(_), _) | (_, Value::List(_) | Value::Map(_)) => {
            return Err(format!("can't compare a {} with eq", incomparable(a, b)));
        }
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Bool(_), _) | (_, Value::Bool(_)) => {
            let (x, y) = (a.kind(), b.kind());
            return Err(format!("incompatible types for comparison: {x} and {y}"));
        }
        _ => order(a, b)? == Ordering::Equal,
    })
}

fn incomparable(a: &Value, b: &Value) -> &'static str {
    match a {
        Value::List(_) | Value::Map(_) => a.kind(),
        _ => b.kind(),
    }
}

/// Ordering of two ints/floats or two strings; other pairs are Go's comparison errors.
fn order(a: &Value, b: &Value) -> Result<Ordering, String> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let f = |v: &Value| match v {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                _ => 0.0,
            };
            f(a).partial_cmp(&f(b))
                .ok_or_else(|| "can't order NaN".to_string())
        }
        (Value::Str(_) | Value::Bytes(_), Value::Str(_) | Value::Bytes(_)) => {
            Ok(a.as_bytes().cmp(&b.as_bytes()))
        }
        (Value::Bool(_) | Value::Nil | Value::List(_) | Value::Map(_), _) => {
            Err(format!("invalid type for comparison: {}", a.kind()))
        }
        _ => Err(format!(
            "incompatible types for comparison: {} and {}",
            a.kind(),
            b.kind()
        )),
    }
}

fn compare(a: Vec<Value>, ok: fn(Ordering) -> bool) -> Result<Value, String> {
    want(&a, 2)?;
    if let Value::Bool(_) | Value::Nil | Value::List(_) | Value::Map(_) = &a[1] {
        return Err(format!("invalid type for comparison: {}", a[1].kind()));
    }
    Ok(Value::Bool(ok(order(&a[0], &a[1])?)))
}

fn index(a: Vec<Value>) -> Result<Value, String> {
    want_at_least(&a, 1)?;
    let mut v = a[0].clone();
    for (k, key) in a[1..].iter().enumerate() {
        v = match (&v, key) {
            (Value::Map(m), Value::Str(_) | Value::Bytes(_)) => {
                let key = String::from_utf8_lossy(key.as_bytes().unwrap_or_default()).into_owned();
                m.get(&key).unwrap_or_else(|| m.zero())
            }
            (Value::List(l), Value::Int(i)) => usize::try_from(*i)
                .ok()
                .and_then(|i| l.get(i).cloned())
                .ok_or_else(|| format!("argument {} is out of range", k + 2))?,
            (Value::Str(_) | Value::Bytes(_), Value::Int(i)) => {
                let b = v.as_bytes().unwrap_or_default();
                let byte = usize::try_from(*i).ok().and_then(|i| b.get(i));
                Value::Int(
                    *byte.ok_or_else(|| format!("argument {} is out of range", k + 2))? as i64,
                )
            }
            (Value::Nil, _) => return Err("index of a nil value".into()),
            (c, key) => {
                return Err(format!(
                    "can't index a {} with a {} (index {})",
                    c.kind(),
                    key.kind(),
                    k + 1
                ));
            }
        };
    }
    Ok(v)
}

fn slice(a: Vec<Value>) -> Result<Value, String> {
    want_between(&a, 1, 3)?;
    let len = match &a[0] {
        Value::List(l) => l.len(),
        v @ (Value::Str(_) | Value::Bytes(_)) => v.as_bytes().map_or(0, <[u8]>::len),
        v => return Err(format!("can't slice a {}", v.kind())),
    };
    let bound = |i: usize, default: usize| -> Result<usize, String> {
        match a.get(i) {
            None => Ok(default),
            Some(_) => usize::try_from(int(&a, i)?)
                .ok()
                .filter(|n| *n <= len)
                .ok_or_else(|| format!("bound {i} is out of range")),
        }
    };
    let (lo, hi) = (bound(1, 0)?, bound(2, len)?);
    if lo > hi {
        return Err("slice bounds are reversed".into());
    }
    Ok(match &a[0] {
        Value::List(l) => Value::list(l[lo..hi].to_vec()),
        v => Value::from_bytes(&v.as_bytes().unwrap_or_default()[lo..hi]),
    })
}
