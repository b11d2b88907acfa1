//! Plumbing every Tessera controller shares: finalizer patches, retry backoff with
//! jitter, best-effort events, timestamps and message casing.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::warn;

/// Adds `finalizer` with a JSON patch that tests the current list first, so that a
/// finalizer someone else added in the meantime is never dropped.
pub async fn add_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if obj.finalizers().iter().any(|f| f == finalizer) {
        return Ok(());
    }
    let ops = if obj.finalizers().is_empty() {
        json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": [finalizer] },
        ])
    } else {
        json!([
            { "op": "test", "path": "/metadata/finalizers", "value": obj.finalizers() },
            { "op": "add", "path": "/metadata/finalizers/-", "value": finalizer },
        ])
    };
    json_patch(api, obj, ops).await
}

/// Removes `finalizer` (if present) with a JSON patch that tests its position first.
pub async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let Some(i) = obj.finalizers().iter().position(|f| f == finalizer) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{i}");
    let ops = json!([
        { "op": "test", "path": path, "value": finalizer },
        { "op": "remove", "path": path },
    ]);
    json_patch(api, obj, ops).await
}

async fn json_patch<K>(api: &Api<K>, obj: &K, ops: serde_json::Value) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let patch: json_patch::Patch = serde_json::from_value(ops).map_err(kube::Error::SerdeError)?;
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .await?;
    Ok(())
}

/// Per-object retry delays after errors: 1s, 2s, 4s, ... up to a maximum, jittered so
/// that many failing objects do not retry at once.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Records one more failure of `key` and returns how long to wait.
    pub fn next(&self, key: &str, max: Duration) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let base = Duration::from_secs(1u64 << (*n - 1).min(16));
        jitter(base.min(max), 0.2)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(key);
    }
}

/// `d` changed by up to `fraction` either way.
pub fn jitter(d: Duration, fraction: f64) -> Duration {
    let f = 1.0 + fraction * (2.0 * rand::random::<f64>() - 1.0);
    d.mul_f64(f.max(0.0))
}

/// Publishes an event about `obj`; a failure is logged, never returned (events are best effort).
pub async fn publish<K: Resource<DynamicType = D>, D>(
    recorder: &Recorder,
    obj: &K,
    dyntype: &D,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: reason.to_string(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &obj.object_ref(dyntype)).await {
        warn!(name = %obj.name_any(), error = %e, "failed to publish event");
    }
}

/// The current time in RFC 3339 with microseconds: condition transition times, and the
/// create annotations, whose order must be decidable by comparing the strings.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Condition messages start with a capital letter (DESIGN.md 4).
pub fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_failure_up_to_the_maximum_and_resets() {
        let b = Backoff::default();
        let max = Duration::from_secs(4);
        let waits: Vec<Duration> = (0..4).map(|_| b.next("a", max)).collect();
        let within =
            |d: Duration, secs: f64| d.as_secs_f64() >= secs * 0.8 && d.as_secs_f64() <= secs * 1.2;
        for (d, want) in waits.iter().zip([1.0, 2.0, 4.0, 4.0]) {
            assert!(within(*d, want), "{d:?} not about {want}s");
        }
        b.reset("a");
        assert!(within(b.next("a", max), 1.0), "reset starts over");
    }

    #[test]
    fn messages_are_capitalised() {
        assert_eq!(capitalize("no composition"), "No composition");
        assert_eq!(capitalize(""), "");
    }
}
