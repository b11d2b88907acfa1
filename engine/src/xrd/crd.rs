//! From an XRD to the two CRDs it defines, as pure functions: the cluster-scoped composite
//! (XR) and the namespaced claim.
//!
//! Each generated CRD serves every version of the XRD (the referenceable one is the
//! storage version), has the status subresource, the engine's fields merged into the
//! XRD's schema (see [`super::schema`]), the engine's printer columns, and the category
//! `composite` or `claim` next to the XRD's own.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use serde_json::{Value, json};

pub use super::error::XrdError;
pub use super::schema::CrdKind;
use crate::api::xrd::{
    CompositeResourceDefinition, CompositeResourceDefinitionVersion, CompositeResourceNames,
};

/// Label on every CRD generated from an XRD: `composite` or `claim`.
pub const LABEL_XRD_CRD: &str = "tessera.dev/xrd-crd";
/// Annotation on every CRD generated from an XRD: the XRD's name.
///
/// An annotation, not an owner reference: deleting an XRD with `--cascade=foreground`
/// must not let the garbage collector delete the CRDs (and with them every claim).
pub const ANNOTATION_XRD: &str = "tessera.dev/xrd";
/// Category of every composite CRD: `kubectl get composite` lists all composites.
pub const CATEGORY_COMPOSITE: &str = "composite";
/// Category of every claim CRD: `kubectl get claim` lists all claims.
pub const CATEGORY_CLAIM: &str = "claim";

/// Checks an XRD's names, group and versions. The schemas are checked while the CRDs are
/// generated; the API server checks the rest (e.g. that a schema is structural) when they
/// are applied.
pub fn validate(xrd: &CompositeResourceDefinition) -> Result<(), XrdError> {
    let spec = &xrd.spec;
    if !is_dns_subdomain(&spec.group) || !spec.group.contains('.') {
        return Err(XrdError::Group {
            group: spec.group.clone(),
        });
    }
    validate_names(&spec.names, "spec.names")?;
    if let Some(claim) = &spec.claim_names {
        validate_names(claim, "spec.claimNames")?;
        if claim.kind == spec.names.kind {
            return Err(XrdError::ClaimNamesClash { field: "kind" });
        }
        if claim.plural == spec.names.plural {
            return Err(XrdError::ClaimNamesClash { field: "plural" });
        }
    }
    let expected = crd_name(&spec.names, &spec.group);
    if xrd.name_any() != expected {
        return Err(XrdError::Name {
            name: xrd.name_any(),
            expected,
        });
    }
    for (i, v) in spec.versions.iter().enumerate() {
        if !is_dns1035_label(&v.name) {
            return Err(XrdError::Version {
                name: v.name.clone(),
                reason: "use a lower-case name that starts with a letter, e.g. v1alpha1",
            });
        }
        if spec.versions[..i].iter().any(|o| o.name == v.name) {
            return Err(XrdError::Version {
                name: v.name.clone(),
                reason: "it is declared more than once",
            });
        }
        if v.deprecation_warning.is_some() && v.deprecated != Some(true) {
            return Err(XrdError::Version {
                name: v.name.clone(),
                reason: "deprecationWarning needs deprecated: true",
            });
        }
    }
    let count = spec.versions.iter().filter(|v| v.referenceable).count();
    if count != 1 {
        return Err(XrdError::Referenceable { count });
    }
    if !spec.versions.iter().any(|v| v.served) {
        return Err(XrdError::NoServedVersion);
    }
    if let Some(t) = &spec.connection_secret_type {
        crate::connection_secret::check_type(t)
            .map_err(|reason| XrdError::ConnectionSecretType { reason })?;
        let missing = crate::connection_secret::missing_keys(t, |k| {
            spec.connection_secret_keys.is_empty()
                || spec.connection_secret_keys.iter().any(|have| have == k)
        });
        if !missing.is_empty() {
            return Err(XrdError::ConnectionSecretType {
                reason: format!(
                    "a {t} Secret needs the key {}: add it to spec.connectionSecretKeys",
                    missing.join(" and ")
                ),
            });
        }
    }
    Ok(())
}

fn validate_names(names: &CompositeResourceNames, at: &str) -> Result<(), XrdError> {
    let bad = |field: &str, value: &str, reason| XrdError::Names {
        field: format!("{at}.{field}"),
        value: value.to_string(),
        reason,
    };
    let kind_ok = names.kind.starts_with(|c: char| c.is_ascii_uppercase())
        && names.kind.chars().all(|c| c.is_ascii_alphanumeric());
    if !kind_ok {
        return Err(bad(
            "kind",
            &names.kind,
            "use CamelCase letters and digits, e.g. XPostgresDatabase",
        ));
    }
    const LOWER: &str = "use lower-case letters, digits and '-', starting with a letter";
    if !is_dns1035_label(&names.plural) {
        return Err(bad("plural", &names.plural, LOWER));
    }
    if let Some(s) = &names.singular
        && !is_dns1035_label(s)
    {
        return Err(bad("singular", s, LOWER));
    }
    for s in &names.short_names {
        if !is_dns1035_label(s) {
            return Err(bad("shortNames", s, LOWER));
        }
    }
    for s in &names.categories {
        if !is_dns1035_label(s) {
            return Err(bad("categories", s, LOWER));
        }
    }
    Ok(())
}

/// The CRD name of a kind: `<plural>.<group>`.
pub fn crd_name(names: &CompositeResourceNames, group: &str) -> String {
    format!("{}.{}", names.plural, group)
}

/// The cluster-scoped composite (XR) CRD of an XRD.
pub fn composite_crd(
    xrd: &CompositeResourceDefinition,
) -> Result<CustomResourceDefinition, XrdError> {
    validate(xrd)?;
    build(xrd, &xrd.spec.names, CrdKind::Composite)
}

/// The namespaced claim CRD of an XRD, or `None` when the XRD offers no claim.
pub fn claim_crd(
    xrd: &CompositeResourceDefinition,
) -> Result<Option<CustomResourceDefinition>, XrdError> {
    validate(xrd)?;
    match &xrd.spec.claim_names {
        Some(names) => build(xrd, names, CrdKind::Claim).map(Some),
        None => Ok(None),
    }
}

fn build(
    xrd: &CompositeResourceDefinition,
    names: &CompositeResourceNames,
    kind: CrdKind,
) -> Result<CustomResourceDefinition, XrdError> {
    let spec = &xrd.spec;
    let engine_category = match kind {
        CrdKind::Composite => CATEGORY_COMPOSITE,
        CrdKind::Claim => CATEGORY_CLAIM,
    };
    let mut categories = vec![engine_category.to_string()];
    for c in &names.categories {
        if !categories.contains(c) {
            categories.push(c.clone());
        }
    }
    let mut crd_names = json!({
        "kind": names.kind,
        "plural": names.plural,
        "singular": names.singular.clone().unwrap_or_else(|| names.kind.to_lowercase()),
        "listKind": names.list_kind.clone().unwrap_or_else(|| format!("{}List", names.kind)),
        "categories": categories,
    });
    if !names.short_names.is_empty() {
        crd_names["shortNames"] = json!(names.short_names);
    }
    let versions = spec
        .versions
        .iter()
        .map(|v| version(v, kind))
        .collect::<Result<Vec<_>, _>>()?;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": crd_name(names, &spec.group),
            "labels": { LABEL_XRD_CRD: kind.label() },
            "annotations": { ANNOTATION_XRD: xrd.name_any() },
        },
        "spec": {
            "group": spec.group,
            "names": crd_names,
            "scope": match kind { CrdKind::Composite => "Cluster", CrdKind::Claim => "Namespaced" },
            "versions": versions,
        },
    });
    serde_json::from_value(crd).map_err(|e| XrdError::Schema {
        version: spec
            .referenceable_version()
            .map(|v| v.name.clone())
            .unwrap_or_default(),
        reason: format!("does not fit a CustomResourceDefinition: {e}"),
    })
}

fn version(v: &CompositeResourceDefinitionVersion, kind: CrdKind) -> Result<Value, XrdError> {
    let schema = super::schema::merge(
        v.schema.as_ref().map(|s| &s.open_api_v3_schema),
        kind,
        &v.name,
    )?;
    let mut out = json!({
        "name": v.name,
        "served": v.served,
        "storage": v.referenceable,
        "schema": { "openAPIV3Schema": schema },
        "subresources": { "status": {} },
        "additionalPrinterColumns": printer_columns(v, kind),
    });
    if let Some(d) = v.deprecated {
        out["deprecated"] = json!(d);
    }
    if let Some(w) = &v.deprecation_warning {
        out["deprecationWarning"] = json!(w);
    }
    Ok(out)
}

/// SYNCED, READY, then COMPOSITION (composite) or CONNECTION-SECRET (claim), the XRD
/// version's own columns, and AGE last.
fn printer_columns(v: &CompositeResourceDefinitionVersion, kind: CrdKind) -> Vec<Value> {
    let condition = |name: &str, type_: &str| {
        json!({
            "name": name,
            "type": "string",
            "jsonPath": format!(".status.conditions[?(@.type=='{type_}')].status"),
        })
    };
    let mut columns = vec![condition("SYNCED", "Synced"), condition("READY", "Ready")];
    columns.push(match kind {
        CrdKind::Composite => json!({
            "name": "COMPOSITION", "type": "string", "jsonPath": ".spec.compositionRef.name",
        }),
        CrdKind::Claim => json!({
            "name": "CONNECTION-SECRET", "type": "string",
            "jsonPath": ".spec.writeConnectionSecretToRef.name",
        }),
    });
    columns.extend(
        v.additional_printer_columns
            .iter()
            .filter_map(|c| serde_json::to_value(c).ok()),
    );
    columns
        .push(json!({ "name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp" }));
    columns
}

/// A DNS-1035 label: lower-case letters, digits and '-', starting with a letter, ending
/// with a letter or digit, at most 63 characters.
fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests;
