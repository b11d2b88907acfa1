//! Tessera's engine: the API types, the managed-resource runtime and the composition engine.
//!
//! ```text
//!   claim (namespaced) ──binds──▶ composite (cluster) ──renders──▶ managed resources
//!        ▲ connection secret            │ Composition                     │ ExternalClient
//!        └──────────────────────────────┘                                 ▼
//!                                                                 external API (SQL, Vault, ...)
//! ```
//!
//! Every controller runs on [`scaffold`]. The layers, the module map and the way
//! dependencies point are described in `docs/architecture.md`.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod api;
pub mod claim;
pub mod composable;
pub mod compose;
pub mod composite;
pub mod composition_controllers;
pub mod composition_options;
pub mod connection_secret;
pub mod managed;
pub mod metrics;
pub mod naming;
pub mod objects;
pub mod offline;
pub mod provider;
pub mod revisions;
pub mod scaffold;
pub mod secret_store;
pub mod shard;
pub mod stored;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod xrd;
