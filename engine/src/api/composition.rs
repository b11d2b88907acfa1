//! `Composition` and `CompositionRevision`: how a composite resource is turned into
//! composed (managed) resources, in Crossplane v1's patch-and-transform form.
//!
//! The field names and casing follow Crossplane's `apiextensions.crossplane.io/v1`, so an
//! existing Composition ports by changing its apiVersion. The types of patches,
//! transforms, readiness checks and connection details live in submodules and are
//! re-exported here.

mod connection;
mod patch;
mod readiness;
mod transform;

pub use connection::{ConnectionDetail, ConnectionDetailType};
pub use patch::{
    Combine, CombineStrategy, CombineVariable, FromFieldPathPolicy, MergeOptions, Patch,
    PatchPolicy, PatchSet, PatchType, StringCombine,
};
pub use readiness::{MatchConditionReadinessCheck, ReadinessCheck, ReadinessCheckType};
pub use transform::{
    ConvertTransform, ConvertTransformFormat, MapTransform, MatchFallbackTo, MatchTransform,
    MatchTransformPattern, MatchTransformPatternType, MathTransform, MathTransformType,
    StringConversionType, StringTransform, StringTransformJoin, StringTransformRegexp,
    StringTransformType, Transform, TransformIoType, TransformType,
};

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Condition;
use super::xrd::TypeReference;

/// Label on a CompositionRevision: the name of the Composition it snapshots.
pub const LABEL_COMPOSITION_NAME: &str = "tessera.dev/composition-name";
/// Label on a CompositionRevision: a hash of the Composition spec it snapshots.
pub const LABEL_COMPOSITION_HASH: &str = "tessera.dev/composition-hash";

/// The desired state of a Composition.
// kube's repeated `printcolumn(type_ = ...)` trips this lint.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apiextensions.tessera.dev",
    version = "v1",
    kind = "Composition",
    plural = "compositions",
    singular = "composition",
    shortname = "comp",
    category = "tessera",
    status = "CompositionStatus",
    derive = "PartialEq",
    doc = "A Composition describes how a composite resource of one kind is turned into \
           composed resources: which resources to create, and how values flow between them \
           and the composite (patches, transforms, connection details, readiness checks).",
    printcolumn(
        name = "XR-KIND",
        type_ = "string",
        json_path = ".spec.compositeTypeRef.kind"
    ),
    printcolumn(
        name = "XR-APIVERSION",
        type_ = "string",
        json_path = ".spec.compositeTypeRef.apiVersion"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CompositionSpec {
    /// The kind of composite resource this Composition composes, e.g. apiVersion
    /// `platform.example.org/v1alpha1`, kind `XPostgresDatabase`. Must match the
    /// referenceable version of an XRD.
    pub composite_type_ref: TypeReference,

    /// Named lists of patches that resources can include with a patch of type `PatchSet`,
    /// so that common patches are written once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patch_sets: Vec<PatchSet>,

    /// The resources to create for each composite resource. Each is rendered from its
    /// `base` with its `patches` applied.
    #[serde(default)]
    pub resources: Vec<ComposedTemplate>,

    /// Namespace of the connection Secret of each composite resource that uses this
    /// Composition. A claim's own connection Secret is always written in the claim's
    /// namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_connection_secrets_to_namespace: Option<String>,
}

/// One resource to compose: a base object plus the patches that customise it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComposedTemplate {
    /// Name of this entry, unique within the Composition, e.g. `role`. It identifies the
    /// composed resource across changes to the Composition, appears in error messages
    /// and in the composed resource's default name `<composite name>-<name>`.
    pub name: String,

    /// The resource to create, as a complete Kubernetes object with apiVersion and kind.
    /// Patches are applied on top of it.
    #[schemars(schema_with = "super::schema::preserve_unknown_object")]
    pub base: serde_json::Value,

    /// Patches applied to `base` (values from the composite) and from the observed
    /// resource back to the composite (`ToCompositeFieldPath`, `CombineToComposite`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,

    /// Connection details this resource contributes to the composite resource's
    /// connection Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection_details: Vec<ConnectionDetail>,

    /// Checks that all have to pass for this resource to count as ready. When empty, the
    /// resource is ready when its `Ready` condition is `True`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readiness_checks: Vec<ReadinessCheck>,

    /// Names of other resources of this Composition that must be ready before this one is
    /// created. Deletion runs in the reverse order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// The observed state of a Composition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositionStatus {
    /// Conditions of the Composition, e.g. whether it is valid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The generation of the Composition that the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = crate::api::schema::INT64_MAX))]
    pub observed_generation: Option<i64>,
}

/// An immutable, numbered snapshot of a Composition's spec.
// kube's repeated `printcolumn(type_ = ...)` trips this lint.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apiextensions.tessera.dev",
    version = "v1",
    kind = "CompositionRevision",
    plural = "compositionrevisions",
    singular = "compositionrevision",
    shortname = "comprev",
    category = "tessera",
    status = "CompositionRevisionStatus",
    derive = "PartialEq",
    doc = "A CompositionRevision is an immutable, numbered snapshot of a Composition. \
           Composite resources use a revision, so that changing a Composition does not \
           change existing resources unless their update policy is Automatic.",
    printcolumn(name = "REVISION", type_ = "integer", json_path = ".spec.revision"),
    printcolumn(
        name = "XR-KIND",
        type_ = "string",
        json_path = ".spec.compositeTypeRef.kind"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CompositionRevisionSpec {
    /// The Composition spec at the time of this revision.
    #[serde(flatten)]
    pub composition: CompositionSpec,

    /// Number of this revision; each change of the Composition's spec creates a revision
    /// numbered one higher than the newest before it.
    #[schemars(range(min = 0, max = crate::api::schema::INT64_MAX))]
    pub revision: i64,
}

/// The observed state of a CompositionRevision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositionRevisionStatus {
    /// Conditions of the revision, e.g. whether it is valid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl ComposedTemplate {
    /// The patches of this resource with every `PatchSet` patch replaced by the patches of
    /// the named set. Fails on an unknown set name, a missing `patchSetName`, or a set that
    /// itself contains a `PatchSet` patch.
    pub fn expanded_patches<'a>(
        &'a self,
        patch_sets: &'a [PatchSet],
    ) -> Result<Vec<&'a Patch>, PatchSetError> {
        let mut out = Vec::with_capacity(self.patches.len());
        for (index, p) in self.patches.iter().enumerate() {
            if p.patch_type() != PatchType::PatchSet {
                out.push(p);
                continue;
            }
            let name = p
                .patch_set_name
                .as_deref()
                .ok_or(PatchSetError::MissingName { index })?;
            let set = patch_sets.iter().find(|s| s.name == name).ok_or_else(|| {
                PatchSetError::Unknown {
                    index,
                    name: name.to_string(),
                }
            })?;
            for inner in &set.patches {
                if inner.patch_type() == PatchType::PatchSet {
                    return Err(PatchSetError::Nested {
                        name: name.to_string(),
                    });
                }
                out.push(inner);
            }
        }
        Ok(out)
    }
}

/// Why the patch sets of a resource could not be expanded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchSetError {
    /// A `PatchSet` patch without `patchSetName`.
    #[error("patch {index} is of type PatchSet but has no patchSetName")]
    MissingName {
        /// Index of the patch in the resource's patches.
        index: usize,
    },
    /// A `PatchSet` patch naming a set that does not exist.
    #[error("patch {index} refers to patch set {name:?}, which is not defined in patchSets")]
    Unknown {
        /// Index of the patch in the resource's patches.
        index: usize,
        /// The missing set's name.
        name: String,
    },
    /// A patch set containing a `PatchSet` patch.
    #[error("patch set {name:?} contains a patch of type PatchSet, which is not allowed")]
    Nested {
        /// The offending set's name.
        name: String,
    },
}

#[cfg(test)]
pub(crate) mod tests;
