//! One reconcile of a composite that is not being deleted: select the Composition and
//! revision, render, apply what changed (honouring `dependsOn`), collect garbage, observe,
//! publish the connection Secret, and record the references in the composite's spec.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use tracing::debug;

use super::children::{self, KindInfo};
use super::error::Error;
use super::plan::{ObjectKey, creation_blockers, garbage, needs_apply};
use super::select::{
    ResourceRef, XrSpec, connection_target, select_composition, select_revision, update_policy,
};
use super::status::{EventSpec, StatusUpdate};
use super::{Ctx, status};
use crate::api::common::ConnectionDetails;
use crate::api::composition::{
    ComposedTemplate, Composition, CompositionRevision, CompositionSpec, ConnectionDetailType,
};
use crate::compose::{ObservedResource, RenderedResource, dependency_order, is_ready, observe};
use crate::managed::secret;
use crate::scaffold::now;

/// What a reconcile found and did, for the status write.
#[derive(Debug, Default)]
pub(super) struct Report {
    /// Conditions and observed status (generation and Synced are filled by the caller).
    pub status: StatusUpdate,
    /// Everything that went wrong; the first one is the `Synced` message.
    pub errors: Vec<Error>,
    /// Composed resources created or deleted.
    pub events: Vec<EventSpec>,
}

/// The references recorded in the composite's spec.
#[derive(Clone, Debug, PartialEq)]
struct SpecRefs {
    composition: Option<String>,
    revision: Option<String>,
    resources: Vec<ResourceRef>,
}

impl SpecRefs {
    fn of(spec: &XrSpec) -> Self {
        SpecRefs {
            composition: spec.composition_ref.as_ref().map(|r| r.name.clone()),
            revision: spec
                .composition_revision_ref
                .as_ref()
                .map(|r| r.name.clone()),
            resources: spec.resource_refs.clone(),
        }
    }
}

/// Reconciles composite `xr` (as JSON: `xr_json`) towards its Composition.
pub(super) async fn sync(xr: &DynamicObject, xr_json: &Value, ctx: &Ctx) -> Report {
    let mut report = Report::default();
    let spec: XrSpec =
        match serde_json::from_value(xr_json.get("spec").cloned().unwrap_or(json!({}))) {
            Ok(spec) => spec,
            Err(e) => {
                report.errors.push(Error::ReadSpec(e));
                return report;
            }
        };
    let compositions: Vec<Arc<Composition>> = ctx.compositions.state();
    let revisions: Vec<Arc<CompositionRevision>> = ctx.revisions.state();
    let chosen = choose(&spec, ctx, &compositions, &revisions);
    let (comp, rev) = match chosen {
        Ok(chosen) => chosen,
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    let current = SpecRefs::of(&spec);
    let mut refs = SpecRefs {
        composition: Some(comp.name_any()),
        revision: rev.map(|r| r.name_any()),
        resources: current.resources.clone(),
    };
    let composition = rev.map_or(&comp.spec, |r| &r.spec.composition);
    if let Err(e) = compose(xr, xr_json, &spec, composition, ctx, &mut refs, &mut report).await {
        report.errors.insert(0, e);
    }
    if refs != current
        && let Err(e) = write_refs(xr, ctx, &refs).await
    {
        report.errors.push(e);
    }
    report
}

fn choose<'a>(
    spec: &XrSpec,
    ctx: &Ctx,
    compositions: &'a [Arc<Composition>],
    revisions: &'a [Arc<CompositionRevision>],
) -> Result<(&'a Composition, Option<&'a CompositionRevision>), Error> {
    let comps: Vec<&Composition> = compositions.iter().map(AsRef::as_ref).collect();
    let comp = select_composition(spec, &ctx.xrd.spec, &ctx.xr_type, &comps)?;
    let revs: Vec<&CompositionRevision> = revisions.iter().map(AsRef::as_ref).collect();
    let current = spec
        .composition_revision_ref
        .as_ref()
        .map(|r| r.name.as_str());
    let policy = update_policy(spec, &ctx.xrd.spec);
    let rev = select_revision(policy, current, &comp.name_any(), &revs)?;
    Ok((comp, rev))
}

/// A rendered resource with what the reconcile needs to know about it.
struct Desired<'a> {
    rendered: &'a RenderedResource,
    template: &'a ComposedTemplate,
    key: ObjectKey,
    kind: Arc<KindInfo>,
}

async fn compose(
    xr: &DynamicObject,
    xr_json: &Value,
    spec: &XrSpec,
    composition: &CompositionSpec,
    ctx: &Ctx,
    refs: &mut SpecRefs,
    report: &mut Report,
) -> Result<(), Error> {
    let rendered = crate::compose::render(xr_json, composition)?;
    let order = dependency_order(composition)?;
    let mut kinds: BTreeMap<(String, String), Arc<KindInfo>> = BTreeMap::new();
    let mut desired: BTreeMap<&str, Desired<'_>> = BTreeMap::new();
    for r in &rendered {
        let Some(template) = composition.resources.iter().find(|t| t.name == r.template) else {
            continue;
        };
        let str_at = |p: &str| {
            r.object
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let (api_version, kind) = (str_at("/apiVersion"), str_at("/kind"));
        let info = ctx
            .kinds
            .resolve(api_version, kind)
            .await
            .map_err(|source| Error::Discover {
                resource: r.template.clone(),
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                source: Box::new(source),
            })?;
        ctx.watches.ensure(&info.ar);
        kinds.insert((info.ar.group.clone(), info.ar.kind.clone()), info.clone());
        let key =
            ObjectKey::of(&r.object).ok_or_else(|| crate::compose::ComposeError::Resource {
                resource: r.template.clone(),
                reason: "rendered without apiVersion, kind or name".into(),
            })?;
        desired.insert(
            &r.template,
            Desired {
                rendered: r,
                template,
                key,
                kind: info,
            },
        );
    }
    // Kinds recorded earlier but no longer rendered, so their resources are collected.
    for rr in &spec.resource_refs {
        match ctx.kinds.resolve(&rr.api_version, &rr.kind).await {
            Ok(info) => {
                kinds.insert((info.ar.group.clone(), info.ar.kind.clone()), info);
            }
            Err(e) => {
                debug!(kind = %rr.kind, error = %e, "kind of a recorded resource is not served")
            }
        }
    }
    let uid = xr.uid().unwrap_or_default();
    let mut live: BTreeMap<ObjectKey, Value> = BTreeMap::new();
    for (obj, _) in ctx.owned_children(xr, kinds.values()).await? {
        let value = serde_json::to_value(&obj).unwrap_or_default();
        if let Some(key) = ObjectKey::of(&value) {
            live.insert(key, value);
        }
    }

    let mut ready: BTreeMap<String, bool> = BTreeMap::new();
    for d in desired.values() {
        if let Some(obj) = live.get(&d.key) {
            ready.insert(d.template.name.clone(), is_ready(d.template, obj)?);
        }
    }
    let manager = format!("{}/composite/{}", ctx.opts.field_manager, xr.name_any());
    for name in &order {
        let Some(d) = desired.get(name) else { continue };
        let existing = live.get(&d.key);
        if !creation_blockers(d.template, &ready, existing.is_some()).is_empty()
            || !needs_apply(&d.rendered.object, existing, &manager)
        {
            continue;
        }
        let created = existing.is_none();
        match children::apply(&ctx.client, &d.kind, &d.rendered.object, &manager).await {
            Ok(obj) => {
                let value = serde_json::to_value(&obj).unwrap_or_default();
                ready.insert(d.template.name.clone(), is_ready(d.template, &value)?);
                if created {
                    report.events.push(EventSpec::about(
                        "CreatedResource",
                        "CreateResource",
                        children::reference(&value),
                        format!(
                            "Created {} {:?} (resource '{name}')",
                            d.key.kind, d.key.name
                        ),
                    ));
                }
                live.insert(d.key.clone(), value);
            }
            Err(source) => report.errors.push(Error::Apply {
                resource: name.to_string(),
                api_version: d.rendered.object["apiVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                kind: d.key.kind.clone(),
                name: d.key.name.clone(),
                source: Box::new(source),
            }),
        }
    }

    collect_garbage(ctx, &desired, &kinds, &live, report).await;
    // Every rendered resource, also those still waiting on dependsOn: the list is known
    // from the render, and recording it once saves a spec write (and a generation bump
    // that claims wait on) per resource as they get created.
    refs.resources = rendered
        .iter()
        .filter_map(|r| desired.get(r.template.as_str()))
        .map(|d| ResourceRef {
            api_version: d.rendered.object["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            kind: d.key.kind.clone(),
            name: d.key.name.clone(),
        })
        .collect();

    let connections = read_connections(ctx, &desired, &live).await?;
    let empty = ConnectionDetails::new();
    let observed: BTreeMap<String, ObservedResource<'_>> = desired
        .values()
        .filter_map(|d| {
            let object = live.get(&d.key)?;
            let connection = connections.get(&d.template.name).unwrap_or(&empty);
            Some((
                d.template.name.clone(),
                ObservedResource { object, connection },
            ))
        })
        .collect();
    let state = observe(
        xr_json,
        composition,
        &observed,
        &ctx.xrd.spec.connection_secret_keys,
    )?;
    report.status.ready = Some(status::ready_condition(&order, &state.ready));
    report.status.patched = state.composite.get("status").cloned();

    if let Some(target) = connection_target(spec, composition, &uid)
        && !state.connection.is_empty()
    {
        let owner = OwnerReference {
            api_version: ctx.xr.api_version.clone(),
            kind: ctx.xr.kind.clone(),
            name: xr.name_any(),
            uid,
            controller: Some(true),
            block_owner_deletion: None,
        };
        let manager = format!("{}/composite", ctx.opts.field_manager);
        let written = secret::publish_owned(
            &ctx.client,
            &manager,
            Some(owner),
            &xr.name_any(),
            &target,
            &state.connection,
        )
        .await
        .map_err(|source| Error::WriteSecret {
            namespace: target.namespace.clone(),
            name: target.name.clone(),
            source: Box::new(source),
        })?;
        if written {
            report.status.published_at = Some(now());
        }
    }
    Ok(())
}

/// Deletes the composite's resources that are no longer rendered.
async fn collect_garbage(
    ctx: &Ctx,
    desired: &BTreeMap<&str, Desired<'_>>,
    kinds: &BTreeMap<(String, String), Arc<KindInfo>>,
    live: &BTreeMap<ObjectKey, Value>,
    report: &mut Report,
) {
    let rendered: BTreeSet<ObjectKey> = desired.values().map(|d| d.key.clone()).collect();
    let live_keys: Vec<ObjectKey> = live.keys().cloned().collect();
    for key in garbage(&rendered, &live_keys) {
        let obj = &live[key];
        if obj.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let Some(info) = kinds.get(&(key.group.clone(), key.kind.clone())) else {
            continue;
        };
        let Ok(dynamic) = serde_json::from_value::<DynamicObject>(obj.clone()) else {
            continue;
        };
        match children::delete(&ctx.client, info, &dynamic).await {
            Ok(()) => report.events.push(EventSpec::about(
                "DeletedResource",
                "DeleteResource",
                children::reference(obj),
                format!(
                    "Deleted {} {:?}: the composition no longer renders it",
                    key.kind, key.name
                ),
            )),
            Err(source) => report.errors.push(Error::Delete {
                kind: key.kind.clone(),
                name: key.name.clone(),
                source: Box::new(source),
            }),
        }
    }
}

/// The connection details of the composed resources whose templates read their connection
/// Secret (`FromConnectionSecretKey`), by `resources[].name`: the data of the Secret each
/// resource's `spec.writeConnectionSecretToRef` names.
async fn read_connections(
    ctx: &Ctx,
    desired: &BTreeMap<&str, Desired<'_>>,
    live: &BTreeMap<ObjectKey, Value>,
) -> Result<BTreeMap<String, ConnectionDetails>, Error> {
    let mut out = BTreeMap::new();
    for d in desired.values() {
        let reads_secret = d
            .template
            .connection_details
            .iter()
            .any(|c| c.detail_type() == Some(ConnectionDetailType::FromConnectionSecretKey));
        let target = live
            .get(&d.key)
            .and_then(|o| o.pointer("/spec/writeConnectionSecretToRef"));
        let (Some(target), true) = (target, reads_secret) else {
            continue;
        };
        let (Some(name), Some(namespace)) = (
            target.get("name").and_then(Value::as_str),
            target.get("namespace").and_then(Value::as_str),
        ) else {
            continue;
        };
        let details = children::read_secret(&ctx.client, namespace, name)
            .await
            .map_err(|source| Error::ReadSecret {
                resource: d.template.name.clone(),
                namespace: namespace.to_string(),
                name: name.to_string(),
                source: Box::new(source),
            })?;
        out.insert(d.template.name.clone(), details);
    }
    Ok(out)
}

/// Records the chosen Composition, revision and the composed resources in the
/// composite's spec (server-side apply; the composite is not owned by Git — its claim is).
async fn write_refs(xr: &DynamicObject, ctx: &Ctx, refs: &SpecRefs) -> Result<(), Error> {
    let mut spec = serde_json::Map::new();
    if let Some(c) = &refs.composition {
        spec.insert("compositionRef".into(), json!({ "name": c }));
    }
    if let Some(r) = &refs.revision {
        spec.insert("compositionRevisionRef".into(), json!({ "name": r }));
    }
    spec.insert("resourceRefs".into(), json!(refs.resources));
    let body = json!({
        "apiVersion": ctx.xr.api_version,
        "kind": ctx.xr.kind,
        "metadata": { "name": xr.name_any() },
        "spec": spec,
    });
    ctx.api()
        .patch(
            &xr.name_any(),
            &PatchParams::apply(&format!("{}/composite", ctx.opts.field_manager)).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| Error::WriteSpec {
            name: xr.name_any(),
            source: Box::new(e),
        })?;
    Ok(())
}
