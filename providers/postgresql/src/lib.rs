//! Tessera's PostgreSQL provider: Role, Database and Grant against a PostgreSQL server.
//!
//! ```text
//!  Role / Database / Grant ──run_controller──▶ PostgresConnector ──▶ ProviderConfig + Secret
//!                                                 │ (the engine's CachedConnector:      (watched)
//!                                                 │  one Session per ProviderConfig)
//!                                                 ▼
//!                          PostgresClient: observe (pg_roles, pg_database, aclexplode,
//!                          pg_auth_members) / create / update / delete (quoted DDL)
//! ```
//!
//! The engine's runtime owns finalizers, annotations, conditions, events, connection
//! Secrets, polling and backoff; this crate only talks to PostgreSQL (and, for generated
//! Role passwords, to the Secret that keeps them).
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod api;
mod connector;
mod database;
mod error;
mod grant;
mod guard;
mod ownership;
mod role;
mod session;
mod sql;
mod tls;
mod transport;

use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use tessera_engine::managed::{ControllerOptions, crd, run_controller};

pub use api::{Database, Grant, ProviderConfig, Role};
pub use connector::{DEFAULT_PASSWORD_NAMESPACE, Postgres, PostgresClient, PostgresConnector};
pub use session::Session;

/// The provider, as the `tessera` binary's registry lists it.
pub struct PostgresqlProvider;

impl tessera_engine::provider::Provider for PostgresqlProvider {
    fn name(&self) -> &'static str {
        "postgresql"
    }
    fn about(&self) -> &'static str {
        "PostgreSQL roles, databases and grants (postgresql.sql.tessera.dev)"
    }
    fn crds(&self) -> Vec<CustomResourceDefinition> {
        crds()
    }
    fn run(&self, client: kube::Client, opts: ControllerOptions) -> BoxFuture<'static, ()> {
        Box::pin(run(client, opts))
    }
}

/// The CRDs of this provider: ProviderConfig, Role, Database and Grant.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        crd::provider_config::<ProviderConfig>(),
        crd::managed::<Role>(),
        crd::managed::<Database>(),
        crd::managed::<Grant>(),
    ]
}

/// Runs the Role, Database and Grant controllers until the process is asked to stop.
/// Generated Role passwords without a connection secret go to
/// [`DEFAULT_PASSWORD_NAMESPACE`]; use [`run_with`] to choose another namespace.
pub async fn run(client: kube::Client, opts: ControllerOptions) {
    run_with(client, opts, Postgres::connector()).await
}

/// Like [`run`], with a connector of the caller's choosing.
pub async fn run_with(client: kube::Client, opts: ControllerOptions, connector: PostgresConnector) {
    futures::join!(
        run_controller::<Role, _>(client.clone(), connector.clone(), opts.clone()),
        run_controller::<Database, _>(client.clone(), connector.clone(), opts.clone()),
        run_controller::<Grant, _>(client, connector, opts),
    );
}

tessera_engine::impl_managed!(Role);
tessera_engine::impl_managed!(Database);
tessera_engine::impl_managed!(Grant);

#[cfg(test)]
mod crd_tests {
    use super::*;

    #[test]
    fn the_crds_are_cluster_scoped_documented_structural_with_standard_columns() {
        let crds = crds();
        let kinds: Vec<_> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
        assert_eq!(kinds, ["ProviderConfig", "Role", "Database", "Grant"]);
        tessera_engine::testing::assert_provider_crds(api::GROUP, &crds);
        assert!(crds.iter().all(|c| c.spec.versions[0].name == api::VERSION));
    }

    #[test]
    fn provider_config_defaults_to_prefer_tls_and_the_postgres_database() {
        let pc: ProviderConfig = serde_yaml::from_str(
            "apiVersion: postgresql.sql.tessera.dev/v1alpha1\nkind: ProviderConfig\n\
             metadata: {name: default}\n\
             spec: {credentials: {secretRef: {name: pg, namespace: tessera-system}}}",
        )
        .unwrap();
        assert_eq!(pc.spec.ssl_mode, api::SslMode::Prefer);
        assert_eq!(pc.spec.default_database, "postgres");
    }
}
