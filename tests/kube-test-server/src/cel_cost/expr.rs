//! Worst-case cost of one CEL expression, following cel-go's static estimator
//! (`checker.Cost`) with the Kubernetes cost library and `has()` costing nothing, as
//! kube-apiserver configures it. Only the maximum is tracked: that is what the API server
//! compares against its budgets.

use std::collections::HashMap;

use cel::common::ast::{
    operators as op, CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedEntryExpr, LiteralValue,
};
use cel::IdedExpr;

use super::decl::{Decl, Kind};

const STRING_TRAVERSAL_FACTOR: f64 = 0.1;
const REGEX_LENGTH_FACTOR: f64 = 0.25;
const LIST_CREATE_COST: u64 = 10;
const MAP_CREATE_COST: u64 = 30;
const STRUCT_CREATE_COST: u64 = 40;

/// What the estimator knows about one evaluated sub-expression.
#[derive(Clone)]
struct Est {
    cost: u64,
    /// Largest `size()` (None: unknown, i.e. unbounded).
    size: Option<u64>,
    /// cel-go's field path (`self`, field names, `@items`, `@values`, `@keys`): the schema
    /// bounds apply through it.
    path: Option<Vec<String>>,
    kind: Kind,
    /// Largest key and value sizes of a list or map built inside the expression.
    entry: Option<(u64, u64)>,
}

impl Est {
    fn new(cost: u64, kind: Kind) -> Self {
        Est {
            cost,
            size: None,
            path: None,
            kind,
            entry: None,
        }
    }

    fn size_max(&self) -> u64 {
        self.size.unwrap_or(u64::MAX)
    }
}

struct Var {
    path: Option<Vec<String>>,
    kind: Kind,
    size: Option<u64>,
    entry: Option<(u64, u64)>,
}

/// Estimates `expr` with `self` (and `oldSelf`) of type `root`; returns the maximum cost.
pub fn max_cost(expr: &IdedExpr, root: &Decl) -> u64 {
    let mut e = Estimator {
        root,
        vars: HashMap::new(),
    };
    e.cost(expr).cost
}

struct Estimator<'a> {
    root: &'a Decl,
    vars: HashMap<String, Vec<Var>>,
}

/// `ceil(size * f)`, saturating.
fn factor(size: u64, f: f64) -> u64 {
    let x = size as f64;
    if x > 0.0 && x > u64::MAX as f64 / f {
        return u64::MAX;
    }
    let c = (x * f).ceil();
    if c >= 18_446_744_073_709_551_616.0 {
        u64::MAX
    } else {
        c as u64
    }
}

fn extend(path: &Option<Vec<String>>, step: &str) -> Option<Vec<String>> {
    let mut p = path.clone().unwrap_or_default();
    p.push(step.to_string());
    Some(p)
}

fn union(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<(u64, u64)> {
    a.zip(b).map(|(a, b)| (a.0.max(b.0), a.1.max(b.1)))
}

impl<'a> Estimator<'a> {
    /// The schema node at a path. Like the API server's size estimator this skips the first
    /// element, assuming it is `self`.
    fn resolve(&self, path: &Option<Vec<String>>) -> Option<&'a Decl> {
        let path = path.as_ref().filter(|p| !p.is_empty())?;
        let mut d: &'a Decl = self.root;
        for step in &path[1..] {
            d = match step.as_str() {
                "@items" | "@values" => d.elem.as_deref()?,
                "@keys" if d.kind == Kind::Map => &MAP_KEY,
                name => d.fields.get(name)?,
            };
        }
        Some(d)
    }

    /// Fills in the size cel-go would use: a computed one, else the schema bound through the
    /// path, else 1 for fixed-size scalars.
    fn sized(&self, mut e: Est, computed: Option<u64>) -> Est {
        e.size = computed
            .or(self.resolve(&e.path).map(|d| d.max_elements))
            .or(e.kind.is_scalar().then_some(1));
        e
    }

    /// The kind at a path, else `fallback`.
    fn kind_at(&self, path: &Option<Vec<String>>, fallback: Kind) -> Kind {
        self.resolve(path).map_or(fallback, |d| d.kind)
    }

    fn cost(&mut self, e: &IdedExpr) -> Est {
        match &e.expr {
            Expr::Literal(l) => self.sized_literal(l),
            Expr::Ident(name) => self.ident(name),
            Expr::Select(sel) => {
                let operand = self.cost(&sel.operand);
                if sel.test {
                    // has(): the presence test itself is free
                    return self.sized(Est::new(operand.cost, Kind::Bool), None);
                }
                let cost = operand
                    .cost
                    .saturating_add(u64::from(matches!(operand.kind, Kind::Map | Kind::Object)));
                let values = self
                    .resolve(&operand.path)
                    .filter(|d| d.kind == Kind::Map)
                    .and_then(|d| d.elem.as_deref())
                    .map_or(Kind::Dyn, |d| d.kind);
                let path = extend(&operand.path, &sel.field);
                let kind = self.kind_at(&path, values);
                self.sized(
                    Est {
                        path,
                        ..Est::new(cost, kind)
                    },
                    None,
                )
            }
            Expr::Call(call) => self.call(call),
            Expr::List(list) => {
                let mut out = Est::new(LIST_CREATE_COST, Kind::List);
                let mut item = 0u64;
                for el in &list.elements {
                    let el = self.cost(el);
                    out.cost = out.cost.saturating_add(el.cost);
                    item = item.max(el.size_max());
                }
                out.entry = Some((1, item));
                self.sized(out, Some(list.elements.len() as u64))
            }
            Expr::Map(map) => self.entries(&map.entries, MAP_CREATE_COST, Kind::Map),
            Expr::Struct(s) => self.entries(&s.entries, STRUCT_CREATE_COST, Kind::Object),
            Expr::Comprehension(c) => self.comprehension(c),
            Expr::Unspecified => Est::new(0, Kind::Dyn),
        }
    }

    fn sized_literal(&self, l: &LiteralValue) -> Est {
        let (kind, size) = match l {
            LiteralValue::String(s) => (Kind::String, s.chars().count() as u64),
            LiteralValue::Bytes(b) => (Kind::Bytes, b.len() as u64),
            LiteralValue::Boolean(_) => (Kind::Bool, 1),
            LiteralValue::Int(_) => (Kind::Int, 1),
            LiteralValue::UInt(_) => (Kind::Uint, 1),
            LiteralValue::Double(_) => (Kind::Double, 1),
            LiteralValue::Null => (Kind::Null, 1),
        };
        self.sized(Est::new(0, kind), Some(size))
    }

    fn ident(&self, name: &str) -> Est {
        if let Some(v) = self.vars.get(name).and_then(|s| s.last()) {
            let e = Est {
                path: v.path.clone(),
                entry: v.entry,
                ..Est::new(1, v.kind)
            };
            let mut e = self.sized(e, None);
            e.size = e.size.or(v.size);
            return e;
        }
        let path = Some(vec![name.to_string()]);
        let kind = self.kind_at(&path, Kind::Dyn);
        self.sized(
            Est {
                path,
                ..Est::new(1, kind)
            },
            None,
        )
    }

    fn entries(&mut self, entries: &[IdedEntryExpr], base: u64, kind: Kind) -> Est {
        let mut out = Est::new(base, kind);
        let (mut key, mut val) = (0u64, 0u64);
        for entry in entries {
            let (k, v) = match &entry.expr {
                EntryExpr::MapEntry(m) => (Some(self.cost(&m.key)), self.cost(&m.value)),
                EntryExpr::StructField(f) => (None, self.cost(&f.value)),
            };
            if let Some(k) = k {
                out.cost = out.cost.saturating_add(k.cost);
                key = key.max(k.size_max());
            }
            out.cost = out.cost.saturating_add(v.cost);
            val = val.max(v.size_max());
        }
        if kind != Kind::Map {
            return out;
        }
        out.entry = Some((key, val));
        self.sized(out, Some(entries.len() as u64))
    }

    fn comprehension(&mut self, c: &ComprehensionExpr) -> Est {
        let range = self.cost(&c.iter_range);
        let init = self.cost(&c.accu_init);
        self.push(&c.accu_var, &init);
        // A list yields its items, a map its keys.
        let list = range.kind == Kind::List;
        let path = extend(&range.path, if list { "@items" } else { "@keys" });
        let item = Est {
            path,
            size: range.entry.map(|(k, v)| if list { v } else { k }),
            kind: Kind::Dyn,
            entry: None,
            cost: 0,
        };
        let item = Est {
            kind: self.kind_at(&item.path, if list { Kind::Dyn } else { Kind::String }),
            ..item
        };
        self.push(&c.iter_var, &item);
        let cond = self.cost(&c.loop_cond);
        let step = self.cost(&c.loop_step);
        self.pop(&c.iter_var);
        let result = self.cost(&c.result);
        self.pop(&c.accu_var);
        let per_item = cond.cost.saturating_add(step.cost);
        let cost = range
            .cost
            .saturating_add(init.cost)
            .saturating_add(result.cost)
            .saturating_add(range.size_max().saturating_mul(per_item));
        let mut out = Est::new(cost, result.kind);
        let size = match &c.accu_init.expr {
            Expr::Literal(_) => init.size,
            Expr::List(_) | Expr::Map(_) => {
                out.entry = step.entry;
                Some(range.size_max())
            }
            _ => None,
        };
        self.sized(out, size)
    }

    fn push(&mut self, name: &str, e: &Est) {
        self.vars.entry(name.to_string()).or_default().push(Var {
            path: e.path.clone(),
            kind: e.kind,
            size: e.size,
            entry: e.entry,
        });
    }

    fn pop(&mut self, name: &str) {
        if let Some(stack) = self.vars.get_mut(name) {
            stack.pop();
        }
    }

    fn call(&mut self, call: &CallExpr) -> Est {
        let target = call.target.as_ref().map(|t| self.cost(t));
        let args: Vec<Est> = call.args.iter().map(|a| self.cost(a)).collect();
        let arg_sum = args
            .iter()
            .chain(target.iter())
            .fold(0u64, |s, a| s.saturating_add(a.cost));
        let size = |i: usize| args.get(i).map_or(u64::MAX, Est::size_max);
        let compare = || factor(size(0).min(size(1)), STRING_TRAVERSAL_FACTOR);
        let simple = |cost: u64, kind: Kind| self.sized(Est::new(cost, kind), None);
        match (call.func_name.as_str(), &target, args.len()) {
            // short-circuit operators cost their operands only
            (op::LOGICAL_AND | op::LOGICAL_OR, None, 2) => simple(arg_sum, Kind::Bool),
            (op::CONDITIONAL, None, 3) => {
                let (t, f) = (&args[1], &args[2]);
                let kind = if t.kind == Kind::Dyn { f.kind } else { t.kind };
                let mut out = Est::new(args[0].cost.saturating_add(t.cost.max(f.cost)), kind);
                out.entry = union(t.entry, f.entry);
                self.sized(out, Some(t.size_max().max(f.size_max())))
            }
            // equality of any type is charged like a traversal of the smaller operand
            (op::EQUALS | op::NOT_EQUALS, None, 2) => {
                simple(compare().saturating_add(arg_sum), Kind::Bool)
            }
            (op::LESS | op::LESS_EQUALS | op::GREATER | op::GREATER_EQUALS, None, 2) => {
                let text = args.iter().any(|a| a.kind.is_text());
                let dynamic = args.iter().any(|a| a.kind == Kind::Dyn);
                let f = match (text, dynamic) {
                    (true, false) => compare(),
                    // a dynamic operand may be a string: cel-go costs every candidate overload
                    (_, true) => compare().max(1),
                    (false, false) => 1,
                };
                simple(f.saturating_add(arg_sum), Kind::Bool)
            }
            (op::ADD, None, 2) => self.add(&args, arg_sum),
            (op::IN, None, 2) if args[1].kind != Kind::Map => {
                simple(size(1).saturating_add(arg_sum), Kind::Bool)
            }
            (op::INDEX, None, 2) => {
                let c = &args[0];
                let path = extend(
                    &c.path,
                    if c.kind == Kind::Map {
                        "@values"
                    } else {
                        "@items"
                    },
                );
                let kind = self.kind_at(&path, Kind::Dyn);
                let out = Est {
                    path,
                    ..Est::new(arg_sum.saturating_add(1), kind)
                };
                self.sized(out, c.entry.map(|(_, v)| v))
            }
            ("dyn", None, 1) => Est {
                cost: arg_sum.saturating_add(1),
                path: None,
                kind: Kind::Dyn,
                ..args[0].clone()
            },
            ("size", _, _) => simple(arg_sum.saturating_add(1), Kind::Int),
            (name, Some(t), _) => self.member(name, t, &args, arg_sum),
            // every other function is O(1) for cel-go
            _ => simple(arg_sum.saturating_add(1), Kind::Dyn),
        }
    }

    fn add(&self, args: &[Est], arg_sum: u64) -> Est {
        let (l, r) = (&args[0], &args[1]);
        let total = l.size_max().saturating_add(r.size_max());
        let kind = if l.kind == Kind::Dyn { r.kind } else { l.kind };
        match kind {
            Kind::List => {
                let mut out = Est::new(arg_sum.saturating_add(1), Kind::List);
                out.entry = union(l.entry, r.entry);
                self.sized(out, Some(total))
            }
            // a dynamic sum may be a concatenation: cel-go costs every candidate overload
            Kind::String | Kind::Bytes | Kind::Dyn => {
                let cost = factor(total, STRING_TRAVERSAL_FACTOR).saturating_add(arg_sum);
                self.sized(Est::new(cost, kind), Some(total))
            }
            _ => self.sized(Est::new(arg_sum.saturating_add(1), kind), None),
        }
    }

    /// Receiver-style calls: cel-go's string functions and the Kubernetes string, regex and
    /// list libraries.
    fn member(&self, name: &str, t: &Est, args: &[Est], arg_sum: u64) -> Est {
        let ts = t.size_max();
        let arg = args.first().map_or(u64::MAX, Est::size_max);
        // a regex is assumed to hold one state per 4 characters
        let regex = factor(ts.saturating_add(1), STRING_TRAVERSAL_FACTOR)
            .saturating_mul(factor(arg, REGEX_LENGTH_FACTOR));
        let traverse = factor(ts, STRING_TRAVERSAL_FACTOR);
        let list = t.kind == Kind::List;
        let (fn_cost, kind, size) = match (name, args.len()) {
            ("matches", 1) => (regex, Kind::Bool, None),
            ("find", 1) => (regex, Kind::String, Some(ts)),
            ("findAll", 1 | 2) => (regex, Kind::List, Some(ts)),
            ("contains", 1) => (
                traverse.saturating_mul(factor(arg, STRING_TRAVERSAL_FACTOR)),
                Kind::Bool,
                None,
            ),
            ("startsWith" | "endsWith", 1) => {
                (factor(arg, STRING_TRAVERSAL_FACTOR), Kind::Bool, None)
            }
            ("lowerAscii" | "upperAscii" | "trim" | "substring", _) => {
                (traverse, Kind::String, Some(ts))
            }
            ("indexOf" | "lastIndexOf", _) if !list => (traverse, Kind::Int, None),
            ("isSorted" | "sum" | "min" | "max" | "indexOf" | "lastIndexOf", _) => {
                // one comparison per item, plus a traversal of each string item
                let items = extend(&t.path, "@items");
                let item = self.resolve(&items);
                let per = match item {
                    Some(i) if i.kind.is_text() => {
                        1u64.saturating_add(factor(i.max_elements, STRING_TRAVERSAL_FACTOR))
                    }
                    _ => 1,
                };
                let kind = match name {
                    "isSorted" => Kind::Bool,
                    "indexOf" | "lastIndexOf" => Kind::Int,
                    _ => item.map_or(Kind::Dyn, |i| i.kind),
                };
                (ts.saturating_mul(per), kind, None)
            }
            _ => (1, Kind::Dyn, None),
        };
        self.sized(Est::new(fn_cost.saturating_add(arg_sum), kind), size)
    }
}

static MAP_KEY: std::sync::LazyLock<Decl> = std::sync::LazyLock::new(Decl::map_key);
