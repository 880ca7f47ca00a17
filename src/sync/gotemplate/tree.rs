//! The parsed template tree, as Go's text/template/parse builds it.

use std::collections::BTreeMap;
use std::rc::Rc;

/// A parsed template, ready to execute against any number of roots.
pub struct Template {
    pub(super) root: Vec<Node>,
    pub(super) defines: BTreeMap<String, Rc<Vec<Node>>>,
    pub(super) src: String,
}

pub(super) enum Node {
    Text(String),
    Action(Pipe),
    If(Control),
    Range(Control),
    With(Control),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

pub(super) struct Control {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Vec<Node>,
}

pub(super) struct Pipe {
    pub decl: Vec<String>,
    /// `$x = ...` (assign to an existing variable) rather than `$x := ...`.
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

pub(super) struct Cmd {
    pub pos: usize,
    /// The command's source text, for error messages.
    pub text: String,
    pub args: Vec<Arg>,
}

pub(super) enum Arg {
    Dot,
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// `.a.b` on dot.
    Field(Vec<String>),
    /// `$x.a.b`.
    Var(String, Vec<String>),
    Func(String),
    /// `(pipeline).a.b`.
    Chain(Box<Arg>, Vec<String>),
    Pipe(Box<Pipe>),
}

/// "line L col C" of a byte offset.
pub(super) fn location(src: &str, pos: usize) -> String {
    let before = &src[..pos.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line} col {col}")
}

impl Arg {
    /// Go number syntax: ints (with 0x/0o/0b prefixes and `_`), else floats.
    pub(super) fn from_number(n: &str) -> Option<Arg> {
        let clean = n.replace('_', "");
        let (neg, digits) = match clean.as_bytes().first() {
            Some(b'-') => (true, &clean[1..]),
            Some(b'+') => (false, &clean[1..]),
            _ => (false, clean.as_str()),
        };
        let lower = digits.to_ascii_lowercase();
        let (radix, body) = match lower.get(..2) {
            Some("0x") => (16, &digits[2..]),
            Some("0o") => (8, &digits[2..]),
            Some("0b") => (2, &digits[2..]),
            _ if digits.len() > 1
                && digits.starts_with('0')
                && !digits.contains(['.', 'e', 'E']) =>
            {
                (8, &digits[1..])
            }
            _ => (10, digits),
        };
        if let Ok(v) = i64::from_str_radix(body, radix) {
            return Some(Arg::Int(if neg { -v } else { v }));
        }
        if radix != 10
            || digits.is_empty()
            || !digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        {
            return None;
        }
        clean
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Arg::Float)
    }
}
