//! The CRD types of the Vault provider, group `vault.tessera.dev`, version `v1alpha1`: the
//! cluster-scoped [`ProviderConfig`] and the managed resources [`Policy`], [`Mount`],
//! [`AuthBackend`], [`KVSecret`], [`KubernetesAuthBackendConfig`] and [`KubernetesAuthRole`].
//!
//! Field doc comments are the `kubectl explain` text; developer notes are `//` comments.

// Printer columns and categories are the kit's (tessera_engine::managed::crd), added in
// crate::crds(): the #[kube(...)] attributes name only group, version, kind and doc.
mod auth_backend;
mod kubernetes_auth;
mod kv_secret;
mod mount;
mod policy;
mod provider_config;

pub use auth_backend::{
    AuthBackend, AuthBackendObservation, AuthBackendParameters, AuthBackendSpec, AuthBackendStatus,
};
pub use kubernetes_auth::{
    KeyReference, KeyReferenceKind, KubernetesAuthBackendConfig,
    KubernetesAuthBackendConfigObservation, KubernetesAuthBackendConfigParameters,
    KubernetesAuthBackendConfigSpec, KubernetesAuthBackendConfigStatus, KubernetesAuthRole,
    KubernetesAuthRoleObservation, KubernetesAuthRoleParameters, KubernetesAuthRoleSpec,
    KubernetesAuthRoleStatus,
};
pub use kv_secret::{
    KVDeletion, KVSecret, KVSecretObservation, KVSecretParameters, KVSecretSpec, KVSecretStatus,
};
pub use mount::{Mount, MountObservation, MountParameters, MountSpec, MountStatus};
pub use policy::{
    Policy, PolicyObservation, PolicyParameters, PolicyRule, PolicySpec, PolicyStatus,
};
pub use provider_config::{
    KubernetesAuthLogin, ProviderConfig, ProviderConfigSpec, ServiceAccountReference, TOKEN_KEY,
    Tls,
};

/// The API group of every kind of this provider.
pub const GROUP: &str = "vault.tessera.dev";
/// The API version of every kind of this provider.
pub const VERSION: &str = "v1alpha1";

/// Where each kind writes the uid of the managed resource that made (or last wrote) the
/// object in Vault: a comment line of a policy, an option of a mount or auth method.
pub const MANAGED_RESOURCE_UID: &str = "tessera.dev/managed-resource-uid";
