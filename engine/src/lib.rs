//! Tessera's engine: the API types, the managed-resource runtime and the composition engine.
//!
//! ```text
//!   claim (namespaced) ──binds──▶ composite (cluster) ──renders──▶ managed resources
//!        ▲ connection secret            │ Composition                     │ ExternalClient
//!        └──────────────────────────────┘                                 ▼
//!                                                                 external API (SQL, Vault, ...)
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod api;
pub mod claim;
pub mod compose;
pub mod composite;
pub mod managed;
pub mod offline;
pub mod provider;
pub mod revisions;
pub mod runtime;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod xr;
pub mod xrd;
