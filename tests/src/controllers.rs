//! Evidence from the in-process controllers, so that tests can fail when a controller is
//! dead or never looked at an object:
//!
//! - a panic on a controller thread (or the controllers stopping) is recorded and re-raised
//!   in the test by every wait helper ([`assert_controllers_alive`]), instead of surfacing
//!   as a 60 s timeout long after — except the panics tests inject on purpose
//!   (`tessera_engine::testing::INJECTED_PANIC`), which the controllers contain;
//! - completed reconciles are recorded per object, from the `reconciling object` span that
//!   kube-runtime's `Controller` opens around each reconcile ([`wait_reconciled`]): a check
//!   that "nothing changed" first waits until the object was reconciled again, instead of
//!   sleeping and hoping a reconcile happened.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Name of the threads (and their runtime's workers) that run in-process controllers.
pub(crate) const CONTROLLER_THREAD: &str = "tessera-controllers";

/// The span kube-runtime's `Controller` opens around every reconcile, with the field
/// `object.ref` = `<kind>.<version>.<group>/<name>[.<namespace>]`.
const RECONCILE_SPAN: &str = "reconciling object";

static DEAD: Mutex<Option<String>> = Mutex::new(None);
/// Per `object.ref`: when the latest completed reconcile started.
static COMPLETED: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();

fn completed() -> &'static Mutex<HashMap<String, Instant>> {
    COMPLETED.get_or_init(Default::default)
}

/// Installs the panic hook and the reconcile recorder, once per test process. Must run
/// before the controllers start (the in-process starters of this crate call it).
pub fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            // The faults tests inject on purpose are contained by the controllers (and
            // asserted by those tests); every other panic is a real one.
            let injected = info.payload().downcast_ref::<&str>()
                == Some(&tessera_engine::testing::INJECTED_PANIC);
            if !injected
                && thread
                    .name()
                    .is_some_and(|n| n.starts_with(CONTROLLER_THREAD))
            {
                record_death(format!("an in-process controller panicked: {info}"));
            }
            previous(info);
        }));
        // The reconcile recorder sees only the reconcile spans; the controllers' own log
        // (info and above) goes to a file in the state dir, where the secrets audit
        // searches it.
        let recorder = ReconcileCounter.with_filter(filter_fn(|meta| {
            meta.is_span() && meta.name() == RECONCILE_SPAN
        }));
        let log = crate::audit::log_dir().join(format!("in-process-{}.log", std::process::id()));
        let file_log = std::fs::File::create(log).ok().map(|f| {
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(Mutex::new(f))
                .with_filter(EnvFilter::new("info"))
        });
        let subscriber = tracing_subscriber::registry().with(recorder).with(file_log);
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Records that the controllers are no longer running (the first cause is kept).
pub(crate) fn record_death(why: String) {
    let mut dead = DEAD.lock().unwrap_or_else(|p| p.into_inner());
    dead.get_or_insert(why);
}

/// Panics (in the test) when an in-process controller panicked or stopped.
pub fn assert_controllers_alive() {
    let dead = DEAD.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(why) = dead {
        panic!("{why}");
    }
}

/// The start of the latest reconcile of the object `kind` `name` (in `namespace`, for
/// namespaced kinds) that the in-process controllers completed, if any.
pub fn last_reconcile_started(kind: &str, namespace: Option<&str>, name: &str) -> Option<Instant> {
    let want_name = match namespace {
        Some(ns) => format!("{name}.{ns}"),
        None => name.to_string(),
    };
    let kind_prefix = format!("{kind}.");
    completed()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(object_ref, _)| {
            object_ref
                .split_once('/')
                .is_some_and(|(gvk, n)| gvk.starts_with(&kind_prefix) && n == want_name)
        })
        .map(|(_, started)| *started)
        .max()
}

/// Waits until a reconcile of the object that started at or after `since` has completed;
/// panics after `timeout` or when a controller died.
///
/// A controller never reconciles one object twice at once, so such a reconcile also means
/// that every reconcile before `since` (and the writes it made) is over. With nothing
/// changed since `since`, it is a poll: evidence that the controller looked again.
pub async fn wait_reconciled(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    since: Instant,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        assert_controllers_alive();
        if last_reconcile_started(kind, namespace, name).is_some_and(|t| t >= since) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{kind} {name}: no reconcile started after the mark completed within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until each of `objects` (kind, namespace, name) completed a reconcile that
/// started at or after `since` (see [`wait_reconciled`]).
pub async fn wait_all_reconciled(
    objects: &[(&str, Option<&str>, &str)],
    since: Instant,
    timeout: Duration,
) {
    for (kind, namespace, name) in objects {
        wait_reconciled(kind, *namespace, name, since, timeout).await;
    }
}

/// Counts closed `reconciling object` spans per `object.ref`.
struct ReconcileCounter;

/// The `object.ref` of a reconcile span and when it started, kept in the span's
/// extensions until it closes.
struct Started(String, Instant);

struct RefVisitor(Option<String>);

impl Visit for RefVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "object.ref" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S> Layer<S> for ReconcileCounter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut visitor = RefVisitor(None);
        attrs.record(&mut visitor);
        if let (Some(object_ref), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut()
                .insert(Started(object_ref, Instant::now()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        if let Some(Started(object_ref, started)) = span.extensions().get::<Started>() {
            let mut completed = completed().lock().unwrap_or_else(|p| p.into_inner());
            let latest = completed.entry(object_ref.clone()).or_insert(*started);
            *latest = (*latest).max(*started);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only test of this crate's unit-test binary: the death it records is global.
    #[test]
    fn a_panic_on_a_controller_thread_fails_the_next_check_in_the_test() {
        install();
        assert_controllers_alive();
        let died = std::thread::Builder::new()
            .name(CONTROLLER_THREAD.to_string())
            .spawn(|| panic!("reconcile went wrong"))
            .expect("spawn")
            .join();
        assert!(died.is_err(), "the controller thread panicked");
        let check = std::panic::catch_unwind(assert_controllers_alive);
        let message = check
            .expect_err("the check fails once a controller died")
            .downcast::<String>()
            .expect("a message");
        assert!(
            message.contains("an in-process controller panicked")
                && message.contains("reconcile went wrong"),
            "{message}"
        );
    }
}
