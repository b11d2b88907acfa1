//! [`PostgresConnector`]: the kit's [`CachedConnector`] with [`Postgres`], which makes one
//! [`Session`] per ProviderConfig from its spec and credentials.
//!
//! ```text
//!  mr.spec.providerConfigRef ─▶ ProviderConfig + credentials Secret (watched stores)
//!        ─▶ cache[(name)] ─▶ PostgresClient on a Session
//!                │ fingerprint differs or connection closed
//!                └──────────▶ Postgres::connect again
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use kube::Resource;
use tessera_engine::api::common::ProviderCredentials;
use tessera_engine::managed::ProviderError;
use tessera_engine::managed::connections::{CachedConnector, Connect, ProviderConfigKind};
use tessera_engine::managed::credentials::Credentials;

use crate::api::ProviderConfig;
use crate::session::Session;

/// The namespace of generated password Secrets of Roles without a connection secret.
pub const DEFAULT_PASSWORD_NAMESPACE: &str = "tessera-system";

/// Connects Roles, Databases and Grants to PostgreSQL, one cached [`Session`] per
/// ProviderConfig. Cheap to clone; clones share the cache.
pub type PostgresConnector = CachedConnector<Postgres>;

/// How the PostgreSQL provider connects: a [`Session`] as the ProviderConfig's
/// administrative user.
pub struct Postgres {
    password_namespace: String,
}

impl Postgres {
    /// A connector that keeps generated passwords of Roles without a connection secret in
    /// [`DEFAULT_PASSWORD_NAMESPACE`].
    pub fn connector() -> PostgresConnector {
        Self::connector_with_password_namespace(DEFAULT_PASSWORD_NAMESPACE)
    }

    /// A connector that keeps generated passwords of Roles without a connection secret in
    /// `namespace` (typically the controller's own namespace).
    pub fn connector_with_password_namespace(namespace: impl Into<String>) -> PostgresConnector {
        CachedConnector::new(Postgres {
            password_namespace: namespace.into(),
        })
    }
}

impl ProviderConfigKind for ProviderConfig {
    fn credentials(&self) -> &ProviderCredentials {
        &self.spec.credentials
    }
}

#[async_trait]
impl Connect for Postgres {
    type Config = ProviderConfig;
    type Client = PostgresClient;
    const SYSTEM: &'static str = "PostgreSQL";

    async fn connect(
        &self,
        kube: &kube::Client,
        name: &str,
        config: &ProviderConfig,
        credentials: &Credentials,
    ) -> Result<PostgresClient, ProviderError> {
        let session = Session::connect(name, &config.spec, credentials).await?;
        Ok(PostgresClient::new(
            Arc::new(session),
            kube.clone(),
            self.password_namespace.clone(),
        ))
    }

    fn is_usable(client: &PostgresClient) -> bool {
        !client.session.is_closed()
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
    /// The session this client runs its statements on.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

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

/// Whether `obj` is being deleted. Observe then only answers whether the external resource
/// exists: a spec that became invalid, or a password Secret deleted along with the object,
/// must not block deletion.
pub(crate) fn deleting<K: Resource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}
