//! The composite (XR) reconciler: one controller per composite kind, started by the XRD
//! controller through [`run`].
//!
//! ```text
//!  XR ──select──▶ Composition ──revision──▶ CompositionRevision spec
//!   │                                            │ compose::render (same code as `tessera render`)
//!   │                                            ▼
//!   │   SSA, in dependsOn order, only what changed: composed resources (owned, labelled)
//!   │                                            │ watched: a child's change re-queues the XR
//!   ▼                                            ▼
//!  status ◀── compose::observe: readiness, to-composite patches, connection details ──▶ Secret
//! ```
//!
//! # Expected flow
//! 1. The finalizer is added; the first status written says `Ready=False`.
//! 2. A Composition is selected ([`select::select_composition`]) and a revision chosen by
//!    the update policy ([`select::select_revision`]); both are recorded in the
//!    composite's `spec.compositionRef` / `spec.compositionRevisionRef`.
//! 3. The revision's spec is rendered. When a rendered resource is of a kind outside the
//!    controller's composable resources ([`crate::composable`]), nothing is applied or
//!    deleted: `Synced=False`, reason `CompositionNotAllowed`. A resource is created only once every resource it
//!    `dependsOn` is ready; a resource is applied only when the live object differs from the
//!    rendered one ([`crate::objects::needs_apply`]). Composed resources no longer rendered are
//!    deleted. The composed resources are recorded in `spec.resourceRefs`.
//! 4. The composed resources are observed: readiness, to-composite patches onto the
//!    status, connection details published to the composite's connection Secret.
//! 5. `Ready`, `Synced` and `observedGeneration` are written when they changed; events are
//!    published on transitions. A change that only moves a `Creating` status forward (the
//!    next `dependsOn` layer) waits while the last write is recent
//!    ([`crate::scaffold::coalesce`]): a layer that is ready within seconds costs no write.
//! 6. On deletion the composed resources are deleted in reverse `dependsOn` order, each
//!    layer gone before the next; then the finalizer is removed.
//!
//! # Guarantees
//! - The steady state makes no Kubernetes writes: composed resources, the composite's
//!   spec and status, and the connection Secret are written only when they would change.
//! - Composed resource names are deterministic, so a crash never creates a second copy.
//! - Every failure reaches the composite's `Synced` condition in words that say what to
//!   change; the claim controller carries it on to the claim.

mod child_writes;
mod children;
mod cluster;
mod delete;
mod error;
#[cfg(test)]
mod fixtures;
mod machine;
pub mod plan;
pub mod select;
pub mod status;
mod sync;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::instrument;

pub use error::{Error, REASON_COMPOSITION_NOT_ALLOWED};

use self::child_writes::ChildWrites;
use self::children::Kinds;
use self::select::XrSpec;
use self::status::{EventSpec, StatusUpdate, next_status, synced_condition, transition_events};
use self::watch::ChildWatches;
use crate::api::common::Condition;
use crate::api::composition::{Composition, CompositionRevision, LABEL_COMPOSITION_NAME};
use crate::api::xrd::{CompositeResourceDefinition, TypeReference};
use crate::composition_options::{CompositionOptions, FINALIZER};
use crate::scaffold::coalesce::StatusWrites;
use crate::scaffold::{self, Backoff, FinalizerError, Next, Recorder, SharedWatch, jitter, now};
use crate::stored::{self, StoredObject};

/// How soon a composite being deleted is looked at again while its resources go (their
/// deletion events usually re-queue it sooner).
const DELETE_RECHECK: Duration = Duration::from_secs(2);
/// The longest wait between retries after transient errors.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

struct Ctx {
    client: kube::Client,
    xrd: Arc<CompositeResourceDefinition>,
    xr: ApiResource,
    xr_type: TypeReference,
    opts: CompositionOptions,
    recorder: Recorder,
    compositions: Store<Composition>,
    revisions: Store<CompositionRevision>,
    /// Whether the Composition and revision caches hold their first full list.
    caches_ready: [tokio::sync::watch::Receiver<bool>; 2],
    kinds: Kinds,
    watches: ChildWatches,
    failures: Backoff,
    status_writes: StatusWrites,
    child_writes: ChildWrites,
}

/// The watch of the composites of kind `xr` (of the shard `opts.shard`), shared by their
/// composite controller ([`run`]) and their claim controller (`claim::run`, whose apply
/// decisions read the claim field manager's entries of `managedFields`, kept for it).
pub fn watch(client: kube::Client, xr: ApiResource, opts: &CompositionOptions) -> Arc<SharedWatch> {
    SharedWatch::start(
        client,
        xr,
        opts.shard.as_deref(),
        scaffold::Keep {
            managers: vec![crate::claim::field_manager(opts)],
            ..Default::default()
        },
    )
}

/// Runs the reconciler of the composite kind `xr` defined by `xrd`, fed by `composites`
/// (their [`watch`]), until the process is asked to stop (or the future is dropped, which
/// also stops its watches of composed resources).
///
/// Composites are reconciled when their spec, labels, annotations, finalizers or deletion
/// change; when a composed resource changes; when a Composition or CompositionRevision
/// they use changes; and every `opts.poll_interval` (jittered).
pub async fn run(
    client: kube::Client,
    xrd: Arc<CompositeResourceDefinition>,
    xr: ApiResource,
    opts: CompositionOptions,
    composites: Arc<SharedWatch>,
) {
    // Selection reads these caches. Readiness is signalled through `watch` channels: a
    // store's own `wait_until_ready` wakes only one of several concurrent waiters.
    let (compositions, comp_writer) = reflector::store::<Composition>();
    let (comp_ready_tx, comp_ready) = tokio::sync::watch::channel(false);
    let comp_events = watcher(Api::<Composition>::all(client.clone()), Default::default())
        .default_backoff()
        .reflect(comp_writer)
        .inspect(move |e| {
            if matches!(e, Ok(watcher::Event::InitDone)) {
                comp_ready_tx.send_replace(true);
            }
        })
        .touched_objects()
        .filter_map(|e| async move { e.ok().map(|c| c.name_any()) });
    let (revisions, rev_writer) = reflector::store::<CompositionRevision>();
    let (rev_ready_tx, rev_ready) = tokio::sync::watch::channel(false);
    let rev_events = watcher(
        Api::<CompositionRevision>::all(client.clone()),
        Default::default(),
    )
    .default_backoff()
    .reflect(rev_writer)
    .inspect(move |e| {
        if matches!(e, Ok(watcher::Event::InitDone)) {
            rev_ready_tx.send_replace(true);
        }
    })
    .touched_objects()
    .filter_map(|e| async move {
        e.ok()
            .and_then(|r| r.labels().get(LABEL_COMPOSITION_NAME).cloned())
    });

    let controller = composites.controller();
    let xrs = controller.store();

    let (watches, child_events) = ChildWatches::new(
        client.clone(),
        xr.clone(),
        opts.shard.clone(),
        crate::naming::composed_managers(&opts.field_manager),
    );
    let concurrency = opts.max_concurrent_reconciles;
    let ctx = Arc::new(Ctx {
        recorder: scaffold::recorder(client.clone(), opts.field_manager.clone()),
        kinds: Kinds::new(client.clone()),
        xr_type: TypeReference {
            api_version: xr.api_version.clone(),
            kind: xr.kind.clone(),
        },
        client,
        xrd,
        xr: xr.clone(),
        opts,
        compositions,
        revisions,
        caches_ready: [comp_ready, rev_ready],
        watches,
        failures: Backoff::new(MAX_BACKOFF),
        status_writes: StatusWrites::default(),
        child_writes: ChildWrites::default(),
    });
    let composition_changes = stream::select(comp_events, rev_events).flat_map({
        let (xrs, xr) = (xrs.clone(), xr.clone());
        move |composition| stream::iter(using_composition(&xrs, &xr, &composition))
    });
    let controller = controller
        .reconcile_on(child_events)
        .reconcile_on(composition_changes);
    scaffold::run(
        controller,
        xr,
        concurrency,
        stored::reading(StoredObject::expand, reconcile),
        ctx,
    )
    .await;
}

impl scaffold::Context for Ctx {
    fn backoff(&self) -> &Backoff {
        &self.failures
    }
    fn client(&self) -> &kube::Client {
        &self.client
    }
    fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

impl From<FinalizerError> for Error {
    fn from(e: FinalizerError) -> Self {
        Error::Finalizer {
            name: e.object,
            source: Box::new(e.source),
        }
    }
}

/// The composites that use Composition `name`, or have none recorded yet (a new
/// Composition may be the one they select).
fn using_composition(
    xrs: &Store<StoredObject>,
    xr: &ApiResource,
    name: &str,
) -> Vec<ObjectRef<StoredObject>> {
    xrs.state()
        .iter()
        .filter(|o| {
            let Ok(o) = o.expand() else { return true };
            match o.data.pointer("/spec/compositionRef/name") {
                Some(Value::String(n)) => n == name,
                _ => true,
            }
        })
        .map(|o| ObjectRef::from_obj_with(o.as_ref(), xr.clone()))
        .collect()
}

#[instrument(skip_all, fields(kind = %ctx.xr.kind, name = %xr.name_any()))]
async fn reconcile(xr: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    // Selection reads the Composition and revision caches: wait for their first list. Their
    // watches are read only until the process is asked to stop: a reconcile still waiting
    // then ends without doing anything.
    let caches = async {
        for ready in &ctx.caches_ready {
            let _ = ready.clone().wait_for(|r| *r).await;
        }
    };
    tokio::select! {
        biased;
        () = caches => {}
        () = scaffold::stopped() => return Ok(Action::await_change()),
    }
    scaffold::finalizer(&ctx.api(), FINALIZER, xr, |event| async {
        match event {
            scaffold::Event::Apply(xr) => apply(&xr, &ctx).await.map(Next::Requeue),
            scaffold::Event::Cleanup(xr) => finalize(&xr, &ctx).await,
        }
    })
    .await
}

/// The composite as JSON with its apiVersion and kind, which the watch does not fill in
/// for dynamic objects.
fn to_json(xr: &DynamicObject, ctx: &Ctx) -> Value {
    let mut xr_json = serde_json::to_value(xr).unwrap_or_default();
    if let Some(obj) = xr_json.as_object_mut() {
        obj.insert("apiVersion".into(), json!(ctx.xr.api_version));
        obj.insert("kind".into(), json!(ctx.xr.kind));
    }
    xr_json
}

/// Selects, renders, applies and observes; writes the status.
async fn apply(xr: &DynamicObject, ctx: &Ctx) -> Result<Action, Error> {
    let xr_json = to_json(xr, ctx);
    let report = sync::sync(xr, &xr_json, ctx).await;
    let transient = report.errors.iter().any(Error::is_transient);
    let message = report.errors.first().map(ToString::to_string);
    let mut synced = synced_condition(message.as_deref());
    if let Some(e) = report.errors.first() {
        synced.reason = e.reason().to_string();
    }
    let update = StatusUpdate {
        generation: report.generation.or(xr.meta().generation),
        synced: Some(synced),
        ..report.status
    };
    let held_back = ctx
        .write_status(xr, &xr_json, update, report.errors.first(), report.events)
        .await?;
    Ok(ctx.next_action(xr, transient, held_back))
}

/// Deletes the composed resources layer by layer; removes the finalizer when all are gone.
async fn finalize(xr: &DynamicObject, ctx: &Ctx) -> Result<Next, Error> {
    let xr_json = &to_json(xr, ctx);
    let spec: XrSpec = serde_json::from_value(xr_json.get("spec").cloned().unwrap_or_default())
        .unwrap_or_default();
    let (progress, error) = match delete::delete_composed(xr, &spec, ctx).await {
        Ok(mut p) => {
            let error = (!p.errors.is_empty()).then(|| p.errors.remove(0));
            (Some(p), error)
        }
        Err(e) => (None, Some(e)),
    };
    if let Some(p) = &progress
        && p.remaining.is_empty()
    {
        return Ok(Next::Release);
    }
    let remaining: Vec<&str> = progress
        .iter()
        .flat_map(|p| p.remaining.iter().map(String::as_str))
        .collect();
    let update = StatusUpdate {
        generation: xr.meta().generation,
        ready: Some(status::deleting_condition(&remaining)),
        synced: Some(synced_condition(
            error.as_ref().map(ToString::to_string).as_deref(),
        )),
        ..StatusUpdate::default()
    };
    let events = progress.map(|p| p.events).unwrap_or_default();
    // Never held back: the Ready condition of a composite being deleted says Deleting.
    ctx.write_status(xr, xr_json, update, error.as_ref(), events)
        .await?;
    Ok(Next::Requeue(match error {
        Some(e) if e.is_transient() => Action::requeue(ctx.failures.next(xr)),
        _ => Action::requeue(DELETE_RECHECK),
    }))
}

impl Ctx {
    /// The objects of `kinds` this composite owns (by label and controller reference),
    /// each with its kind; the kinds are watched from now on. Read from the watches'
    /// stores; listed from the API server while a store is not filled yet or has not seen
    /// this controller's own last writes ([`ChildWrites`]).
    async fn owned_children<'k>(
        &self,
        xr: &DynamicObject,
        kinds: impl IntoIterator<Item = &'k Arc<children::KindInfo>>,
    ) -> Result<Vec<(DynamicObject, Arc<children::KindInfo>)>, Error> {
        let uid = xr.uid().unwrap_or_default();
        let mut out = Vec::new();
        for info in kinds {
            self.watches.ensure(&info.ar);
            let cached = self
                .watches
                .owned(&info.ar, &xr.name_any(), &uid)
                .filter(|objects| {
                    !self
                        .child_writes
                        .stale(&uid, &info.ar.group, &info.ar.kind, objects)
                });
            let objects = match cached {
                Some(objects) => objects
                    .into_iter()
                    .map(|o| children::with_types(o, &info.ar))
                    .collect(),
                None => children::list_owned(&self.client, info, &xr.name_any(), &uid)
                    .await
                    .map_err(|source| Error::List {
                        kind: info.ar.kind.clone(),
                        source: Box::new(source),
                    })?,
            };
            out.extend(objects.into_iter().map(|obj| (obj, info.clone())));
        }
        Ok(out)
    }

    fn api(&self) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), &self.xr)
    }

    /// After a reconcile: back off on transient errors, else poll (jittered), or sooner
    /// when a status change was held back (`held_back`: how long it waits).
    fn next_action(
        &self,
        xr: &DynamicObject,
        transient: bool,
        held_back: Option<Duration>,
    ) -> Action {
        if transient {
            return Action::requeue(self.failures.next(xr));
        }
        self.failures.reset(xr);
        let poll = jitter(self.opts.poll_interval, 0.1);
        Action::requeue(held_back.map_or(poll, |wait| wait.min(poll)))
    }

    /// Folds `update` into the composite's status and writes it (server-side apply) when
    /// it changed; publishes the events of condition transitions (a `Synced` failure
    /// described by `error`) and `extra`. A change that only moves a `Creating` status
    /// forward is held back while the last write is recent
    /// ([`crate::scaffold::coalesce`]): returns how long it waits, and its transition events
    /// wait with it.
    async fn write_status(
        &self,
        xr: &DynamicObject,
        xr_json: &Value,
        update: StatusUpdate,
        error: Option<&Error>,
        extra: Vec<EventSpec>,
    ) -> Result<Option<Duration>, Error> {
        let old = xr_json.get("status").cloned().unwrap_or(Value::Null);
        let new = next_status(&old, update, &now());
        if new != old {
            let key = xr.uid().unwrap_or_else(|| xr.name_any());
            // `connectionDetails` records a Secret write that will not be repeated.
            let held_back = self
                .status_writes
                .admit(&key, &old, &new, &["connectionDetails"]);
            if held_back.is_some() {
                for e in extra {
                    self.publish(xr, e).await;
                }
                return Ok(held_back);
            }
            let body = json!({
                "apiVersion": self.xr.api_version,
                "kind": self.xr.kind,
                "status": new,
            });
            self.api()
                .patch_status(
                    &xr.name_any(),
                    &PatchParams::apply(&format!("{}/composite", self.opts.field_manager)).force(),
                    &Patch::Apply(&body),
                )
                .await
                .map_err(|e| Error::WriteStatus {
                    name: xr.name_any(),
                    source: Box::new(e),
                })?;
        }
        let conditions = |v: &Value| -> Vec<Condition> {
            v.get("conditions")
                .and_then(|c| serde_json::from_value(c.clone()).ok())
                .unwrap_or_default()
        };
        let mut events = transition_events(&conditions(&old), &conditions(&new));
        if let Some(error) = error {
            for e in events.iter_mut().filter(|e| e.warning) {
                e.reason = error.reason();
                e.action = error.action();
                e.related = error.related();
            }
        }
        for e in events.into_iter().chain(extra) {
            self.publish(xr, e).await;
        }
        Ok(None)
    }

    async fn publish(&self, xr: &DynamicObject, e: EventSpec) {
        let event = Event {
            type_: if e.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: e.reason.to_string(),
            note: Some(e.note),
            action: e.action.to_string(),
            secondary: e.related,
        };
        scaffold::publish_event(&self.recorder, xr, &self.xr, event).await;
    }
}
