//! The XRD controller: turns each CompositeResourceDefinition into two CRDs and runs the
//! controllers of the kinds they define.
//!
//! ```text
//!  XRD ──validate──▶ composite CRD (cluster) ─┐ SSA, wait Established
//!       └─────────▶ claim CRD (namespaced) ──┘
//!                         │
//!                         ▼ tokio::spawn, restarted when the XRD's kinds,
//!            composite::run   claim::run       referenceable version or defaults change
//!
//!  delete XRD ──▶ composites/claims left? ── yes ──▶ keep finalizer, DeletionBlocked
//!                                        └── no ───▶ stop controllers, delete CRDs, drop finalizer
//! ```
//!
//! - [`crd`]: the CRDs as pure functions of the XRD ([`composite_crd`], [`claim_crd`]),
//!   and the XRD's validation.
//! - `schema`: the engine's fields merged into the XRD's schema.
//! - `resources`: the API resources (composite and claim kinds) an XRD defines.
//! - `conditions`: the XRD's conditions and events as a pure function of what was observed.
//! - `controller`: the Kubernetes side ([`run`]).
//!
//! The CompositionRevision controller (`revisions::run_revisions`) runs beside [`run`];
//! `composition_controllers::run_controllers` starts both.

mod conditions;
mod controller;
pub mod crd;
mod error;
mod resources;
mod schema;

pub use conditions::reasons;
pub use controller::{Error, run};
pub use crd::{
    ANNOTATION_XRD, CATEGORY_CLAIM, CATEGORY_COMPOSITE, CrdKind, LABEL_XRD_CRD, XrdError,
    claim_crd, composite_crd, crd_name, validate,
};
pub use resources::{claim_resource, composite_resource};
