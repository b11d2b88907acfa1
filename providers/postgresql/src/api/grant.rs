use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ResourceSpec, ResourceStatus};

/// The desired state of a Grant.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "postgresql.sql.tessera.dev",
    version = "v1alpha1",
    kind = "Grant",
    status = "GrantStatus",
    derive = "PartialEq",
    doc = "A Grant gives a PostgreSQL role either privileges on a database (set database and \
           privileges) or membership in another role (set memberOf). Its external name is \
           derived from the role and the database or memberOf, e.g. `alice/database/shop` or \
           `alice/member-of/readers`, and these cannot change after creation."
)]
#[serde(rename_all = "camelCase")]
pub struct GrantSpec {
    // The fields every managed resource has: providerConfigRef, deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// The desired grant.
    pub for_provider: GrantParameters,
}

/// The desired grant: privileges of `role` on `database`, or membership of `role` in `memberOf`.
/// Exactly one of `database` and `memberOf` must be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantParameters {
    /// The role that receives the privileges or the membership (the grantee).
    pub role: String,

    /// The database the privileges are on. Requires `privileges`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,

    /// The privileges on `database`: any of `CONNECT`, `CREATE`, `TEMPORARY` (or `TEMP`),
    /// or `ALL` for all three; case does not matter. This is the complete set: other
    /// privileges the role holds directly on the database are revoked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub privileges: Vec<String>,

    /// The role that `role` becomes a member of (GRANT memberOf TO role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_of: Option<String>,

    /// `GRANT` lets `role` grant the privileges on to others (WITH GRANT OPTION; database
    /// grants only); `ADMIN` lets it grant the membership on to others (WITH ADMIN OPTION;
    /// memberOf grants only). When omitted, the option is revoked if the role has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_option: Option<GrantOption>,

    /// Revoke all privileges on `database` from PUBLIC, so that only roles granted
    /// privileges explicitly can connect. Deleting the Grant does not give them back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_public_on_db: Option<bool>,
}

/// An option that lets the grantee pass the grant on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum GrantOption {
    /// WITH ADMIN OPTION, for role membership.
    Admin,
    /// WITH GRANT OPTION, for privileges on a database.
    Grant,
}

/// The observed state of a Grant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,

    /// The grant as PostgreSQL has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<GrantObservation>,
}

/// The grant as PostgreSQL has it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantObservation {
    /// The privileges the role holds directly on the database (from aclexplode(datacl)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub privileges: Vec<String>,
    /// The privileges of those the role may grant on to others (WITH GRANT OPTION).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grantable_privileges: Vec<String>,
    /// The privileges PUBLIC holds on the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_privileges: Option<Vec<String>>,
    /// Whether the role is a member of memberOf (pg_auth_members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<bool>,
    /// Whether the membership has the ADMIN option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_option: Option<bool>,
}
