use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ResourceSpec, ResourceStatus};

/// The desired state of a DBSubnetGroup.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "rds.aws.tessera.dev",
    version = "v1alpha1",
    kind = "DBSubnetGroup",
    status = "DBSubnetGroupStatus",
    derive = "PartialEq",
    doc = "A DBSubnetGroup is an RDS DB subnet group: the VPC subnets a DBInstance may be \
           placed in. Its name in AWS is the tessera.dev/external-name annotation, which \
           defaults to metadata.name."
)]
#[serde(rename_all = "camelCase")]
pub struct DBSubnetGroupSpec {
    // The fields every managed resource has: providerConfigRef, deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// The desired state of the DB subnet group.
    pub for_provider: DBSubnetGroupParameters,
}

/// The desired state of an RDS DB subnet group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DBSubnetGroupParameters {
    /// What the subnet group is for. Can be changed.
    #[schemars(length(min = 1, max = 255))]
    pub description: String,

    /// The IDs of the VPC subnets (`subnet-...`), in at least two availability zones.
    /// The complete list: subnets missing here are removed. Can be changed.
    #[schemars(length(min = 1, max = 20))]
    pub subnet_ids: Vec<String>,

    /// AWS tags. When given, the complete set: other tags are removed (except Tessera's
    /// own `tessera.dev/...` tags). When omitted, tags are not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// The observed state of a DBSubnetGroup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DBSubnetGroupStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,

    /// The subnet group as AWS has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<DBSubnetGroupObservation>,
}

/// The subnet group as AWS has it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DBSubnetGroupObservation {
    /// The ARN of the subnet group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The subnet group's status (`Complete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The VPC of the subnets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
}
