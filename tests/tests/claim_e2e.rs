//! The developer's path end to end, with the shipped PostgresDatabase composition
//! (compositions/postgres): a claim in an application namespace becomes a Role, a Database
//! and a Grant on the real PostgreSQL server and a working connection Secret in the
//! claim's namespace; spec changes flow down; failures show on the claim; deleting the
//! claim removes everything.

use std::time::Duration;

use serde_json::json;
use tessera_engine::naming::claim_composite_name;
use tessera_tests::{
    PG_API, TestEnv, apply, condition, delete_in, get, get_in, install_crds,
    install_postgres_platform, kubectl, namespace, secret_data,
    start_composition_controllers_in_process, start_controller_in_process, unique, wait_for,
    wait_gone, wait_object_in, yaml_docs,
};

const CLAIM_API: &str = "platform.tessera.dev/v1alpha1";
const XR_API: &str = "platform.tessera.dev/v1alpha1";

/// Installs what a platform team installs: CRDs, the ProviderConfig `default` with its
/// Secret, the XRD and the Composition; starts the controllers.
async fn platform() -> (TestEnv, kube::Client) {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    install_postgres_platform(&env, &client).await;
    start_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    tessera_tests::wait_crd_established(&client, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD offers the PostgresDatabase claim");
    (env, client)
}

fn claim(ns: &str, name: &str, connection_limit: i64) -> serde_json::Value {
    let mut c = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
    c["metadata"]["namespace"] = json!(ns);
    c["metadata"]["name"] = json!(name);
    c["spec"]["connectionLimit"] = json!(connection_limit);
    c["spec"]["writeConnectionSecretToRef"]["name"] = json!(format!("{name}-conn"));
    c
}

#[tokio::test]
async fn claim_gets_a_working_secret_follows_spec_changes_and_cleans_up_on_delete() {
    let (env, client) = platform().await;
    let ns = namespace(&client, &unique("shop")).await;
    let name = "orders-db";
    apply(&client, claim(&ns, name, 20)).await;

    let c = wait_object_in(
        &client,
        CLAIM_API,
        "PostgresDatabase",
        &ns,
        name,
        "Ready",
        |o| {
            condition(o, "Ready").is_some_and(|c| c.is_true())
                && condition(o, "Synced").is_some_and(|c| c.is_true())
        },
    )
    .await;
    let xr_name = claim_composite_name(&ns, name);
    assert_eq!(c.data["status"]["resourceRef"]["name"], json!(xr_name));

    // The Secret is in the claim's namespace, with exactly the XRD's keys, and works.
    let secret_name = format!("{name}-conn");
    let secret = secret_data(&client, &ns, &secret_name)
        .await
        .expect("connection secret in the claim namespace");
    let mut keys: Vec<&str> = secret.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["database", "host", "password", "port", "url", "username"]
    );
    let app = env.postgres_url(&secret["url"]).await;
    app.batch_execute("CREATE TABLE orders (id serial PRIMARY KEY)")
        .await
        .expect("the claim's credentials can create a table");
    let row = app
        .query_one("SELECT current_user::text, current_database()::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), secret["username"]);
    assert_eq!(row.get::<_, String>(1), secret["database"]);
    drop(app);

    // kubectl shows the claim with its columns.
    let table = kubectl(&env, &["get", "postgresdatabases", "-n", &ns]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        &header[..4],
        ["NAME", "SYNCED", "READY", "CONNECTION-SECRET"]
    );

    // A spec change on the claim reaches the database in PostgreSQL.
    apply(&client, claim(&ns, name, 7)).await;
    let pg = env.postgres().await;
    let role = secret["username"].clone();
    let db = secret["database"].clone();
    wait_for(Duration::from_secs(60), || async {
        let limit: i32 = pg
            .query_one(
                "SELECT datconnlimit FROM pg_database WHERE datname = $1",
                &[&db],
            )
            .await
            .ok()?
            .get(0);
        (limit == 7).then_some(())
    })
    .await
    .expect("connectionLimit 7 reaches the database");

    // Deleting the claim removes the composite, the managed resources, the PostgreSQL
    // objects and the Secret.
    let refs = get(&client, XR_API, "XPostgresDatabase", &xr_name)
        .await
        .expect("composite")
        .data["spec"]["resourceRefs"]
        .clone();
    delete_in(&client, CLAIM_API, "PostgresDatabase", &ns, name).await;
    wait_for(Duration::from_secs(90), || async {
        get_in(&client, CLAIM_API, "PostgresDatabase", &ns, name)
            .await
            .is_none()
            .then_some(())
    })
    .await
    .expect("claim deleted");
    wait_gone(&client, XR_API, "XPostgresDatabase", &xr_name).await;
    for r in refs.as_array().expect("resourceRefs") {
        let kind = r["kind"].as_str().unwrap();
        wait_gone(&client, PG_API, kind, r["name"].as_str().unwrap()).await;
    }
    wait_for(Duration::from_secs(60), || async {
        secret_data(&client, &ns, &secret_name)
            .await
            .is_none()
            .then_some(())
    })
    .await
    .expect("connection secret garbage-collected");
    let left: i64 = pg
        .query_one(
            "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = $1) + \
             (SELECT count(*) FROM pg_database WHERE datname = $2)",
            &[&role, &db],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "role and database dropped");
}

#[tokio::test]
async fn a_claim_whose_selector_matches_no_composition_says_so() {
    let (env, client) = platform().await;
    let ns = namespace(&client, &unique("shop")).await;
    let name = "nothing-matches";
    let mut c = claim(&ns, name, 5);
    c["spec"]["compositionSelector"] = json!({ "matchLabels": { "tier": "platinum" } });
    apply(&client, c).await;
    let o = wait_object_in(
        &client,
        CLAIM_API,
        "PostgresDatabase",
        &ns,
        name,
        "Synced=False about the selector",
        |o| condition(o, "Synced").is_some_and(|c| !c.is_true() && c.message.contains("platinum")),
    )
    .await;
    let synced = condition(&o, "Synced").unwrap();
    assert!(
        synced.message.to_lowercase().contains("no composition"),
        "{}",
        synced.message
    );
    assert_eq!(condition(&o, "Ready").unwrap().status, "False");
    let described = kubectl(&env, &["describe", "postgresdatabase", "-n", &ns, name]);
    assert!(
        described.contains("platinum"),
        "describe explains it:\n{described}"
    );
    delete_in(&client, CLAIM_API, "PostgresDatabase", &ns, name).await;
}

#[tokio::test]
async fn a_ready_claim_shows_its_database_name_in_status_and_in_kubectls_database_column() {
    let (env, client) = platform().await;
    let ns = namespace(&client, &unique("shop")).await;
    let name = "catalog-db";
    apply(&client, claim(&ns, name, 5)).await;

    // The composition patches the database's name onto the composite's status; the
    // claim shows it as its own.
    let xr_name = claim_composite_name(&ns, name);
    let c = wait_object_in(
        &client,
        CLAIM_API,
        "PostgresDatabase",
        &ns,
        name,
        "Ready, with the database name",
        |o| {
            condition(o, "Ready").is_some_and(|c| c.is_true())
                && o.data["status"]["databaseName"] == json!(xr_name)
        },
    )
    .await;
    let xr = get(&client, XR_API, "XPostgresDatabase", &xr_name)
        .await
        .expect("composite");
    assert_eq!(c.data["status"]["roleName"], xr.data["status"]["roleName"]);
    assert!(
        c.data["status"].get("connectionDetails").is_none(),
        "the composite's bookkeeping stays on the composite"
    );

    let table = kubectl(&env, &["get", "postgresdatabase", "-n", &ns, name]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    let row: Vec<&str> = lines.next().expect("a row").split_whitespace().collect();
    let column = header
        .iter()
        .position(|h| *h == "DATABASE")
        .unwrap_or_else(|| panic!("a DATABASE column:\n{table}"));
    assert_eq!(row[column], xr_name, "{table}");

    delete_in(&client, CLAIM_API, "PostgresDatabase", &ns, name).await;
    wait_gone(&client, XR_API, "XPostgresDatabase", &xr_name).await;
}
