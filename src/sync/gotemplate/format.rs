//! Go's fmt formatting of template values: `%v` printing, `print`/`println`/`printf`, and
//! strconv's quoting and float layout.

use super::{Value, MAX_NESTING};

/// An action's output: a nil value prints as `<no value>`, as in Go templates.
pub(super) fn print_top(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Nil => out.extend_from_slice(b"<no value>"),
        v => write_v(out, v),
    }
}

/// Go's `%v`. Lists and maps nested deeper than `MAX_NESTING` print as `[...]`.
pub(super) fn write_v(out: &mut Vec<u8>, v: &Value) {
    write_within(out, v, MAX_NESTING);
}

fn write_within(out: &mut Vec<u8>, v: &Value, depth: usize) {
    match v {
        Value::Nil => out.extend_from_slice(b"<nil>"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Float(f) => out.extend_from_slice(float_g(*f, None).as_bytes()),
        Value::Str(s) => out.extend_from_slice(s.as_bytes()),
        Value::Bytes(b) => out.extend_from_slice(b),
        Value::List(_) | Value::Map(_) if depth == 0 => out.extend_from_slice(b"[...]"),
        Value::List(l) => {
            out.push(b'[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write_within(out, e, depth - 1);
            }
            out.push(b']');
        }
        Value::Map(m) => {
            out.extend_from_slice(b"map[");
            for (i, (k, e)) in m.entries().iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(k.as_bytes());
                out.push(b':');
                write_within(out, e, depth - 1);
            }
            out.push(b']');
        }
    }
}

/// sprig's `toString`: strings as they are, anything else as `%v`.
pub(super) fn strval(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        v => {
            let mut out = Vec::new();
            write_v(&mut out, v);
            String::from_utf8_lossy(&out).into_owned()
        }
    }
}

/// Go's `Sprint`: spaces between operands when neither is a string.
pub(super) fn sprint(args: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && a.as_bytes().is_none() && args[i - 1].as_bytes().is_none() {
            out.push(b' ');
        }
        write_v(&mut out, a);
    }
    out
}

/// Go's `Sprintln`: spaces between all operands and a final newline.
pub(super) fn sprintln(args: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        write_v(&mut out, a);
    }
    out.push(b'\n');
    out
}

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's `Sprintf` for the verbs templates use. Where Go writes `%!verb(...)` into the output
/// (wrong type, missing or extra arguments) this is an error naming the verb and type.
pub(super) fn sprintf(format: &str, args: &[Value]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut next = 0;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let mut s = Spec::default();
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '-' => s.minus = true,
                '+' => s.plus = true,
                '#' => s.sharp = true,
                ' ' => s.space = true,
                '0' => s.zero = true,
                _ => break,
            }
            chars.next();
        }
        let num = |chars: &mut std::iter::Peekable<std::str::CharIndices>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|&(_, d)| d.to_digit(10)) {
                n = Some(
                    n.unwrap_or(0)
                        .saturating_mul(10)
                        .saturating_add(d as usize)
                        .min(1 << 16),
                );
                chars.next();
            }
            n
        };
        s.width = num(&mut chars);
        if chars.peek().map(|&(_, c)| c) == Some('.') {
            chars.next();
            s.prec = Some(num(&mut chars).unwrap_or(0));
        }
        let Some((_, verb)) = chars.next() else {
            return Err("the format ends with a lone %".into());
        };
        if verb == '%' {
            out.push(b'%');
            continue;
        }
        if matches!(verb, '[' | '*') {
            return Err(format!(
                "%{verb} (argument indexes and * widths) is not supported"
            ));
        }
        let arg = args.get(next).ok_or_else(|| {
            format!(
                "the format has more verbs than the {} arguments given",
                args.len()
            )
        })?;
        next += 1;
        let body = verb_body(verb, &s, arg)?;
        pad(
            &mut out,
            body,
            &s,
            matches!(
                verb,
                'd' | 'x' | 'X' | 'o' | 'b' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G'
            ),
        );
    }
    if next < args.len() {
        return Err(format!(
            "{} arguments given but the format uses {next}",
            args.len()
        ));
    }
    Ok(out)
}

fn pad(out: &mut Vec<u8>, body: Vec<u8>, s: &Spec, numeric: bool) {
    let len = String::from_utf8_lossy(&body).chars().count();
    let fill = s.width.unwrap_or(0).saturating_sub(len);
    if s.minus {
        out.extend_from_slice(&body);
        out.extend(std::iter::repeat_n(b' ', fill));
    } else if s.zero && numeric {
        let sign = usize::from(matches!(body.first(), Some(b'-' | b'+' | b' ')));
        out.extend_from_slice(&body[..sign]);
        out.extend(std::iter::repeat_n(b'0', fill));
        out.extend_from_slice(&body[sign..]);
    } else {
        out.extend(std::iter::repeat_n(if s.zero { b'0' } else { b' ' }, fill));
        out.extend_from_slice(&body);
    }
}

fn signed(s: &Spec, neg: bool, digits: String) -> Vec<u8> {
    let sign = if neg {
        "-"
    } else if s.plus {
        "+"
    } else if s.space {
        " "
    } else {
        ""
    };
    format!("{sign}{digits}").into_bytes()
}

fn verb_body(verb: char, s: &Spec, arg: &Value) -> Result<Vec<u8>, String> {
    let bad = || Err(format!("%{verb} cannot format a {}", arg.kind()));
    Ok(match (verb, arg) {
        ('v', v) => {
            let mut out = Vec::new();
            write_v(&mut out, v);
            out
        }
        ('s', Value::Str(_) | Value::Bytes(_)) => {
            let text = String::from_utf8_lossy(arg.as_bytes().unwrap_or_default()).into_owned();
            match s.prec {
                Some(p) => text.chars().take(p).collect::<String>().into_bytes(),
                None => arg.as_bytes().unwrap_or_default().to_vec(),
            }
        }
        ('s', v) => verb_body('v', s, v)?,
        ('q', Value::Str(_) | Value::Bytes(_)) => {
            quote(arg.as_bytes().unwrap_or_default()).into_bytes()
        }
        ('q', Value::Int(i)) => match u32::try_from(*i).ok().and_then(char::from_u32) {
            Some('\'') => b"'\\''".to_vec(),
            Some(c) => {
                let q = quote(c.to_string().as_bytes());
                format!("'{}'", &q[1..q.len() - 1]).into_bytes()
            }
            None => "'\u{fffd}'".as_bytes().to_vec(),
        },
        ('t', Value::Bool(b)) => b.to_string().into_bytes(),
        ('c', Value::Int(i)) => u32::try_from(*i)
            .ok()
            .and_then(char::from_u32)
            .unwrap_or('\u{fffd}')
            .to_string()
            .into_bytes(),
        ('d', Value::Int(i)) => signed(s, *i < 0, i.unsigned_abs().to_string()),
        ('b', Value::Int(i)) => signed(s, *i < 0, format!("{:b}", i.unsigned_abs())),
        ('o', Value::Int(i)) => {
            let p = if s.sharp { "0" } else { "" };
            signed(s, *i < 0, format!("{p}{:o}", i.unsigned_abs()))
        }
        ('x' | 'X', Value::Int(i)) => {
            let p = if s.sharp { "0x" } else { "" };
            let h = format!("{p}{:x}", i.unsigned_abs());
            signed(s, *i < 0, if verb == 'X' { h.to_uppercase() } else { h })
        }
        ('x' | 'X', Value::Str(_) | Value::Bytes(_)) => {
            let h = hex::encode(arg.as_bytes().unwrap_or_default());
            (if verb == 'X' { h.to_uppercase() } else { h }).into_bytes()
        }
        ('e' | 'E' | 'f' | 'F' | 'g' | 'G', Value::Int(_) | Value::Float(_)) => {
            let f = match arg {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                _ => unreachable!(),
            };
            if !f.is_finite() {
                return Ok(float_g(f, None).into_bytes());
            }
            let body = match verb {
                'e' | 'E' => exp_form(&format!("{:.*e}", s.prec.unwrap_or(6), f.abs())),
                'f' | 'F' => format!("{:.*}", s.prec.unwrap_or(6), f.abs()),
                _ => float_g(f.abs(), s.prec),
            };
            let body = signed(s, f.is_sign_negative() && f != 0.0, body);
            if verb.is_uppercase() {
                body.to_ascii_uppercase()
            } else {
                body
            }
        }
        ('T', v) => match v {
            Value::Nil => "<nil>",
            Value::Float(_) => "float64",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            v => v.kind(),
        }
        .as_bytes()
        .to_vec(),
        ('q' | 't' | 'c' | 'd' | 'b' | 'o' | 'x' | 'X', _) => return bad(),
        ('e' | 'E' | 'f' | 'F' | 'g' | 'G', _) => return bad(),
        _ => return Err(format!("unknown verb %{verb}")),
    })
}

/// Rust's `1.5e3` as Go's `1.5e+03`.
fn exp_form(rust: &str) -> String {
    let (mant, exp) = rust.split_once('e').unwrap_or((rust, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}e{sign}{:02}", exp.abs())
}

/// Go's `%g` (`prec` None: shortest, as `%v` prints floats).
pub(super) fn float_g(f: f64, prec: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let neg = if f.is_sign_negative() && f != 0.0 {
        "-"
    } else {
        ""
    };
    let sci = match prec {
        None => format!("{:e}", f.abs()),
        Some(p) => format!("{:.*e}", p.max(1) - 1, f.abs()),
    };
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let (digits, exp) = if digits.is_empty() {
        ("0", 0)
    } else {
        (digits, exp)
    };
    let nd = digits.len() as i32;
    let dp = exp + 1;
    let mut eprec = prec.map_or(6, |p| p.max(1) as i32);
    if prec.is_some() && eprec > nd && nd >= dp {
        eprec = nd;
    }
    if exp < -4 || exp >= eprec {
        let rest = &digits[1..];
        let dot = if rest.is_empty() { "" } else { "." };
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{neg}{}{dot}{rest}e{sign}{:02}", &digits[..1], exp.abs());
    }
    let mut s = String::from(neg);
    if dp <= 0 {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', (-dp) as usize));
        s.push_str(digits);
    } else if dp >= nd {
        s.push_str(digits);
        s.extend(std::iter::repeat_n('0', (dp - nd) as usize));
    } else {
        s.push_str(&digits[..dp as usize]);
        s.push('.');
        s.push_str(&digits[dp as usize..]);
    }
    s
}

/// Go's `strconv.Quote`: a double-quoted string with Go escapes.
pub(super) fn quote(b: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x0b' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c == '\x7f' => {
                    out.push_str(&format!("\\x{:02x}", c as u32))
                }
                c if c.is_control() || (c.is_whitespace() && c != ' ') || c == '\u{feff}' => {
                    if (c as u32) < 0x10000 {
                        out.push_str(&format!("\\u{:04x}", c as u32));
                    } else {
                        out.push_str(&format!("\\U{:08x}", c as u32));
                    }
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out.push('"');
    out
}
