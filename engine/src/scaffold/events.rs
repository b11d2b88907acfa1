//! Best-effort Kubernetes events.

use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use tracing::warn;

/// An event whose action is its reason, without a related object.
pub fn event(type_: EventType, reason: &str, note: String) -> Event {
    Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: reason.to_string(),
        secondary: None,
    }
}

/// Publishes [`event`]`(type_, reason, note)` about `obj`.
pub async fn publish<K: Resource<DynamicType = D>, D>(
    recorder: &Recorder,
    obj: &K,
    dyntype: &D,
    type_: EventType,
    reason: &str,
    note: String,
) {
    publish_event(recorder, obj, dyntype, event(type_, reason, note)).await;
}

/// Publishes `event` about `obj`; a failure is logged, never returned: events are best
/// effort, and a reconcile must not fail because the events API did.
pub async fn publish_event<K: Resource<DynamicType = D>, D>(
    recorder: &Recorder,
    obj: &K,
    dyntype: &D,
    event: Event,
) {
    if let Err(e) = recorder.publish(&event, &obj.object_ref(dyntype)).await {
        warn!(name = %obj.name_any(), error = %e, "failed to publish event");
    }
}
