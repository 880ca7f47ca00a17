//! The served kinds outside the pod template: core/v1 Namespace, Secret, ConfigMap,
//! ServiceAccount, Event; events.k8s.io/v1 Event; coordination.k8s.io/v1 Lease; apps/v1
//! Deployment, StatefulSet, DaemonSet; authentication.k8s.io/v1 TokenRequest (the body of
//! `serviceaccounts/{name}/token`).

use k8s_openapi::api::{
    apps::v1 as apps, authentication::v1 as authentication, coordination::v1 as coordination,
    core::v1 as core, events::v1 as events,
};
use k8s_pb::api::{
    apps::v1 as pb_apps, authentication::v1 as pb_authentication,
    coordination::v1 as pb_coordination, core::v1 as pb_core, events::v1 as pb_events,
};

use super::convert::{convert, field, Conv, Converted};

/// The server computes a TokenRequest's status: the client's (Go always sends an empty one,
/// whose zero `expirationTimestamp` the JSON model cannot hold) is dropped.
impl Conv<authentication::TokenRequest> for pb_authentication::TokenRequest {
    fn conv(self) -> Converted<authentication::TokenRequest> {
        let pb_authentication::TokenRequest {
            metadata,
            spec,
            status: _,
        } = self;
        Ok(authentication::TokenRequest {
            metadata: field!(metadata),
            spec: field!(spec),
            status: None,
        })
    }
}

convert! {
    pb_core::Namespace => core::Namespace {
        metadata, spec, status
    }
    pb_core::Secret => core::Secret {
        metadata, immutable[keep], data, string_data
        ; renamed: type_ = r#type
    }
    pb_core::ConfigMap => core::ConfigMap {
        metadata, immutable[keep], data, binary_data
    }
    pb_core::ServiceAccount => core::ServiceAccount {
        metadata, secrets, image_pull_secrets, automount_service_account_token[keep]
    }
    pb_core::Event => core::Event {
        metadata, involved_object, reason, message, source, first_timestamp, last_timestamp,
        count, event_time, series, action, related, reporting_component[keep],
        reporting_instance[keep]
        ; renamed: type_ = r#type
    }
    pb_events::Event => events::Event {
        metadata, event_time, series, reporting_controller, reporting_instance, action,
        reason, regarding, related, note, deprecated_source, deprecated_first_timestamp,
        deprecated_last_timestamp, deprecated_count
        ; renamed: type_ = r#type
    }
    pb_coordination::Lease => coordination::Lease {
        metadata, spec
    }
    pb_apps::Deployment => apps::Deployment {
        metadata, spec, status
    }
    pb_apps::StatefulSet => apps::StatefulSet {
        metadata, spec, status
    }
    pb_apps::DaemonSet => apps::DaemonSet {
        metadata, spec, status
    }
    pb_authentication::TokenRequestSpec => authentication::TokenRequestSpec {
        audiences, expiration_seconds[keep], bound_object_ref
    }
    pb_authentication::BoundObjectReference => authentication::BoundObjectReference {
        kind, api_version, name
        ; renamed: uid = u_id
    }
    pb_core::NamespaceSpec => core::NamespaceSpec {
        finalizers
    }
    pb_core::NamespaceStatus => core::NamespaceStatus {
        phase, conditions
    }
    pb_core::ObjectReference => core::ObjectReference {
        kind, namespace, name, uid, api_version, resource_version, field_path
    }
    pb_core::LocalObjectReference => core::LocalObjectReference {
        name
    }
    pb_core::EventSource => core::EventSource {
        component, host
    }
    pb_core::EventSeries => core::EventSeries {
        count, last_observed_time
    }
    pb_events::EventSeries => events::EventSeries {
        count, last_observed_time
    }
    pb_coordination::LeaseSpec => coordination::LeaseSpec {
        holder_identity[keep], lease_duration_seconds[keep], acquire_time, renew_time,
        lease_transitions[keep], strategy[keep], preferred_holder[keep]
    }
    pb_apps::DeploymentSpec => apps::DeploymentSpec {
        replicas[keep], selector, template, strategy, min_ready_seconds,
        revision_history_limit[keep], paused, progress_deadline_seconds[keep]
    }
    pb_apps::DeploymentStatus => apps::DeploymentStatus {
        observed_generation, replicas, updated_replicas, ready_replicas, available_replicas,
        unavailable_replicas, terminating_replicas[keep], conditions, collision_count[keep]
    }
    pb_apps::StatefulSetSpec => apps::StatefulSetSpec {
        replicas[keep], selector, template, volume_claim_templates, service_name,
        pod_management_policy, update_strategy, revision_history_limit[keep],
        min_ready_seconds, persistent_volume_claim_retention_policy, ordinals
    }
    pb_apps::StatefulSetStatus => apps::StatefulSetStatus {
        observed_generation, replicas, ready_replicas, current_replicas, updated_replicas,
        current_revision, update_revision, collision_count[keep], conditions,
        available_replicas[keep]
    }
    pb_apps::DaemonSetSpec => apps::DaemonSetSpec {
        selector, template, update_strategy, min_ready_seconds, revision_history_limit[keep]
    }
    pb_apps::DaemonSetStatus => apps::DaemonSetStatus {
        current_number_scheduled, number_misscheduled, desired_number_scheduled,
        number_ready, observed_generation, updated_number_scheduled, number_available,
        number_unavailable, collision_count[keep], conditions
    }
    pb_core::NamespaceCondition => core::NamespaceCondition {
        status, last_transition_time, reason, message
        ; renamed: type_ = r#type
    }
    pb_apps::DeploymentStrategy => apps::DeploymentStrategy {
        rolling_update
        ; renamed: type_ = r#type
    }
    pb_apps::DeploymentCondition => apps::DeploymentCondition {
        status, last_update_time, last_transition_time, reason, message
        ; renamed: type_ = r#type
    }
    pb_apps::StatefulSetUpdateStrategy => apps::StatefulSetUpdateStrategy {
        rolling_update
        ; renamed: type_ = r#type
    }
    pb_apps::StatefulSetPersistentVolumeClaimRetentionPolicy => apps::StatefulSetPersistentVolumeClaimRetentionPolicy {
        when_deleted, when_scaled
    }
    pb_apps::StatefulSetOrdinals => apps::StatefulSetOrdinals {
        start[keep]
    }
    pb_apps::StatefulSetCondition => apps::StatefulSetCondition {
        status, last_transition_time, reason, message
        ; renamed: type_ = r#type
    }
    pb_apps::DaemonSetUpdateStrategy => apps::DaemonSetUpdateStrategy {
        rolling_update
        ; renamed: type_ = r#type
    }
    pb_apps::DaemonSetCondition => apps::DaemonSetCondition {
        status, last_transition_time, reason, message
        ; renamed: type_ = r#type
    }
    pb_apps::RollingUpdateDeployment => apps::RollingUpdateDeployment {
        max_unavailable, max_surge
    }
    pb_apps::RollingUpdateStatefulSetStrategy => apps::RollingUpdateStatefulSetStrategy {
        partition[keep], max_unavailable
    }
    pb_apps::RollingUpdateDaemonSet => apps::RollingUpdateDaemonSet {
        max_unavailable, max_surge
    }
}
