//! Status conditions in the shape of `metav1.Condition`, with the Kubernetes rule that
//! `lastTransitionTime` only moves when `status` changes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    /// A CamelCase reason, e.g. `SecretSynced`, `SecretNotFound`, `AccessDenied`.
    pub reason: String,
    /// What happened, naming the object, key, service, AWS operation and error code; never values.
    pub message: String,
    /// RFC 3339 time of the last change of `status`.
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Puts `new` into `conditions`, replacing the condition of the same type. Keeps the old
/// `lastTransitionTime` when the status did not change. Returns true when the status changed
/// (a transition: the moment to emit an event).
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            let transition = old.status != new.status;
            if !transition {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
            transition
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(status: ConditionStatus, reason: &str, time: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status,
            reason: reason.into(),
            message: String::new(),
            last_transition_time: time.into(),
            observed_generation: Some(1),
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut cs = vec![];
        assert!(set_condition(
            &mut cs,
            cond(ConditionStatus::False, "SecretNotFound", "t1")
        ));
        assert!(!set_condition(
            &mut cs,
            cond(ConditionStatus::False, "AccessDenied", "t2")
        ));
        assert_eq!(cs[0].last_transition_time, "t1");
        assert_eq!(cs[0].reason, "AccessDenied");
        assert!(set_condition(
            &mut cs,
            cond(ConditionStatus::True, "SecretSynced", "t3")
        ));
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, "t3");
    }
}
