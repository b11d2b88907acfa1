//! Fixtures of the composite tests: the XRD and its generated CRD, the controllers, and
//! Compositions of PostgreSQL Roles, Databases and Grants.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tessera_engine::api::xrd::CompositeResourceDefinition;
use tessera_tests::{
    PG_API, TEST_NAMESPACE, TestEnv, get, install_crds, pg_provider_config,
    start_composite_controller_in_process, start_controller_in_process, wait_crd_established,
};

/// apiVersion of the composite kind of this binary.
pub const XR_API: &str = "composite.tests.tessera.dev/v1alpha1";
/// The composite kind of this binary.
pub const XR_KIND: &str = "XTestDatabase";
/// apiVersion of the engine's own kinds.
pub const COMP_API: &str = "apiextensions.tessera.dev/v1";
/// The ProviderConfig every composition of this binary uses.
pub const PC: &str = "composite-tests";

/// The XRD of the composite kind of this binary: `spec.parameters` and the status field
/// the compositions patch back.
pub fn xrd() -> CompositeResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": COMP_API, "kind": "CompositeResourceDefinition",
        "metadata": {"name": "xtestdatabases.composite.tests.tessera.dev"},
        "spec": {
            "group": "composite.tests.tessera.dev",
            "names": {"kind": XR_KIND, "plural": "xtestdatabases"},
            "connectionSecretKeys": ["username", "password", "endpoint", "port", "database", "url"],
            "versions": [{
                "name": "v1alpha1", "served": true, "referenceable": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"parameters": {
                        "type": "object",
                        "properties": {
                            "connectionLimit": {"type": "integer"},
                            "size": {"type": "string"},
                            "name": {"type": "string"},
                        },
                    }}},
                    "status": {"type": "object", "properties": {
                        "roleConnectionLimit": {"type": "integer"},
                    }},
                }}},
            }],
        },
    }))
    .expect("XRD")
}

/// Installs the CRDs (the engine's, PostgreSQL's and the composite's), a ProviderConfig,
/// and starts the managed, composite and revision controllers (once per binary).
pub async fn setup() -> (TestEnv, kube::Client) {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    // The composite CRD as the XRD controller generates it (that controller is not run
    // here: the composite controller is started directly).
    let crd = tessera_engine::xrd::composite_crd(&xrd()).expect("composite CRD");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        &crd.name_any(),
        &PatchParams::apply("tessera-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply composite CRD");
    wait_crd_established(&client, &crd.name_any())
        .await
        .expect("composite CRD established");
    pg_provider_config(&env, &client, PC, env.get("POSTGRES_PASSWORD")).await;
    start_controller_in_process(&env);
    start_composite_controller_in_process(&env, xrd());
    (env, client)
}

/// A `string` transform of type Format.
pub fn format(fmt: &str) -> Value {
    json!([{"type": "string", "string": {"type": "Format", "fmt": fmt}}])
}

/// A Role whose connection Secret is read back, with a ready `url`.
pub fn role_template() -> Value {
    json!({
        "name": "role",
        "base": {"apiVersion": PG_API, "kind": "Role", "spec": {
            "providerConfigRef": {"name": PC},
            "forProvider": {"privileges": {"login": true}},
            "writeConnectionSecretToRef": {"namespace": TEST_NAMESPACE},
        }},
        "patches": [
            {"fromFieldPath": "metadata.uid", "toFieldPath": "spec.writeConnectionSecretToRef.name",
             "transforms": format("%s-role")},
            {"fromFieldPath": "spec.parameters.connectionLimit", "toFieldPath": "spec.forProvider.connectionLimit"},
            {"type": "ToCompositeFieldPath", "fromFieldPath": "status.atProvider.connectionLimit",
             "toFieldPath": "status.roleConnectionLimit"},
        ],
        "connectionDetails": [
            {"fromConnectionSecretKey": "username"},
            {"fromConnectionSecretKey": "password"},
            {"fromConnectionSecretKey": "endpoint"},
            {"fromConnectionSecretKey": "port"},
            {"name": "database", "fromFieldPath": "metadata.labels[tessera.dev/composite]"},
            {"name": "url", "fmt": "postgres://{username}:{password}@{endpoint}:{port}/{database}"},
        ],
    })
}

/// A Database named like the composite, owned by its role; created after the role.
pub fn database_template() -> Value {
    json!({
        "name": "database",
        "dependsOn": ["role"],
        "base": {"apiVersion": PG_API, "kind": "Database", "spec": {"providerConfigRef": {"name": PC}}},
        "patches": [
            {"fromFieldPath": "metadata.name", "toFieldPath": "metadata.annotations[tessera.dev/external-name]"},
            {"fromFieldPath": "metadata.name", "toFieldPath": "spec.forProvider.owner", "transforms": format("%s-role")},
        ],
    })
}

/// A Grant of CONNECT and CREATE on the database to the role; created after both.
pub fn grant_template() -> Value {
    json!({
        "name": "grant",
        "dependsOn": ["role", "database"],
        "base": {"apiVersion": PG_API, "kind": "Grant", "spec": {
            "providerConfigRef": {"name": PC},
            "forProvider": {"privileges": ["CONNECT", "CREATE"]},
        }},
        "patches": [
            {"fromFieldPath": "metadata.name", "toFieldPath": "spec.forProvider.role", "transforms": format("%s-role")},
            {"fromFieldPath": "metadata.name", "toFieldPath": "spec.forProvider.database"},
        ],
    })
}

/// A Role without login (no password, no Secret): quick to compose.
pub fn plain_role(name: &str, limit: i64) -> Value {
    json!({
        "name": name,
        "base": {"apiVersion": PG_API, "kind": "Role", "spec": {
            "providerConfigRef": {"name": PC},
            "forProvider": {"connectionLimit": limit},
        }},
    })
}

/// A Composition of the composite kind of this binary.
pub fn composition(name: &str, resources: Vec<Value>) -> Value {
    json!({
        "apiVersion": COMP_API, "kind": "Composition",
        "metadata": {"name": name},
        "spec": {
            "compositeTypeRef": {"apiVersion": XR_API, "kind": XR_KIND},
            "resources": resources,
        },
    })
}

/// A composite of the kind of this binary.
pub fn xr(name: &str, spec: Value) -> Value {
    json!({"apiVersion": XR_API, "kind": XR_KIND, "metadata": {"name": name}, "spec": spec})
}

/// Reads a composite that must exist.
pub async fn get_xr(client: &kube::Client, name: &str) -> DynamicObject {
    get(client, XR_API, XR_KIND, name)
        .await
        .expect("composite exists")
}

/// A string field of an object.
pub fn str_at<'a>(o: &'a DynamicObject, pointer: &str) -> Option<&'a str> {
    o.data.pointer(pointer).and_then(Value::as_str)
}

/// An RFC 3339 time the runtime wrote (annotations and condition transition times carry
/// microseconds, so two of them order events that happen within one second).
pub fn precise_time(s: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    serde_json::from_value(json!(s)).unwrap_or_else(|e| panic!("RFC 3339 time {s:?}: {e}"))
}

/// When a composed resource became Ready, and when its external create was started, as
/// the managed runtime recorded them; asserts that its create never failed (a failed
/// attempt, e.g. one made before a dependency existed, would be retried later and hide an
/// early start).
pub fn ready_and_create_started(
    o: &DynamicObject,
) -> (
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) {
    let name = o.name_any();
    let ready = tessera_tests::condition(o, "Ready")
        .filter(|c| c.is_true())
        .and_then(|c| c.last_transition_time)
        .unwrap_or_else(|| panic!("{name} is not Ready"));
    let annotations = o.annotations();
    assert!(
        !annotations.contains_key("tessera.dev/external-create-failed"),
        "{name}: an external create failed: {annotations:?}"
    );
    let pending = annotations
        .get("tessera.dev/external-create-pending")
        .unwrap_or_else(|| panic!("{name} has no create-pending annotation: {annotations:?}"));
    (precise_time(&ready), precise_time(pending))
}
