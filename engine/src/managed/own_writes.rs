//! Recognising a cached object that the controller's own later write has superseded.
//!
//! A reconcile writes the same object several times (the create-pending annotation, the
//! create-succeeded annotation, the status). Each write sends a watch event, and the
//! controller queues the object again; the next reconcile reads it from the watch cache,
//! which may not have seen the last write yet. Working from such a version repeats what
//! the last write recorded — for a PostgreSQL Role, a password whose fingerprint the
//! status already holds would be set again, with an extra status write, event and Secret
//! write. Resource versions are opaque (never compared for order), but the versions this
//! controller's own writes replaced are known exactly: a reconcile that starts from one
//! of them waits for the cache instead.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// How many superseded versions are remembered per object; a reconcile writes an object
/// at most four times.
const REMEMBERED: usize = 8;

#[derive(Debug, Default)]
struct Versions {
    latest: Option<String>,
    superseded: VecDeque<String>,
}

/// The resource versions this controller's writes replaced, per object UID.
#[derive(Debug, Default)]
pub(crate) struct OwnWrites {
    objects: Mutex<HashMap<String, Versions>>,
}

impl OwnWrites {
    /// Records that a write of object `uid`, made from version `read`, produced version
    /// `written`.
    pub(crate) fn record(&self, uid: &str, read: Option<&str>, written: Option<&str>) {
        let Some(written) = written else { return };
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let v = objects.entry(uid.to_string()).or_default();
        let replaced = v.latest.replace(written.to_string());
        for old in replaced.as_deref().into_iter().chain(read) {
            if old != written && !v.superseded.iter().any(|s| s == old) {
                if v.superseded.len() == REMEMBERED {
                    v.superseded.pop_front();
                }
                v.superseded.push_back(old.to_string());
            }
        }
    }

    /// Whether `version` of object `uid` is older than one of this controller's writes.
    pub(crate) fn is_superseded(&self, uid: &str, version: Option<&str>) -> bool {
        let Some(version) = version else { return false };
        let objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        objects
            .get(uid)
            .is_some_and(|v| v.superseded.iter().any(|s| s == version))
    }

    /// Forgets object `uid` (it is gone).
    pub(crate) fn forget(&self, uid: &str) {
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        objects.remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_replaced_by_own_writes_are_superseded_and_the_newest_is_not() {
        let w = OwnWrites::default();
        // Read at 10; pending annotation -> 11; succeeded annotation -> 12; status -> 13.
        w.record("u", Some("10"), Some("11"));
        w.record("u", Some("10"), Some("12"));
        w.record("u", Some("10"), Some("13"));
        for (reason, version, want) in [
            ("the version the reconcile read", "10", true),
            ("the pending annotation's version", "11", true),
            ("the succeeded annotation's version", "12", true),
            ("the status write's version is current", "13", false),
            ("someone else's later write", "14", false),
        ] {
            assert_eq!(w.is_superseded("u", Some(version)), want, "{reason}");
        }
        assert!(
            !w.is_superseded("other", Some("10")),
            "other objects are unaffected"
        );
        assert!(!w.is_superseded("u", None), "no version, nothing known");
    }

    #[test]
    fn a_forgotten_object_has_no_superseded_versions_and_memory_stays_bounded() {
        let w = OwnWrites::default();
        for i in 0..100 {
            w.record("u", Some(&i.to_string()), Some(&(i + 1).to_string()));
        }
        let remembered = (0..100)
            .filter(|i| w.is_superseded("u", Some(&i.to_string())))
            .count();
        assert_eq!(remembered, REMEMBERED);
        assert!(
            !w.is_superseded("u", Some("100")),
            "the newest write is current"
        );
        w.forget("u");
        assert!(!w.is_superseded("u", Some("99")));
    }
}
