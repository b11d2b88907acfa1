//! [`PostgresConnector`]: resolves a managed resource's ProviderConfig and credentials and
//! hands out a [`PostgresClient`] on a cached [`Session`].
//!
//! ```text
//!  mr.spec.providerConfigRef ─▶ ProviderConfig ─▶ credentials Secret ─▶ cache[(name)] ─▶ Session
//!                                                      │ fingerprint differs or connection closed
//!                                                      └──────────────▶ reconnect
//! ```

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kube::{Api, Resource};
use tessera_engine::api::common::annotations::EXTERNAL_NAME;
use tessera_engine::managed::{Connector, ExternalClient, Managed, ProviderError, credentials};

use crate::api::{Database, Grant, ProviderConfig, Role};
use crate::session::Session;

/// The namespace of generated password Secrets of Roles without a connection secret.
pub const DEFAULT_PASSWORD_NAMESPACE: &str = "tessera-system";

/// Connects managed resources of this provider to PostgreSQL. Cheap to clone; clones
/// share the cache of sessions, one per ProviderConfig.
#[derive(Clone)]
pub struct PostgresConnector {
    inner: Arc<Inner>,
}

struct Inner {
    password_namespace: String,
    // One slot per ProviderConfig name. The outer lock is held only to find the slot; the
    // slot's async lock is held while connecting, so concurrent reconciles of one
    // ProviderConfig share one connection attempt and others are not blocked by it.
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<CachedSession>>>>>,
}

struct CachedSession {
    key: u64,
    session: Arc<Session>,
}

impl Default for PostgresConnector {
    fn default() -> Self {
        Self::new()
    }
}

impl PostgresConnector {
    /// A connector that keeps generated passwords of Roles without a connection secret in
    /// [`DEFAULT_PASSWORD_NAMESPACE`].
    pub fn new() -> Self {
        Self::with_password_namespace(DEFAULT_PASSWORD_NAMESPACE)
    }

    /// A connector that keeps generated passwords of Roles without a connection secret in
    /// `namespace` (typically the controller's own namespace).
    pub fn with_password_namespace(namespace: impl Into<String>) -> Self {
        PostgresConnector {
            inner: Arc::new(Inner {
                password_namespace: namespace.into(),
                sessions: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The session for the ProviderConfig named `name`: the cached one while its
    /// ProviderConfig and credentials are unchanged and its connection is open, a new one
    /// otherwise.
    pub async fn session(
        &self,
        client: &kube::Client,
        name: &str,
    ) -> Result<Arc<Session>, ProviderError> {
        let configs: Api<ProviderConfig> = Api::all(client.clone());
        let pc = match configs.get_opt(name).await {
            Ok(Some(pc)) => pc,
            Ok(None) => {
                return Err(ProviderError::Config(format!(
                    "ProviderConfig {name:?} not found; create it or set spec.providerConfigRef"
                )));
            }
            Err(e) => {
                return Err(ProviderError::Transient(format!(
                    "cannot read ProviderConfig {name:?}: {e}"
                )));
            }
        };
        let creds = credentials::read(client, name, &pc.spec.credentials).await?;
        let key = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            creds.fingerprint().hash(&mut h);
            pc.spec.ssl_mode.hash(&mut h);
            pc.spec.default_database.hash(&mut h);
            h.finish()
        };

        let slot = {
            let mut sessions = self
                .inner
                .sessions
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            sessions.entry(name.to_string()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(cached) = slot.as_ref()
            && cached.key == key
            && !cached.session.is_closed()
        {
            return Ok(cached.session.clone());
        }
        let session = Arc::new(Session::connect(name, &pc.spec, &creds).await?);
        *slot = Some(CachedSession {
            key,
            session: session.clone(),
        });
        Ok(session)
    }

    async fn client_for<M: Managed>(
        &self,
        client: &kube::Client,
        mr: &M,
    ) -> Result<PostgresClient, ProviderError> {
        let session = self
            .session(client, mr.resource_spec().provider_config_name())
            .await?;
        Ok(PostgresClient::new(
            session,
            client.clone(),
            self.inner.password_namespace.clone(),
        ))
    }
}

#[async_trait]
impl Connector<Role> for PostgresConnector {
    async fn connect(
        &self,
        client: &kube::Client,
        mr: &Role,
    ) -> Result<Arc<dyn ExternalClient<Role>>, ProviderError> {
        Ok(Arc::new(self.client_for(client, mr).await?))
    }
}

#[async_trait]
impl Connector<Database> for PostgresConnector {
    async fn connect(
        &self,
        client: &kube::Client,
        mr: &Database,
    ) -> Result<Arc<dyn ExternalClient<Database>>, ProviderError> {
        Ok(Arc::new(self.client_for(client, mr).await?))
    }
}

#[async_trait]
impl Connector<Grant> for PostgresConnector {
    async fn connect(
        &self,
        client: &kube::Client,
        mr: &Grant,
    ) -> Result<Arc<dyn ExternalClient<Grant>>, ProviderError> {
        Ok(Arc::new(self.client_for(client, mr).await?))
    }
}

/// The [`ExternalClient`] of Roles, Databases and Grants: SQL on a [`Session`], plus the
/// Kubernetes client for the Secrets that hold Role passwords.
#[derive(Clone)]
pub struct PostgresClient {
    pub(crate) session: Arc<Session>,
    pub(crate) kube: kube::Client,
    pub(crate) password_namespace: String,
}

impl PostgresClient {
    /// A client on `session`; generated passwords of Roles without a connection secret go
    /// to `password_namespace`.
    pub fn new(
        session: Arc<Session>,
        kube: kube::Client,
        password_namespace: impl Into<String>,
    ) -> Self {
        PostgresClient {
            session,
            kube,
            password_namespace: password_namespace.into(),
        }
    }
}

impl PostgresClient {
    /// Fails with a transient error naming the first of `roles` that does not exist: a
    /// role that a spec refers to may be created by another managed resource shortly.
    pub(crate) async fn require_roles(
        &self,
        action: &str,
        roles: &[&str],
    ) -> Result<(), ProviderError> {
        let roles: Vec<&str> = roles.to_vec();
        let rows = self
            .session
            .query(
                action,
                "SELECT r FROM unnest($1::text[]) AS r \
                 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r)",
                &[&roles],
            )
            .await?;
        match rows.first() {
            None => Ok(()),
            Some(row) => Err(ProviderError::Transient(format!(
                "cannot {action}: role {:?} does not exist (yet)",
                row.get::<_, String>(0)
            ))),
        }
    }
}

/// The external name of `obj`: its `tessera.dev/external-name` annotation, or its name.
pub(crate) fn external_name<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(EXTERNAL_NAME))
        .cloned()
        .or_else(|| meta.name.clone())
        .unwrap_or_default()
}

/// Whether `obj` is being deleted. Observe then only answers whether the external resource
/// exists: a spec that became invalid, or a password Secret deleted along with the object,
/// must not block deletion.
pub(crate) fn deleting<K: Resource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}
