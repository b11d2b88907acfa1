//! Rendering a composite into composed resources, and folding the observed composed
//! resources back into the composite's state.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::connection::{ConnectionDetails, extract_connection_details, filter_connection_details};
use super::limits::{MAX_RENDERED_BYTES, json_len};
use super::patch::{apply_from_composite, apply_to_composite};
use super::readiness::is_ready;
use super::{
    ANNOTATION_COMPOSITION_RESOURCE_NAME, ComposeError, LABEL_CLAIM_NAME, LABEL_CLAIM_NAMESPACE,
    LABEL_COMPOSITE,
};
use crate::api::composition::{ComposedTemplate, CompositionSpec};

/// Longest composed-resource name before it is shortened: the limit of a label value, so
/// the name also fits the `tessera.dev/...` labels and most external systems' identifiers.
const MAX_NAME_LEN: usize = 63;
/// Hex digits of the hash suffix of a shortened name.
const HASH_LEN: usize = 8;

/// A composed resource as the composite reconciler will apply it.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedResource {
    /// The `resources[].name` it was rendered from.
    pub template: String,
    /// The complete object: the template's base with patches applied, its name, the
    /// engine's labels and annotation, and an owner reference to the composite.
    pub object: Value,
}

impl RenderedResource {
    /// The object's `metadata.name`.
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// Renders `composite` with `composition` into the composed resources to apply, in the
/// Composition's order.
///
/// For each resource: its `base`, with its `FromCompositeFieldPath` and
/// `CombineFromComposite` patches applied; named `<composite name>-<resources[].name>`
/// (see [`composed_name`]) unless the base or a patch set `metadata.name`; annotated with
/// `tessera.dev/composition-resource-name`; labelled `tessera.dev/composite` and, when the
/// composite belongs to a claim (`spec.claimRef`, or the claim labels on the composite),
/// `tessera.dev/claim-name` and `tessera.dev/claim-namespace`; and, when the composite has
/// a `metadata.uid` (not when rendering offline), owned by the composite as its controller.
///
/// Fails on the first resource that cannot be rendered, and when resource names are
/// missing or repeated, `dependsOn` names an unknown resource or forms a cycle, two
/// resources would get the same name, or the rendered resources together exceed
/// [`MAX_RENDERED_BYTES`] of JSON.
pub fn render(
    composite: &Value,
    composition: &CompositionSpec,
) -> Result<Vec<RenderedResource>, ComposeError> {
    dependency_order(composition)?;
    let meta = CompositeMeta::read(composite)?;
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    let mut out = Vec::with_capacity(composition.resources.len());
    let mut total = 0usize;
    for template in &composition.resources {
        let rendered = render_resource(composite, &meta, composition, template)?;
        total = total.saturating_add(json_len(&rendered.object));
        if total > MAX_RENDERED_BYTES {
            return Err(ComposeError::resource(
                &template.name,
                format!(
                    "the rendered resources up to this one are {total} bytes, more than the limit of {MAX_RENDERED_BYTES}"
                ),
            ));
        }
        if let Some(other) = seen.insert(rendered.name().to_string(), &template.name) {
            return Err(ComposeError::resource(
                &template.name,
                format!(
                    "renders to the name {:?}, as resource '{other}' does; set metadata.name apart with a patch",
                    rendered.name()
                ),
            ));
        }
        out.push(rendered);
    }
    Ok(out)
}

/// What rendering needs to know about the composite.
struct CompositeMeta<'a> {
    api_version: &'a str,
    kind: &'a str,
    name: &'a str,
    uid: Option<&'a str>,
    claim: Option<(&'a str, &'a str)>,
    /// The composite's shard label, which its composed resources inherit.
    shard: Option<&'a str>,
}

impl<'a> CompositeMeta<'a> {
    fn read(composite: &'a Value) -> Result<Self, ComposeError> {
        let str_at = |pointer: &str| {
            composite
                .pointer(pointer)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let missing = |what: &str| ComposeError::Composite {
            reason: format!("{what} is missing"),
        };
        let claim_ref = str_at("/spec/claimRef/name").zip(str_at("/spec/claimRef/namespace"));
        let claim_labels = str_at("/metadata/labels/tessera.dev~1claim-name")
            .zip(str_at("/metadata/labels/tessera.dev~1claim-namespace"));
        Ok(CompositeMeta {
            api_version: str_at("/apiVersion").ok_or_else(|| missing("apiVersion"))?,
            kind: str_at("/kind").ok_or_else(|| missing("kind"))?,
            name: str_at("/metadata/name").ok_or_else(|| missing("metadata.name"))?,
            uid: str_at("/metadata/uid"),
            claim: claim_ref.or(claim_labels),
            shard: str_at("/metadata/labels/shard.tessera.dev~1key"),
        })
    }
}

fn render_resource(
    composite: &Value,
    meta: &CompositeMeta<'_>,
    composition: &CompositionSpec,
    template: &ComposedTemplate,
) -> Result<RenderedResource, ComposeError> {
    let fail = |reason: &str| ComposeError::resource(&template.name, reason);
    let base = &template.base;
    let has = |field: &str| {
        base.get(field)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if !base.is_object() || !has("apiVersion") || !has("kind") {
        return Err(fail("base must be an object with apiVersion and kind"));
    }
    let mut object = base.clone();
    apply_from_composite(template, &composition.patch_sets, composite, &mut object)?;

    let Some(metadata) = object_field(&mut object, "metadata") else {
        return Err(fail("metadata must be an object"));
    };
    let named = metadata
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !named {
        metadata.insert(
            "name".into(),
            composed_name(meta.name, &template.name).into(),
        );
    }
    let Some(annotations) = object_field_in(metadata, "annotations") else {
        return Err(fail("metadata.annotations must be an object"));
    };
    annotations.insert(
        ANNOTATION_COMPOSITION_RESOURCE_NAME.into(),
        template.name.clone().into(),
    );
    let Some(labels) = object_field_in(metadata, "labels") else {
        return Err(fail("metadata.labels must be an object"));
    };
    labels.insert(LABEL_COMPOSITE.into(), meta.name.into());
    if let Some((claim_name, claim_namespace)) = meta.claim {
        labels.insert(LABEL_CLAIM_NAME.into(), claim_name.into());
        labels.insert(LABEL_CLAIM_NAMESPACE.into(), claim_namespace.into());
    }
    if let Some(shard) = meta.shard {
        labels.insert(crate::shard::LABEL_SHARD.into(), shard.into());
    }
    if let Some(uid) = meta.uid {
        let owner = json!({
            "apiVersion": meta.api_version,
            "kind": meta.kind,
            "name": meta.name,
            "uid": uid,
            "controller": true,
            "blockOwnerDeletion": true,
        });
        let mut refs: Vec<Value> = match metadata.remove("ownerReferences") {
            Some(Value::Array(refs)) => refs,
            _ => Vec::new(),
        };
        // One controller only: ours replaces any the base carried.
        refs.retain(|r| {
            r.get("controller") != Some(&Value::Bool(true)) && r.get("uid") != owner.get("uid")
        });
        refs.push(owner);
        metadata.insert("ownerReferences".into(), Value::Array(refs));
    }
    Ok(RenderedResource {
        template: template.name.clone(),
        object,
    })
}

/// The object at `key` of `value`, created when missing or null; `None` if `value` is not
/// an object or the field holds something else.
fn object_field<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    object_field_in(value.as_object_mut()?, key)
}

fn object_field_in<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    let slot = map.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// The default name of a composed resource: `<composite name>-<resource name>`, lower-cased
/// with characters other than `a-z`, `0-9`, `-` and `.` replaced by `-`. A name longer than
/// 63 characters is cut to 54 and given a `-` and the first 8 hex digits of the SHA-256 of
/// the full name, so it stays unique and stable.
pub fn composed_name(composite: &str, resource: &str) -> String {
    let full = format!("{composite}-{resource}");
    let clean: String = full
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    if clean.len() <= MAX_NAME_LEN {
        return clean.trim_end_matches(['-', '.']).to_string();
    }
    let digest = Sha256::digest(full.as_bytes());
    let hash: String = digest
        .iter()
        .take(HASH_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    // `clean` is ASCII, so any byte index is a character boundary.
    let prefix = clean[..MAX_NAME_LEN - HASH_LEN - 1].trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}")
}

/// The resource names of `composition` in an order where every resource comes after
/// those it `dependsOn` (otherwise in the Composition's order): the creation order;
/// deletion runs in reverse.
///
/// Fails when a name is empty or repeated, a dependency is unknown or the resource itself,
/// or the dependencies form a cycle.
pub fn dependency_order(composition: &CompositionSpec) -> Result<Vec<&str>, ComposeError> {
    let resources = &composition.resources;
    let mut names = BTreeSet::new();
    for (i, r) in resources.iter().enumerate() {
        if r.name.is_empty() {
            return Err(ComposeError::resource(
                &format!("#{i}"),
                "name must not be empty",
            ));
        }
        if !names.insert(r.name.as_str()) {
            return Err(ComposeError::resource(
                &r.name,
                "name is used by more than one resource",
            ));
        }
    }
    for r in resources {
        for dep in &r.depends_on {
            if dep == &r.name {
                return Err(ComposeError::resource(
                    &r.name,
                    "dependsOn names the resource itself",
                ));
            }
            if !names.contains(dep.as_str()) {
                return Err(ComposeError::resource(
                    &r.name,
                    format!("dependsOn names '{dep}', which is not a resource of this Composition"),
                ));
            }
        }
    }
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::with_capacity(resources.len());
    while order.len() < resources.len() {
        let next = resources.iter().find(|r| {
            !done.contains(r.name.as_str())
                && r.depends_on.iter().all(|d| done.contains(d.as_str()))
        });
        let Some(next) = next else {
            let mut stuck: Vec<&str> = resources
                .iter()
                .map(|r| r.name.as_str())
                .filter(|n| !done.contains(n))
                .collect();
            stuck.sort_unstable();
            return Err(ComposeError::resource(
                stuck.first().copied().unwrap_or_default(),
                format!("dependsOn forms a cycle among {}", quote_list(&stuck)),
            ));
        };
        done.insert(&next.name);
        order.push(next.name.as_str());
    }
    Ok(order)
}

fn quote_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A composed resource as observed by the composite reconciler.
#[derive(Clone, Copy, Debug)]
pub struct ObservedResource<'a> {
    /// The object as read from the API server.
    pub object: &'a Value,
    /// Its connection details (the data of its connection Secret); empty if it has none.
    pub connection: &'a ConnectionDetails,
}

/// The composite's state computed from its observed composed resources.
#[derive(Clone, Debug, PartialEq)]
pub struct CompositeState {
    /// The composite with the `ToCompositeFieldPath` and `CombineToComposite` patches of
    /// the observed resources applied.
    pub composite: Value,
    /// The composite's connection details, filtered by the XRD's `connectionSecretKeys`.
    pub connection: ConnectionDetails,
    /// Readiness of every resource of the Composition, by `resources[].name`; resources not
    /// observed (not created yet) are not ready.
    pub ready: BTreeMap<String, bool>,
}

impl CompositeState {
    /// Whether every composed resource is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.values().all(|r| *r)
    }

    /// Names of the resources that are not ready, in name order.
    pub fn unready(&self) -> Vec<&str> {
        self.ready
            .iter()
            .filter(|(_, r)| !**r)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// The resources `template` depends on that are not ready yet: it may be created only
    /// when this is empty.
    pub fn waiting_on<'t>(&self, template: &'t ComposedTemplate) -> Vec<&'t str> {
        template
            .depends_on
            .iter()
            .filter(|d| !self.ready.get(d.as_str()).copied().unwrap_or(false))
            .map(String::as_str)
            .collect()
    }
}

/// Folds the observed composed resources (by `resources[].name`) into the composite's
/// state: runs their to-composite patches on a copy of `composite`, gathers and filters
/// their connection details (a later resource's key replaces an earlier one's), and
/// evaluates their readiness checks.
pub fn observe(
    composite: &Value,
    composition: &CompositionSpec,
    observed: &BTreeMap<String, ObservedResource<'_>>,
    connection_secret_keys: &[String],
) -> Result<CompositeState, ComposeError> {
    let mut patched = composite.clone();
    let mut connection = ConnectionDetails::new();
    let mut ready = BTreeMap::new();
    for template in &composition.resources {
        let Some(obs) = observed.get(&template.name) else {
            ready.insert(template.name.clone(), false);
            continue;
        };
        apply_to_composite(template, &composition.patch_sets, obs.object, &mut patched)?;
        connection.merge(extract_connection_details(
            template,
            obs.object,
            obs.connection,
        )?);
        ready.insert(template.name.clone(), is_ready(template, obs.object)?);
    }
    Ok(CompositeState {
        composite: patched,
        connection: filter_connection_details(connection, connection_secret_keys),
        ready,
    })
}

#[cfg(test)]
mod tests;
