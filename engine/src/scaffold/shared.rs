//! One watch of a kind, and one store, for several controllers of the process: the
//! composites of an XRD are the composite controller's primary objects and re-queue the
//! claim controller's claims, and each holding its own copy of every composite cost a
//! composite's size twice.
//!
//! ```text
//!  watcher ──▶ trim ──▶ store (shared reader) ──▶ each subscriber's stream
//!                                                   ├─ composite controller (primary)
//!                                                   └─ claim controller (maps to claims)
//! ```
//!
//! A subscriber gets every object the watch applies or deletes after it subscribed and,
//! when it subscribes to a watch whose store holds its first full list, every object of
//! the store first: a controller restarted by its supervisor starts from the whole list,
//! as with a watch of its own. The store is written before an object goes out, so what an
//! event starts reads the change that started it. A controller of the kind filters the
//! events by its trigger predicate, as on a watch of its own (a deleted object, no longer
//! in the store, starts nothing); the claim controller needs the deletions (a claim being
//! deleted waits for its composite to be gone).

use std::sync::{Arc, Mutex, Weak};

use futures::channel::mpsc;
use futures::{FutureExt, Stream, StreamExt};
use kube::Api;
use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use tokio::task::JoinHandle;
use tracing::debug;

use super::label_index::LabelIndex;
use super::{Keep, reflected, trigger};
use crate::compose::LABEL_COMPOSITE;
use crate::stored::{self, StoredObject};

/// The senders of a shared watch's subscribers.
type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<StoredObject>>>>>;

/// A watch of objects of a kind known at runtime, stored as [`StoredObject`]s, whose
/// store and events several controllers share. Dropping it stops the watch.
pub struct SharedWatch {
    ar: ApiResource,
    selector: Option<String>,
    keep: Keep,
    store: Store<StoredObject>,
    /// The objects by the composite that composed them (label `tessera.dev/composite`).
    by_composite: Arc<LabelIndex>,
    subscribers: Subscribers,
    task: JoinHandle<()>,
}

/// The watches [`SharedWatch::offer`]ed to the rest of the process.
static OFFERED: Mutex<Vec<Weak<SharedWatch>>> = Mutex::new(Vec::new());

impl SharedWatch {
    /// Starts watching the objects of kind `ar` matching the label selector `selector`,
    /// keeping in the store what `keep` says (the union of what its subscribers read).
    pub fn start(
        client: kube::Client,
        ar: ApiResource,
        selector: Option<&str>,
        keep: Keep,
    ) -> Arc<Self> {
        let mut trim = keep.clone().trim::<DynamicObject>();
        let api = Api::<DynamicObject>::all_with(client, &ar);
        let writer = reflector::store::Writer::new(ar.clone());
        let store = writer.as_reader();
        let by_composite = Arc::new(LabelIndex::new(LABEL_COMPOSITE));
        let index = by_composite.clone();
        // Deleted objects too: a claim being deleted waits for its composite to be gone.
        let events = reflected(
            api,
            ar.clone(),
            selector,
            move |event| {
                let event = stored::event(event, &mut trim)?;
                index.observe(&event);
                Ok(event)
            },
            writer,
        )
        .touched_objects();
        let subscribers = Subscribers::default();
        let task = tokio::spawn(dispatch(events, subscribers.clone(), ar.kind.clone()));
        Arc::new(SharedWatch {
            ar,
            selector: selector.map(str::to_string),
            keep,
            store,
            by_composite,
            subscribers,
            task,
        })
    }

    /// Offers this watch to the rest of the process ([`SharedWatch::find`]) for as long as
    /// it runs: the managed controller of a kind offers its watch to the composites whose
    /// resources are of that kind.
    pub fn offer(self: &Arc<Self>) {
        let mut offered = OFFERED.lock().unwrap_or_else(|e| e.into_inner());
        offered.retain(|w| w.strong_count() > 0);
        offered.push(Arc::downgrade(self));
    }

    /// A running watch offered by another part of the process that holds every object of
    /// kind `ar` matching the label selector `selector` (any version of the kind), with
    /// the `managedFields` entries of field managers starting with `manager_prefix`.
    pub fn find(
        ar: &ApiResource,
        selector: Option<&str>,
        manager_prefix: &str,
    ) -> Option<Arc<SharedWatch>> {
        let offered = OFFERED.lock().unwrap_or_else(|e| e.into_inner());
        offered.iter().filter_map(Weak::upgrade).find(|w| {
            w.ar.group == ar.group
                && w.ar.kind == ar.kind
                && w.selector.as_deref() == selector
                && w.keep.manager_prefixes.iter().any(|p| p == manager_prefix)
                && !w.is_finished()
        })
    }

    /// The objects of the store by the composite that composed them (their label
    /// `tessera.dev/composite`).
    pub fn by_composite(&self) -> Arc<LabelIndex> {
        self.by_composite.clone()
    }

    /// The watched kind.
    pub fn api_resource(&self) -> &ApiResource {
        &self.ar
    }

    /// The store, filled by the watch.
    pub fn store(&self) -> Store<StoredObject> {
        self.store.clone()
    }

    /// Whether the watch has stopped (it stops only when it panicked or its runtime shut
    /// down): its subscribers get nothing more, and whoever owns it starts another.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// The objects the watch applies or deletes from now on, after every object of the
    /// store when it holds its first full list.
    pub fn subscribe(
        &self,
    ) -> impl Stream<Item = Result<StoredObject, watcher::Error>> + Send + 'static {
        let (tx, rx) = mpsc::unbounded();
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        // Under the lock, so no object the watch applies meanwhile is missed (one may come
        // twice: from the store and as an event; a controller reconciles it once more).
        if self.store.wait_until_ready().now_or_never().is_some() {
            for obj in self.store.state() {
                let _ = tx.unbounded_send(obj);
            }
        }
        subscribers.push(tx);
        rx.map(|obj| Ok(Arc::unwrap_or_clone(obj)))
    }

    /// A controller of the watched kind, fed by this watch and filtered by [`trigger`]
    /// like a controller with a watch of its own ([`super::controller_stored`]).
    pub fn controller(&self) -> Controller<StoredObject> {
        let stream = self
            .subscribe()
            .predicate_filter(trigger::<StoredObject>, Default::default());
        Controller::for_stream_with(stream, self.store(), self.ar.clone())
    }
}

impl Drop for SharedWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends each object of `events` to every subscriber still listening.
async fn dispatch(
    events: impl Stream<Item = Result<StoredObject, watcher::Error>>,
    subscribers: Subscribers,
    kind: String,
) {
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(obj) => {
                let obj = Arc::new(obj);
                subscribers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|tx| tx.unbounded_send(obj.clone()).is_ok());
            }
            Err(e) => debug!(%kind, error = %e, "shared watch"),
        }
    }
}
