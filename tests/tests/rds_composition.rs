//! The `postgres-rds` Composition: a PostgresDatabase claim that selects it by label gets
//! a DBSubnetGroup and a DBInstance on (simulated) RDS and a Secret in its namespace with
//! the same six keys as with `postgres-shared`; deleting the claim deletes the instance.
//! Real kube-apiserver, moto, and the composition and RDS controllers in this process.

use std::time::Duration;

use serde_json::json;
use tessera_tests::{
    TestEnv, apply, install_crds, install_postgres_platform, moto_subnets, namespace,
    rds_provider_config, rds_sdk, secret_data, start_composition_controllers_in_process,
    start_controller_in_process, start_rds_controller_in_process, unique, wait_for, yaml_docs,
};

/// The postgres platform (both Compositions, `postgres-rds` on fresh subnets in moto), the
/// RDS ProviderConfig `default`, and the composition, RDS and PostgreSQL controllers.
async fn platform(env: &TestEnv, client: &kube::Client) {
    install_crds(client).await.expect("install CRDs");
    install_postgres_platform(env, client).await;
    rds_provider_config(env, client, "default", None).await;
    let (_, subnets) = moto_subnets(env, 30, &["a", "b"]);
    let mut composition = yaml_docs("compositions/postgres/composition-rds.yaml").remove(0);
    composition["spec"]["resources"][0]["base"]["spec"]["forProvider"]["subnetIds"] =
        json!(subnets);
    apply(client, composition).await;
    start_rds_controller_in_process(env);
    start_controller_in_process(env);
    start_composition_controllers_in_process(env);
    tessera_tests::wait_crd_established(client, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD offers the PostgresDatabase claim");
}

/// A PostgresDatabase claim `ns/name` selecting the Composition labelled `engine`.
fn claim(ns: &str, name: &str, engine: &str) -> serde_json::Value {
    let mut c = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
    c["metadata"]["namespace"] = json!(ns);
    c["metadata"]["name"] = json!(name);
    c["spec"]["writeConnectionSecretToRef"]["name"] = json!(format!("{name}-db"));
    c["spec"]["compositionSelector"] =
        json!({ "matchLabels": { "platform.tessera.dev/engine": engine } });
    c
}

/// Whether AWS has no DB instance `id`.
async fn instance_gone(rds: &aws_sdk_rds::Client, id: &str) -> bool {
    rds.describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .is_err_and(|e| {
            e.as_service_error()
                .is_some_and(|s| s.is_db_instance_not_found_fault())
        })
}

fn sorted_keys(secret: &std::collections::HashMap<String, String>) -> Vec<&str> {
    let mut keys: Vec<&str> = secret.keys().map(String::as_str).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_claim_selecting_postgres_rds_gets_an_instance_and_the_six_keys() {
    let env = TestEnv::load();
    let client = env.kube().await;
    platform(&env, &client).await;

    let ns = namespace(&client, &unique("shop")).await;
    let name = "orders";
    apply(&client, claim(&ns, name, "rds")).await;

    // The Secret in the claim's namespace: six keys, the RDS endpoint.
    let secret = wait_for(Duration::from_secs(90), || async {
        secret_data(&client, &ns, "orders-db").await.filter(|s| {
            s.get("host")
                .is_some_and(|h| h.ends_with(".rds.amazonaws.com"))
        })
    })
    .await
    .expect("a Secret with the RDS instance's endpoint");
    assert_eq!(
        sorted_keys(&secret),
        ["database", "host", "password", "port", "url", "username"]
    );
    assert_eq!(secret["database"], "app");
    assert_eq!(secret["username"], "app");
    assert_eq!(
        secret["url"],
        format!(
            "postgres://app:{}@{}:{}/app",
            secret["password"], secret["host"], secret["port"]
        )
    );
    let xr = tessera_engine::naming::claim_composite_name(&ns, name);
    let rds = rds_sdk(&env);
    let db = rds
        .describe_db_instances()
        .db_instance_identifier(&xr)
        .send()
        .await
        .expect("the instance exists");
    let db = &db.db_instances()[0];
    assert_eq!(
        db.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some(xr.as_str())
    );
    assert_eq!(db.db_name(), Some("app"));

    tessera_tests::delete_in(
        &client,
        "platform.tessera.dev/v1alpha1",
        "PostgresDatabase",
        &ns,
        name,
    )
    .await;
    wait_for(Duration::from_secs(90), || async {
        instance_gone(&rds, &xr).await.then_some(())
    })
    .await
    .expect("deleting the claim deletes its instance in AWS");
    let snapshot = rds
        .describe_db_snapshots()
        .db_snapshot_identifier(format!("{xr}-final"))
        .send()
        .await
        .expect("the final snapshot the Composition names");
    assert_eq!(snapshot.db_snapshots().len(), 1);
}

#[tokio::test]
async fn changing_only_the_selector_moves_a_claim_from_rds_to_the_shared_server() {
    let env = TestEnv::load();
    let client = env.kube().await;
    platform(&env, &client).await;
    let ns = namespace(&client, &unique("shop")).await;
    let name = "moving";
    let secret_name = format!("{name}-db");
    let xr = tessera_engine::naming::claim_composite_name(&ns, name);
    let rds = rds_sdk(&env);

    apply(&client, claim(&ns, name, "rds")).await;
    let on_rds = wait_for(Duration::from_secs(90), || async {
        secret_data(&client, &ns, &secret_name).await.filter(|s| {
            s.get("host")
                .is_some_and(|h| h.ends_with(".rds.amazonaws.com"))
        })
    })
    .await
    .expect("a Secret with the RDS instance's endpoint");
    assert_eq!(
        sorted_keys(&on_rds),
        ["database", "host", "password", "port", "url", "username"]
    );

    // Only the selector changes: the composite selects postgres-shared, the RDS resources
    // go (deletionPolicy Delete), the shared server's role and database come, and the
    // claim's Secret is rewritten with their values.
    apply(&client, claim(&ns, name, "postgresql")).await;
    let on_shared = wait_for(Duration::from_secs(90), || async {
        secret_data(&client, &ns, &secret_name)
            .await
            .filter(|s| s.get("host").is_some_and(|h| h == env.get("POSTGRES_HOST")))
            .filter(|s| s.get("port").is_some_and(|p| p == env.get("POSTGRES_PORT")))
            .filter(|s| s.get("password") != on_rds.get("password"))
    })
    .await
    .expect("the claim's Secret rewritten with the shared server's values");
    assert_eq!(
        sorted_keys(&on_shared),
        ["database", "host", "password", "port", "url", "username"]
    );
    assert_eq!(on_shared["username"], xr);
    assert_eq!(on_shared["database"], xr);
    assert_eq!(
        on_shared["url"],
        format!(
            "postgres://{xr}:{}@{}:{}/{xr}",
            on_shared["password"], on_shared["host"], on_shared["port"]
        )
    );
    // The new credentials open the new database on the shared server.
    let url = format!(
        "host={} port={} user={xr} password={} dbname={xr} sslmode=disable",
        on_shared["host"], on_shared["port"], on_shared["password"]
    );
    // The Secret is published from the role; the database follows it (dependsOn).
    let db: String = wait_for(Duration::from_secs(60), || async {
        let (pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .ok()?;
        tokio::spawn(conn);
        pg.query_one("SELECT current_database()", &[])
            .await
            .ok()
            .map(|r| r.get(0))
    })
    .await
    .expect("log in with the rewritten Secret");
    assert_eq!(db, xr);

    let composite = tessera_tests::get(
        &client,
        "platform.tessera.dev/v1alpha1",
        "XPostgresDatabase",
        &xr,
    )
    .await
    .expect("the composite");
    assert_eq!(
        composite.data["spec"]["compositionRef"]["name"],
        "postgres-shared"
    );
    wait_for(Duration::from_secs(90), || async {
        instance_gone(&rds, &xr).await.then_some(())
    })
    .await
    .expect("the RDS instance of the old Composition is deleted");
    for kind in ["DBInstance", "DBSubnetGroup"] {
        tessera_tests::wait_gone(
            &client,
            tessera_tests::RDS_API,
            kind,
            &format!(
                "{xr}-{}",
                if kind == "DBInstance" {
                    "instance"
                } else {
                    "subnets"
                }
            ),
        )
        .await;
    }

    tessera_tests::delete_in(
        &client,
        "platform.tessera.dev/v1alpha1",
        "PostgresDatabase",
        &ns,
        name,
    )
    .await;
    tessera_tests::wait_gone(
        &client,
        "platform.tessera.dev/v1alpha1",
        "XPostgresDatabase",
        &xr,
    )
    .await;
}
