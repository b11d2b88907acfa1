//! Tessera's Vault provider: Policy, Mount, AuthBackend, KVSecret, KubernetesAuthBackendConfig
//! and KubernetesAuthRole against a Vault or OpenBao
//! server, over Vault's HTTP API (the `vaultrs` crate).
//!
//! ```text
//!  Policy / Mount / AuthBackend / KVSecret ──run_controller──▶ VaultConnector ──▶ ProviderConfig + Secret
//!                                                     │ (the engine's CachedConnector:   (watched)
//!                                                     │  one VaultClient per ProviderConfig)
//!                                                     ▼
//!                   VaultClient: observe / create / update / delete on sys/policy,
//!                   sys/mounts, sys/auth and KV v2 (compared by meaning, marked with the uid)
//! ```
//!
//! The engine's runtime owns finalizers, annotations, conditions, events, connection
//! Secrets, polling, backoff and the timeout of every call; this crate only talks to Vault.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod api;
mod connector;
mod error;
mod http;
mod kubernetes_auth;
mod kv_secret;
mod login;
mod mount;
mod mounts;
mod ownership;
mod policy;

use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use tessera_engine::managed::{ControllerOptions, crd, run_controller};

pub use api::{
    AuthBackend, KVSecret, KubernetesAuthBackendConfig, KubernetesAuthRole, Mount, Policy,
    ProviderConfig,
};
pub use connector::{Vault, VaultClient, VaultConnector};

/// The provider, as the `tessera` binary's registry lists it.
pub struct VaultProvider;

impl tessera_engine::provider::Provider for VaultProvider {
    fn name(&self) -> &'static str {
        "vault"
    }
    fn about(&self) -> &'static str {
        "Vault (and OpenBao) policies, secrets engines, auth methods, KV secrets and Kubernetes auth (vault.tessera.dev)"
    }
    fn crds(&self) -> Vec<CustomResourceDefinition> {
        crds()
    }
    fn run(&self, client: kube::Client, opts: ControllerOptions) -> BoxFuture<'static, ()> {
        Box::pin(run(client, opts))
    }
}

/// The CRDs of this provider: ProviderConfig, Policy, Mount, AuthBackend, KVSecret,
/// KubernetesAuthBackendConfig and KubernetesAuthRole.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        crd::provider_config::<ProviderConfig>(),
        crd::managed::<Policy>(),
        crd::managed::<Mount>(),
        crd::managed::<AuthBackend>(),
        crd::managed::<KVSecret>(),
        crd::managed::<KubernetesAuthBackendConfig>(),
        crd::managed::<KubernetesAuthRole>(),
    ]
}

/// Runs the controllers of every managed kind of this provider until the process is asked to stop.
pub async fn run(client: kube::Client, opts: ControllerOptions) {
    let connector = Vault::connector();
    futures::join!(
        run_controller::<Policy, _>(client.clone(), connector.clone(), opts.clone()),
        run_controller::<Mount, _>(client.clone(), connector.clone(), opts.clone()),
        run_controller::<AuthBackend, _>(client.clone(), connector.clone(), opts.clone()),
        run_controller::<KVSecret, _>(client.clone(), connector.clone(), opts.clone()),
        run_controller::<KubernetesAuthBackendConfig, _>(
            client.clone(),
            connector.clone(),
            opts.clone()
        ),
        run_controller::<KubernetesAuthRole, _>(client, connector, opts),
    );
}

tessera_engine::impl_managed!(Policy);
tessera_engine::impl_managed!(Mount);
tessera_engine::impl_managed!(AuthBackend);
tessera_engine::impl_managed!(KVSecret);
tessera_engine::impl_managed!(KubernetesAuthBackendConfig);
tessera_engine::impl_managed!(KubernetesAuthRole);

#[cfg(test)]
mod crd_tests {
    use super::*;

    #[test]
    fn the_crds_are_cluster_scoped_documented_structural_with_standard_columns() {
        let crds = crds();
        let kinds: Vec<_> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "ProviderConfig",
                "Policy",
                "Mount",
                "AuthBackend",
                "KVSecret",
                "KubernetesAuthBackendConfig",
                "KubernetesAuthRole",
            ]
        );
        tessera_engine::testing::assert_provider_crds(api::GROUP, &crds);
        assert!(crds.iter().all(|c| c.spec.versions[0].name == api::VERSION));
    }
}
