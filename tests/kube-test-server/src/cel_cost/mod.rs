//! The static cost budget kube-apiserver applies to a CustomResourceDefinition's CEL rules
//! (`x-kubernetes-validations`) when the CRD is written.
//!
//! Each rule's worst-case cost is estimated from the schema (string `maxLength`, `enum` and
//! `format`, list `maxItems`, map `maxProperties`; unbounded ones are sized to fill a 3 MiB
//! request) and multiplied by the number of times the rule can run: the product of the
//! `maxItems` / `maxProperties` of the lists and maps around it or, if one of them is
//! unbounded, as many copies of the node as fit into a request. A rule over
//! [`PER_RULE_LIMIT`] is refused, and so is a schema whose rules add up to more than
//! [`PER_SCHEMA_LIMIT`], with the API server's messages and field paths.
//!
//! Not modelled: rules that do not parse (or would not type-check) are left to the object-time
//! CEL validation; functions other than the string, regex and list ones in `expr` are costed as
//! O(1), which underestimates e.g. `split`, `join`, `replace`, `url` and `quantity`.

mod decl;
mod expr;

use serde_json::Value;

use decl::{Decl, MAX_REQUEST_SIZE_BYTES};

/// Largest estimated cost of one rule (`StaticEstimatedCostLimit`).
pub const PER_RULE_LIMIT: u64 = 10_000_000;
/// Largest estimated cost of all rules of one schema (`StaticEstimatedCRDCostLimit`).
pub const PER_SCHEMA_LIMIT: u64 = 100_000_000;

/// The estimated cost of one rule (or `messageExpression`), as the API server compares it
/// against [`PER_RULE_LIMIT`]: for rules, already multiplied by how often the rule can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCost {
    /// e.g. `spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule`
    pub field: String,
    pub cost: u64,
}

/// Every rule's estimated cost in a CRD (`apiextensions.k8s.io/v1` JSON), in the order the API
/// server checks them.
pub fn rule_costs(crd: &Value) -> Vec<RuleCost> {
    let mut out = Vec::new();
    for s in schemas(crd) {
        let mut walk = Walk::default();
        walk.node(s.schema, &s.path, Some(1), true);
        out.extend(walk.costs);
    }
    out
}

/// Checks a CRD as the API server does when it is written: `Err` holds the `(field, message)`
/// causes of the 422 it would answer. (The real server exempts versions whose schema an update
/// leaves unchanged from the per-rule limit; here no stored CRD can exceed it, so a full check
/// gives the same answer.)
pub fn check_crd(crd: &Value) -> Result<(), Vec<(String, String)>> {
    let mut causes = Vec::new();
    for s in schemas(crd) {
        let mut walk = Walk::default();
        walk.node(s.schema, &s.path, Some(1), true);
        for c in &walk.costs {
            let kind = if c.field.ends_with(".rule") {
                "estimated rule cost"
            } else {
                "estimated messageExpression cost"
            };
            if c.cost > PER_RULE_LIMIT {
                causes.push(forbidden(
                    &c.field,
                    &over_budget(kind, c.cost, PER_RULE_LIMIT),
                ));
            }
        }
        let total = walk
            .costs
            .iter()
            .fold(0u64, |t, c| t.saturating_add(c.cost));
        if total > PER_SCHEMA_LIMIT {
            for c in most_expensive(&walk.costs) {
                causes.push(forbidden(
                    &c.field,
                    "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
                ));
            }
            let what =
                "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema";
            causes.push(forbidden(
                &s.path,
                &over_budget(what, total, PER_SCHEMA_LIMIT),
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(causes)
    }
}

fn forbidden(field: &str, detail: &str) -> (String, String) {
    (field.to_string(), format!("Forbidden: {detail}"))
}

/// The four costliest rules of at least 1% of the schema budget, costliest first.
fn most_expensive(costs: &[RuleCost]) -> Vec<&RuleCost> {
    let mut big: Vec<&RuleCost> = costs
        .iter()
        .filter(|c| c.cost >= PER_SCHEMA_LIMIT / 100)
        .collect();
    big.sort_by_key(|c| std::cmp::Reverse(c.cost));
    big.truncate(4);
    big
}

/// The API server's wording: a factor over 100 is not worth stating; one under 1.5 gets six
/// decimals so that it never reads "1.0x".
fn over_budget(what: &str, cost: u64, limit: u64) -> String {
    let f = cost as f64 / limit as f64;
    let factor = if f > 100.0 {
        "more than 100x".to_string()
    } else if f < 1.5 {
        format!("{f:.6}x")
    } else {
        format!("{f:.1}x")
    };
    format!("{what} exceeds budget by factor of {factor} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)")
}

struct VersionSchema<'a> {
    /// `spec.validation.openAPIV3Schema` or `spec.versions[i].schema.openAPIV3Schema`
    path: String,
    schema: &'a Value,
}

/// The schemas the API server validates. It converts a v1 CRD to its internal form first,
/// which moves the schema to `spec.validation` when every version has the same one (always so
/// for a single version), so that is the path it reports.
fn schemas(crd: &Value) -> Vec<VersionSchema<'_>> {
    let versions = crd["spec"]["versions"].as_array().map_or(&[][..], |v| v);
    let Some(first) = versions.first() else {
        return vec![];
    };
    let shared = versions
        .iter()
        .all(|v| v.get("schema") == first.get("schema"));
    let chosen: Vec<(usize, &Value)> = if shared {
        vec![(0, first)]
    } else {
        versions.iter().enumerate().collect()
    };
    chosen
        .into_iter()
        .filter(|(_, v)| v["schema"]["openAPIV3Schema"].is_object())
        .map(|(i, v)| VersionSchema {
            path: if shared {
                "spec.validation.openAPIV3Schema".to_string()
            } else {
                format!("spec.versions[{i}].schema.openAPIV3Schema")
            },
            schema: &v["schema"]["openAPIV3Schema"],
        })
        .collect()
}

#[derive(Default)]
struct Walk {
    costs: Vec<RuleCost>,
}

impl Walk {
    /// Visits a schema node as the API server's validation does (children first, then the
    /// node's own rules). `cardinality` is how often the node can occur, `None` if a list or
    /// map around it is unbounded.
    fn node(&mut self, s: &Value, path: &str, cardinality: Option<u64>, root: bool) {
        let per_child = match s["type"].as_str() {
            Some("object") if s.get("additionalProperties").is_some() => {
                max_of(&s["maxProperties"])
            }
            Some("array") => max_of(&s["maxItems"]),
            _ => Some(1),
        };
        let child = cardinality
            .zip(per_child)
            .map(|(c, n)| if c == 0 { 0 } else { c.saturating_mul(n) });
        if s["additionalProperties"].is_object() {
            let p = format!("{path}.additionalProperties");
            self.node(&s["additionalProperties"], &p, child, false);
        }
        if let Some(props) = s["properties"].as_object() {
            for (name, prop) in props {
                self.node(prop, &format!("{path}.properties[{name}]"), child, false);
            }
        }
        if s["items"].is_object() {
            self.node(&s["items"], &format!("{path}.items"), child, false);
        }
        let Some(rules) = s["x-kubernetes-validations"].as_array() else {
            return;
        };
        let embedded = s["x-kubernetes-embedded-resource"] == Value::Bool(true);
        let Some(decl) = Decl::from_schema(s, root || embedded) else {
            return;
        };
        // under an unbounded list or map: as many copies as fit into one request
        let times = cardinality.unwrap_or(MAX_REQUEST_SIZE_BYTES / (decl.min_size + 1));
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("{path}.x-kubernetes-validations[{i}]");
            if let Some(cost) = estimate(&rule["rule"], &decl) {
                let cost = if cost == 0 {
                    0
                } else {
                    cost.saturating_mul(times)
                };
                self.costs.push(RuleCost {
                    field: format!("{at}.rule"),
                    cost,
                });
            }
            // a message is built once per failure: no multiplication
            if let Some(cost) = estimate(&rule["messageExpression"], &decl) {
                self.costs.push(RuleCost {
                    field: format!("{at}.messageExpression"),
                    cost,
                });
            }
        }
    }
}

fn max_of(v: &Value) -> Option<u64> {
    v.as_i64().map(|n| n.max(0) as u64)
}

/// The worst-case cost of one expression; `None` if absent, blank or unparsable.
fn estimate(source: &Value, decl: &Decl) -> Option<u64> {
    let source = source.as_str().map(str::trim).filter(|s| !s.is_empty())?;
    let ast = cel::parser::Parser::new()
        .enable_optional_syntax(true)
        .parse(source)
        .ok()?;
    Some(expr::max_cost(&ast, decl))
}
