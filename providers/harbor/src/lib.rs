//! Tessera's Harbor provider: Project, RobotAccount and ProjectMember managed resources
//! against Harbor's v2.0 REST API.
//!
//! ```text
//!  Project ──run_controller──▶ HarborConnector ──▶ ProviderConfig + credentials Secret
//!                                 │ (the engine's CachedConnector:    (watched)
//!                                 │  one Harbor client per ProviderConfig)
//!                                 ▼
//!                   Harbor: GET/POST/PUT/DELETE /api/v2.0/projects, /quotas, /robots,
//!                           /projects/{name}/members
//! ```
//!
//! The engine's runtime owns finalizers, annotations, conditions, events, connection
//! Secrets, polling and backoff; this crate only talks to Harbor.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod api;
mod client;
mod member;
mod project;
mod robot;

use async_trait::async_trait;
use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use tessera_engine::api::common::ProviderCredentials;
use tessera_engine::managed::ProviderError;
use tessera_engine::managed::connections::{CachedConnector, Connect, ProviderConfigKind};
use tessera_engine::managed::credentials::Credentials;
use tessera_engine::managed::{ControllerOptions, crd, run_controller};

pub use api::{Project, ProjectMember, ProviderConfig, RobotAccount};
pub use client::Harbor;
pub use project::{SEVERITIES, valid_project_name};
pub use robot::{
    SECRET_TYPE as ROBOT_SECRET_TYPE, connection as robot_connection, full_name as robot_full_name,
};

/// The provider, as the `tessera` binary's registry lists it.
pub struct HarborProvider;

impl tessera_engine::provider::Provider for HarborProvider {
    fn name(&self) -> &'static str {
        "harbor"
    }
    fn about(&self) -> &'static str {
        "Harbor registry projects, robot accounts and project members (harbor.tessera.dev)"
    }
    fn crds(&self) -> Vec<CustomResourceDefinition> {
        crds()
    }
    fn run(&self, client: kube::Client, opts: ControllerOptions) -> BoxFuture<'static, ()> {
        Box::pin(run(client, opts))
    }
}

/// The CRDs of this provider: ProviderConfig, Project, RobotAccount and ProjectMember.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        crd::provider_config::<ProviderConfig>(),
        crd::managed::<Project>(),
        crd::managed::<RobotAccount>(),
        crd::managed::<ProjectMember>(),
    ]
}

/// Connects the managed resources to Harbor, one cached [`Harbor`] client per ProviderConfig.
pub type HarborConnector = CachedConnector<HarborConnect>;

/// How the Harbor provider connects: an HTTP client with the ProviderConfig's URL, TLS
/// settings and administrator credentials.
pub struct HarborConnect;

impl HarborConnect {
    /// The connector of every kind of this provider.
    pub fn connector() -> HarborConnector {
        CachedConnector::new(HarborConnect)
    }
}

impl ProviderConfigKind for ProviderConfig {
    fn credentials(&self) -> &ProviderCredentials {
        &self.spec.credentials
    }
}

#[async_trait]
impl Connect for HarborConnect {
    type Config = ProviderConfig;
    type Client = Harbor;
    const SYSTEM: &'static str = "Harbor";

    async fn connect(
        &self,
        kube: &kube::Client,
        name: &str,
        config: &ProviderConfig,
        credentials: &Credentials,
    ) -> Result<Harbor, ProviderError> {
        Ok(Harbor::new(name, &config.spec, credentials)?.with_kube(kube.clone()))
    }
}

/// Runs the controllers of every kind until the process is asked to stop; one connector,
/// so all kinds of a ProviderConfig share one Harbor client.
pub async fn run(client: kube::Client, opts: ControllerOptions) {
    let connector = HarborConnect::connector();
    futures::join!(
        run_controller::<Project, _>(client.clone(), connector.clone(), opts.clone()),
        run_controller::<RobotAccount, _>(client.clone(), connector.clone(), opts.clone()),
        run_controller::<ProjectMember, _>(client, connector, opts),
    );
}

tessera_engine::impl_managed!(Project);
tessera_engine::impl_managed!(RobotAccount);
tessera_engine::impl_managed!(ProjectMember);

#[cfg(test)]
mod crd_tests {
    use super::*;

    #[test]
    fn the_crds_are_cluster_scoped_documented_structural_with_standard_columns() {
        let crds = crds();
        let kinds: Vec<_> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["ProviderConfig", "Project", "RobotAccount", "ProjectMember"]
        );
        tessera_engine::testing::assert_provider_crds(api::GROUP, &crds);
        assert!(crds.iter().all(|c| c.spec.versions[0].name == api::VERSION));
    }

    #[test]
    fn provider_config_reads_url_credentials_and_tls_settings() {
        let pc: ProviderConfig = serde_yaml::from_str(
            "apiVersion: harbor.tessera.dev/v1alpha1\nkind: ProviderConfig\n\
             metadata: {name: default}\n\
             spec: {url: 'https://harbor.example.com', insecureSkipVerify: true,\n\
                    credentials: {secretRef: {name: harbor, namespace: tessera-system}}}",
        )
        .unwrap();
        assert_eq!(pc.spec.url, "https://harbor.example.com");
        assert!(pc.spec.insecure_skip_verify);
        assert_eq!(pc.spec.ca_bundle, None);
    }
}
