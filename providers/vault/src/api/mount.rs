use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ResourceSpec, ResourceStatus};

/// The desired state of a Mount.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "vault.tessera.dev",
    version = "v1alpha1",
    kind = "Mount",
    status = "MountStatus",
    derive = "PartialEq",
    doc = "A Mount is a Vault secrets engine enabled at a path. The path is the \
           tessera.dev/external-name annotation (which may contain slashes, e.g. team/kv), \
           defaulting to metadata.name. Deleting a Mount with deletionPolicy Delete disables \
           the engine, which destroys all its data."
)]
#[serde(rename_all = "camelCase")]
pub struct MountSpec {
    // The fields every managed resource has: providerConfigRef, deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// The desired state of the secrets engine.
    pub for_provider: MountParameters,
}

/// The desired state of a secrets engine. Fields left out are not managed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MountParameters {
    /// The engine's type, e.g. `kv`, `pki`, `transit`, `database`. Fixed at creation:
    /// Vault cannot change it in place, so a different value later is reported as an error.
    #[serde(rename = "type")]
    pub type_: String,
    /// A human-readable description of the mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The default lease TTL, e.g. `1h`, `30m`, `90s`, `1h30m` or seconds; `0` means the
    /// system default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_lease_ttl: Option<String>,
    /// The maximum lease TTL, in the form of `defaultLeaseTtl`; `0` means the system default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lease_ttl: Option<String>,
    /// Engine-specific options, e.g. `version: "2"` for a KV version 2 engine. Only the
    /// keys listed here are managed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// The observed state of a Mount.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MountStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,

    /// The secrets engine as Vault has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<MountObservation>,
}

/// A secrets engine or auth method as Vault has it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MountObservation {
    /// The engine's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Vault's accessor of the mount (stable for the mount's lifetime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accessor: Option<String>,
    /// The default lease TTL in seconds; 0 means the system default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = tessera_engine::api::schema::INT64_MAX))]
    pub default_lease_ttl_seconds: Option<i64>,
    /// The maximum lease TTL in seconds; 0 means the system default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = tessera_engine::api::schema::INT64_MAX))]
    pub max_lease_ttl_seconds: Option<i64>,
    /// The uid of the managed resource that enabled the mount, from its option
    /// `tessera.dev/managed-resource-uid`; unset for a mount enabled otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_resource_uid: Option<String>,
}
