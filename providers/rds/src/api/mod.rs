//! The CRD types of the RDS provider, group `rds.aws.tessera.dev`, version `v1alpha1`: the
//! cluster-scoped [`ProviderConfig`] and the managed resources [`DBInstance`] and
//! [`DBSubnetGroup`].
//!
//! Field doc comments are the `kubectl explain` text; developer notes are `//` comments.

// Printer columns and categories are the kit's (tessera_engine::managed::crd), added in
// crate::crds(): the #[kube(...)] attributes name only group, version, kind and doc.
mod db_instance;
mod db_subnet_group;
mod provider_config;

pub use db_instance::{
    DBInstance, DBInstanceObservation, DBInstanceParameters, DBInstanceSpec, DBInstanceStatus,
};
pub use db_subnet_group::{
    DBSubnetGroup, DBSubnetGroupObservation, DBSubnetGroupParameters, DBSubnetGroupSpec,
    DBSubnetGroupStatus,
};
pub use provider_config::{ProviderConfig, ProviderConfigSpec};

/// The API group of every kind of this provider.
pub const GROUP: &str = "rds.aws.tessera.dev";
/// The API version of every kind of this provider.
pub const VERSION: &str = "v1alpha1";

/// The tag that marks an AWS resource as managed by Tessera: its value is the
/// `metadata.uid` of the managed resource that owns it.
pub const OWNERSHIP_TAG: &str = "tessera.dev/managed-resource-uid";
