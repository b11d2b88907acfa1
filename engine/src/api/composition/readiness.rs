//! Readiness checks: when a composed resource counts as ready.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kind of a readiness check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum ReadinessCheckType {
    /// Always ready.
    None,
    /// Ready when `fieldPath` is set, to any value but null (as in Crossplane, an empty
    /// string counts as set).
    NonEmpty,
    /// Ready when `fieldPath` equals `matchString`.
    MatchString,
    /// Ready when `fieldPath` equals `matchInteger`.
    MatchInteger,
    /// Ready when `fieldPath` is the boolean `true`.
    MatchTrue,
    /// Ready when `fieldPath` is the boolean `false`.
    MatchFalse,
    /// Ready when the condition `matchCondition.type` has status `matchCondition.status`.
    MatchCondition,
}

/// A check that must pass for a composed resource to count as ready.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessCheck {
    /// The check: `None`, `NonEmpty`, `MatchString`, `MatchInteger`, `MatchTrue`,
    /// `MatchFalse` or `MatchCondition`.
    #[serde(rename = "type")]
    pub type_: ReadinessCheckType,

    /// Field path on the composed resource that the check reads, e.g.
    /// `status.atProvider.state`. Required by all types except `None` and `MatchCondition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,

    /// Value the field must equal, for `MatchString`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_string: Option<String>,

    /// Value the field must equal, for `MatchInteger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = crate::api::schema::INT64_MIN, max = crate::api::schema::INT64_MAX))]
    pub match_integer: Option<i64>,

    /// Condition to match, for `MatchCondition`; defaults to type `Ready`, status `True`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_condition: Option<MatchConditionReadinessCheck>,
}

fn default_condition_type() -> String {
    "Ready".to_string()
}

fn default_condition_status() -> String {
    "True".to_string()
}

/// A condition that a composed resource must have.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchConditionReadinessCheck {
    /// Condition type, e.g. `Ready` (the default) or `Synced`.
    #[serde(rename = "type", default = "default_condition_type")]
    pub type_: String,

    /// Required status of the condition: `True` (the default), `False` or `Unknown`.
    #[serde(default = "default_condition_status")]
    pub status: String,
}

impl Default for MatchConditionReadinessCheck {
    fn default() -> Self {
        MatchConditionReadinessCheck {
            type_: default_condition_type(),
            status: default_condition_status(),
        }
    }
}
