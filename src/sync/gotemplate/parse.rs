//! Parses tokens into Go's template tree: text, actions, if/else if/else, range (with
//! `$i, $v :=`, else, break, continue), with/else with, define/template/block, variables.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::funcs;
use super::lexer::{lex, Tok, Token};
use super::tree::{location, Arg, Cmd, Control, Node, Pipe, Template};

const MAX_NESTING: usize = 100;

const KEYWORDS: &[&str] = &[
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
];

enum Stop {
    Eof,
    End,
    Else,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    If,
    Range,
    With,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, String> {
        let toks = lex(src).map_err(|e| format!("{}: {}", location(src, e.pos), e.msg))?;
        let mut p = Parser {
            toks,
            i: 0,
            src,
            vars: vec!["$".into()],
            range_depth: 0,
            depth: 0,
            defines: BTreeMap::new(),
        };
        let root = p
            .top()
            .map_err(|(pos, msg)| format!("{}: {msg}", location(src, pos)))?;
        Ok(Template {
            root,
            defines: p.defines,
            src: src.to_string(),
        })
    }
}

type PResult<T> = Result<T, (usize, String)>;

struct Parser<'a> {
    toks: Vec<Token>,
    i: usize,
    src: &'a str,
    vars: Vec<String>,
    range_depth: usize,
    /// Nesting of control structures and parentheses, bounded to keep recursion shallow.
    depth: usize,
    defines: BTreeMap<String, Rc<Vec<Node>>>,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i].tok
    }

    fn pos(&self) -> usize {
        self.toks[self.i].pos
    }

    fn next(&mut self) -> Tok {
        let t = self.toks[self.i].tok.clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn err<T>(&self, msg: impl Into<String>) -> PResult<T> {
        Err((self.pos(), msg.into()))
    }

    fn skip_space(&mut self) {
        while *self.peek() == Tok::Space {
            self.next();
        }
    }

    fn expect_close(&mut self, what: &str) -> PResult<()> {
        self.skip_space();
        match self.next() {
            Tok::Close => Ok(()),
            t => Err((self.pos(), format!("unexpected {t} in {what}"))),
        }
    }

    fn top(&mut self) -> PResult<Vec<Node>> {
        let (nodes, stop) = self.list(true)?;
        match stop {
            Stop::Eof => Ok(nodes),
            Stop::End => self.err("unexpected {{end}}"),
            Stop::Else => self.err("unexpected {{else}}"),
        }
    }

    fn list(&mut self, top: bool) -> PResult<(Vec<Node>, Stop)> {
        let mut nodes = Vec::new();
        loop {
            match self.next() {
                Tok::Text(s) => nodes.push(Node::Text(s)),
                Tok::Eof => return Ok((nodes, Stop::Eof)),
                Tok::Open => {
                    self.skip_space();
                    let pos = self.pos();
                    let word = match self.peek() {
                        Tok::Ident(w) if KEYWORDS.contains(&w.as_str()) => w.clone(),
                        _ => {
                            let pipe = self.pipeline("command", Tok::Close, false)?;
                            nodes.push(Node::Action(pipe));
                            continue;
                        }
                    };
                    self.next();
                    match word.as_str() {
                        "end" => {
                            self.expect_close("end")?;
                            return Ok((nodes, Stop::End));
                        }
                        "else" => return Ok((nodes, Stop::Else)),
                        "if" => nodes.push(Node::If(self.control(Kind::If, pos)?)),
                        "range" => nodes.push(Node::Range(self.control(Kind::Range, pos)?)),
                        "with" => nodes.push(Node::With(self.control(Kind::With, pos)?)),
                        "break" | "continue" => {
                            if self.range_depth == 0 {
                                return Err((pos, format!("{{{{{word}}}}} outside {{{{range}}}}")));
                            }
                            self.expect_close(&word)?;
                            nodes.push(if word == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        "template" => {
                            let (name, pipe) = self.template_clause("template")?;
                            nodes.push(Node::Template { pos, name, pipe });
                        }
                        "define" if !top => {
                            return Err((pos, "define is only allowed at the top level".into()));
                        }
                        "define" => {
                            let name = self.template_name("define")?;
                            self.expect_close("define")?;
                            self.define(pos, name)?;
                        }
                        _ => {
                            let (name, pipe) = self.template_clause("block")?;
                            self.define(pos, name.clone())?;
                            nodes.push(Node::Template { pos, name, pipe });
                        }
                    }
                }
                t => return self.err(format!("unexpected {t}")),
            }
        }
    }

    fn define(&mut self, pos: usize, name: String) -> PResult<()> {
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let ranges = std::mem::take(&mut self.range_depth);
        let (body, stop) = self.list(false)?;
        self.vars = saved;
        self.range_depth = ranges;
        if !matches!(stop, Stop::End) {
            return Err((pos, format!("template {name:?} has no {{{{end}}}}")));
        }
        if self.defines.insert(name.clone(), Rc::new(body)).is_some() {
            return Err((pos, format!("template {name:?} is defined twice")));
        }
        Ok(())
    }

    fn template_name(&mut self, what: &str) -> PResult<String> {
        self.skip_space();
        match self.next() {
            Tok::Str(s) => Ok(s),
            t => Err((
                self.pos(),
                format!("unexpected {t} in {what}: want a quoted name"),
            )),
        }
    }

    fn template_clause(&mut self, what: &str) -> PResult<(String, Option<Pipe>)> {
        let name = self.template_name(what)?;
        self.skip_space();
        if *self.peek() == Tok::Close {
            self.next();
            return Ok((name, None));
        }
        Ok((name, Some(self.pipeline(what, Tok::Close, false)?)))
    }

    fn enter(&mut self, pos: usize) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err((
                pos,
                format!("the template nests deeper than {MAX_NESTING} levels"),
            ));
        }
        Ok(())
    }

    fn control(&mut self, kind: Kind, pos: usize) -> PResult<Control> {
        self.enter(pos)?;
        let mark = self.vars.len();
        let what = match kind {
            Kind::If => "if",
            Kind::Range => "range",
            Kind::With => "with",
        };
        let pipe = self.pipeline(what, Tok::Close, kind == Kind::Range)?;
        self.range_depth += usize::from(kind == Kind::Range);
        let (list, stop) = self.list(false)?;
        self.range_depth -= usize::from(kind == Kind::Range);
        let else_list = match stop {
            Stop::End => Vec::new(),
            Stop::Eof => return Err((pos, format!("{{{{{what}}}}} has no {{{{end}}}}"))),
            Stop::Else => {
                self.skip_space();
                let chained = match (kind, self.peek()) {
                    (Kind::If, Tok::Ident(w)) if w == "if" => Some(Kind::If),
                    (Kind::With, Tok::Ident(w)) if w == "with" => Some(Kind::With),
                    _ => None,
                };
                if let Some(k) = chained {
                    // `else if` shares the outer {{end}}.
                    let p = self.pos();
                    self.next();
                    let inner = self.control(k, p)?;
                    vec![if k == Kind::If {
                        Node::If(inner)
                    } else {
                        Node::With(inner)
                    }]
                } else {
                    self.expect_close("else")?;
                    let (list, stop) = self.list(false)?;
                    if !matches!(stop, Stop::End) {
                        return Err((
                            pos,
                            format!("{{{{{what}}}}} needs one {{{{end}}}} after its {{{{else}}}}"),
                        ));
                    }
                    list
                }
            }
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        Ok(Control {
            pos,
            pipe,
            list,
            else_list,
        })
    }

    /// A pipeline up to `end` (consumed), with an optional `$x :=`/`$x =` declaration.
    fn pipeline(&mut self, what: &str, end: Tok, two_vars: bool) -> PResult<Pipe> {
        self.skip_space();
        let (decl, assign) = self.declaration(two_vars)?;
        let mut cmds = Vec::new();
        loop {
            self.skip_space();
            cmds.push(self.command(what)?);
            match self.next() {
                Tok::Pipe => continue,
                t if t == end => break,
                t => return Err((self.pos(), format!("unexpected {t} in {what}"))),
            }
        }
        for (k, c) in cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0],
                Arg::Dot | Arg::Nil | Arg::Bool(_) | Arg::Int(_) | Arg::Float(_) | Arg::Str(_)
            ) {
                return Err((
                    c.pos,
                    format!("non executable command in pipeline stage {}", k + 1),
                ));
            }
        }
        if !assign {
            self.vars.extend(decl.iter().cloned());
        }
        Ok(Pipe { decl, assign, cmds })
    }

    fn declaration(&mut self, two_vars: bool) -> PResult<(Vec<String>, bool)> {
        let start = self.i;
        let mut names = Vec::new();
        while let Tok::Var(v) = self.peek().clone() {
            self.next();
            self.skip_space();
            names.push(v);
            match self.peek() {
                Tok::Comma if two_vars && names.len() == 1 => {
                    self.next();
                    self.skip_space();
                }
                Tok::Declare | Tok::Assign => {
                    let assign = self.next() == Tok::Assign;
                    if assign {
                        if let Some(v) = names.iter().find(|v| !self.vars.contains(v)) {
                            return self.err(format!("undefined variable {v:?}"));
                        }
                    }
                    return Ok((names, assign));
                }
                _ => break,
            }
        }
        if names.len() > 1 {
            return self.err("expected := or = after the range variables");
        }
        self.i = start;
        Ok((Vec::new(), false))
    }

    fn command(&mut self, what: &str) -> PResult<Cmd> {
        let pos = self.pos();
        let mut args = Vec::new();
        while let Some(a) = self.operand()? {
            args.push(a);
            match self.peek() {
                Tok::Space => self.skip_space(),
                Tok::Pipe | Tok::Close | Tok::RParen => break,
                t => return self.err(format!("unexpected {t} in operand")),
            }
        }
        if args.is_empty() {
            return self.err(format!("missing value for {what}"));
        }
        let end = self.pos();
        let text = self.src[pos..end].trim_end().to_string();
        Ok(Cmd { pos, text, args })
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(term) = self.term()? else {
            return Ok(None);
        };
        let mut fields = Vec::new();
        while let Tok::Field(f) = self.peek().clone() {
            self.next();
            fields.push(f);
        }
        if fields.is_empty() {
            return Ok(Some(term));
        }
        Ok(Some(match term {
            Arg::Field(mut f) => {
                f.extend(fields);
                Arg::Field(f)
            }
            Arg::Var(v, mut f) => {
                f.extend(fields);
                Arg::Var(v, f)
            }
            a @ (Arg::Pipe(_) | Arg::Func(_) | Arg::Dot) => Arg::Chain(Box::new(a), fields),
            _ => return self.err("unexpected field after a constant"),
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let pos = self.pos();
        let arg = match self.peek().clone() {
            Tok::Ident(w) if KEYWORDS.contains(&w.as_str()) => {
                return self.err(format!("unexpected {{{{{w}}}}} in command"));
            }
            Tok::Ident(w) => {
                if !funcs::exists(&w) {
                    return self.err(format!("function {w:?} not defined"));
                }
                Arg::Func(w)
            }
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Bool(b) => Arg::Bool(b),
            Tok::Str(s) => Arg::Str(s),
            Tok::Char(c) => Arg::Int(c as i64),
            Tok::Number(n) => {
                Arg::from_number(&n).ok_or((pos, format!("bad number syntax: {n:?}")))?
            }
            Tok::Field(f) => Arg::Field(vec![f]),
            Tok::Var(v) => {
                if !self.vars.contains(&v) {
                    return self.err(format!("undefined variable {v:?}"));
                }
                Arg::Var(v, Vec::new())
            }
            Tok::LParen => {
                self.enter(pos)?;
                self.next();
                let p = self.pipeline("parenthesized pipeline", Tok::RParen, false)?;
                self.depth -= 1;
                if !p.decl.is_empty() {
                    return Err((
                        pos,
                        "a parenthesized pipeline cannot declare variables".into(),
                    ));
                }
                return Ok(Some(Arg::Pipe(Box::new(p))));
            }
            _ => return Ok(None),
        };
        self.next();
        Ok(Some(arg))
    }
}
