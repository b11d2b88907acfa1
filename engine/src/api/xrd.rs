//! `CompositeResourceDefinition` (XRD): defines a new kind of composite resource (XR) and,
//! optionally, the namespaced claim that application developers use to request one.
//!
//! From each XRD the engine generates two CRDs: the cluster-scoped composite and the
//! namespaced claim, with the engine's own fields (`compositionRef`,
//! `writeConnectionSecretToRef`, ...) added to the schema given here.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, Reference};

/// Condition type: the composite (and claim) CRDs of this XRD are installed and served.
pub const CONDITION_ESTABLISHED: &str = "Established";
/// Condition type: the claim CRD of this XRD is installed and served.
pub const CONDITION_OFFERED: &str = "Offered";
/// Condition type: the composite and claim controllers of this XRD run; `False` while one
/// that stopped unexpectedly waits to be restarted.
pub const CONDITION_CONTROLLERS_RUNNING: &str = "ControllersRunning";

/// The desired state of a CompositeResourceDefinition.
// kube's repeated `printcolumn(type_ = ...)` trips this lint.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apiextensions.tessera.dev",
    version = "v1",
    kind = "CompositeResourceDefinition",
    plural = "compositeresourcedefinitions",
    singular = "compositeresourcedefinition",
    shortname = "xrd",
    shortname = "xrds",
    category = "tessera",
    status = "CompositeResourceDefinitionStatus",
    derive = "PartialEq",
    doc = "A CompositeResourceDefinition defines a new kind of composite resource (XR), and \
           optionally the namespaced claim through which application developers request one.",
    printcolumn(
        name = "ESTABLISHED",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Established')].status"
    ),
    printcolumn(
        name = "OFFERED",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Offered')].status"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CompositeResourceDefinitionSpec {
    /// API group of the composite resource and of its claim, e.g. `platform.example.org`.
    /// Cannot be changed after creation.
    pub group: String,

    /// Names of the composite resource kind, e.g. kind `XPostgresDatabase`, plural
    /// `xpostgresdatabases`. The XRD's own name must be `<names.plural>.<group>`.
    pub names: CompositeResourceNames,

    /// Names of the namespaced claim kind, e.g. kind `PostgresDatabase`, plural
    /// `postgresdatabases`. When omitted, no claim is offered and only cluster-scoped
    /// composite resources can be created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_names: Option<CompositeResourceNames>,

    /// Versions of the composite resource (and claim). Exactly one version must be
    /// `referenceable`; it is the version Compositions refer to and the storage version.
    pub versions: Vec<CompositeResourceDefinitionVersion>,

    /// Keys that may appear in the connection secret of a composite resource of this kind
    /// (and of its claim). Keys produced by a Composition but not listed here are dropped.
    /// When empty, every key is kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection_secret_keys: Vec<String>,

    /// The Kubernetes type of the connection Secret of a composite resource of this kind
    /// (and of its claim), e.g. `kubernetes.io/dockerconfigjson` for a Secret that pods use
    /// as `imagePullSecrets`. The default is `connection.tessera.dev/v1`. A type Kubernetes
    /// checks needs its keys among `connectionSecretKeys` (`.dockerconfigjson` for
    /// `kubernetes.io/dockerconfigjson`), and the Secret is written once they have values.
    /// Changing it replaces existing Secrets (Kubernetes cannot change a Secret's type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub connection_secret_type: Option<String>,

    /// Composition used for a composite resource of this kind when the resource names
    /// neither a composition nor a composition selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_composition_ref: Option<Reference>,

    /// Composition that every composite resource of this kind must use. Overrides the
    /// composition reference and selector of the composite resource and its claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced_composition_ref: Option<Reference>,

    /// Default for `compositionUpdatePolicy` of new composite resources of this kind:
    /// `Automatic` (the default) moves them to each new revision of their Composition,
    /// `Manual` keeps them on their revision until someone changes `compositionRevisionRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_composition_update_policy: Option<CompositionUpdatePolicy>,

    /// Whether a claim of this kind may choose its Composition. `Allowed` (the default): a
    /// claim may name any Composition of this kind in `spec.compositionRef`,
    /// `spec.compositionSelector` or `spec.compositionRevisionRef` (ignored when
    /// `enforcedCompositionRef` is set). `Forbidden`: a claim that sets any of them is
    /// refused with a message on the claim, and the Composition comes from
    /// `enforcedCompositionRef` or `defaultCompositionRef`. Composite resources created
    /// directly (not through a claim) may always choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_composition_selection: Option<ClaimCompositionSelection>,
}

/// Whether claims may choose their Composition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum ClaimCompositionSelection {
    /// A claim may set compositionRef, compositionSelector and compositionRevisionRef.
    #[default]
    Allowed,
    /// A claim that sets any of them is refused.
    Forbidden,
}

/// Names of a kind generated from an XRD (the composite or the claim).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositeResourceNames {
    /// Kind in CamelCase and singular, e.g. `XPostgresDatabase`.
    pub kind: String,

    /// Plural resource name in lower case, used in URLs, e.g. `xpostgresdatabases`.
    pub plural: String,

    /// Singular resource name in lower case. Defaults to the lower-cased kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub singular: Option<String>,

    /// Kind of the list type. Defaults to `<kind>List`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_kind: Option<String>,

    /// Short names accepted by kubectl, e.g. `pgdb`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short_names: Vec<String>,

    /// Categories the kind belongs to, so that `kubectl get <category>` lists it, e.g. `claim`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// One version of a composite resource (and of its claim).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositeResourceDefinitionVersion {
    /// Version name, e.g. `v1alpha1`; used in the apiVersion `<group>/<name>`.
    pub name: String,

    /// Whether this version is served by the API server. At least one version must be served.
    pub served: bool,

    /// Whether Compositions may refer to this version. Exactly one version must be
    /// referenceable; it is also the storage version.
    pub referenceable: bool,

    /// OpenAPI v3 schema of this version's `spec` and `status`. The engine adds its own
    /// fields (composition selection, connection secret, references) to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<CompositeResourceValidation>,

    /// Marks this version deprecated: requests to it return a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<bool>,

    /// Warning returned to API clients that use this version, instead of the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation_warning: Option<String>,

    /// Extra columns shown by `kubectl get` for this version, after the engine's own
    /// SYNCED and READY columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = crate::api::schema::bound_integers)]
    pub additional_printer_columns: Vec<CustomResourceColumnDefinition>,
}

/// Schema of one version of a composite resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompositeResourceValidation {
    /// OpenAPI v3 schema of the composite resource, in the same form as a
    /// CustomResourceDefinition's `openAPIV3Schema` (it must be structural). Usually
    /// declares `spec.parameters` and, for values written back by patches, `status`.
    #[serde(rename = "openAPIV3Schema")]
    #[schemars(schema_with = "super::schema::preserve_unknown_object")]
    pub open_api_v3_schema: serde_json::Value,
}

/// Whether composite resources follow new revisions of their Composition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum CompositionUpdatePolicy {
    /// Move to each new revision of the Composition as soon as it exists.
    #[default]
    Automatic,
    /// Stay on the current revision until `compositionRevisionRef` is changed by hand.
    Manual,
}

/// A reference to a kind by API version and kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeReference {
    /// API version of the kind, e.g. `platform.example.org/v1alpha1`.
    pub api_version: String,

    /// Kind, e.g. `XPostgresDatabase`.
    pub kind: String,
}

/// The observed state of a CompositeResourceDefinition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositeResourceDefinitionStatus {
    /// Conditions of the XRD: `Established` (composite CRD installed and its controller
    /// running) and `Offered` (claim CRD installed and its controller running).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The generation of the XRD that the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = crate::api::schema::INT64_MAX))]
    pub observed_generation: Option<i64>,

    /// The kinds whose controllers this XRD currently runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controllers: Option<CompositeResourceDefinitionControllerStatus>,
}

/// The kinds served by the controllers started for an XRD.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositeResourceDefinitionControllerStatus {
    /// Kind and API version of the composite resources being reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite_resource_type: Option<TypeReference>,

    /// Kind and API version of the claims being reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite_resource_claim_type: Option<TypeReference>,
}

impl CompositeResourceDefinitionSpec {
    /// The version that Compositions refer to (the first one marked `referenceable`).
    pub fn referenceable_version(&self) -> Option<&CompositeResourceDefinitionVersion> {
        self.versions.iter().find(|v| v.referenceable)
    }

    /// Kind and API version of the composite resource, at its referenceable version.
    pub fn composite_type(&self) -> Option<TypeReference> {
        self.referenceable_version().map(|v| TypeReference {
            api_version: format!("{}/{}", self.group, v.name),
            kind: self.names.kind.clone(),
        })
    }

    /// Kind and API version of the claim, at the referenceable version, if a claim is offered.
    pub fn claim_type(&self) -> Option<TypeReference> {
        let names = self.claim_names.as_ref()?;
        self.referenceable_version().map(|v| TypeReference {
            api_version: format!("{}/{}", self.group, v.name),
            kind: names.kind.clone(),
        })
    }

    /// Whether claims of this kind may choose their Composition (`Allowed` when unset).
    pub fn claims_may_choose_composition(&self) -> bool {
        self.claim_composition_selection.unwrap_or_default() == ClaimCompositionSelection::Allowed
    }

    /// The effective default update policy (`Automatic` when unset).
    pub fn update_policy(&self) -> CompositionUpdatePolicy {
        self.default_composition_update_policy.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::json;

    use super::*;
    use crate::api::composition::tests::assert_every_property_documented;
    use crate::api::schema::assert_structural;

    const XRD: &str = r#"
apiVersion: apiextensions.tessera.dev/v1
kind: CompositeResourceDefinition
metadata:
  name: xpostgresdatabases.platform.example.org
spec:
  group: platform.example.org
  names:
    kind: XPostgresDatabase
    plural: xpostgresdatabases
  claimNames:
    kind: PostgresDatabase
    plural: postgresdatabases
    shortNames: [pgdb]
    categories: [claim]
  connectionSecretKeys: [username, password, endpoint, port, url]
  defaultCompositionRef:
    name: shared-postgres
  defaultCompositionUpdatePolicy: Manual
  versions:
  - name: v1alpha1
    served: true
    referenceable: true
    additionalPrinterColumns:
    - name: SIZE
      type: string
      jsonPath: .spec.parameters.size
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              parameters:
                type: object
                properties:
                  size:
                    type: string
                    enum: [small, large]
                required: [size]
"#;

    #[test]
    fn crossplane_style_xrd_deserialises_and_round_trips() {
        let xrd: CompositeResourceDefinition = serde_yaml::from_str(XRD).expect("parses");
        let spec = &xrd.spec;
        assert_eq!(
            spec.composite_type(),
            Some(TypeReference {
                api_version: "platform.example.org/v1alpha1".into(),
                kind: "XPostgresDatabase".into()
            })
        );
        assert_eq!(
            spec.claim_type().map(|t| t.kind),
            Some("PostgresDatabase".into())
        );
        assert_eq!(spec.update_policy(), CompositionUpdatePolicy::Manual);
        assert_eq!(spec.connection_secret_keys.len(), 5);
        let v = spec.referenceable_version().expect("referenceable");
        assert_eq!(
            v.schema
                .as_ref()
                .map(|s| &s.open_api_v3_schema["properties"]["spec"]["type"]),
            Some(&json!("object"))
        );
        assert_eq!(
            v.additional_printer_columns[0].json_path,
            ".spec.parameters.size"
        );

        let original: serde_json::Value = serde_yaml::from_str(XRD).expect("parses");
        assert_eq!(serde_json::to_value(&xrd).expect("serialises"), original);
    }

    #[test]
    fn update_policy_defaults_to_automatic_and_claims_are_optional() {
        let spec: CompositeResourceDefinitionSpec = serde_json::from_value(json!({
            "group": "g.example.org",
            "names": {"kind": "XThing", "plural": "xthings"},
            "versions": [{"name": "v1", "served": true, "referenceable": false}],
        }))
        .expect("parses");
        assert_eq!(spec.update_policy(), CompositionUpdatePolicy::Automatic);
        assert_eq!(spec.claim_type(), None);
        assert_eq!(spec.composite_type(), None, "no referenceable version");
    }

    #[test]
    fn xrd_crd_schema_is_structural_with_columns_and_names() {
        let crd = CompositeResourceDefinition::crd();
        assert_structural(&crd);
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("compositeresourcedefinitions.apiextensions.tessera.dev")
        );
        assert_eq!(
            crd.spec.names.short_names,
            Some(vec!["xrd".to_string(), "xrds".to_string()])
        );
        let v = &crd.spec.versions[0];
        let cols: Vec<_> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(cols, ["ESTABLISHED", "OFFERED", "AGE"]);
        let json = serde_json::to_value(&crd).expect("serialises");
        let spec = &json["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let schema = &spec["properties"]["versions"]["items"]["properties"]["schema"];
        assert_eq!(
            schema["properties"]["openAPIV3Schema"]["x-kubernetes-preserve-unknown-fields"],
            json!(true)
        );
        assert_every_property_documented(spec, "spec");
    }
}
