//! Executes a parsed template the way Go's text/template does with `missingkey=error`.

use super::format;
use super::funcs;
use super::tree::{location, Arg, Cmd, Control, Node, Pipe, Template};
use super::Value;

/// Bounds on what one execution may do, so a template cannot stall the controller.
/// Work units: one per node and range iteration, plus the size of each function result (list
/// and map entries, string bytes / 64), so quadratic `append` or string building is bounded.
const MAX_WORK: usize = 10_000_000;
/// One bcrypt hash (cost 10, about 150 ms) is worth this much work: at most 40 per template.
const BCRYPT_WORK: usize = 250_000;
const MAX_OUTPUT: usize = 8 << 20;
const MAX_DEPTH: usize = 100;

enum Fail {
    /// Not yet tied to a command.
    Raw(String),
    At(usize, String, String),
}

impl From<String> for Fail {
    fn from(s: String) -> Fail {
        Fail::Raw(s)
    }
}

impl From<&str> for Fail {
    fn from(s: &str) -> Fail {
        Fail::Raw(s.to_string())
    }
}

type R<T> = Result<T, Fail>;

#[derive(PartialEq)]
enum Flow {
    Next,
    Break,
    Continue,
}

impl Template {
    /// Executes with `root` as `.` and `$`. The error names the line and the failing action.
    pub fn execute(&self, root: &Value) -> Result<Vec<u8>, String> {
        let mut s = State {
            t: self,
            out: Vec::new(),
            vars: vec![("$".into(), root.clone())],
            work: 0,
            depth: 0,
        };
        match s.walk(root, &self.root).and_then(|_| s.charge(0)) {
            Ok(()) => Ok(s.out),
            Err(Fail::Raw(msg)) => Err(msg),
            Err(Fail::At(pos, text, msg)) => {
                let loc = location(&self.src, pos);
                if text.is_empty() {
                    Err(format!("{loc}: {msg}"))
                } else {
                    Err(format!("{loc}: at <{}>: {msg}", snippet(&text)))
                }
            }
        }
    }
}

fn snippet(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(60) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

struct State<'a> {
    t: &'a Template,
    out: Vec<u8>,
    vars: Vec<(String, Value)>,
    work: usize,
    depth: usize,
}

impl State<'_> {
    fn step(&mut self) -> R<()> {
        self.charge(1)
    }

    fn charge(&mut self, units: usize) -> R<()> {
        self.work = self.work.saturating_add(units);
        if self.work > MAX_WORK {
            let msg = format!("the template does more than {MAX_WORK} steps of work; simplify it");
            return Err(msg.into());
        }
        if self.out.len() > MAX_OUTPUT {
            return Err(format!("the output is larger than {} MiB", MAX_OUTPUT >> 20).into());
        }
        Ok(())
    }

    fn walk(&mut self, dot: &Value, nodes: &[Node]) -> R<Flow> {
        for n in nodes {
            self.step()?;
            let flow = match n {
                Node::Text(s) => {
                    self.out.extend_from_slice(s.as_bytes());
                    Flow::Next
                }
                Node::Action(p) => {
                    let v = self.pipe(dot, p)?;
                    if p.decl.is_empty() {
                        format::print_top(&mut self.out, &v);
                    }
                    Flow::Next
                }
                Node::If(c) => self.if_with(dot, c, false)?,
                Node::With(c) => self.if_with(dot, c, true)?,
                Node::Range(c) => self.range(dot, c)?,
                Node::Template { pos, name, pipe } => {
                    let at = |m: String| Fail::At(*pos, String::new(), m);
                    let Some(body) = self.t.defines.get(name).cloned() else {
                        return Err(at(format!("no template named {name:?}")));
                    };
                    if self.depth >= MAX_DEPTH {
                        return Err(at(format!("templates nest deeper than {MAX_DEPTH}")));
                    }
                    let d = match pipe {
                        Some(p) => self.pipe(dot, p)?,
                        None => Value::Nil,
                    };
                    let saved = std::mem::replace(&mut self.vars, vec![("$".into(), d.clone())]);
                    self.depth += 1;
                    let r = self.walk(&d, &body);
                    self.depth -= 1;
                    self.vars = saved;
                    r?;
                    Flow::Next
                }
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if flow != Flow::Next {
                return Ok(flow);
            }
        }
        Ok(Flow::Next)
    }

    fn if_with(&mut self, dot: &Value, c: &Control, with: bool) -> R<Flow> {
        let mark = self.vars.len();
        let v = self.pipe(dot, &c.pipe)?;
        let flow = if v.truth() {
            let d = if with { v } else { dot.clone() };
            self.walk(&d, &c.list)
        } else {
            self.walk(dot, &c.else_list)
        };
        self.vars.truncate(mark);
        flow
    }

    fn range(&mut self, dot: &Value, c: &Control) -> R<Flow> {
        let mark = self.vars.len();
        let v = self.pipe_value(dot, &c.pipe)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::Int(i as i64), e.clone()))
                .collect(),
            Value::Map(m) => m
                .entries()
                .into_iter()
                .map(|(k, e)| (Value::from(k), e))
                .collect(),
            Value::Int(n) => {
                if c.pipe.decl.len() > 1 {
                    return Err(Fail::At(
                        c.pos,
                        String::new(),
                        "range over an integer takes one variable".into(),
                    ));
                }
                if *n > MAX_WORK as i64 {
                    return Err(format!("range over more than {MAX_WORK} integers").into());
                }
                (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect()
            }
            Value::Nil => Vec::new(),
            other => {
                let msg = format!("range can't iterate over a {}", other.kind());
                return Err(Fail::At(c.pos, String::new(), msg));
            }
        };
        let empty = items.is_empty();
        for (key, elem) in items {
            self.step()?;
            let inner = self.vars.len();
            match c.pipe.decl.as_slice() {
                [] => {}
                [v] => self.bind(v, elem.clone(), c.pipe.assign),
                [k, v, ..] => {
                    self.bind(k, key, c.pipe.assign);
                    self.bind(v, elem.clone(), c.pipe.assign);
                }
            }
            let flow = self.walk(&elem, &c.list)?;
            self.vars.truncate(inner);
            if flow == Flow::Break {
                break;
            }
        }
        let flow = if empty {
            self.walk(dot, &c.else_list)?
        } else {
            Flow::Next
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn bind(&mut self, name: &str, v: Value, assign: bool) {
        if assign {
            if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                slot.1 = v;
                return;
            }
        }
        self.vars.push((name.to_string(), v));
    }

    fn pipe(&mut self, dot: &Value, p: &Pipe) -> R<Value> {
        let v = self.pipe_value(dot, p)?;
        for name in &p.decl {
            self.bind(name, v.clone(), p.assign);
        }
        Ok(v)
    }

    fn pipe_value(&mut self, dot: &Value, p: &Pipe) -> R<Value> {
        let mut last = None;
        for c in &p.cmds {
            last = Some(self.cmd(dot, c, last).map_err(|e| match e {
                Fail::Raw(m) => Fail::At(c.pos, c.text.clone(), m),
                at => at,
            })?);
        }
        Ok(last.unwrap_or(Value::Nil))
    }

    fn cmd(&mut self, dot: &Value, c: &Cmd, last: Option<Value>) -> R<Value> {
        match &c.args[0] {
            Arg::Func(name) => self.call(dot, name, &c.args[1..], last),
            first => {
                if c.args.len() > 1 || last.is_some() {
                    return Err("only a function can take arguments".into());
                }
                self.arg(dot, first)
            }
        }
    }

    fn call(&mut self, dot: &Value, name: &str, args: &[Arg], last: Option<Value>) -> R<Value> {
        if name == "and" || name == "or" {
            // Short-circuit: stop at the first false (and) or true (or) argument.
            if args.is_empty() && last.is_none() {
                return Err(format!("{name}: wants at least 1 argument, got 0").into());
            }
            let mut v = Value::Nil;
            for a in args {
                v = self.arg(dot, a)?;
                if v.truth() == (name == "or") {
                    return Ok(v);
                }
            }
            return Ok(last.unwrap_or(v));
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.arg(dot, a)?);
        }
        vals.extend(last);
        let f = funcs::lookup(name).ok_or_else(|| format!("function {name:?} not defined"))?;
        if matches!(name, "htpasswd" | "bcrypt") {
            self.charge(BCRYPT_WORK)?;
        }
        let v = f(vals).map_err(|e| Fail::Raw(format!("{name}: {e}")))?;
        self.charge(match &v {
            Value::List(l) => l.len(),
            Value::Map(m) => m.len(),
            Value::Str(_) | Value::Bytes(_) => v.as_bytes().map_or(0, <[u8]>::len) / 64,
            _ => 0,
        })?;
        Ok(v)
    }

    fn arg(&mut self, dot: &Value, a: &Arg) -> R<Value> {
        Ok(match a {
            Arg::Dot => dot.clone(),
            Arg::Nil => Value::Nil,
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Int(i) => Value::Int(*i),
            Arg::Float(f) => Value::Float(*f),
            Arg::Str(s) => Value::from(s.as_str()),
            Arg::Field(names) => fields(dot.clone(), names)?,
            Arg::Var(name, names) => {
                let v = self.vars.iter().rev().find(|(n, _)| n == name);
                let v = v
                    .ok_or_else(|| format!("undefined variable {name:?}"))?
                    .1
                    .clone();
                fields(v, names)?
            }
            Arg::Func(name) => self.call(dot, name, &[], None)?,
            Arg::Chain(term, names) => {
                let v = self.arg(dot, term)?;
                fields(v, names)?
            }
            Arg::Pipe(p) => self.pipe_value(dot, p)?,
        })
    }
}

/// `.a.b` on `v`; a missing map key is an error (`missingkey=error`).
fn fields(mut v: Value, names: &[String]) -> Result<Value, String> {
    for name in names {
        v = match &v {
            Value::Map(m) => m
                .get(name)
                .ok_or_else(|| format!("map has no entry for key {name:?}"))?,
            Value::Nil => return Err(format!("nil value has no field {name:?}")),
            other => {
                return Err(format!(
                    "can't evaluate field {name:?} in a {}",
                    other.kind()
                ));
            }
        };
    }
    Ok(v)
}
