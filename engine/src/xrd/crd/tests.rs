use serde_json::{Value, json};

use super::*;
use crate::api::composition::tests::assert_every_property_documented;
use crate::api::schema::assert_structural;

fn xrd(value: Value) -> CompositeResourceDefinition {
    serde_json::from_value(value).expect("test XRD parses")
}

fn postgres_xrd() -> Value {
    json!({
        "apiVersion": "apiextensions.tessera.dev/v1",
        "kind": "CompositeResourceDefinition",
        "metadata": { "name": "xpostgresdatabases.platform.example.org", "uid": "u-1" },
        "spec": {
            "group": "platform.example.org",
            "names": { "kind": "XPostgresDatabase", "plural": "xpostgresdatabases",
                       "categories": ["databases"] },
            "claimNames": { "kind": "PostgresDatabase", "plural": "postgresdatabases",
                            "shortNames": ["pgdb"], "categories": ["claim", "databases"] },
            "versions": [
                { "name": "v1alpha1", "served": true, "referenceable": false,
                  "deprecated": true, "deprecationWarning": "use v1" },
                { "name": "v1", "served": true, "referenceable": true,
                  "additionalPrinterColumns": [
                      { "name": "SIZE", "type": "string", "jsonPath": ".spec.parameters.size" }
                  ],
                  "schema": { "openAPIV3Schema": {
                      "type": "object",
                      "description": "A PostgreSQL database.",
                      "properties": {
                          "spec": {
                              "type": "object",
                              "required": ["parameters"],
                              "properties": {
                                  "parameters": {
                                      "type": "object",
                                      "properties": { "size": { "type": "string", "enum": ["small", "large"] } },
                                  },
                                  // An XRD that declares an engine field gets the engine's.
                                  "compositionRef": { "type": "string" },
                              },
                          },
                          "status": {
                              "type": "object",
                              "properties": { "endpoint": { "type": "string" } },
                          },
                      },
                  } } },
            ],
        },
    })
}

fn json_of(crd: &CustomResourceDefinition) -> Value {
    serde_json::to_value(crd).expect("CRD serialises")
}

fn schema_of<'a>(crd: &'a Value, version: &str) -> &'a Value {
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    let v = versions
        .iter()
        .find(|v| v["name"] == version)
        .expect("version present");
    &v["schema"]["openAPIV3Schema"]
}

fn column_names(crd: &Value, version: &str) -> Vec<String> {
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    let v = versions
        .iter()
        .find(|v| v["name"] == version)
        .expect("version");
    v["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn composite_crd_is_cluster_scoped_with_engine_fields_merged_into_the_xrd_schema() {
    let crd = composite_crd(&xrd(postgres_xrd())).expect("valid XRD");
    assert_structural(&crd);
    let j = json_of(&crd);
    assert_eq!(
        j["metadata"]["name"],
        "xpostgresdatabases.platform.example.org"
    );
    assert_eq!(j["metadata"]["labels"][LABEL_XRD_CRD], "composite");
    assert_eq!(
        j["metadata"]["annotations"][ANNOTATION_XRD],
        "xpostgresdatabases.platform.example.org"
    );
    assert!(
        j["metadata"].get("ownerReferences").is_none(),
        "no owner reference: foreground deletion of the XRD must not cascade"
    );
    assert_eq!(j["spec"]["scope"], "Cluster");
    assert_eq!(
        j["spec"]["names"]["categories"],
        json!(["composite", "databases"])
    );
    assert_eq!(j["spec"]["names"]["singular"], "xpostgresdatabase");
    assert_eq!(j["spec"]["names"]["listKind"], "XPostgresDatabaseList");

    let schema = schema_of(&j, "v1");
    assert_eq!(
        schema["description"], "A PostgreSQL database.",
        "XRD text kept"
    );
    assert_eq!(schema["required"], json!(["spec"]));
    let spec = &schema["properties"]["spec"];
    assert_eq!(
        spec["required"],
        json!(["parameters"]),
        "XRD's required kept"
    );
    assert_eq!(
        spec["properties"]["parameters"]["properties"]["size"]["enum"],
        json!(["small", "large"])
    );
    for field in [
        "compositionRef",
        "compositionSelector",
        "compositionRevisionRef",
        "compositionUpdatePolicy",
        "writeConnectionSecretToRef",
        "resourceRefs",
        "claimRef",
    ] {
        assert!(
            spec["properties"].get(field).is_some(),
            "spec.{field} missing"
        );
    }
    assert_eq!(
        spec["properties"]["compositionRef"]["type"], "object",
        "the engine's compositionRef replaces the XRD's"
    );
    assert_eq!(
        spec["properties"]["writeConnectionSecretToRef"]["required"],
        json!(["name", "namespace"])
    );
    assert_eq!(
        spec["properties"]["compositionUpdatePolicy"]["enum"],
        json!(["Automatic", "Manual"])
    );
    assert_eq!(
        spec["properties"]["claimRef"]["required"],
        json!(["apiVersion", "kind", "name", "namespace"])
    );
    let status = &schema["properties"]["status"];
    assert_eq!(
        status["properties"]["endpoint"]["type"], "string",
        "XRD status kept"
    );
    assert_eq!(status["properties"]["conditions"]["type"], "array");
    assert_eq!(
        status["properties"]["connectionDetails"]["properties"]["lastPublishedTime"]["type"],
        "string"
    );
    assert!(status["properties"].get("resourceRef").is_none());
    for field in [
        "compositionRef",
        "compositionSelector",
        "claimRef",
        "resourceRefs",
    ] {
        assert_every_property_documented(&spec["properties"][field], field);
    }
    assert_every_property_documented(&status["properties"]["conditions"], "conditions");
}

#[test]
fn claim_crd_is_namespaced_and_its_secret_reference_has_no_namespace() {
    let crd = claim_crd(&xrd(postgres_xrd()))
        .expect("valid XRD")
        .expect("claim offered");
    assert_structural(&crd);
    let j = json_of(&crd);
    assert_eq!(
        j["metadata"]["name"],
        "postgresdatabases.platform.example.org"
    );
    assert_eq!(j["metadata"]["labels"][LABEL_XRD_CRD], "claim");
    assert_eq!(j["spec"]["scope"], "Namespaced");
    assert_eq!(j["spec"]["names"]["kind"], "PostgresDatabase");
    assert_eq!(j["spec"]["names"]["shortNames"], json!(["pgdb"]));
    assert_eq!(
        j["spec"]["names"]["categories"],
        json!(["claim", "databases"]),
        "claim category once, then the XRD's own"
    );
    let schema = schema_of(&j, "v1");
    let spec = &schema["properties"]["spec"]["properties"];
    let secret = &spec["writeConnectionSecretToRef"];
    assert_eq!(secret["required"], json!(["name"]));
    assert!(
        secret["properties"].get("namespace").is_none(),
        "a claim can never write into another namespace"
    );
    for absent in ["claimRef", "resourceRefs"] {
        assert!(spec.get(absent).is_none(), "claim spec has no {absent}");
    }
    for present in [
        "compositionRef",
        "compositionSelector",
        "compositionRevisionRef",
        "compositionUpdatePolicy",
    ] {
        assert!(spec.get(present).is_some(), "claim spec has {present}");
    }
    let status = &schema["properties"]["status"]["properties"];
    assert_eq!(
        status["resourceRef"]["required"],
        json!(["apiVersion", "kind", "name"])
    );
    assert!(status.get("connectionDetails").is_none());
}

#[test]
fn every_version_is_served_with_status_and_only_the_referenceable_one_is_stored() {
    let j = json_of(&composite_crd(&xrd(postgres_xrd())).expect("valid"));
    let versions = j["spec"]["versions"].as_array().expect("versions");
    let summary: Vec<(String, bool, bool)> = versions
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap_or_default().to_string(),
                v["served"] == true,
                v["storage"] == true,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![("v1alpha1".into(), true, false), ("v1".into(), true, true)]
    );
    for v in versions {
        assert_eq!(v["subresources"]["status"], json!({}), "{}", v["name"]);
    }
    assert_eq!(versions[0]["deprecated"], true);
    assert_eq!(versions[0]["deprecationWarning"], "use v1");
    let old = &versions[0]["schema"]["openAPIV3Schema"];
    assert!(
        old["properties"]["spec"]["properties"]
            .get("compositionRef")
            .is_some(),
        "a version without schema still gets the engine's fields"
    );
}

#[test]
fn printer_columns_put_the_engines_first_the_xrds_next_and_age_last() {
    let x = xrd(postgres_xrd());
    let composite = json_of(&composite_crd(&x).expect("valid"));
    let claim = json_of(&claim_crd(&x).expect("valid").expect("claim"));
    let cases = [
        (
            "composite, v1",
            &composite,
            "v1",
            vec!["SYNCED", "READY", "COMPOSITION", "SIZE", "AGE"],
        ),
        (
            "composite, v1alpha1",
            &composite,
            "v1alpha1",
            vec!["SYNCED", "READY", "COMPOSITION", "AGE"],
        ),
        (
            "claim, v1",
            &claim,
            "v1",
            vec!["SYNCED", "READY", "CONNECTION-SECRET", "SIZE", "AGE"],
        ),
    ];
    for (reason, crd, version, want) in cases {
        assert_eq!(column_names(crd, version), want, "{reason}");
    }
    let columns = &claim["spec"]["versions"][1]["additionalPrinterColumns"];
    assert_eq!(
        columns[2]["jsonPath"],
        ".spec.writeConnectionSecretToRef.name"
    );
    assert_eq!(
        columns[0]["jsonPath"],
        ".status.conditions[?(@.type=='Synced')].status"
    );
    assert_eq!(columns[4]["type"], "date");
}

#[test]
fn xrd_without_claim_names_offers_no_claim() {
    let mut v = postgres_xrd();
    v["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("claimNames");
    assert_eq!(claim_crd(&xrd(v)).expect("valid"), None);
}

#[test]
fn invalid_xrds_are_rejected_with_messages_that_say_what_to_fix() {
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "name must be plural.group",
            |v| v["metadata"]["name"] = json!("databases.platform.example.org"),
            "metadata.name must be xpostgresdatabases.platform.example.org (<names.plural>.<group>), not databases.platform.example.org",
        ),
        (
            "group needs a dot",
            |v| {
                v["spec"]["group"] = json!("platform");
                v["metadata"]["name"] = json!("xpostgresdatabases.platform");
            },
            "spec.group \"platform\" is not a valid API group",
        ),
        (
            "group is lower-case",
            |v| v["spec"]["group"] = json!("Platform.example.org"),
            "spec.group \"Platform.example.org\" is not a valid API group",
        ),
        (
            "plural is lower-case",
            |v| v["spec"]["names"]["plural"] = json!("XPostgresDatabases"),
            "spec.names.plural \"XPostgresDatabases\" is invalid: use lower-case letters",
        ),
        (
            "claim plural is lower-case",
            |v| v["spec"]["claimNames"]["plural"] = json!("Pgdbs"),
            "spec.claimNames.plural \"Pgdbs\" is invalid",
        ),
        (
            "kind is CamelCase",
            |v| v["spec"]["names"]["kind"] = json!("xpostgres-database"),
            "spec.names.kind \"xpostgres-database\" is invalid: use CamelCase",
        ),
        (
            "claim and composite kinds differ",
            |v| v["spec"]["claimNames"]["kind"] = json!("XPostgresDatabase"),
            "spec.claimNames.kind must differ from spec.names.kind",
        ),
        (
            "no version is referenceable",
            |v| v["spec"]["versions"][1]["referenceable"] = json!(false),
            "exactly one version must be referenceable, but 0 are",
        ),
        (
            "two versions are referenceable",
            |v| v["spec"]["versions"][0]["referenceable"] = json!(true),
            "exactly one version must be referenceable, but 2 are",
        ),
        (
            "no versions at all",
            |v| v["spec"]["versions"] = json!([]),
            "exactly one version must be referenceable, but 0 are",
        ),
        (
            "nothing is served",
            |v| {
                v["spec"]["versions"][0]["served"] = json!(false);
                v["spec"]["versions"][1]["served"] = json!(false);
            },
            "no version is served",
        ),
        (
            "version names are unique",
            |v| v["spec"]["versions"][0]["name"] = json!("v1"),
            "version \"v1\" is invalid: it is declared more than once",
        ),
        (
            "version names are DNS labels",
            |v| v["spec"]["versions"][0]["name"] = json!("V1"),
            "version \"V1\" is invalid",
        ),
        (
            "schema root is an object",
            |v| v["spec"]["versions"][1]["schema"]["openAPIV3Schema"] = json!({ "type": "string" }),
            "version v1: openAPIV3Schema must have type: object at its root",
        ),
        (
            "spec is an object",
            |v| {
                v["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
                    json!({ "type": "array" })
            },
            "version v1: openAPIV3Schema declares spec that is not of type: object",
        ),
        (
            "a dockerconfigjson Secret needs its key among the connection keys",
            |v| {
                v["spec"]["connectionSecretType"] = json!("kubernetes.io/dockerconfigjson");
                v["spec"]["connectionSecretKeys"] = json!(["username", "password"]);
            },
            "spec.connectionSecretType: a kubernetes.io/dockerconfigjson Secret needs the key \".dockerconfigjson\": add it to spec.connectionSecretKeys",
        ),
        (
            "a connection Secret cannot be a service account token",
            |v| v["spec"]["connectionSecretType"] = json!("kubernetes.io/service-account-token"),
            "spec.connectionSecretType: \"kubernetes.io/service-account-token\" Secrets are filled in by Kubernetes",
        ),
    ];
    for (reason, edit, want) in cases {
        let mut v = postgres_xrd();
        edit(&mut v);
        let err = composite_crd(&xrd(v)).expect_err(reason).to_string();
        assert!(
            err.starts_with(want),
            "{reason}: got {err:?}, want {want:?}"
        );
    }
}

#[test]
fn minimal_xrd_without_schema_gets_an_object_spec_with_the_engine_fields() {
    let x = xrd(json!({
        "apiVersion": "apiextensions.tessera.dev/v1",
        "kind": "CompositeResourceDefinition",
        "metadata": { "name": "xthings.example.org" },
        "spec": {
            "group": "example.org",
            "names": { "kind": "XThing", "plural": "xthings" },
            "versions": [{ "name": "v1", "served": true, "referenceable": true }],
        },
    }));
    let crd = composite_crd(&x).expect("valid");
    assert_structural(&crd);
    let j = json_of(&crd);
    let spec = &schema_of(&j, "v1")["properties"]["spec"];
    assert_eq!(spec["type"], "object");
    assert!(spec["properties"].get("compositionSelector").is_some());
    assert_eq!(j["spec"]["names"]["categories"], json!(["composite"]));
    assert!(j["spec"]["names"].get("shortNames").is_none());
}

#[test]
fn a_connection_secret_type_with_its_keys_is_accepted() {
    for keys in [json!([".dockerconfigjson", "username"]), json!([])] {
        let mut v = postgres_xrd();
        v["spec"]["connectionSecretType"] = json!("kubernetes.io/dockerconfigjson");
        v["spec"]["connectionSecretKeys"] = keys.clone();
        assert!(composite_crd(&xrd(v)).is_ok(), "keys {keys}");
    }
}
