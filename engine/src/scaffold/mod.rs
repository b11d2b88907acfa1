//! The one controller scaffold every Tessera controller runs on: the watch of the primary
//! kind with its trigger predicate, the event recorder, the finalizer branch, the run
//! loop with its error policy, and the small pieces around them (backoff with jitter,
//! best-effort events, timestamps), the containment of a panicking reconcile to its
//! object, and the supervisor of controllers that other controllers start.
//!
//! ```text
//!  scaffold::controller(api) ──▶ Controller<K> ──(controller adds its own watches)──▶ scaffold::run
//!        watch + trigger predicate          reconcile(obj, ctx) ──▶ scaffold::finalizer
//!                                                                    ├─ Event::Apply
//!                                                                    └─ Event::Cleanup
//!  error ──▶ error policy: per-object jittered exponential backoff (Context::backoff)
//! ```
//!
//! A controller owns its `Ctx` (client, recorder, options, caches) and implements
//! [`Context`] so the error policy can reach its [`Backoff`]; it decides everything else.
//! The architecture is described in `docs/architecture.md`.

mod backoff;
pub mod coalesce;
mod events;
mod finalizer;
pub mod label_index;
pub(crate) mod panics;
mod shared;
mod supervise;

pub use backoff::{Backoff, jitter};
pub use events::{Recorder, event, publish, publish_event};
pub use finalizer::{Event, FinalizerError, Next, add_finalizer, finalizer, remove_finalizer};
pub use panics::RECONCILE_PANICKED;
pub use shared::SharedWatch;
pub use supervise::{Supervised, request_stop, stopped, stopping, supervise};

use std::fmt::Debug;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use kube::runtime::controller::{Action, Config};
use kube::runtime::events::Reporter;
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tracing::{debug, trace, warn};

use crate::metrics;
use crate::stored::{self, StoredObject};

/// What the scaffold needs from a controller's context.
pub trait Context: Send + Sync + 'static {
    /// The per-object retry delays the error policy draws from; the controller resets an
    /// object's entry after a successful reconcile.
    fn backoff(&self) -> &Backoff;
    /// The client that writes the condition of a reconcile that panicked.
    fn client(&self) -> &kube::Client;
    /// The recorder of the event about a reconcile that panicked.
    fn recorder(&self) -> &Recorder;
    /// How long one reconcile may take before it is stopped and retried
    /// ([`RECONCILE_TIMEOUT`] unless the controller says otherwise).
    fn reconcile_timeout(&self) -> std::time::Duration {
        RECONCILE_TIMEOUT
    }
}

/// How long one reconcile may take by default. Every external call has its own, shorter,
/// timeout and every Kubernetes request the client's (about 5 minutes, for watches'
/// sake); this bounds the whole, so that no reconcile holds its object and its permit
/// forever, whatever it waits for. Generous: a managed resource's reconcile also waits
/// for a permit of its ProviderConfig, behind the reconciles of every kind using it, each
/// of whose external calls may take `--external-timeout` when the system hangs.
pub const RECONCILE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The `reason` of the error metric of a reconcile stopped at its timeout.
pub const RECONCILE_TIMED_OUT: &str = "ReconcileTimedOut";

/// The class of a reconcile error: the `reason` label of the error metric. A short,
/// stable PascalCase name (the failed action), never a message.
pub trait ErrorReason {
    /// The class of this error.
    fn reason(&self) -> &'static str;
}

/// The error of one reconcile, as the error policy sees it.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError<E> {
    /// The controller's reconcile returned an error.
    #[error(transparent)]
    Failed(E),
    /// The reconcile panicked; the object says so in its `Synced` condition.
    #[error("reconcile panicked")]
    Panicked,
    /// The reconcile did not end within its timeout and was stopped, like a crash of its
    /// reconcile alone (every step of a reconcile is safe to stop and redo).
    #[error("reconcile did not finish within {0:?}; stopped, to be retried")]
    TimedOut(std::time::Duration),
}

/// The recorder of a controller's events, reporting as `controller` (and the pod, when
/// `POD_NAME` is set).
pub fn recorder(client: kube::Client, controller: impl Into<String>) -> Recorder {
    let reporter = Reporter {
        controller: controller.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    Recorder::new(client, reporter)
}

/// What triggers a reconcile of a primary object: its generation (spec), labels,
/// annotations, finalizers and deletion. Status writes change none of these, so a
/// controller's own status updates do not trigger another reconcile.
pub fn trigger<K: Resource>(obj: &K) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    obj.meta().generation.hash(&mut h);
    obj.labels().hash(&mut h);
    obj.annotations().hash(&mut h);
    obj.finalizers().hash(&mut h);
    obj.meta().deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// A controller of the primary kind of `api`, fed by one watch filtered by [`trigger`];
/// its store ([`Controller::store`]) holds every object of the kind, trimmed by
/// [`Keep::default`].
pub fn controller<K>(api: Api<K>, dyntype: K::DynamicType) -> Controller<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync + 'static,
{
    controller_selected(api, dyntype, None, Keep::default())
}

/// What a controller's store keeps of each object beyond its fields: the reconciles read
/// the whole object from the store, but of `managedFields` only the `Apply` entries of
/// their own field managers, and never `kubectl`'s last-applied copy. The rest was about
/// half of a small object's JSON.
#[derive(Clone, Debug, Default)]
pub struct Keep {
    /// The field managers whose `Apply` entries of `managedFields` stay (the panic
    /// report's own manager always does).
    pub managers: Vec<String>,
    /// The prefixes of more such field managers (`tessera/composite/`: each composite
    /// applies its resources as a manager of its own).
    pub manager_prefixes: Vec<String>,
    /// Whether the `kubectl.kubernetes.io/last-applied-configuration` annotation is
    /// dropped: for kinds whose annotations no patch can read (claims).
    pub drop_last_applied: bool,
}

impl Keep {
    /// Whether the `Apply` entries of `manager` stay.
    pub fn keeps(&self, manager: &str) -> bool {
        manager == panics::FIELD_MANAGER
            || self.managers.iter().any(|k| k == manager)
            || self
                .manager_prefixes
                .iter()
                .any(|p| manager.starts_with(p.as_str()))
    }

    /// A modifier for [`WatchStreamExt::modify`] that trims each object to what is kept.
    fn trim<K: Resource>(self) -> impl FnMut(&mut K) {
        move |obj: &mut K| {
            let meta = obj.meta_mut();
            crate::objects::trim_for_store(meta, |m| self.keeps(m));
            if self.drop_last_applied
                && let Some(annotations) = &mut meta.annotations
            {
                annotations.remove(crate::objects::LAST_APPLIED);
            }
        }
    }
}

/// A [`controller`] that watches only the objects matching the label selector
/// `selector` (the shard's, see [`crate::shard`]), when there is one, and keeps in its
/// store what `keep` says.
///
/// The watch also measures the time from an object's creation to its first `Ready=True`
/// ([`metrics::time_to_ready`]): when an update turns the `Ready` condition of an object
/// in the cache to `True` from anything but `Unavailable` (which means it was Ready
/// before).
pub fn controller_selected<K>(
    api: Api<K>,
    dyntype: K::DynamicType,
    selector: Option<&str>,
    keep: Keep,
) -> Controller<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync + 'static,
{
    let mut trim = keep.trim::<K>();
    controller_from(api, dyntype, selector, move |event| {
        Ok(event.modify(&mut trim))
    })
}

/// A [`controller_selected`] of kind `ar`, known at runtime, whose store holds each object
/// as a [`StoredObject`] (its JSON text): what claims, composites and composed resources
/// cost in memory is their size, not a tree of JSON values.
pub fn controller_stored(
    client: kube::Client,
    ar: ApiResource,
    selector: Option<&str>,
    keep: Keep,
) -> Controller<StoredObject> {
    let mut trim = keep.trim::<DynamicObject>();
    let api = Api::<DynamicObject>::all_with(client, &ar);
    controller_from(api, ar, selector, move |event| {
        stored::event(event, &mut trim)
    })
}

/// The controller of [`controller_selected`] and [`controller_stored`]: its watch reads
/// objects of `api`, `convert` makes each event one of the store's objects.
fn controller_from<W, K>(
    api: Api<W>,
    dyntype: K::DynamicType,
    selector: Option<&str>,
    convert: impl FnMut(watcher::Event<W>) -> Result<watcher::Event<K>, watcher::Error> + Send + 'static,
) -> Controller<K>
where
    W: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K: Resource + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync + 'static,
{
    let writer = reflector::store::Writer::new(dyntype.clone());
    let reader = writer.as_reader();
    let stream = reflected(api, dyntype.clone(), selector, convert, writer)
        .applied_objects()
        .predicate_filter(trigger::<K>, Default::default());
    Controller::for_stream_with(stream, reader, dyntype)
}

/// The watch events of `api` (selected by the label selector `selector`) as `convert`
/// makes them, each written to `writer`'s store before it comes out of the stream (so
/// whatever it starts reads it there), the first `Ready=True` of each object measured on
/// the way ([`controller_selected`]).
fn reflected<W, K>(
    api: Api<W>,
    dyntype: K::DynamicType,
    selector: Option<&str>,
    mut convert: impl FnMut(watcher::Event<W>) -> Result<watcher::Event<K>, watcher::Error>
    + Send
    + 'static,
    writer: reflector::store::Writer<K>,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    W: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K: Resource + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync + 'static,
{
    let mut config = watcher::Config::default().any_semantic();
    if let Some(selector) = selector {
        config = config.labels(selector);
    }
    let previous = writer.as_reader();
    let kind = K::kind(&dyntype).into_owned();
    watcher(api, config)
        .default_backoff()
        .map(move |event| event.and_then(&mut convert))
        .inspect(move |event| {
            if let Ok(watcher::Event::Apply(obj)) = event {
                let old = previous.get(&reflector::ObjectRef::from_obj_with(obj, dyntype.clone()));
                if let Some(old) = old {
                    observe_first_ready(&kind, old.as_ref(), obj);
                }
            }
        })
        .reflect(writer)
}

/// The `status` of `obj` of `Ready` condition, if it has one.
fn ready_condition(obj: &serde_json::Value) -> Option<(&str, &str)> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(|t| t.as_str()) == Some("Ready"))
        .map(|c| {
            let field = |f: &str| c.get(f).and_then(|v| v.as_str()).unwrap_or("");
            (field("status"), field("reason"))
        })
}

/// Records [`metrics::time_to_ready`] when `new` is the first Ready version of `old`.
fn observe_first_ready<K: Resource + Serialize>(kind: &str, old: &K, new: &K) {
    // The old version is read only when the new one is Ready (each read serializes a
    // whole object).
    let Ok(new_json) = serde_json::to_value(new) else {
        return;
    };
    if ready_condition(&new_json).is_none_or(|(status, _)| status != "True") {
        return;
    }
    let Ok(old_json) = serde_json::to_value(old) else {
        return;
    };
    let was_ready = ready_condition(&old_json).is_some_and(|(status, reason)| {
        status == "True" || reason == crate::api::common::reason::UNAVAILABLE
    });
    if was_ready {
        return;
    }
    if let Some(created) = &new.meta().creation_timestamp {
        let age = k8s_openapi::jiff::Timestamp::now().duration_since(created.0);
        metrics::time_to_ready(kind, age.as_secs_f64());
    }
}

/// The name of the controller of `K` in metrics: `group/Kind` (`Kind` for the core group).
pub fn controller_name<K: Resource>(dyntype: &K::DynamicType) -> String {
    let group = K::group(dyntype);
    if group.is_empty() {
        K::kind(dyntype).into_owned()
    } else {
        format!("{group}/{}", K::kind(dyntype))
    }
}

/// Counts the objects of `store` by their Ready status: True, False, Unknown or none.
fn count_ready<K>(store: &reflector::Store<K>) -> [u64; 3]
where
    K: Resource + Clone + Serialize + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let mut counts = [0u64; 3];
    for obj in store.state() {
        let status = serde_json::to_value(obj.as_ref())
            .ok()
            .and_then(|v| ready_condition(&v).map(|(s, _)| s.to_string()));
        let i = match status.as_deref() {
            Some("True") => 0,
            Some("False") => 1,
            _ => 2,
        };
        counts[i] += 1;
    }
    counts
}

/// Runs `controller` (of the kind `dyntype`) with at most `concurrency` reconciles at
/// once (`0`: no limit) until the process is asked to stop (SIGTERM or Ctrl-C, noted by
/// one handler for all controllers: reconciles in flight finish first) or the future is
/// dropped. Errors are retried after the object's next [`Backoff`] delay.
///
/// Objects that fall due while `concurrency` reconciles run wait in the order they fell
/// due, so every object gets its turn however far the controller is behind; each is
/// reconciled as the cache holds it when its turn comes.
///
/// A reconcile that runs past [`Context::reconcile_timeout`] is stopped and retried with
/// backoff (logged, and counted with reason [`RECONCILE_TIMED_OUT`]).
///
/// A reconcile that panics is an error of its object only: the object gets
/// `Synced=False` with reason [`RECONCILE_PANICKED`] (and a Warning event), is retried
/// with backoff, and the controller keeps serving every other object.
pub async fn run<K, C, E, F, Fut>(
    controller: Controller<K>,
    dyntype: K::DynamicType,
    concurrency: u16,
    reconcile: F,
    ctx: Arc<C>,
) where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Debug + Unpin + Send + Sync,
    C: Context,
    E: std::error::Error + ErrorReason + Send + 'static,
    F: Fn(Arc<K>, Arc<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
{
    supervise::watch_for_stop();
    let name = controller_name::<K>(&dyntype);
    let log_name = name.clone();
    let synced = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let store = controller.store();
    let cache = store.clone();
    tokio::spawn({
        let (store, synced) = (store.clone(), synced.clone());
        async move {
            if store_ready(&store).await.is_ok() {
                synced.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let _cache = metrics::register_cache(&name, synced, move || count_ready(&store));
    // kube's runner has no limit of its own: every object that falls due waits for one of
    // `concurrency` permits, first come, first served (see `wait_turn`).
    let turns = Arc::new(Turns {
        name: name.into(),
        permits: (concurrency > 0).then(|| Arc::new(Semaphore::new(concurrency.into()))),
        latest: cache.clone(),
        dyntype,
        reconcile,
    });
    let contained = move |obj: Arc<K>, ctx: Arc<C>| wait_turn(turns.clone(), obj, ctx);
    let running = controller
        .with_config(Config::default().concurrency(0))
        .graceful_shutdown_on(supervise::stopped())
        .run(contained, error_policy::<K, C, ReconcileError<E>>, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, action)) => trace!(object = %obj, ?action, "reconciled"),
                Err(e) => debug!(error = %e, "reconcile loop"),
            }
        });
    // On a stop, kube's controller stops reading its watches and then waits for its
    // reconciles; but it starts reconciling only once its cache holds the first full list,
    // which, with the watches no longer read, never comes: a controller stopped before
    // its cache was ready (just started, or started by another controller during the
    // drain) would wait until the process is killed. Its cache not ready at the stop, it
    // never reconciled: it ends at once.
    let stopped_unsynced = async {
        supervise::stopped().await;
        if cache.wait_until_ready().now_or_never().is_none() {
            debug!(controller = %log_name, "stopped before its cache was ready");
            return;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = running => {}
        () = stopped_unsynced => {}
    }
}

/// What the tasks of a controller's objects share while they wait for their turn: kube
/// spawns a task for every object that falls due, and on a busy controller thousands of
/// them wait at once, so each holds a pointer to this rather than its own copies.
struct Turns<K, F>
where
    K: Resource + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    /// The controller's name in metrics.
    name: Arc<str>,
    /// The reconciles that may run at once (`None`: no limit).
    permits: Option<Arc<Semaphore>>,
    /// The controller's cache.
    latest: reflector::Store<K>,
    dyntype: K::DynamicType,
    reconcile: F,
}

/// Waits for a permit, then reconciles `obj` as the cache holds it at that moment, a panic
/// contained and the outcome counted in the metrics.
///
/// Waiting tasks are first come, first served: kube's runner, once its own limit of
/// reconciles runs, parks the objects that fall due in a hash set and starts the next one
/// in the set's hash order, not in the order they fell due; on a saturated controller
/// (objects polled again sooner than the reconciles get through them) the objects early in
/// that order were reconciled over and over and the others never, for as long as the load
/// lasted. So the runner has no limit of its own ([`run`]) and the permits are the limit.
async fn wait_turn<K, C, E, F, Fut>(
    turns: Arc<Turns<K, F>>,
    obj: Arc<K>,
    ctx: Arc<C>,
) -> Result<Action, ReconcileError<E>>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
    C: Context,
    E: std::error::Error + ErrorReason + Send + 'static,
    F: Fn(Arc<K>, Arc<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
{
    let _permit = match &turns.permits {
        // The semaphore is never closed.
        Some(p) => p.clone().acquire_owned().await.ok(),
        None => None,
    };
    // A stop lets the reconciles in flight finish; those still waiting do not start.
    if supervise::stopping() {
        return Ok(Action::await_change());
    }
    let Some(obj) = turns.latest.get(&reflector::ObjectRef::from_obj_with(
        obj.as_ref(),
        turns.dyntype.clone(),
    )) else {
        // Deleted while it waited.
        return Ok(Action::await_change());
    };
    // Boxed, so that a task waiting for its permit holds a pointer, not the state of a
    // reconcile and of the panic report (several KiB, times every waiting task).
    async move {
        let running = metrics::reconcile_started(&turns.name);
        // Without the test faults the block only awaits the reconcile.
        #[cfg_attr(
            not(any(test, feature = "testing")),
            allow(clippy::redundant_async_block)
        )]
        let guarded = std::panic::AssertUnwindSafe(async {
            #[cfg(any(test, feature = "testing"))]
            crate::testing::panic_if_injected(&obj.name_any());
            (turns.reconcile)(obj.clone(), ctx.clone()).await
        });
        let limit = ctx.reconcile_timeout();
        match tokio::time::timeout(limit, guarded.catch_unwind()).await {
            Err(_) => {
                running.finish("error", Some(RECONCILE_TIMED_OUT));
                Err(ReconcileError::TimedOut(limit))
            }
            Ok(Ok(result)) => {
                match &result {
                    Ok(_) => running.finish("success", None),
                    Err(e) => running.finish("error", Some(e.reason())),
                }
                panics::release(ctx.client(), obj.as_ref(), &turns.dyntype).await;
                result.map_err(ReconcileError::Failed)
            }
            Ok(Err(payload)) => {
                running.finish("panic", Some(RECONCILE_PANICKED));
                let payload = panics::static_payload(payload.as_ref());
                let (recorder, dyntype) = (ctx.recorder(), &turns.dyntype);
                panics::report(ctx.client(), recorder, obj.as_ref(), dyntype, payload).await;
                Err(ReconcileError::Panicked)
            }
        }
    }
    .boxed()
    .await
}

fn error_policy<K: Resource, C: Context, E: std::fmt::Display>(
    obj: Arc<K>,
    err: &E,
    ctx: Arc<C>,
) -> Action {
    let wait = ctx.backoff().next(obj.as_ref());
    warn!(name = %obj.name_any(), namespace = ?obj.namespace(), error = %err, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

/// The current time in RFC 3339 with microseconds: condition transition times, and the
/// create annotations, whose order must be decidable by comparing the strings.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Waits until `store` has its watch's first list, like `Store::wait_until_ready`, which
/// wakes only the last of several concurrent waiters (every controller's first reconciles
/// wait on the same stores): this asks again every 100 ms until it answers. Errs when the
/// store's writer is gone (its watch stopped).
pub async fn store_ready<K>(
    store: &kube::runtime::reflector::Store<K>,
) -> Result<(), kube::runtime::reflector::store::WriterDropped>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        let wait = store.wait_until_ready();
        if let Ok(result) = tokio::time::timeout(std::time::Duration::from_millis(100), wait).await
        {
            return result;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn object(edit: impl FnOnce(&mut ConfigMap)) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("a".into());
        cm.metadata.generation = Some(1);
        edit(&mut cm);
        cm
    }

    #[test]
    fn reconciles_are_triggered_by_spec_metadata_and_deletion_but_not_by_status() {
        let base = trigger(&object(|_| {}));
        type Edit = fn(&mut ConfigMap);
        let cases: [(&str, Edit, bool); 6] = [
            (
                "a new generation",
                |o| o.metadata.generation = Some(2),
                true,
            ),
            (
                "a label",
                |o| {
                    o.labels_mut()
                        .insert("l".into(), "v".into())
                        .map(drop)
                        .unwrap_or(())
                },
                true,
            ),
            (
                "an annotation",
                |o| {
                    o.annotations_mut()
                        .insert("a".into(), "v".into())
                        .map(drop)
                        .unwrap_or(())
                },
                true,
            ),
            ("a finalizer", |o| o.finalizers_mut().push("f".into()), true),
            (
                "deletion",
                |o| o.metadata.deletion_timestamp = Some(Time(Default::default())),
                true,
            ),
            (
                "a new resourceVersion only (a status write)",
                |o| o.metadata.resource_version = Some("7".into()),
                false,
            ),
        ];
        for (reason, edit, triggers) in cases {
            assert_eq!(trigger(&object(edit)) != base, triggers, "{reason}");
        }
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod run_tests;
