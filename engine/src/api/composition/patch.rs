//! Patches: how values flow from the composite to a composed resource and back.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Transform;

/// A named list of patches that resources can include with a `PatchSet` patch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchSet {
    /// Name of the set, referred to by `patchSetName`.
    pub name: String,

    /// The patches of the set. They may not be of type `PatchSet` themselves.
    pub patches: Vec<Patch>,
}

/// The kind of a patch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum PatchType {
    /// Copy a field of the composite to the composed resource (the default).
    #[default]
    FromCompositeFieldPath,
    /// Include the patches of a patch set.
    PatchSet,
    /// Copy a field of the observed composed resource to the composite.
    ToCompositeFieldPath,
    /// Combine several fields of the composite into one field of the composed resource.
    CombineFromComposite,
    /// Combine several fields of the observed composed resource into one field of the composite.
    CombineToComposite,
}

/// A patch: copies (and optionally transforms) a value between the composite and one
/// composed resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Patch {
    /// What the patch does: `FromCompositeFieldPath` (the default), `ToCompositeFieldPath`,
    /// `CombineFromComposite`, `CombineToComposite` or `PatchSet`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<PatchType>,

    /// Field path to read from: on the composite for `FromCompositeFieldPath`, on the
    /// composed resource for `ToCompositeFieldPath`, e.g. `spec.parameters.size` or
    /// `metadata.annotations[example.org/owner]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_field_path: Option<String>,

    /// How to combine several values into one, for `CombineFromComposite` and
    /// `CombineToComposite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine: Option<Combine>,

    /// Field path to write to. Defaults to `fromFieldPath`; required for the combine types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_field_path: Option<String>,

    /// Name of the patch set to include, for `PatchSet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_set_name: Option<String>,

    /// Transforms applied in order to the value before it is written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,

    /// What to do when the source field is missing, and how to merge into the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PatchPolicy>,
}

impl Patch {
    /// The patch's type, `FromCompositeFieldPath` when omitted.
    pub fn patch_type(&self) -> PatchType {
        self.type_.unwrap_or_default()
    }

    /// The target field path: `toFieldPath`, or `fromFieldPath` when omitted.
    pub fn target_field_path(&self) -> Option<&str> {
        self.to_field_path
            .as_deref()
            .or(self.from_field_path.as_deref())
    }

    /// Whether a missing source field is an error (`policy.fromFieldPath: Required`).
    pub fn is_required(&self) -> bool {
        self.policy
            .as_ref()
            .and_then(|p| p.from_field_path)
            .is_some_and(|p| p == FromFieldPathPolicy::Required)
    }

    /// The merge options of the patch, if any.
    pub fn merge_options(&self) -> Option<&MergeOptions> {
        self.policy.as_ref().and_then(|p| p.merge_options.as_ref())
    }
}

/// How a patch behaves when its source is missing and how it writes its target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchPolicy {
    /// `Optional` (the default) skips the patch when the source field is missing;
    /// `Required` makes the composite fail with a message naming the missing field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_field_path: Option<FromFieldPathPolicy>,

    /// How the value is merged into an existing target value instead of replacing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_options: Option<MergeOptions>,
}

/// Whether a patch's source field must exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum FromFieldPathPolicy {
    /// Skip the patch when the source field is missing.
    #[default]
    Optional,
    /// Fail when the source field is missing.
    Required,
}

/// How a patched value is merged into the value already at the target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MergeOptions {
    /// Append the patched list to the target list instead of replacing it; items already
    /// in the target list are not added twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append_slice: Option<bool>,

    /// Merge the patched object into the target object, keeping the target's values for
    /// keys present in both, instead of replacing the target object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_map_values: Option<bool>,
}

/// Combines several input values into one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Combine {
    /// The input values, in order. If any of them is missing, the patch is skipped (or
    /// fails, when its policy is `Required`).
    pub variables: Vec<CombineVariable>,

    /// How the values are combined. Only `string` is supported.
    pub strategy: CombineStrategy,

    /// Settings of the `string` strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<StringCombine>,
}

/// One input of a combine patch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CombineVariable {
    /// Field path of the value, on the composite (`CombineFromComposite`) or the
    /// composed resource (`CombineToComposite`).
    pub from_field_path: String,
}

/// The strategy of a combine patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum CombineStrategy {
    /// Format the values into a string with `string.fmt`.
    #[serde(rename = "string")]
    String,
}

/// Combines values into a string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StringCombine {
    /// Go-style format string with one verb per variable, e.g. `%s-%s` or
    /// `postgres://%s:%d`. Supported verbs: `%s`, `%v`, `%d`, `%f`, `%t`, `%q`, `%x`, `%%`.
    pub fmt: String,
}
