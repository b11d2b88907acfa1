use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ResourceSpec, ResourceStatus, SecretKeySelector};

/// The desired state of a Role.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "postgresql.sql.tessera.dev",
    version = "v1alpha1",
    kind = "Role",
    status = "RoleStatus",
    derive = "PartialEq",
    doc = "A Role is a PostgreSQL role (a user or a group). Its name in PostgreSQL is the \
           tessera.dev/external-name annotation, which defaults to metadata.name. The \
           connection secret has the keys username, password, endpoint and port. To rotate a \
           generated password, set the annotation tessera.dev/rotate-password to a new value \
           (any token, e.g. a date)."
)]
#[serde(rename_all = "camelCase")]
pub struct RoleSpec {
    // The fields every managed resource has: providerConfigRef, deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// The desired state of the PostgreSQL role.
    #[serde(default)]
    pub for_provider: RoleParameters,
}

/// The desired state of a PostgreSQL role. Fields left out are not managed: PostgreSQL's
/// defaults apply when the role is created and later changes made elsewhere are kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleParameters {
    /// Role attributes (CREATE ROLE options). PostgreSQL's defaults are NOLOGIN,
    /// NOCREATEDB, NOCREATEROLE, INHERIT, NOREPLICATION, NOBYPASSRLS and NOSUPERUSER.
    #[serde(default)]
    pub privileges: RolePrivileges,

    /// How many concurrent connections the role can make; -1 means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = i32::MAX))]
    pub connection_limit: Option<i32>,

    /// Role-specific defaults of run-time parameters (ALTER ROLE ... SET), e.g.
    /// `{name: statement_timeout, value: 30s}`. When given, this is the complete list:
    /// parameters set on the role but missing here are reset. When omitted, the role's
    /// parameters are not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_parameters: Option<Vec<ConfigurationParameter>>,

    /// The key of a Secret holding the role's password. When omitted and `privileges.login`
    /// is true, Tessera generates a 40-character random password and keeps it in the Secret
    /// `<metadata.name>-password` (key `password`) in the namespace of
    /// `writeConnectionSecretToRef`, or in the controller's namespace (`tessera-system` by
    /// default) when there is no connection secret. Changing the value in the referenced
    /// Secret changes the role's password at the next reconcile; that, not the
    /// tessera.dev/rotate-password annotation, is how a referenced password is rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeySelector>,
}

/// Role attributes. Each one left out is not managed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolePrivileges {
    /// LOGIN: the role can log in, i.e. it is a user rather than a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<bool>,
    /// CREATEDB: the role can create databases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_db: Option<bool>,
    /// CREATEROLE: the role can create, alter and drop other roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_role: Option<bool>,
    /// INHERIT: the role uses the privileges of the roles it is a member of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherit: Option<bool>,
    /// REPLICATION: the role can connect in replication mode and create replication slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<bool>,
    /// BYPASSRLS: the role bypasses every row-level security policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass_rls: Option<bool>,
    /// SUPERUSER: the role bypasses all permission checks. Needs a superuser in the ProviderConfig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub super_user: Option<bool>,
}

/// A role-specific default of a run-time parameter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct ConfigurationParameter {
    /// Name of the parameter, e.g. `statement_timeout` or `search_path`.
    pub name: String,
    /// Value of the parameter, as it would be written after `SET name TO`, without quotes.
    pub value: String,
}

/// The observed state of a Role.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,

    /// The role as PostgreSQL has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<RoleObservation>,
}

/// The role as PostgreSQL has it, and what Tessera remembers about its password.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleObservation {
    /// The role's attributes in PostgreSQL (pg_roles).
    #[serde(default)]
    pub privileges: RolePrivileges,
    /// The role's connection limit in PostgreSQL; -1 means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = i32::MAX))]
    pub connection_limit: Option<i32>,
    /// The role's parameter defaults in PostgreSQL (pg_roles.rolconfig).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configuration_parameters: Vec<ConfigurationParameter>,
    /// The version (`<uid>/<resourceVersion>`) of the password Secret when Tessera last
    /// set the role's password from it; when the Secret is another version, the password
    /// is set again. Nothing derived from the password is kept in status. PostgreSQL
    /// cannot return a password, so a password changed outside Tessera is not noticed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_version: Option<String>,
    /// The value of the tessera.dev/rotate-password annotation when the password was last
    /// set. Setting the annotation to a different value rotates the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_rotation_token: Option<String>,
}
