//! Kubernetes API writes made by the managed runtime, counted by the real kube-apiserver's
//! own request metrics. The only test of its binary, so nothing else writes meanwhile
//! (cargo runs test binaries one after another).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tessera_tests::{
    PG_API, TEST_NAMESPACE, TestEnv, apiserver_writes, apply, condition, delete, delete_in,
    install_crds, install_postgres_platform, namespace, pg_provider_config,
    start_composition_controllers_in_process, start_controller_in_process, unique, wait_gone,
    wait_object_in, wait_ready, yaml_docs,
};

/// Writes to the PostgreSQL kinds, Secrets and Events so far.
async fn writes(client: &kube::Client) -> BTreeMap<String, u64> {
    apiserver_writes(client)
        .await
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with("postgresql.sql.tessera.dev/")
                || k.starts_with("/secrets")
                || k.contains("/events")
        })
        .collect()
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// The tests of this file count every write of the cluster, so they must not overlap.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn steady_state_makes_no_kubernetes_writes_and_creates_are_counted() {
    let _one = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let pc = unique("budgetpc");
    pg_provider_config(&env, &client, &pc, env.get("POSTGRES_PASSWORD")).await;
    start_controller_in_process(&env);
    let (r, d, g) = (unique("budget"), unique("budgetdb"), unique("budgetgrant"));
    let owner = unique("budgetowner");

    let before_create = writes(&client).await;
    apply(
        &client,
        json!({ "apiVersion": PG_API, "kind": "Role", "metadata": { "name": owner },
        "spec": { "providerConfigRef": { "name": pc }, "forProvider": {} } }),
    )
    .await;
    apply(&client, json!({ "apiVersion": PG_API, "kind": "Role", "metadata": { "name": r },
        "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "privileges": { "login": true } },
                  "writeConnectionSecretToRef": { "name": format!("{r}-conn"), "namespace": TEST_NAMESPACE } } })).await;
    apply(
        &client,
        json!({ "apiVersion": PG_API, "kind": "Database", "metadata": { "name": d },
        "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "owner": owner } } }),
    )
    .await;
    apply(
        &client,
        json!({ "apiVersion": PG_API, "kind": "Grant", "metadata": { "name": g },
        "spec": { "providerConfigRef": { "name": pc },
                  "forProvider": { "role": r, "database": d, "privileges": ["CONNECT"] } } }),
    )
    .await;
    for (kind, name) in [
        ("Role", &owner),
        ("Role", &r),
        ("Database", &d),
        ("Grant", &g),
    ] {
        wait_ready(&client, PG_API, kind, name).await;
    }
    // Let the last status writes land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_create = writes(&client).await;
    let create = delta(&before_create, &after_create);
    // The test's own 4 applies are among the PATCHes of the main resources.
    println!("writes for creating 4 managed resources (incl. the test's 4 applies): {create:?}");

    // Three polls at the 5 s interval of the test controller: every object is observed
    // again, and nothing may be written.
    tokio::time::sleep(Duration::from_secs(16)).await;
    let steady = delta(&after_create, &writes(&client).await);
    println!("writes during 16 s of steady state: {steady:?}");
    assert!(
        steady.is_empty(),
        "steady state must not write to Kubernetes: {steady:?}"
    );

    for (kind, name) in [
        ("Grant", &g),
        ("Database", &d),
        ("Role", &r),
        ("Role", &owner),
    ] {
        delete(&client, PG_API, kind, name).await;
        wait_gone(&client, PG_API, kind, name).await;
    }
}

#[tokio::test]
async fn a_ready_claim_in_steady_state_makes_no_kubernetes_writes() {
    let _one = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    install_postgres_platform(&env, &client).await;
    start_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    let ns = namespace(&client, &unique("budget-claims")).await;
    let mut claim = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
    claim["metadata"]["namespace"] = json!(ns);
    apply(&client, claim).await;
    let name = "orders-db";
    wait_object_in(
        &client,
        "platform.tessera.dev/v1alpha1",
        "PostgresDatabase",
        &ns,
        name,
        "Ready",
        |o| condition(o, "Ready").is_some_and(|c| c.is_true()),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Claims, composites and managed resources are all polled every 5 s in tests.
    let before = all_tessera_writes(&client).await;
    tokio::time::sleep(Duration::from_secs(16)).await;
    let steady = delta(&before, &all_tessera_writes(&client).await);
    println!("writes during 16 s of steady state with a Ready claim: {steady:?}");
    assert!(
        steady.is_empty(),
        "steady state must not write to Kubernetes: {steady:?}"
    );

    delete_in(
        &client,
        "platform.tessera.dev/v1alpha1",
        "PostgresDatabase",
        &ns,
        name,
    )
    .await;
}

/// Writes to any Tessera kind (claims, composites, managed resources, the engine's own),
/// CRDs, Secrets and Events.
async fn all_tessera_writes(client: &kube::Client) -> BTreeMap<String, u64> {
    apiserver_writes(client)
        .await
        .into_iter()
        .filter(|(k, _)| {
            k.split('/')
                .next()
                .is_some_and(|g| g.ends_with("tessera.dev"))
                || k.starts_with("apiextensions.k8s.io/")
                || k.starts_with("/secrets")
                || k.contains("/events")
        })
        .collect()
}
