//! The CRD types of the Harbor provider, group `harbor.tessera.dev`, version `v1alpha1`:
//! the cluster-scoped [`ProviderConfig`] and the managed resource [`Project`].
//!
//! Field doc comments are the `kubectl explain` text.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ProviderCredentials, ResourceSpec, ResourceStatus};
use tessera_engine::api::schema::INT64_MAX;

/// The API group of every kind of this provider.
pub const GROUP: &str = "harbor.tessera.dev";
/// The API version of every kind of this provider.
pub const VERSION: &str = "v1alpha1";

/// How to reach a Harbor instance and as whom.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "harbor.tessera.dev",
    version = "v1alpha1",
    kind = "ProviderConfig",
    derive = "PartialEq",
    doc = "A ProviderConfig tells the Harbor provider how to reach a Harbor instance and with \
           which credentials. Managed resources name it in spec.providerConfigRef; the one named \
           `default` is used when they do not."
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfigSpec {
    /// Harbor's base URL, e.g. `https://harbor.example.com` (without `/api/v2.0`).
    /// `http://` is accepted for tests and local instances.
    #[schemars(length(max = 2048))]
    pub url: String,

    /// The Secret with the credentials of a Harbor system administrator: keys `username`
    /// and `password`. The Secret is watched: a rotated password is used from the next
    /// reconcile on, without a restart.
    pub credentials: ProviderCredentials,

    /// PEM CA bundle that Harbor's certificate must chain to, instead of the system's
    /// trusted roots (for a Harbor with a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,

    /// Accept any certificate Harbor presents. Whoever sits on the path can then read the
    /// credentials: for tests only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

/// The desired state of a Project.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "harbor.tessera.dev",
    version = "v1alpha1",
    kind = "Project",
    status = "ProjectStatus",
    derive = "PartialEq",
    doc = "A Project is a Harbor project. Its name in Harbor is the tessera.dev/external-name \
           annotation, which defaults to metadata.name; Harbor requires lower case letters and \
           digits separated by single '.', '_' or '-' (1-255 characters)."
)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSpec {
    // The fields every managed resource has: providerConfigRef, deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// The desired state of the Harbor project.
    #[serde(default)]
    pub for_provider: ProjectParameters,
}

/// The desired state of a Harbor project. Fields left out are not managed: Harbor's
/// defaults apply when the project is created, and later changes in Harbor are kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectParameters {
    /// Whether anyone may pull the project's images without logging in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,

    /// The project's storage quota in bytes; -1 means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = INT64_MAX))]
    pub storage_limit: Option<i64>,

    /// Scan images for vulnerabilities automatically when they are pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_scan: Option<bool>,

    /// Refuse pulls of images with vulnerabilities of `severity` or above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prevent_vulnerable_images: Option<bool>,

    /// The lowest vulnerability severity that `preventVulnerableImages` blocks: one of
    /// `none`, `unknown`, `negligible`, `low`, `medium`, `high`, `critical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,

    /// Use the system-wide CVE allowlist instead of the project's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_system_cve_allowlist: Option<bool>,

    /// The project's own CVE allowlist (CVE ids such as `CVE-2024-1234`), at most 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub cve_allowlist: Option<Vec<String>>,

    /// Makes the project a proxy cache of the registry endpoint with this id (set at
    /// creation only; Harbor does not change it afterwards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = INT64_MAX))]
    pub registry_id: Option<i64>,
}

/// The observed state of a Project.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,

    /// The project as Harbor has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<ProjectObservation>,
}

/// The project as Harbor has it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectObservation {
    /// Harbor's id of the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = INT64_MAX))]
    pub project_id: Option<i64>,
    /// Whether the project is public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// The storage quota in bytes (-1: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = INT64_MAX))]
    pub storage_limit: Option<i64>,
    /// How many repositories the project holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = INT64_MAX))]
    pub repo_count: Option<i64>,
}

mod member;
mod robot;

pub use member::{
    MemberRole, ProjectMember, ProjectMemberObservation, ProjectMemberParameters,
    ProjectMemberSpec, ProjectMemberStatus,
};
pub use robot::{
    ROTATE_SECRET_ANNOTATION, RobotAccess, RobotAccount, RobotAccountObservation,
    RobotAccountParameters, RobotAccountSpec, RobotAccountStatus,
};
