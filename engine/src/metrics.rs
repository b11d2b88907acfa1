//! The controller's Prometheus metrics and cache readiness, shared by every controller of
//! the process (the `tessera controller` command serves them on `--metrics-addr`).
//!
//! ```text
//!  scaffold::run ──▶ reconciles, errors, duration, in flight, objects by Ready (per controller)
//!  scaffold::controller watch ──▶ time from creation to first Ready (per kind)
//!  managed::timeout::Deadline ──▶ external calls and their latency (per provider, operation)
//!  /metrics ◀── encode()          /readyz ◀── caches_synced()
//! ```
//!
//! Label values are bounded and never secret: controller and kind names, error classes,
//! operation names and the external system's name. Object names are never labels.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// A metric's labels: (name, value) pairs.
pub type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Everything the process measures.
struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    reconcile_errors: Family<Labels, Counter>,
    reconcile_duration: HistogramFamily,
    in_flight: Family<Labels, Gauge>,
    time_to_ready: HistogramFamily,
    external_calls: Family<Labels, Counter>,
    external_duration: HistogramFamily,
    objects: Family<Labels, Gauge>,
    leader: Gauge,
}

fn reconcile_buckets() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn ready_buckets() -> Histogram {
    // 50 ms .. ~27 min.
    Histogram::new(exponential_buckets(0.05, 2.0, 16))
}

fn external_buckets() -> Histogram {
    // 1 ms .. ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("tessera");
    let reconciles = Family::<Labels, Counter>::default();
    registry.register(
        "reconciles",
        "Reconciles completed, by controller and result (success, error, panic)",
        reconciles.clone(),
    );
    let reconcile_errors = Family::<Labels, Counter>::default();
    registry.register(
        "reconcile_errors",
        "Reconciles that failed, by controller and reason (the class of the error)",
        reconcile_errors.clone(),
    );
    let reconcile_duration = HistogramFamily::new_with_constructor(reconcile_buckets);
    registry.register(
        "reconcile_duration_seconds",
        "How long reconciles took, by controller",
        reconcile_duration.clone(),
    );
    let in_flight = Family::<Labels, Gauge>::default();
    registry.register(
        "reconciles_in_flight",
        "Reconciles running now, by controller (the work being done; what waits is queued in the controller)",
        in_flight.clone(),
    );
    let time_to_ready = HistogramFamily::new_with_constructor(ready_buckets);
    registry.register(
        "time_to_ready_seconds",
        "Time from an object's creation to its first Ready=True seen by this process, by kind",
        time_to_ready.clone(),
    );
    let external_calls = Family::<Labels, Counter>::default();
    registry.register(
        "external_calls",
        "Calls to external systems, by provider (the external system), operation and result",
        external_calls.clone(),
    );
    let external_duration = HistogramFamily::new_with_constructor(external_buckets);
    registry.register(
        "external_call_duration_seconds",
        "Latency of calls to external systems, by provider and operation",
        external_duration.clone(),
    );
    let objects = Family::<Labels, Gauge>::default();
    registry.register(
        "resources",
        "Objects of each controller's kind (managed resources, composites, claims) in this process's cache, by Ready status",
        objects.clone(),
    );
    let leader = Gauge::default();
    registry.register(
        "leader",
        "1 while this process holds the leader Lease (or runs without leader election), else 0",
        leader.clone(),
    );
    registry.register(
        "build",
        "The version of the running binary",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_string())]),
    );
    Metrics {
        registry,
        reconciles,
        reconcile_errors,
        reconcile_duration,
        in_flight,
        time_to_ready,
        external_calls,
        external_duration,
        objects,
        leader,
    }
});

/// One controller's watch cache, counted by Ready status at every scrape.
struct Cache {
    synced: Arc<AtomicBool>,
    count: Box<dyn Fn() -> [u64; 3] + Send + Sync>,
}

/// The caches of the running controllers, by controller name, each with its registration id.
static CACHES: LazyLock<Mutex<HashMap<String, (u64, Cache)>>> = LazyLock::new(Default::default);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Registers the watch cache of `controller`: `count` returns how many objects are
/// Ready True, False and Unknown (or without a Ready condition); `synced` turns true once
/// the cache holds its first full list. Dropping the returned guard unregisters it.
pub fn register_cache(
    controller: &str,
    synced: Arc<AtomicBool>,
    count: impl Fn() -> [u64; 3] + Send + Sync + 'static,
) -> CacheGuard {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let cache = Cache {
        synced,
        count: Box::new(count),
    };
    CACHES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(controller.to_string(), (id, cache));
    CacheGuard {
        controller: controller.to_string(),
        id,
    }
}

/// Unregisters a cache of [`register_cache`] when dropped.
pub struct CacheGuard {
    controller: String,
    id: u64,
}

impl Drop for CacheGuard {
    fn drop(&mut self) {
        let mut caches = CACHES.lock().unwrap_or_else(|e| e.into_inner());
        if caches
            .get(&self.controller)
            .is_some_and(|(id, _)| *id == self.id)
        {
            caches.remove(&self.controller);
        }
    }
}

/// The controllers whose caches have not yet synced (empty when all have, or when no
/// controller runs, as on a standby replica).
pub fn unsynced_caches() -> Vec<String> {
    let caches = CACHES.lock().unwrap_or_else(|e| e.into_inner());
    let mut names: Vec<String> = caches
        .iter()
        .filter(|(_, (_, c))| !c.synced.load(Ordering::Relaxed))
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names
}

/// The metrics in the Prometheus text format.
pub fn encode_text() -> String {
    let m = &*METRICS;
    m.objects.clear();
    {
        let caches = CACHES.lock().unwrap_or_else(|e| e.into_inner());
        for (controller, (_, cache)) in caches.iter() {
            let counts = (cache.count)();
            for (ready, n) in ["True", "False", "Unknown"].into_iter().zip(counts) {
                m.objects
                    .get_or_create(&vec![
                        ("controller", controller.clone()),
                        ("ready", ready.to_string()),
                    ])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &m.registry);
    out
}

/// Marks a reconcile of `controller` as running until the returned guard is finished or
/// dropped.
pub fn reconcile_started(controller: &str) -> ReconcileGuard {
    let labels = vec![("controller", controller.to_string())];
    METRICS.in_flight.get_or_create(&labels).inc();
    ReconcileGuard {
        controller: controller.to_string(),
        started: std::time::Instant::now(),
        done: false,
    }
}

/// A running reconcile, see [`reconcile_started`].
pub struct ReconcileGuard {
    controller: String,
    started: std::time::Instant,
    done: bool,
}

impl ReconcileGuard {
    /// Records the reconcile's end: its duration, its result, and for a failure its
    /// reason (an error class, never a message).
    pub fn finish(mut self, result: &str, error_reason: Option<&str>) {
        self.record(result, error_reason);
    }

    fn record(&mut self, result: &str, error_reason: Option<&str>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let m = &*METRICS;
        let controller = ("controller", self.controller.clone());
        m.in_flight.get_or_create(&vec![controller.clone()]).dec();
        m.reconcile_duration
            .get_or_create(&vec![controller.clone()])
            .observe(self.started.elapsed().as_secs_f64());
        m.reconciles
            .get_or_create(&vec![controller.clone(), ("result", result.to_string())])
            .inc();
        if let Some(reason) = error_reason {
            reconcile_error(&self.controller, reason);
        }
    }
}

impl Drop for ReconcileGuard {
    fn drop(&mut self) {
        // A reconcile future dropped mid-way (forceful shutdown) ends as cancelled.
        self.record("cancelled", None);
    }
}

/// Counts a failed reconcile of `controller` with `reason`, also one whose failure the
/// controller reported on the object instead of returning it (a provider error).
pub fn reconcile_error(controller: &str, reason: &str) {
    METRICS
        .reconcile_errors
        .get_or_create(&vec![
            ("controller", controller.to_string()),
            ("reason", reason.to_string()),
        ])
        .inc();
}

/// Records that an object of `kind` became Ready for the first time `seconds` after its
/// creation.
pub fn time_to_ready(kind: &str, seconds: f64) {
    METRICS
        .time_to_ready
        .get_or_create(&vec![("kind", kind.to_string())])
        .observe(seconds.max(0.0));
}

/// Records one call to an external system: `provider` is the system ("PostgreSQL"),
/// `operation` what was called ("observe"), `result` "ok" or the error class.
pub fn external_call(provider: &str, operation: &str, result: &str, took: Duration) {
    let m = &*METRICS;
    let base = vec![
        ("provider", provider.to_string()),
        ("operation", operation.to_string()),
    ];
    m.external_duration
        .get_or_create(&base)
        .observe(took.as_secs_f64());
    let mut labels = base;
    labels.push(("result", result.to_string()));
    m.external_calls.get_or_create(&labels).inc();
}

/// Sets whether this process leads (holds the Lease, or needs none).
pub fn set_leader(leader: bool) {
    METRICS.leader.set(i64::from(leader));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_external_calls_and_readiness_appear_in_the_text_format() {
        reconcile_started("test.example.org/Thing").finish("error", Some("ApplyResource"));
        drop(reconcile_started("test.example.org/Thing"));
        external_call("PostgreSQL", "observe", "ok", Duration::from_millis(3));
        time_to_ready("Thing", 1.5);
        let synced = Arc::new(AtomicBool::new(false));
        let guard = register_cache("test.example.org/Thing", synced.clone(), || [2, 1, 0]);
        assert_eq!(unsynced_caches(), ["test.example.org/Thing"]);
        synced.store(true, Ordering::Relaxed);
        assert!(unsynced_caches().is_empty());
        let text = encode_text();
        for line in [
            r#"tessera_reconciles_total{controller="test.example.org/Thing",result="error"} 1"#,
            r#"tessera_reconciles_total{controller="test.example.org/Thing",result="cancelled"} 1"#,
            r#"tessera_reconcile_errors_total{controller="test.example.org/Thing",reason="ApplyResource"} 1"#,
            r#"tessera_reconciles_in_flight{controller="test.example.org/Thing"} 0"#,
            r#"tessera_external_calls_total{provider="PostgreSQL",operation="observe",result="ok"} 1"#,
            r#"tessera_time_to_ready_seconds_count{kind="Thing"} 1"#,
            r#"tessera_resources{controller="test.example.org/Thing",ready="True"} 2"#,
            r#"tessera_build_info{version=""#,
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
        drop(guard);
        assert!(
            !encode_text().contains(r#"tessera_resources{controller="test.example.org/Thing""#)
        );
    }
}
