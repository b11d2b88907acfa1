//! The XRD controller: applies the CRDs of each XRD, runs the composite and claim
//! controllers of its kinds, and refuses deletion while composites or claims exist.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;
use tracing::{info, instrument};

use super::conditions::{
    ControllerHealth, CrdState, Observation, next_status, reasons, transitions,
};
use super::crd::{ANNOTATION_XRD, LABEL_XRD_CRD, claim_crd, composite_crd};
use super::resources::{claim_resource, composite_resource};
use crate::api::common::capitalize;
use crate::api::xrd::CompositeResourceDefinition;
use crate::composition_options::{CompositionOptions, FINALIZER};
use crate::scaffold::{self, Backoff, Event, FinalizerError, Next, Recorder, Supervised};

/// Kubernetes failures of the XRD controller. Problems with the XRD itself are not
/// errors here: they become conditions and events.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Adding or removing the finalizer failed.
    #[error("failed to update finalizers of XRD {0}: {1}")]
    Finalizer(String, #[source] kube::Error),
    /// Writing the XRD's status failed.
    #[error("failed to write status of XRD {0}: {1}")]
    WriteStatus(String, #[source] kube::Error),
    /// Listing the composites or claims of a deleted XRD failed.
    #[error("failed to list {0} of XRD {1}: {2}")]
    List(String, String, #[source] kube::Error),
    /// Reading or deleting a generated CRD failed.
    #[error("failed to read or delete CRD {0}: {1}")]
    Crd(String, #[source] kube::Error),
}

impl scaffold::ErrorReason for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Finalizer(..) => "UpdateFinalizer",
            Error::WriteStatus(..) => "WriteStatus",
            Error::List(..) => "ListResources",
            Error::Crd(..) => "ApplyCRD",
        }
    }
}

/// The per-XRD controllers that run (each under a supervisor task), what they were
/// started from, and how they fared.
struct Running {
    fingerprint: u64,
    tasks: Vec<JoinHandle<()>>,
    /// The watch of the composites both controllers read.
    composites: Arc<scaffold::SharedWatch>,
    health: Arc<Mutex<Vec<ControllerHealth>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Ctx {
    client: kube::Client,
    recorder: Recorder,
    opts: CompositionOptions,
    running: Mutex<HashMap<String, Running>>,
    backoff: Backoff,
    /// Re-queues an XRD when one of its controllers stopped or restarted.
    wake: mpsc::UnboundedSender<ObjectRef<CompositeResourceDefinition>>,
}

/// Runs the XRD controller until the process is asked to stop.
///
/// For every XRD it adds [`FINALIZER`], server-side applies the composite and claim CRDs
/// (field manager `opts.field_manager`), and once the API server reports them Established
/// starts `composite::run` and `claim::run` for the XRD's kinds, restarting them when what
/// they were started from changes (kinds, referenceable version, connection secret keys,
/// composition defaults). `revisions::run_revisions` runs beside it, started by the caller.
///
/// The composite and claim controllers run supervised: one that ends (a panic outside a
/// reconcile, or a return) while its XRD exists is restarted with backoff, logged as an
/// error with its restart count, and reported on the XRD (a Warning event
/// `ControllerRestarted`, and the condition `ControllersRunning`, `False` until it runs
/// again).
///
/// Deleting an XRD never cascades: while a composite or claim of its kinds exists, the
/// finalizer stays and the XRD says why; afterwards the controllers stop, the CRDs are
/// deleted and the finalizer is removed.
pub async fn run(client: kube::Client, opts: CompositionOptions) {
    let concurrency = opts.max_concurrent_reconciles;
    let (wake, woken) = mpsc::unbounded();
    let ctx = Arc::new(Ctx {
        recorder: scaffold::recorder(client.clone(), format!("{}/xrd", opts.field_manager)),
        client: client.clone(),
        opts,
        running: Mutex::new(HashMap::new()),
        backoff: Backoff::default(),
        wake,
    });
    // A generated CRD becoming Established (or being changed by someone) re-queues its XRD.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let controller = scaffold::controller(Api::<CompositeResourceDefinition>::all(client), ())
        .watches(
            crds,
            watcher::Config::default().labels(LABEL_XRD_CRD),
            |crd| {
                crd.annotations()
                    .get(ANNOTATION_XRD)
                    .map(|name| ObjectRef::new(name))
            },
        )
        .reconcile_on(woken);
    scaffold::run(controller, (), concurrency, reconcile, ctx.clone()).await;
    // Asked to stop: the composite and claim controllers finish their reconciles in
    // flight too (they stop on the same signal) before their tasks are dropped.
    let tasks: Vec<JoinHandle<()>> = {
        let mut running = ctx.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .values_mut()
            .flat_map(|r| std::mem::take(&mut r.tasks))
            .collect()
    };
    futures::future::join_all(tasks).await;
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

#[instrument(skip(xrd, ctx), fields(kind = "CompositeResourceDefinition", name = %xrd.name_any()))]
async fn reconcile(xrd: Arc<CompositeResourceDefinition>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let api: Api<CompositeResourceDefinition> = Api::all(ctx.client.clone());
    if xrd.meta().deletion_timestamp.is_some() && !xrd.finalizers().iter().any(|f| f == FINALIZER) {
        // Someone removed the finalizer by hand: the controllers must stop all the same.
        ctx.stop(&xrd.name_any());
    }
    scaffold::finalizer(&api, FINALIZER, xrd, |event| async {
        match event {
            Event::Apply(xrd) => ctx.apply(&xrd).await.map(Next::Requeue),
            Event::Cleanup(xrd) => ctx.finalize(&xrd).await,
        }
    })
    .await
}

impl Ctx {
    /// Applies the XRD's CRDs and, once they are Established, runs its controllers.
    async fn apply(&self, xrd: &CompositeResourceDefinition) -> Result<Action, Error> {
        let (observation, requeue) = match self.apply_crds(xrd).await? {
            Ok((composite, claim)) => {
                let established =
                    composite.established && claim.as_ref().is_none_or(|c| c.established);
                let running = established && self.ensure_running(xrd);
                let controllers = if running {
                    self.health(&xrd.name_any())
                } else {
                    Vec::new()
                };
                self.backoff.reset(xrd);
                // The CRD watch re-queues as soon as they are Established; the requeue is a
                // safety net.
                let requeue = if running {
                    None
                } else {
                    Some(Duration::from_secs(2))
                };
                let obs = Observation::Applied {
                    composite,
                    claim,
                    running,
                    controllers,
                };
                (obs, requeue)
            }
            Err(message) => {
                let wait = self.backoff.next(xrd).min(self.opts.poll_interval);
                (Observation::Failed { message }, Some(wait))
            }
        };
        self.write_status(xrd, &observation).await?;
        Ok(requeue.map_or_else(Action::await_change, Action::requeue))
    }
    /// Applies the XRD's CRDs. The outer error is a Kubernetes failure; the inner one a
    /// problem with the XRD (or its CRDs) that a person has to fix, as a message.
    async fn apply_crds(
        &self,
        xrd: &CompositeResourceDefinition,
    ) -> Result<Result<(CrdState, Option<CrdState>), String>, Error> {
        let generated = composite_crd(xrd).and_then(|c| Ok((c, claim_crd(xrd)?)));
        let (composite, claim) = match generated {
            Ok(crds) => crds,
            Err(e) => return Ok(Err(capitalize(&e.to_string()))),
        };
        let composite = match self.apply_crd(xrd, &composite).await? {
            Ok(state) => state,
            Err(message) => return Ok(Err(message)),
        };
        let claim = match claim {
            None => None,
            Some(crd) => match self.apply_crd(xrd, &crd).await? {
                Ok(state) => Some(state),
                Err(message) => return Ok(Err(message)),
            },
        };
        Ok(Ok((composite, claim)))
    }

    async fn apply_crd(
        &self,
        xrd: &CompositeResourceDefinition,
        crd: &CustomResourceDefinition,
    ) -> Result<Result<CrdState, String>, Error> {
        let name = crd.name_any();
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let existing = api
            .get_opt(&name)
            .await
            .map_err(|e| Error::Crd(name.clone(), e))?;
        if let Some(existing) = &existing
            && existing.annotations().get(ANNOTATION_XRD) != Some(&xrd.name_any())
        {
            // Never take over a CRD someone else defined (a provider's, or another XRD's).
            let owner = existing
                .annotations()
                .get(ANNOTATION_XRD)
                .map_or_else(|| "not by an XRD".to_string(), |o| format!("by XRD {o}"));
            return Ok(Err(format!(
                "CRD {name} already exists and is defined {owner}; choose other names for this XRD"
            )));
        }
        // Skip the apply when the CRD already says all of it: a no-op apply is still a
        // write request, every poll, per XRD.
        let live = existing.as_ref().and_then(|c| serde_json::to_value(c).ok());
        let unchanged = serde_json::to_value(crd).is_ok_and(|want| {
            !crate::objects::needs_apply(&want, live.as_ref(), &self.opts.field_manager)
        });
        let params = PatchParams::apply(&self.opts.field_manager).force();
        let result = match existing {
            Some(crd) if unchanged => Ok(crd),
            _ => api.patch(&name, &params, &Patch::Apply(crd)).await,
        };
        match result {
            Ok(applied) => {
                let established = applied
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                Ok(Ok(CrdState { name, established }))
            }
            // The API server refused the CRD (e.g. a schema that is not structural):
            // the XRD has to change.
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => Ok(Err(format!(
                "The API server refused CRD {name}: {}",
                s.message
            ))),
            Err(e) => Err(Error::Crd(name, e)),
        }
    }

    /// Starts the composite and claim controllers of the XRD unless they already run with
    /// the same inputs. Returns whether they run.
    fn ensure_running(&self, xrd: &CompositeResourceDefinition) -> bool {
        let Some(xr) = composite_resource(xrd) else {
            return false;
        };
        let name = xrd.name_any();
        let fingerprint = fingerprint(xrd);
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = running.get(&name)
            && r.fingerprint == fingerprint
            && r.tasks.iter().all(|t| !t.is_finished())
            && !r.composites.is_finished()
        {
            return true;
        }
        // Dropping the old entry aborts its tasks before the new ones start.
        let restarted = running.remove(&name).is_some();
        let shared = Arc::new(xrd.clone());
        let claim = claim_resource(xrd);
        let health = Arc::new(Mutex::new(
            std::iter::once(COMPOSITE)
                .chain(claim.as_ref().map(|_| CLAIM))
                .map(ControllerHealth::new)
                .collect(),
        ));
        // One watch of the composites for both controllers; it stops with them.
        let composites = crate::composite::watch(self.client.clone(), xr.clone(), &self.opts);
        let mut tasks = vec![self.supervised(&shared, COMPOSITE, &health, {
            let (client, xrd, xr, opts, composites) = (
                self.client.clone(),
                shared.clone(),
                xr.clone(),
                self.opts.clone(),
                composites.clone(),
            );
            move || {
                let run = crate::composite::run(
                    client.clone(),
                    xrd.clone(),
                    xr.clone(),
                    opts.clone(),
                    composites.clone(),
                );
                injectable(xrd.name_any(), COMPOSITE, run)
            }
        })];
        if let Some(claim) = claim {
            tasks.push(self.supervised(&shared, CLAIM, &health, {
                let (client, xrd, xr, opts, composites) = (
                    self.client.clone(),
                    shared.clone(),
                    xr.clone(),
                    self.opts.clone(),
                    composites.clone(),
                );
                move || {
                    let run = crate::claim::run(
                        client.clone(),
                        xrd.clone(),
                        claim.clone(),
                        xr.clone(),
                        opts.clone(),
                        composites.clone(),
                    );
                    injectable(xrd.name_any(), CLAIM, run)
                }
            }));
        }
        info!(xrd = %name, kind = %xr.kind, restarted, "started composite and claim controllers");
        running.insert(
            name,
            Running {
                fingerprint,
                tasks,
                composites,
                health,
            },
        );
        true
    }

    /// Runs the `controller` (composite or claim) controller of `xrd`, as `start` makes
    /// it, under a supervisor that restarts it when it ends and reports each stop on the
    /// XRD (a Warning event now, the condition at the re-queued reconcile).
    fn supervised<S, Fut>(
        &self,
        xrd: &Arc<CompositeResourceDefinition>,
        controller: &'static str,
        health: &Arc<Mutex<Vec<ControllerHealth>>>,
        start: S,
    ) -> JoinHandle<()>
    where
        S: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (xrd, health) = (xrd.clone(), health.clone());
        let (recorder, wake) = (self.recorder.clone(), self.wake.clone());
        let kind = xrd.spec.names.kind.clone();
        tokio::spawn(async move {
            let log_name = format!("{controller} controller of XRD {}", xrd.name_any());
            let report = move |s: Supervised| {
                if let Some(h) = health
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter_mut()
                    .find(|h| h.controller == controller)
                {
                    h.observe(s);
                }
                if s != (Supervised::Started { restarts: 0 }) {
                    let _ = wake.unbounded_send(ObjectRef::from_obj(xrd.as_ref()));
                }
                let (recorder, xrd, kind) = (recorder.clone(), xrd.clone(), kind.clone());
                async move {
                    if let Supervised::Stopped { restarts, panicked } = s {
                        let how = if panicked { "panicked" } else { "stopped" };
                        let note = format!(
                            "The {controller} controller of {kind} {how} unexpectedly and is being restarted (restart {restarts} since it started); see the controller's logs"
                        );
                        scaffold::publish(
                            &recorder,
                            xrd.as_ref(),
                            &(),
                            EventType::Warning,
                            reasons::CONTROLLER_RESTARTED,
                            note,
                        )
                        .await;
                    }
                }
            };
            scaffold::supervise(&log_name, start, report).await;
        })
    }

    /// How the XRD's controllers fared since they were started.
    fn health(&self, name: &str) -> Vec<ControllerHealth> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.get(name).map_or_else(Vec::new, |r| {
            r.health.lock().unwrap_or_else(|e| e.into_inner()).clone()
        })
    }

    /// Stops the XRD's controllers (aborts their tasks).
    fn stop(&self, name: &str) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.remove(name).is_some() {
            info!(xrd = %name, "stopped composite and claim controllers");
        }
    }

    /// Deletion: refuse while composites or claims exist; otherwise stop the controllers,
    /// delete the CRDs and remove the finalizer.
    async fn finalize(&self, xrd: &CompositeResourceDefinition) -> Result<Next, Error> {
        let name = xrd.name_any();
        let composites = self.count(&name, composite_resource(xrd)).await?;
        let claims = self.count(&name, claim_resource(xrd)).await?;
        if let Some(message) = blocked_message(xrd, composites, claims) {
            // Claims being deleted need their controllers, even after a restart.
            self.ensure_running(xrd);
            self.write_status(xrd, &Observation::DeletionBlocked { message })
                .await?;
            return Ok(Next::Requeue(Action::requeue(
                self.opts.poll_interval.min(Duration::from_secs(10)),
            )));
        }
        self.stop(&name);
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let generated = [composite_crd(xrd).ok(), claim_crd(xrd).ok().flatten()];
        for crd in generated.into_iter().flatten() {
            let crd_name = crd.name_any();
            let existing = api
                .get_opt(&crd_name)
                .await
                .map_err(|e| Error::Crd(crd_name.clone(), e))?;
            // Only the CRDs this XRD defined.
            if existing.is_some_and(|c| c.annotations().get(ANNOTATION_XRD) == Some(&name)) {
                match api.delete(&crd_name, &Default::default()).await {
                    Ok(_) => info!(xrd = %name, crd = %crd_name, "deleted CRD"),
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(Error::Crd(crd_name, e)),
                }
            }
        }
        Ok(Next::Release)
    }

    /// How many objects of a kind exist (0 when the kind is not served).
    async fn count(&self, xrd: &str, kind: Option<ApiResource>) -> Result<usize, Error> {
        let Some(ar) = kind else { return Ok(0) };
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
        match api.list_metadata(&ListParams::default()).await {
            Ok(list) => Ok(list.items.len()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(0),
            Err(e) => Err(Error::List(ar.plural, xrd.to_string(), e)),
        }
    }

    /// Writes the status the observation implies, only when it changed, and publishes the
    /// events of its transitions.
    async fn write_status(
        &self,
        xrd: &CompositeResourceDefinition,
        obs: &Observation,
    ) -> Result<(), Error> {
        let status = next_status(xrd, obs, &scaffold::now());
        let old = xrd.status.clone().unwrap_or_default();
        if status == old {
            return Ok(());
        }
        let name = xrd.name_any();
        let patch = json!({
            "apiVersion": "apiextensions.tessera.dev/v1",
            "kind": "CompositeResourceDefinition",
            "status": status,
        });
        let api: Api<CompositeResourceDefinition> = Api::all(self.client.clone());
        api.patch_status(
            &name,
            &PatchParams::apply(&self.opts.field_manager).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|e| Error::WriteStatus(name, e))?;
        for (type_, reason, note) in transitions(&old.conditions, &status.conditions) {
            scaffold::publish(&self.recorder, xrd, &(), type_, &reason, note).await;
        }
        Ok(())
    }
}

/// The names of the per-XRD controllers, in logs, events and conditions.
const COMPOSITE: &str = "composite";
const CLAIM: &str = "claim";

/// `run`, which in tests can be made to panic once (see `testing::kill_controller_once`).
#[cfg(any(test, feature = "testing"))]
async fn injectable(xrd: String, controller: &'static str, run: impl Future<Output = ()>) {
    tokio::select! {
        () = run => {}
        () = crate::testing::killed(&xrd, controller) => {
            std::panic::panic_any(crate::testing::INJECTED_PANIC)
        }
    }
}

#[cfg(not(any(test, feature = "testing")))]
async fn injectable(_xrd: String, _controller: &'static str, run: impl Future<Output = ()>) {
    run.await;
}

/// Why deletion has to wait, or `None` when nothing of the XRD's kinds exists.
fn blocked_message(
    xrd: &CompositeResourceDefinition,
    composites: usize,
    claims: usize,
) -> Option<String> {
    if composites > 0 {
        let (what, verb, them) = match composites {
            1 => ("1 composite".to_string(), "exists", "it"),
            n => (format!("{n} composites"), "exist", "them"),
        };
        let or_claims = match (xrd.spec.claim_names.is_some(), composites) {
            (false, _) => "",
            (true, 1) => " (or its claim)",
            (true, _) => " (or their claims)",
        };
        let kind = &xrd.spec.names.kind;
        return Some(format!(
            "Cannot delete: {what} of {kind} still {verb}; delete {them}{or_claims} first"
        ));
    }
    if claims > 0 {
        let (what, verb, them) = match claims {
            1 => ("1 claim".to_string(), "exists", "it"),
            n => (format!("{n} claims"), "exist", "them"),
        };
        let kind = xrd
            .spec
            .claim_names
            .as_ref()
            .map_or("", |c| c.kind.as_str());
        return Some(format!(
            "Cannot delete: {what} of {kind} still {verb}; delete {them} first"
        ));
    }
    None
}

/// A hash of what the composite and claim controllers of an XRD are started from; when
/// it changes they are restarted. Schema and printer-column changes only re-apply CRDs.
fn fingerprint(xrd: &CompositeResourceDefinition) -> u64 {
    let spec = &xrd.spec;
    let inputs = json!({
        "group": spec.group,
        "kind": spec.names.kind,
        "plural": spec.names.plural,
        "claim": spec.claim_names.as_ref().map(|c| (&c.kind, &c.plural)),
        "version": spec.referenceable_version().map(|v| &v.name),
        "keys": spec.connection_secret_keys,
        "secretType": spec.connection_secret_type,
        "default": spec.default_composition_ref,
        "enforced": spec.enforced_composition_ref,
        "policy": spec.default_composition_update_policy,
        "claimSelection": spec.claim_composition_selection,
    });
    let mut h = std::collections::hash_map::DefaultHasher::new();
    inputs.to_string().hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn xrd(edit: impl FnOnce(&mut serde_json::Value)) -> CompositeResourceDefinition {
        let mut v = json!({
            "apiVersion": "apiextensions.tessera.dev/v1",
            "kind": "CompositeResourceDefinition",
            "metadata": { "name": "xdbs.example.org" },
            "spec": {
                "group": "example.org",
                "names": { "kind": "XPostgresDatabase", "plural": "xdbs" },
                "claimNames": { "kind": "PostgresDatabase", "plural": "dbs" },
                "versions": [
                    { "name": "v1", "served": true, "referenceable": true },
                    { "name": "v2", "served": true, "referenceable": false },
                ],
            },
        });
        edit(&mut v);
        serde_json::from_value(v).expect("test XRD")
    }

    #[test]
    fn deletion_is_blocked_with_a_message_that_says_what_to_delete() {
        let x = xrd(|_| {});
        let cases = [
            (
                3,
                3,
                Some(
                    "Cannot delete: 3 composites of XPostgresDatabase still exist; delete them (or their claims) first",
                ),
            ),
            (
                1,
                0,
                Some(
                    "Cannot delete: 1 composite of XPostgresDatabase still exists; delete it (or its claim) first",
                ),
            ),
            (
                0,
                2,
                Some("Cannot delete: 2 claims of PostgresDatabase still exist; delete them first"),
            ),
            (
                0,
                1,
                Some("Cannot delete: 1 claim of PostgresDatabase still exists; delete it first"),
            ),
            (0, 0, None),
        ];
        for (composites, claims, want) in cases {
            assert_eq!(
                blocked_message(&x, composites, claims).as_deref(),
                want,
                "{composites} composites, {claims} claims"
            );
        }
        let no_claims = xrd(|v| {
            v["spec"].as_object_mut().map(|s| s.remove("claimNames"));
        });
        assert_eq!(
            blocked_message(&no_claims, 2, 0).as_deref(),
            Some("Cannot delete: 2 composites of XPostgresDatabase still exist; delete them first")
        );
    }

    #[test]
    fn controllers_restart_when_the_referenceable_version_changes_but_not_for_schema_edits() {
        let base = fingerprint(&xrd(|_| {}));
        type Edit = fn(&mut serde_json::Value);
        let cases: [(&str, Edit, bool); 4] = [
            (
                "schema change",
                |v| {
                    v["spec"]["versions"][0]["schema"] =
                        json!({ "openAPIV3Schema": { "type": "object" } })
                },
                false,
            ),
            (
                "referenceable version moves to v2",
                |v| {
                    v["spec"]["versions"][0]["referenceable"] = json!(false);
                    v["spec"]["versions"][1]["referenceable"] = json!(true);
                },
                true,
            ),
            (
                "connection secret keys change",
                |v| v["spec"]["connectionSecretKeys"] = json!(["url"]),
                true,
            ),
            (
                "default composition changes",
                |v| v["spec"]["defaultCompositionRef"] = json!({ "name": "other" }),
                true,
            ),
        ];
        for (reason, edit, restart) in cases {
            assert_eq!(fingerprint(&xrd(edit)) != base, restart, "{reason}");
        }
    }
}
