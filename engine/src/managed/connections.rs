//! A provider's connections to its external system, one per ProviderConfig, made from
//! watched stores of the ProviderConfigs and of the Secrets they reference.
//!
//! ```text
//!  watch ProviderConfigs ─▶ store ─┐
//!  watch each referenced Secret ─▶ store ─┼─▶ fingerprint ─▶ cache[ProviderConfig] ─▶ C::Client
//!                                  │          differs, or the client is no longer usable
//!                                  └────────────────────────▶ Connect::connect again
//! ```
//!
//! A reconcile reads both from memory: no GET of the ProviderConfig and its Secret per
//! reconcile. A changed ProviderConfig spec or a rotated Secret changes the fingerprint, so
//! the next reconcile of each managed resource connects with the new values, without a
//! restart. Secrets are watched one by one (by name), so the controller holds only the
//! Secrets its ProviderConfigs reference, not every Secret of the cluster.
//!
//! Credentials sources without a Secret (`Default`, `KubernetesAuth`) watch no Secret and
//! hand [`Credentials::none`] to [`Connect::connect`]; the provider finds its credentials
//! itself, and only the sources it lists in [`Connect::SOURCES`] are accepted.
//!
//! A provider implements [`Connect`] once; [`CachedConnector`] is then the
//! [`Connector`] of all its managed kinds.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::OnceCell;
use tracing::warn;

use crate::api::common::{CredentialsSource, ProviderCredentials, SecretReference};
use crate::managed::credentials::{self, Credentials};
use crate::managed::{Connector, ExternalClient, Managed, ProviderError};

/// A provider's ProviderConfig kind: cluster-scoped, with `spec.credentials`.
pub trait ProviderConfigKind:
    Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// Where the credentials are.
    fn credentials(&self) -> &ProviderCredentials;
}

/// How a provider connects to its external system with one ProviderConfig.
#[async_trait]
pub trait Connect: Send + Sync + 'static {
    /// The provider's ProviderConfig kind.
    type Config: ProviderConfigKind;
    /// A connection, handed to every reconcile of the ProviderConfig's managed resources:
    /// cheap to clone (an `Arc` inside), and the [`ExternalClient`] of the provider's kinds.
    type Client: Clone + Send + Sync + 'static;
    /// The external system, as messages name it ("PostgreSQL").
    const SYSTEM: &'static str;
    /// The credentials sources the provider supports; a ProviderConfig with another one
    /// gets a [`ProviderError::Config`] naming it before `connect` is called.
    const SOURCES: &'static [CredentialsSource] = &[CredentialsSource::Secret];

    /// Connects as the ProviderConfig named `name` says. `credentials` holds the values of
    /// the credentials Secret, and is empty ([`Credentials::none`]) for sources without one.
    /// Errors about the ProviderConfig or its credentials are [`ProviderError::Config`] and
    /// name the ProviderConfig.
    async fn connect(
        &self,
        kube: &kube::Client,
        name: &str,
        config: &Self::Config,
        credentials: &Credentials,
    ) -> Result<Self::Client, ProviderError>;

    /// Whether a cached client can still be used (for example, its connection is open).
    fn is_usable(_client: &Self::Client) -> bool {
        true
    }
}

/// The [`Connector`] of every managed kind `M` whose client `C::Client` implements
/// `ExternalClient<M>`: one cached client per ProviderConfig, reconnected when the
/// ProviderConfig or its Secret changes. Cheap to clone; clones share the cache.
pub struct CachedConnector<C: Connect> {
    inner: Arc<Inner<C>>,
}

impl<C: Connect> Clone for CachedConnector<C> {
    fn clone(&self) -> Self {
        CachedConnector {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<C: Connect> {
    connect: C,
    // Started by the first connect, with that call's Kubernetes client.
    configs: OnceCell<Watched<C::Config>>,
    secrets: Mutex<HashMap<(String, String), SecretWatch>>,
    // One slot per ProviderConfig name. The outer lock is held only to find the slot; the
    // slot's async lock is held while connecting, so concurrent reconciles of one
    // ProviderConfig share one connection attempt and others are not blocked by it.
    clients: Mutex<HashMap<String, Slot<C::Client>>>,
}

/// The watch of one Secret (`namespace`, `name`), started by the first reconcile that needs it.
type SecretWatch = Arc<OnceCell<Watched<Secret>>>;
/// The cached client of one ProviderConfig, if any.
type Slot<T> = Arc<tokio::sync::Mutex<Option<Cached<T>>>>;

struct Cached<T> {
    fingerprint: u64,
    client: T,
}

/// A reflector store and the task that feeds it; dropping it stops the watch.
struct Watched<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    task: tokio::task::AbortHandle,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Drop for Watched<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn watch<K>(api: Api<K>, config: watcher::Config, what: String) -> Watched<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let task = tokio::spawn(
        watcher(api, config)
            .default_backoff()
            .reflect(writer)
            .for_each(move |event| {
                if let Err(e) = event {
                    warn!(watch = %what, error = %e, "watch failed; retrying");
                }
                futures::future::ready(())
            }),
    );
    Watched {
        store,
        task: task.abort_handle(),
    }
}

async fn ready<K: Resource<DynamicType = ()> + Clone + 'static>(
    store: &Store<K>,
    what: &str,
) -> Result<(), ProviderError> {
    crate::scaffold::store_ready(store)
        .await
        .map_err(|_| ProviderError::Transient(format!("the watch of {what} stopped")))
}

impl<C: Connect> CachedConnector<C> {
    /// A connector that connects with `connect`.
    pub fn new(connect: C) -> Self {
        CachedConnector {
            inner: Arc::new(Inner {
                connect,
                configs: OnceCell::new(),
                secrets: Mutex::new(HashMap::new()),
                clients: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The provider's [`Connect`].
    pub fn connect_with(&self) -> &C {
        &self.inner.connect
    }

    /// The client for the ProviderConfig named `name`: the cached one while the
    /// ProviderConfig and its credentials are unchanged and the client is usable, a new
    /// one otherwise.
    pub async fn client(
        &self,
        kube: &kube::Client,
        name: &str,
    ) -> Result<C::Client, ProviderError> {
        let (config, credentials) = self.lookup(kube, name).await?;
        let fingerprint = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            // The generation changes with every spec change of a custom resource.
            config.meta().uid.hash(&mut h);
            config.meta().generation.hash(&mut h);
            credentials.fingerprint().hash(&mut h);
            h.finish()
        };
        let slot = {
            let mut clients = self
                .inner
                .clients
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            clients.entry(name.to_string()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(cached) = slot.as_ref()
            && cached.fingerprint == fingerprint
            && C::is_usable(&cached.client)
        {
            return Ok(cached.client.clone());
        }
        // Drop the old client first: its connection is of no use any more.
        *slot = None;
        let client = self
            .inner
            .connect
            .connect(kube, name, &config, &credentials)
            .await?;
        *slot = Some(Cached {
            fingerprint,
            client: client.clone(),
        });
        Ok(client)
    }

    /// The ProviderConfig named `name` and its credentials, from the watched stores.
    async fn lookup(
        &self,
        kube: &kube::Client,
        name: &str,
    ) -> Result<(Arc<C::Config>, Credentials), ProviderError> {
        let kind = C::Config::kind(&());
        let configs = self
            .inner
            .configs
            .get_or_init(|| async {
                let api: Api<C::Config> = Api::all(kube.clone());
                watch(
                    api,
                    watcher::Config::default().any_semantic(),
                    format!("{kind}s"),
                )
            })
            .await;
        ready(&configs.store, &format!("{kind}s")).await?;
        self.forget_unreferenced(&configs.store);
        let config = configs.store.get(&ObjectRef::new(name)).ok_or_else(|| {
            ProviderError::Config(format!(
                "ProviderConfig {name:?} not found; create it or set spec.providerConfigRef"
            ))
        })?;
        let Some(r) = credentials_secret::<C>(name, config.credentials())? else {
            return Ok((config, Credentials::none(name)));
        };
        let cell = {
            let mut secrets = self
                .inner
                .secrets
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            secrets
                .entry((r.namespace.clone(), r.name.clone()))
                .or_default()
                .clone()
        };
        let secret_name = format!("{}/{}", r.namespace, r.name);
        let secrets = cell
            .get_or_init(|| async {
                let api: Api<Secret> = Api::namespaced(kube.clone(), &r.namespace);
                let by_name = watcher::Config::default()
                    .any_semantic()
                    .fields(&format!("metadata.name={}", r.name));
                watch(api, by_name, format!("Secret {secret_name}"))
            })
            .await;
        ready(&secrets.store, &format!("Secret {secret_name}")).await?;
        let secret = secrets
            .store
            .get(&ObjectRef::new(&r.name).within(&r.namespace))
            .ok_or_else(|| {
                ProviderError::Config(format!(
                    "ProviderConfig {name:?}: credentials Secret {secret_name} not found"
                ))
            })?;
        Ok((config, credentials::from_secret(name, &secret)))
    }

    /// Stops watching Secrets that no ProviderConfig references any more and drops the
    /// clients of ProviderConfigs that are gone.
    fn forget_unreferenced(&self, configs: &Store<C::Config>) {
        let state = configs.state();
        let referenced: Vec<(String, String)> = state
            .iter()
            .filter_map(|pc| {
                let r = pc.credentials().secret()?;
                Some((r.namespace.clone(), r.name.clone()))
            })
            .collect();
        self.inner
            .secrets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|key, _| referenced.contains(key));
        let names: Vec<String> = state.iter().map(|pc| pc.name_any()).collect();
        self.inner
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|name, _| names.contains(name));
    }
}

/// The Secret to read for `credentials` of the ProviderConfig `name`: `None` for a source
/// without one; an error for a source the provider does not support or a `Secret` source
/// without `secretRef`.
fn credentials_secret<C: Connect>(
    name: &str,
    credentials: &ProviderCredentials,
) -> Result<Option<SecretReference>, ProviderError> {
    if !C::SOURCES.contains(&credentials.source) {
        let supported: Vec<String> = C::SOURCES.iter().map(|s| s.to_string()).collect();
        return Err(ProviderError::Config(format!(
            "ProviderConfig {name:?}: credentials source {} is not supported by the {} \
             provider; use {}",
            credentials.source,
            C::SYSTEM,
            supported.join(" or ")
        )));
    }
    match (credentials.source, credentials.secret()) {
        (CredentialsSource::Secret, None) => Err(ProviderError::Config(format!(
            "ProviderConfig {name:?}: credentials.secretRef is required with credentials \
             source Secret; name the Secret with the credentials (namespace and name)"
        ))),
        (_, secret) => Ok(secret.cloned()),
    }
}

#[async_trait]
impl<M, C> Connector<M> for CachedConnector<C>
where
    M: Managed,
    C: Connect,
    C::Client: ExternalClient<M>,
{
    async fn connect(
        &self,
        client: &kube::Client,
        mr: &M,
    ) -> Result<Arc<dyn ExternalClient<M>>, ProviderError> {
        let name = mr.resource_spec().provider_config_name();
        Ok(Arc::new(self.client(client, name).await?))
    }

    fn external_system(&self) -> &str {
        C::SYSTEM
    }
}

#[cfg(test)]
mod ready_tests {
    use k8s_openapi::api::core::v1::Secret;
    use kube::runtime::{reflector, watcher};

    use super::ready;

    #[tokio::test]
    async fn every_reconcile_waiting_for_the_first_list_goes_on_once_it_is_there() {
        let (store, mut writer) = reflector::store::<Secret>();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { ready(&store, "Secrets").await })
            })
            .collect();
        // Every waiter has polled the store once before the list arrives.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        for w in waiters {
            let done = tokio::time::timeout(std::time::Duration::from_secs(10), w).await;
            assert!(
                matches!(done, Ok(Ok(Ok(())))),
                "a waiter was not woken: {done:?}"
            );
        }
    }
}
