//! core/v1 Service, policy/v1 PodDisruptionBudget, networking.k8s.io/v1 NetworkPolicy and the
//! rbac.authorization.k8s.io/v1 kinds (kubectl `create service|pdb|role|clusterrole|rolebinding|
//! clusterrolebinding`).

use k8s_openapi::api::{
    core::v1 as core, networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
};
use k8s_pb::api::{
    core::v1 as pb_core, networking::v1 as pb_networking, policy::v1 as pb_policy,
    rbac::v1 as pb_rbac,
};

use super::convert::{convert, field};

convert! {
    pb_core::Service => core::Service {
        metadata, spec, status
    }
    pb_policy::PodDisruptionBudget => policy::PodDisruptionBudget {
        metadata, spec, status
    }
    pb_networking::NetworkPolicy => networking::NetworkPolicy {
        metadata, spec
    }
    pb_rbac::Role => rbac::Role {
        metadata, rules
    }
    pb_rbac::ClusterRole => rbac::ClusterRole {
        metadata, rules, aggregation_rule
    }
    pb_rbac::RoleBinding => rbac::RoleBinding {
        metadata, subjects, role_ref
    }
    pb_rbac::ClusterRoleBinding => rbac::ClusterRoleBinding {
        metadata, subjects, role_ref
    }
    pb_core::ServiceSpec => core::ServiceSpec {
        ports, selector, cluster_ip, cluster_ips, external_ips, session_affinity,
        load_balancer_ip, load_balancer_source_ranges, external_name,
        external_traffic_policy, health_check_node_port, publish_not_ready_addresses,
        session_affinity_config, ip_families, ip_family_policy[keep],
        allocate_load_balancer_node_ports[keep], load_balancer_class[keep],
        internal_traffic_policy[keep], traffic_distribution[keep]
        ; renamed: type_ = r#type
    }
    pb_core::ServiceStatus => core::ServiceStatus {
        load_balancer, conditions
    }
    pb_policy::PodDisruptionBudgetSpec => policy::PodDisruptionBudgetSpec {
        min_available, selector, max_unavailable, unhealthy_pod_eviction_policy[keep]
    }
    pb_policy::PodDisruptionBudgetStatus => policy::PodDisruptionBudgetStatus {
        observed_generation, disrupted_pods, disruptions_allowed, current_healthy,
        desired_healthy, expected_pods, conditions
    }
    pb_networking::NetworkPolicySpec => networking::NetworkPolicySpec {
        pod_selector, ingress, egress, policy_types
    }
    pb_rbac::PolicyRule => rbac::PolicyRule {
        verbs, api_groups, resources, resource_names
        ; renamed: non_resource_urls = non_resource_ur_ls
    }
    pb_rbac::AggregationRule => rbac::AggregationRule {
        cluster_role_selectors
    }
    pb_rbac::Subject => rbac::Subject {
        kind, api_group, name, namespace
    }
    pb_rbac::RoleRef => rbac::RoleRef {
        api_group, kind, name
    }
    pb_core::ServicePort => core::ServicePort {
        name, protocol, app_protocol[keep], port, target_port, node_port
    }
    pb_core::SessionAffinityConfig => core::SessionAffinityConfig {
        client_ip
    }
    pb_core::LoadBalancerStatus => core::LoadBalancerStatus {
        ingress
    }
    pb_networking::NetworkPolicyIngressRule => networking::NetworkPolicyIngressRule {
        ports, from
    }
    pb_networking::NetworkPolicyEgressRule => networking::NetworkPolicyEgressRule {
        ports, to
    }
    pb_core::ClientIpConfig => core::ClientIPConfig {
        timeout_seconds[keep]
    }
    pb_core::LoadBalancerIngress => core::LoadBalancerIngress {
        ip, hostname, ip_mode[keep], ports
    }
    pb_networking::NetworkPolicyPort => networking::NetworkPolicyPort {
        protocol[keep], port, end_port[keep]
    }
    pb_networking::NetworkPolicyPeer => networking::NetworkPolicyPeer {
        pod_selector, namespace_selector, ip_block
    }
    pb_core::PortStatus => core::PortStatus {
        port, protocol, error[keep]
    }
    pb_networking::IpBlock => networking::IPBlock {
        cidr, except
    }
}
