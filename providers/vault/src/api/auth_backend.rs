use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ResourceSpec, ResourceStatus};

pub use super::mount::MountObservation as AuthBackendObservation;

/// The desired state of an AuthBackend.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "vault.tessera.dev",
    version = "v1alpha1",
    kind = "AuthBackend",
    status = "AuthBackendStatus",
    derive = "PartialEq",
    doc = "An AuthBackend is a Vault auth method enabled at a path (under auth/). The path \
           is the tessera.dev/external-name annotation, defaulting to metadata.name. \
           Deleting it with deletionPolicy Delete disables the method, which revokes every \
           token it issued."
)]
#[serde(rename_all = "camelCase")]
pub struct AuthBackendSpec {
    // The fields every managed resource has: providerConfigRef, deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// The desired state of the auth method.
    pub for_provider: AuthBackendParameters,
}

/// The desired state of an auth method. Fields left out are not managed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthBackendParameters {
    /// The method's type, e.g. `kubernetes`, `approle`, `userpass`. Fixed at creation:
    /// a different value later is reported as an error.
    #[serde(rename = "type")]
    pub type_: String,
    /// A human-readable description of the auth method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The default TTL of the tokens it issues, e.g. `1h`, `30m`, `1h30m` or seconds; `0`
    /// means the system default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_lease_ttl: Option<String>,
    /// The maximum TTL of the tokens it issues, in the form of `defaultLeaseTtl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lease_ttl: Option<String>,
}

/// The observed state of an AuthBackend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthBackendStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,

    /// The auth method as Vault has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<AuthBackendObservation>,
}
