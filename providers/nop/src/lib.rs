//! Tessera's nop provider: `NopResource` managed resources of no external system, like
//! Crossplane's provider-nop. The engine is measured alone with it.
//!
//! ```text
//!  NopResource ──run_controller──▶ NopConnector ──▶ NopSystem (in memory, per process)
//!                                                     observe / create / delete take the
//!                                                     configured time
//! ```
//!
//! The "external resources" live in the controller's memory: a restarted controller finds
//! none and creates them again (their names are deterministic, so no duplicate is
//! possible). Every call is logged at `debug` level (target `tessera_provider_nop::calls`,
//! field `call`) so that a benchmark can count the external calls per managed resource.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod api;
mod system;

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use tessera_engine::managed::{
    Connector, ControllerOptions, ExternalClient, ProviderError, crd, run_controller,
};

pub use api::NopResource;
pub use system::NopSystem;

/// The provider, as the `tessera` binary's registry lists it.
pub struct NopProvider;

impl tessera_engine::provider::Provider for NopProvider {
    fn name(&self) -> &'static str {
        "nop"
    }
    fn about(&self) -> &'static str {
        "NopResources of no external system, to measure the engine (nop.tessera.dev)"
    }
    fn crds(&self) -> Vec<CustomResourceDefinition> {
        crds()
    }
    fn run(&self, client: kube::Client, opts: ControllerOptions) -> BoxFuture<'static, ()> {
        Box::pin(run(client, opts))
    }
}

/// The CRDs of this provider: NopResource (it has no ProviderConfig).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![crd::managed::<NopResource>()]
}

/// Connects every NopResource to the one in-memory [`NopSystem`] of the process; the
/// ProviderConfig reference is ignored.
#[derive(Clone, Default)]
pub struct NopConnector {
    system: Arc<NopSystem>,
}

impl NopConnector {
    /// A connector with an empty system of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// The system this connector's clients use.
    pub fn system(&self) -> &Arc<NopSystem> {
        &self.system
    }
}

#[async_trait]
impl Connector<NopResource> for NopConnector {
    async fn connect(
        &self,
        _client: &kube::Client,
        _mr: &NopResource,
    ) -> Result<Arc<dyn ExternalClient<NopResource>>, ProviderError> {
        Ok(self.system.clone())
    }

    fn external_system(&self) -> &str {
        "the nop system"
    }
}

/// Runs the NopResource controller until the process is asked to stop.
pub async fn run(client: kube::Client, opts: ControllerOptions) {
    run_controller::<NopResource, _>(client, NopConnector::new(), opts).await;
}

tessera_engine::impl_managed!(NopResource);

#[cfg(test)]
mod crd_tests {
    use super::*;

    #[test]
    fn the_crd_is_cluster_scoped_documented_structural_with_standard_columns() {
        let crds = crds();
        let kinds: Vec<_> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
        assert_eq!(kinds, ["NopResource"]);
        tessera_engine::testing::assert_provider_crds(api::GROUP, &crds);
        assert!(crds.iter().all(|c| c.spec.versions[0].name == api::VERSION));
    }
}
