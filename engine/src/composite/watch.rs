//! Realtime re-queueing: composed resources are watched, so a child's change (it became
//! Ready, its status moved, it was deleted) re-queues its composite at once instead of
//! at the next poll.
//!
//! ```text
//!  reconcile renders kind K ──ensure(K)──▶ first time: the managed controller's watch of K
//!                                          (SharedWatch::find), or a watcher of our own
//!                                          (label tessera.dev/composite)
//!                                               │ event on a child
//!                                               ▼ controller owner reference (our XR kind)
//!  Controller::reconcile_on ◀── ObjectRef<XR> ──┘
//! ```
//!
//! One watch per composed kind, taken the first time a render produces the kind, and let
//! go when the registry is dropped (when the composite controller stops). A kind whose
//! managed controller runs in this process (same shard) is read from that controller's
//! watch, which keeps the composites' `managedFields` entries for them, so each composed
//! resource is held once; any other kind gets a label-selected watch of its own. Each
//! store serves [`ChildWatches::owned`]: a composite's reconcile reads its composed
//! resources from there instead of listing them from the API server, finding them through
//! the watch's index of objects by composite ([`crate::scaffold::label_index`]), not by a
//! pass over the whole store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::compose::LABEL_COMPOSITE;
use crate::objects::trim_for_store;
use crate::scaffold::SharedWatch;
use crate::scaffold::label_index::LabelIndex;
use crate::stored::{self, StoredObject};

/// The watch of one composed kind: the task that re-queues composites, and the store.
struct KindWatch {
    task: JoinHandle<()>,
    store: Store<StoredObject>,
    /// The store's objects by their composite.
    by_composite: Arc<LabelIndex>,
    /// The kind as the store's keys name it.
    ar: ApiResource,
    /// The managed controller's watch of the kind, when the store is its store.
    _shared: Option<Arc<SharedWatch>>,
}

/// The watches of composed kinds of one composite kind.
pub struct ChildWatches {
    client: kube::Client,
    xr: ApiResource,
    shard: Option<String>,
    composed_managers: String,
    tx: mpsc::UnboundedSender<ObjectRef<StoredObject>>,
    started: Mutex<HashMap<(String, String), KindWatch>>,
}

impl ChildWatches {
    /// A registry for composites of kind `xr` (of the shard with the label selector
    /// `shard`), and the stream of composites to re-queue. The stores keep, of each
    /// object's `managedFields`, only the `Apply` entries of managers starting with
    /// `composed_managers` (the composites' own, which their apply decision reads).
    pub fn new(
        client: kube::Client,
        xr: ApiResource,
        shard: Option<String>,
        composed_managers: String,
    ) -> (
        Self,
        impl Stream<Item = ObjectRef<StoredObject>> + Send + 'static,
    ) {
        let (tx, rx) = mpsc::unbounded();
        let watches = ChildWatches {
            client,
            xr,
            shard,
            composed_managers,
            tx,
            started: Mutex::new(HashMap::new()),
        };
        (watches, rx)
    }

    /// Starts watching composed kind `child` unless it is watched already (any version of
    /// the kind will do: events carry the owner, whatever the version).
    pub fn ensure(&self, child: &ApiResource) {
        let key = (child.group.clone(), child.kind.clone());
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        if started.contains_key(&key) {
            return;
        }
        let xr = self.xr.clone();
        let tx = self.tx.clone();
        let (ar, store, by_composite, events, shared) = match SharedWatch::find(
            child,
            self.shard.as_deref(),
            &self.composed_managers,
        ) {
            // The kind's managed controller runs in this process: its store holds every
            // object of the kind and the composites' entries of `managedFields`.
            Some(shared) => {
                debug!(group = %child.group, kind = %child.kind, "reading composed resources from their controller's watch");
                let ar = shared.api_resource().clone();
                let events = shared.subscribe().boxed();
                (
                    ar,
                    shared.store(),
                    shared.by_composite(),
                    events,
                    Some(shared),
                )
            }
            None => {
                debug!(group = %child.group, kind = %child.kind, "watching composed resources");
                let (store, by_composite, events) = self.watch(child);
                (child.clone(), store, by_composite, events, None)
            }
        };
        let task = tokio::spawn(async move {
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(obj) => {
                        for owner in owners(&obj, &xr) {
                            if tx.unbounded_send(owner).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => debug!(error = %e, "watch of composed resources"),
                }
            }
        });
        started.insert(
            key,
            KindWatch {
                task,
                store,
                by_composite,
                ar,
                _shared: shared,
            },
        );
    }

    /// A watch of the composed objects of kind `child` of this shard: its store, its
    /// objects by composite, and the objects it applies or deletes, each after the store
    /// holds the change (so the reconcile it starts reads it).
    fn watch(
        &self,
        child: &ApiResource,
    ) -> (
        Store<StoredObject>,
        Arc<LabelIndex>,
        BoxStream<'static, Result<StoredObject, watcher::Error>>,
    ) {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), child);
        let selector = crate::shard::selector(Some(LABEL_COMPOSITE), self.shard.as_deref())
            .unwrap_or_else(|| LABEL_COMPOSITE.to_string());
        let prefix = self.composed_managers.clone();
        let writer = reflector::store::Writer::new(child.clone());
        let store = writer.as_reader();
        let by_composite = Arc::new(LabelIndex::new(LABEL_COMPOSITE));
        let index = by_composite.clone();
        let events = watcher(api, watcher::Config::default().labels(&selector))
            .default_backoff()
            .map(move |event| {
                let event = stored::event(event?, &mut |obj: &mut DynamicObject| {
                    trim_for_store(&mut obj.metadata, |m| m.starts_with(prefix.as_str()))
                })?;
                index.observe(&event);
                Ok(event)
            })
            .reflect(writer)
            .touched_objects()
            .boxed();
        (store, by_composite, events)
    }

    /// The objects of kind `child` labelled as composed by composite `xr_name` and
    /// controlled by the composite of uid `xr_uid`, from the watch's store; `None` until
    /// the kind is watched and its store holds the first full list (or a copy there cannot
    /// be read back).
    pub fn owned(
        &self,
        child: &ApiResource,
        xr_name: &str,
        xr_uid: &str,
    ) -> Option<Vec<DynamicObject>> {
        let started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let watch = started.get(&(child.group.clone(), child.kind.clone()))?;
        watch.store.wait_until_ready().now_or_never()?.ok()?;
        watch
            .by_composite
            .keys(xr_name)
            .iter()
            .filter_map(|key| {
                let mut at = ObjectRef::new_with(&key.name, watch.ar.clone());
                if let Some(ns) = &key.namespace {
                    at = at.within(ns);
                }
                watch.store.get(&at)
            })
            // The store's copy may be a version older than the index's.
            .filter(|o| {
                o.labels()
                    .get(LABEL_COMPOSITE)
                    .is_some_and(|n| n == xr_name)
            })
            .filter(|o| {
                o.owner_references()
                    .iter()
                    .any(|r| r.uid == xr_uid && r.controller == Some(true))
            })
            .map(|o| o.expand().ok())
            .collect()
    }

    /// The resource version of composed object `name` (in `namespace`) of kind `child` in
    /// the watch's store, if it is there.
    pub fn cached_version(
        &self,
        child: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<String> {
        let started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let watch = started.get(&(child.group.clone(), child.kind.clone()))?;
        let mut key = ObjectRef::new_with(name, watch.ar.clone());
        if let Some(ns) = namespace {
            key = key.within(ns);
        }
        watch.store.get(&key)?.resource_version()
    }
}

impl Drop for ChildWatches {
    fn drop(&mut self) {
        let started = self.started.get_mut().unwrap_or_else(|e| e.into_inner());
        for watch in started.values() {
            watch.task.abort();
        }
    }
}

/// The composites of kind `xr` that control `obj` (at most one).
pub fn owners(obj: &impl Resource, xr: &ApiResource) -> Vec<ObjectRef<StoredObject>> {
    obj.owner_references()
        .iter()
        .filter(|r| r.controller == Some(true) && r.kind == xr.kind)
        .filter(|r| r.api_version.rsplit_once('/').map_or("", |(g, _)| g) == xr.group)
        .map(|r| ObjectRef::new_with(&r.name, xr.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_map_to_the_controlling_composite_of_our_kind_only() {
        let xr = ApiResource {
            group: "platform.example.org".into(),
            version: "v1alpha1".into(),
            api_version: "platform.example.org/v1alpha1".into(),
            kind: "XPostgresDatabase".into(),
            plural: "xpostgresdatabases".into(),
        };
        let child = |owners: serde_json::Value| -> DynamicObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "postgresql.sql.tessera.dev/v1alpha1", "kind": "Role",
                "metadata": {"name": "c", "ownerReferences": owners},
            }))
            .expect("object")
        };
        let ours = child(serde_json::json!([
            {"apiVersion": "platform.example.org/v1alpha1", "kind": "XPostgresDatabase", "name": "orders", "uid": "u", "controller": true},
        ]));
        let names: Vec<String> = owners(&ours, &xr).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["orders"]);
        let other_kind = child(serde_json::json!([
            {"apiVersion": "platform.example.org/v1alpha1", "kind": "XRedis", "name": "orders", "uid": "u", "controller": true},
        ]));
        assert!(owners(&other_kind, &xr).is_empty());
        let not_controller = child(serde_json::json!([
            {"apiVersion": "platform.example.org/v1alpha1", "kind": "XPostgresDatabase", "name": "orders", "uid": "u"},
        ]));
        assert!(owners(&not_controller, &xr).is_empty());
    }
}
