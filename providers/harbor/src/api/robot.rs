//! The managed resource [`RobotAccount`]: a project robot account (Harbor's robots v2).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ResourceSpec, ResourceStatus};
use tessera_engine::api::schema::INT64_MAX;

/// Setting this annotation of a RobotAccount to a new value makes Tessera refresh the
/// robot's secret in Harbor and write the new one into the connection Secret.
pub const ROTATE_SECRET_ANNOTATION: &str = "tessera.dev/rotate-secret";

/// The desired state of a RobotAccount.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "harbor.tessera.dev",
    version = "v1alpha1",
    kind = "RobotAccount",
    status = "RobotAccountStatus",
    derive = "PartialEq",
    doc = "A RobotAccount is a Harbor project robot account. Its name in Harbor is \
           robot$<project>+<tessera.dev/external-name annotation, default metadata.name>. \
           Harbor shows a robot's secret only once, so it exists only in the connection \
           Secret (spec.writeConnectionSecretToRef, required): a kubernetes.io/dockerconfigjson \
           Secret with the keys username, password and .dockerconfigjson, usable as \
           imagePullSecrets. If that Secret is lost, Tessera refreshes the robot's secret in \
           Harbor and writes the Secret again. To rotate the secret, set the annotation \
           tessera.dev/rotate-secret to a new value."
)]
#[serde(rename_all = "camelCase")]
pub struct RobotAccountSpec {
    // The fields every managed resource has: providerConfigRef, deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// The desired state of the Harbor robot account.
    pub for_provider: RobotAccountParameters,
}

/// The desired state of a Harbor project robot account.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RobotAccountParameters {
    /// The name of the Harbor project the robot belongs to (the project must exist).
    #[schemars(length(min = 1, max = 255))]
    pub project: String,

    /// What the robot may do in its project, e.g. `{resource: repository, action: pull}`
    /// and `{resource: artifact, action: read}` for pulling images, plus
    /// `{resource: repository, action: push}` for pushing. At least one, at most 64.
    #[schemars(length(min = 1, max = 64))]
    pub permissions: Vec<RobotAccess>,

    /// How many days the robot's secret stays valid; -1 (the default) means it never
    /// expires. Counted from the robot's creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = 2147483646))]
    pub duration: Option<i64>,

    /// A description shown in Harbor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// Whether the robot is disabled (it cannot log in). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// One permission of a robot: an action on a resource of its project.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct RobotAccess {
    /// The resource, e.g. `repository`, `artifact`, `tag`, `scan`.
    #[schemars(length(min = 1, max = 64))]
    pub resource: String,
    /// The action on it, e.g. `pull`, `push`, `read`, `list`, `create`, `delete`.
    #[schemars(length(min = 1, max = 64))]
    pub action: String,
}

/// The observed state of a RobotAccount.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RobotAccountStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,

    /// The robot account as Harbor has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<RobotAccountObservation>,
}

/// The robot account as Harbor has it (never its secret).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RobotAccountObservation {
    /// Harbor's id of the robot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = INT64_MAX))]
    pub robot_id: Option<i64>,
    /// The robot's full name, its login username: `robot$<project>+<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// When the robot's secret expires (Unix seconds; -1: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = INT64_MAX))]
    pub expires_at: Option<i64>,
    /// Whether the robot is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// The value of the tessera.dev/rotate-secret annotation when the secret was last set.
    /// Setting the annotation to a different value rotates the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_rotation_token: Option<String>,
}
