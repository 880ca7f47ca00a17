//! `metav1.Status` errors: every failure the server reports goes through [`ApiError`] so that
//! clients (kube-rs `Error::Api`, kubectl) see the same `code`/`reason` pairs as from a real
//! API server.

use serde_json::{json, Value};

/// An API error answered as a `metav1.Status` body with the matching HTTP code.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `secrets "x" not found` — `resource` is the plural, as the real server words it.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", qualified(group, resource), name),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }

    /// The path does not name anything the server serves.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", qualified(group, resource), name),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }

    /// Optimistic-concurrency failure (stale `resourceVersion` or a failed precondition).
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                qualified(group, resource),
                name,
                why
            ),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }

    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one cause per invalid field, e.g. `("data[a/b]", "Invalid value: ...")`; each
    /// cause's reason follows its message (`Forbidden: ...` is `FieldValueForbidden`).
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<(String, String)>) -> Self {
        let causes = causes
            .into_iter()
            .map(|(field, message)| (cause_type(&message), field, message))
            .collect();
        Self::invalid_with_reasons(group, kind, name, causes)
    }

    /// 422 from `(reason, field, message)` causes. The message names the kind with its group
    /// (`CustomResourceDefinition.apiextensions.k8s.io "x" is invalid: ...`) and lists each
    /// distinct cause once.
    pub fn invalid_with_reasons(
        group: &str,
        kind: &str,
        name: &str,
        causes: Vec<(&'static str, String, String)>,
    ) -> Self {
        let mut msgs: Vec<String> = Vec::new();
        for (_, f, m) in &causes {
            let msg = format!("{f}: {m}");
            if !msgs.contains(&msg) {
                msgs.push(msg);
            }
        }
        let qualified_kind = qualified(group, kind);
        let message = if msgs.len() == 1 {
            format!("{qualified_kind} \"{name}\" is invalid: {}", msgs[0])
        } else {
            format!(
                "{qualified_kind} \"{name}\" is invalid: [{}]",
                msgs.join(", ")
            )
        };
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|(reason, field, message)| {
                json!({"reason": reason, "message": message, "field": field})
            })
            .collect();
        // Empty name/group/kind are omitted, as in the real StatusDetails.
        let mut details = json!({"causes": causes});
        for (k, v) in [("name", name), ("group", group), ("kind", kind)] {
            if !v.is_empty() {
                details[k] = json!(v);
            }
        }
        Self::new(422, "Invalid", message).with_details(details)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type:?})"),
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// A status code requested by fault injection: the reason follows the code the way the
    /// real server would pick it, so client-side retry logic keyed on reason behaves.
    pub fn injected(code: u16) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "",
        };
        Self::new(code, reason, format!("injected fault: HTTP {code}"))
    }

    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        if self.reason.is_empty() {
            v.as_object_mut().unwrap().remove("reason");
        }
        v
    }
}

/// `deployments.apps` for grouped resources (and `Widget.example.com` for kinds), bare name for
/// the core group.
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// The `field.ErrorType` whose wording starts `message`.
fn cause_type(message: &str) -> &'static str {
    const TYPES: &[(&str, &str)] = &[
        ("Required value", "FieldValueRequired"),
        ("Forbidden", "FieldValueForbidden"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Duplicate value", "FieldValueDuplicate"),
        ("Too long", "FieldValueTooLong"),
        ("Too many", "FieldValueTooMany"),
        ("Not found", "FieldValueNotFound"),
    ];
    TYPES
        .iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or("FieldValueInvalid", |(_, t)| t)
}

/// The body of a successful delete of a built-in object.
pub fn success_status(group: &str, resource: &str, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": group, "kind": resource, "uid": uid},
    })
}

pub type ApiResult<T> = Result<T, ApiError>;
