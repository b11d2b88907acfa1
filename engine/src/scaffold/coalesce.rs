//! Coalescing the status writes of an object that is still being created.
//!
//! While a composite's resources are created one `dependsOn` layer at a time, its `Ready`
//! condition stays `False` with reason `Creating` and only its message moves on ("Waiting
//! for resources: role, database, grant", then "database, grant", ...), and its claim
//! mirrors each message. Writing every such step costs two status writes per layer and
//! per claim, for states that last a second. A change that only moves a `Creating` status
//! forward ([`progress_only`]) is therefore written at most once per
//! [`PROGRESS_WRITE_INTERVAL`] per object; the reconcile that holds one back looks again
//! when the interval is over, so the stored status is at most that late. Every other
//! change (the first status, `Ready` turning true, another reason, a `Synced` change, a
//! new generation) is written at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::common::{Condition, condition_type, find_condition, reason};

/// The shortest time between two writes of progress-only changes of one object's status.
pub const PROGRESS_WRITE_INTERVAL: Duration = Duration::from_secs(10);

/// Whether the change from status `old` to status `new` (each a whole `status` object, or
/// null) only moves a status that is still being created forward: `Ready` is `False` with
/// reason `Creating` before and after, `Synced` is unchanged (status, reason, message),
/// and so are `observedGeneration` and the fields named in `kept` (e.g. a claim's
/// `resourceRef`, a composite's `connectionDetails`). Messages and other status fields may
/// differ.
pub fn progress_only(old: &Value, new: &Value, kept: &[&str]) -> bool {
    let conditions = |v: &Value| -> Vec<Condition> {
        v.get("conditions")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default()
    };
    let (old_c, new_c) = (conditions(old), conditions(new));
    let creating = |c: &[Condition]| {
        find_condition(c, condition_type::READY)
            .is_some_and(|r| r.status == "False" && r.reason == reason::CREATING)
    };
    let synced = |c: &[Condition]| {
        find_condition(c, condition_type::SYNCED)
            .map(|s| (s.status.clone(), s.reason.clone(), s.message.clone()))
    };
    creating(&old_c)
        && creating(&new_c)
        && synced(&old_c) == synced(&new_c)
        && ["observedGeneration"]
            .iter()
            .chain(kept)
            .all(|k| old.get(k) == new.get(k))
}

/// When each object's status was last written, for [`Self::hold_back`].
#[derive(Debug)]
pub struct StatusWrites {
    interval: Duration,
    written: Mutex<HashMap<String, Instant>>,
}

impl Default for StatusWrites {
    fn default() -> Self {
        StatusWrites::new(PROGRESS_WRITE_INTERVAL)
    }
}

impl StatusWrites {
    /// Progress-only changes written at most once per `interval` per object.
    pub fn new(interval: Duration) -> Self {
        StatusWrites {
            interval,
            written: Mutex::new(HashMap::new()),
        }
    }

    /// How long a change of object `key`'s status waits before it is written: `None` to
    /// write it now (it is not `progress_only`, or the last write is older than the
    /// interval), else the rest of the interval.
    pub fn hold_back(&self, key: &str, progress_only: bool, now: Instant) -> Option<Duration> {
        if !progress_only {
            return None;
        }
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let since = now.saturating_duration_since(*written.get(key)?);
        (since < self.interval).then(|| self.interval - since)
    }

    /// The decision for a status change of object `key` from `old` to `new` (`kept`: as in
    /// [`progress_only`]): `Some(wait)` holds it back for `wait`; `None` means write it now,
    /// and the write is recorded.
    pub fn admit(&self, key: &str, old: &Value, new: &Value, kept: &[&str]) -> Option<Duration> {
        let now = Instant::now();
        let wait = self.hold_back(key, progress_only(old, new, kept), now);
        if wait.is_none() {
            self.wrote(key, now);
        }
        wait
    }

    /// Records a write of object `key`'s status at `now`; forgets writes older than the
    /// interval, which hold nothing back any more.
    pub fn wrote(&self, key: &str, now: Instant) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.retain(|_, at| now.saturating_duration_since(*at) < self.interval);
        written.insert(key.to_string(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(ready: (&str, &str, &str), synced: (&str, &str), extra: Value) -> Value {
        let mut s = json!({
            "conditions": [
                { "type": "Ready", "status": ready.0, "reason": ready.1, "message": ready.2 },
                { "type": "Synced", "status": synced.0, "reason": synced.1, "message": "" },
            ],
            "observedGeneration": 1,
        });
        if let (Some(s), Value::Object(extra)) = (s.as_object_mut(), extra) {
            s.extend(extra);
        }
        s
    }

    #[test]
    fn only_changes_within_creating_are_progress() {
        let ok = ("True", "ReconcileSuccess");
        let creating = |m: &str| ("False", "Creating", m.to_string());
        let base = status(
            ("False", "Creating", "Waiting for resources: a, b"),
            ok,
            json!({ "name": "x" }),
        );
        let c = |r: (&str, &str, String), s: (&str, &str), extra: Value| {
            status((r.0, r.1, &r.2), s, extra)
        };
        let cases = [
            (
                "a shorter waiting list",
                c(
                    creating("Waiting for resources: b"),
                    ok,
                    json!({ "name": "x" }),
                ),
                &[][..],
                true,
            ),
            (
                "a new status field while creating",
                c(
                    creating("Waiting for resources: b"),
                    ok,
                    json!({ "name": "x", "db": "y" }),
                ),
                &[],
                true,
            ),
            (
                "ready",
                c(
                    ("True", "Available", String::new()),
                    ok,
                    json!({ "name": "x" }),
                ),
                &[],
                false,
            ),
            (
                "another reason",
                c(
                    ("False", "Unavailable", "gone".into()),
                    ok,
                    json!({ "name": "x" }),
                ),
                &[],
                false,
            ),
            (
                "a Synced failure",
                c(
                    creating("Waiting for resources: a, b"),
                    ("False", "ReconcileError"),
                    json!({ "name": "x" }),
                ),
                &[],
                false,
            ),
            (
                "a kept field changed",
                c(
                    creating("Waiting for resources: a, b"),
                    ok,
                    json!({ "name": "y" }),
                ),
                &["name"],
                false,
            ),
        ];
        for (why, new, kept, want) in cases {
            assert_eq!(progress_only(&base, &new, kept), want, "{why}");
        }
        let mut generation = base.clone();
        generation["observedGeneration"] = json!(2);
        assert!(
            !progress_only(&base, &generation, &[]),
            "a new generation is written at once"
        );
        assert!(
            !progress_only(&Value::Null, &base, &[]),
            "the first status is written at once"
        );
    }

    #[test]
    fn progress_is_held_back_for_the_rest_of_the_interval_after_a_write() {
        let writes = StatusWrites::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(
            writes.hold_back("a", true, t0),
            None,
            "nothing written yet: write"
        );
        writes.wrote("a", t0);
        let t3 = t0 + Duration::from_secs(3);
        assert_eq!(
            writes.hold_back("a", true, t3),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            writes.hold_back("a", false, t3),
            None,
            "other changes are written at once"
        );
        assert_eq!(writes.hold_back("b", true, t3), None, "per object");
        assert_eq!(
            writes.hold_back("a", true, t0 + Duration::from_secs(10)),
            None
        );
        writes.wrote("b", t0 + Duration::from_secs(11));
        assert_eq!(
            writes.written.lock().unwrap().len(),
            1,
            "old writes are forgotten"
        );
    }
}
