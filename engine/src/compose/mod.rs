//! The composition functions, as pure code: no Kubernetes I/O, no async.
//!
//! ```text
//!   composite ──render()──────────────▶ composed resources to apply
//!      ▲        base + FromComposite       (name, labels, owner reference)
//!      │        patches + metadata
//!      │
//!      └──observe()◀──────────────────── observed composed resources
//!         ToComposite patches,              + their connection details
//!         connection details, readiness
//! ```
//!
//! [`render()`] turns a composite resource and a Composition into the objects the
//! composite reconciler applies; [`observe()`] turns what the reconciler observed back into
//! the composite's patched state, its connection details and its readiness. Both run the
//! same building blocks, each in its own module:
//!
//! - [`fieldpath`]: Crossplane field paths (`spec.items[0].name`,
//!   `metadata.annotations[example.org/owner]`): get, set, delete, merge.
//! - [`transform`]: `map`, `match`, `math`, `string`, `convert`.
//! - [`patch`]: the patch types, patch sets, policies and merge options.
//! - [`readiness`]: readiness checks.
//! - [`connection`]: connection details and their filtering by the XRD's keys.
//! - [`render`]: names, labels, owner references; the composite's observed state.
//! - [`limits`]: the bounds on input sizes and depths, checked before the work they guard.
//!
//! Semantics follow Crossplane v1's patch-and-transform; where Tessera deliberately
//! differs, the item's documentation says so. Every error is a [`ComposeError`] whose
//! message names the resource, the patch / check / detail index (0-based, as in
//! `patches[2]`) and what is wrong, ready for a condition message on the claim.

pub mod connection;
pub mod fieldpath;
#[cfg(test)]
mod fuzz;
pub mod limits;
#[cfg(test)]
mod no_values_in_errors;
pub mod patch;
mod quantity;
pub mod readiness;
pub mod render;
mod sprintf;
pub mod transform;

use std::fmt;

pub use connection::{extract_connection_details, filter_connection_details};
pub use fieldpath::FieldPath;
pub use patch::{
    PatchOrigin, apply_from_composite, apply_patch, apply_to_composite, expand_patches,
};
pub use readiness::is_ready;
pub use render::{
    CompositeState, ObservedResource, RenderedResource, composed_name, dependency_order, observe,
    render,
};
pub use transform::{apply_transform, apply_transforms};

/// Annotation on every composed resource: the `resources[].name` it was rendered from.
pub const ANNOTATION_COMPOSITION_RESOURCE_NAME: &str = "tessera.dev/composition-resource-name";
/// Label on every composed resource: the name of its composite resource.
pub const LABEL_COMPOSITE: &str = "tessera.dev/composite";
/// Label on every composed resource (and its composite): the name of the claim, if any.
pub const LABEL_CLAIM_NAME: &str = "tessera.dev/claim-name";
/// Label on every composed resource (and its composite): the namespace of the claim, if any.
pub const LABEL_CLAIM_NAMESPACE: &str = "tessera.dev/claim-namespace";

/// Why composing failed. Messages are lower-case and never contain secret values; the
/// composite reconciler capitalises them for conditions.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ComposeError {
    /// A field path is malformed, or does not fit the object (e.g. indexes a string).
    #[error("field path {path:?}: {reason}")]
    FieldPath {
        /// The field path as written.
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// A patch's source field is missing and its policy is `Required`.
    #[error("field {path} is required but missing")]
    RequiredFieldMissing {
        /// The missing field's path.
        path: String,
    },

    /// A transform failed.
    #[error("transform {index} ({kind}): {reason}")]
    Transform {
        /// Index of the transform in the patch's `transforms`.
        index: usize,
        /// The transform type: `map`, `match`, `math`, `string` or `convert`.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// Handling the value of a field failed (a transform, a bound); `error` says how. The
    /// message names the field, never its value.
    #[error("field {path}: {error}")]
    AtField {
        /// The field's path: a patch's `fromFieldPath`, or a combine patch's `toFieldPath`.
        path: String,
        /// What failed.
        error: Box<ComposeError>,
    },

    /// A patch is not configured correctly (e.g. a combine patch without `toFieldPath`).
    #[error("{reason}")]
    InvalidPatch {
        /// What is wrong.
        reason: String,
    },

    /// A patch of a composed resource failed; `error` says why.
    #[error("{patch} of resource '{resource}': {error}")]
    Patch {
        /// The `resources[].name` of the composed resource.
        resource: String,
        /// Which patch failed.
        patch: PatchOrigin,
        /// Why it failed.
        error: Box<ComposeError>,
    },

    /// A readiness check failed to run (not: returned "not ready").
    #[error("readiness check {index} of resource '{resource}': {reason}")]
    ReadinessCheck {
        /// The `resources[].name` of the composed resource.
        resource: String,
        /// Index of the check in `readinessChecks`.
        index: usize,
        /// What is wrong.
        reason: String,
    },

    /// A connection detail is not configured correctly.
    #[error("connection detail {index} of resource '{resource}': {reason}")]
    ConnectionDetail {
        /// The `resources[].name` of the composed resource.
        resource: String,
        /// Index of the detail in `connectionDetails`.
        index: usize,
        /// What is wrong.
        reason: String,
    },

    /// A resource template is not usable (base, patch sets, dependencies).
    #[error("resource '{resource}': {reason}")]
    Resource {
        /// The `resources[].name` of the composed resource.
        resource: String,
        /// What is wrong.
        reason: String,
    },

    /// The composite resource itself lacks something rendering needs.
    #[error("composite resource: {reason}")]
    Composite {
        /// What is wrong.
        reason: String,
    },
}

impl ComposeError {
    /// Whether the error is (or wraps) a `Required` patch source that is missing: often a
    /// value that appears later (a status field), so callers may wait instead of alarm.
    pub fn is_required_field_missing(&self) -> bool {
        match self {
            ComposeError::RequiredFieldMissing { .. } => true,
            ComposeError::Patch { error, .. } | ComposeError::AtField { error, .. } => {
                error.is_required_field_missing()
            }
            _ => false,
        }
    }

    pub(crate) fn field_path(path: &str, reason: impl fmt::Display) -> Self {
        ComposeError::FieldPath {
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn invalid_patch(reason: impl fmt::Display) -> Self {
        ComposeError::InvalidPatch {
            reason: reason.to_string(),
        }
    }

    pub(crate) fn resource(resource: &str, reason: impl fmt::Display) -> Self {
        ComposeError::Resource {
            resource: resource.to_string(),
            reason: reason.to_string(),
        }
    }
}
