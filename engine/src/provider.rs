//! What the `tessera` binary needs of a provider: its name, its CRDs, and its controllers.
//! The binary keeps one registry table of them (src/providers.rs), so adding a provider is
//! one line there plus a cargo feature.

use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use crate::managed::ControllerOptions;

/// A provider compiled into the binary.
pub trait Provider: Send + Sync {
    /// The name used by `--providers` (lower case, e.g. `postgresql`).
    fn name(&self) -> &'static str;
    /// What it manages, for `--help` (e.g. "PostgreSQL roles, databases and grants").
    fn about(&self) -> &'static str;
    /// Its CRDs: the ProviderConfig kind and every managed kind.
    fn crds(&self) -> Vec<CustomResourceDefinition>;
    /// The API groups of its kinds: by default, the groups of [`Provider::crds`]. The
    /// controller's default composable resources allow every kind of these groups.
    fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self.crds().into_iter().map(|c| c.spec.group).collect();
        groups.sort();
        groups.dedup();
        groups
    }
    /// Runs the controllers of its managed kinds until the process is asked to stop.
    fn run(&self, client: kube::Client, opts: ControllerOptions) -> BoxFuture<'static, ()>;
}
