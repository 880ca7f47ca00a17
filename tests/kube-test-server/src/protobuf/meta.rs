//! apimachinery `meta/v1` messages: object metadata, label selectors, conditions,
//! DeleteOptions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;

use super::convert::{convert, field};

convert! {
    pb_meta::DeleteOptions => meta::DeleteOptions {
        grace_period_seconds[keep], preconditions, orphan_dependents[keep],
        propagation_policy[keep], dry_run,
        ignore_store_read_error_with_cluster_breaking_potential[keep]
        ; absent: api_version, kind
    }
    pb_meta::ObjectMeta => meta::ObjectMeta {
        name, generate_name, namespace, self_link, uid, resource_version, generation,
        creation_timestamp, deletion_timestamp, deletion_grace_period_seconds[keep], labels,
        annotations, owner_references, finalizers, managed_fields
    }
    pb_meta::Preconditions => meta::Preconditions {
        uid[keep], resource_version[keep]
    }
    pb_meta::OwnerReference => meta::OwnerReference {
        api_version, kind, name, uid, controller[keep], block_owner_deletion[keep]
    }
    pb_meta::ManagedFieldsEntry => meta::ManagedFieldsEntry {
        manager, operation, api_version, time, fields_type, fields_v1, subresource
    }
    pb_meta::LabelSelector => meta::LabelSelector {
        match_labels, match_expressions
    }
    pb_meta::LabelSelectorRequirement => meta::LabelSelectorRequirement {
        key, operator, values
    }
    pb_meta::Condition => meta::Condition {
        status, observed_generation, last_transition_time, reason, message
        ; renamed: type_ = r#type
    }
}
