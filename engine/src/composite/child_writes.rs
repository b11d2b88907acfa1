//! Recognising a store of composed resources that has not yet seen this controller's own
//! writes.
//!
//! A composite reads its composed resources from the watches' stores. Right after it
//! created, changed or deleted one, the store may still hold the version before (or
//! nothing, after a create): the plan made from it would apply or delete the same
//! resource again, with another write and event. Resource versions are opaque, but the
//! versions this controller's writes replaced are known exactly; a store that shows one
//! of them, or lacks a resource just created, is stale, and the reconcile lists from the
//! API server instead.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::DynamicObject;

/// How long a write is remembered: a store later than that is not waited for any more
/// (a watch that lags this much is restarting, and its relist brings the writes).
const REMEMBERED_FOR: Duration = Duration::from_secs(60);

/// One composed resource, as `group/kind/namespace/name`.
pub(super) fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> String {
    format!("{group}/{kind}/{}/{name}", namespace.unwrap_or_default())
}

#[derive(Debug)]
struct Write {
    /// The versions the write replaced (the one the store showed when it was made).
    superseded: Option<String>,
    /// Whether the resource exists after the write (an apply), or is going (a delete).
    exists: bool,
    at: Instant,
}

/// The writes of composed resources this controller made, per composite UID.
#[derive(Debug, Default)]
pub(super) struct ChildWrites {
    composites: Mutex<HashMap<String, HashMap<String, Write>>>,
}

impl ChildWrites {
    /// Records an apply (`exists`) or delete of composed resource `key` by composite
    /// `xr_uid`, made when the store showed version `superseded` (`None`: not there).
    pub(super) fn record(
        &self,
        xr_uid: &str,
        key: String,
        superseded: Option<String>,
        exists: bool,
    ) {
        let mut all = self.composites.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        all.retain(|_, writes| {
            writes.retain(|_, w| now.saturating_duration_since(w.at) < REMEMBERED_FOR);
            !writes.is_empty()
        });
        all.entry(xr_uid.to_string()).or_default().insert(
            key,
            Write {
                superseded,
                exists,
                at: now,
            },
        );
    }

    /// Whether `cached`, the composed resources of `group`/`kind` of composite `xr_uid` as
    /// a store shows them, misses one of the composite's writes; writes the store shows
    /// are forgotten.
    pub(super) fn stale(
        &self,
        xr_uid: &str,
        group: &str,
        kind: &str,
        cached: &[DynamicObject],
    ) -> bool {
        let mut all = self.composites.lock().unwrap_or_else(|e| e.into_inner());
        let Some(writes) = all.get_mut(xr_uid) else {
            return false;
        };
        let now = Instant::now();
        let prefix = format!("{group}/{kind}/");
        let mut stale = false;
        writes.retain(|k, w| {
            if !k.starts_with(&prefix) {
                return true;
            }
            if now.saturating_duration_since(w.at) >= REMEMBERED_FOR {
                return false;
            }
            let shown = cached
                .iter()
                .find(|o| key(group, kind, o.namespace().as_deref(), &o.name_any()) == *k);
            let seen = match shown {
                // The write replaced the version the store still shows.
                Some(o) if w.superseded.is_some() && o.resource_version() == w.superseded => false,
                Some(_) => true,
                // Created, and not in the store yet.
                None if w.exists => false,
                // Deleted, and gone from the store (or never there).
                None => true,
            };
            stale |= !seen;
            !seen
        });
        if writes.is_empty() {
            all.remove(xr_uid);
        }
        stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str, rv: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "g/v1", "kind": "K",
            "metadata": { "name": name, "resourceVersion": rv },
        }))
        .expect("object")
    }

    #[test]
    fn a_store_is_stale_until_it_shows_each_write() {
        let writes = ChildWrites::default();
        assert!(!writes.stale("xr", "g", "K", &[]), "no writes: fresh");

        writes.record("xr", key("g", "K", None, "a"), None, true);
        assert!(writes.stale("xr", "g", "K", &[]), "created, not there yet");
        assert!(!writes.stale("xr", "g", "Other", &[]), "another kind");
        assert!(
            !writes.stale("other-xr", "g", "K", &[]),
            "another composite"
        );
        assert!(!writes.stale("xr", "g", "K", &[obj("a", "5")]), "there now");
        assert!(!writes.stale("xr", "g", "K", &[]), "forgotten once seen");

        writes.record("xr", key("g", "K", None, "a"), Some("5".into()), true);
        assert!(
            writes.stale("xr", "g", "K", &[obj("a", "5")]),
            "the version the apply replaced"
        );
        assert!(
            !writes.stale("xr", "g", "K", &[obj("a", "6")]),
            "a newer one"
        );

        writes.record("xr", key("g", "K", None, "a"), Some("6".into()), false);
        assert!(
            writes.stale("xr", "g", "K", &[obj("a", "6")]),
            "deleted, the store still shows it as it was"
        );
        assert!(!writes.stale("xr", "g", "K", &[]), "gone");
    }
}
