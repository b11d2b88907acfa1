//! The API resources (kinds) an XRD defines, at its referenceable version.

use kube::discovery::ApiResource;

use crate::api::xrd::CompositeResourceDefinition;

/// The API resource of the composite (XR) kind an XRD defines, at its referenceable version.
pub fn composite_resource(xrd: &CompositeResourceDefinition) -> Option<ApiResource> {
    let version = xrd.spec.referenceable_version()?.name.clone();
    let names = &xrd.spec.names;
    Some(ApiResource {
        group: xrd.spec.group.clone(),
        version: version.clone(),
        api_version: format!("{}/{}", xrd.spec.group, version),
        kind: names.kind.clone(),
        plural: names.plural.clone(),
    })
}

/// The API resource of the claim kind an XRD defines, if it offers claims.
pub fn claim_resource(xrd: &CompositeResourceDefinition) -> Option<ApiResource> {
    let version = xrd.spec.referenceable_version()?.name.clone();
    let names = xrd.spec.claim_names.as_ref()?;
    Some(ApiResource {
        group: xrd.spec.group.clone(),
        version: version.clone(),
        api_version: format!("{}/{}", xrd.spec.group, version),
        kind: names.kind.clone(),
        plural: names.plural.clone(),
    })
}
