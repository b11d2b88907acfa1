//! The engine's CRDs against the real kube-apiserver of testenv.

use kube::api::{DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::ApiResource;
use kube::{Api, ResourceExt};
use serde_json::json;
use tessera_engine::api::composition::Composition;
use tessera_engine::api::xrd::CompositeResourceDefinition;
use tessera_tests::{TestEnv, install_crds, unique};

#[tokio::test]
async fn all_crds_install_and_become_established() {
    let env = TestEnv::load();
    let client = env.kube().await;
    let names = install_crds(&client).await.expect("install CRDs");
    for expected in [
        "compositeresourcedefinitions.apiextensions.tessera.dev",
        "compositions.apiextensions.tessera.dev",
        "compositionrevisions.apiextensions.tessera.dev",
        "roles.postgresql.sql.tessera.dev",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
}

#[tokio::test]
async fn composition_and_xrd_round_trip_through_the_api_server() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");

    let comp_name = unique("comp");
    let comp: Composition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.tessera.dev/v1",
        "kind": "Composition",
        "metadata": { "name": comp_name },
        "spec": {
            "compositeTypeRef": { "apiVersion": "platform.tessera.dev/v1alpha1", "kind": "XPostgresDatabase" },
            "writeConnectionSecretsToNamespace": "tessera-system",
            "resources": [{
                "name": "role",
                "base": {
                    "apiVersion": "postgresql.sql.tessera.dev/v1alpha1",
                    "kind": "Role",
                    "spec": { "forProvider": { "privileges": { "login": true } } }
                },
                "patches": [
                    { "fromFieldPath": "metadata.annotations[example.org/owner]",
                      "toFieldPath": "metadata.labels[example.org/owner]" },
                    { "type": "FromCompositeFieldPath", "fromFieldPath": "spec.size",
                      "toFieldPath": "spec.forProvider.connectionLimit",
                      "transforms": [{ "type": "math", "math": { "type": "Multiply", "multiply": 10 } }],
                      "policy": { "fromFieldPath": "Required" } }
                ],
                "connectionDetails": [
                    { "name": "url", "type": "Format",
                      "fmt": "postgres://{username}:{password}@{endpoint}:{port}/app" }
                ],
                "readinessChecks": [{ "type": "MatchCondition",
                    "matchCondition": { "type": "Ready", "status": "True" } }]
            }]
        }
    }))
    .expect("composition JSON matches the Composition type");
    let comps: Api<Composition> = Api::all(client.clone());
    comps
        .create(&PostParams::default(), &comp)
        .await
        .expect("create Composition");
    let back = comps.get(&comp_name).await.expect("read Composition back");
    assert_eq!(back.spec.resources.len(), 1);
    assert_eq!(back.spec.resources[0].name, "role");
    assert_eq!(back.spec.resources[0].patches.len(), 2);
    assert_eq!(
        serde_json::to_value(&back.spec).unwrap()["resources"][0]["patches"][1]["transforms"][0]["math"]
            ["multiply"],
        json!(10)
    );

    let xrd_name = format!("{}.platform.tessera.dev", unique("xthings"));
    let plural = xrd_name.split('.').next().unwrap().to_string();
    let xrd: CompositeResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.tessera.dev/v1",
        "kind": "CompositeResourceDefinition",
        "metadata": { "name": xrd_name },
        "spec": {
            "group": "platform.tessera.dev",
            "names": { "kind": "XThing", "plural": plural },
            "claimNames": { "kind": "Thing", "plural": format!("{plural}-claims") },
            "connectionSecretKeys": ["host", "password"],
            "versions": [{
                "name": "v1alpha1", "served": true, "referenceable": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": { "type": "object",
                        "properties": { "size": { "type": "integer" } } } }
                } }
            }]
        }
    }))
    .expect("XRD JSON matches the XRD type");
    let xrds: Api<CompositeResourceDefinition> = Api::all(client.clone());
    xrds.create(&PostParams::default(), &xrd)
        .await
        .expect("create XRD");
    let back = xrds.get(&xrd_name).await.expect("read XRD back");
    assert_eq!(back.spec.group, "platform.tessera.dev");
    assert_eq!(back.spec.connection_secret_keys, vec!["host", "password"]);
    let schema = &back.spec.versions[0].schema;
    assert!(
        serde_json::to_string(schema).unwrap().contains("\"size\""),
        "free-form openAPIV3Schema must survive the round trip: {schema:?}"
    );

    comps
        .delete(&comp_name, &Default::default())
        .await
        .expect("delete");
    xrds.delete(&xrd_name, &Default::default())
        .await
        .expect("delete");
}

#[tokio::test]
async fn api_server_rejects_a_composition_with_a_wrongly_typed_required_field() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let gvk = GroupVersionKind::gvk("apiextensions.tessera.dev", "v1", "Composition");
    let api: Api<DynamicObject> = Api::all_with(client, &ApiResource::from_gvk(&gvk));
    let name = unique("bad-comp");
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiextensions.tessera.dev/v1",
        "kind": "Composition",
        "metadata": { "name": name },
        // resources[].name is required and must be a string
        "spec": {
            "compositeTypeRef": { "apiVersion": "platform.tessera.dev/v1alpha1", "kind": "XThing" },
            "resources": [{ "name": 42, "base": {} }]
        }
    }))
    .unwrap();
    let err = api
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("the API server must reject a number where a string is required");
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err}");
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status.message.contains("spec.resources[0].name") && status.message.contains("string"),
        "message should name the field and the expected type: {}",
        status.message
    );
    // Nothing was stored.
    assert!(api.get_opt(&name).await.unwrap().is_none());
}

#[tokio::test]
async fn cluster_reports_kubernetes_1_36() {
    let env = TestEnv::load();
    let client = env.kube().await;
    let v = client.apiserver_version().await.expect("version");
    assert_eq!(v.major, "1");
    assert!(v.git_version.starts_with("v1.36."), "{}", v.git_version);
    // The controller-manager runs: every namespace gets its default ServiceAccount.
    let ns = tessera_tests::namespace(&client, &unique("sa-check")).await;
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client, &ns);
    tessera_tests::wait_for(std::time::Duration::from_secs(60), || async {
        sas.get_opt("default")
            .await
            .ok()
            .flatten()
            .map(|sa| sa.name_any())
    })
    .await
    .expect("kube-controller-manager creates the default ServiceAccount");
}
