//! What an application developer can and cannot do, as testenv's unprivileged `developer`
//! user (`$TESSERA_TESTENV_DIR/kubeconfig-developer`), granted by a namespace Role what a
//! platform would grant: claims, and reading events. The developer cannot read the Secrets
//! Tessera writes, nor create Compositions; and what the controllers write where the
//! developer can read it (the claim's conditions, events) never carries a Secret's value.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::discovery::ApiResource;
use kube::{Api, Client};
use serde_json::{Value, json};
use tessera_tests::{
    PG_API, TEST_NAMESPACE, TestEnv, apply, condition, delete, delete_in, events_about, get,
    get_in, install_crds, install_postgres_platform, namespace, secret_data,
    start_composition_controllers_in_process, start_controller_in_process, unique,
    wait_crd_established, wait_for, wait_object_in, yaml_docs,
};

const CLAIM_API: &str = "platform.tessera.dev/v1alpha1";
const CLAIM_KIND: &str = "PostgresDatabase";

/// Lets the user `developer` manage claims and read events in `ns`, as a platform team
/// would, and nothing else.
async fn grant_developer(client: &Client, ns: &str) {
    apply(
        client,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": { "name": "developer", "namespace": ns },
            "rules": [
                { "apiGroups": ["platform.tessera.dev"], "resources": ["postgresdatabases"],
                  "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"] },
                { "apiGroups": ["", "events.k8s.io"], "resources": ["events"],
                  "verbs": ["get", "list", "watch"] },
            ],
        }),
    )
    .await;
    apply(
        client,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": { "name": "developer", "namespace": ns },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "developer" },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "developer" }],
        }),
    )
    .await;
}

fn claim(ns: &str, name: &str) -> Value {
    let mut c = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
    c["metadata"]["namespace"] = json!(ns);
    c["metadata"]["name"] = json!(name);
    c["spec"]["writeConnectionSecretToRef"]["name"] = json!(format!("{name}-conn"));
    c
}

/// Replaces every `providerConfigRef` in a JSON value.
fn set_provider_config(v: &mut Value, name: &str) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "providerConfigRef" {
                    *child = json!({ "name": name });
                } else {
                    set_provider_config(child, name);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| set_provider_config(i, name)),
        _ => {}
    }
}

fn is_forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> bool {
    match r {
        Err(kube::Error::Api(s)) => s.code == 403,
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn a_developer_cannot_read_claim_secrets_or_create_compositions_and_errors_leak_no_secret_values()
 {
    let env = TestEnv::load();
    let admin = env.kube().await;
    install_crds(&admin).await.expect("install CRDs");
    install_postgres_platform(&env, &admin).await;
    start_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    wait_crd_established(&admin, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD offers the PostgresDatabase claim");

    // A second Composition of the same type, on a ProviderConfig whose admin password is
    // wrong: claims that choose it fail, reading a Secret whose value must never show.
    let canary = format!("canary-{}", unique("pw"));
    let bad_pc = unique("wrongpw");
    namespace(&admin, TEST_NAMESPACE).await;
    apply(
        &admin,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": &bad_pc, "namespace": TEST_NAMESPACE },
            "stringData": {
                "endpoint": env.get("POSTGRES_HOST"), "port": env.get("POSTGRES_PORT"),
                "username": env.get("POSTGRES_USER"), "password": &canary,
            }
        }),
    )
    .await;
    apply(
        &admin,
        json!({
            "apiVersion": PG_API, "kind": "ProviderConfig", "metadata": { "name": &bad_pc },
            "spec": { "credentials": { "source": "Secret",
                "secretRef": { "name": &bad_pc, "namespace": TEST_NAMESPACE } },
                "sslMode": "disable" }
        }),
    )
    .await;
    let mut bad_comp = yaml_docs("compositions/postgres/composition.yaml").remove(0);
    bad_comp["metadata"]["name"] = json!(&bad_pc);
    set_provider_config(&mut bad_comp["spec"], &bad_pc);
    apply(&admin, bad_comp).await;

    let ns = namespace(&admin, &unique("dev")).await;
    grant_developer(&admin, &ns).await;
    let dev = env.kube_from(env.get("KUBECONFIG_DEVELOPER")).await;

    // The developer creates both claims: one that works, one on the broken composition.
    apply(&dev, claim(&ns, "works")).await;
    let mut failing = claim(&ns, "fails");
    failing["spec"]["compositionRef"] = json!({ "name": &bad_pc });
    apply(&dev, failing).await;

    wait_object_in(&dev, CLAIM_API, CLAIM_KIND, &ns, "works", "Ready", |o| {
        condition(o, "Ready").is_some_and(|c| c.is_true())
    })
    .await;
    let secret = secret_data(&admin, &ns, "works-conn")
        .await
        .expect("the working claim's connection Secret");

    // Without rights, a developer reads no Secret, lists none, and creates no Composition.
    let dev_secrets: Api<Secret> = Api::namespaced(dev.clone(), &ns);
    assert!(
        is_forbidden(dev_secrets.get("works-conn").await),
        "reading the claim's Secret"
    );
    assert!(
        is_forbidden(dev_secrets.list(&ListParams::default()).await),
        "listing Secrets"
    );
    let compositions: Api<DynamicObject> = Api::all_with(
        dev.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "apiextensions.tessera.dev",
            "v1",
            "Composition",
        )),
    );
    let mut own = yaml_docs("compositions/postgres/composition.yaml").remove(0);
    own["metadata"]["name"] = json!(unique("devcomp"));
    let own: DynamicObject = serde_json::from_value(own).expect("composition");
    assert!(
        is_forbidden(compositions.create(&PostParams::default(), &own).await),
        "creating a Composition"
    );

    // The failing claim shows its failure: its Role cannot log in to PostgreSQL.
    let failed = wait_object_in(
        &dev,
        CLAIM_API,
        CLAIM_KIND,
        &ns,
        "fails",
        "bound and not Ready",
        |o| {
            o.data.pointer("/status/resourceRef/name").is_some()
                && condition(o, "Ready").is_some_and(|c| !c.is_true())
        },
    )
    .await;
    let composite = failed.data["status"]["resourceRef"]["name"]
        .as_str()
        .expect("resourceRef")
        .to_string();
    let role = wait_for(Duration::from_secs(60), || async {
        let xr = get(&admin, CLAIM_API, "XPostgresDatabase", &composite).await?;
        let refs = xr.data["spec"]["resourceRefs"].as_array()?.clone();
        let name = refs.iter().find(|r| r["kind"] == "Role")?["name"]
            .as_str()?
            .to_string();
        let role = get(&admin, PG_API, "Role", &name).await?;
        condition(&role, "Synced")
            .is_some_and(|c| !c.is_true() && !c.message.is_empty())
            .then_some(role)
    })
    .await
    .expect("the composed Role fails to connect");
    let role_synced = condition(&role, "Synced").expect("Synced");
    assert!(
        role_synced.message.contains(&bad_pc),
        "the message names the ProviderConfig: {}",
        role_synced.message
    );

    // Everything the developer can read about both claims, and what the controller wrote
    // on the failing Role, carries none of the Secrets' values.
    let mut seen = Vec::new();
    for name in ["works", "fails"] {
        let c = get_in(&dev, CLAIM_API, CLAIM_KIND, &ns, name)
            .await
            .expect("claim");
        seen.push(format!("claim {name} status: {}", c.data["status"]));
    }
    let dev_events: Api<Event> = Api::namespaced(dev.clone(), &ns);
    for e in dev_events
        .list(&ListParams::default())
        .await
        .expect("the developer lists events in its namespace")
        .items
    {
        seen.push(format!(
            "event {:?} {:?}: {:?}",
            e.involved_object.name, e.reason, e.message
        ));
    }
    seen.push(format!(
        "Role {} status: {}",
        role_synced.message, role.data["status"]
    ));
    for (_, reason, note) in events_about(
        &admin,
        "default",
        &role.metadata.name.clone().unwrap_or_default(),
    )
    .await
    {
        seen.push(format!("Role event {reason}: {note}"));
    }
    assert!(
        seen.iter().any(|s| s.contains("fails")),
        "the developer sees the failing claim: {seen:#?}"
    );
    let secret_values = [
        ("the wrong admin password", canary.as_str()),
        ("the admin password", env.get("POSTGRES_PASSWORD")),
        ("the claim's password", secret["password"].as_str()),
        ("the claim's url", secret["url"].as_str()),
    ];
    for (what, value) in secret_values {
        assert!(value.len() >= 8, "{what} is long enough to search for");
        for s in &seen {
            assert!(!s.contains(value), "{what} leaked into: {s}");
        }
    }

    for name in ["works", "fails"] {
        delete_in(&admin, CLAIM_API, CLAIM_KIND, &ns, name).await;
    }
    for name in ["works", "fails"] {
        wait_for(Duration::from_secs(90), || async {
            get_in(&admin, CLAIM_API, CLAIM_KIND, &ns, name)
                .await
                .is_none()
                .then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("claim {name} not deleted: {e}"));
    }
    delete(
        &admin,
        "apiextensions.tessera.dev/v1",
        "Composition",
        &bad_pc,
    )
    .await;
    delete(&admin, PG_API, "ProviderConfig", &bad_pc).await;
}
