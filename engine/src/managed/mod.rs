//! The generic managed-resource runtime: one reconciler for every managed kind, driving a
//! provider's [`ExternalClient`] (see `docs/architecture.md`, "Managed resources").
//!
//! ```text
//!  watch M ──▶ reconcile ──▶ Connector::connect ──▶ ExternalClient::observe
//!                 │                                   ├─ absent   ─▶ create (pending/succeeded annotations)
//!                 │                                   ├─ not ours ─▶ refuse, or mark (adoptExisting / own records)
//!                 │                                   ├─ drifted  ─▶ update
//!                 │                                   └─ deleting ─▶ delete, then drop the finalizer
//!                 └──▶ conditions + events (on transitions) + connection Secret, requeue after a jittered poll
//! ```
//!
//! `machine` holds the decisions (unit-tested with fakes), `reconciler` the Kubernetes side.
//! The provider kit: `crd` (standard printer columns and categories), `connections` (one
//! cached client per ProviderConfig from watched stores, the connector of every kind),
//! `timeout` (every external call under `--external-timeout`), `password` (generated or
//! referenced passwords and the Secret version they were last set from) and, for providers' tests,
//! [`crate::testing`]. docs/writing-a-provider.md walks through them.

pub mod client;
pub mod connections;
pub mod crd;
pub mod credentials;
pub mod machine;
mod own_writes;
pub mod password;
pub mod reconciler;
pub mod timeout;

pub use client::{
    Connector, CreateIdentity, ExternalClient, Managed, Observation, Ownership, ProviderError,
};
pub use reconciler::{ControllerOptions, FINALIZER, run_controller};
