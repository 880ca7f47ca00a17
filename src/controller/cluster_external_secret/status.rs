//! The status: which namespaces hold the ExternalSecret, which failed and why, and Ready.

use chrono::{SecondsFormat, Utc};
use kube::{Api, Resource};

use super::Provisioned;
use crate::api::{set_condition, ClusterExternalSecret, Condition, ConditionStatus};
use crate::controller::{publish_status, Context, Error, SyncError};

/// Writes the status: the lists, and the Ready condition. Returns the condition.
pub(super) async fn publish(
    ces: &ClusterExternalSecret,
    ctx: &Context,
    outcome: &Result<Provisioned, SyncError>,
) -> Result<Condition, Error> {
    let who = ces.label();
    let current = ces.status.as_ref();
    let mut status = current.cloned().unwrap_or_default();
    let (state, reason, message) = match outcome {
        Ok(p) => {
            status.external_secret_name = Some(p.es_name.clone());
            status.provisioned_namespaces = p.provisioned.clone();
            status.failed_namespaces = p.failed.clone();
            summary(&who, p)
        }
        Err(e) => (
            ConditionStatus::False,
            e.reason().to_string(),
            e.to_string(),
        ),
    };
    let ready = Condition {
        type_: "Ready".into(),
        status: state,
        reason,
        message,
        last_transition_time: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        observed_generation: ces.meta().generation,
    };
    let previous = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .cloned();
    set_condition(&mut status.conditions, ready.clone());
    status.observed_generation = ces.meta().generation;
    let api: Api<ClusterExternalSecret> = Api::all(ctx.client.clone());
    publish_status(
        ctx,
        &api,
        ces,
        current,
        &status,
        previous.as_ref(),
        &ready,
        "Provision",
    )
    .await?;
    Ok(ready)
}

/// The Ready condition of a pass that ran: True unless a selected namespace failed (no
/// namespace selected is not a failure: the ClusterExternalSecret waits for one).
fn summary(who: &str, p: &Provisioned) -> (ConditionStatus, String, String) {
    let es = &p.es_name;
    if !p.failed.is_empty() {
        let mut names: Vec<&str> = p.failed.iter().map(|f| f.namespace.as_str()).collect();
        names.dedup();
        return (
            ConditionStatus::False,
            "NamespacesFailed".into(),
            format!(
                "{who}: ExternalSecret {es} failed in {} namespaces ({}); status.failedNamespaces says why",
                names.len(),
                names.join(", ")
            ),
        );
    }
    let message = if p.selected == 0 {
        format!("{who}: no namespace is selected; ExternalSecret {es} is created in each namespace spec.namespaces or spec.namespaceSelectors choose")
    } else {
        format!(
            "{who}: ExternalSecret {es} is in {} namespaces",
            p.provisioned.len()
        )
    };
    (ConditionStatus::True, "Provisioned".into(), message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::NamespaceFailure;
    use std::time::Duration;

    fn pass(selected: usize, provisioned: &[&str], failed: &[&str]) -> Provisioned {
        Provisioned {
            es_name: "db".into(),
            selected,
            provisioned: provisioned.iter().map(|s| s.to_string()).collect(),
            failed: failed
                .iter()
                .map(|ns| NamespaceFailure {
                    namespace: ns.to_string(),
                    reason: "why".into(),
                })
                .collect(),
            refresh: Duration::from_secs(60),
        }
    }

    #[test]
    fn no_namespace_selected_is_ready_and_says_how_to_select() {
        let (state, reason, message) = summary("ClusterExternalSecret shared", &pass(0, &[], &[]));
        assert_eq!(
            (state, reason.as_str()),
            (ConditionStatus::True, "Provisioned")
        );
        assert!(message.contains("no namespace is selected"), "{message}");
        assert!(message.contains("spec.namespaceSelectors"), "{message}");
    }

    #[test]
    fn a_failed_namespace_makes_it_not_ready_and_is_named() {
        let (state, reason, message) = summary(
            "ClusterExternalSecret shared",
            &pass(3, &["a"], &["b", "c", "c"]),
        );
        assert_eq!(
            (state, reason.as_str()),
            (ConditionStatus::False, "NamespacesFailed")
        );
        assert!(
            message.starts_with("ClusterExternalSecret shared: "),
            "{message}"
        );
        assert!(
            message.contains("failed in 2 namespaces (b, c)"),
            "{message}"
        );
        let (state, _, message) =
            summary("ClusterExternalSecret shared", &pass(2, &["a", "b"], &[]));
        assert_eq!(state, ConditionStatus::True);
        assert!(message.contains("is in 2 namespaces"), "{message}");
    }
}
