//! Kubernetes API writes made by the managed runtime, counted by the real kube-apiserver's
//! own request metrics. The only test of its binary, so nothing else writes meanwhile
//! (cargo runs test binaries one after another).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tessera_tests::{
    PG_API, TEST_NAMESPACE, TestEnv, apiserver_writes, apply, delete, install_crds,
    pg_provider_config, start_controller_in_process, unique, wait_gone, wait_ready,
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

#[tokio::test]
async fn steady_state_makes_no_kubernetes_writes_and_creates_are_counted() {
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
