//! The managed reconciler's state machine, apart from Kubernetes I/O: every write to the
//! cluster goes through [`Effects`], so the decisions are unit-tested with closure-based
//! fakes of both the provider and the cluster.

use std::time::Duration;

use async_trait::async_trait;

use crate::api::common::{
    Condition, ConnectionDetails, DeletionPolicy, ManagementAction, ResourceSpec, SecretReference,
    annotations, condition_type, find_condition, reason,
};
use crate::managed::{CreateIdentity, ExternalClient, Managed, Ownership, ProviderError};

/// Kubernetes failures of the reconciler itself (provider failures are not errors here:
/// they become conditions and events).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to write status of {0}: {1}")]
    WriteStatus(String, #[source] kube::Error),
    #[error("failed to write annotations of {0}: {1}")]
    WriteAnnotations(String, #[source] kube::Error),
    #[error("failed to update finalizers of {0}: {1}")]
    Finalizer(String, #[source] kube::Error),
    #[error("failed to write spec of {0}: {1}")]
    WriteSpec(String, #[source] kube::Error),
    #[error("failed to write connection secret of {0}: {1}")]
    WriteSecret(String, #[source] kube::Error),
    #[error("failed to serialize {0}: {1}")]
    Serialize(String, #[source] serde_json::Error),
    /// The watch cache's copy of the object could not be read.
    #[error(transparent)]
    Cached(#[from] crate::stored::ExpandError),
}

impl crate::scaffold::ErrorReason for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::WriteStatus(..) => "WriteStatus",
            Error::WriteAnnotations(..) => "WriteAnnotations",
            Error::Finalizer(..) => "UpdateFinalizer",
            Error::WriteSpec(..) => "WriteSpec",
            Error::WriteSecret(..) => "PublishConnectionSecret",
            Error::Serialize(..) => "Serialize",
            Error::Cached(..) => "ReadCache",
        }
    }
}

/// The writes the state machine makes to the cluster.
#[async_trait]
pub trait Effects<M>: Send + Sync {
    /// Merges annotations into the object's metadata. When the object does not carry the
    /// managed finalizer yet, the same write adds it: the first annotation patch of a
    /// create (the external name and `create-pending`) is then also the one that makes
    /// deletion wait for the external resource, before the create can happen.
    async fn annotate(&self, obj: &M, values: &[(&str, String)]) -> Result<(), Error>;
    /// Adds the managed finalizer unless the object carries it (or an earlier write of
    /// this pass added it). Called before a mark, an update or a late initialization (a
    /// create is preceded by an [`Self::annotate`]); the reconciler calls it before it
    /// writes the status.
    async fn ensure_finalizer(&self, obj: &M) -> Result<(), Error>;
    /// Removes the managed finalizer, letting Kubernetes delete the object.
    async fn remove_finalizer(&self, obj: &M) -> Result<(), Error>;
    /// Writes late-initialized `spec.forProvider` fields (only called when they changed).
    async fn late_initialize(&self, obj: &M, for_provider: serde_json::Value) -> Result<(), Error>;
    /// Writes the connection Secret (of `secret_type`, `None`: the engine's default),
    /// unless it already holds these values.
    async fn publish_secret(
        &self,
        obj: &M,
        target: &SecretReference,
        secret_type: Option<&str>,
        details: &ConnectionDetails,
    ) -> Result<(), Error>;
    /// Publishes a Normal event.
    async fn event(&self, obj: &M, reason: &str, note: String);
    /// Publishes a Warning event.
    async fn warning(&self, obj: &M, reason: &str, note: String);
    /// Crash-safety test hook, called between a successful create of the object named
    /// `name` and its result annotation.
    fn after_external_create(&self, _name: &str) {}
}

/// What one reconcile decided about the object's conditions.
#[derive(Debug)]
pub struct Outcome {
    /// The Ready condition, or `None` to keep the current one.
    pub ready: Option<Condition>,
    /// The Synced condition.
    pub synced: Condition,
}

/// The result of one pass of the state machine.
#[derive(Debug)]
pub enum Step {
    /// Write these conditions, then requeue after the given time (`None`: wait for a change).
    Done {
        outcome: Box<Outcome>,
        requeue: Option<Duration>,
    },
    /// The finalizer was removed; Kubernetes deletes the object.
    FinalizerRemoved,
}

/// Why a pass failed.
#[derive(Debug)]
pub enum Failure {
    /// Writing to the cluster failed.
    Kube(Error),
    /// The provider failed; becomes Synced=False.
    Provider(ProviderError),
    /// Deletion could not reach the external system, but nothing was ever created there:
    /// the finalizer was removed (see [`release_uncreated`]).
    Released,
}

impl From<ProviderError> for Failure {
    fn from(e: ProviderError) -> Self {
        Failure::Provider(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Kube(e)
    }
}

/// The external name: the annotation, or `metadata.name` when it is not set yet.
pub fn external_name<M: kube::Resource>(mr: &M) -> String {
    mr.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::EXTERNAL_NAME))
        .cloned()
        .or_else(|| mr.meta().name.clone())
        .unwrap_or_default()
}

/// Whether a create was started and its result never recorded: the pending time is
/// newer than both the succeeded and the failed time (RFC 3339 strings of one format
/// compare in time order).
pub fn create_incomplete<M: kube::Resource>(mr: &M) -> bool {
    let Some(a) = mr.meta().annotations.as_ref() else {
        return false;
    };
    let Some(pending) = a.get(annotations::EXTERNAL_CREATE_PENDING) else {
        return false;
    };
    let newer_than = |key: &str| a.get(key).is_none_or(|t| pending.as_str() > t.as_str());
    newer_than(annotations::EXTERNAL_CREATE_SUCCEEDED)
        && newer_than(annotations::EXTERNAL_CREATE_FAILED)
}

/// Whether Tessera ever started an external create for this object.
pub fn create_attempted<M: kube::Resource>(mr: &M) -> bool {
    mr.meta()
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(annotations::EXTERNAL_CREATE_PENDING))
}

/// Whether this managed resource made its external resource, by its own records: a create
/// whose result was never recorded (the process died after the create), or a last recorded
/// create that succeeded. A create that failed last (for example because someone else made
/// a resource of that name meanwhile) does not count.
pub fn created_here<M: kube::Resource>(mr: &M) -> bool {
    if create_incomplete(mr) {
        return true;
    }
    let Some(a) = mr.meta().annotations.as_ref() else {
        return false;
    };
    match (
        a.get(annotations::EXTERNAL_CREATE_SUCCEEDED),
        a.get(annotations::EXTERNAL_CREATE_FAILED),
    ) {
        (Some(succeeded), Some(failed)) => succeeded.as_str() >= failed.as_str(),
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// What the reconciler may do with an external resource that exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Manage it: update it to match the spec.
    Manage,
    /// Mark it as this managed resource's own first, then manage it.
    Mark(MarkReason),
    /// Leave it untouched: the message says why and what to do.
    Refuse(String),
}

/// Why an existing external resource is marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkReason {
    /// `spec.adoptExisting` takes it over.
    Adopt,
    /// This managed resource created it, but the mark is missing.
    Repair,
}

/// Decides whether an existing external resource may be managed (see the decision table
/// in `docs/architecture.md`, "Adoption"). `created_here` is [`created_here`]; `marks` is
/// [`ExternalClient::marks_ownership`].
pub fn claim(
    ownership: &Ownership,
    spec: &ResourceSpec,
    created_here: bool,
    marks: bool,
    name: &str,
) -> Claim {
    let mark = |why| {
        if marks {
            Claim::Mark(why)
        } else {
            Claim::Manage
        }
    };
    match ownership {
        Ownership::Ours | Ownership::NotTracked => Claim::Manage,
        // Policies that never change an existing resource may read anything.
        _ if spec.read_only() => Claim::Manage,
        Ownership::Protected(_) => Claim::Refuse(not_owned_message(ownership, name)),
        Ownership::Unmarked if created_here => mark(MarkReason::Repair),
        Ownership::Unmarked | Ownership::Other(_) if spec.adopt_existing => mark(MarkReason::Adopt),
        Ownership::Unmarked | Ownership::Other(_) => {
            Claim::Refuse(not_owned_message(ownership, name))
        }
    }
}

/// Whether deletion may delete an existing external resource: only this managed resource's
/// own, or one it would mark as its own (it created it, or `spec.adoptExisting`).
pub fn may_delete(ownership: &Ownership, spec: &ResourceSpec, created_here: bool) -> bool {
    match ownership {
        Ownership::Ours | Ownership::NotTracked => true,
        Ownership::Unmarked => created_here || spec.adopt_existing,
        Ownership::Other(_) | Ownership::Protected(_) => false,
    }
}

/// Why an existing external resource is not managed, and what to do about it.
pub fn not_owned_message(ownership: &Ownership, name: &str) -> String {
    const OBSERVE: &str = "managementPolicies: [\"Observe\"] to only read it";
    match ownership {
        Ownership::Protected(why) => {
            format!("External resource {name:?} is never managed by Tessera ({why}); set {OBSERVE}")
        }
        Ownership::Other(uid) => format!(
            "External resource {name:?} is managed by another managed resource (uid {uid}); \
             set spec.adoptExisting: true to take it over, or {OBSERVE}"
        ),
        _ => format!(
            "External resource {name:?} exists and was not created by Tessera; set \
             spec.adoptExisting: true to manage it, or {OBSERVE}"
        ),
    }
}

/// Why deletion leaves an existing external resource in place, for the event.
fn left_in_place_message(ownership: &Ownership, name: &str) -> String {
    let why = match ownership {
        Ownership::Protected(why) => why.clone(),
        Ownership::Other(uid) => format!("it is managed by another managed resource (uid {uid})"),
        _ => "it was not created by Tessera".to_string(),
    };
    format!(
        "Left the external resource {name:?} in place, although deletionPolicy is Delete: {why}"
    )
}

pub use crate::scaffold::now;

/// Handles a failure to connect or observe. An object being deleted whose spec cannot name
/// or reach an external resource (invalid spec, broken ProviderConfig) and for which
/// Tessera never started a create holds nothing of ours: its finalizer is released instead
/// of blocking deletion forever. Anything else stays a failure (transient errors are retried).
pub async fn release_uncreated<M: Managed>(
    effects: &dyn Effects<M>,
    obj: &M,
    error: ProviderError,
) -> Failure {
    let deleting = obj.meta().deletion_timestamp.is_some();
    let permanent = matches!(
        error,
        ProviderError::InvalidSpec(_) | ProviderError::Config(_)
    );
    if !(deleting && permanent && !create_attempted(obj)) {
        return Failure::Provider(error);
    }
    if let Err(e) = effects.remove_finalizer(obj).await {
        return Failure::Kube(e);
    }
    effects
        .event(
            obj,
            "Released",
            format!("Tessera never created an external resource for this object, so there is nothing to delete ({error})"),
        )
        .await;
    Failure::Released
}

fn success(ready: Condition, requeue: Duration) -> Step {
    Step::Done {
        outcome: Box::new(Outcome {
            ready: Some(ready),
            synced: Condition::reconcile_success(),
        }),
        requeue: Some(requeue),
    }
}

/// One pass over a live object (which may not carry the finalizer yet: the pass adds it
/// before it changes anything, see [`Effects::ensure_finalizer`]) or over one being
/// deleted with the finalizer, after the provider connected. `mr` is the object as read; on return it holds what the provider
/// observed (its status, and an external name it derived). `poll` is the object's
/// (jittered) poll interval.
pub async fn drive<M: Managed>(
    effects: &dyn Effects<M>,
    external: &dyn ExternalClient<M>,
    mr: &mut M,
    poll: Duration,
) -> Result<Step, Failure> {
    // The object as read: what is recorded (annotations, spec) is compared with it, and
    // effects address it; the provider fills in `mr`.
    let read = mr.clone();
    let obj = &read;
    let spec = obj.resource_spec().clone();
    let deleting = obj.meta().deletion_timestamp.is_some();
    let observation = match external.observe(mr).await {
        Ok(o) => o,
        Err(e) => return Err(release_uncreated(effects, obj, e).await),
    };

    let created_here = created_here(obj);

    if deleting {
        let delete =
            spec.deletion_policy == DeletionPolicy::Delete && spec.allows(ManagementAction::Delete);
        if delete && observation.exists && !may_delete(&observation.ownership, &spec, created_here)
        {
            effects.remove_finalizer(obj).await?;
            let note = left_in_place_message(&observation.ownership, &external_name(obj));
            effects.event(obj, "LeftInPlace", note).await;
            return Ok(Step::FinalizerRemoved);
        }
        if delete && observation.exists {
            external.delete(mr).await?;
            if external.observe(mr).await?.exists {
                let ready = Condition::deleting();
                return Ok(success(ready, Duration::from_secs(1)));
            }
        }
        effects.remove_finalizer(obj).await?;
        let (reason, what) = if delete {
            ("Deleted", "Deleted the external resource")
        } else {
            (
                "Orphaned",
                "Left the external resource in place (deletionPolicy Orphan or managementPolicies without Delete):",
            )
        };
        effects
            .event(obj, reason, format!("{what} {:?}", external_name(obj)))
            .await;
        return Ok(Step::FinalizerRemoved);
    }

    if observation.exists {
        let name = external_name(mr);
        let marks = external.marks_ownership();
        match claim(&observation.ownership, &spec, created_here, marks, &name) {
            Claim::Manage => {}
            Claim::Mark(why) => {
                effects.ensure_finalizer(obj).await?;
                external.mark(mr).await?;
                let (reason, note) = match why {
                    MarkReason::Adopt => (
                        "Adopted",
                        format!(
                            "Adopted the existing external resource {name:?} (spec.adoptExisting) \
                             and marked it as managed by this object"
                        ),
                    ),
                    MarkReason::Repair => (
                        "Marked",
                        format!(
                            "Marked the external resource {name:?}, which this object created, \
                             as managed by it"
                        ),
                    ),
                };
                effects.event(obj, reason, note).await;
            }
            Claim::Refuse(message) => {
                let previous = obj
                    .resource_status()
                    .and_then(|s| find_condition(&s.conditions, condition_type::SYNCED));
                let reported = previous.is_some_and(|c| {
                    c.reason == reason::EXTERNAL_RESOURCE_NOT_OWNED && c.message == message
                });
                if !reported {
                    effects
                        .warning(obj, reason::EXTERNAL_RESOURCE_NOT_OWNED, message.clone())
                        .await;
                }
                // Nothing is written to the external resource; the poll notices when it is
                // marked, dropped or released out of band.
                return Ok(Step::Done {
                    outcome: Box::new(Outcome {
                        ready: Some(Condition::unavailable(message.clone())),
                        synced: Condition::not_owned(message),
                    }),
                    requeue: Some(poll),
                });
            }
        }
    }

    let recorded_name = obj
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::EXTERNAL_NAME));
    if observation.exists && recorded_name.is_none() {
        // An existing external resource Tessera did not create (imported, or already in
        // the state the spec asks for): record which one it is.
        effects
            .annotate(obj, &[(annotations::EXTERNAL_NAME, external_name(mr))])
            .await?;
    }

    if observation.exists && create_incomplete(obj) {
        // The create was interrupted after it reached the external system (the process
        // died before recording it). The external name was persisted before the create,
        // so this is the object that create made: adopt it.
        effects
            .annotate(obj, &[(annotations::EXTERNAL_CREATE_SUCCEEDED, now())])
            .await?;
    }

    let mut connection = observation.connection.clone();
    let observation = if observation.exists || !spec.allows(ManagementAction::Create) {
        observation
    } else if create_incomplete(obj)
        && external.create_identity() == CreateIdentity::AssignedByExternalSystem
    {
        // The external system named whatever the interrupted create made, so observe
        // cannot find it by name and a second create could duplicate it. A kind with a
        // deterministic identity instead takes the branch below: it is absent under the
        // name persisted before the create, so the create never reached the external
        // system (or was rolled back there), and creating again is safe.
        return Ok(Step::Done {
            outcome: Box::new(Outcome {
                ready: Some(Condition::creating()),
                synced: Condition::reconcile_error(format!(
                    "A create of external resource {:?} was started but its result was never \
                         recorded, and the resource is not there; check the external system, then \
                         remove the annotation {} to let Tessera create it",
                    external_name(obj),
                    annotations::EXTERNAL_CREATE_PENDING
                )),
            }),
            requeue: None,
        });
    } else {
        connection.merge(create(effects, external, obj, mr).await?);
        // Read back at once: most external systems are consistent right after a create,
        // and this saves a poll before the object turns Ready.
        let again = external.observe(mr).await?;
        connection.merge(again.connection.clone());
        again
    };

    if !observation.exists {
        // Only reachable when the management policies forbid Create.
        let ready = Condition::unavailable(format!(
            "External resource {:?} does not exist and managementPolicies do not allow Create",
            external_name(obj)
        ));
        return Ok(success(ready, poll));
    }

    if observation.late_initialized && spec.allows(ManagementAction::LateInitialize) {
        let before = for_provider(obj)?;
        let after = for_provider(mr)?;
        if before != after {
            effects.ensure_finalizer(obj).await?;
            effects.late_initialize(obj, after).await?;
        }
    }

    let observation = if !observation.up_to_date && spec.allows(ManagementAction::Update) {
        effects.ensure_finalizer(obj).await?;
        connection.merge(external.update(mr).await?);
        let diff = observation.diff.as_deref().unwrap_or("the spec changed");
        effects
            .event(
                obj,
                "Updated",
                format!(
                    "Updated the external resource {:?}: {diff}",
                    external_name(obj)
                ),
            )
            .await;
        // Read back at once, as after a create: the status then shows the state the
        // update made, instead of being written again at the next poll.
        let again = external.observe(mr).await?;
        connection.merge(again.connection.clone());
        again
    } else {
        observation
    };

    if let Some(target) = &spec.write_connection_secret_to_ref {
        effects
            .publish_secret(obj, target, external.connection_secret_type(), &connection)
            .await
            .map_err(|e| connection_secret_failure(target, e))?;
    }

    if observation.available {
        let ready = Condition::available();
        Ok(success(ready, poll))
    } else {
        // Not usable (still being provisioned, or changing): look again soon.
        let message = observation.unavailable_message.clone().unwrap_or_default();
        let ready = if observation.creating {
            Condition::creating().with_message(message)
        } else {
            Condition::unavailable(message)
        };
        Ok(success(ready, Duration::from_secs(5).min(poll)))
    }
}

/// A connection Secret that cannot be written (its namespace is missing, a webhook or
/// quota refuses it) is the object's failure, not the controller's: it goes to the Synced
/// condition and a Warning event with the API server's message, and is retried with backoff.
/// Other Kubernetes failures stay the reconciler's own errors.
fn connection_secret_failure(target: &SecretReference, e: Error) -> Failure {
    match e {
        Error::WriteSecret(_, kube::Error::Api(status)) => {
            Failure::Provider(ProviderError::Transient(format!(
                "cannot write the connection Secret {}/{}: {} ({}); create the namespace or fix \
             spec.writeConnectionSecretToRef",
                target.namespace, target.name, status.message, status.reason
            )))
        }
        e => Failure::Kube(e),
    }
}

async fn create<M: Managed>(
    effects: &dyn Effects<M>,
    external: &dyn ExternalClient<M>,
    obj: &M,
    mr: &mut M,
) -> Result<ConnectionDetails, Failure> {
    // From `mr`: observe may have derived the external name from the spec (a Grant's
    // name encodes its role and database).
    let ext_name = external_name(mr);
    effects
        .annotate(
            obj,
            &[
                (annotations::EXTERNAL_NAME, ext_name.clone()),
                (annotations::EXTERNAL_CREATE_PENDING, now()),
            ],
        )
        .await?;
    match external.create(mr).await {
        Ok(details) => {
            effects.after_external_create(&kube::ResourceExt::name_any(obj));
            effects
                .annotate(obj, &[(annotations::EXTERNAL_CREATE_SUCCEEDED, now())])
                .await?;
            effects
                .event(
                    obj,
                    "Created",
                    format!("Created the external resource {ext_name:?}"),
                )
                .await;
            Ok(details)
        }
        // No answer: the create may have made the resource (its reply was lost). The
        // create stays pending, so the next pass takes what observe finds under the
        // persisted name for this object's own (adopts it), or, when nothing is there,
        // creates again (a deterministic identity) or stops for a person.
        Err(e @ ProviderError::Unanswered(_)) => Err(Failure::Provider(e)),
        Err(e) => {
            effects
                .annotate(obj, &[(annotations::EXTERNAL_CREATE_FAILED, now())])
                .await?;
            Err(Failure::Provider(e))
        }
    }
}

fn for_provider<M: Managed>(mr: &M) -> Result<serde_json::Value, Error> {
    use kube::ResourceExt;
    let v = serde_json::to_value(mr).map_err(|e| Error::Serialize(mr.name_any(), e))?;
    Ok(v.pointer("/spec/forProvider").cloned().unwrap_or_default())
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
