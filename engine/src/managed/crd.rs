//! The printer columns and categories every managed kind and every ProviderConfig kind
//! share, added to the CRD that kube's derive generates, so that a provider's
//! `#[kube(...)]` attribute names only its group, version, kind, status and doc.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition,
};
use kube::CustomResourceExt;

use crate::api::common::annotations;

/// The categories of every managed kind: `kubectl get managed` lists them all.
pub const MANAGED_CATEGORIES: [&str; 2] = ["tessera", "managed"];
/// The categories of every ProviderConfig kind: `kubectl get providerconfig`.
pub const PROVIDER_CONFIG_CATEGORIES: [&str; 2] = ["tessera", "providerconfig"];

/// The CRD of managed kind `M`, with the columns READY, SYNCED, EXTERNAL-NAME and AGE and
/// the categories `tessera` and `managed`.
pub fn managed<M: CustomResourceExt>() -> CustomResourceDefinition {
    let external_name = format!(
        ".metadata.annotations.{}",
        annotations::EXTERNAL_NAME.replace('.', "\\.")
    );
    with_columns(
        M::crd(),
        &MANAGED_CATEGORIES,
        vec![
            column(
                "READY",
                "string",
                ".status.conditions[?(@.type=='Ready')].status",
            ),
            column(
                "SYNCED",
                "string",
                ".status.conditions[?(@.type=='Synced')].status",
            ),
            column("EXTERNAL-NAME", "string", &external_name),
            column("AGE", "date", ".metadata.creationTimestamp"),
        ],
    )
}

/// The CRD of ProviderConfig kind `P`, with the columns SECRET (the credentials Secret's
/// name) and AGE and the categories `tessera` and `providerconfig`.
pub fn provider_config<P: CustomResourceExt>() -> CustomResourceDefinition {
    with_columns(
        P::crd(),
        &PROVIDER_CONFIG_CATEGORIES,
        vec![
            column("SECRET", "string", ".spec.credentials.secretRef.name"),
            column("AGE", "date", ".metadata.creationTimestamp"),
        ],
    )
}

fn column(name: &str, type_: &str, json_path: &str) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.to_string(),
        type_: type_.to_string(),
        json_path: json_path.to_string(),
        ..Default::default()
    }
}

fn with_columns(
    mut crd: CustomResourceDefinition,
    categories: &[&str],
    columns: Vec<CustomResourceColumnDefinition>,
) -> CustomResourceDefinition {
    crd.spec.names.categories = Some(categories.iter().map(|c| c.to_string()).collect());
    for version in &mut crd.spec.versions {
        version.additional_printer_columns = Some(columns.clone());
    }
    crd
}
