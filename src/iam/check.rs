//! `--check`: what a written IAM policy grants, compared with what is needed. Actions match
//! case-insensitively, resources case-sensitively, both with IAM's `*` (any run of characters)
//! and `?` (any one character).

use serde_json::Value as Json;

use super::Policy;

/// One statement of a written policy, as far as granting goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub index: usize,
    pub allow: bool,
    /// `Action` patterns, or with `not_action` the `NotAction` ones.
    pub actions: Vec<String>,
    pub not_action: bool,
    pub resources: Vec<String>,
    pub not_resource: bool,
    pub conditional: bool,
}

impl Written {
    fn grants_action(&self, action: &str) -> bool {
        self.actions.iter().any(|p| matches_action(p, action)) != self.not_action
    }

    fn grants_resource(&self, resource: &str) -> bool {
        self.resources.iter().any(|p| glob(p, resource)) != self.not_resource
    }
}

/// IAM's wildcard match of an action pattern (`secretsmanager:Get*`), case-insensitive.
pub fn matches_action(pattern: &str, action: &str) -> bool {
    glob(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

/// `*` matches any run of characters (none included), `?` any one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Reads a written policy; errors name the statement index and field.
pub fn parse(json: &Json) -> Result<Vec<Written>, String> {
    let top = json
        .as_object()
        .ok_or("the policy is not a JSON object".to_string())?;
    let statements = match top.get("Statement") {
        Some(Json::Array(items)) => items.clone(),
        Some(single @ Json::Object(_)) => vec![single.clone()],
        Some(_) => return Err("Statement: expected an object or an array of objects".into()),
        None => return Err("Statement: missing".into()),
    };
    statements
        .iter()
        .enumerate()
        .map(|(index, s)| statement(index, s))
        .collect()
}

fn statement(index: usize, s: &Json) -> Result<Written, String> {
    let at = |field: &str, what: &str| format!("Statement[{index}]: {field}: {what}");
    let s = s
        .as_object()
        .ok_or_else(|| format!("Statement[{index}]: expected an object"))?;
    let allow = match s.get("Effect").and_then(Json::as_str) {
        Some("Allow") => true,
        Some("Deny") => false,
        _ => return Err(at("Effect", "expected \"Allow\" or \"Deny\"")),
    };
    let strings = |field: &str| -> Result<Option<Vec<String>>, String> {
        match s.get(field) {
            None => Ok(None),
            Some(Json::String(one)) => Ok(Some(vec![one.clone()])),
            Some(Json::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| at(field, "expected a string or an array of strings"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(at(field, "expected a string or an array of strings")),
        }
    };
    let one_of = |a: &str, b: &str| -> Result<(Vec<String>, bool), String> {
        match (strings(a)?, strings(b)?) {
            (Some(v), None) => Ok((v, false)),
            (None, Some(v)) => Ok((v, true)),
            (Some(_), Some(_)) => Err(at(a, &format!("set either {a} or {b}, not both"))),
            (None, None) => Err(at(a, "missing")),
        }
    };
    let (actions, not_action) = one_of("Action", "NotAction")?;
    let (resources, not_resource) = one_of("Resource", "NotResource")?;
    let conditional = match s.get("Condition") {
        None => false,
        Some(Json::Object(c)) => !c.is_empty(),
        Some(_) => return Err(at("Condition", "expected an object")),
    };
    Ok(Written {
        index,
        allow,
        actions,
        not_action,
        resources,
        not_resource,
        conditional,
    })
}

/// One action on one resource.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    pub action: String,
    pub resource: String,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.action, self.resource)
    }
}

/// What a comparison found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Needed, but granted by no Allow statement (or denied).
    pub missing: Vec<Permission>,
    /// Granted but not needed: `Statement[i]: action on resource` with why.
    pub excess: Vec<String>,
}

/// Every (action, resource) pair the needed policy grants.
pub fn needed(policy: &Policy) -> Vec<Permission> {
    let mut out = Vec::new();
    for s in &policy.statement {
        for action in s.action.items() {
            for resource in s.resource.items() {
                out.push(Permission {
                    action: action.to_string(),
                    resource: resource.to_string(),
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Compares `written` with what `policy` needs. A needed pattern resource (`...:secret:db-??????`)
/// is granted by a written pattern that matches its text.
pub fn compare(policy: &Policy, written: &[Written]) -> Report {
    let needs = needed(policy);
    let mut report = Report::default();
    for need in &needs {
        let grants =
            |w: &&Written| w.grants_action(&need.action) && w.grants_resource(&need.resource);
        let allowed = written.iter().filter(|w| w.allow).any(|w| grants(&w));
        // A Deny with a condition may not apply; one without always does.
        let denied = written
            .iter()
            .filter(|w| !w.allow && !w.conditional)
            .any(|w| grants(&w));
        if !allowed || denied {
            report.missing.push(need.clone());
        }
    }
    for w in written.iter().filter(|w| w.allow) {
        if w.not_action || w.not_resource {
            report.excess.push(format!(
                "Statement[{}]: {} grants everything not listed",
                w.index,
                if w.not_action {
                    "NotAction"
                } else {
                    "NotResource"
                }
            ));
            continue;
        }
        for action in &w.actions {
            let served: Vec<&Permission> = needs
                .iter()
                .filter(|n| matches_action(action, &n.action))
                .collect();
            if served.is_empty() {
                report
                    .excess
                    .push(format!("Statement[{}]: {action} is not needed", w.index));
                continue;
            }
            let literal = served.iter().any(|n| n.action.eq_ignore_ascii_case(action));
            if !literal {
                let mut names: Vec<&str> = served.iter().map(|n| n.action.as_str()).collect();
                names.dedup();
                report.excess.push(format!(
                    "Statement[{}]: {action} grants more actions than needed ({})",
                    w.index,
                    names.join(", ")
                ));
            }
            for resource in &w.resources {
                let mut broader = Vec::new();
                let mut covers = false;
                let mut actions: Vec<&str> = served.iter().map(|n| n.action.as_str()).collect();
                actions.dedup();
                for needed_action in actions {
                    let covered: Vec<&str> = served
                        .iter()
                        .filter(|n| n.action == needed_action && glob(resource, &n.resource))
                        .map(|n| n.resource.as_str())
                        .collect();
                    covers |= !covered.is_empty();
                    if !covered.is_empty() && !covered.contains(&resource.as_str()) {
                        broader.extend(covered);
                    }
                }
                broader.sort();
                broader.dedup();
                if !covers {
                    report.excess.push(format!(
                        "Statement[{}]: {action} on {resource} is not needed",
                        w.index
                    ));
                } else if !broader.is_empty() {
                    report.excess.push(format!(
                        "Statement[{}]: {action} on {resource} is broader than needed ({})",
                        w.index,
                        broader.join(", ")
                    ));
                }
            }
        }
    }
    report.excess.sort();
    report.excess.dedup();
    report
}
