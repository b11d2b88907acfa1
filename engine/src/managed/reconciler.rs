//! The generic managed reconciler.
//!
//! # Expected flow
//! 1. Paused objects get `Synced=False/ReconcilePaused` and nothing else happens.
//! 2. The finalizer is added before anything changes the external system: with the
//!    `external-create-pending` annotation (one patch) when the pass creates, else on its
//!    own before any other change and before the status is written.
//! 3. The provider connects (ProviderConfig + credentials) and observes. Every external
//!    call runs under `external_timeout`; a call past it is a transient error.
//! 4. Present but not this object's own (see `machine::claim`): nothing is changed, and
//!    `Synced=False/ExternalResourceNotOwned` says why, unless `spec.adoptExisting` or the
//!    object's own create records let the provider mark it first.
//!    Absent: the external name and the `external-create-pending` annotation are
//!    persisted, then `create` runs, then `external-create-succeeded` (or `-failed`) is
//!    persisted; a create that got no answer (`ProviderError::Unanswered`) records
//!    neither and stays pending, as if the process had died. Drifted: `update`. Deleting: `delete` until observe says absent, then the
//!    finalizer goes.
//! 5. Connection details go to the connection Secret (only when a value changed), the
//!    status is written (only when it changed), and the object is polled again after a
//!    jittered interval.
//!
//! # Guarantees
//! - No external create happens unless `external-create-pending` was persisted first: a
//!   crash between the create and the result annotation never creates a second copy.
//!   Because external names are persisted before the create, the next observe finds the
//!   object the interrupted create made, and the reconciler adopts it. When observe finds
//!   nothing, a kind whose identity is its external name
//!   ([`crate::managed::CreateIdentity::Deterministic`]) is created again; any other kind
//!   stops until a person looks.
//! - No external object that is not this managed resource's own is updated or deleted:
//!   only with `spec.adoptExisting` (never for a protected one), and read-only management
//!   policies only read.
//! - Steady state makes no Kubernetes writes: status, annotations and Secrets are written
//!   only when their content changes; events are published on transitions only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kube::api::{Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::Semaphore;
use tracing::{debug, instrument, warn};

use crate::api::common::{
    Condition, ConnectionDetails, ResourceStatus, SecretReference, annotations, capitalize,
    condition_type, find_condition, set_condition, set_kstatus_conditions,
};
use crate::connection_secret as secret;
use crate::managed::machine::{self, Effects, Error, Failure, Outcome, Step};
use crate::managed::own_writes::OwnWrites;
use crate::managed::timeout::{Deadline, TimedClient};
use crate::managed::{Connector, Managed, ProviderError};
use crate::scaffold::{self, Backoff, Event, FinalizerError, Next, Recorder, jitter};
use crate::stored::{self, StoredObject};

/// The finalizer every managed resource carries while its external resource may exist.
pub const FINALIZER: &str = "finalizer.managed.tessera.dev";

/// Settings of the managed controllers.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// How often an external resource is read again when nothing else happens.
    /// Each object can override it with the `tessera.dev/poll-interval` annotation.
    pub poll_interval: Duration,
    /// Reconciles running at once per kind.
    pub max_concurrent_reconciles: u16,
    /// External calls running at once per ProviderConfig.
    pub provider_config_concurrency: usize,
    /// The longest wait between retries after errors.
    pub max_backoff: Duration,
    /// How long one external call (connect, observe, create, update, delete) may take
    /// before it counts as a transient failure.
    pub external_timeout: Duration,
    /// Field manager for server-side apply and the controller name in events.
    pub field_manager: String,
    /// Crash-safety test hook: exit the process right after a successful external create,
    /// before its result is recorded (set by `TESSERA_FAULT_EXIT_AFTER_EXTERNAL_CREATE=1`, or `=NAME`).
    /// `Some("1")`: after any object's create; `Some(name)`: only after the create of the
    /// object `name` (so that another object's create running beside it cannot be the one).
    pub exit_after_external_create: Option<String>,
    /// The shard's label selector ([`crate::shard`]): only managed resources that match
    /// it are reconciled. `None`: all of them.
    pub shard: Option<String>,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            poll_interval: Duration::from_secs(60),
            max_concurrent_reconciles: 16,
            provider_config_concurrency: 10,
            max_backoff: Duration::from_secs(60),
            external_timeout: Duration::from_secs(30),
            field_manager: "tessera".to_string(),
            exit_after_external_create: None,
            shard: None,
        }
    }
}

struct Ctx<M, C> {
    client: kube::Client,
    connector: C,
    recorder: Recorder,
    opts: ControllerOptions,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    failures: Backoff,
    own_writes: OwnWrites,
    _kind: std::marker::PhantomData<fn() -> M>,
}

impl<M: Managed, C: Connector<M>> scaffold::Context for Ctx<M, C> {
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

/// Runs the controller of managed kind `M` until the process is asked to stop.
pub async fn run_controller<M, C>(client: kube::Client, connector: C, opts: ControllerOptions)
where
    M: Managed,
    C: Connector<M>,
{
    // Offered to the composites whose resources are of this kind: they read them from this
    // store (keeping their own apply entries) rather than holding a second copy of each.
    let ar = ApiResource::erase::<M>(&());
    let watch = scaffold::SharedWatch::start(
        client.clone(),
        ar.clone(),
        opts.shard.as_deref(),
        scaffold::Keep {
            manager_prefixes: vec![crate::naming::composed_managers(&opts.field_manager)],
            ..Default::default()
        },
    );
    watch.offer();
    let controller = watch.controller();
    let concurrency = opts.max_concurrent_reconciles;
    let ctx = Arc::new(Ctx {
        recorder: scaffold::recorder(client.clone(), opts.field_manager.clone()),
        client,
        connector,
        limits: Mutex::new(HashMap::new()),
        failures: Backoff::new(opts.max_backoff),
        own_writes: OwnWrites::default(),
        opts,
        _kind: std::marker::PhantomData,
    });
    scaffold::run(
        controller,
        ar,
        concurrency,
        stored::reading(StoredObject::typed::<M>, reconcile::<M, C>),
        ctx,
    )
    .await;
}

impl<M: Managed, C: Connector<M>> Ctx<M, C> {
    fn api(&self) -> Api<M> {
        Api::all(self.client.clone())
    }

    /// A JSON merge patch of `obj`: safe for map keys (annotations, spec fields) without
    /// reading the object first.
    async fn merge_patch(&self, obj: &M, patch: &serde_json::Value) -> Result<(), kube::Error> {
        let written = self
            .api()
            .patch(
                &obj.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await?;
        self.record_write(obj, &written);
        Ok(())
    }

    /// Remembers that `written` replaced `read`, see [`OwnWrites`].
    fn record_write(&self, read: &M, written: &M) {
        if let Some(uid) = read.meta().uid.as_deref() {
            self.own_writes.record(
                uid,
                read.meta().resource_version.as_deref(),
                written.meta().resource_version.as_deref(),
            );
        }
    }

    /// The semaphore limiting concurrent external calls through one ProviderConfig.
    fn limit(&self, provider_config: &str) -> Arc<Semaphore> {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits
            .entry(provider_config.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.opts.provider_config_concurrency)))
            .clone()
    }

    fn poll_interval(&self, mr: &M) -> Duration {
        let interval = mr
            .annotations()
            .get(annotations::POLL_INTERVAL)
            .and_then(|v| parse_duration(v))
            .unwrap_or(self.opts.poll_interval);
        jitter(interval, 0.1)
    }

    async fn publish(&self, mr: &M, type_: EventType, reason: &str, note: String) {
        scaffold::publish(&self.recorder, mr, &(), type_, reason, note).await;
    }
}

/// Parses `90s`, `5m`, `1h` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// The cluster writes of one reconcile of one object: the [`Effects`] of the state
/// machine. A live object without the finalizer gets it with the pass's first annotation
/// patch (see [`Effects::annotate`]), or on its own before anything else is changed.
struct Pass<'a, M, C> {
    ctx: &'a Ctx<M, C>,
    /// Whether the object still lacks the finalizer.
    needs_finalizer: AtomicBool,
}

impl<'a, M: Managed, C: Connector<M>> Pass<'a, M, C> {
    fn new(ctx: &'a Ctx<M, C>, obj: &M) -> Self {
        let needs_finalizer = obj.meta().deletion_timestamp.is_none()
            && !obj.finalizers().iter().any(|f| f == FINALIZER);
        Pass {
            ctx,
            needs_finalizer: AtomicBool::new(needs_finalizer),
        }
    }
}

/// A JSON patch that adds the managed finalizer to `obj` (testing the list as read, so a
/// finalizer someone else added meanwhile is never dropped) and sets `values` as
/// annotations (keeping the others).
fn finalizer_and_annotations<M: kube::Resource>(
    obj: &M,
    values: &[(&str, String)],
) -> serde_json::Value {
    let mut ops = if obj.finalizers().is_empty() {
        vec![
            json!({ "op": "test", "path": "/metadata/finalizers", "value": null }),
            json!({ "op": "add", "path": "/metadata/finalizers", "value": [FINALIZER] }),
        ]
    } else {
        vec![
            json!({ "op": "test", "path": "/metadata/finalizers", "value": obj.finalizers() }),
            json!({ "op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER }),
        ]
    };
    if values.is_empty() {
        return json!(ops);
    }
    let has_annotations = obj
        .meta()
        .annotations
        .as_ref()
        .is_some_and(|a| !a.is_empty());
    if has_annotations {
        for (k, v) in values {
            let key = k.replace('~', "~0").replace('/', "~1");
            ops.push(
                json!({ "op": "add", "path": format!("/metadata/annotations/{key}"), "value": v }),
            );
        }
    } else {
        let map: serde_json::Map<String, serde_json::Value> = values
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        ops.push(json!({ "op": "test", "path": "/metadata/annotations", "value": null }));
        ops.push(json!({ "op": "add", "path": "/metadata/annotations", "value": map }));
    }
    json!(ops)
}

impl<M: Managed, C: Connector<M>> Pass<'_, M, C> {
    /// Adds the finalizer together with `values` (annotations) in one JSON patch.
    async fn add_finalizer_with(&self, obj: &M, values: &[(&str, String)]) -> Result<(), Error> {
        let ops = finalizer_and_annotations(obj, values);
        let patch: json_patch::Patch =
            serde_json::from_value(ops).map_err(|e| Error::Serialize(obj.name_any(), e))?;
        let written = self
            .ctx
            .api()
            .patch(
                &obj.name_any(),
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await
            .map_err(|e| Error::Finalizer(obj.name_any(), e))?;
        self.needs_finalizer.store(false, Ordering::SeqCst);
        self.ctx.record_write(obj, &written);
        Ok(())
    }
}

#[async_trait]
impl<M: Managed, C: Connector<M>> Effects<M> for Pass<'_, M, C> {
    async fn annotate(&self, obj: &M, values: &[(&str, String)]) -> Result<(), Error> {
        if self.needs_finalizer.load(Ordering::SeqCst) {
            return self.add_finalizer_with(obj, values).await;
        }
        let annotations: serde_json::Map<String, serde_json::Value> = values
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let patch = json!({ "metadata": { "annotations": annotations } });
        self.ctx
            .merge_patch(obj, &patch)
            .await
            .map_err(|e| Error::WriteAnnotations(obj.name_any(), e))
    }

    async fn ensure_finalizer(&self, obj: &M) -> Result<(), Error> {
        if self.needs_finalizer.load(Ordering::SeqCst) {
            self.add_finalizer_with(obj, &[]).await?;
        }
        Ok(())
    }

    async fn remove_finalizer(&self, obj: &M) -> Result<(), Error> {
        scaffold::remove_finalizer(&self.ctx.api(), obj, FINALIZER)
            .await
            .map_err(|e| Error::Finalizer(obj.name_any(), e))
    }

    async fn late_initialize(&self, obj: &M, for_provider: serde_json::Value) -> Result<(), Error> {
        let patch = json!({ "spec": { "forProvider": for_provider } });
        self.ctx
            .merge_patch(obj, &patch)
            .await
            .map_err(|e| Error::WriteSpec(obj.name_any(), e))
    }

    async fn publish_secret(
        &self,
        obj: &M,
        target: &SecretReference,
        secret_type: Option<&str>,
        details: &ConnectionDetails,
    ) -> Result<(), Error> {
        secret::publish(
            &self.ctx.client,
            &self.ctx.opts.field_manager,
            obj,
            target,
            secret_type,
            details,
        )
        .await
        .map_err(|e| Error::WriteSecret(obj.name_any(), e))
    }

    async fn event(&self, obj: &M, reason: &str, note: String) {
        self.ctx.publish(obj, EventType::Normal, reason, note).await;
    }

    async fn warning(&self, obj: &M, reason: &str, note: String) {
        self.ctx
            .publish(obj, EventType::Warning, reason, note)
            .await;
    }

    fn after_external_create(&self, name: &str) {
        if self
            .ctx
            .opts
            .exit_after_external_create
            .as_deref()
            .is_some_and(|v| v == "1" || v == name)
        {
            warn!("exiting after an external create, before recording it (crash-safety test hook)");
            std::process::exit(86);
        }
    }
}

#[instrument(skip_all, fields(kind = %M::kind(&()), name = %obj.name_any()))]
async fn reconcile<M: Managed, C: Connector<M>>(
    obj: Arc<M>,
    ctx: Arc<Ctx<M, C>>,
) -> Result<Action, Error> {
    let deleting = obj.meta().deletion_timestamp.is_some();
    let has_finalizer = obj.finalizers().iter().any(|f| f == FINALIZER);
    let paused = obj
        .annotations()
        .get(annotations::PAUSED)
        .is_some_and(|v| v == "true");
    // A paused object is left alone before the finalizer branch: it gets no finalizer,
    // and one being deleted keeps its finalizer (and its external resource) until resumed.
    if paused && (has_finalizer || !deleting) {
        let outcome = Outcome {
            ready: None,
            synced: Condition::reconcile_paused(),
        };
        ctx.write_status(&obj, (*obj).clone(), outcome).await?;
        return Ok(Action::await_change());
    }
    if !deleting && !has_finalizer {
        // The pass adds the finalizer with its first write (see `Pass`), before anything
        // external is changed: a create costs one patch less.
        return sync(obj, &ctx).await;
    }
    scaffold::finalizer(&ctx.api(), FINALIZER, obj, |event| async {
        // Apply and Cleanup take the same path: the machine decides what deletion means
        // and removes the finalizer itself once nothing external is left.
        let (Event::Apply(obj) | Event::Cleanup(obj)) = event;
        sync(obj, &ctx).await.map(Next::Requeue)
    })
    .await
}

impl From<FinalizerError> for Error {
    fn from(e: FinalizerError) -> Self {
        Error::Finalizer(e.object, e.source)
    }
}

/// How soon a reconcile that found a cached version older than its own last write looks
/// again (status writes trigger no reconcile, so the newer version may bring none).
const STALE_CACHE_RETRY: Duration = Duration::from_millis(200);

/// Connects, drives the machine one step and writes the status it decided.
async fn sync<M: Managed, C: Connector<M>>(obj: Arc<M>, ctx: &Ctx<M, C>) -> Result<Action, Error> {
    if let Some(uid) = obj.meta().uid.as_deref()
        && ctx
            .own_writes
            .is_superseded(uid, obj.meta().resource_version.as_deref())
    {
        debug!("the watch cache has not yet seen this controller's last write; waiting for it");
        return Ok(Action::requeue(STALE_CACHE_RETRY));
    }
    let deleting = obj.meta().deletion_timestamp.is_some();
    let mut mr = (*obj).clone();
    let poll = ctx.poll_interval(&obj);
    let provider_config = obj.resource_spec().provider_config_name();
    let deadline = Deadline {
        timeout: ctx.opts.external_timeout,
        system: ctx.connector.external_system().to_string(),
        provider_config: provider_config.to_string(),
    };
    let pass = Pass::new(ctx, &obj);
    let connected = deadline
        .run("connect", ctx.connector.connect(&ctx.client, &obj))
        .await;
    let result = match connected {
        Ok(external) => {
            // Every call is bounded, so a hung external system holds a permit of its
            // ProviderConfig for at most the timeout.
            let external = TimedClient::new(external, deadline);
            let limit = ctx.limit(provider_config);
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = limit.acquire_owned().await.ok();
            machine::drive(&pass, &external, &mut mr, poll).await
        }
        Err(e) => Err(machine::release_uncreated(&pass, &obj, e).await),
    };
    match result {
        Ok(Step::Done { outcome, requeue }) => {
            ctx.failures.reset(obj.as_ref());
            pass.ensure_finalizer(&obj).await?;
            ctx.write_status(&obj, mr, *outcome).await?;
            Ok(requeue.map_or_else(Action::await_change, Action::requeue))
        }
        Ok(Step::FinalizerRemoved) | Err(Failure::Released) => {
            ctx.failures.reset(obj.as_ref());
            if let Some(uid) = obj.meta().uid.as_deref() {
                ctx.own_writes.forget(uid);
            }
            Ok(Action::await_change())
        }
        Err(Failure::Kube(e)) => Err(e),
        Err(Failure::Provider(e)) => {
            crate::metrics::reconcile_error(&scaffold::controller_name::<M>(&()), e.category());
            let requeue = match e {
                ProviderError::InvalidSpec(_) => poll,
                ProviderError::Transient(_)
                | ProviderError::Unanswered(_)
                | ProviderError::Config(_) => ctx.failures.next(obj.as_ref()),
            };
            let message = capitalize(&e.to_string());
            let previous = obj
                .resource_status()
                .and_then(|s| find_condition(&s.conditions, condition_type::SYNCED))
                .map(|c| c.message.clone());
            if previous.as_deref() != Some(message.as_str()) {
                ctx.publish(&obj, EventType::Warning, e.category(), message.clone())
                    .await;
            }
            // Added even when nothing could be done: deletion then still goes through
            // this controller (which releases what it never created).
            pass.ensure_finalizer(&obj).await?;
            let outcome = Outcome {
                ready: deleting.then(Condition::deleting),
                synced: Condition::reconcile_error(message),
            };
            // Keep the last good observed state: a failed call may have filled atProvider
            // partially.
            ctx.write_status(&obj, (*obj).clone(), outcome).await?;
            Ok(Action::requeue(requeue))
        }
    }
}

/// Applies the outcome to `mr`'s status and writes it, unless nothing changed.
impl<M: Managed, C: Connector<M>> Ctx<M, C> {
    async fn write_status(&self, obj: &M, mut mr: M, outcome: Outcome) -> Result<(), Error> {
        let generation = obj.meta().generation;
        let now = scaffold::now();
        let status: &mut ResourceStatus = mr.resource_status_mut();
        let mut conditions = status.conditions.clone();
        let stamp = |mut c: Condition| {
            c.observed_generation = generation;
            c
        };
        if let Some(ready) = outcome.ready {
            set_condition(&mut conditions, stamp(ready), &now);
        } else if find_condition(&conditions, condition_type::READY).is_none() {
            // The first reconcile always says Ready=False, so GitOps tools never take an
            // object without status for a healthy one.
            let ready = Condition::creating();
            set_condition(&mut conditions, stamp(ready), &now);
        }
        set_condition(&mut conditions, stamp(outcome.synced), &now);
        set_kstatus_conditions(&mut conditions, &now);
        status.conditions = conditions;
        status.observed_generation = generation;

        let value = serde_json::to_value(&mr).map_err(|e| Error::Serialize(obj.name_any(), e))?;
        let old = serde_json::to_value(obj).map_err(|e| Error::Serialize(obj.name_any(), e))?;
        let new_status = value.get("status").cloned().unwrap_or_default();
        if old.get("status") == Some(&new_status) {
            return Ok(());
        }
        let patch = json!({
            "apiVersion": M::api_version(&()),
            "kind": M::kind(&()),
            "status": new_status,
        });
        let written = self
            .api()
            .patch_status(
                &obj.name_any(),
                &PatchParams::apply(&self.opts.field_manager).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|e| Error::WriteStatus(obj.name_any(), e))?;
        self.record_write(obj, &written);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_seconds_minutes_and_hours() {
        let cases = [
            ("plain number means seconds", "30", Some(30)),
            ("seconds suffix", "45s", Some(45)),
            ("minutes suffix", "5m", Some(300)),
            ("hours suffix", "1h", Some(3600)),
            ("zero is not a poll interval", "0s", None),
            ("unknown unit is rejected", "5d", None),
            ("garbage is rejected", "soon", None),
        ];
        for (reason, input, want) in cases {
            assert_eq!(parse_duration(input).map(|d| d.as_secs()), want, "{reason}");
        }
    }
}
