//! The CRD types of the PostgreSQL provider, group `postgresql.sql.tessera.dev`, version
//! `v1alpha1`: the cluster-scoped [`ProviderConfig`] and the managed resources [`Role`],
//! [`Database`] and [`Grant`].
//!
//! Field doc comments are the `kubectl explain` text; developer notes are `//` comments.

// Printer columns and categories are the kit's (tessera_engine::managed::crd), added in
// crate::crds(): the #[kube(...)] attributes name only group, version, kind and doc.
mod database;
mod grant;
mod provider_config;
mod role;

pub use database::{
    Database, DatabaseObservation, DatabaseParameters, DatabaseSpec, DatabaseStatus,
};
pub use grant::{Grant, GrantObservation, GrantOption, GrantParameters, GrantSpec, GrantStatus};
pub use provider_config::{ProviderConfig, ProviderConfigSpec, SslMode};
pub use role::{
    ConfigurationParameter, Role, RoleObservation, RoleParameters, RolePrivileges, RoleSpec,
    RoleStatus,
};

/// The API group of every kind of this provider.
pub const GROUP: &str = "postgresql.sql.tessera.dev";
/// The API version of every kind of this provider.
pub const VERSION: &str = "v1alpha1";

/// Annotation on a Role: when its value differs from `status.atProvider.passwordRotationToken`,
/// the generated password is replaced by a new one and the value is recorded there.
pub const ROTATE_PASSWORD_ANNOTATION: &str = "tessera.dev/rotate-password";
