//! Which Composition and which CompositionRevision a composite resource uses: pure
//! decisions over the composite's spec, its XRD, and the Compositions and revisions known.

use std::collections::BTreeMap;

use kube::ResourceExt;
use serde::{Deserialize, Serialize};

use crate::api::common::{Reference, SecretReference};
use crate::api::composition::{
    Composition, CompositionRevision, CompositionSpec, LABEL_COMPOSITION_NAME,
};
use crate::api::xrd::{CompositeResourceDefinitionSpec, CompositionUpdatePolicy, TypeReference};

/// The engine's fields of a composite resource's spec (the XRD's own fields are not read
/// here).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct XrSpec {
    /// `spec.compositionRef`: the Composition chosen (by a person, or recorded by us).
    pub composition_ref: Option<Reference>,
    /// `spec.compositionSelector`: labels a Composition must have.
    pub composition_selector: Option<CompositionSelector>,
    /// `spec.compositionRevisionRef`: the revision in use.
    pub composition_revision_ref: Option<Reference>,
    /// `spec.compositionUpdatePolicy`: whether to follow new revisions.
    pub composition_update_policy: Option<CompositionUpdatePolicy>,
    /// `spec.writeConnectionSecretToRef`: where the connection Secret goes.
    pub write_connection_secret_to_ref: Option<XrSecretReference>,
    /// `spec.resourceRefs`: the composed resources, as last recorded.
    pub resource_refs: Vec<ResourceRef>,
}

/// `spec.compositionSelector` of a composite resource.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CompositionSelector {
    /// Labels the Composition must carry, all of them.
    pub match_labels: BTreeMap<String, String>,
}

/// `spec.writeConnectionSecretToRef` of a composite resource; the namespace may be left to
/// the Composition's `writeConnectionSecretsToNamespace`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct XrSecretReference {
    /// Name of the Secret.
    pub name: String,
    /// Namespace of the Secret.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// One entry of `spec.resourceRefs`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    /// API version of the composed resource.
    pub api_version: String,
    /// Kind of the composed resource.
    pub kind: String,
    /// Name of the composed resource.
    pub name: String,
}

/// Why no Composition (or revision) could be used. The messages become the composite's
/// `Synced` condition, so they say what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// Nothing names or selects a Composition.
    #[error(
        "No composition selected for {kind}: set spec.compositionRef or spec.compositionSelector, or defaultCompositionRef in the XRD"
    )]
    NoneSelected {
        /// The composite kind.
        kind: String,
    },
    /// The selector matches no Composition of the composite's type.
    #[error("No composition matches selector {selector} for {kind}")]
    NoMatch {
        /// The selector, as `{key: value, ...}`.
        selector: String,
        /// The composite kind.
        kind: String,
    },
    /// The named Composition does not exist.
    #[error("Composition {name:?} does not exist")]
    NotFound {
        /// The Composition's name.
        name: String,
    },
    /// The named Composition composes another kind.
    #[error("Composition {name:?} is for kind {has}, not {want}")]
    WrongKind {
        /// The Composition's name.
        name: String,
        /// The kind it composes.
        has: String,
        /// The composite's kind.
        want: String,
    },
    /// The named Composition composes another version of the kind.
    #[error("Composition {name:?} is for apiVersion {has}, not {want}")]
    WrongVersion {
        /// The Composition's name.
        name: String,
        /// The apiVersion it composes.
        has: String,
        /// The composite's apiVersion.
        want: String,
    },
    /// The pinned revision does not exist.
    #[error(
        "CompositionRevision {name:?} does not exist; set spec.compositionRevisionRef to an existing revision of Composition {composition:?}"
    )]
    RevisionNotFound {
        /// The revision's name.
        name: String,
        /// The Composition in use.
        composition: String,
    },
}

/// Chooses the Composition of a composite of type `xr_type`: the XRD's
/// `enforcedCompositionRef` when set, else `spec.compositionRef`, else the first (by name)
/// Composition of the composite's type carrying all labels of `spec.compositionSelector`,
/// else the XRD's `defaultCompositionRef`. The chosen Composition must exist and compose
/// `xr_type`.
pub fn select_composition<'a>(
    spec: &XrSpec,
    xrd: &CompositeResourceDefinitionSpec,
    xr_type: &TypeReference,
    compositions: &[&'a Composition],
) -> Result<&'a Composition, SelectError> {
    let named = xrd
        .enforced_composition_ref
        .as_ref()
        .or(spec.composition_ref.as_ref());
    let name = match (named, &spec.composition_selector) {
        (Some(r), _) => r.name.clone(),
        (None, Some(selector)) => {
            let mut matching: Vec<&&Composition> = compositions
                .iter()
                .filter(|c| c.spec.composite_type_ref == *xr_type)
                .filter(|c| {
                    let labels = c.labels();
                    selector
                        .match_labels
                        .iter()
                        .all(|(k, v)| labels.get(k) == Some(v))
                })
                .collect();
            matching.sort_by_key(|c| c.name_any());
            return matching
                .first()
                .map(|c| **c)
                .ok_or_else(|| SelectError::NoMatch {
                    selector: format_labels(&selector.match_labels),
                    kind: xr_type.kind.clone(),
                });
        }
        (None, None) => match &xrd.default_composition_ref {
            Some(r) => r.name.clone(),
            None => {
                return Err(SelectError::NoneSelected {
                    kind: xr_type.kind.clone(),
                });
            }
        },
    };
    let comp = compositions
        .iter()
        .find(|c| c.name_any() == name)
        .ok_or_else(|| SelectError::NotFound { name: name.clone() })?;
    let has = &comp.spec.composite_type_ref;
    if has.kind != xr_type.kind {
        return Err(SelectError::WrongKind {
            name,
            has: has.kind.clone(),
            want: xr_type.kind.clone(),
        });
    }
    if has.api_version != xr_type.api_version {
        return Err(SelectError::WrongVersion {
            name,
            has: has.api_version.clone(),
            want: xr_type.api_version.clone(),
        });
    }
    Ok(comp)
}

/// Annotation of a composite resource: which selection chose its recorded
/// `spec.compositionRef` (see [`SelectedBy`]). With it, a composite whose selector
/// changes (a claim moved from `postgres-shared` to `postgres-rds` by its
/// `compositionSelector` alone) selects again instead of keeping the Composition it
/// recorded.
pub const ANNOTATION_SELECTED_BY: &str = "tessera.dev/composition-selected-by";

/// The value of [`ANNOTATION_SELECTED_BY`]: the Composition chosen and the selection that
/// chose it: the labels of `spec.compositionSelector` (`None`: none, so the XRD's
/// default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectedBy {
    /// The Composition chosen.
    pub composition: String,
    /// `spec.compositionSelector.matchLabels` when it was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
}

impl SelectedBy {
    /// Parses the annotation; `None` when absent or not ours (then the recorded
    /// `compositionRef` counts as a person's choice and is kept).
    pub fn parse(annotation: Option<&str>) -> Option<SelectedBy> {
        serde_json::from_str(annotation?).ok()
    }

    /// The annotation's value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// How a composite's Composition is chosen this time: the composite's `spec`, with its
/// `compositionRef` dropped when Tessera recorded it from a selection that is no longer
/// the composite's (the selector changed, was added or was removed), and what to record
/// in [`ANNOTATION_SELECTED_BY`] once `select` (e.g. [`select_composition`]) chose.
///
/// A `compositionRef` that no annotation explains (set by a person, or by the claim) is
/// kept and nothing is recorded, except when the current selection chooses that very
/// Composition (a composite recorded before the annotation existed): it is then adopted as
/// selected.
pub fn follow_selection<'a, E>(
    spec: &XrSpec,
    recorded: Option<&SelectedBy>,
    select: impl Fn(&XrSpec) -> Result<&'a Composition, E>,
) -> Result<(&'a Composition, Option<SelectedBy>), E> {
    let selector = spec
        .composition_selector
        .as_ref()
        .map(|s| s.match_labels.clone());
    let mut by_selection = XrSpec {
        composition_ref: None,
        ..spec.clone()
    };
    let record = |c: &Composition| SelectedBy {
        composition: c.name_any(),
        selector: selector.clone(),
    };
    let Some(current) = &spec.composition_ref else {
        let chosen = select(&by_selection)?;
        return Ok((chosen, Some(record(chosen))));
    };
    let ours = recorded.filter(|r| r.composition == current.name);
    match ours {
        Some(r) if r.selector == selector => {
            let chosen = select(spec)?;
            Ok((chosen, Some(record(chosen))))
        }
        Some(_) => {
            // The selection changed since Tessera recorded this Composition: choose again.
            by_selection.composition_revision_ref = None;
            let chosen = select(&by_selection)?;
            Ok((chosen, Some(record(chosen))))
        }
        None => {
            let chosen = select(spec)?;
            let adopted = select(&by_selection)
                .ok()
                .filter(|c| c.name_any() == current.name)
                .map(record);
            Ok((chosen, adopted))
        }
    }
}

/// `{key: value, other: value}`, keys in order.
fn format_labels(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// The update policy of a composite: its own `compositionUpdatePolicy`, else the XRD's
/// default, else `Automatic`.
pub fn update_policy(
    spec: &XrSpec,
    xrd: &CompositeResourceDefinitionSpec,
) -> CompositionUpdatePolicy {
    spec.composition_update_policy
        .unwrap_or_else(|| xrd.update_policy())
}

/// Chooses the revision of Composition `composition` to render from, among all known
/// `revisions`: with `Automatic` the newest; with `Manual` the pinned `current` one, or
/// the newest when nothing (or a revision of another Composition) is pinned. `None` while
/// the Composition has no revision yet: render from the Composition itself.
pub fn select_revision<'a>(
    policy: CompositionUpdatePolicy,
    current: Option<&str>,
    composition: &str,
    revisions: &[&'a CompositionRevision],
) -> Result<Option<&'a CompositionRevision>, SelectError> {
    let of_composition = |r: &&&CompositionRevision| {
        r.labels().get(LABEL_COMPOSITION_NAME).map(String::as_str) == Some(composition)
    };
    let newest = revisions
        .iter()
        .filter(of_composition)
        .max_by_key(|r| r.spec.revision)
        .copied();
    if policy == CompositionUpdatePolicy::Automatic {
        return Ok(newest);
    }
    let Some(current) = current.filter(|c| !c.is_empty()) else {
        return Ok(newest);
    };
    match revisions.iter().find(|r| r.name_any() == current) {
        Some(r) if of_composition(&r) => Ok(Some(*r)),
        // The composite moved to another Composition: its pin no longer applies.
        Some(_) => Ok(newest),
        None => Err(SelectError::RevisionNotFound {
            name: current.to_string(),
            composition: composition.to_string(),
        }),
    }
}

/// Where the composite's connection Secret goes: `spec.writeConnectionSecretToRef`, its
/// namespace defaulting to the Composition's `writeConnectionSecretsToNamespace`; without a
/// reference, a Secret named after the composite's uid in that namespace (as in
/// Crossplane); `None` when neither says where.
pub fn connection_target(
    spec: &XrSpec,
    composition: &CompositionSpec,
    uid: &str,
) -> Option<SecretReference> {
    let default_ns = composition.write_connection_secrets_to_namespace.as_ref();
    match &spec.write_connection_secret_to_ref {
        Some(r) => Some(SecretReference {
            name: r.name.clone(),
            namespace: r
                .namespace
                .as_ref()
                .filter(|n| !n.is_empty())
                .or(default_ns)?
                .clone(),
        }),
        None => default_ns.map(|ns| SecretReference {
            name: uid.to_string(),
            namespace: ns.clone(),
        }),
    }
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
