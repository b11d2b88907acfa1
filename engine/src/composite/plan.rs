//! Pure decisions about composed resources: whether one needs to be applied, whether it
//! may be created yet (`dependsOn`), which ones are garbage, and which may be deleted now
//! while the composite is being deleted.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::api::composition::ComposedTemplate;

/// Identity of a composed resource across versions of its kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// API group (empty for the core group).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// The key of an object given as JSON; `None` without apiVersion, kind or name.
    pub fn of(object: &Value) -> Option<ObjectKey> {
        let str_at = |p: &str| object.pointer(p).and_then(Value::as_str);
        let api_version = str_at("/apiVersion")?;
        let group = api_version
            .rsplit_once('/')
            .map_or("", |(g, _)| g)
            .to_string();
        Some(ObjectKey {
            group,
            kind: str_at("/kind")?.to_string(),
            namespace: str_at("/metadata/namespace")
                .filter(|n| !n.is_empty())
                .map(str::to_string),
            name: str_at("/metadata/name")?.to_string(),
        })
    }
}

/// Whether `rendered` must be applied over `live`: when it does not exist, when a rendered
/// field differs from the live object, or when `manager` (our field manager) owns a field
/// that is no longer rendered (applying then removes it). When this says no, applying
/// would change nothing, so the steady state makes no writes.
pub fn needs_apply(rendered: &Value, live: Option<&Value>, manager: &str) -> bool {
    let Some(live) = live else {
        return true;
    };
    if !is_subset(rendered, live) {
        return true;
    }
    let mut owned = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| {
            e.get("manager").and_then(Value::as_str) == Some(manager)
                && e.get("operation").and_then(Value::as_str) == Some("Apply")
        })
        .filter_map(|e| e.get("fieldsV1"));
    owned.any(|fields| owns_field_outside(fields, rendered))
}

/// Whether every field of `want` is in `have` with an equal value. Arrays must have the
/// same length and match element by element; numbers compare by value (`1` = `1.0`); a
/// `null` in `want` matches a missing field.
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().all(|(k, wv)| match h.get(k) {
            Some(hv) => is_subset(wv, hv),
            None => wv.is_null(),
        }),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(wv, hv)| is_subset(wv, hv))
        }
        (Value::Number(w), Value::Number(h)) => w == h || w.as_f64() == h.as_f64(),
        (w, h) => w == h,
    }
}

/// Whether a managed-fields set (`fieldsV1`) names a map field that `want` lacks. List
/// entries (`k:`, `v:`, `i:`) are not descended into: lists are compared whole by
/// [`is_subset`].
fn owns_field_outside(fields: &Value, want: &Value) -> bool {
    let Some(fields) = fields.as_object() else {
        return false;
    };
    fields.iter().any(|(key, sub)| {
        let Some(name) = key.strip_prefix("f:") else {
            return false;
        };
        match want.get(name) {
            None => true,
            Some(w) if w.is_object() => owns_field_outside(sub, w),
            Some(_) => false,
        }
    })
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
