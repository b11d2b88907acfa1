//! The composition controllers and what starts them.
//!
//! ```text
//!  xrd controller ──▶ composite CRD + claim CRD ──▶ starts per XRD:
//!       composite::run (XR kind)   claim::run (claim kind)
//!  claim ──SSA──▶ XR (cluster, name = naming::claim_composite_name) ──SSA──▶ composed MRs
//!    ▲ status          │ status, connection Secret written straight into the claim namespace
//!    └─────────────────┘
//!  revisions::run_revisions: a CompositionRevision per Composition spec
//! ```
//!
//! Their settings live in the leaf module `composition_options`: the controllers use it,
//! and this module starts them, so the dependencies point one way.

pub use crate::composition_options::{CompositionOptions, FINALIZER};

/// Runs every composition controller: XRDs (which start the composite and claim
/// controllers of each XRD) and Composition revisions, until the process is asked to stop.
pub async fn run_controllers(client: kube::Client, opts: CompositionOptions) {
    futures::join!(
        crate::xrd::run(client.clone(), opts.clone()),
        crate::revisions::run_revisions(client, opts),
    );
}
