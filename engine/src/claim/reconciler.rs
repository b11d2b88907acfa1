//! The Kubernetes side of the claim controller: watches, finalizer, applying the
//! composite, status and events.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::{debug, instrument};

use super::bind;
use crate::api::common::{Condition, capitalize};
use crate::api::xrd::CompositeResourceDefinition;
use crate::composition_options::{CompositionOptions, FINALIZER};
use crate::naming::{claim_composite_name, legacy_claim_composite_name};
use crate::scaffold::coalesce::StatusWrites;
use crate::scaffold::{self, Backoff, Event, FinalizerError, Next, Recorder, SharedWatch};
use crate::stored::{self, ExpandError, StoredObject};

/// Kubernetes failures of the claim controller. Problems a person has to fix become
/// conditions and events instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Adding or removing the finalizer failed.
    #[error("failed to update finalizers of claim {0}: {1}")]
    Finalizer(String, #[source] kube::Error),
    /// Reading, applying or deleting the composite failed.
    #[error("failed to {0} composite {1}: {2}")]
    Composite(&'static str, String, #[source] kube::Error),
    /// Writing the claim's status failed.
    #[error("failed to write status of claim {0}: {1}")]
    WriteStatus(String, #[source] kube::Error),
    /// The watch cache's copy of the claim could not be read.
    #[error(transparent)]
    Cached(#[from] ExpandError),
}

impl scaffold::ErrorReason for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Finalizer(..) => "UpdateFinalizer",
            Error::Composite(..) => "ApplyComposite",
            Error::WriteStatus(..) => "WriteStatus",
            Error::Cached(..) => "ReadCache",
        }
    }
}

struct Ctx {
    client: kube::Client,
    recorder: Recorder,
    opts: CompositionOptions,
    manager: String,
    xrd: Arc<CompositeResourceDefinition>,
    claim: ApiResource,
    xr: ApiResource,
    composites: Store<StoredObject>,
    backoff: Backoff,
    status_writes: StatusWrites,
}

/// The field manager of the claim controller's writes (the composite's apply, the claim's
/// status).
pub fn field_manager(opts: &CompositionOptions) -> String {
    format!("{}/claim", opts.field_manager)
}

/// Runs the controller of one claim kind, re-queued by `composites` (the composite
/// kind's watch, `composite::watch`), until it is aborted or the process is asked to
/// stop.
///
/// # Expected flow
/// 1. The claim gets [`FINALIZER`].
/// 2. Its composite, named [`claim_composite_name`], is server-side applied (field manager
///    `<opts.field_manager>/claim`) with the claim's spec, `spec.claimRef`, the claim labels
///    and a `writeConnectionSecretToRef` pointing into the claim's namespace, and with the
///    composite controller's finalizer (so that the composite controller does not patch
///    it in). A composite of that name that belongs to something else is never touched,
///    nor is one being deleted.
/// 3. The claim's status gets `resourceRef`, the composite's Ready and Synced conditions
///    (with the composite's messages) and the composite's own status fields (all but the
///    engine's bookkeeping, [`bind::ENGINE_STATUS_FIELDS`]), so the XRD's printer columns
///    show on the claim; written only when something changed, and a field removed from
///    the composite is removed from the claim. A change that only moves a `Creating`
///    status forward waits while the last write is recent ([`crate::scaffold::coalesce`]).
/// 4. On deletion the composite is deleted and the finalizer stays until it is gone: the
///    composite deletes its composed resources (in dependsOn-reverse order) and, through
///    its owner reference, the connection Secret.
///
/// # Guarantees
/// - The claim's spec is never written: Git owns it.
/// - Composites are watched, so a composite's status change reaches its claim at once.
/// - Steady state makes no writes: the composite apply is a no-op on the API server, the
///   status is written only when it changed, events only on transitions.
pub async fn run(
    client: kube::Client,
    xrd: Arc<CompositeResourceDefinition>,
    claim: ApiResource,
    xr: ApiResource,
    opts: CompositionOptions,
    composites: Arc<SharedWatch>,
) {
    let manager = field_manager(&opts);
    let controller = scaffold::controller_stored(
        client.clone(),
        claim.clone(),
        opts.shard.as_deref(),
        scaffold::Keep {
            managers: vec![manager.clone()],
            drop_last_applied: true,
            ..Default::default()
        },
    );

    let xr_events = composites.subscribe();
    let claim_ar = claim.clone();
    let to_claim = move |x: StoredObject| {
        let x = x.expand().ok()?;
        bind::claim_of(&x)
            .map(|(ns, name)| ObjectRef::new_with(&name, claim_ar.clone()).within(&ns))
    };
    let controller = controller.watches_stream_with(xr_events, to_claim, xr.clone());

    tracing::info!(xrd = %xrd.name_any(), kind = %claim.kind, "claim controller starting");
    let concurrency = opts.max_concurrent_reconciles;
    let dyntype = claim.clone();
    let ctx = Arc::new(Ctx {
        recorder: scaffold::recorder(client.clone(), manager.clone()),
        client,
        opts,
        manager,
        xrd,
        claim,
        xr,
        composites: composites.store(),
        backoff: Backoff::default(),
        status_writes: StatusWrites::default(),
    });
    scaffold::run(
        controller,
        dyntype,
        concurrency,
        stored::reading(StoredObject::expand, reconcile),
        ctx,
    )
    .await;
}

impl scaffold::Context for Ctx {
    fn backoff(&self) -> &Backoff {
        &self.backoff
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
        Error::Finalizer(e.object, e.source)
    }
}

fn key(claim: &DynamicObject) -> String {
    format!(
        "{}/{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    )
}

#[instrument(skip(claim, ctx), fields(kind = %ctx.claim.kind, name = %claim.name_any(), namespace = ?claim.namespace()))]
async fn reconcile(claim: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let namespace = claim.namespace().unwrap_or_default();
    let claims: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &namespace, &ctx.claim);
    scaffold::finalizer(&claims, FINALIZER, claim, |event| async {
        match event {
            Event::Apply(claim) => ctx.apply(&claim).await.map(Next::Requeue),
            Event::Cleanup(claim) => ctx.finalize(&claim).await,
        }
    })
    .await
}

impl Ctx {
    /// Applies the claim's composite and reflects its state onto the claim.
    async fn apply(&self, claim: &DynamicObject) -> Result<Action, Error> {
        let ctx = self;
        let namespace = claim.namespace().unwrap_or_default();
        let name = claim.name_any();
        let xr_name = ctx.composite_name_of(claim).await?;
        let poll = scaffold::jitter(ctx.opts.poll_interval, 0.1);
        let existing = ctx.composite(&xr_name, false).await?;
        if let Some(message) = bind::conflict(&namespace, &name, existing.as_ref()) {
            // Not this claim's composite: none of its status is the claim's.
            let ready = Condition::unavailable(&message);
            let synced = Condition::reconcile_error(message);
            ctx.write_failure(claim, &xr_name, ready, synced, None, None)
                .await?;
            return Ok(Action::requeue(poll));
        }

        let desired = match bind::desired_composite(claim, &ctx.xrd.spec, &xr_name) {
            Ok(desired) => desired,
            Err(e) => {
                let message = capitalize(&e.to_string());
                let ready = Condition::creating().with_message(&message);
                let synced = Condition {
                    reason: e.reason().to_string(),
                    ..Condition::reconcile_error(message)
                };
                ctx.write_failure(claim, &xr_name, ready, synced, None, existing.as_ref())
                    .await?;
                return Ok(Action::requeue(poll));
            }
        };
        // Skip the apply when the composite already holds exactly what this claim asks for:
        // a no-op apply changes nothing but is still a write request, every poll, per claim.
        let body = bind::with_finalizer(desired);
        let params = PatchParams::apply(&ctx.manager).force();
        let result = match existing.clone() {
            Some(xr) if !bind::composite_needs_apply(&body, &xr, &ctx.manager) => Ok(xr),
            _ => {
                ctx.xr_api()
                    .patch(&xr_name, &params, &Patch::Apply(&body))
                    .await
            }
        };
        let applied = match result {
            Ok(xr) => xr,
            // The API server refused the composite (e.g. a field the schema forbids): the
            // claim has to change.
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => {
                let message = format!("Cannot apply composite {xr_name}: {}", s.message);
                let rref = existing
                    .as_ref()
                    .map(|_| bind::resource_ref(&ctx.xr, &xr_name));
                let ready = Condition::creating().with_message(&message);
                let synced = Condition::reconcile_error(message);
                ctx.write_failure(claim, &xr_name, ready, synced, rref, existing.as_ref())
                    .await?;
                return Ok(Action::requeue(poll));
            }
            Err(e) => return Err(Error::Composite("apply", xr_name, e)),
        };
        let (ready, synced) = bind::conditions_from(&applied);
        let want = bind::ClaimStatus {
            ready,
            synced,
            resource_ref: Some(bind::resource_ref(&ctx.xr, &xr_name)),
            fields: bind::copied_status(&applied),
        };
        let held_back = ctx.write_status(claim, &xr_name, want).await?;
        ctx.backoff.reset(claim);
        Ok(Action::requeue(
            held_back.map_or(poll, |wait| wait.min(poll)),
        ))
    }

    /// Writes `ready`, `synced` (a failure), and the composite's status `fields` (kept while
    /// the claim cannot be applied, as the composite keeps them).
    async fn write_failure(
        &self,
        claim: &DynamicObject,
        xr_name: &str,
        ready: Condition,
        synced: Condition,
        resource_ref: Option<Value>,
        composite: Option<&DynamicObject>,
    ) -> Result<(), Error> {
        let want = bind::ClaimStatus {
            ready,
            synced,
            resource_ref,
            fields: composite.map(bind::copied_status).unwrap_or_default(),
        };
        // A failure changes Synced, so it is never held back.
        self.write_status(claim, xr_name, want).await.map(drop)
    }

    /// The name of the claim's composite: the one its status already records, else the
    /// composite of an earlier version's 8-digit name when it exists and belongs to this
    /// claim (live objects are never renamed), else the 64-bit name for a new one.
    async fn composite_name_of(&self, claim: &DynamicObject) -> Result<String, Error> {
        if let Some(bound) = bind::bound_composite_name(claim, &self.xrd.spec) {
            return Ok(bound);
        }
        let namespace = claim.namespace().unwrap_or_default();
        let name = claim.name_any();
        let legacy = legacy_claim_composite_name(&namespace, &name);
        let existing = self.composite(&legacy, false).await?;
        Ok(match existing {
            Some(xr) if bind::conflict(&namespace, &name, Some(&xr)).is_none() => legacy,
            _ => claim_composite_name(&namespace, &name),
        })
    }

    fn xr_api(&self) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), &self.xr)
    }

    /// The composite: from the watch cache when `fresh` is false and it is there, else
    /// read from the API server.
    async fn composite(&self, name: &str, fresh: bool) -> Result<Option<DynamicObject>, Error> {
        if !fresh
            && let Some(xr) = self
                .composites
                .get(&ObjectRef::new_with(name, self.xr.clone()))
            && let Ok(xr) = xr.expand()
        {
            return Ok(Some(xr));
        }
        self.xr_api()
            .get_opt(name)
            .await
            .map_err(|e| Error::Composite("read", name.to_string(), e))
    }

    /// Deletes the claim's composite and keeps the finalizer until the composite is gone.
    async fn finalize(&self, claim: &DynamicObject) -> Result<Next, Error> {
        let xr_name = &self.composite_name_of(claim).await?;
        let namespace = claim.namespace().unwrap_or_default();
        // Fresh, not cached: a stale "gone" would orphan the composite.
        let xr = self.composite(xr_name, true).await?;
        let ours = xr
            .as_ref()
            .filter(|x| bind::conflict(&namespace, &claim.name_any(), Some(x)).is_none());
        let Some(xr) = ours else {
            return Ok(Next::Release);
        };
        if xr.meta().deletion_timestamp.is_none() {
            // Background: the composite's own finalizer deletes its composed resources in
            // dependsOn-reverse order; foreground deletion would let the garbage collector
            // delete them all at once.
            match self
                .xr_api()
                .delete(xr_name, &DeleteParams::background())
                .await
            {
                Ok(_) => debug!(composite = %xr_name, "deleting composite of deleted claim"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(Error::Composite("delete", xr_name.to_string(), e)),
            }
        }
        let (ready, synced) = bind::deleting_conditions(xr);
        let want = bind::ClaimStatus {
            ready,
            synced,
            resource_ref: Some(bind::resource_ref(&self.xr, xr_name)),
            fields: bind::copied_status(xr),
        };
        // Never held back: the claim's Ready says Deleting.
        self.write_status(claim, xr_name, want).await?;
        // The composite watch re-queues when it is gone; the requeue is a safety net.
        Ok(Next::Requeue(Action::requeue(
            self.opts.poll_interval.min(Duration::from_secs(5)),
        )))
    }

    /// Writes the claim's status (Ready, Synced, `resourceRef`, `observedGeneration` and
    /// the composite's status fields) with server-side apply, only when something changed,
    /// and publishes the events of the transitions. A change that only moves a `Creating`
    /// status forward waits while the last write is recent
    /// ([`crate::scaffold::coalesce`]): returns how long it waits.
    async fn write_status(
        &self,
        claim: &DynamicObject,
        xr_name: &str,
        want: bind::ClaimStatus,
    ) -> Result<Option<Duration>, Error> {
        let new_ref = want.resource_ref.clone();
        let Some(write) = bind::status_write(claim, want, &self.manager, &scaffold::now()) else {
            return Ok(None);
        };
        let live_status = claim.data.get("status").cloned().unwrap_or(Value::Null);
        let id = claim.uid().unwrap_or_else(|| key(claim));
        if let Some(wait) =
            self.status_writes
                .admit(&id, &live_status, &write.status, &["resourceRef"])
        {
            return Ok(Some(wait));
        }
        let old: Vec<Condition> = claim
            .data
            .pointer("/status/conditions")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default();
        let patch = json!({
            "apiVersion": self.claim.api_version,
            "kind": self.claim.kind,
            "status": write.status,
        });
        let claims: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &claim.namespace().unwrap_or_default(),
            &self.claim,
        );
        claims
            .patch_status(
                &claim.name_any(),
                &PatchParams::apply(&self.manager).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|e| Error::WriteStatus(key(claim), e))?;
        let old_ref = claim.data.pointer("/status/resourceRef");
        for (type_, reason, note) in
            bind::events(xr_name, &old, &write.conditions, old_ref, new_ref.as_ref())
        {
            scaffold::publish(&self.recorder, claim, &self.claim, type_, &reason, note).await;
        }
        Ok(None)
    }
}
