//! core/v1 volume messages: pod volumes and their sources, projections, mounts and the
//! PersistentVolumeClaim templates of StatefulSets.

use k8s_openapi::api::core::v1 as core;
use k8s_pb::api::core::v1 as pb_core;

use super::convert::{convert, field};

convert! {
    pb_core::PersistentVolumeClaim => core::PersistentVolumeClaim {
        metadata, spec, status
    }
    pb_core::PersistentVolumeClaimSpec => core::PersistentVolumeClaimSpec {
        access_modes, selector, resources, volume_name, storage_class_name[keep],
        volume_mode[keep], data_source, data_source_ref, volume_attributes_class_name[keep]
    }
    pb_core::PersistentVolumeClaimStatus => core::PersistentVolumeClaimStatus {
        phase, access_modes, capacity, conditions, allocated_resources,
        allocated_resource_statuses, current_volume_attributes_class_name[keep],
        modify_volume_status
    }
    pb_core::Volume => core::Volume {
        name
        ; embedded volume_source: pb_core::VolumeSource {
            host_path, empty_dir, gce_persistent_disk, aws_elastic_block_store,
            git_repo, secret, nfs, iscsi, glusterfs, persistent_volume_claim, rbd,
            flex_volume, cinder, cephfs, flocker, downward_api, fc, azure_file,
            config_map, vsphere_volume, quobyte, azure_disk, photon_persistent_disk,
            projected, portworx_volume, scale_io, storageos, csi, ephemeral, image
        }
    }
    pb_core::VolumeResourceRequirements => core::VolumeResourceRequirements {
        limits, requests
    }
    pb_core::TypedLocalObjectReference => core::TypedLocalObjectReference {
        api_group[keep], kind, name
    }
    pb_core::TypedObjectReference => core::TypedObjectReference {
        api_group[keep], kind, name, namespace[keep]
    }
    pb_core::PersistentVolumeClaimCondition => core::PersistentVolumeClaimCondition {
        status, last_probe_time, last_transition_time, reason, message
        ; renamed: type_ = r#type
    }
    pb_core::ModifyVolumeStatus => core::ModifyVolumeStatus {
        target_volume_attributes_class_name, status
    }
    pb_core::VolumeMount => core::VolumeMount {
        name, read_only, recursive_read_only[keep], mount_path, sub_path,
        mount_propagation[keep], sub_path_expr
    }
    pb_core::VolumeDevice => core::VolumeDevice {
        name, device_path
    }
    pb_core::HostPathVolumeSource => core::HostPathVolumeSource {
        path
        ; renamed: type_ = r#type[keep]
    }
    pb_core::EmptyDirVolumeSource => core::EmptyDirVolumeSource {
        medium, size_limit
    }
    pb_core::GcePersistentDiskVolumeSource => core::GCEPersistentDiskVolumeSource {
        pd_name, fs_type, partition, read_only
    }
    pb_core::AwsElasticBlockStoreVolumeSource => core::AWSElasticBlockStoreVolumeSource {
        volume_id, fs_type, partition, read_only
    }
    pb_core::GitRepoVolumeSource => core::GitRepoVolumeSource {
        repository, revision, directory
    }
    pb_core::SecretVolumeSource => core::SecretVolumeSource {
        secret_name, items, default_mode[keep], optional[keep]
    }
    pb_core::NfsVolumeSource => core::NFSVolumeSource {
        server, path, read_only
    }
    pb_core::IscsiVolumeSource => core::ISCSIVolumeSource {
        target_portal, iqn, lun, iscsi_interface, fs_type, read_only, portals,
        chap_auth_discovery, chap_auth_session, secret_ref, initiator_name[keep]
    }
    pb_core::GlusterfsVolumeSource => core::GlusterfsVolumeSource {
        endpoints, path, read_only
    }
    pb_core::PersistentVolumeClaimVolumeSource => core::PersistentVolumeClaimVolumeSource {
        claim_name, read_only
    }
    pb_core::RbdVolumeSource => core::RBDVolumeSource {
        monitors, image, fs_type, pool, user, keyring, secret_ref, read_only
    }
    pb_core::FlexVolumeSource => core::FlexVolumeSource {
        driver, fs_type, secret_ref, read_only, options
    }
    pb_core::CinderVolumeSource => core::CinderVolumeSource {
        volume_id, fs_type, read_only, secret_ref
    }
    pb_core::CephFsVolumeSource => core::CephFSVolumeSource {
        monitors, path, user, secret_file, secret_ref, read_only
    }
    pb_core::FlockerVolumeSource => core::FlockerVolumeSource {
        dataset_name, dataset_uuid
    }
    pb_core::DownwardAPIVolumeSource => core::DownwardAPIVolumeSource {
        items, default_mode[keep]
    }
    pb_core::FcVolumeSource => core::FCVolumeSource {
        lun[keep], fs_type, read_only, wwids
        ; renamed: target_wwns = target_ww_ns
    }
    pb_core::AzureFileVolumeSource => core::AzureFileVolumeSource {
        secret_name, share_name, read_only
    }
    pb_core::ConfigMapVolumeSource => core::ConfigMapVolumeSource {
        items, default_mode[keep], optional[keep]
        ; embedded local_object_reference: pb_core::LocalObjectReference {
            name
        }
    }
    pb_core::VsphereVirtualDiskVolumeSource => core::VsphereVirtualDiskVolumeSource {
        volume_path, fs_type, storage_policy_name, storage_policy_id
    }
    pb_core::QuobyteVolumeSource => core::QuobyteVolumeSource {
        registry, volume, read_only, user, group, tenant
    }
    pb_core::AzureDiskVolumeSource => core::AzureDiskVolumeSource {
        disk_name, disk_uri, caching_mode[keep], fs_type[keep], read_only[keep], kind[keep]
    }
    pb_core::PhotonPersistentDiskVolumeSource => core::PhotonPersistentDiskVolumeSource {
        pd_id, fs_type
    }
    pb_core::ProjectedVolumeSource => core::ProjectedVolumeSource {
        sources, default_mode[keep]
    }
    pb_core::PortworxVolumeSource => core::PortworxVolumeSource {
        volume_id, fs_type, read_only
    }
    pb_core::ScaleIoVolumeSource => core::ScaleIOVolumeSource {
        gateway, system, secret_ref, ssl_enabled, protection_domain, storage_pool,
        storage_mode, volume_name, fs_type, read_only
    }
    pb_core::StorageOsVolumeSource => core::StorageOSVolumeSource {
        volume_name, volume_namespace, fs_type, read_only, secret_ref
    }
    pb_core::CSIVolumeSource => core::CSIVolumeSource {
        driver, read_only[keep], fs_type[keep], volume_attributes, node_publish_secret_ref
    }
    pb_core::EphemeralVolumeSource => core::EphemeralVolumeSource {
        volume_claim_template
    }
    pb_core::ImageVolumeSource => core::ImageVolumeSource {
        reference, pull_policy
    }
    pb_core::KeyToPath => core::KeyToPath {
        key, path, mode[keep]
    }
    pb_core::DownwardAPIVolumeFile => core::DownwardAPIVolumeFile {
        path, field_ref, resource_field_ref, mode[keep]
    }
    pb_core::VolumeProjection => core::VolumeProjection {
        secret, downward_api, config_map, service_account_token, cluster_trust_bundle,
        pod_certificate
    }
    pb_core::PersistentVolumeClaimTemplate => core::PersistentVolumeClaimTemplate {
        metadata, spec
    }
    pb_core::SecretProjection => core::SecretProjection {
        items, optional[keep]
        ; embedded local_object_reference: pb_core::LocalObjectReference {
            name
        }
    }
    pb_core::DownwardAPIProjection => core::DownwardAPIProjection {
        items
    }
    pb_core::ConfigMapProjection => core::ConfigMapProjection {
        items, optional[keep]
        ; embedded local_object_reference: pb_core::LocalObjectReference {
            name
        }
    }
    pb_core::ServiceAccountTokenProjection => core::ServiceAccountTokenProjection {
        audience, expiration_seconds[keep], path
    }
    pb_core::ClusterTrustBundleProjection => core::ClusterTrustBundleProjection {
        name[keep], signer_name[keep], label_selector, optional[keep], path
    }
    pb_core::PodCertificateProjection => core::PodCertificateProjection {
        signer_name, key_type, max_expiration_seconds[keep], credential_bundle_path,
        key_path, certificate_chain_path
        ; refused: user_annotations
    }
}
