//! Deleting a composite: its composed resources are deleted in reverse `dependsOn` order,
//! each layer gone before the next is deleted, and only then does the finalizer go.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::ResourceExt;
use kube::api::DynamicObject;

use super::Ctx;
use super::children::{self, KindInfo};
use super::error::Error;
use super::plan::deletable_now;
use super::select::XrSpec;
use super::status::EventSpec;
use crate::api::composition::CompositionSpec;
use crate::compose::{ANNOTATION_COMPOSITION_RESOURCE_NAME, dependency_order};

/// Where the deletion of a composite's resources stands.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// The composed resources still there (by `resources[].name`), in the Composition's order.
    pub remaining: Vec<String>,
    /// Deletions that failed.
    pub errors: Vec<Error>,
    /// Deletions started.
    pub events: Vec<EventSpec>,
}

/// Deletes the composed resources of `xr` that may go now; `remaining` is empty once all
/// are gone.
pub(super) async fn delete_composed(
    xr: &DynamicObject,
    spec: &XrSpec,
    ctx: &Ctx,
) -> Result<Progress, Error> {
    let composition = composition_of(spec, ctx);
    let (order, depends_on) = match composition.as_ref().map(|c| (c, dependency_order(c))) {
        Some((c, Ok(order))) => (
            order.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            c.resources
                .iter()
                .map(|r| (r.name.clone(), r.depends_on.clone()))
                .collect::<BTreeMap<_, _>>(),
        ),
        // Without a (valid) Composition there is no order to keep: delete all at once.
        _ => (Vec::new(), BTreeMap::new()),
    };

    let mut kinds: BTreeMap<(String, String), Arc<KindInfo>> = BTreeMap::new();
    let mut wanted: BTreeSet<(String, String)> = spec
        .resource_refs
        .iter()
        .map(|r| (r.api_version.clone(), r.kind.clone()))
        .collect();
    for r in composition.iter().flat_map(|c| &c.resources) {
        let str_at = |k: &str| r.base.get(k).and_then(serde_json::Value::as_str);
        if let (Some(api_version), Some(kind)) = (str_at("apiVersion"), str_at("kind")) {
            wanted.insert((api_version.to_string(), kind.to_string()));
        }
    }
    for (api_version, kind) in wanted {
        // A kind no longer served has no objects left to delete.
        if let Ok(info) = ctx.kinds.resolve(&api_version, &kind).await {
            kinds.insert((info.ar.group.clone(), info.ar.kind.clone()), info);
        }
    }

    let mut live: Vec<(String, DynamicObject, Arc<KindInfo>)> = Vec::new();
    for (obj, info) in ctx.owned_children(xr, kinds.values()).await? {
        let template = obj
            .annotations()
            .get(ANNOTATION_COMPOSITION_RESOURCE_NAME)
            .cloned()
            .unwrap_or_else(|| format!("{}/{}", info.ar.kind, obj.name_any()));
        live.push((template, obj, info));
    }

    let names: BTreeSet<String> = live.iter().map(|(t, _, _)| t.clone()).collect();
    let now = deletable_now(&depends_on, &names);
    let mut progress = Progress {
        remaining: in_order(&order, &names),
        ..Progress::default()
    };
    for (template, obj, info) in &live {
        if !now.contains(template.as_str()) || obj.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let kind = &info.ar.kind;
        match children::delete(&ctx.client, info, obj).await {
            Ok(()) => progress.events.push(EventSpec::about(
                "DeletingResource",
                "DeleteResource",
                children::reference(&serde_json::to_value(obj).unwrap_or_default()),
                format!(
                    "Deleting {kind} {:?} (resource '{template}')",
                    obj.name_any()
                ),
            )),
            Err(source) => progress.errors.push(Error::Delete {
                kind: kind.clone(),
                name: obj.name_any(),
                source: Box::new(source),
            }),
        }
    }
    Ok(progress)
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

/// `names` in `order`, those not in `order` last.
fn in_order(order: &[String], names: &BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = order
        .iter()
        .filter(|n| names.contains(*n))
        .cloned()
        .collect();
    out.extend(names.iter().filter(|n| !order.contains(n)).cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_resources_are_listed_in_composition_order() {
        let order: Vec<String> = ["role", "database", "grant"].map(String::from).to_vec();
        let names: BTreeSet<String> = ["grant", "role", "Role/stray"].map(String::from).into();
        assert_eq!(in_order(&order, &names), ["role", "grant", "Role/stray"]);
    }
}
