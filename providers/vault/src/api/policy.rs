use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ResourceSpec, ResourceStatus};

/// The desired state of a Policy.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "vault.tessera.dev",
    version = "v1alpha1",
    kind = "Policy",
    status = "PolicyStatus",
    derive = "PartialEq",
    doc = "A Policy is a Vault ACL policy. Its name in Vault is the tessera.dev/external-name \
           annotation, which defaults to metadata.name. The policies root and default \
           cannot be managed."
)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    // The fields every managed resource has: providerConfigRef, deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// The desired state of the Vault policy.
    #[serde(default)]
    pub for_provider: PolicyParameters,
}

/// The desired rules of a Vault policy: either `policy` (HCL as Vault takes it) or `rules`
/// (from which the provider writes the HCL). With neither, the policy's rules are not
/// managed (for an Observe-only import).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyParameters {
    /// The policy in Vault's HCL, e.g. `path "secret/data/app/*" { capabilities = ["read"] }`.
    /// Compared with Vault's by meaning (paths and their capabilities and parameters), not
    /// by text. Malformed HCL is reported with Vault's own parse error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,

    /// The policy as a list of rules, one `path` block per path of each rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<PolicyRule>>,
}

/// Capabilities granted on some paths.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// The paths, as Vault matches them (`*` at the end and `+` for one segment allowed),
    /// e.g. `secret/data/app/*`. A rule without paths grants nothing and is left out.
    #[serde(default)]
    pub paths: Vec<String>,
    /// The capabilities on those paths: `create`, `read`, `update`, `patch`, `delete`,
    /// `list`, `sudo` or `deny`.
    pub capabilities: Vec<String>,
    /// Why the rule exists; written as a comment above its path blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The observed state of a Policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,

    /// The policy as Vault has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<PolicyObservation>,
}

/// The policy as Vault has it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyObservation {
    /// The paths the policy has rules for, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// The uid of the managed resource that wrote the policy, from its first comment line
    /// `# tessera.dev/managed-resource-uid=<uid>`; unset for a policy written otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_resource_uid: Option<String>,
}
