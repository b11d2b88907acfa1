//! Per-object retry delays after errors, with jitter.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::{Resource, ResourceExt};

/// Per-object retry delays after errors: 1s, 2s, 4s, ... up to a maximum, jittered so
/// that many failing objects do not retry at once.
#[derive(Debug)]
pub struct Backoff {
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Default for Backoff {
    /// Up to a minute.
    fn default() -> Self {
        Backoff::new(Duration::from_secs(60))
    }
}

impl Backoff {
    /// Delays that grow up to `max`.
    pub fn new(max: Duration) -> Self {
        Backoff {
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records one more failure of `obj` and returns how long to wait.
    pub fn next<K: Resource>(&self, obj: &K) -> Duration {
        self.next_key(&key(obj))
    }

    /// Forgets the failures of `obj` after a successful reconcile.
    pub fn reset<K: Resource>(&self, obj: &K) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&key(obj));
    }

    fn next_key(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let base = Duration::from_secs(1u64 << (*n - 1).min(16));
        jitter(base.min(self.max), 0.2)
    }
}

/// Objects of one controller are told apart by namespace and name.
fn key<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// `d` changed by up to `fraction` either way.
pub fn jitter(d: Duration, fraction: f64) -> Duration {
    let f = 1.0 + fraction * (2.0 * rand::random::<f64>() - 1.0);
    d.mul_f64(f.max(0.0))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn object(namespace: &str, name: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some(namespace.into());
        cm.metadata.name = Some(name.into());
        cm
    }

    fn about(d: Duration, secs: f64) -> bool {
        d.as_secs_f64() >= secs * 0.8 && d.as_secs_f64() <= secs * 1.2
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_the_maximum_and_resets() {
        let b = Backoff::new(Duration::from_secs(4));
        let a = object("ns", "a");
        let waits: Vec<Duration> = (0..4).map(|_| b.next(&a)).collect();
        for (d, want) in waits.iter().zip([1.0, 2.0, 4.0, 4.0]) {
            assert!(about(*d, want), "{d:?} not about {want}s");
        }
        b.reset(&a);
        assert!(about(b.next(&a), 1.0), "reset starts over");
    }

    #[test]
    fn backoff_counts_objects_of_the_same_name_in_other_namespaces_apart() {
        let b = Backoff::new(Duration::from_secs(60));
        for _ in 0..3 {
            b.next(&object("team-a", "db"));
        }
        assert!(about(b.next(&object("team-b", "db")), 1.0));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(100), 0.1);
            assert!(
                d >= Duration::from_secs(90) && d <= Duration::from_secs(110),
                "{d:?}"
            );
        }
    }
}
