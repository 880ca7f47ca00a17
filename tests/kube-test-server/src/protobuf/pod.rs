//! core/v1 pod template messages (containers, probes, security contexts, scheduling) for the
//! workload kinds.

use k8s_openapi::api::core::v1 as core;
use k8s_pb::api::core::v1 as pb_core;

use super::convert::{convert, field};

convert! {
    pb_core::PodTemplateSpec => core::PodTemplateSpec {
        metadata, spec
    }
    pb_core::PodSpec => core::PodSpec {
        volumes, init_containers, containers, ephemeral_containers, restart_policy,
        termination_grace_period_seconds[keep], active_deadline_seconds[keep], dns_policy,
        node_selector, service_account_name, service_account,
        automount_service_account_token[keep], node_name, host_network, host_pid, host_ipc,
        share_process_namespace[keep], security_context, image_pull_secrets, hostname,
        subdomain, affinity, scheduler_name, tolerations, host_aliases, priority_class_name,
        priority[keep], dns_config, readiness_gates, runtime_class_name[keep],
        enable_service_links[keep], preemption_policy[keep], overhead,
        topology_spread_constraints, set_hostname_as_fqdn[keep], os, host_users[keep],
        scheduling_gates, resource_claims, resources, hostname_override[keep]
        ; refused: workload_ref
    }
    pb_core::Container => core::Container {
        name, image, command, args, working_dir, ports, env_from, env, resources,
        resize_policy, restart_policy[keep], restart_policy_rules, volume_mounts,
        volume_devices, liveness_probe, readiness_probe, startup_probe, lifecycle,
        termination_message_path, termination_message_policy, image_pull_policy,
        security_context, stdin, stdin_once, tty
    }
    pb_core::EphemeralContainer => core::EphemeralContainer {
        target_container_name
        ; embedded ephemeral_container_common: pb_core::EphemeralContainerCommon {
            name, image, command, args, working_dir, ports, env_from, env, resources,
            resize_policy, restart_policy[keep], restart_policy_rules, volume_mounts,
            volume_devices, liveness_probe, readiness_probe, startup_probe, lifecycle,
            termination_message_path, termination_message_policy, image_pull_policy,
            security_context, stdin, stdin_once, tty
        }
    }
    pb_core::PodSecurityContext => core::PodSecurityContext {
        se_linux_options, windows_options, run_as_user[keep], run_as_group[keep],
        run_as_non_root[keep], supplemental_groups, supplemental_groups_policy[keep],
        fs_group[keep], sysctls, fs_group_change_policy[keep], seccomp_profile,
        app_armor_profile, se_linux_change_policy[keep]
    }
    pb_core::Affinity => core::Affinity {
        node_affinity, pod_affinity, pod_anti_affinity
    }
    pb_core::Toleration => core::Toleration {
        key, operator, value, effect, toleration_seconds[keep]
    }
    pb_core::HostAlias => core::HostAlias {
        ip, hostnames
    }
    pb_core::PodDnsConfig => core::PodDNSConfig {
        nameservers, searches, options
    }
    pb_core::PodReadinessGate => core::PodReadinessGate {
        condition_type
    }
    pb_core::TopologySpreadConstraint => core::TopologySpreadConstraint {
        max_skew, topology_key, when_unsatisfiable, label_selector, min_domains[keep],
        node_affinity_policy[keep], node_taints_policy[keep], match_label_keys
    }
    pb_core::PodOs => core::PodOS {
        name
    }
    pb_core::PodSchedulingGate => core::PodSchedulingGate {
        name
    }
    pb_core::PodResourceClaim => core::PodResourceClaim {
        name, resource_claim_name[keep], resource_claim_template_name[keep]
    }
    pb_core::ResourceRequirements => core::ResourceRequirements {
        limits, requests, claims
    }
    pb_core::ContainerPort => core::ContainerPort {
        name, host_port, container_port, protocol, host_ip
    }
    pb_core::EnvFromSource => core::EnvFromSource {
        prefix, config_map_ref, secret_ref
    }
    pb_core::EnvVar => core::EnvVar {
        name, value, value_from
    }
    pb_core::ContainerResizePolicy => core::ContainerResizePolicy {
        resource_name, restart_policy
    }
    pb_core::ContainerRestartRule => core::ContainerRestartRule {
        action, exit_codes
    }
    pb_core::Probe => core::Probe {
        initial_delay_seconds, timeout_seconds, period_seconds, success_threshold,
        failure_threshold, termination_grace_period_seconds[keep]
        ; embedded handler: pb_core::ProbeHandler {
            exec, http_get, tcp_socket, grpc
        }
    }
    pb_core::Lifecycle => core::Lifecycle {
        post_start, pre_stop, stop_signal[keep]
    }
    pb_core::SecurityContext => core::SecurityContext {
        capabilities, privileged[keep], se_linux_options, windows_options,
        run_as_user[keep], run_as_group[keep], run_as_non_root[keep],
        read_only_root_filesystem[keep], allow_privilege_escalation[keep], proc_mount[keep],
        seccomp_profile, app_armor_profile
    }
    pb_core::SeLinuxOptions => core::SELinuxOptions {
        user, role, level
        ; renamed: type_ = r#type
    }
    pb_core::WindowsSecurityContextOptions => core::WindowsSecurityContextOptions {
        gmsa_credential_spec_name[keep], gmsa_credential_spec[keep], run_as_user_name[keep],
        host_process[keep]
    }
    pb_core::Sysctl => core::Sysctl {
        name, value
    }
    pb_core::SeccompProfile => core::SeccompProfile {
        localhost_profile[keep]
        ; renamed: type_ = r#type
    }
    pb_core::AppArmorProfile => core::AppArmorProfile {
        localhost_profile[keep]
        ; renamed: type_ = r#type
    }
    pb_core::NodeAffinity => core::NodeAffinity {
        required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution
    }
    pb_core::PodAffinity => core::PodAffinity {
        required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution
    }
    pb_core::PodAntiAffinity => core::PodAntiAffinity {
        required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution
    }
    pb_core::PodDnsConfigOption => core::PodDNSConfigOption {
        name, value[keep]
    }
    pb_core::ResourceClaim => core::ResourceClaim {
        name, request
    }
    pb_core::ConfigMapEnvSource => core::ConfigMapEnvSource {
        optional[keep]
        ; embedded local_object_reference: pb_core::LocalObjectReference {
            name
        }
    }
    pb_core::SecretEnvSource => core::SecretEnvSource {
        optional[keep]
        ; embedded local_object_reference: pb_core::LocalObjectReference {
            name
        }
    }
    pb_core::EnvVarSource => core::EnvVarSource {
        field_ref, resource_field_ref, config_map_key_ref, secret_key_ref, file_key_ref
    }
    pb_core::ContainerRestartRuleOnExitCodes => core::ContainerRestartRuleOnExitCodes {
        operator, values
    }
    pb_core::LifecycleHandler => core::LifecycleHandler {
        exec, http_get, tcp_socket, sleep
    }
    pb_core::Capabilities => core::Capabilities {
        add, drop
    }
    pb_core::NodeSelector => core::NodeSelector {
        node_selector_terms
    }
    pb_core::PreferredSchedulingTerm => core::PreferredSchedulingTerm {
        weight, preference
    }
    pb_core::PodAffinityTerm => core::PodAffinityTerm {
        label_selector, namespaces, topology_key, namespace_selector, match_label_keys,
        mismatch_label_keys
    }
    pb_core::WeightedPodAffinityTerm => core::WeightedPodAffinityTerm {
        weight, pod_affinity_term
    }
    pb_core::ObjectFieldSelector => core::ObjectFieldSelector {
        api_version, field_path
    }
    pb_core::ResourceFieldSelector => core::ResourceFieldSelector {
        container_name, resource, divisor
    }
    pb_core::ConfigMapKeySelector => core::ConfigMapKeySelector {
        key, optional[keep]
        ; embedded local_object_reference: pb_core::LocalObjectReference {
            name
        }
    }
    pb_core::SecretKeySelector => core::SecretKeySelector {
        key, optional[keep]
        ; embedded local_object_reference: pb_core::LocalObjectReference {
            name
        }
    }
    pb_core::FileKeySelector => core::FileKeySelector {
        volume_name, path, key, optional[keep]
    }
    pb_core::ExecAction => core::ExecAction {
        command
    }
    pb_core::HttpGetAction => core::HTTPGetAction {
        path, port, host, scheme, http_headers
    }
    pb_core::TcpSocketAction => core::TCPSocketAction {
        port, host
    }
    pb_core::GrpcAction => core::GRPCAction {
        port, service[keep]
    }
    pb_core::SleepAction => core::SleepAction {
        seconds
    }
    pb_core::NodeSelectorTerm => core::NodeSelectorTerm {
        match_expressions, match_fields
    }
    pb_core::HttpHeader => core::HTTPHeader {
        name, value
    }
    pb_core::NodeSelectorRequirement => core::NodeSelectorRequirement {
        key, operator, values
    }
}
