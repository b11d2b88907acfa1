//! Patches between the composite and its composed resources, per Crossplane v1.
//!
//! - `FromCompositeFieldPath` (the default) and `CombineFromComposite` run at render time,
//!   from the composite to the resource about to be applied ([`apply_from_composite`]).
//! - `ToCompositeFieldPath` and `CombineToComposite` run on the observed resource, from it
//!   to the composite ([`apply_to_composite`]).
//! - `PatchSet` patches are replaced by the patches of the named set ([`expand_patches`]).
//!
//! A missing source field (or `null`) skips the patch, unless the patch's
//! `policy.fromFieldPath` is `Required`: then it is an error. A combine patch is skipped
//! (or fails) when any of its variables is missing. A patch whose transforms produce
//! `null` (a match transform without fallback) writes nothing. Floats without fraction are
//! written as integers, as the API server serves them.

use std::fmt;

use serde_json::Value;

use super::ComposeError;
use super::fieldpath::FieldPath;
use super::limits::{MAX_VALUE_DEPTH, deeper_than};
use super::sprintf::sprintf;
use super::transform::apply_transforms;
use crate::api::composition::{CombineStrategy, ComposedTemplate, Patch, PatchSet, PatchType};

/// Where a patch comes from within a resource's `patches`, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchOrigin {
    /// Index in the resource's `patches`.
    pub index: usize,
    /// For a patch included by a `PatchSet` patch: the set's name and the index in it.
    pub patch_set: Option<(String, usize)>,
}

impl fmt::Display for PatchOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.patch_set {
            None => write!(f, "patch {}", self.index),
            Some((set, inner)) => {
                write!(f, "patch {} (patch set '{set}', patch {inner})", self.index)
            }
        }
    }
}

/// The patches of `template`, with each `PatchSet` patch replaced by the patches of its set.
pub fn expand_patches<'a>(
    template: &'a ComposedTemplate,
    patch_sets: &'a [PatchSet],
) -> Result<Vec<(PatchOrigin, &'a Patch)>, ComposeError> {
    let mut out = Vec::with_capacity(template.patches.len());
    for (index, patch) in template.patches.iter().enumerate() {
        let origin = PatchOrigin {
            index,
            patch_set: None,
        };
        if patch.patch_type() != PatchType::PatchSet {
            out.push((origin, patch));
            continue;
        }
        let fail = |reason: String| ComposeError::Patch {
            resource: template.name.clone(),
            patch: origin.clone(),
            error: Box::new(ComposeError::invalid_patch(reason)),
        };
        let name = patch
            .patch_set_name
            .as_deref()
            .ok_or_else(|| fail("type PatchSet requires patchSetName".to_string()))?;
        let set = patch_sets
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| fail(format!("patch set '{name}' is not defined in patchSets")))?;
        for (inner, p) in set.patches.iter().enumerate() {
            if p.patch_type() == PatchType::PatchSet {
                return Err(fail(format!(
                    "patch set '{name}' contains a PatchSet patch (index {inner}); patch sets cannot be nested"
                )));
            }
            let origin = PatchOrigin {
                index,
                patch_set: Some((name.to_string(), inner)),
            };
            out.push((origin, p));
        }
    }
    Ok(out)
}

/// Applies the `FromCompositeFieldPath` and `CombineFromComposite` patches of `template`
/// (including those of its patch sets) from `composite` to `resource`.
pub fn apply_from_composite(
    template: &ComposedTemplate,
    patch_sets: &[PatchSet],
    composite: &Value,
    resource: &mut Value,
) -> Result<(), ComposeError> {
    apply_matching(
        template,
        patch_sets,
        &[
            PatchType::FromCompositeFieldPath,
            PatchType::CombineFromComposite,
        ],
        composite,
        resource,
    )
}

/// Applies the `ToCompositeFieldPath` and `CombineToComposite` patches of `template`
/// (including those of its patch sets) from the `observed` composed resource to `composite`.
pub fn apply_to_composite(
    template: &ComposedTemplate,
    patch_sets: &[PatchSet],
    observed: &Value,
    composite: &mut Value,
) -> Result<(), ComposeError> {
    apply_matching(
        template,
        patch_sets,
        &[
            PatchType::ToCompositeFieldPath,
            PatchType::CombineToComposite,
        ],
        observed,
        composite,
    )
}

fn apply_matching(
    template: &ComposedTemplate,
    patch_sets: &[PatchSet],
    types: &[PatchType],
    from: &Value,
    to: &mut Value,
) -> Result<(), ComposeError> {
    for (origin, patch) in expand_patches(template, patch_sets)? {
        if !types.contains(&patch.patch_type()) {
            continue;
        }
        apply_patch(patch, from, to).map_err(|error| ComposeError::Patch {
            resource: template.name.clone(),
            patch: origin,
            error: Box::new(error),
        })?;
    }
    Ok(())
}

/// Applies one patch, reading from `from` and writing to `to`, whatever its direction: the
/// caller passes the composite and the resource in the order the patch type implies.
pub fn apply_patch(patch: &Patch, from: &Value, to: &mut Value) -> Result<(), ComposeError> {
    let ty = patch.patch_type();
    match ty {
        PatchType::FromCompositeFieldPath | PatchType::ToCompositeFieldPath => {
            let source = patch.from_field_path.as_deref().ok_or_else(|| {
                ComposeError::invalid_patch(format!("type {ty:?} requires fromFieldPath"))
            })?;
            let target = FieldPath::parse(patch.target_field_path().unwrap_or(source))?;
            let Some(value) = FieldPath::parse(source)?.get(from)? else {
                return missing(patch, source);
            };
            check_depth(value).map_err(|e| at_field(source, e))?;
            let value = apply_transforms(&patch.transforms, value.clone())
                .map_err(|e| at_field(source, e))?;
            write(patch, &target, value, to)
        }
        PatchType::CombineFromComposite | PatchType::CombineToComposite => {
            let combine = patch.combine.as_ref().ok_or_else(|| {
                ComposeError::invalid_patch(format!("type {ty:?} requires combine"))
            })?;
            let target = patch.to_field_path.as_deref().ok_or_else(|| {
                ComposeError::invalid_patch(format!("type {ty:?} requires toFieldPath"))
            })?;
            let target = FieldPath::parse(target)?;
            if combine.variables.is_empty() {
                return Err(ComposeError::invalid_patch(
                    "combine requires at least one variable",
                ));
            }
            let mut values = Vec::with_capacity(combine.variables.len());
            for variable in &combine.variables {
                match FieldPath::parse(&variable.from_field_path)?.get(from)? {
                    Some(v) => {
                        check_depth(v).map_err(|e| at_field(&variable.from_field_path, e))?;
                        values.push(v)
                    }
                    None => return missing(patch, &variable.from_field_path),
                }
            }
            let combined = match combine.strategy {
                CombineStrategy::String => {
                    let fmt = combine
                        .string
                        .as_ref()
                        .map(|s| s.fmt.as_str())
                        .ok_or_else(|| {
                            ComposeError::invalid_patch(
                                "combine strategy string requires string.fmt",
                            )
                        })?;
                    let text = sprintf(fmt, &values)
                        .map_err(|e| at_field(target.as_str(), ComposeError::invalid_patch(e)))?;
                    Value::String(text)
                }
            };
            let value = apply_transforms(&patch.transforms, combined)
                .map_err(|e| at_field(target.as_str(), e))?;
            write(patch, &target, value, to)
        }
        PatchType::PatchSet => Err(ComposeError::invalid_patch(
            "a PatchSet patch must be expanded before it is applied",
        )),
    }
}

/// Refuses a source value nested deeper than [`MAX_VALUE_DEPTH`]: formatting and merging
/// recurse once per level.
fn check_depth(value: &Value) -> Result<(), ComposeError> {
    if deeper_than(value, MAX_VALUE_DEPTH) {
        return Err(ComposeError::invalid_patch(format!(
            "the value nests deeper than the limit of {MAX_VALUE_DEPTH} levels"
        )));
    }
    Ok(())
}

fn at_field(path: &str, error: ComposeError) -> ComposeError {
    ComposeError::AtField {
        path: path.to_string(),
        error: Box::new(error),
    }
}

fn missing(patch: &Patch, path: &str) -> Result<(), ComposeError> {
    if patch.is_required() {
        Err(ComposeError::RequiredFieldMissing {
            path: path.to_string(),
        })
    } else {
        Ok(())
    }
}

fn write(
    patch: &Patch,
    target: &FieldPath,
    value: Value,
    to: &mut Value,
) -> Result<(), ComposeError> {
    if value.is_null() {
        return Ok(());
    }
    target.merge(
        to,
        integral_floats_as_integers(value),
        patch.merge_options(),
    )
}

/// Writes floats without fraction (e.g. `2.0` from a quantity conversion) as integers: the
/// API server serves them that way (as Crossplane writes them), so a rendered object
/// compares equal to its observed copy and no needless update is made.
fn integral_floats_as_integers(value: Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => {
                Value::from(f as i64)
            }
            _ => Value::Number(n),
        },
        Value::Array(items) => {
            Value::Array(items.into_iter().map(integral_floats_as_integers).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, integral_floats_as_integers(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests;
