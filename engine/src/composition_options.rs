//! Settings and the finalizer shared by the composition controllers (XRD, composite,
//! claim, revisions): a leaf module, so that each controller can use it while
//! `composition_controllers::run_controllers` starts them.

use std::time::Duration;

use crate::composable::ComposableResources;

/// Settings of the composition controllers.
#[derive(Clone, Debug)]
pub struct CompositionOptions {
    /// Prefix of field managers; composed resources are applied with
    /// `<field_manager>/composite/<xr name>`.
    pub field_manager: String,
    /// How often composites and claims are reconciled when nothing else happens.
    pub poll_interval: Duration,
    /// Reconciles running at once per composite or claim kind.
    pub max_concurrent_reconciles: u16,
    /// The API groups and kinds Compositions may compose; a composite whose Composition
    /// renders anything else gets none of its resources applied.
    pub composable: ComposableResources,
    /// The shard's label selector ([`crate::shard`]): only claims and composites that
    /// match it are reconciled. `None`: all of them.
    pub shard: Option<String>,
}

impl Default for CompositionOptions {
    fn default() -> Self {
        CompositionOptions {
            field_manager: "tessera".to_string(),
            poll_interval: Duration::from_secs(60),
            max_concurrent_reconciles: 16,
            composable: ComposableResources::default(),
            shard: None,
        }
    }
}

/// Finalizer of XRDs, composites and claims.
pub const FINALIZER: &str = "finalizer.apiextensions.tessera.dev";
