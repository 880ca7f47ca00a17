//! sprig's string, default, conversion and integer-math functions, with sprig's
//! argument order (the piped value comes last: `replace OLD NEW STR`, `default DEFAULT VALUE`).

use super::format::{quote, strval};
use super::funcs::{int, string, want, want_at_least, Func};
use super::{Map, Value};

const MAX_LEN: usize = 8 << 20;

pub(super) fn lookup(name: &str) -> Option<Func> {
    let f: Func = match name {
        "upper" => |a| str1(a, |s| s.to_uppercase()),
        "lower" => |a| str1(a, |s| s.to_lowercase()),
        "title" => |a| str1(a, title),
        "trim" => |a| str1(a, |s| s.trim().to_string()),
        "nospace" => |a| str1(a, |s| s.chars().filter(|c| !c.is_whitespace()).collect()),
        "trimAll" => |a| str2(a, |cut, s| s.trim_matches(|c| cut.contains(c)).to_string()),
        "trimPrefix" => |a| str2(a, |p, s| s.strip_prefix(p).unwrap_or(s).to_string()),
        "trimSuffix" => |a| str2(a, |p, s| s.strip_suffix(p).unwrap_or(s).to_string()),
        "contains" => |a| bool2(a, |sub, s| s.contains(sub)),
        "hasPrefix" => |a| bool2(a, |p, s| s.starts_with(p)),
        "hasSuffix" => |a| bool2(a, |p, s| s.ends_with(p)),
        "replace" => |a| {
            want(&a, 3)?;
            let (old, new, s) = (string(&a, 0)?, string(&a, 1)?, string(&a, 2)?);
            let out = s.replace(&old, &new);
            check_len(out.len())?;
            Ok(Value::from(out))
        },
        "indent" => |a| indent(a, ""),
        "nindent" => |a| indent(a, "\n"),
        "repeat" => |a| {
            want(&a, 2)?;
            let (n, s) = (count(&a, 0)?, string(&a, 1)?);
            check_len(n.saturating_mul(s.len()))?;
            Ok(Value::from(s.repeat(n)))
        },
        "substr" => substr,
        "trunc" => |a| {
            want(&a, 2)?;
            let (c, v) = (int(&a, 0)?, bytes(&a, 1)?);
            let n = v.len() as i64;
            Ok(Value::from_bytes(match c {
                c if c < 0 && n + c > 0 => &v[(n + c) as usize..],
                c if c >= 0 && n > c => &v[..c as usize],
                _ => &v,
            }))
        },
        "quote" => |a| {
            Ok(Value::from(join_non_nil(&a, |v| {
                quote(strval(v).as_bytes())
            })))
        },
        "squote" => |a| {
            Ok(Value::from(join_non_nil(&a, |v| {
                format!("'{}'", strval(v))
            })))
        },
        "cat" => |a| Ok(Value::from(join_non_nil(&a, strval))),
        "toString" => |a| {
            want(&a, 1)?;
            Ok(match &a[0] {
                v @ (Value::Str(_) | Value::Bytes(_)) => v.clone(),
                v => Value::from(strval(v)),
            })
        },
        "split" => |a| {
            let parts = split(&a)?;
            let m = parts
                .into_iter()
                .enumerate()
                .map(|(i, p)| (format!("_{i}"), Value::from(p)));
            Ok(Value::Map(Map::of_strings(m.collect())))
        },
        "splitList" => |a| {
            Ok(Value::list(
                split(&a)?.into_iter().map(Value::from).collect(),
            ))
        },
        "default" => |a| {
            want_at_least(&a, 1)?;
            Ok(match a.get(1) {
                Some(v) if v.truth() => v.clone(),
                _ => a[0].clone(),
            })
        },
        "empty" => |a| {
            want(&a, 1)?;
            Ok(Value::Bool(!a[0].truth()))
        },
        "coalesce" => |a| Ok(a.into_iter().find(Value::truth).unwrap_or(Value::Nil)),
        "ternary" => |a| {
            want(&a, 3)?;
            match a[2] {
                Value::Bool(c) => Ok(a[if c { 0 } else { 1 }].clone()),
                ref v => Err(format!("argument 3 must be a bool, got {}", v.kind())),
            }
        },
        "required" => |a| {
            want(&a, 2)?;
            match &a[1] {
                Value::Nil => Err(string(&a, 0)?),
                v if v.as_bytes() == Some(b"") => Err(string(&a, 0)?),
                v => Ok(v.clone()),
            }
        },
        "fail" => |a| {
            want(&a, 1)?;
            Err(string(&a, 0)?)
        },
        "int" | "int64" => |a| {
            want(&a, 1)?;
            Ok(Value::Int(to_int(&a[0])))
        },
        "float64" => |a| {
            want(&a, 1)?;
            Ok(Value::Float(match &a[0] {
                Value::Float(f) => *f,
                Value::Str(_) | Value::Bytes(_) => strval(&a[0]).parse().unwrap_or(0.0),
                v => to_int(v) as f64,
            }))
        },
        "atoi" => |a| {
            want(&a, 1)?;
            let s = string(&a, 0)?;
            let digits = s.strip_prefix(['+', '-']).unwrap_or(&s);
            let ok = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            Ok(Value::Int(if ok { s.parse().unwrap_or(0) } else { 0 }))
        },
        "add" => |a| Ok(Value::Int(a.iter().map(to_int).fold(0, i64::wrapping_add))),
        "add1" => |a| {
            want(&a, 1)?;
            Ok(Value::Int(to_int(&a[0]).wrapping_add(1)))
        },
        "sub" => |a| math2(a, |x, y| Ok(x.wrapping_sub(y))),
        "mul" => |a| Ok(Value::Int(a.iter().map(to_int).fold(1, i64::wrapping_mul))),
        "div" => |a| math2(a, |x, y| x.checked_div(y).ok_or("division by zero".into())),
        "mod" => |a| math2(a, |x, y| x.checked_rem(y).ok_or("division by zero".into())),
        "max" => |a| {
            Ok(Value::Int(
                a.iter()
                    .map(to_int)
                    .max()
                    .ok_or("wants at least 1 argument")?,
            ))
        },
        "min" => |a| {
            Ok(Value::Int(
                a.iter()
                    .map(to_int)
                    .min()
                    .ok_or("wants at least 1 argument")?,
            ))
        },
        _ => return super::lists::lookup(name),
    };
    Some(f)
}

fn check_len(n: usize) -> Result<(), String> {
    if n > MAX_LEN {
        return Err(format!(
            "the result would be larger than {} MiB",
            MAX_LEN >> 20
        ));
    }
    Ok(())
}

fn str1(a: Vec<Value>, f: fn(&str) -> String) -> Result<Value, String> {
    want(&a, 1)?;
    Ok(Value::from(f(&string(&a, 0)?)))
}

fn str2(a: Vec<Value>, f: fn(&str, &str) -> String) -> Result<Value, String> {
    want(&a, 2)?;
    Ok(Value::from(f(&string(&a, 0)?, &string(&a, 1)?)))
}

fn bool2(a: Vec<Value>, f: fn(&str, &str) -> bool) -> Result<Value, String> {
    want(&a, 2)?;
    Ok(Value::Bool(f(&string(&a, 0)?, &string(&a, 1)?)))
}

fn math2(a: Vec<Value>, f: fn(i64, i64) -> Result<i64, String>) -> Result<Value, String> {
    want(&a, 2)?;
    Ok(Value::Int(f(to_int(&a[0]), to_int(&a[1]))?))
}

/// A string parameter's raw bytes (sprig's byte-indexed `substr` and `trunc`).
fn bytes(a: &[Value], i: usize) -> Result<Vec<u8>, String> {
    match a[i].as_bytes() {
        Some(b) => Ok(b.to_vec()),
        None => string(a, i).map(String::into_bytes),
    }
}

fn count(a: &[Value], i: usize) -> Result<usize, String> {
    usize::try_from(int(a, i)?).map_err(|_| format!("argument {} must not be negative", i + 1))
}

fn join_non_nil(a: &[Value], f: impl Fn(&Value) -> String) -> String {
    let parts: Vec<String> = a
        .iter()
        .filter(|v| !matches!(v, Value::Nil))
        .map(f)
        .collect();
    parts.join(" ")
}

fn split(a: &[Value]) -> Result<Vec<String>, String> {
    want(a, 2)?;
    let (sep, s) = (string(a, 0)?, string(a, 1)?);
    Ok(if sep.is_empty() {
        s.chars().map(String::from).collect()
    } else {
        s.split(sep.as_str()).map(String::from).collect()
    })
}

fn indent(a: Vec<Value>, lead: &str) -> Result<Value, String> {
    want(&a, 2)?;
    let (n, s) = (count(&a, 0)?, string(&a, 1)?);
    let lines = s.matches('\n').count() + 1;
    check_len(n.saturating_mul(lines).saturating_add(s.len()))?;
    let pad = " ".repeat(n);
    Ok(Value::from(format!(
        "{lead}{pad}{}",
        s.replace('\n', &format!("\n{pad}"))
    )))
}

fn substr(a: Vec<Value>) -> Result<Value, String> {
    want(&a, 3)?;
    let (start, end, s) = (int(&a, 0)?, int(&a, 1)?, bytes(&a, 2)?);
    let n = s.len() as i64;
    let (lo, hi) = if start < 0 {
        (0, end)
    } else if end < 0 || end > n {
        (start, n)
    } else {
        (start, end)
    };
    if lo < 0 || hi < 0 || lo > hi || hi > n {
        return Err("the bounds are out of range for the string".into());
    }
    Ok(Value::from_bytes(&s[lo as usize..hi as usize]))
}

/// Go's `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !c.is_alphanumeric() && c.is_whitespace()
        }
    };
    let mut prev = ' ';
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if separator(prev) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

/// sprig's `int` (spf13/cast): numbers truncate, bools are 0/1, strings parse in Go syntax
/// (`0x`, `0o`, `0b`, a `.000` tail), anything else is 0.
pub(super) fn to_int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(_) | Value::Bytes(_) => {
            let s = strval(v);
            let s = match s.split_once('.') {
                Some((head, tail)) if tail.bytes().all(|b| b == b'0') => head.to_string(),
                _ => s,
            };
            let (neg, body) = match s.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, s.strip_prefix('+').unwrap_or(&s)),
            };
            let lower = body.to_ascii_lowercase();
            let (radix, digits) = match lower.get(..2) {
                Some("0x") => (16, &body[2..]),
                Some("0o") => (8, &body[2..]),
                Some("0b") => (2, &body[2..]),
                _ if body.len() > 1 && body.starts_with('0') => (8, &body[1..]),
                _ => (10, body),
            };
            let digits = digits.replace('_', "");
            match i64::from_str_radix(&digits, radix) {
                Ok(n) if !digits.starts_with(['+', '-']) => {
                    if neg {
                        -n
                    } else {
                        n
                    }
                }
                _ => 0,
            }
        }
        _ => 0,
    }
}
