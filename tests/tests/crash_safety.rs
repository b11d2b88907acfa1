//! A controller that dies between an external create and recording it neither duplicates
//! nor leaks the external resource. The controller runs as a real `tessera controller`
//! process with the crash-safety hook that exits right after a successful create.

use std::time::Duration;

use serde_json::json;
use tessera_tests::{
    ControllerProcess, PG_API, TestEnv, apply, delete, get, install_crds, pg_provider_config,
    unique, wait_gone, wait_ready,
};

/// The tests of this file each run their own controller processes, which must not overlap.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn oid(pg: &tokio_postgres::Client, sql: &str, name: &str) -> Vec<u32> {
    pg.query(sql, &[&name])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, u32>(0))
        .collect()
}

#[tokio::test]
async fn crash_after_external_create_neither_duplicates_nor_leaks() {
    let _one = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let pc = unique("crashpc");
    pg_provider_config(&env, &client, &pc, env.get("POSTGRES_PASSWORD")).await;
    let pg = env.postgres().await;
    let role_oids = "SELECT oid FROM pg_roles WHERE rolname = $1";
    let db_oids = "SELECT oid FROM pg_database WHERE datname = $1";
    let crash = [("TESSERA_FAULT_EXIT_AFTER_EXTERNAL_CREATE", "1")];

    let r = unique("crashrole");
    let d = unique("crashdb");
    apply(&client, json!({
        "apiVersion": PG_API, "kind": "Role", "metadata": { "name": r },
        "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "privileges": { "login": true } } }
    }))
    .await;

    // 1. The controller creates the role, then dies before recording the result.
    let mut c = ControllerProcess::spawn(&env, &crash).unwrap();
    let code = c
        .wait_exit(Duration::from_secs(60))
        .await
        .expect("controller exits");
    assert_eq!(
        code,
        Some(86),
        "exited through the hook; log: {}",
        c.log().display()
    );
    let after_crash = oid(&pg, role_oids, &r).await;
    assert_eq!(after_crash.len(), 1, "the role was created once");
    let obj = get(&client, PG_API, "Role", &r).await.unwrap();
    let ann = obj.metadata.annotations.clone().unwrap_or_default();
    assert!(ann.contains_key("tessera.dev/external-create-pending"));
    assert!(!ann.contains_key("tessera.dev/external-create-succeeded"));

    // 2. The same crash for a database owned by that role.
    apply(
        &client,
        json!({
            "apiVersion": PG_API, "kind": "Database", "metadata": { "name": d },
            "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "owner": r } }
        }),
    )
    .await;
    let mut c = ControllerProcess::spawn(&env, &crash).unwrap();
    assert_eq!(
        c.wait_exit(Duration::from_secs(60)).await.unwrap(),
        Some(86)
    );
    let db_after_crash = oid(&pg, db_oids, &d).await;
    assert_eq!(db_after_crash.len(), 1, "the database was created once");

    // 3. A normal restart adopts both: same objects (same oids), nothing created twice.
    let controller = ControllerProcess::spawn(&env, &[]).unwrap();
    wait_ready(&client, PG_API, "Role", &r).await;
    wait_ready(&client, PG_API, "Database", &d).await;
    assert_eq!(
        oid(&pg, role_oids, &r).await,
        after_crash,
        "role adopted, not re-created"
    );
    assert_eq!(
        oid(&pg, db_oids, &d).await,
        db_after_crash,
        "database adopted, not re-created"
    );
    let obj = get(&client, PG_API, "Role", &r).await.unwrap();
    let ann = obj.metadata.annotations.clone().unwrap_or_default();
    assert!(
        ann.get("tessera.dev/external-create-succeeded")
            > ann.get("tessera.dev/external-create-pending"),
        "the adoption is recorded: {ann:?}"
    );

    // 4. Nothing leaks: deleting the managed resources drops both.
    delete(&client, PG_API, "Database", &d).await;
    wait_gone(&client, PG_API, "Database", &d).await;
    delete(&client, PG_API, "Role", &r).await;
    wait_gone(&client, PG_API, "Role", &r).await;
    assert!(oid(&pg, db_oids, &d).await.is_empty(), "database dropped");
    assert!(oid(&pg, role_oids, &r).await.is_empty(), "role dropped");
    drop(controller);
}

#[tokio::test]
async fn an_interrupted_create_whose_object_is_missing_stops_instead_of_creating_again() {
    let _one = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let pc = unique("pendingpc");
    pg_provider_config(&env, &client, &pc, env.get("POSTGRES_PASSWORD")).await;
    let r = unique("pendingrole");
    // A create was started (pending recorded) and never finished: the role is not there.
    apply(
        &client,
        json!({
            "apiVersion": PG_API, "kind": "Role",
            "metadata": { "name": r, "annotations": {
                "tessera.dev/external-name": r,
                "tessera.dev/external-create-pending": "2026-01-01T00:00:00.000000Z" } },
            "spec": { "providerConfigRef": { "name": pc }, "forProvider": {} }
        }),
    )
    .await;
    let controller = ControllerProcess::spawn(&env, &[]).unwrap();
    let synced =
        tessera_tests::wait_sync_error(&client, PG_API, "Role", &r, "external-create-pending")
            .await;
    assert!(
        synced.message.contains("never recorded"),
        "{}",
        synced.message
    );
    let pg = env.postgres().await;
    let n = pg
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&r])
        .await
        .unwrap()
        .len();
    assert_eq!(
        n, 0,
        "nothing is created while the create's result is unknown"
    );
    delete(&client, PG_API, "Role", &r).await;
    wait_gone(&client, PG_API, "Role", &r).await;
    drop(controller);
}
