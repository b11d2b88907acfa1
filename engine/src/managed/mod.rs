//! The generic managed-resource runtime: one reconciler for every managed kind, driving a
//! provider's [`ExternalClient`] (see `docs/architecture.md`, "Managed resources").
//!
//! ```text
//!  watch M ──▶ reconcile ──▶ Connector::connect ──▶ ExternalClient::observe
//!                 │                                   ├─ absent   ─▶ create (pending/succeeded annotations)
//!                 │                                   ├─ drifted  ─▶ update
//!                 │                                   └─ deleting ─▶ delete, then drop the finalizer
//!                 └──▶ conditions + events (on transitions) + connection Secret, requeue after a jittered poll
//! ```
//!
//! `machine` holds the decisions (unit-tested with fakes), `reconciler` the Kubernetes side.

pub mod client;
pub mod credentials;
pub mod machine;
pub mod reconciler;

pub use client::{Connector, ExternalClient, Managed, Observation, ProviderError};
pub use reconciler::{ControllerOptions, FINALIZER, run_controller};
