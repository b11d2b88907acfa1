//! Pure decisions of the composite reconciler, from what was rendered and what was observed:
//! whether the rendered kinds may be composed at all, which composed resources to apply (and which wait for their `dependsOn`), which are
//! garbage, whose connection Secrets to read, what to record in `spec.resourceRefs`, and,
//! while the composite is being deleted, which resources may go now.
//!
//! [`super::machine`] carries these decisions out through its `Effects`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::select::ResourceRef;
use crate::api::common::SecretReference;
use crate::api::composition::{ComposedTemplate, CompositionSpec, ConnectionDetailType};
use crate::composable::ComposableResources;
use crate::compose::{
    ANNOTATION_COMPOSITION_RESOURCE_NAME, ComposeError, RenderedResource, dependency_order,
    is_ready,
};
use crate::objects::{ObjectKey, needs_apply};

/// A rendered resource with its template and identity.
#[derive(Clone, Debug)]
pub struct Desired<'a> {
    /// The template (`resources[]` entry) it was rendered from.
    pub template: &'a ComposedTemplate,
    /// The rendered object, as it is applied.
    pub object: &'a Value,
    /// Its identity.
    pub key: ObjectKey,
}

/// What a composite should look like: its rendered resources by `resources[].name`, their
/// `dependsOn` order, and the field manager that applies them.
#[derive(Debug)]
pub struct Target<'a> {
    /// The rendered resources, by `resources[].name`.
    pub desired: BTreeMap<&'a str, Desired<'a>>,
    /// `resources[].name` in `dependsOn` order (dependencies first).
    pub order: Vec<&'a str>,
    /// The field manager of the composite's server-side applies.
    pub manager: &'a str,
}

impl<'a> Target<'a> {
    /// The target of `rendered` (from `composition`), applied by `manager`.
    pub fn new(
        composition: &'a CompositionSpec,
        rendered: &'a [RenderedResource],
        manager: &'a str,
    ) -> Result<Self, ComposeError> {
        let mut desired = BTreeMap::new();
        for r in rendered {
            let Some(template) = composition.resources.iter().find(|t| t.name == r.template) else {
                continue;
            };
            let key = ObjectKey::of(&r.object).ok_or_else(|| ComposeError::Resource {
                resource: r.template.clone(),
                reason: "rendered without apiVersion, kind or name".into(),
            })?;
            desired.insert(
                r.template.as_str(),
                Desired {
                    template,
                    object: &r.object,
                    key,
                },
            );
        }
        Ok(Target {
            desired,
            order: dependency_order(composition)?,
            manager,
        })
    }

    /// The composed resources to record in `spec.resourceRefs`, in the render's order: every
    /// rendered resource, also those still waiting on `dependsOn`. The list is known from the
    /// render, and recording it once saves a spec write (and a generation bump that claims
    /// wait on) per resource as they get created.
    pub fn resource_refs(&self, rendered: &[RenderedResource]) -> Vec<ResourceRef> {
        rendered
            .iter()
            .filter_map(|r| self.desired.get(r.template.as_str()))
            .map(|d| ResourceRef {
                api_version: str_at(d.object, "/apiVersion").to_string(),
                kind: d.key.kind.clone(),
                name: d.key.name.clone(),
            })
            .collect()
    }
}

/// A rendered resource of a kind the controller may not compose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotComposable {
    /// Its `resources[].name`.
    pub resource: String,
    /// Its apiVersion as rendered.
    pub api_version: String,
    /// Its kind as rendered.
    pub kind: String,
}

/// The rendered resources whose kind `allowed` does not list, in the render's order. Checked
/// on the rendered objects, after patches, so that a patch cannot change a kind past it.
/// When any is returned, nothing of the composite is applied: a Composition is applied
/// whole or not at all, never half.
pub fn not_composable(
    rendered: &[RenderedResource],
    allowed: &ComposableResources,
) -> Vec<NotComposable> {
    rendered
        .iter()
        .filter_map(|r| {
            let api_version = str_at(&r.object, "/apiVersion");
            let kind = str_at(&r.object, "/kind");
            (!allowed.allows(api_version, kind)).then(|| NotComposable {
                resource: r.template.clone(),
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            })
        })
        .collect()
}

/// The composed resources the composite owns, as last read or applied, and their readiness.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The live composed resources, by identity.
    pub live: BTreeMap<ObjectKey, Value>,
    /// Readiness of the rendered resources that exist, by `resources[].name`.
    pub ready: BTreeMap<String, bool>,
}

impl Observed {
    /// The composite's `children` (as listed), with the readiness of those `target` renders.
    pub fn new(target: &Target<'_>, children: Vec<Value>) -> Result<Self, ComposeError> {
        let mut observed = Observed::default();
        for child in children {
            if let Some(key) = ObjectKey::of(&child) {
                observed.live.insert(key, child);
            }
        }
        for d in target.desired.values() {
            if let Some(obj) = observed.live.get(&d.key) {
                let ready = is_ready(d.template, obj)?;
                observed.ready.insert(d.template.name.clone(), ready);
            }
        }
        Ok(observed)
    }

    /// Records `applied`, what the API server returned for an apply of `d`.
    pub fn record(&mut self, d: &Desired<'_>, applied: Value) -> Result<(), ComposeError> {
        let ready = is_ready(d.template, &applied)?;
        self.ready.insert(d.template.name.clone(), ready);
        self.live.insert(d.key.clone(), applied);
        Ok(())
    }
}

/// One composed resource to apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Apply {
    /// Its `resources[].name`.
    pub resource: String,
    /// Whether it does not exist yet.
    pub create: bool,
}

/// What to do with the composed resources, decided from what was observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The rendered resources that differ from the live ones (or do not exist) and may be
    /// applied now, in `dependsOn` order.
    pub apply: Vec<Apply>,
    /// The rendered resources not created yet because resources they `dependsOn` are not
    /// ready: each with the resources it waits for.
    pub wait: Vec<(String, Vec<String>)>,
    /// The live resources no longer rendered (and not being deleted already): garbage.
    pub delete: Vec<ObjectKey>,
}

/// Decides what to apply, what waits and what to delete. Resources in sync are left alone,
/// so the steady state makes no writes.
pub fn plan(target: &Target<'_>, observed: &Observed) -> Plan {
    let mut plan = Plan::default();
    for name in &target.order {
        let Some(d) = target.desired.get(name) else {
            continue;
        };
        let live = observed.live.get(&d.key);
        let blockers = creation_blockers(d.template, &observed.ready, live.is_some());
        if !blockers.is_empty() {
            let blockers = blockers.into_iter().map(str::to_string).collect();
            plan.wait.push((name.to_string(), blockers));
        } else if needs_apply(d.object, live, target.manager) {
            plan.apply.push(Apply {
                resource: name.to_string(),
                create: live.is_none(),
            });
        }
    }
    let rendered: BTreeSet<ObjectKey> = target.desired.values().map(|d| d.key.clone()).collect();
    let live: Vec<ObjectKey> = observed.live.keys().cloned().collect();
    plan.delete = garbage(&rendered, &live)
        .into_iter()
        .filter(|k| !is_deleting(&observed.live[*k]))
        .cloned()
        .collect();
    plan
}

/// A connection Secret of a composed resource to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRead {
    /// The `resources[].name` whose connection details it holds.
    pub resource: String,
    /// The Secret (the resource's `spec.writeConnectionSecretToRef`).
    pub secret: SecretReference,
    /// The UID of the live composed resource: only a Secret it controls is read.
    pub owner_uid: Option<String>,
    /// Whether the resource is Ready: its Secret is then expected to exist.
    pub ready: bool,
}

/// The connection Secrets to read: those of the live composed resources whose templates
/// take connection details from them (`FromConnectionSecretKey`).
pub fn secret_reads(target: &Target<'_>, observed: &Observed) -> Vec<SecretRead> {
    let mut out = Vec::new();
    for d in target.desired.values() {
        let reads_secret = d
            .template
            .connection_details
            .iter()
            .any(|c| c.detail_type() == Some(ConnectionDetailType::FromConnectionSecretKey));
        let Some(live) = observed.live.get(&d.key).filter(|_| reads_secret) else {
            continue;
        };
        let Some(to) = live.pointer("/spec/writeConnectionSecretToRef") else {
            continue;
        };
        if let (Some(name), Some(namespace)) = (
            to.get("name").and_then(Value::as_str),
            to.get("namespace").and_then(Value::as_str),
        ) {
            out.push(SecretRead {
                resource: d.template.name.clone(),
                secret: SecretReference {
                    name: name.to_string(),
                    namespace: namespace.to_string(),
                },
                owner_uid: live
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                ready: observed.ready.get(&d.template.name) == Some(&true),
            });
        }
    }
    out
}

/// While the composite is being deleted: what to delete now and what is still there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deletion {
    /// The composed resources to delete now (not already being deleted).
    pub delete: Vec<ObjectKey>,
    /// The composed resources still there (by `resources[].name`), in the Composition's
    /// order.
    pub remaining: Vec<String>,
}

/// Decides which of the composite's `live` resources to delete now, in reverse
/// `dependsOn` order of `composition` (its revision's spec, when it still exists; without
/// one, or with an invalid one, all go at once).
pub fn deletion(composition: Option<&CompositionSpec>, live: &[Value]) -> Deletion {
    let (order, depends_on) = match composition.map(|c| (c, dependency_order(c))) {
        Some((c, Ok(order))) => (
            order.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            c.resources
                .iter()
                .map(|r| (r.name.clone(), r.depends_on.clone()))
                .collect::<BTreeMap<_, _>>(),
        ),
        _ => (Vec::new(), BTreeMap::new()),
    };
    let named: Vec<(String, &Value)> = live.iter().map(|o| (resource_name(o), o)).collect();
    let names: BTreeSet<String> = named.iter().map(|(n, _)| n.clone()).collect();
    let now = deletable_now(&depends_on, &names);
    Deletion {
        delete: named
            .iter()
            .filter(|(name, obj)| now.contains(name.as_str()) && !is_deleting(obj))
            .filter_map(|(_, obj)| ObjectKey::of(obj))
            .collect(),
        remaining: in_order(&order, &names),
    }
}

/// The `resources[].name` a composed resource was rendered from (its annotation), else
/// `Kind/name`.
pub fn resource_name(obj: &Value) -> String {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_COMPOSITION_RESOURCE_NAME))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}/{}", str_at(obj, "/kind"), str_at(obj, "/metadata/name")))
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

fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

fn str_at<'v>(obj: &'v Value, pointer: &str) -> &'v str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The resources `template` waits for before it may be created: those it `dependsOn` that
/// are not ready. A resource that exists already is never held back (it is updated even
/// while a dependency is not ready).
pub fn creation_blockers<'t>(
    template: &'t ComposedTemplate,
    ready: &BTreeMap<String, bool>,
    exists: bool,
) -> Vec<&'t str> {
    if exists {
        return Vec::new();
    }
    template
        .depends_on
        .iter()
        .filter(|d| !ready.get(d.as_str()).copied().unwrap_or(false))
        .map(String::as_str)
        .collect()
}

/// The live composed resources that are no longer rendered: to be deleted.
pub fn garbage<'a>(rendered: &BTreeSet<ObjectKey>, live: &'a [ObjectKey]) -> Vec<&'a ObjectKey> {
    live.iter().filter(|k| !rendered.contains(k)).collect()
}

/// While the composite is being deleted: which of the `live` composed resources (by
/// `resources[].name`) may be deleted now. A resource waits while another live resource
/// depends on it, so deletion runs in reverse `dependsOn` order, each layer gone before the
/// next is deleted; without `dependsOn` all go at once. `depends_on` maps each resource
/// name to the names it depends on.
pub fn deletable_now<'a>(
    depends_on: &BTreeMap<String, Vec<String>>,
    live: &'a BTreeSet<String>,
) -> BTreeSet<&'a str> {
    live.iter()
        .filter(|name| {
            !live.iter().any(|other| {
                other != *name
                    && depends_on
                        .get(other)
                        .is_some_and(|deps| deps.iter().any(|d| d == *name))
            })
        })
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
