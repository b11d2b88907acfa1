//! The composite's status as pure functions: conditions and their messages, the status
//! object to apply, and the events that condition transitions deserve.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use serde_json::{Map, Value, json};

use crate::api::common::{
    Condition, condition_type, find_condition, reason, set_condition, set_kstatus_conditions,
};

/// The `Ready` condition from the readiness of each composed resource, listed in
/// `order` (the Composition's order): `True` when all are ready, else `False` naming those
/// that are not, e.g. "Waiting for resources: role, database".
pub fn ready_condition(order: &[&str], ready: &BTreeMap<String, bool>) -> Condition {
    ready_condition_explained(order, ready, &BTreeMap::new())
}

/// [`ready_condition`], with what the resources that are not ready say about themselves
/// (`problems`, by resource name; see [`crate::compose::readiness::problem`]) added, so
/// that a composed resource's failure reaches the composite and its claim, e.g.
/// "Waiting for resources: instance. Resource 'instance': ReconcileError: CreateDBInstance
/// x: InvalidParameterCombination: ...". The reason is `Unavailable` when a resource that
/// is not ready says it is (it was usable and is not now), else `Creating`.
pub fn ready_condition_explained(
    order: &[&str],
    ready: &BTreeMap<String, bool>,
    problems: &BTreeMap<String, String>,
) -> Condition {
    let unready: Vec<&str> = order
        .iter()
        .copied()
        .filter(|n| !ready.get(*n).copied().unwrap_or(false))
        .collect();
    if unready.is_empty() {
        return Condition::available();
    }
    let mut message = format!("Waiting for resources: {}", unready.join(", "));
    let explained: Vec<String> = unready
        .iter()
        .filter_map(|n| Some(format!("Resource '{n}': {}", problems.get(*n)?)))
        .collect();
    if !explained.is_empty() {
        message.push_str(". ");
        message.push_str(&explained.join("; "));
    }
    let unavailable = unready.iter().any(|n| {
        problems
            .get(*n)
            .is_some_and(|p| p.starts_with(reason::UNAVAILABLE))
    });
    if unavailable {
        Condition::unavailable(message)
    } else {
        Condition::creating().with_message(message)
    }
}

/// The `Ready` condition while the composite is being deleted: the composed resources
/// still there, e.g. "Deleting resources: grant".
pub fn deleting_condition(remaining: &[&str]) -> Condition {
    let message = if remaining.is_empty() {
        String::new()
    } else {
        format!("Deleting resources: {}", remaining.join(", "))
    };
    Condition::deleting().with_message(message)
}

/// The `Synced` condition: `True` after a reconcile without errors, else `False` with the
/// error's message.
pub fn synced_condition(error: Option<&str>) -> Condition {
    match error {
        None => Condition::reconcile_success(),
        Some(message) => Condition::reconcile_error(capitalize(message)),
    }
}

pub use crate::api::common::capitalize;

/// What a reconcile learned, to be folded into the composite's status.
#[derive(Clone, Debug, Default)]
pub struct StatusUpdate {
    /// `metadata.generation` of the composite reconciled.
    pub generation: Option<i64>,
    /// The new `Ready` condition; `None` keeps the current one (or, on the first
    /// reconcile, sets `Ready=False`, so GitOps tools never see a fresh composite as healthy).
    pub ready: Option<Condition>,
    /// The new `Synced` condition.
    pub synced: Option<Condition>,
    /// The status after the composed resources' to-composite patches, when observed.
    pub patched: Option<Value>,
    /// When the connection Secret was written by this reconcile.
    pub published_at: Option<String>,
}

/// The status to apply: `old` (the composite's current status, or null) replaced by the
/// patched status when there is one, with the conditions, `observedGeneration` and
/// `connectionDetails.lastPublishedTime` set. Transition times only move when a
/// condition's status changes.
pub fn next_status(old: &Value, update: StatusUpdate, now: &str) -> Value {
    let mut status = match update.patched.unwrap_or_else(|| old.clone()) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let mut conditions: Vec<Condition> = old
        .get("conditions")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let stamp = |mut c: Condition| {
        c.observed_generation = update.generation;
        c
    };
    match update.ready {
        Some(ready) => {
            set_condition(&mut conditions, stamp(ready), now);
        }
        None => match conditions
            .iter_mut()
            .find(|c| c.type_ == condition_type::READY)
        {
            Some(c) => c.observed_generation = update.generation,
            None => {
                let ready = Condition::creating();
                set_condition(&mut conditions, stamp(ready), now);
            }
        },
    }
    if let Some(synced) = update.synced {
        set_condition(&mut conditions, stamp(synced), now);
    }
    set_kstatus_conditions(&mut conditions, now);
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    status.insert("conditions".into(), json!(conditions));
    if let Some(generation) = update.generation {
        status.insert("observedGeneration".into(), json!(generation));
    }
    if let Some(at) = update.published_at {
        let details = status
            .entry("connectionDetails")
            .or_insert_with(|| json!({}));
        if let Some(details) = details.as_object_mut() {
            details.insert("lastPublishedTime".into(), json!(at));
        }
    }
    Value::Object(status)
}

/// An event to publish about the composite.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSpec {
    /// Whether it is a warning (else normal).
    pub warning: bool,
    /// PascalCase reason.
    pub reason: &'static str,
    /// PascalCase action. Events with the same reason, action and related object are
    /// merged into one series that keeps the first note, so these tell them apart.
    pub action: &'static str,
    /// The composed resource the event is about, if any.
    pub related: Option<ObjectReference>,
    /// Human-readable note.
    pub note: String,
}

impl EventSpec {
    /// A normal event about composed resource `related`.
    pub fn about(
        reason: &'static str,
        action: &'static str,
        related: ObjectReference,
        note: String,
    ) -> Self {
        EventSpec {
            warning: false,
            reason,
            action,
            related: Some(related),
            note,
        }
    }
}

/// The events the change from `old` to `new` conditions deserves: a warning when `Synced`
/// turns false or its message changes, a note when it recovers, and a note when `Ready`
/// turns true. Nothing when nothing changed, so polls never repeat an event.
pub fn transition_events(old: &[Condition], new: &[Condition]) -> Vec<EventSpec> {
    let mut out = Vec::new();
    let old_synced = find_condition(old, condition_type::SYNCED);
    if let Some(synced) = find_condition(new, condition_type::SYNCED) {
        let was_true = old_synced.is_some_and(Condition::is_true);
        if !synced.is_true() && old_synced.is_none_or(|o| was_true || o.message != synced.message) {
            out.push(EventSpec {
                warning: true,
                reason: reason::RECONCILE_ERROR,
                action: "Reconcile",
                related: None,
                note: synced.message.clone(),
            });
        } else if synced.is_true() && old_synced.is_some_and(|o| !o.is_true()) {
            out.push(EventSpec {
                warning: false,
                reason: reason::RECONCILE_SUCCESS,
                action: "Reconcile",
                related: None,
                note: "Composed resources are in sync again".into(),
            });
        }
    }
    let was_ready = find_condition(old, condition_type::READY).is_some_and(Condition::is_true);
    if !was_ready && find_condition(new, condition_type::READY).is_some_and(Condition::is_true) {
        out.push(EventSpec {
            warning: false,
            reason: reason::AVAILABLE,
            action: "Observe",
            related: None,
            note: "All composed resources are ready".into(),
        });
    }
    out
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
