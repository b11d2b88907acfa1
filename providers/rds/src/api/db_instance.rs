use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ResourceSpec, ResourceStatus, SecretKeySelector};

/// The desired state of a DBInstance.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "rds.aws.tessera.dev",
    version = "v1alpha1",
    kind = "DBInstance",
    status = "DBInstanceStatus",
    derive = "PartialEq",
    doc = "A DBInstance is an Amazon RDS DB instance. Its DB instance identifier is the \
           tessera.dev/external-name annotation, which defaults to metadata.name. It is Ready \
           when AWS reports it `available`. The connection secret has the keys endpoint, port, \
           username and password."
)]
#[serde(rename_all = "camelCase")]
pub struct DBInstanceSpec {
    // The fields every managed resource has: providerConfigRef, deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// The desired state of the DB instance.
    pub for_provider: DBInstanceParameters,
}

// Bounds on strings keep every input small; AWS checks the values themselves.
/// The desired state of an RDS DB instance. Optional fields left out are not managed:
/// AWS's defaults apply at creation, and the values AWS chose are copied into the spec
/// when managementPolicies allow LateInitialize.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DBInstanceParameters {
    /// The database engine, e.g. `postgres` or `mysql`. Fixed at creation.
    #[schemars(length(min = 1, max = 64))]
    pub engine: String,

    /// The engine version, e.g. `16.4`; a prefix such as `16` matches any `16.x` AWS runs.
    /// Changing it upgrades the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub engine_version: Option<String>,

    /// The compute and memory class, e.g. `db.t3.micro`. Can be changed.
    #[schemars(length(min = 1, max = 64))]
    pub db_instance_class: String,

    /// Storage in GiB. Can be increased, not decreased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub allocated_storage: Option<i32>,

    /// The limit in GiB up to which RDS may grow the storage automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub max_allocated_storage: Option<i32>,

    /// The storage type: `gp2`, `gp3`, `io1`, `io2` or `standard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub storage_type: Option<String>,

    /// Provisioned IOPS (io1, io2, gp3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 256000))]
    pub iops: Option<i32>,

    /// The name of the master user. Fixed at creation.
    #[schemars(length(min = 1, max = 63))]
    pub master_username: String,

    /// The key of a Secret holding the master password. When omitted, Tessera generates a
    /// 40-character password before the instance is created and keeps it in the Secret
    /// `<metadata.name>-master-password` (key `password`) in the namespace of
    /// `writeConnectionSecretToRef`, or in the controller's namespace (`tessera-system` by
    /// default). Changing the value in the Secret changes the master password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_password_secret_ref: Option<SecretKeySelector>,

    /// The name of the database created with the instance. Fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub db_name: Option<String>,

    /// The port the database listens on. Can be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1150, max = 65535))]
    pub port: Option<i32>,

    /// Days to keep automated backups; 0 disables them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 35))]
    pub backup_retention_period: Option<i32>,

    /// The daily backup window in UTC, `hh24:mi-hh24:mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub preferred_backup_window: Option<String>,

    /// The weekly maintenance window in UTC, `ddd:hh24:mi-ddd:hh24:mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub preferred_maintenance_window: Option<String>,

    /// Whether a standby runs in another availability zone.
    #[serde(default, rename = "multiAZ", skip_serializing_if = "Option::is_none")]
    pub multi_az: Option<bool>,

    /// Whether the instance gets a public IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publicly_accessible: Option<bool>,

    /// The DB subnet group (a DBSubnetGroup's external name) that places the instance in
    /// a VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub db_subnet_group_name: Option<String>,

    /// The VPC security groups (`sg-...`). When given, the complete list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub vpc_security_group_ids: Option<Vec<String>>,

    /// The DB parameter group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub db_parameter_group_name: Option<String>,

    /// Whether AWS refuses to delete the instance. Tessera cannot delete an instance that
    /// has it: set it to false first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<bool>,

    /// Delete without a final snapshot. Default false: a final snapshot named
    /// `finalDBSnapshotIdentifier` is taken.
    #[serde(default)]
    pub skip_final_snapshot: bool,

    /// The name of the final snapshot taken when the instance is deleted. Default
    /// `<DB instance identifier>-final`.
    #[serde(
        default,
        rename = "finalDBSnapshotIdentifier",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 255))]
    pub final_db_snapshot_identifier: Option<String>,

    /// Apply changes at once rather than in the next maintenance window. Default false,
    /// as in AWS.
    #[serde(default)]
    pub apply_immediately: bool,

    /// AWS tags. When given, the complete set: other tags are removed (except Tessera's
    /// own `tessera.dev/...` tags). When omitted, tags are not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// The observed state of a DBInstance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DBInstanceStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,

    /// The DB instance as AWS has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<DBInstanceObservation>,
}

/// The DB instance as AWS has it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DBInstanceObservation {
    /// The AWS status: `creating`, `available`, `modifying`, `backing-up`, `deleting`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The DNS name of the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The port the instance listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: Option<i32>,
    /// The ARN of the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The region-unique, immutable resource ID (`db-...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The engine version AWS runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// The version (`<uid>/<resourceVersion>`) of the master password Secret when Tessera
    /// last set the password from it; when the Secret is another version, the password is
    /// set again. Nothing derived from the password is kept in status. AWS cannot return
    /// a password, so a password changed outside Tessera is not noticed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_version: Option<String>,
}
