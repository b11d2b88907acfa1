//! Deleting a composite: its composed resources are deleted in reverse `dependsOn` order,
//! each layer gone before the next is deleted ([`machine::delete_composed`]), and only
//! then does the finalizer go.

use kube::ResourceExt;
use kube::api::DynamicObject;

use super::Ctx;
use super::cluster::Cluster;
use super::error::Error;
use super::machine::{self, Progress};
use super::select::XrSpec;
use crate::api::composition::CompositionSpec;

/// Deletes the composed resources of `xr` that may go now; `remaining` is empty once all
/// are gone.
pub(super) async fn delete_composed(
    xr: &DynamicObject,
    spec: &XrSpec,
    ctx: &Ctx,
) -> Result<Progress, Error> {
    let composition = composition_of(spec, ctx);
    machine::delete_composed(spec, composition.as_ref(), &Cluster { ctx, xr }).await
}

/// The Composition spec the composite was rendered from: its revision, else its
/// Composition, when they still exist.
fn composition_of(spec: &XrSpec, ctx: &Ctx) -> Option<CompositionSpec> {
    if let Some(r) = &spec.composition_revision_ref
        && let Some(rev) = ctx.revisions.find(|x| x.name_any() == r.name)
    {
        return Some(rev.spec.composition.clone());
    }
    let name = &spec.composition_ref.as_ref()?.name;
    ctx.compositions
        .find(|c| &c.name_any() == name)
        .map(|c| c.spec.clone())
}
