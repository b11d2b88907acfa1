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

/// The CRD of ProviderConfig kind `P`, with the columns SOURCE (of the credentials),
/// SECRET (the credentials Secret's name, if any) and AGE and the categories `tessera` and `providerconfig`.
pub fn provider_config<P: CustomResourceExt>() -> CustomResourceDefinition {
    with_columns(
        P::crd(),
        &PROVIDER_CONFIG_CATEGORIES,
        vec![
            column("SOURCE", "string", ".spec.credentials.source"),
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

#[cfg(test)]
mod tests {
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use crate::api::common::{ResourceSpec, ResourceStatus};
    use crate::testing::assert_provider_crds;

    /// A gadget of the test provider.
    #[derive(CustomResource, Clone, Debug, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "test.tessera.dev",
        version = "v1",
        kind = "Gadget",
        status = "GadgetStatus",
        doc = "A gadget of the test provider."
    )]
    #[serde(rename_all = "camelCase")]
    pub struct GadgetSpec {
        #[serde(flatten)]
        resource: ResourceSpec,
        /// The desired gadget.
        for_provider: GadgetParameters,
    }

    /// The desired gadget.
    #[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
    struct GadgetParameters {
        /// How big.
        size: Option<i64>,
        // Deliberately without a doc comment.
        colour: Option<String>,
    }

    /// The observed gadget.
    #[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
    pub struct GadgetStatus {
        #[serde(flatten)]
        resource: ResourceStatus,
    }

    fn problems(
        crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    ) -> String {
        let panic = std::panic::catch_unwind(|| assert_provider_crds("test.tessera.dev", &[crd]))
            .expect_err("the check finds problems");
        panic.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    #[test]
    fn the_helper_adds_the_standard_columns_and_categories_that_the_derive_lacks() {
        use kube::CustomResourceExt;
        let bare = problems(Gadget::crd());
        assert!(
            bare.contains("Gadget: categories [], want [\"tessera\", \"managed\"]"),
            "{bare}"
        );
        assert!(bare.contains("Gadget: printer columns [], want [\"READY\", \"SYNCED\", \"EXTERNAL-NAME\", \"AGE\"]"), "{bare}");
        let helped = problems(super::managed::<Gadget>());
        assert!(
            !helped.contains("categories") && !helped.contains("printer columns"),
            "{helped}"
        );
    }

    #[test]
    fn the_crd_check_names_every_field_without_a_doc_comment() {
        let msg = problems(super::managed::<Gadget>());
        assert!(msg.contains(".spec.forProvider.colour"), "{msg}");
        assert!(!msg.contains(".spec.forProvider.size"), "{msg}");
    }
}
