//! Identity of Kubernetes objects given as JSON, and whether a server-side apply would
//! change one: shared by the controllers that apply objects they render (composite, claim,
//! XRD); and what of an object the watch stores keep.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// The annotation `kubectl apply` (and Argo CD's default sync) writes: a copy of the whole
/// applied object, which no controller reads.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Trims `meta` of an object about to be kept in a watch store to what Tessera reads:
/// of `managedFields`, only the `Apply` entries of the field managers `keep` accepts (what
/// [`needs_apply`] and the panic report read); every other entry, often most of a small
/// object's size, is dropped. `managedFields` is never written back from a store (writes
/// are server-side applies and patches), so a trimmed copy loses nothing on the server.
pub fn trim_for_store(meta: &mut ObjectMeta, keep: impl Fn(&str) -> bool) {
    if let Some(fields) = &mut meta.managed_fields {
        fields.retain(|e| {
            e.operation.as_deref() == Some("Apply") && e.manager.as_deref().is_some_and(&keep)
        });
        if fields.is_empty() {
            meta.managed_fields = None;
        }
    }
}

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

#[cfg(test)]
#[path = "objects_tests.rs"]
mod tests;
