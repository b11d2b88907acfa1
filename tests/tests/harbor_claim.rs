//! The developer's path end to end with the shipped HarborProject compositions
//! (compositions/harbor): a claim becomes a Harbor project and a pull robot, and its
//! Secret in the claim's namespace is a kubernetes.io/dockerconfigjson Secret whose
//! credentials Harbor's token service accepts; the CI composition adds a push robot. Against
//! testenv's simulator of Harbor's API, or a real Harbor when `TESSERA_HARBOR_URL`,
//! `TESSERA_HARBOR_USERNAME` and `TESSERA_HARBOR_PASSWORD` are set.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::{Value, json};
use tessera_tests::{
    HarborTarget, TestEnv, apply, delete_in, harbor_authenticates, install_crds,
    install_harbor_platform, namespace, secret_data, start_composition_controllers_in_process,
    start_harbor_controller_in_process, unique, wait_for, wait_gone_in, wait_object_in, yaml_docs,
};

const CLAIM_API: &str = "platform.tessera.dev/v1alpha1";

/// The cluster with the controllers running and the HarborProject platform installed.
async fn platform() -> (kube::Client, HarborTarget) {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_harbor_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    let target = install_harbor_platform(&env, &client).await;
    (client, target)
}

fn claim(ns: &str, name: &str, composition: Option<&str>) -> Value {
    let mut c = yaml_docs("compositions/harbor/example-claim.yaml").remove(0);
    c["metadata"]["namespace"] = json!(ns);
    c["metadata"]["name"] = json!(name);
    c["spec"]["writeConnectionSecretToRef"]["name"] = json!(format!("{name}-pull"));
    if let Some(comp) = composition {
        c["spec"]["compositionRef"] = json!({ "name": comp });
    }
    c
}

/// The claim's Secret once it holds `keys`, with its type.
async fn claim_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    keys: &[&str],
    not_password: Option<&str>,
) -> (String, HashMap<String, String>) {
    wait_for(Duration::from_secs(120), || async {
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        let s = api.get_opt(name).await.ok()??;
        let data = secret_data(client, ns, name).await?;
        let complete = keys.iter().all(|k| data.contains_key(*k))
            && not_password.is_none_or(|old| data["password"] != old);
        complete.then(|| (s.type_.unwrap_or_default(), data))
    })
    .await
    .unwrap_or_else(|e| panic!("Secret {ns}/{name}: {e}"))
}

/// The composite's name, recorded in the claim's status.
async fn composite_of(client: &kube::Client, ns: &str, name: &str) -> String {
    let c = wait_object_in(client, CLAIM_API, "HarborProject", ns, name, "bound", |o| {
        o.data["status"]["resourceRef"]["name"].is_string()
    })
    .await;
    c.data["status"]["resourceRef"]["name"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_harbor_project_claim_yields_a_working_pull_secret_restored_when_lost() {
    let (client, target) = platform().await;
    let ns = namespace(&client, &unique("hproj")).await;
    let name = "orders-registry";
    apply(&client, claim(&ns, name, None)).await;
    let secret_name = format!("{name}-pull");
    let (kind, data) = claim_secret(
        &client,
        &ns,
        &secret_name,
        &[".dockerconfigjson", "username", "password"],
        None,
    )
    .await;
    assert_eq!(kind, "kubernetes.io/dockerconfigjson");
    let xr = composite_of(&client, &ns, name).await;
    assert_eq!(data["username"], format!("robot${xr}+pull"));
    let config: Value = serde_json::from_str(&data[".dockerconfigjson"]).expect("JSON");
    let host = target
        .url
        .split("://")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    assert_eq!(config["auths"][host]["password"], data["password"].as_str());
    assert!(harbor_authenticates(&target, &data["username"], &data["password"]).await);
    assert!(
        target.get(&format!("/projects/{xr}")).await.is_some(),
        "the project is named after the composite"
    );
    wait_object_in(
        &client,
        CLAIM_API,
        "HarborProject",
        &ns,
        name,
        "Ready",
        |o| tessera_tests::condition(o, "Ready").is_some_and(|c| c.status == "True"),
    )
    .await;
    let first = data["password"].clone();

    // The claim's Secret deleted: written again from the robot's connection Secret, with
    // the same (still valid) credentials.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .delete(&secret_name, &Default::default())
        .await
        .expect("delete");
    let (kind, data) = claim_secret(&client, &ns, &secret_name, &["password"], None).await;
    assert_eq!(kind, "kubernetes.io/dockerconfigjson");
    assert_eq!(data["password"], first);

    // The robot's own connection Secret (the only copy of its secret) deleted: the robot's
    // secret is refreshed in Harbor, the claim's Secret gets the new one, and the old one no
    // longer works.
    let robot_secrets: Api<Secret> = Api::namespaced(client.clone(), "tessera-system");
    robot_secrets
        .delete(&format!("{xr}-pull-robot"), &Default::default())
        .await
        .expect("delete the robot's connection Secret");
    let (_, data) = claim_secret(&client, &ns, &secret_name, &["password"], Some(&first)).await;
    assert!(harbor_authenticates(&target, &data["username"], &data["password"]).await);
    assert!(
        !harbor_authenticates(&target, &data["username"], &first).await,
        "the lost secret no longer authenticates"
    );

    delete_in(&client, CLAIM_API, "HarborProject", &ns, name).await;
    wait_gone_in(&client, CLAIM_API, "HarborProject", &ns, name).await;
    wait_for(Duration::from_secs(60), || async {
        target
            .get(&format!("/projects/{xr}"))
            .await
            .is_none()
            .then_some(())
    })
    .await
    .expect("deleting the claim deletes the project");
}

#[tokio::test]
async fn the_ci_composition_adds_a_push_robot() {
    let (client, target) = platform().await;
    let ns = namespace(&client, &unique("hproj-ci")).await;
    let name = "shop-images";
    apply(&client, claim(&ns, name, Some("harbor-project-ci"))).await;
    let (kind, data) = claim_secret(
        &client,
        &ns,
        &format!("{name}-pull"),
        &[
            ".dockerconfigjson",
            "username",
            "password",
            "push-username",
            "push-password",
        ],
        None,
    )
    .await;
    assert_eq!(kind, "kubernetes.io/dockerconfigjson");
    let xr = composite_of(&client, &ns, name).await;
    assert_eq!(data["push-username"], format!("robot${xr}+push"));
    assert!(harbor_authenticates(&target, &data["push-username"], &data["push-password"]).await);
    assert!(harbor_authenticates(&target, &data["username"], &data["password"]).await);

    delete_in(&client, CLAIM_API, "HarborProject", &ns, name).await;
    wait_gone_in(&client, CLAIM_API, "HarborProject", &ns, name).await;
}
