//! The claim's decisions as pure functions: the composite a claim asks for, whether an
//! existing composite belongs to it, the claim's conditions, status fields and events
//! derived from its composite, and whether the claim's status needs a write.

use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use kube::runtime::events::EventType;
use serde_json::{Map, Value, json};

use super::to_composite::{ClaimToCompositeError, claim_to_composite};
use crate::api::common::{
    Condition, condition_type, find_condition, reason, set_condition, set_kstatus_conditions,
};
use crate::api::xrd::CompositeResourceDefinitionSpec;
use crate::compose::{LABEL_CLAIM_NAME, LABEL_CLAIM_NAMESPACE};
use crate::composition_options::FINALIZER;
use crate::objects::needs_apply;

/// Event reasons of claims. PascalCase and stable.
pub mod reasons {
    /// The claim was bound to its composite.
    pub const BOUND: &str = "Bound";
    /// The claim became ready.
    pub const READY: &str = "Ready";
}

/// The name of the composite the claim is already bound to: `status.resourceRef.name`,
/// when it refers to the XRD's composite kind. A claim keeps that name even when the
/// naming scheme changes (the hash suffix widened from 8 to 16 hex digits), so a live
/// composite is never replaced by a second one.
///
/// `None` for a claim not bound yet: its composite is then named by
/// [`claim_composite_name`](crate::naming::claim_composite_name), unless a composite of the
/// earlier scheme already belongs to it.
pub fn bound_composite_name(
    claim: &DynamicObject,
    xrd: &CompositeResourceDefinitionSpec,
) -> Option<String> {
    let rref = claim.data.pointer("/status/resourceRef")?;
    let kind = rref.get("kind")?.as_str()?;
    let group = rref.get("apiVersion")?.as_str()?.split_once('/')?.0;
    let name = rref.get("name")?.as_str()?;
    (kind == xrd.names.kind && group == xrd.group && !name.is_empty()).then(|| name.to_string())
}

/// The composite a claim asks for, as a server-side apply body, named `xr_name`:
/// [`claim_to_composite`] (the same function `tessera render` uses), so the claim's spec,
/// `spec.claimRef`, the claim labels, and the claim's Secret reference pointing into the
/// claim's own namespace.
///
/// Labels are left out when the claim's name is too long for a label value (63
/// characters); `claimRef` always identifies the claim.
pub fn desired_composite(
    claim: &DynamicObject,
    xrd: &CompositeResourceDefinitionSpec,
    xr_name: &str,
) -> Result<Value, ClaimToCompositeError> {
    let value = serde_json::to_value(claim).unwrap_or_default();
    let mut xr = claim_to_composite(&value, xrd)?;
    if let Some(meta) = xr.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("name".into(), xr_name.into());
    }
    if claim.name_any().len() > 63
        && let Some(meta) = xr.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.remove("labels");
    }
    Ok(xr)
}

/// The body of the claim's apply of its composite: `desired` with the composite
/// controller's [`FINALIZER`], so that a claim's composite has it from its first version and
/// the composite controller need not add it with a patch of its own. The claim's field
/// manager then owns that entry of the list: every apply lists it, as an apply without it
/// would remove it.
pub fn with_finalizer(mut desired: Value) -> Value {
    if let Some(meta) = desired.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("finalizers".into(), json!([FINALIZER]));
    }
    desired
}

/// Whether the claim's existing composite `live` must be applied with `body` (from
/// [`with_finalizer`]): not when it holds what `body` asks for (finalizers others added are
/// theirs and call for no apply), nor while it is being deleted (the claim gets a new one
/// once it is gone; an apply could not add a finalizer back anyway).
pub fn composite_needs_apply(body: &Value, live: &DynamicObject, manager: &str) -> bool {
    if live.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let mut compared = body.clone();
    if live.finalizers().iter().any(|f| f == FINALIZER) {
        compared["metadata"]["finalizers"] = json!(live.finalizers());
    }
    let live = serde_json::to_value(live).unwrap_or_default();
    needs_apply(&compared, Some(&live), manager)
}

/// The claim (namespace, name) a composite was created for, from `spec.claimRef` or else
/// the claim labels.
pub fn claim_of(xr: &DynamicObject) -> Option<(String, String)> {
    let from_ref = xr.data.pointer("/spec/claimRef").and_then(|r| {
        let ns = r.get("namespace")?.as_str()?;
        let name = r.get("name")?.as_str()?;
        Some((ns.to_string(), name.to_string()))
    });
    from_ref.or_else(|| {
        let labels = xr.labels();
        Some((
            labels.get(LABEL_CLAIM_NAMESPACE)?.clone(),
            labels.get(LABEL_CLAIM_NAME)?.clone(),
        ))
    })
}

/// Why the composite with the claim's name cannot be used, or `None` when it does not
/// exist or belongs to the claim.
pub fn conflict(namespace: &str, name: &str, xr: Option<&DynamicObject>) -> Option<String> {
    let xr = xr?;
    match claim_of(xr) {
        Some((ns, n)) if ns == namespace && n == name => None,
        Some((ns, n)) => Some(format!(
            "Composite {} already exists and belongs to claim {ns}/{n}; rename this claim",
            xr.name_any()
        )),
        None => Some(format!(
            "Composite {} already exists and was not created for a claim; delete it or rename this claim",
            xr.name_any()
        )),
    }
}

/// The claim's `status.resourceRef` for its composite.
pub fn resource_ref(xr_ar: &ApiResource, xr_name: &str) -> Value {
    json!({ "apiVersion": xr_ar.api_version, "kind": xr_ar.kind, "name": xr_name })
}

/// The claim's Ready and Synced conditions, following its composite's: messages carry the
/// composite's name and failure text, so that `kubectl describe` of the claim explains it.
///
/// The composite's Ready counts only once it describes the composite's current generation
/// (when it says which generation it describes): until then the claim is not ready, so
/// GitOps tools do not report a changed claim healthy before the change is applied.
/// Synced is the outcome of the composite's last reconcile and is copied as it is.
pub fn conditions_from(xr: &DynamicObject) -> (Condition, Condition) {
    let name = xr.name_any();
    let conditions: Vec<Condition> = xr
        .data
        .pointer("/status/conditions")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let generation = xr.metadata.generation;
    let stale =
        |c: &Condition| matches!((c.observed_generation, generation), (Some(o), Some(g)) if o < g);

    let ready = match find_condition(&conditions, condition_type::READY) {
        None => Condition::creating()
            .with_message(format!("Waiting for composite {name} to become ready")),
        Some(c) if stale(c) => Condition::creating().with_message(format!(
            "Waiting for composite {name} to apply its latest spec"
        )),
        Some(c) if c.is_true() => Condition::available(),
        Some(c) => Condition {
            status: c.status.clone(),
            ..Condition::new(
                condition_type::READY,
                false,
                or(&c.reason, reason::CREATING),
                explain(
                    &name,
                    &c.message,
                    "Waiting for composite {} to become ready",
                ),
            )
        },
    };
    let synced = match find_condition(&conditions, condition_type::SYNCED) {
        Some(c) if !c.is_true() => Condition {
            status: c.status.clone(),
            ..Condition::new(
                condition_type::SYNCED,
                false,
                or(&c.reason, reason::RECONCILE_ERROR),
                explain(&name, &c.message, "Composite {} is not synced"),
            )
        },
        _ => Condition::reconcile_success(),
    };
    (ready, synced)
}

/// Status fields the engine writes itself, on composites or on claims, and so never copies
/// from a composite to its claim: the claim has conditions and an `observedGeneration` of
/// its own, `resourceRef` is the claim's binding, and a composite's `connectionDetails`
/// describe the composite's Secret, not anything the claim's user asked for.
pub const ENGINE_STATUS_FIELDS: &[&str] = &[
    "conditions",
    "observedGeneration",
    "connectionDetails",
    "resourceRef",
];

/// The composite's status fields its claim shows as its own (e.g. the database name a
/// composition patches onto the composite, which the XRD's printer columns read): every
/// top-level field but [`ENGINE_STATUS_FIELDS`]. Claim and composite share the XRD's
/// status schema, so each copied field fits the claim.
pub fn copied_status(xr: &DynamicObject) -> Map<String, Value> {
    xr.data
        .get("status")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| !ENGINE_STATUS_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What the claim's status should say, from its composite.
#[derive(Clone, Debug)]
pub struct ClaimStatus {
    /// The claim's Ready condition.
    pub ready: Condition,
    /// The claim's Synced condition.
    pub synced: Condition,
    /// `status.resourceRef`: the bound composite, when the claim has one.
    pub resource_ref: Option<Value>,
    /// The composite's status fields ([`copied_status`]); empty without a composite.
    pub fields: Map<String, Value>,
}

/// A write of the claim's status that [`status_write`] decided on.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusWrite {
    /// The `status` to server-side apply with the claim controller's field manager.
    pub status: Value,
    /// All of the claim's conditions once it is written, for [`events`].
    pub conditions: Vec<Condition>,
}

/// The status write that brings `claim` to `want`, or `None` when the claim already says
/// it, so that the steady state makes no writes.
///
/// The body carries every field the claim controller owns (the claim's Ready and Synced,
/// `observedGeneration`, `resourceRef`, the copied fields): server-side apply removes a
/// field its manager owned and no longer sends, so a field gone from the composite goes
/// from the claim too. Conditions keep their transition time unless their status changes;
/// conditions other controllers own stay, since the list is a map keyed by type.
pub fn status_write(
    claim: &DynamicObject,
    want: ClaimStatus,
    manager: &str,
    now: &str,
) -> Option<StatusWrite> {
    let generation = claim.metadata.generation;
    let live_conditions = claim.data.pointer("/status/conditions");
    let mut conditions: Vec<Condition> = live_conditions
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let mut changed = false;
    for c in [want.ready, want.synced] {
        let c = Condition {
            observed_generation: generation,
            ..c
        };
        changed |= set_condition(&mut conditions, c, now);
    }
    changed |= set_kstatus_conditions(&mut conditions, now);
    let ours: Vec<&Condition> = [
        condition_type::READY,
        condition_type::SYNCED,
        condition_type::RECONCILING,
        condition_type::STALLED,
    ]
    .iter()
    .filter_map(|t| find_condition(&conditions, t))
    .collect();
    let mut status = want.fields;
    status.insert("conditions".into(), json!(ours));
    status.insert("observedGeneration".into(), json!(generation));
    if let Some(r) = want.resource_ref {
        status.insert("resourceRef".into(), r);
    }
    let status = Value::Object(status);
    if !changed {
        // The conditions were compared above (transition times aside); the other fields
        // are compared with the claim as it is, including the fields this manager owns.
        let mut compared = status.clone();
        compared["conditions"] = live_conditions.cloned().unwrap_or(Value::Null);
        let live = serde_json::to_value(claim).unwrap_or_default();
        if !needs_apply(&json!({ "status": compared }), Some(&live), manager) {
            return None;
        }
    }
    Some(StatusWrite { status, conditions })
}

/// The claim's conditions while its composite is being deleted.
pub fn deleting_conditions(xr: &DynamicObject) -> (Condition, Condition) {
    let name = xr.name_any();
    let (_, synced) = conditions_from(xr);
    let message = if synced.is_true() {
        format!("Waiting for composite {name} to be deleted")
    } else {
        synced.message.clone()
    };
    let ready = Condition::deleting().with_message(message);
    (ready, synced)
}

fn or<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() { default } else { value }
}

/// `Composite <name>: <message>`, or the fallback (with `{}` for the name) when the
/// composite gave no message.
fn explain(name: &str, message: &str, fallback: &str) -> String {
    if message.is_empty() {
        return fallback.replace("{}", name);
    }
    format!("Composite {name}: {}", decapitalize(message))
}

/// Lower-cases the first letter of a sentence, but not of an acronym (`CRD`, `SQL`).
fn decapitalize(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_uppercase() && b.is_lowercase() => {
            a.to_lowercase().chain(s.chars().skip(1)).collect()
        }
        _ => s.to_string(),
    }
}

/// The events a claim's status change deserves: `Bound` when the claim gets (or changes)
/// its composite, a warning with the cause when Synced turns False or its message changes,
/// and `Ready` when it becomes ready. Nothing in steady state.
pub fn events(
    xr_name: &str,
    old: &[Condition],
    new: &[Condition],
    old_ref: Option<&Value>,
    new_ref: Option<&Value>,
) -> Vec<(EventType, String, String)> {
    let mut out = Vec::new();
    if let Some(r) = new_ref
        && old_ref != Some(r)
    {
        out.push((
            EventType::Normal,
            reasons::BOUND.to_string(),
            format!("Bound to composite {xr_name}"),
        ));
    }
    if let Some(s) = find_condition(new, condition_type::SYNCED)
        && !s.is_true()
        && find_condition(old, condition_type::SYNCED)
            .is_none_or(|o| o.is_true() || o.message != s.message)
    {
        out.push((EventType::Warning, s.reason.clone(), s.message.clone()));
    }
    if let Some(r) = find_condition(new, condition_type::READY)
        && r.is_true()
        && !find_condition(old, condition_type::READY).is_some_and(Condition::is_true)
    {
        out.push((
            EventType::Normal,
            reasons::READY.to_string(),
            format!("Composite {xr_name} is ready"),
        ));
    }
    out
}

#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "bind/status_tests.rs"]
mod status_tests;
