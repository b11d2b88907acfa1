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
mod events;
mod finalizer;
mod panics;
mod supervise;

pub use backoff::{Backoff, jitter};
pub use events::{event, publish, publish_event};
pub use finalizer::{Event, FinalizerError, Next, add_finalizer, finalizer, remove_finalizer};
pub use panics::RECONCILE_PANICKED;
pub use supervise::{Supervised, stopping, supervise};

use std::fmt::Debug;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use kube::runtime::controller::{Action, Config};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, trace, warn};

/// What the scaffold needs from a controller's context.
pub trait Context: Send + Sync + 'static {
    /// The per-object retry delays the error policy draws from; the controller resets an
    /// object's entry after a successful reconcile.
    fn backoff(&self) -> &Backoff;
    /// The client that writes the condition of a reconcile that panicked.
    fn client(&self) -> &kube::Client;
    /// The recorder of the event about a reconcile that panicked.
    fn recorder(&self) -> &Recorder;
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
/// its store ([`Controller::store`]) holds every object of the kind.
pub fn controller<K>(api: Api<K>, dyntype: K::DynamicType) -> Controller<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let writer = reflector::store::Writer::new(dyntype.clone());
    let reader = writer.as_reader();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger::<K>, Default::default());
    Controller::for_stream_with(stream, reader, dyntype)
}

/// Runs `controller` (of the kind `dyntype`) with at most `concurrency` reconciles at
/// once until the process is asked to stop (SIGTERM or Ctrl-C: reconciles in flight
/// finish first) or the future is dropped. Errors are retried after the object's next
/// [`Backoff`] delay.
///
/// A reconcile that panics is an error of its object only: the object gets
/// `Synced=False` with reason [`RECONCILE_PANICKED`] (and a Warning event), is retried
/// with backoff, and the controller keeps serving every other object.
pub async fn run<K, C, E, F, Fut>(
    controller: Controller<K>,
    dyntype: K::DynamicType,
    concurrency: u16,
    mut reconcile: F,
    ctx: Arc<C>,
) where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Debug + Unpin + Send + Sync,
    C: Context,
    E: std::error::Error + Send + 'static,
    F: FnMut(Arc<K>, Arc<C>) -> Fut,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
{
    supervise::watch_for_stop();
    let contained = move |obj: Arc<K>, ctx: Arc<C>| {
        let reconciling = reconcile(obj.clone(), ctx.clone());
        let dyntype = dyntype.clone();
        async move {
            // Without the test faults the block only awaits the reconcile.
            #[cfg_attr(
                not(any(test, feature = "testing")),
                allow(clippy::redundant_async_block)
            )]
            let guarded = std::panic::AssertUnwindSafe(async {
                #[cfg(any(test, feature = "testing"))]
                crate::testing::panic_if_injected(&obj.name_any());
                reconciling.await
            });
            match guarded.catch_unwind().await {
                Ok(result) => {
                    panics::release(ctx.client(), obj.as_ref(), &dyntype).await;
                    result.map_err(ReconcileError::Failed)
                }
                Err(payload) => {
                    let payload = panics::static_payload(payload.as_ref());
                    panics::report(
                        ctx.client(),
                        ctx.recorder(),
                        obj.as_ref(),
                        &dyntype,
                        payload,
                    )
                    .await;
                    Err(ReconcileError::Panicked)
                }
            }
        }
    };
    controller
        .with_config(Config::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(contained, error_policy::<K, C, ReconcileError<E>>, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, action)) => trace!(object = %obj, ?action, "reconciled"),
                Err(e) => debug!(error = %e, "reconcile loop"),
            }
        })
        .await;
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
