//! The managed resource [`ProjectMember`]: a user or group's role in a Harbor project.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ResourceSpec, ResourceStatus};
use tessera_engine::api::schema::INT64_MAX;

/// The desired state of a ProjectMember.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "harbor.tessera.dev",
    version = "v1alpha1",
    kind = "ProjectMember",
    status = "ProjectMemberStatus",
    derive = "PartialEq",
    doc = "A ProjectMember gives a Harbor user or group a role in a Harbor project. Exactly \
           one of forProvider.user and forProvider.group is set; the user or group must \
           exist in Harbor (a group is created by name when Harbor's authentication allows)."
)]
#[serde(rename_all = "camelCase")]
pub struct ProjectMemberSpec {
    // The fields every managed resource has: providerConfigRef, deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// The desired membership.
    pub for_provider: ProjectMemberParameters,
}

/// The desired membership of a user or group in a Harbor project.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectMemberParameters {
    /// The name of the Harbor project.
    #[schemars(length(min = 1, max = 255))]
    pub project: String,

    /// The username of a Harbor user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub user: Option<String>,

    /// The name of a Harbor user group (for LDAP: its DN is looked up by Harbor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub group: Option<String>,

    /// The type of `group`: 1 LDAP, 2 HTTP, 3 OIDC (it must match Harbor's authentication
    /// mode). Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3))]
    pub group_type: Option<i64>,

    /// The role: `projectAdmin`, `maintainer`, `developer`, `guest` or `limitedGuest`.
    pub role: MemberRole,
}

/// A role in a Harbor project.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tessera_engine::api::schema::drop_description)]
pub enum MemberRole {
    /// Everything in the project, including its members.
    ProjectAdmin,
    /// Push, pull, delete, scan; no member management.
    Maintainer,
    /// Push and pull.
    Developer,
    /// Pull only.
    #[default]
    Guest,
    /// Pull only, without seeing the project's logs and members.
    LimitedGuest,
}

impl MemberRole {
    /// Harbor's `role_id` of this role.
    pub fn id(self) -> i64 {
        match self {
            MemberRole::ProjectAdmin => 1,
            MemberRole::Developer => 2,
            MemberRole::Guest => 3,
            MemberRole::Maintainer => 4,
            MemberRole::LimitedGuest => 5,
        }
    }

    /// The role of Harbor's `role_id`.
    pub fn from_id(id: i64) -> Option<MemberRole> {
        [
            MemberRole::ProjectAdmin,
            MemberRole::Developer,
            MemberRole::Guest,
            MemberRole::Maintainer,
            MemberRole::LimitedGuest,
        ]
        .into_iter()
        .find(|r| r.id() == id)
    }
}

/// The observed state of a ProjectMember.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectMemberStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,

    /// The membership as Harbor has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<ProjectMemberObservation>,
}

/// The membership as Harbor has it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectMemberObservation {
    /// Harbor's id of the membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = INT64_MAX))]
    pub member_id: Option<i64>,
    /// Harbor's id of the user or group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = INT64_MAX))]
    pub entity_id: Option<i64>,
    /// The current role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<MemberRole>,
}
