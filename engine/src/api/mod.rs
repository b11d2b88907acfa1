//! CRD types of the engine and the fields every managed resource shares.
pub mod common;
pub mod composition;
pub mod schema;
pub mod xrd;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The CRDs of the engine's own kinds (`apiextensions.tessera.dev`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        xrd::CompositeResourceDefinition::crd(),
        composition::Composition::crd(),
        composition::CompositionRevision::crd(),
    ]
}
