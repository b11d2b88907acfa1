use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ResourceSpec, ResourceStatus, SecretReference};

/// The desired state of a KVSecret.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "vault.tessera.dev",
    version = "v1alpha1",
    kind = "KVSecret",
    status = "KVSecretStatus",
    derive = "PartialEq",
    doc = "A KVSecret is a secret in a Vault KV version 2 engine, its data copied from a \
           Kubernetes Secret. The values never appear in the KVSecret's spec, status or \
           events. A newer version written in Vault with other data is replaced by a new \
           version with the Secret's data."
)]
#[serde(rename_all = "camelCase")]
pub struct KVSecretSpec {
    // The fields every managed resource has: providerConfigRef, deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// The desired state of the KV secret.
    pub for_provider: KVSecretParameters,
}

/// The desired state of a KV version 2 secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KVSecretParameters {
    /// The path of the KV version 2 engine, e.g. `secret`.
    pub mount: String,
    /// The secret's path in the engine, e.g. `app/db`.
    pub path: String,
    /// The Kubernetes Secret whose data (every key) is the secret's data. A change of the
    /// Secret is written as a new version at the next poll.
    pub data_secret_ref: SecretReference,
    /// Metadata of the secret (not versioned); only the keys listed here are managed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_metadata: BTreeMap<String, String>,
    /// How many versions Vault keeps; 0 means the engine's setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = i32::MAX))]
    pub max_versions: Option<i32>,
    /// Whether every write must name the version it replaces (check-and-set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cas_required: Option<bool>,
    /// How long after it is written a version is deleted, e.g. `720h`; `0s` means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_version_after: Option<String>,
    /// What deleting the KVSecret (with deletionPolicy Delete) deletes: `AllVersions` (the
    /// default: the metadata and every version, for good) or `LatestVersion` (a soft
    /// delete of the latest version, which can be undeleted in Vault).
    #[serde(default)]
    pub deletion: KVDeletion,
}

/// What deleting a KVSecret deletes in Vault.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum KVDeletion {
    /// The metadata and every version, for good.
    #[default]
    AllVersions,
    /// A soft delete of the latest version only.
    LatestVersion,
}

/// The observed state of a KVSecret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KVSecretStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,

    /// The secret as Vault has it (never its data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<KVSecretObservation>,
}

/// The secret as Vault has it, without its data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KVSecretObservation {
    /// The latest version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = tessera_engine::api::schema::INT64_MAX))]
    pub current_version: Option<i64>,
    /// The uid of the managed resource that wrote the secret, from its custom metadata
    /// `tessera.dev/managed-resource-uid`; unset for a secret written otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_resource_uid: Option<String>,
}
