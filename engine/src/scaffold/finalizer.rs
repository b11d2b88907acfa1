//! The finalizer branch of a reconcile, in the style of `kube::runtime::finalizer`.
//!
//! kube's own helper does not fit Tessera's controllers: its `Cleanup` is one shot (the
//! finalizer goes as soon as it returns `Ok`), while deleting a composite, a claim or an
//! XRD takes several passes (layers of composed resources, a composite that is still
//! going, a deletion blocked by existing claims). And kube's helper returns right after
//! adding the finalizer, costing a second reconcile before the first status is written.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

/// What a reconcile is asked to do.
#[derive(Debug)]
pub enum Event<K> {
    /// The object is live and carries the finalizer: make the world match it.
    Apply(Arc<K>),
    /// The object is being deleted and still carries the finalizer: clean up.
    Cleanup(Arc<K>),
}

/// What comes after a reconcile of an [`Event`].
#[derive(Debug)]
pub enum Next {
    /// Reconcile again as `Action` says; a `Cleanup` keeps the finalizer.
    Requeue(Action),
    /// Cleanup is complete: remove the finalizer (ignored after `Apply`).
    Release,
}

/// Adding or removing a finalizer failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} finalizer of {object}: {source}")]
pub struct FinalizerError {
    /// `add` or `remove`.
    pub action: &'static str,
    /// The object, as `name` or `namespace/name`.
    pub object: String,
    /// The API server's answer.
    #[source]
    pub source: kube::Error,
}

/// Runs `reconcile` for `obj` behind `finalizer`.
///
/// # Expected flow
/// 1. A live object without the finalizer gets it (a JSON patch that tests the current
///    list), then `reconcile(Event::Apply)` runs in the same pass on the object as the
///    patch returned it, so the first status is written without waiting for the watch to
///    report the finalizer, and that report is recognisably older than the status write.
/// 2. A live object with the finalizer: `reconcile(Event::Apply)`.
/// 3. An object being deleted that still carries the finalizer:
///    `reconcile(Event::Cleanup)`; when it returns [`Next::Release`] the finalizer is
///    removed.
/// 4. An object being deleted without the finalizer: nothing happens.
///
/// # Guarantees
/// - `Cleanup` only ever runs for objects that carry the finalizer, so it may assume
///   that `Apply` ran before (or at least started).
/// - A finalizer someone else added or removed meanwhile is never lost: the patches test
///   the list they change.
/// - An object deleted since the cache saw it is not an error.
///
/// # Errors
/// A failed finalizer patch becomes `E` through `From<FinalizerError>`; errors of
/// `reconcile` are returned as they are.
pub async fn finalizer<K, E, F, Fut>(
    api: &Api<K>,
    finalizer: &str,
    obj: Arc<K>,
    reconcile: F,
) -> Result<Action, E>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    E: From<FinalizerError>,
    F: FnOnce(Event<K>) -> Fut,
    Fut: Future<Output = Result<Next, E>>,
{
    let has_finalizer = obj.finalizers().iter().any(|f| f == finalizer);
    let deleting = obj.meta().deletion_timestamp.is_some();
    if deleting {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        return match reconcile(Event::Cleanup(obj.clone())).await? {
            Next::Requeue(action) => Ok(action),
            Next::Release => {
                remove_finalizer(api, obj.as_ref(), finalizer)
                    .await
                    .or_else(gone)
                    .map_err(|e| error("remove", obj.as_ref(), e))?;
                Ok(Action::await_change())
            }
        };
    }
    let obj = if has_finalizer {
        obj
    } else {
        match add_finalizer(api, obj.as_ref(), finalizer).await {
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            // The object as the patch left it: the reconcile then works on (and records its
            // writes against) the version the watch reports next, not an older one.
            Ok(Some(patched)) => Arc::new(patched),
            Ok(None) => obj,
            Err(e) => return Err(error("add", obj.as_ref(), e)),
        }
    };
    match reconcile(Event::Apply(obj)).await? {
        Next::Requeue(action) => Ok(action),
        Next::Release => Ok(Action::await_change()),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// A stale cached copy: the object is gone already.
fn gone(e: kube::Error) -> Result<(), kube::Error> {
    if is_not_found(&e) { Ok(()) } else { Err(e) }
}

fn error<K: Resource, E: From<FinalizerError>>(
    action: &'static str,
    obj: &K,
    source: kube::Error,
) -> E {
    let object = match obj.namespace() {
        Some(ns) => format!("{ns}/{}", obj.name_any()),
        None => obj.name_any(),
    };
    E::from(FinalizerError {
        action,
        object,
        source,
    })
}

/// Adds `finalizer` with a JSON patch that tests the current list first, so that a
/// finalizer someone else added in the meantime is never dropped. Returns the patched
/// object, or `None` when the finalizer was there already.
pub async fn add_finalizer<K>(
    api: &Api<K>,
    obj: &K,
    finalizer: &str,
) -> Result<Option<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if obj.finalizers().iter().any(|f| f == finalizer) {
        return Ok(None);
    }
    let ops = if obj.finalizers().is_empty() {
        json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": [finalizer] },
        ])
    } else {
        json!([
            { "op": "test", "path": "/metadata/finalizers", "value": obj.finalizers() },
            { "op": "add", "path": "/metadata/finalizers/-", "value": finalizer },
        ])
    };
    json_patch(api, obj, ops).await.map(Some)
}

/// Removes `finalizer` (if present) with a JSON patch that tests its position first.
pub async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let Some(i) = obj.finalizers().iter().position(|f| f == finalizer) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{i}");
    let ops = json!([
        { "op": "test", "path": path, "value": finalizer },
        { "op": "remove", "path": path },
    ]);
    json_patch(api, obj, ops).await.map(|_| ())
}

async fn json_patch<K>(api: &Api<K>, obj: &K, ops: serde_json::Value) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let patch: json_patch::Patch = serde_json::from_value(ops).map_err(kube::Error::SerdeError)?;
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .await
}

#[cfg(test)]
#[path = "finalizer_tests.rs"]
mod tests;
