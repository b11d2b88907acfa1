use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ResourceSpec, ResourceStatus};

/// The desired state of a Database.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "postgresql.sql.tessera.dev",
    version = "v1alpha1",
    kind = "Database",
    status = "DatabaseStatus",
    derive = "PartialEq",
    doc = "A Database is a PostgreSQL database. Its name in PostgreSQL is the \
           tessera.dev/external-name annotation, which defaults to metadata.name."
)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    // The fields every managed resource has: providerConfigRef, deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// The desired state of the PostgreSQL database.
    #[serde(default)]
    pub for_provider: DatabaseParameters,
}

/// The desired state of a PostgreSQL database. Fields left out are not managed: the
/// server's defaults apply when the database is created.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseParameters {
    /// The role that owns the database. Defaults to the ProviderConfig's user at creation.
    /// Can be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,

    /// Character set encoding, e.g. `UTF8`. Fixed at creation: a different value later is
    /// reported as an error and never recreates the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,

    /// Collation order (LC_COLLATE), e.g. `C.UTF-8`. Fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lc_collate: Option<String>,

    /// Character classification (LC_CTYPE), e.g. `C.UTF-8`. Fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lc_c_type: Option<String>,

    /// The database to copy, e.g. `template0` (needed when encoding or locale differ from
    /// `template1`'s). Used only at creation; PostgreSQL does not record it, so a change
    /// is reported as an error only while `status.atProvider.template` remembers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,

    /// How many concurrent connections can be made to the database; -1 means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = i32::MAX))]
    pub connection_limit: Option<i32>,

    /// Whether anyone can connect to the database. false prevents all new connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_connections: Option<bool>,

    /// Whether the database is a template that users with CREATEDB can clone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_template: Option<bool>,
}

/// The observed state of a Database.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,

    /// The database as PostgreSQL has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<DatabaseObservation>,
}

/// The database as PostgreSQL has it (pg_database).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseObservation {
    /// The role that owns the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Character set encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Collation order (LC_COLLATE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lc_collate: Option<String>,
    /// Character classification (LC_CTYPE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lc_c_type: Option<String>,
    /// The template the database was created from by Tessera, when it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Connection limit; -1 means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = i32::MAX))]
    pub connection_limit: Option<i32>,
    /// Whether connections are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_connections: Option<bool>,
    /// Whether the database is a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_template: Option<bool>,
}
