//! The claim controller: binds each claim to its composite and reflects the composite's
//! state back onto the claim.
//!
//! ```text
//!  claim (namespace team-a) ──SSA──▶ composite <claim>-<hash8> (cluster)
//!    spec (owned by Git,              spec = claim spec + claimRef + claim labels
//!     never written)                  + writeConnectionSecretToRef {name, namespace: team-a}
//!    status.resourceRef ◀──────────── status: Ready, Synced (messages copied, prefixed
//!    status.conditions                        "Composite <name>: ...")
//!    status.<field> ◀──────────────── status.<field>: every field but the engine's
//!                                             bookkeeping (bind::ENGINE_STATUS_FIELDS)
//! ```
//!
//! The composite reconciler writes the connection Secret straight into the claim's
//! namespace (one hop, not Crossplane's copy from the composite's Secret) and owns it, so
//! the Secret goes when the composite goes.
//!
//! - `bind`: the decisions as pure functions (desired composite, ownership, conditions,
//!   copied status fields, whether the status needs a write, events).
//! - `to_composite`: the composite a claim becomes ([`claim_to_composite`]), shared with
//!   `tessera render`.
//! - `reconciler`: the Kubernetes side ([`run`]).

pub mod bind;
mod reconciler;
mod to_composite;

pub use reconciler::{Error, field_manager, run};
pub use to_composite::{
    ClaimToCompositeError, REASON_COMPOSITION_CHOICE_FORBIDDEN, claim_to_composite,
};
