//! No silent takeover: a Role or Database whose name matches a role or database that
//! Tessera did not create leaves it untouched (no ALTER, no DROP) unless the managed
//! resource asks for it with `spec.adoptExisting` or only observes it; superusers and system
//! objects are never taken over; what Tessera created carries its mark and is recognised
//! again when the mark is lost. Real kube-apiserver, real PostgreSQL, the controller in this
//! process.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use serde_json::json;
use tessera_tests::{
    PG_API, TEST_NAMESPACE, TestEnv, apply, condition, delete, events_about, install_crds,
    pg_provider_config, secret_data, start_controller_in_process, unique, wait_gone, wait_object,
    wait_ready, wait_reconciled, wait_sync_error,
};

const NOT_OWNED: &str = "ExternalResourceNotOwned";
const MARK_PREFIX: &str = "tessera.dev/managed-resource-uid=";

async fn setup() -> (TestEnv, kube::Client, String, tokio_postgres::Client) {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_controller_in_process(&env);
    let pc = unique("pc");
    pg_provider_config(&env, &client, &pc, env.get("POSTGRES_PASSWORD")).await;
    let pg = env.postgres().await;
    (env, client, pc, pg)
}

fn role(name: &str, pc: &str, spec: serde_json::Value) -> serde_json::Value {
    let mut obj = json!({
        "apiVersion": PG_API, "kind": "Role",
        "metadata": { "name": name },
        "spec": {
            "providerConfigRef": { "name": pc },
            "forProvider": { "privileges": { "login": true }, "connectionLimit": 7 },
            "writeConnectionSecretToRef": { "name": format!("{name}-conn"), "namespace": TEST_NAMESPACE }
        }
    });
    if let (Some(s), Some(extra)) = (obj["spec"].as_object_mut(), spec.as_object()) {
        s.extend(extra.clone());
    }
    obj
}

fn database(name: &str, pc: &str, owner: &str, spec: serde_json::Value) -> serde_json::Value {
    let mut obj = json!({
        "apiVersion": PG_API, "kind": "Database",
        "metadata": { "name": name },
        "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "owner": owner } }
    });
    if let (Some(s), Some(extra)) = (obj["spec"].as_object_mut(), spec.as_object()) {
        s.extend(extra.clone());
    }
    obj
}

/// A role as pg_authid has it: password verifier, connection limit, comment.
async fn role_row(
    pg: &tokio_postgres::Client,
    name: &str,
) -> Option<(Option<String>, i32, Option<String>)> {
    pg.query_opt(
        "SELECT rolpassword, rolconnlimit, pg_catalog.shobj_description(oid, 'pg_authid') \
         FROM pg_catalog.pg_authid WHERE rolname = $1",
        &[&name],
    )
    .await
    .unwrap()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
}

/// A database's owner and comment.
async fn database_row(pg: &tokio_postgres::Client, name: &str) -> Option<(String, Option<String>)> {
    pg.query_opt(
        "SELECT pg_catalog.pg_get_userbyid(datdba)::text, \
         pg_catalog.shobj_description(oid, 'pg_database') \
         FROM pg_catalog.pg_database WHERE datname = $1",
        &[&name],
    )
    .await
    .unwrap()
    .map(|r| (r.get(0), r.get(1)))
}

/// Logs in as `user` with `password`.
async fn can_login(env: &TestEnv, user: &str, password: &str) -> bool {
    let mut config = tokio_postgres::Config::new();
    config
        .host(env.get("POSTGRES_HOST"))
        .port(env.get("POSTGRES_PORT").parse().unwrap())
        .user(user)
        .password(password)
        .dbname("postgres");
    match config.connect(tokio_postgres::NoTls).await {
        Ok((_client, conn)) => {
            drop(tokio::spawn(conn));
            true
        }
        Err(_) => false,
    }
}

/// How many times an event with `reason` was reported about `name` (counting the repeats
/// that the event recorder folds into one Event object).
async fn times_reported(client: &kube::Client, name: &str, reason: &str) -> i32 {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let params = kube::api::ListParams::default().fields(&format!("involvedObject.name={name}"));
    api.list(&params)
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| {
            let series = e.series.as_ref().and_then(|s| s.count).unwrap_or(1);
            e.count.unwrap_or(1).max(series)
        })
        .sum()
}

async fn wait_event(client: &kube::Client, name: &str, reason: &str) -> (String, String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(e) = events_about(client, "default", name)
            .await
            .into_iter()
            .find(|(_, r, _)| r == reason)
        {
            return e;
        }
        assert!(Instant::now() < deadline, "no {reason} event about {name}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn uid(obj: &kube::api::DynamicObject) -> String {
    obj.metadata.uid.clone().expect("the API server sets a uid")
}

#[tokio::test]
async fn an_existing_role_is_refused_left_unchanged_and_left_in_place_on_delete() {
    let (env, client, pc, pg) = setup().await;
    let r = unique("theirs");
    pg.batch_execute(&format!(
        "CREATE ROLE \"{r}\" LOGIN PASSWORD 'their-password' CONNECTION LIMIT 3"
    ))
    .await
    .unwrap();
    let before = role_row(&pg, &r).await.expect("the role exists");

    apply(&client, role(&r, &pc, json!({}))).await;
    let synced = wait_sync_error(&client, PG_API, "Role", &r, "was not created by Tessera").await;
    assert_eq!(synced.reason, NOT_OWNED);
    assert_eq!(
        synced.message,
        format!(
            "External resource {r:?} exists and was not created by Tessera; set \
             spec.adoptExisting: true to manage it, or managementPolicies: [\"Observe\"] to only read it"
        )
    );
    let (type_, _, note) = wait_event(&client, &r, NOT_OWNED).await;
    assert_eq!(type_, "Warning");
    assert_eq!(note, synced.message);

    // Polls that find the same refusal neither change the role nor report it again.
    wait_reconciled("Role", None, &r, Instant::now(), Duration::from_secs(30)).await;
    wait_reconciled("Role", None, &r, Instant::now(), Duration::from_secs(30)).await;
    assert_eq!(
        role_row(&pg, &r).await,
        Some(before.clone()),
        "password, limit and comment unchanged"
    );
    assert!(
        can_login(&env, &r, "their-password").await,
        "the owner's password still works"
    );
    assert_eq!(
        times_reported(&client, &r, NOT_OWNED).await,
        1,
        "reported once, not per poll"
    );
    let o = tessera_tests::get(&client, PG_API, "Role", &r)
        .await
        .unwrap();
    assert_eq!(
        condition(&o, "Ready").map(|c| c.status),
        Some("False".into())
    );
    assert!(
        secret_data(&client, TEST_NAMESPACE, &format!("{r}-conn"))
            .await
            .is_none(),
        "no connection secret for a role that is not Tessera's"
    );

    // deletionPolicy Delete (the default) never drops a role that is not Tessera's.
    delete(&client, PG_API, "Role", &r).await;
    wait_gone(&client, PG_API, "Role", &r).await;
    assert_eq!(
        role_row(&pg, &r).await,
        Some(before),
        "the role is left in place"
    );
    let (_, _, note) = wait_event(&client, &r, "LeftInPlace").await;
    assert!(note.contains("not created by Tessera"), "{note}");
    pg.batch_execute(&format!("DROP ROLE \"{r}\""))
        .await
        .unwrap();
}

#[tokio::test]
async fn adopt_existing_takes_over_a_role_marks_it_and_manages_its_password() {
    let (env, client, pc, pg) = setup().await;
    let r = unique("adopted");
    pg.batch_execute(&format!(
        "CREATE ROLE \"{r}\" LOGIN PASSWORD 'their-password' CONNECTION LIMIT 3"
    ))
    .await
    .unwrap();

    let applied = apply(&client, role(&r, &pc, json!({ "adoptExisting": true }))).await;
    wait_ready(&client, PG_API, "Role", &r).await;
    let (_, limit, comment) = role_row(&pg, &r).await.unwrap();
    assert_eq!(
        comment,
        Some(format!("{MARK_PREFIX}{}", uid(&applied))),
        "marked as this object's"
    );
    assert_eq!(limit, 7, "the spec is applied");
    wait_event(&client, &r, "Adopted").await;
    let secret = secret_data(&client, TEST_NAMESPACE, &format!("{r}-conn"))
        .await
        .expect("connection secret");
    let password = secret["password"].clone();
    assert!(
        can_login(&env, &r, &password).await,
        "the managed password works"
    );
    assert!(
        !can_login(&env, &r, "their-password").await,
        "the old password is replaced"
    );

    // Adopted means managed: deletionPolicy Delete drops it.
    delete(&client, PG_API, "Role", &r).await;
    wait_gone(&client, PG_API, "Role", &r).await;
    assert_eq!(role_row(&pg, &r).await, None);
}

#[tokio::test]
async fn a_superuser_is_never_adopted_but_can_be_observed() {
    let (env, client, pc, pg) = setup().await;
    let r = unique("super");
    pg.batch_execute(&format!(
        "CREATE ROLE \"{r}\" SUPERUSER LOGIN PASSWORD 'their-password'"
    ))
    .await
    .unwrap();
    let before = role_row(&pg, &r).await.unwrap();

    apply(&client, role(&r, &pc, json!({ "adoptExisting": true }))).await;
    let synced = wait_sync_error(&client, PG_API, "Role", &r, "is a superuser").await;
    assert_eq!(synced.reason, NOT_OWNED);
    assert!(
        !synced.message.contains("adoptExisting"),
        "{}",
        synced.message
    );
    wait_reconciled("Role", None, &r, Instant::now(), Duration::from_secs(30)).await;
    assert_eq!(role_row(&pg, &r).await, Some(before.clone()));
    assert!(can_login(&env, &r, "their-password").await);
    delete(&client, PG_API, "Role", &r).await;
    wait_gone(&client, PG_API, "Role", &r).await;
    assert_eq!(
        role_row(&pg, &r).await,
        Some(before.clone()),
        "never dropped"
    );

    // Observe-only reads it, without a mark and without a change.
    let observer = unique("observer");
    let mut obj = role(&observer, &pc, json!({ "managementPolicies": ["Observe"] }));
    obj["metadata"]["annotations"] = json!({ "tessera.dev/external-name": r });
    obj["spec"]["writeConnectionSecretToRef"] = json!(null);
    apply(&client, obj).await;
    let o = wait_ready(&client, PG_API, "Role", &observer).await;
    assert_eq!(
        o.data["status"]["atProvider"]["privileges"]["superUser"],
        json!(true)
    );
    wait_reconciled(
        "Role",
        None,
        &observer,
        Instant::now(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(role_row(&pg, &r).await, Some(before.clone()));
    delete(&client, PG_API, "Role", &observer).await;
    wait_gone(&client, PG_API, "Role", &observer).await;
    assert_eq!(role_row(&pg, &r).await, Some(before));
    pg.batch_execute(&format!("DROP ROLE \"{r}\""))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_existing_database_is_refused_with_its_owner_unchanged_then_adopted_on_request() {
    let (_env, client, pc, pg) = setup().await;
    let d = unique("theirdb");
    let theirs = unique("dbowner");
    let ours = unique("newowner");
    pg.batch_execute(&format!("CREATE ROLE \"{theirs}\"; CREATE ROLE \"{ours}\""))
        .await
        .unwrap();
    // CREATE DATABASE cannot share a transaction with other statements.
    pg.batch_execute(&format!("CREATE DATABASE \"{d}\" OWNER \"{theirs}\""))
        .await
        .unwrap();

    apply(&client, database(&d, &pc, &ours, json!({}))).await;
    let synced = wait_sync_error(
        &client,
        PG_API,
        "Database",
        &d,
        "was not created by Tessera",
    )
    .await;
    assert_eq!(synced.reason, NOT_OWNED);
    wait_reconciled(
        "Database",
        None,
        &d,
        Instant::now(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        database_row(&pg, &d).await,
        Some((theirs.clone(), None)),
        "owner unchanged"
    );

    let adopted = apply(
        &client,
        database(&d, &pc, &ours, json!({ "adoptExisting": true })),
    )
    .await;
    wait_ready(&client, PG_API, "Database", &d).await;
    assert_eq!(
        database_row(&pg, &d).await,
        Some((
            ours.clone(),
            Some(format!("{MARK_PREFIX}{}", uid(&adopted)))
        ))
    );
    delete(&client, PG_API, "Database", &d).await;
    wait_gone(&client, PG_API, "Database", &d).await;
    assert_eq!(
        database_row(&pg, &d).await,
        None,
        "adopted means managed: dropped"
    );
    pg.batch_execute(&format!("DROP ROLE \"{theirs}\"; DROP ROLE \"{ours}\""))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_system_database_is_never_adopted() {
    let (_env, client, pc, pg) = setup().await;
    let name = unique("sysdb");
    let owner: String = pg
        .query_one("SELECT pg_catalog.pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = 'template1'", &[])
        .await
        .unwrap()
        .get(0);
    let mut obj = database(&name, &pc, &owner, json!({ "adoptExisting": true }));
    obj["metadata"]["annotations"] = json!({ "tessera.dev/external-name": "template1" });
    apply(&client, obj).await;
    let synced = wait_sync_error(&client, PG_API, "Database", &name, "system database").await;
    assert_eq!(synced.reason, NOT_OWNED);
    delete(&client, PG_API, "Database", &name).await;
    wait_gone(&client, PG_API, "Database", &name).await;
    assert!(database_row(&pg, "template1").await.is_some());
}

#[tokio::test]
async fn what_tessera_created_is_marked_again_when_the_mark_is_lost_and_others_cannot_take_it() {
    let (_env, client, pc, pg) = setup().await;
    let r = unique("ours");
    let d = unique("oursdb");
    let role_obj = apply(&client, role(&r, &pc, json!({}))).await;
    let db_obj = apply(&client, database(&d, &pc, &r, json!({}))).await;
    wait_ready(&client, PG_API, "Role", &r).await;
    wait_ready(&client, PG_API, "Database", &d).await;
    let role_mark = format!("{MARK_PREFIX}{}", uid(&role_obj));
    let db_mark = format!("{MARK_PREFIX}{}", uid(&db_obj));
    assert_eq!(
        role_row(&pg, &r).await.unwrap().2,
        Some(role_mark.clone()),
        "marked at create"
    );
    assert_eq!(
        database_row(&pg, &d).await.unwrap().1,
        Some(db_mark.clone()),
        "marked at create"
    );

    // A second managed resource for the same role is refused, naming the owner.
    let other = unique("intruder");
    let mut obj = role(&other, &pc, json!({}));
    obj["metadata"]["annotations"] = json!({ "tessera.dev/external-name": r });
    apply(&client, obj).await;
    let synced = wait_sync_error(&client, PG_API, "Role", &other, "another managed resource").await;
    assert_eq!(synced.reason, NOT_OWNED);
    assert!(
        synced.message.contains(&uid(&role_obj)),
        "{}",
        synced.message
    );
    delete(&client, PG_API, "Role", &other).await;
    wait_gone(&client, PG_API, "Role", &other).await;
    assert!(
        role_row(&pg, &r).await.is_some(),
        "the intruder's deletion leaves the role"
    );

    // The marks are lost (as after a crash between CREATE DATABASE and its COMMENT, or
    // for objects made before marks existed): the create records say these are Tessera's.
    pg.batch_execute(&format!(
        "COMMENT ON ROLE \"{r}\" IS NULL; COMMENT ON DATABASE \"{d}\" IS NULL"
    ))
    .await
    .unwrap();
    wait_event(&client, &r, "Marked").await;
    wait_event(&client, &d, "Marked").await;
    assert_eq!(role_row(&pg, &r).await.unwrap().2, Some(role_mark));
    assert_eq!(database_row(&pg, &d).await.unwrap().1, Some(db_mark));
    for (kind, name) in [("Role", &r), ("Database", &d)] {
        let o = wait_object(
            &client,
            PG_API,
            kind,
            name,
            Duration::from_secs(30),
            "still Ready",
            |o| {
                condition(o, "Ready").is_some_and(|c| c.is_true())
                    && condition(o, "Synced").is_some_and(|c| c.is_true())
            },
        )
        .await;
        assert!(
            !events_about(&client, "default", name)
                .await
                .iter()
                .any(|(_, r, _)| r == NOT_OWNED),
            "{kind} {name} was never refused: {:?}",
            o.metadata.annotations
        );
    }

    delete(&client, PG_API, "Database", &d).await;
    wait_gone(&client, PG_API, "Database", &d).await;
    delete(&client, PG_API, "Role", &r).await;
    wait_gone(&client, PG_API, "Role", &r).await;
    assert!(database_row(&pg, &d).await.is_none());
    assert!(role_row(&pg, &r).await.is_none());
}
