//! One reconcile of a composite that is not being deleted: select the Composition and
//! revision, then let [`machine::converge`] render, apply what changed (honouring
//! `dependsOn`), collect garbage, observe, publish the connection Secret, and record the
//! references in the composite's spec.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::Ctx;
use super::cluster::Cluster;
use super::error::Error;
use super::machine::{self, Input, SpecRefs};
use super::select::{
    ANNOTATION_SELECTED_BY, SelectedBy, XrSpec, follow_selection, select_composition,
    select_revision, update_policy,
};
use crate::api::composition::{Composition, CompositionRevision};

pub(super) use super::machine::Report;

/// Reconciles composite `xr` (as JSON: `xr_json`) towards its Composition.
pub(super) async fn sync(xr: &DynamicObject, xr_json: &Value, ctx: &Ctx) -> Report {
    let spec: XrSpec =
        match serde_json::from_value(xr_json.get("spec").cloned().unwrap_or(json!({}))) {
            Ok(spec) => spec,
            Err(e) => return failed(Error::ReadSpec(e)),
        };
    let compositions: Vec<Arc<Composition>> = ctx.compositions.state();
    let revisions: Vec<Arc<CompositionRevision>> = ctx.revisions.state();
    let recorded = SelectedBy::parse(
        xr.annotations()
            .get(ANNOTATION_SELECTED_BY)
            .map(String::as_str),
    );
    let (comp, rev, selected_by) =
        match choose(&spec, recorded.as_ref(), ctx, &compositions, &revisions) {
            Ok(chosen) => chosen,
            Err(e) => return failed(e),
        };
    let cluster = Cluster { ctx, xr };
    let manager = cluster.composed_manager();
    let input = Input {
        xr: xr_json,
        spec: &spec,
        composition: rev.map_or(&comp.spec, |r| &r.spec.composition),
        chosen: SpecRefs {
            composition: Some(comp.name_any()),
            revision: rev.map(|r| r.name_any()),
            resources: Vec::new(),
            selected_by: selected_by.map(|s| s.to_annotation()),
        },
        connection_secret_keys: &ctx.xrd.spec.connection_secret_keys,
        connection_secret_type: ctx.xrd.spec.connection_secret_type.as_deref(),
        manager: &manager,
        composable: &ctx.opts.composable,
    };
    machine::converge(&input, &cluster).await
}

fn failed(error: Error) -> Report {
    Report {
        errors: vec![error],
        ..Report::default()
    }
}

/// The Composition (following a changed selection, see [`follow_selection`]), its
/// revision, and the selection to record.
type Chosen<'a> = (
    &'a Composition,
    Option<&'a CompositionRevision>,
    Option<SelectedBy>,
);

fn choose<'a>(
    spec: &XrSpec,
    recorded: Option<&SelectedBy>,
    ctx: &Ctx,
    compositions: &'a [Arc<Composition>],
    revisions: &'a [Arc<CompositionRevision>],
) -> Result<Chosen<'a>, Error> {
    let comps: Vec<&Composition> = compositions.iter().map(AsRef::as_ref).collect();
    let (comp, selected_by) = follow_selection(spec, recorded, |s| {
        select_composition(s, &ctx.xrd.spec, &ctx.xr_type, &comps)
    })?;
    let revs: Vec<&CompositionRevision> = revisions.iter().map(AsRef::as_ref).collect();
    let current = spec
        .composition_revision_ref
        .as_ref()
        .map(|r| r.name.as_str());
    let policy = update_policy(spec, &ctx.xrd.spec);
    let rev = select_revision(policy, current, &comp.name_any(), &revs)?;
    Ok((comp, rev, selected_by))
}
