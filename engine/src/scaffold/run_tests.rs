//! [`run`]'s choice of the next object when more objects fall due than reconciles may run
//! at once, against a controller fed from a store filled by hand (no API server).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::controller::Action;
use kube::runtime::{Controller, reflector, watcher};

use super::*;

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl ErrorReason for Never {
    fn reason(&self) -> &'static str {
        "Never"
    }
}

struct Ctx {
    backoff: Backoff,
    client: kube::Client,
    recorder: Recorder,
    /// Reconciles per object name.
    seen: Mutex<HashMap<String, u32>>,
    done: tokio::sync::Notify,
}

impl Context for Ctx {
    fn backoff(&self) -> &Backoff {
        &self.backoff
    }
    fn client(&self) -> &kube::Client {
        &self.client
    }
    fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

/// A client that answers every request with a 500: the reconciles here make none.
fn offline_client() -> kube::Client {
    let service = tower::service_fn(|_req: http::Request<kube::client::Body>| async {
        let response = http::Response::builder()
            .status(500)
            .body(kube::client::Body::from(Vec::new()))
            .expect("response");
        Ok::<_, std::convert::Infallible>(response)
    });
    kube::Client::new(service, "default")
}

fn context() -> Arc<Ctx> {
    let client = offline_client();
    Arc::new(Ctx {
        backoff: Backoff::default(),
        recorder: recorder(client.clone(), "test"),
        client,
        seen: Mutex::new(HashMap::new()),
        done: tokio::sync::Notify::new(),
    })
}

fn config_map(i: usize) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(format!("cm-{i}"));
    cm.metadata.namespace = Some("default".into());
    cm.metadata.uid = Some(format!("uid-{i}"));
    cm.metadata.resource_version = Some("1".into());
    cm
}

#[tokio::test(start_paused = true)]
async fn a_saturated_controller_still_reconciles_every_object() {
    // 40 objects, 2 reconciles at once of 20 ms each, every object polled again 50 ms
    // after its reconcile: objects fall due several times faster than reconciles finish,
    // as on a loaded controller with a short poll interval. Every object must still get
    // its turn: within ten reconciles per object on average, each was reconciled.
    const OBJECTS: usize = 40;
    const CONCURRENCY: u16 = 2;
    let (reader, mut writer) = reflector::store::<ConfigMap>();
    writer.apply_watcher_event(&watcher::Event::Init);
    for i in 0..OBJECTS {
        writer.apply_watcher_event(&watcher::Event::InitApply(config_map(i)));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    let triggers = futures::stream::iter((0..OBJECTS).map(|i| Ok(config_map(i))))
        .chain(futures::stream::pending());
    let controller = Controller::for_stream_with(triggers, reader, ());

    let ctx = context();
    let reconcile = |obj: Arc<ConfigMap>, ctx: Arc<Ctx>| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (objects, total) = {
            let mut seen = ctx.seen.lock().unwrap_or_else(|e| e.into_inner());
            *seen.entry(obj.name_any()).or_default() += 1;
            (seen.len(), seen.values().sum::<u32>() as usize)
        };
        if objects == OBJECTS || total >= 10 * OBJECTS {
            ctx.done.notify_one();
        }
        Ok::<_, Never>(Action::requeue(Duration::from_millis(50)))
    };
    tokio::select! {
        () = run(controller, (), CONCURRENCY, reconcile, ctx.clone()) => panic!("the controller ended"),
        () = ctx.done.notified() => {}
    }
    let seen = ctx.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut never: Vec<String> = (0..OBJECTS)
        .map(|i| format!("cm-{i}"))
        .filter(|n| !seen.contains_key(n))
        .collect();
    never.sort();
    let most = seen.values().max().copied().unwrap_or_default();
    assert!(
        never.is_empty(),
        "{} of {OBJECTS} objects were never reconciled ({never:?}) while others were \
         reconciled up to {most} times",
        never.len()
    );
}

#[tokio::test]
async fn an_object_waiting_for_its_turn_holds_a_pointer_not_the_reconcile() {
    // kube spawns a task for every object that falls due; on a busy controller thousands
    // wait for a permit at once. Each task must be small whatever the reconcile's state
    // (here 16 KiB held across an await): the reconcile is boxed once its turn comes.
    let (reader, _writer) = reflector::store::<ConfigMap>();
    let turns = Arc::new(Turns {
        name: "test".into(),
        permits: Some(Arc::new(Semaphore::new(1))),
        latest: reader,
        dyntype: (),
        reconcile: |obj: Arc<ConfigMap>, _ctx: Arc<Ctx>| async move {
            let state = [1u8; 16 * 1024];
            tokio::task::yield_now().await;
            let _ = std::hint::black_box((&state, obj));
            Ok::<_, Never>(Action::await_change())
        },
    });
    let ctx = context();
    let waiting = wait_turn(turns, Arc::new(config_map(0)), ctx);
    let size = std::mem::size_of_val(&waiting);
    assert!(
        size <= 1024,
        "a task waiting for its turn takes {size} bytes: the reconcile's state is inline"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reconcile_that_never_ends_is_stopped_at_its_timeout_and_retried() {
    // The first reconcile waits forever (as on a request nothing answers): it must be
    // stopped at the timeout, its permit given back (one reconcile at a time here), and
    // the object reconciled again.
    let (reader, mut writer) = reflector::store::<ConfigMap>();
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitApply(config_map(0)));
    writer.apply_watcher_event(&watcher::Event::InitDone);
    let triggers = futures::stream::iter([Ok(config_map(0))]).chain(futures::stream::pending());
    let controller = Controller::for_stream_with(triggers, reader, ());
    let ctx = context();
    let reconcile = |obj: Arc<ConfigMap>, ctx: Arc<Ctx>| async move {
        let attempt = {
            let mut seen = ctx.seen.lock().unwrap_or_else(|e| e.into_inner());
            let n = seen.entry(obj.name_any()).or_default();
            *n += 1;
            *n
        };
        if attempt == 1 {
            std::future::pending::<()>().await;
        }
        ctx.done.notify_one();
        Ok::<_, Never>(Action::await_change())
    };
    let started = tokio::time::Instant::now();
    tokio::select! {
        () = run(controller, (), 1, reconcile, ctx.clone()) => panic!("the controller ended"),
        () = ctx.done.notified() => {}
        () = tokio::time::sleep(Duration::from_secs(3600)) => {
            panic!("a reconcile that never ended was not stopped and retried within an hour")
        }
    }
    let waited = started.elapsed();
    assert!(
        waited >= RECONCILE_TIMEOUT,
        "the reconcile was retried after {waited:?}, before its timeout"
    );
    let attempts = ctx.seen.lock().unwrap_or_else(|e| e.into_inner())["cm-0"];
    assert_eq!(attempts, 2, "one stopped reconcile, then one that ended");
}
