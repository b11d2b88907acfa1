//! The controller's log filter.

use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::{Layer, Registry};

/// Targets whose debug output can carry secrets, pinned to `info` unless the filter names
/// them itself: tokio-postgres logs the messages of the SCRAM authentication exchange at
/// debug level.
const PINNED: &[&str] = &["tokio_postgres"];

/// The log filter for `RUST_LOG`'s value `env` (default `info`): the same directives,
/// plus `<target>=info` for every [`PINNED`] target the user did not set explicitly.
pub fn filter_directives(env: Option<&str>) -> String {
    let base = env
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("info");
    let named = |target: &str| {
        base.split(',').any(|d| {
            let t = d.trim().split(['=', '[']).next().unwrap_or("");
            t == target || t.starts_with(&format!("{target}::"))
        })
    };
    let mut directives = base.to_string();
    for target in PINNED.iter().filter(|t| !named(t)) {
        directives.push_str(&format!(",{target}=info"));
    }
    directives
}

/// The filter of [`filter_directives`] for the environment's `RUST_LOG`; when that does
/// not parse, `info` with the pins.
pub fn filter() -> Box<dyn Layer<Registry> + Send + Sync> {
    filter_from(std::env::var("RUST_LOG").ok().as_deref())
}

/// The filter of [`filter_directives`]`(env)`, boxed ([`Filter`]).
fn filter_from(env: Option<&str>) -> Box<dyn Layer<Registry> + Send + Sync> {
    match Filter::parse(env) {
        Filter::Targets(t) => t,
        Filter::Env(f) => f,
    }
}

/// The filter of [`filter_directives`]`(env)`. Directives of targets and levels only
/// (`info,kube=debug`) make a [`Targets`] filter, decided once per call site. A directive
/// on spans or fields (`[reconcile{object=x}]=debug`) needs an [`EnvFilter`], which also
/// follows every span the process enters and leaves: a shared lock at each enter and exit
/// of every instrumented future, about a tenth of the controller's CPU with 3,000 claims
/// in the benchmark.
enum Filter {
    /// Targets and levels only.
    Targets(Box<Targets>),
    /// Directives on spans or fields.
    Env(Box<EnvFilter>),
}

impl Filter {
    fn parse(env: Option<&str>) -> Self {
        let directives = filter_directives(env);
        if !directives.contains('[')
            && let Ok(targets) = directives.parse::<Targets>()
        {
            return Filter::Targets(Box::new(targets));
        }
        Filter::Env(Box::new(
            EnvFilter::try_new(&directives)
                .unwrap_or_else(|_| EnvFilter::new(filter_directives(None))),
        ))
    }
}

/// Replaces Rust's default panic output (the whole payload on stderr) with one error event
/// in the controller's log format: the source location, and the payload only when it is a
/// literal of the source. Any other payload is withheld, because `expect` and `unwrap` on a
/// `Result` format the error into it, and an error can carry a value read from a Secret.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let panic = info
            .payload()
            .downcast_ref::<&'static str>()
            .copied()
            .unwrap_or("<payload withheld>");
        tracing::error!(%location, panic, "panicked");
    }));
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn tokio_postgres_is_pinned_to_info_unless_the_user_names_it() {
        let cases = [
            (None, "info,tokio_postgres=info"),
            (Some("debug"), "debug,tokio_postgres=info"),
            (
                Some("tessera=trace,kube=debug"),
                "tessera=trace,kube=debug,tokio_postgres=info",
            ),
            (
                Some("debug,tokio_postgres=trace"),
                "debug,tokio_postgres=trace",
            ),
            (
                Some("tokio_postgres::connection=debug"),
                "tokio_postgres::connection=debug",
            ),
            (
                Some("tokio_postgres_extra=debug"),
                "tokio_postgres_extra=debug,tokio_postgres=info",
            ),
        ];
        for (env, want) in cases {
            assert_eq!(filter_directives(env), want, "RUST_LOG={env:?}");
        }
    }

    /// Collects the targets of the events it sees.
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0
                .lock()
                .unwrap()
                .push(event.metadata().target().to_string());
        }
    }

    #[test]
    fn with_rust_log_debug_tokio_postgres_debug_events_are_dropped() {
        // Both kinds of filter: target directives only, and one on spans.
        for env in ["debug", "debug,[reconcile]=trace"] {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let subscriber = tracing_subscriber::registry()
                .with(filter_from(Some(env)))
                .with(Seen(seen.clone()));
            tracing::subscriber::with_default(subscriber, || {
                tracing::debug!(target: "tokio_postgres::connection", "SCRAM client-first-message");
                tracing::info!(target: "tokio_postgres::connection", "connected");
                tracing::debug!(target: "tessera::managed", "reconciling");
                tracing::trace!(target: "tessera::managed", "not at debug");
            });
            assert_eq!(
                *seen.lock().unwrap(),
                ["tokio_postgres::connection", "tessera::managed"],
                "RUST_LOG={env}: the debug event of tokio_postgres is dropped, its info event and \
                 other debug events are kept"
            );
        }
    }

    #[test]
    fn target_directives_make_a_filter_that_follows_no_span() {
        for (env, targets) in [
            (None, true),
            (Some("info,tessera_provider_nop::calls=debug"), true),
            (Some("warn,tessera[reconcile]=debug"), false),
        ] {
            let is_targets = matches!(Filter::parse(env), Filter::Targets(_));
            assert_eq!(is_targets, targets, "RUST_LOG={env:?}");
        }
    }

    /// A writer into a shared buffer, for reading what a subscriber printed.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_panic_is_logged_with_its_location_and_without_a_formatted_payload() {
        let out = Buffer::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        install_panic_hook();
        tracing::subscriber::with_default(subscriber, || {
            let secret = "s3cr3t-from-a-secret";
            let _ = std::panic::catch_unwind(|| {
                let port = format!("{secret}:5432");
                port.parse::<u16>().expect(&port)
            });
            let _ = std::panic::catch_unwind(|| panic!("a literal message"));
        });
        let _ = std::panic::take_hook();
        let printed = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(printed.contains("<payload withheld>"), "{printed}");
        assert!(printed.contains("a literal message"), "{printed}");
        assert!(printed.contains("src/logging.rs:"), "{printed}");
    }
}
