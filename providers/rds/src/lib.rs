//! Tessera's AWS RDS provider: DBInstance and DBSubnetGroup, on the AWS SDK for Rust.
//!
//! ```text
//!  DBInstance / DBSubnetGroup ──run_controller──▶ RdsConnector ──▶ ProviderConfig + Secret
//!                                                   │ (the engine's CachedConnector:   (watched),
//!                                                   │  one SDK client per ProviderConfig) or the
//!                                                   │  default chain; STS AssumeRole when set
//!                                                   ▼
//!                       RdsClient: observe (DescribeDBInstances / DescribeDBSubnetGroups)
//!                       create / update (Modify*, tags) / delete
//! ```
//!
//! The engine's runtime owns finalizers, annotations, conditions, events, connection
//! Secrets, polling and backoff; this crate only talks to AWS (and, for generated master
//! passwords, to the Secret that keeps them). What it creates carries the tag
//! `tessera.dev/managed-resource-uid`, so that a resource Tessera did not create is never
//! changed or deleted without `spec.adoptExisting`.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod api;
mod connector;
mod credentials;
mod db_instance;
mod db_subnet_group;
mod error;
mod password;
mod tags;

use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use tessera_engine::managed::{ControllerOptions, crd, run_controller};

pub use api::{DBInstance, DBSubnetGroup, OWNERSHIP_TAG, ProviderConfig};
pub use connector::{
    ACCESS_KEY_ID, DEFAULT_PASSWORD_NAMESPACE, Rds, RdsClient, RdsConnector, SECRET_ACCESS_KEY,
    SESSION_TOKEN,
};

/// The provider, as the `tessera` binary's registry lists it.
pub struct RdsProvider;

impl tessera_engine::provider::Provider for RdsProvider {
    fn name(&self) -> &'static str {
        "rds"
    }
    fn about(&self) -> &'static str {
        "AWS RDS DB instances and DB subnet groups (rds.aws.tessera.dev)"
    }
    fn crds(&self) -> Vec<CustomResourceDefinition> {
        crds()
    }
    fn run(&self, client: kube::Client, opts: ControllerOptions) -> BoxFuture<'static, ()> {
        Box::pin(run(client, opts))
    }
}

/// The CRDs of this provider: ProviderConfig, DBInstance and DBSubnetGroup.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        crd::provider_config::<ProviderConfig>(),
        crd::managed::<DBInstance>(),
        crd::managed::<DBSubnetGroup>(),
    ]
}

/// Runs the DBInstance and DBSubnetGroup controllers until the process is asked to stop.
/// Generated master passwords without a connection secret go to
/// [`DEFAULT_PASSWORD_NAMESPACE`]; use [`run_with`] to choose another namespace.
pub async fn run(client: kube::Client, opts: ControllerOptions) {
    run_with(client, opts, Rds::connector()).await
}

/// Like [`run`], with a connector of the caller's choosing.
pub async fn run_with(client: kube::Client, opts: ControllerOptions, connector: RdsConnector) {
    futures::join!(
        run_controller::<DBInstance, _>(client.clone(), connector.clone(), opts.clone()),
        run_controller::<DBSubnetGroup, _>(client, connector, opts),
    );
}

tessera_engine::impl_managed!(DBInstance);
tessera_engine::impl_managed!(DBSubnetGroup);

#[cfg(test)]
mod crd_tests {
    use super::*;

    #[test]
    fn the_crds_are_cluster_scoped_documented_structural_with_standard_columns() {
        let crds = crds();
        let kinds: Vec<_> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
        assert_eq!(kinds, ["ProviderConfig", "DBInstance", "DBSubnetGroup"]);
        tessera_engine::testing::assert_provider_crds(api::GROUP, &crds);
        assert!(crds.iter().all(|c| c.spec.versions[0].name == api::VERSION));
    }

    #[test]
    fn db_instance_fields_have_the_names_rds_users_know() {
        let db: DBInstance = serde_yaml::from_str(
            "apiVersion: rds.aws.tessera.dev/v1alpha1\nkind: DBInstance\n\
             metadata: {name: db1}\n\
             spec: {forProvider: {engine: postgres, dbInstanceClass: db.t3.micro, \
             masterUsername: admin, multiAZ: true, finalDBSnapshotIdentifier: last}}",
        )
        .unwrap();
        assert_eq!(db.spec.for_provider.multi_az, Some(true));
        assert_eq!(
            db.spec.for_provider.final_db_snapshot_identifier.as_deref(),
            Some("last")
        );
        assert!(!db.spec.for_provider.skip_final_snapshot);
    }
}
