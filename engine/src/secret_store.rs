//! The Secrets Tessera writes, held in memory from a watch, so that a reconcile reads its
//! connection Secrets without asking the API server each time.
//!
//! ```text
//!  watch Secrets labelled app.kubernetes.io/managed-by=tessera ─▶ store
//!     (one watch cluster-wide, or one per namespace of --secret-namespaces)
//!  lookup(namespace, name) ─▶ in the store? ── yes ─▶ the stored copy (cached = true)
//!                                       └──── no ──▶ GET from the API server (cached = false)
//!  stored(namespace, name) ─▶ Found / Absent (the store is listed and lacks it) / Unknown
//! ```
//!
//! Only Secrets carrying [`MANAGED_BY_LABEL`](crate::connection_secret::MANAGED_BY_LABEL)
//! are watched: the controller never holds the other Secrets of the cluster. A Secret that
//! is not in the store (not written yet, written a moment ago and not seen by the watch
//! yet, or someone else's, without the label) is read from the API server, as is every
//! Secret while the store has not got its first list, while its watch is failing, and
//! when the controller may not list and watch Secrets at all (then one warning is logged,
//! when the watch is first refused, and every read is a GET).
//!
//! The store may lag behind the API server by the watch's delay. Its readers are written
//! so that this costs at most one more request, never a lost or a foreign write (see
//! [`crate::connection_secret::publish_owned`]): a write decided from a stored copy names
//! that copy's `resourceVersion`, so the API server refuses it when the Secret changed in
//! between (someone else's Secret created under the same name included), and the writer
//! then decides again from a GET. A stored copy that says "nothing to write" while the
//! Secret was changed meanwhile delays the repair until the reconcile after the watch
//! delivered the change, as a change between two reconciles always did.
//!
//! Memory: each stored Secret costs about its size in etcd without `managedFields` (which
//! are dropped): its data, labels, owner reference and other metadata, typically 1 to
//! 2 KiB for a connection Secret, plus a few hundred bytes of index; one per connection
//! Secret Tessera wrote (managed resources', composites', claims', generated passwords).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::connection_secret::MANAGED_BY_LABEL;

/// Which namespaces the store watches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// One watch over every namespace (the controller may list and watch Secrets
    /// cluster-wide).
    #[default]
    Cluster,
    /// One watch per namespace listed (the controller may read Secrets only there);
    /// Secrets elsewhere are read with GETs.
    Namespaces(Vec<String>),
    /// No watch: every read is a GET.
    Off,
}

/// A Secret as read by [`lookup`].
#[derive(Debug)]
pub struct Lookup {
    /// The Secret, `None` when it does not exist.
    pub secret: Option<Arc<Secret>>,
    /// Whether it came from the store (and may lag behind the API server) rather than
    /// from a GET.
    pub cached: bool,
}

/// Sets where the store watches; call it once at start, before the controllers run.
/// Without a call the store watches cluster-wide.
pub fn set_scope(scope: Scope) {
    let mut registry = registry();
    registry.scope = scope;
    registry.watches.clear();
}

/// What the store knows of a Secret, see [`stored`].
#[derive(Debug)]
pub enum Stored {
    /// The store holds this copy.
    Found(Arc<Secret>),
    /// The store has its list and holds no Secret of Tessera's by this name: none exists,
    /// unless it was written a moment ago and the watch has not delivered it yet, or it is
    /// someone else's (without Tessera's label).
    Absent,
    /// The store cannot tell (not listed yet, failing, refused, or not covering the
    /// namespace).
    Unknown,
}

/// The Secret `namespace/name`: the store's copy when the store holds it, else read from
/// the API server.
pub async fn lookup(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Lookup, kube::Error> {
    lookup_expected(client, namespace, name, true).await
}

/// [`lookup`] for a reader to whom a Secret that does not exist yet changes nothing until
/// it is `expected` to: one the listed store lacks is then taken as absent without a GET
/// (`cached`), though it may have been written a moment ago and not be in the store yet,
/// or be someone else's. Such a reader must read again, with `expected`, when the Secret
/// comes to matter.
pub async fn lookup_expected(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    expected: bool,
) -> Result<Lookup, kube::Error> {
    match stored(client, namespace, name) {
        Stored::Found(secret) => Ok(Lookup {
            secret: Some(secret),
            cached: true,
        }),
        Stored::Absent if !expected => Ok(Lookup {
            secret: None,
            cached: true,
        }),
        _ => get(client, namespace, name).await,
    }
}

/// The Secret `namespace/name` read from the API server.
pub async fn get(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Lookup, kube::Error> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?;
    Ok(Lookup {
        secret: secret.map(Arc::new),
        cached: false,
    })
}

/// What the store covering `namespace` knows of the Secret `namespace/name`, without a
/// request; starts that store's watch (with `client`) on first use.
pub fn stored(client: &kube::Client, namespace: &str, name: &str) -> Stored {
    let watch = {
        let mut registry = registry();
        let key = match &registry.scope {
            Scope::Off => return Stored::Unknown,
            Scope::Cluster => None,
            Scope::Namespaces(listed) if listed.iter().any(|n| n == namespace) => {
                Some(namespace.to_string())
            }
            Scope::Namespaces(_) => return Stored::Unknown,
        };
        let current = registry.watches.get(&key).cloned();
        match current {
            Some(w) if w.state.refused.load(Ordering::Relaxed) => return Stored::Unknown,
            Some(w) if w.state.running.load(Ordering::Relaxed) => w,
            // Not started yet, or its task ended (its runtime was shut down).
            _ => {
                let w = Arc::new(start(client.clone(), key.clone()));
                registry.watches.insert(key, w.clone());
                w
            }
        }
    };
    if !watch.state.listed.load(Ordering::Acquire) {
        return Stored::Unknown;
    }
    match watch
        .store
        .get(&ObjectRef::new(name).within(namespace))
        .filter(|s| has_label(s))
    {
        Some(secret) => Stored::Found(secret),
        None => Stored::Absent,
    }
}

fn has_label(secret: &Secret) -> bool {
    secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL.0))
        .is_some_and(|v| v == MANAGED_BY_LABEL.1)
}

#[derive(Default)]
struct Registry {
    scope: Scope,
    watches: HashMap<Option<String>, Arc<Watch>>,
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Watch {
    store: Store<Secret>,
    state: Arc<WatchState>,
    task: tokio::task::AbortHandle,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct WatchState {
    /// The watch has a complete list and is not failing.
    listed: AtomicBool,
    /// The watch's task is running.
    running: AtomicBool,
    /// The API server refused to list or watch Secrets here: reads are GETs.
    refused: AtomicBool,
}

/// Marks the watch stopped when its task ends, also when its runtime drops it.
struct Running(Arc<WatchState>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.listed.store(false, Ordering::Release);
        self.0.running.store(false, Ordering::Relaxed);
    }
}

/// Whether the warning about a refused watch was logged (once per process).
static WARNED: AtomicBool = AtomicBool::new(false);

fn start(client: kube::Client, namespace: Option<String>) -> Watch {
    let api: Api<Secret> = match &namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let selector = format!("{}={}", MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1);
    let config = watcher::Config::default().labels(&selector).any_semantic();
    let (store, writer) = reflector::store();
    let state = Arc::new(WatchState {
        running: AtomicBool::new(true),
        ..WatchState::default()
    });
    let running = Running(state.clone());
    let where_ = namespace.unwrap_or_else(|| "every namespace".into());
    let events = watcher(api, config)
        .default_backoff()
        .modify(|s: &mut Secret| s.metadata.managed_fields = None)
        .reflect(writer);
    let task = tokio::spawn(async move {
        let state = running.0.clone();
        let _running = running;
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitDone) => state.listed.store(true, Ordering::Release),
                Ok(_) => {}
                Err(e) if forbidden(&e) => {
                    state.refused.store(true, Ordering::Relaxed);
                    if !WARNED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(namespace = %where_, error = %e, "may not list and watch Secrets: reading connection Secrets from the API server on every reconcile");
                    }
                    return;
                }
                Err(e) => {
                    // Until the watch lists again, reads go to the API server.
                    state.listed.store(false, Ordering::Release);
                    tracing::warn!(namespace = %where_, error = %e, "the watch of Tessera's Secrets failed; retrying");
                }
            }
        }
    });
    Watch {
        store,
        state,
        task: task.abort_handle(),
    }
}

fn forbidden(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 403,
        watcher::Error::WatchError(s) => s.code == 403,
        _ => false,
    }
}
