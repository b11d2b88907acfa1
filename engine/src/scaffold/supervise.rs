//! Supervision of controllers that run as tasks of another controller (the composite and
//! claim controllers of each XRD): a controller that ends while it should run is
//! restarted with bounded exponential backoff, and its owner hears of every start and
//! stop so that it can say so on its object.

use std::future::Future;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tracing::{error, info};

/// The first delay before a restart; it doubles with every restart, up to [`MAX_DELAY`].
const MIN_DELAY: Duration = Duration::from_secs(1);
/// The longest delay before a restart.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A controller that ran this long before it ended is restarted after [`MIN_DELAY`]
/// again.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

static STOPPING: AtomicBool = AtomicBool::new(false);
static STOP: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Whether the process was asked to stop (SIGTERM or Ctrl-C): controllers that end then
/// are not restarted.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Resolves once the process was asked to stop (see [`stopping`]): every controller of
/// the process stops on this one signal handler.
pub async fn stopped() {
    loop {
        // Created before the check, so a stop between the check and the wait is not missed.
        let notified = STOP.notified();
        if stopping() {
            return;
        }
        notified.await;
    }
}

/// Asks every controller of the process to stop, as SIGTERM does: a process that handles
/// the signal itself (and may have received it before any controller started) passes it
/// on with this, so that no controller depends on its own handler being in place in time.
pub fn request_stop() {
    STOPPING.store(true, Ordering::SeqCst);
    STOP.notify_waiters();
}

/// Starts, once per process, the task that notes the stop signal for [`stopping`].
pub(crate) fn watch_for_stop() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tokio::spawn(async {
            #[cfg(unix)]
            let terminate = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let terminate = std::future::pending::<()>();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate => {}
            }
            request_stop();
        });
    });
}

/// What a supervisor tells the owner of its controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Supervised {
    /// The controller (re)started; `restarts` counts the restarts so far.
    Started {
        /// Restarts since the supervisor started.
        restarts: u32,
    },
    /// The controller ended although it should run, and will be restarted.
    Stopped {
        /// Restarts so far, this one included.
        restarts: u32,
        /// Whether it panicked (otherwise it returned).
        panicked: bool,
    },
}

/// Runs the controller `start` makes, and again whenever it ends (panics or returns)
/// before the process is asked to stop: after 1 s, doubling up to 60 s, and after 1 s
/// again once it had run for a minute. Logs every stop as an error with the restart
/// count and awaits `report` at every start and stop. Returns only when the process
/// stops; dropping the future stops the controller.
pub async fn supervise<S, Fut, R, RFut>(name: &str, mut start: S, mut report: R)
where
    S: FnMut() -> Fut,
    Fut: Future<Output = ()>,
    R: FnMut(Supervised) -> RFut,
    RFut: Future<Output = ()>,
{
    let mut restarts = 0u32;
    let mut delay = MIN_DELAY;
    loop {
        report(Supervised::Started { restarts }).await;
        let started = Instant::now();
        let ended = std::panic::AssertUnwindSafe(start()).catch_unwind().await;
        if stopping() {
            info!(controller = name, "controller stopped");
            return;
        }
        if started.elapsed() >= HEALTHY_AFTER {
            delay = MIN_DELAY;
        }
        restarts = restarts.saturating_add(1);
        let panicked = ended.is_err();
        error!(
            controller = name,
            restarts,
            panicked,
            restart_in = ?delay,
            "controller stopped unexpectedly; restarting it"
        );
        report(Supervised::Stopped { restarts, panicked }).await;
        // A stop during the delay ends the wait: the process drains without it.
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopped() => {}
        }
        if stopping() {
            return;
        }
        delay = (delay * 2).min(MAX_DELAY);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_controller_that_panics_or_returns_is_restarted_and_each_stop_is_reported() {
        let runs = Arc::new(Mutex::new(0u32));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let supervisor = supervise(
            "test",
            {
                let runs = runs.clone();
                move || {
                    let runs = runs.clone();
                    async move {
                        let n = {
                            let mut r = runs.lock().unwrap();
                            *r += 1;
                            *r
                        };
                        match n {
                            1 => panic!("first run dies"),
                            2 => {}
                            _ => std::future::pending().await,
                        }
                    }
                }
            },
            {
                let reports = reports.clone();
                move |s| {
                    reports.lock().unwrap().push(s);
                    async {}
                }
            },
        );
        let _ = tokio::time::timeout(Duration::from_secs(600), supervisor).await;
        assert_eq!(*runs.lock().unwrap(), 3);
        assert_eq!(
            *reports.lock().unwrap(),
            [
                Supervised::Started { restarts: 0 },
                Supervised::Stopped {
                    restarts: 1,
                    panicked: true
                },
                Supervised::Started { restarts: 1 },
                Supervised::Stopped {
                    restarts: 2,
                    panicked: false
                },
                Supervised::Started { restarts: 2 },
            ]
        );
    }
}
