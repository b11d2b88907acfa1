//! The PostgreSQL provider driven by the managed runtime, end to end: objects applied to the
//! real kube-apiserver, reconciled by `tessera controller` (in this process), against the
//! real PostgreSQL server of testenv.

use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};
use tessera_tests::{
    PG_API, TEST_NAMESPACE, TestEnv, apply, condition, delete, get, install_crds, kubectl,
    pg_provider_config, secret_data, start_controller_in_process, unique, wait_gone, wait_object,
    wait_ready, wait_reconciled, wait_sync_error,
};

async fn setup() -> (TestEnv, kube::Client, String) {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_controller_in_process(&env);
    let pc = unique("pc");
    pg_provider_config(&env, &client, &pc, env.get("POSTGRES_PASSWORD")).await;
    (env, client, pc)
}

fn role(name: &str, pc: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut for_provider = json!({ "privileges": { "login": true } });
    if let (Some(fp), Some(extra)) = (for_provider.as_object_mut(), extra.as_object()) {
        fp.extend(extra.clone());
    }
    json!({
        "apiVersion": PG_API, "kind": "Role",
        "metadata": { "name": name },
        "spec": {
            "providerConfigRef": { "name": pc },
            "forProvider": for_provider,
            "writeConnectionSecretToRef": { "name": format!("{name}-conn"), "namespace": TEST_NAMESPACE }
        }
    })
}

fn database(name: &str, pc: &str, owner: &str) -> serde_json::Value {
    json!({
        "apiVersion": PG_API, "kind": "Database",
        "metadata": { "name": name },
        "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "owner": owner } }
    })
}

fn grant(name: &str, pc: &str, role: &str, db: &str, privileges: &[&str]) -> serde_json::Value {
    json!({
        "apiVersion": PG_API, "kind": "Grant",
        "metadata": { "name": name },
        "spec": {
            "providerConfigRef": { "name": pc },
            "forProvider": { "role": role, "database": db, "privileges": privileges }
        }
    })
}

async fn role_exists(pg: &tokio_postgres::Client, name: &str) -> bool {
    pg.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

async fn database_exists(pg: &tokio_postgres::Client, name: &str) -> bool {
    pg.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn role_database_and_grant_become_ready_and_the_role_secret_connects() {
    let (env, client, pc) = setup().await;
    let r = unique("app");
    let d = unique("appdb");
    let g = unique("appgrant");
    apply(&client, role(&r, &pc, json!({}))).await;
    apply(&client, database(&d, &pc, &r)).await;
    apply(&client, grant(&g, &pc, &r, &d, &["CONNECT", "CREATE"])).await;
    for (kind, name) in [("Role", &r), ("Database", &d), ("Grant", &g)] {
        let obj = wait_ready(&client, PG_API, kind, name).await;
        let ready = condition(&obj, "Ready").unwrap();
        assert_eq!(ready.reason, "Available");
        assert_eq!(ready.observed_generation, obj.metadata.generation);
        assert_eq!(
            obj.data["status"]["observedGeneration"].as_i64(),
            obj.metadata.generation
        );
        let annotations = obj.metadata.annotations.clone().unwrap_or_default();
        let external_name = annotations.get("tessera.dev/external-name");
        if kind == "Grant" {
            assert!(
                external_name.is_some(),
                "a Grant gets a deterministic external name"
            );
        } else {
            assert_eq!(
                external_name,
                Some(name),
                "{kind}: external name defaults to metadata.name"
            );
        }
        if kind != "Grant" {
            // (The owner of a database already holds its privileges: no create needed.)
            assert!(
                annotations.contains_key("tessera.dev/external-create-succeeded"),
                "{kind}"
            );
        }
    }

    // Only the values of the connection secret: no knowledge of the test server's admin.
    let secret = secret_data(&client, TEST_NAMESPACE, &format!("{r}-conn"))
        .await
        .expect("connection secret exists");
    let mut keys: Vec<&str> = secret.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["endpoint", "password", "port", "username"]);
    let url = format!(
        "postgres://{}:{}@{}:{}/{}",
        secret["username"], secret["password"], secret["endpoint"], secret["port"], d
    );
    let app = env.postgres_url(&url).await;
    app.batch_execute("CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL)")
        .await
        .expect("the role may create a table in its database");
    app.execute("INSERT INTO orders (item) VALUES ($1)", &[&"book"])
        .await
        .unwrap();
    let n: i64 = app
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    drop(app);

    // kubectl shows the printer columns and describe shows the events.
    let table = kubectl(&env, &["get", "roles.postgresql.sql.tessera.dev", &r]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "SYNCED", "EXTERNAL-NAME", "AGE"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], [r.as_str(), "True", "True", r.as_str()]);
    let described = kubectl(&env, &["describe", "roles.postgresql.sql.tessera.dev", &r]);
    assert!(
        described.contains("Created"),
        "describe shows the Created event:\n{described}"
    );
    assert!(
        !described.contains(&secret["password"]),
        "describe must never show the password"
    );

    // The Role's status, as anyone who may read Roles sees it, records the password
    // Secret's version and nothing derived from the password.
    let role_obj = get(&client, PG_API, "Role", &r).await.expect("the Role");
    let at = &role_obj.data["status"]["atProvider"];
    assert!(
        at["passwordSecretVersion"]
            .as_str()
            .is_some_and(|v| v.contains('/')),
        "{at}"
    );
    let status = role_obj.data["status"].to_string();
    let uid = role_obj.metadata.uid.clone().unwrap_or_default();
    let password = &secret["password"];
    for digest in [
        Sha256::digest(password.as_bytes()),
        Sha256::digest(format!("{uid}\0{password}").as_bytes()),
    ] {
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            !status.contains(&hex),
            "a SHA-256 of the password in {status}"
        );
    }
    assert!(!status.contains("passwordFingerprint") && !status.contains(password.as_str()));

    for (kind, name) in [("Grant", &g), ("Database", &d), ("Role", &r)] {
        delete(&client, PG_API, kind, name).await;
        wait_gone(&client, PG_API, kind, name).await;
    }
    let pg = env.postgres().await;
    assert!(
        !database_exists(&pg, &d).await,
        "Delete policy drops the database"
    );
    assert!(!role_exists(&pg, &r).await, "Delete policy drops the role");
}

#[tokio::test]
async fn out_of_band_changes_are_repaired_within_one_poll() {
    let (env, client, pc) = setup().await;
    let r = unique("drift");
    let d = unique("driftdb");
    let g = unique("driftgrant");
    let owner = unique("driftowner");
    apply(&client, role(&owner, &pc, json!({}))).await;
    apply(
        &client,
        role(
            &r,
            &pc,
            json!({ "connectionLimit": 5, "privileges": { "login": true, "superUser": false } }),
        ),
    )
    .await;
    apply(&client, database(&d, &pc, &owner)).await;
    apply(&client, grant(&g, &pc, &r, &d, &["CONNECT"])).await;
    for (kind, name) in [("Role", &r), ("Database", &d), ("Grant", &g)] {
        wait_ready(&client, PG_API, kind, name).await;
    }
    let pg = env.postgres().await;
    let q = |s: &str| format!("\"{s}\"");
    pg.batch_execute(&format!(
        "ALTER ROLE {} SUPERUSER CONNECTION LIMIT 99; REVOKE CONNECT ON DATABASE {} FROM {}",
        q(&r),
        q(&d),
        q(&r)
    ))
    .await
    .unwrap();

    // The controller polls every 5 s here; allow a few polls for a loaded machine.
    tessera_tests::wait_for(Duration::from_secs(30), || async {
        let row = pg
            .query_one(
                "SELECT rolsuper, rolconnlimit FROM pg_roles WHERE rolname = $1",
                &[&r],
            )
            .await
            .ok()?;
        let repaired = !row.get::<_, bool>(0) && row.get::<_, i32>(1) == 5;
        // The explicit ACL entry, not has_database_privilege (PUBLIC has CONNECT too).
        let connect: bool = pg
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_database d, aclexplode(d.datacl) a \
                 WHERE d.datname = $2 AND a.privilege_type = 'CONNECT' \
                 AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1))",
                &[&r, &d],
            )
            .await
            .ok()?
            .get(0);
        (repaired && connect).then_some(())
    })
    .await
    .expect("role attributes and the revoked grant are restored");

    // A dropped database is created again.
    pg.batch_execute(&format!("DROP DATABASE {}", q(&d)))
        .await
        .unwrap();
    tessera_tests::wait_for(Duration::from_secs(30), || async {
        database_exists(&pg, &d).await.then_some(())
    })
    .await
    .expect("dropped database is re-created");

    let described = kubectl(&env, &["describe", "roles.postgresql.sql.tessera.dev", &r]);
    assert!(
        described.contains("Updated"),
        "drift repair is an event:\n{described}"
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
async fn orphan_policy_leaves_the_role_and_database_in_place() {
    let (env, client, pc) = setup().await;
    let r = unique("orphan");
    let d = unique("orphandb");
    let mut role_obj = role(&r, &pc, json!({}));
    role_obj["spec"]["deletionPolicy"] = json!("Orphan");
    let mut db_obj = database(&d, &pc, &r);
    db_obj["spec"]["deletionPolicy"] = json!("Orphan");
    apply(&client, role_obj).await;
    apply(&client, db_obj).await;
    wait_ready(&client, PG_API, "Role", &r).await;
    wait_ready(&client, PG_API, "Database", &d).await;
    delete(&client, PG_API, "Database", &d).await;
    delete(&client, PG_API, "Role", &r).await;
    wait_gone(&client, PG_API, "Database", &d).await;
    wait_gone(&client, PG_API, "Role", &r).await;
    let pg = env.postgres().await;
    assert!(database_exists(&pg, &d).await, "Orphan keeps the database");
    assert!(role_exists(&pg, &r).await, "Orphan keeps the role");
    pg.batch_execute(&format!("DROP DATABASE \"{d}\""))
        .await
        .unwrap();
    pg.batch_execute(&format!("DROP ROLE \"{r}\""))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_role_that_still_owns_a_database_waits_with_a_clear_message() {
    let (env, client, pc) = setup().await;
    let r = unique("owner");
    let d = unique("ownerdb");
    apply(&client, role(&r, &pc, json!({}))).await;
    apply(&client, database(&d, &pc, &r)).await;
    wait_ready(&client, PG_API, "Role", &r).await;
    wait_ready(&client, PG_API, "Database", &d).await;

    delete(&client, PG_API, "Role", &r).await;
    let synced = wait_sync_error(&client, PG_API, "Role", &r, &d).await;
    assert_eq!(synced.reason, "ReconcileError");
    let pg = env.postgres().await;
    assert!(
        role_exists(&pg, &r).await,
        "the role is kept while it owns the database"
    );

    delete(&client, PG_API, "Database", &d).await;
    wait_gone(&client, PG_API, "Database", &d).await;
    wait_gone(&client, PG_API, "Role", &r).await;
    assert!(!role_exists(&pg, &r).await);
    assert!(!database_exists(&pg, &d).await);
}

#[tokio::test]
async fn observe_only_role_imports_an_existing_role_and_never_changes_it() {
    let (env, client, pc) = setup().await;
    let r = unique("imported");
    let pg = env.postgres().await;
    pg.batch_execute(&format!("CREATE ROLE \"{r}\" NOLOGIN CONNECTION LIMIT 3"))
        .await
        .unwrap();
    let mut obj = role(&r, &pc, json!({ "connectionLimit": 7 }));
    obj["spec"]["managementPolicies"] = json!(["Observe"]);
    obj["spec"]["writeConnectionSecretToRef"] = json!(null);
    apply(&client, obj).await;
    let o = wait_ready(&client, PG_API, "Role", &r).await;
    assert_eq!(o.data["status"]["atProvider"]["connectionLimit"], json!(3));
    // A poll that started after the role was Ready, and found nothing to change.
    wait_reconciled("Role", None, &r, Instant::now(), Duration::from_secs(30)).await;
    let limit: i32 = pg
        .query_one(
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = $1",
            &[&r],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(limit, 3, "an Observe-only role is never updated");
    delete(&client, PG_API, "Role", &r).await;
    wait_gone(&client, PG_API, "Role", &r).await;
    assert!(
        role_exists(&pg, &r).await,
        "an Observe-only role is never deleted"
    );
    pg.batch_execute(&format!("DROP ROLE \"{r}\""))
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_input_is_explained_on_the_object_and_converges_once_fixed() {
    let (env, client, pc) = setup().await;

    // An identifier PostgreSQL cannot take (over 63 bytes).
    let r = unique("longname");
    let mut obj = role(&r, &pc, json!({}));
    obj["metadata"]["annotations"] = json!({ "tessera.dev/external-name": "x".repeat(70) });
    apply(&client, obj).await;
    let synced = wait_sync_error(&client, PG_API, "Role", &r, "63").await;
    assert_eq!(synced.reason, "ReconcileError");
    delete(&client, PG_API, "Role", &r).await;

    // A privilege that does not exist.
    let gr = unique("grantee");
    let g = unique("badgrant");
    apply(&client, role(&gr, &pc, json!({}))).await;
    apply(
        &client,
        grant(&g, &pc, &gr, "postgres", &["CONNECT", "FLY"]),
    )
    .await;
    let synced = wait_sync_error(&client, PG_API, "Grant", &g, "FLY").await;
    assert!(synced.message.chars().next().unwrap().is_uppercase());
    let described = kubectl(&env, &["describe", "grants.postgresql.sql.tessera.dev", &g]);
    assert!(
        described.contains("FLY"),
        "the event names the bad privilege:\n{described}"
    );
    // Fixing the spec converges.
    apply(&client, grant(&g, &pc, &gr, "postgres", &["CONNECT"])).await;
    wait_ready(&client, PG_API, "Grant", &g).await;

    // A ProviderConfig with a wrong password: the message names the ProviderConfig.
    let bad_pc = unique("badpc");
    pg_provider_config(&env, &client, &bad_pc, "wrong-password").await;
    let r2 = unique("wrongpw");
    apply(&client, role(&r2, &bad_pc, json!({}))).await;
    let synced = wait_sync_error(&client, PG_API, "Role", &r2, &bad_pc).await;
    assert!(
        synced.message.to_lowercase().contains("password"),
        "message says the password is wrong: {}",
        synced.message
    );
    assert!(!synced.message.contains(env.get("POSTGRES_PASSWORD")));
    // Fixing the Secret converges (credentials are re-read on every retry).
    pg_provider_config(&env, &client, &bad_pc, env.get("POSTGRES_PASSWORD")).await;
    wait_ready(&client, PG_API, "Role", &r2).await;

    // A ProviderConfig that does not exist.
    let r3 = unique("nopc");
    apply(&client, role(&r3, "no-such-config", json!({}))).await;
    let synced = wait_sync_error(&client, PG_API, "Role", &r3, "no-such-config").await;
    assert!(synced.message.contains("not found"), "{}", synced.message);

    for (kind, name) in [("Grant", &g), ("Role", &gr), ("Role", &r2), ("Role", &r3)] {
        delete(&client, PG_API, kind, name).await;
    }
    // Objects that never named or reached a valid external resource are released too.
    for (kind, name) in [
        ("Grant", &g),
        ("Role", &gr),
        ("Role", &r2),
        ("Role", &r3),
        ("Role", &r),
    ] {
        wait_gone(&client, PG_API, kind, name).await;
    }
}

#[tokio::test]
async fn paused_role_is_left_alone_until_unpaused() {
    let (env, client, pc) = setup().await;
    let r = unique("paused");
    let mut obj = role(&r, &pc, json!({}));
    obj["metadata"]["annotations"] = json!({ "tessera.dev/paused": "true" });
    apply(&client, obj).await;
    let o = wait_object(
        &client,
        PG_API,
        "Role",
        &r,
        Duration::from_secs(30),
        "ReconcilePaused",
        |o| condition(o, "Synced").is_some_and(|c| c.reason == "ReconcilePaused"),
    )
    .await;
    assert_eq!(condition(&o, "Ready").unwrap().status, "False");
    let pg = env.postgres().await;
    assert!(!role_exists(&pg, &r).await, "a paused role is not created");
    apply(&client, role(&r, &pc, json!({}))).await; // drops the annotation (same field manager)
    wait_ready(&client, PG_API, "Role", &r).await;
    assert!(role_exists(&pg, &r).await);
    delete(&client, PG_API, "Role", &r).await;
    wait_gone(&client, PG_API, "Role", &r).await;
}
