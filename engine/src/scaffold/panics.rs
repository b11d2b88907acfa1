//! Panics in a reconcile, contained to the object being reconciled.
//!
//! kube-runtime runs each reconcile on a task of its own and unwraps its `JoinHandle`
//! in the controller's stream: a panic in one reconcile would end the whole controller
//! (for the per-XRD controllers, every claim and composite of the XRD). The scaffold
//! catches it instead, and turns it into an error of that one object: `Synced=False`
//! with reason [`RECONCILE_PANICKED`], a Warning event on transitions, and the usual
//! per-object backoff. Every other object keeps being served.
//!
//! A panic's payload is arbitrary data (`expect` and `unwrap` on a `Result` format the
//! error into it), so only a `&'static str` payload, which is always a literal of the
//! source, reaches the condition, the event and the log; any other payload is withheld.

use std::any::Any;

use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;

use super::Recorder;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde_json::json;
use tracing::{error, warn};

use crate::api::common::{
    Condition, condition_type, find_condition, set_condition, set_kstatus_conditions,
};

/// `Synced=False` reason of an object whose reconcile panicked.
pub const RECONCILE_PANICKED: &str = "ReconcilePanicked";

/// The field manager of the `Synced` condition written after a panic.
pub(crate) const FIELD_MANAGER: &str = "tessera-panic-guard";

/// What a panic payload may say in conditions, events and logs: only a literal of the
/// source (`panic!("...")` without arguments, `Option::unwrap` on `None`).
pub(crate) fn static_payload(payload: &(dyn Any + Send)) -> Option<&'static str> {
    payload.downcast_ref::<&'static str>().copied()
}

/// The `Synced` message of an object whose reconcile panicked with `payload`.
pub(crate) fn message(payload: Option<&str>) -> String {
    let base = "The controller panicked while reconciling this object and retries with backoff; \
                this is a bug in Tessera, please report it with the controller's logs";
    match payload {
        Some(p) => format!("{base} (panic: {p})"),
        None => base.to_string(),
    }
}

/// Logs the panic of a reconcile of `obj` (with its [`static_payload`]), writes `Synced=False/ReconcilePanicked` on
/// it and publishes a Warning event when that condition is new. Best effort: a failed
/// write is logged, and the object is retried with backoff all the same.
pub(crate) async fn report<K>(
    client: &kube::Client,
    recorder: &Recorder,
    obj: &K,
    dyntype: &K::DynamicType,
    payload: Option<&'static str>,
) where
    K: Resource + Serialize,
{
    let message = message(payload);
    error!(
        name = %obj.name_any(),
        namespace = ?obj.namespace(),
        panic = payload.unwrap_or("<payload withheld>"),
        "reconcile panicked"
    );
    let json = serde_json::to_value(obj).unwrap_or_default();
    let mut conditions: Vec<Condition> = json
        .pointer("/status/conditions")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default();
    let already = find_condition(&conditions, condition_type::SYNCED)
        .is_some_and(|c| c.reason == RECONCILE_PANICKED && c.message == message);
    if already {
        return;
    }
    let condition = Condition {
        observed_generation: obj.meta().generation,
        ..Condition::new(
            condition_type::SYNCED,
            false,
            RECONCILE_PANICKED,
            message.as_str(),
        )
    };
    let now = super::now();
    set_condition(&mut conditions, condition, &now);
    set_kstatus_conditions(&mut conditions, &now);
    // Server-side apply by a field manager of its own, guarded by the resourceVersion the
    // reconcile saw (a newer object is left alone: its next reconcile reports again).
    // The controller's own status write takes the fields over when the object recovers,
    // and [`release`] then drops what is left of this manager's (the message).
    let mut patch = identity(obj, dyntype);
    patch["metadata"]["resourceVersion"] = json!(obj.resource_version());
    patch["status"] = json!({ "conditions": conditions });
    if let Err(e) = apply_status(client, obj, dyntype, &patch).await {
        warn!(name = %obj.name_any(), error = %e, "failed to write the condition of a panicked reconcile");
    }
    super::publish(
        recorder,
        obj,
        dyntype,
        EventType::Warning,
        RECONCILE_PANICKED,
        message,
    )
    .await;
}

/// After a reconcile that did not panic: gives up the status fields a [`report`] left
/// on `obj` (such as the panic's message, which a `Synced` condition without a message
/// would otherwise keep). Nothing to do, and no request, when there are none.
pub(crate) async fn release<K>(client: &kube::Client, obj: &K, dyntype: &K::DynamicType)
where
    K: Resource,
{
    let reported = obj.meta().managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(FIELD_MANAGER) && m.operation.as_deref() == Some("Apply")
    });
    if !reported {
        return;
    }
    if let Err(e) = apply_status(client, obj, dyntype, &identity(obj, dyntype)).await {
        warn!(name = %obj.name_any(), error = %e, "failed to release the condition of a panicked reconcile");
    }
}

/// `apiVersion`, `kind` and `metadata.name` (and `namespace`) of `obj`: an apply of
/// nothing else gives up every field the manager owned.
fn identity<K: Resource>(obj: &K, dyntype: &K::DynamicType) -> serde_json::Value {
    let mut metadata = json!({ "name": obj.name_any() });
    if let Some(ns) = obj.namespace() {
        metadata["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": K::api_version(dyntype),
        "kind": K::kind(dyntype),
        "metadata": metadata,
    })
}

async fn apply_status<K: Resource>(
    client: &kube::Client,
    obj: &K,
    dyntype: &K::DynamicType,
    patch: &serde_json::Value,
) -> Result<(), kube::Error> {
    let url = K::url_path(dyntype, obj.namespace().as_deref());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let req = kube::core::Request::new(url)
        .patch_subresource("status", &obj.name_any(), &params, &Patch::Apply(patch))
        .map_err(kube::Error::BuildRequest)?;
    client.request::<serde_json::Value>(req).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_literal_panic_payload_reaches_the_message() {
        let literal = std::panic::catch_unwind(|| panic!("index out of range")).unwrap_err();
        assert_eq!(static_payload(literal.as_ref()), Some("index out of range"));
        assert!(message(static_payload(literal.as_ref())).ends_with("(panic: index out of range)"));

        let secret = "hunter2";
        let formatted =
            std::panic::catch_unwind(|| panic!("password {secret} rejected")).unwrap_err();
        assert_eq!(static_payload(formatted.as_ref()), None);
        let m = message(static_payload(formatted.as_ref()));
        assert!(!m.contains(secret), "{m}");
        assert!(m.starts_with("The controller panicked"), "{m}");

        let failing = |token: &str| -> Result<(), String> { Err(format!("token {token}")) };
        let unwrapped: Box<dyn Any + Send> =
            std::panic::catch_unwind(|| failing(secret).expect("a token")).unwrap_err();
        assert!(!message(static_payload(unwrapped.as_ref())).contains(secret));
    }
}
