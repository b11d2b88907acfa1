//! The CRD type of the nop provider, group `nop.tessera.dev`, version `v1alpha1`: the
//! cluster-scoped managed resource [`NopResource`].
//!
//! Field doc comments are the `kubectl explain` text.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ResourceSpec, ResourceStatus};

/// The API group of every kind of this provider.
pub const GROUP: &str = "nop.tessera.dev";
/// The API version of every kind of this provider.
pub const VERSION: &str = "v1alpha1";

/// The longest delay a NopResource may ask for, in milliseconds (one minute).
pub const MAX_DELAY_MS: u32 = 60_000;

/// The desired state of a NopResource.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "nop.tessera.dev",
    version = "v1alpha1",
    kind = "NopResource",
    status = "NopResourceStatus",
    derive = "PartialEq",
    doc = "A NopResource is a managed resource of no external system: the controller keeps \
           its 'external resource' in memory, takes the configured time to observe and create \
           it and reports it Ready when configured to. It measures the engine alone, for \
           benchmarks and tests; it needs no ProviderConfig."
)]
#[serde(rename_all = "camelCase")]
pub struct NopResourceSpec {
    // The fields every managed resource has: providerConfigRef (ignored), deletionPolicy, ...
    #[serde(flatten)]
    pub resource: ResourceSpec,

    /// How the nop resource behaves.
    #[serde(default)]
    pub for_provider: NopResourceParameters,
}

/// How a nop resource behaves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NopResourceParameters {
    /// How long each observe takes, in milliseconds (at most 60000).
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0, max = MAX_DELAY_MS))]
    pub observe_delay_ms: u32,

    /// How long the create takes, in milliseconds (at most 60000).
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0, max = MAX_DELAY_MS))]
    pub create_delay_ms: u32,

    /// When the resource becomes Ready: this many milliseconds after its create (at most
    /// 60000). Default 0: Ready at the first observe after the create.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0, max = MAX_DELAY_MS))]
    pub ready_after_ms: u32,

    /// Never become Ready: the Ready condition stays False with reason Unavailable and this
    /// message. For testing what a composite does with a child that is not Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub unavailable_message: Option<String>,

    /// Connection details the resource publishes (key -> value), from the create and every
    /// observe, at most 64. They are plain spec values: never put a real secret here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connection_details: BTreeMap<String, String>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// The observed state of a NopResource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NopResourceStatus {
    // The fields every managed resource has: conditions, observedGeneration.
    #[serde(flatten)]
    pub resource: ResourceStatus,
}
