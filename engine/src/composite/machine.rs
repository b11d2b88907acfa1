//! The composite reconciler's decisions carried out, apart from Kubernetes I/O: every read
//! and write of composed resources and Secrets goes through [`Effects`], so a reconcile is
//! unit-tested with closure-based fakes (as the managed runtime's `machine` is).
//!
//! Each step first decides from what was observed ([`super::plan`]), then acts:
//!
//! ```text
//!  render ─▶ observe children ─▶ plan ─▶ apply (dependsOn order; a resource that comes back
//!                                  │      ready unblocks the next round) ─▶ delete garbage
//!                                  ▼
//!            record resourceRefs ─▶ read connection Secrets ─▶ observe ─▶ publish Secret
//! ```

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde_json::Value;

use super::error::Error;
use super::plan::{self, Desired, Observed, Target};
use super::select::{ANNOTATION_SELECTED_BY, ResourceRef, XrSpec, connection_target};
use super::status::{self, EventSpec, StatusUpdate};
use crate::api::common::{ConnectionDetails, SecretReference};
use crate::api::composition::CompositionSpec;
use crate::composable::ComposableResources;
use crate::compose::{ObservedResource, RenderedResource, observe, render};
use crate::objects::ObjectKey;
use crate::scaffold::now;

/// A kind of composed resource whose objects the composite may own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KindRef {
    /// The `resources[].name` rendered with this kind: when set, a kind the API server
    /// does not serve is an error; when not (a kind recorded earlier), it has no objects.
    pub resource: Option<String>,
    /// API version.
    pub api_version: String,
    /// Kind.
    pub kind: String,
}

/// The Kubernetes reads and writes of a composite's reconcile.
#[async_trait]
pub trait Effects: Send + Sync {
    /// The objects of `kinds` the composite owns (from now on watched).
    async fn observe(&self, kinds: &[KindRef]) -> Result<Vec<Value>, Error>;
    /// Server-side applies a composed resource; returns the object as stored.
    async fn apply(&self, object: &Value) -> Result<Value, kube::Error>;
    /// Deletes a composed resource (gone already is fine).
    async fn delete(&self, object: &Value) -> Result<(), kube::Error>;
    /// A composed resource's connection Secret, `None` when it does not exist (or, for a
    /// resource not `ready` yet, when Tessera's store of Secrets does not hold it).
    async fn read_secret(
        &self,
        secret: &SecretReference,
        ready: bool,
    ) -> Result<Option<ComposedSecret>, kube::Error>;
    /// Writes the composite's connection Secret unless it holds `details` already (or it
    /// does not exist and `create` is false); returns whether it was written.
    async fn publish_secret(
        &self,
        secret: &SecretReference,
        secret_type: Option<&str>,
        details: &ConnectionDetails,
        create: bool,
    ) -> Result<bool, kube::Error>;
    /// Records the chosen Composition, revision and composed resources in the composite's
    /// spec. Returns the composite's generation after the write when the write is the
    /// only change of its spec since it was read (else `None`): the status written next
    /// then describes that generation, and the write costs no second status write.
    async fn write_refs(&self, refs: &SpecRefs) -> Result<Option<i64>, kube::Error>;
}

/// A composed resource's connection Secret as read.
#[derive(Clone, Debug, Default)]
pub struct ComposedSecret {
    /// The UID of the Secret's controller (its owner reference with `controller: true`).
    pub controller_uid: Option<String>,
    /// The Secret's data.
    pub details: ConnectionDetails,
}

/// The references recorded in the composite's spec.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpecRefs {
    /// `spec.compositionRef.name`.
    pub composition: Option<String>,
    /// `spec.compositionRevisionRef.name`.
    pub revision: Option<String>,
    /// `spec.resourceRefs`.
    pub resources: Vec<ResourceRef>,
    /// The annotation [`ANNOTATION_SELECTED_BY`]: the selection that chose the Composition
    /// (`None`: a person chose it, or nothing is recorded).
    pub selected_by: Option<String>,
}

impl SpecRefs {
    /// The references the composite `xr` (with its `spec`) records now.
    pub fn of(spec: &XrSpec, xr: &Value) -> Self {
        SpecRefs {
            selected_by: xr
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(ANNOTATION_SELECTED_BY))
                .and_then(Value::as_str)
                .map(str::to_string),
            composition: spec.composition_ref.as_ref().map(|r| r.name.clone()),
            revision: spec
                .composition_revision_ref
                .as_ref()
                .map(|r| r.name.clone()),
            resources: spec.resource_refs.clone(),
        }
    }
}

/// A composite to reconcile with the Composition chosen for it.
#[derive(Debug)]
pub struct Input<'a> {
    /// The composite as JSON, with apiVersion and kind.
    pub xr: &'a Value,
    /// Its spec.
    pub spec: &'a XrSpec,
    /// The chosen Composition (or revision) spec.
    pub composition: &'a CompositionSpec,
    /// The chosen Composition and revision; `resources` is filled by the reconcile.
    pub chosen: SpecRefs,
    /// The XRD's `connectionSecretKeys` (empty: all keys).
    pub connection_secret_keys: &'a [String],
    /// The XRD's `connectionSecretType` (`None`: the engine's default type).
    pub connection_secret_type: Option<&'a str>,
    /// The field manager of the composite's server-side applies of composed resources.
    pub manager: &'a str,
    /// The kinds the composite may compose.
    pub composable: &'a ComposableResources,
}

/// What a reconcile found and did, for the status write.
#[derive(Debug, Default)]
pub struct Report {
    /// Conditions and observed status (generation and Synced are filled by the caller).
    pub status: StatusUpdate,
    /// Everything that went wrong; the first one is the `Synced` message.
    pub errors: Vec<Error>,
    /// Composed resources deleted (their creation is recorded in `spec.resourceRefs`).
    pub events: Vec<EventSpec>,
    /// The composite's generation after this reconcile recorded its references, when
    /// nothing else changed its spec (see [`Effects::write_refs`]).
    pub generation: Option<i64>,
}

/// Reconciles the composite of `input` towards its Composition: applies what changed
/// (honouring `dependsOn`), deletes garbage, publishes the connection Secret, and records
/// the references in the composite's spec when they changed.
pub async fn converge(input: &Input<'_>, fx: &impl Effects) -> Report {
    let mut report = Report::default();
    let current = SpecRefs::of(input.spec, input.xr);
    let mut refs = SpecRefs {
        resources: current.resources.clone(),
        ..input.chosen.clone()
    };
    if let Err(e) = compose(input, fx, &mut refs.resources, &mut report).await {
        report.errors.insert(0, e);
    }
    if refs != current {
        match fx.write_refs(&refs).await {
            Ok(generation) => report.generation = generation,
            Err(source) => report.errors.push(Error::WriteSpec {
                name: composite_name(input.xr),
                source: Box::new(source),
            }),
        }
    }
    report
}

async fn compose(
    input: &Input<'_>,
    fx: &impl Effects,
    resource_refs: &mut Vec<ResourceRef>,
    report: &mut Report,
) -> Result<(), Error> {
    let rendered = render(input.xr, input.composition)?;
    // Before anything is read or applied: a refused kind stops the whole composite, and
    // what it composed earlier stays as it is (nothing is deleted by mistake either).
    let refused = plan::not_composable(&rendered, input.composable);
    if !refused.is_empty() {
        return Err(Error::NotComposable {
            resources: refused,
            allowed: input.composable.to_string(),
        });
    }
    let target = Target::new(input.composition, &rendered, input.manager)?;
    let kinds = kinds_of(&rendered, &input.spec.resource_refs);
    let mut observed = Observed::new(&target, fx.observe(&kinds).await?)?;
    let decided = plan::plan(&target, &observed);
    apply_all(&target, decided.apply, &mut observed, fx, report).await?;
    delete_all(&decided.delete, &observed, fx, report, garbage_event).await;
    *resource_refs = target.resource_refs(&rendered);
    let connections = read_connections(&target, &observed, fx).await?;
    let resources: BTreeMap<String, ObservedResource<'_>> = target
        .desired
        .values()
        .filter_map(|d| {
            let object = observed.live.get(&d.key)?;
            let connection = connections.get(&d.template.name).unwrap_or(&EMPTY);
            Some((
                d.template.name.clone(),
                ObservedResource { object, connection },
            ))
        })
        .collect();
    let state = observe(
        input.xr,
        input.composition,
        &resources,
        input.connection_secret_keys,
    )?;
    report.status.ready = Some(status::ready_condition_explained(
        &target.order,
        &state.ready,
        &state.problems,
    ));
    report.status.patched = state.composite.get("status").cloned();
    publish(input, &state.connection, fx, report).await
}

/// Whether the composite's Ready condition, as this reconcile decided it, is true.
fn all_ready(report: &Report) -> bool {
    report.status.ready.as_ref().is_some_and(|c| c.is_true())
}

static EMPTY: ConnectionDetails = ConnectionDetails(BTreeMap::new());

/// The kinds to list: those rendered, and those recorded earlier but no longer rendered (so
/// their resources are collected).
fn kinds_of(rendered: &[RenderedResource], recorded: &[ResourceRef]) -> Vec<KindRef> {
    let str_at = |o: &Value, p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let rendered = rendered.iter().map(|r| KindRef {
        resource: Some(r.template.clone()),
        api_version: str_at(&r.object, "/apiVersion"),
        kind: str_at(&r.object, "/kind"),
    });
    let recorded = recorded.iter().map(|r| KindRef {
        resource: None,
        api_version: r.api_version.clone(),
        kind: r.kind.clone(),
    });
    rendered.chain(recorded).collect()
}

/// Applies `first` in order; applied resources that come back ready may unblock others,
/// which are applied in the next round, until nothing more may be applied.
async fn apply_all(
    target: &Target<'_>,
    first: Vec<plan::Apply>,
    observed: &mut Observed,
    fx: &impl Effects,
    report: &mut Report,
) -> Result<(), Error> {
    let mut attempted = BTreeSet::new();
    let mut round = first;
    while !round.is_empty() {
        for a in &round {
            attempted.insert(a.resource.clone());
            if let Some(d) = target.desired.get(a.resource.as_str()) {
                apply_one(d, a.create, observed, fx, report).await?;
            }
        }
        round = plan::plan(target, observed)
            .apply
            .into_iter()
            .filter(|a| !attempted.contains(&a.resource))
            .collect();
    }
    Ok(())
}

async fn apply_one(
    d: &Desired<'_>,
    create: bool,
    observed: &mut Observed,
    fx: &impl Effects,
    report: &mut Report,
) -> Result<(), Error> {
    let name = &d.template.name;
    match fx.apply(d.object).await {
        Ok(applied) => {
            // No event: the composite records what it composed in `spec.resourceRefs`, and
            // a managed resource records the creation of its external resource on itself.
            // An event here would repeat those at the cost of a write per resource.
            if create {
                tracing::info!(
                    kind = %d.key.kind,
                    name = %d.key.name,
                    resource = %name,
                    "created composed resource"
                );
            }
            observed.record(d, applied)?;
        }
        Err(source) => report.errors.push(Error::Apply {
            resource: name.clone(),
            api_version: d.object["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            kind: d.key.kind.clone(),
            name: d.key.name.clone(),
            source: Box::new(source),
        }),
    }
    Ok(())
}

/// Deletes the live resources `keys`, with an event for each from `event`.
async fn delete_all(
    keys: &[ObjectKey],
    observed: &Observed,
    fx: &impl Effects,
    report: &mut Report,
    event: fn(&ObjectKey, &Value) -> EventSpec,
) {
    for key in keys {
        let Some(obj) = observed.live.get(key) else {
            continue;
        };
        match fx.delete(obj).await {
            Ok(()) => report.events.push(event(key, obj)),
            Err(source) => report.errors.push(Error::Delete {
                kind: key.kind.clone(),
                name: key.name.clone(),
                source: Box::new(source),
            }),
        }
    }
}

fn garbage_event(key: &ObjectKey, obj: &Value) -> EventSpec {
    EventSpec::about(
        "DeletedResource",
        "DeleteResource",
        super::children::reference(obj),
        format!(
            "Deleted {} {:?}: the composition no longer renders it",
            key.kind, key.name
        ),
    )
}

/// The connection details of the composed resources that take them from their connection
/// Secret, by `resources[].name`.
async fn read_connections(
    target: &Target<'_>,
    observed: &Observed,
    fx: &impl Effects,
) -> Result<BTreeMap<String, ConnectionDetails>, Error> {
    let mut out = BTreeMap::new();
    for read in plan::secret_reads(target, observed) {
        let secret = fx
            .read_secret(&read.secret, read.ready)
            .await
            .map_err(|source| Error::ReadSecret {
                resource: read.resource.clone(),
                namespace: read.secret.namespace.clone(),
                name: read.secret.name.clone(),
                source: Box::new(source),
            })?;
        let details = match secret {
            None => ConnectionDetails::new(),
            // Only the composed resource's own Secret: a Composition must not be able to
            // copy another application's Secret into a claim's namespace.
            Some(s) if s.controller_uid.is_some() && s.controller_uid == read.owner_uid => {
                s.details
            }
            Some(_) => {
                return Err(Error::SecretNotControlled {
                    resource: read.resource,
                    namespace: read.secret.namespace,
                    name: read.secret.name,
                });
            }
        };
        out.insert(read.resource, details);
    }
    Ok(out)
}

/// Publishes `details` to the composite's connection Secret, when it has one and there is
/// something to publish. The Secret is created once every composed resource is ready:
/// before, its details are usually partial (a `url` formatted from keys that are not
/// there yet) and each step would cost a write. Once it exists, every change is written.
async fn publish(
    input: &Input<'_>,
    details: &ConnectionDetails,
    fx: &impl Effects,
    report: &mut Report,
) -> Result<(), Error> {
    let uid = input
        .xr
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(target) = connection_target(input.spec, input.composition, uid) else {
        return Ok(());
    };
    if details.is_empty() {
        return Ok(());
    }
    let written = fx
        .publish_secret(
            &target,
            input.connection_secret_type,
            details,
            all_ready(report),
        )
        .await
        .map_err(|source| Error::WriteSecret {
            namespace: target.namespace.clone(),
            name: target.name.clone(),
            source: Box::new(source),
        })?;
    if written {
        report.status.published_at = Some(now());
    }
    Ok(())
}

/// Where the deletion of a composite's resources stands.
#[derive(Debug, Default)]
pub struct Progress {
    /// The composed resources still there (by `resources[].name`), in the Composition's order.
    pub remaining: Vec<String>,
    /// Deletions that failed.
    pub errors: Vec<Error>,
    /// Deletions started.
    pub events: Vec<EventSpec>,
}

/// Deletes the composed resources of a composite (whose `spec` records them, rendered from
/// `composition` when it still exists) that may go now; `remaining` is empty once all are
/// gone.
pub async fn delete_composed(
    spec: &XrSpec,
    composition: Option<&CompositionSpec>,
    fx: &impl Effects,
) -> Result<Progress, Error> {
    let mut kinds: BTreeSet<KindRef> = spec
        .resource_refs
        .iter()
        .map(|r| KindRef {
            resource: None,
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
        })
        .collect();
    for r in composition.iter().flat_map(|c| &c.resources) {
        let str_at = |k: &str| r.base.get(k).and_then(Value::as_str);
        if let (Some(api_version), Some(kind)) = (str_at("apiVersion"), str_at("kind")) {
            kinds.insert(KindRef {
                resource: None,
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            });
        }
    }
    let kinds: Vec<KindRef> = kinds.into_iter().collect();
    let live = fx.observe(&kinds).await?;
    let decided = plan::deletion(composition, &live);
    let observed = Observed {
        live: live
            .into_iter()
            .filter_map(|o| Some((ObjectKey::of(&o)?, o)))
            .collect(),
        ..Observed::default()
    };
    let mut report = Report::default();
    delete_all(&decided.delete, &observed, fx, &mut report, deleting_event).await;
    Ok(Progress {
        remaining: decided.remaining,
        errors: report.errors,
        events: report.events,
    })
}

fn deleting_event(key: &ObjectKey, obj: &Value) -> EventSpec {
    EventSpec::about(
        "DeletingResource",
        "DeleteResource",
        super::children::reference(obj),
        format!(
            "Deleting {} {:?} (resource '{}')",
            key.kind,
            key.name,
            plan::resource_name(obj)
        ),
    )
}

fn composite_name(xr: &Value) -> String {
    xr.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
