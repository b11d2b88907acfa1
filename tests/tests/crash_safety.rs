//! A controller that dies between an external create and recording it, or anywhere else,
//! neither duplicates nor leaks the external resource, and needs no person to finish: the
//! controller runs as a real `tessera controller` process, stopped by the crash-safety
//! hook that exits right after a successful create, or killed with SIGKILL.

use std::time::Duration;

use serde_json::json;
use tessera_tests::crash::CrashRun;
use tessera_tests::{
    ControllerProcess, PG_API, TestEnv, apply, delete, get, install_crds, pg_provider_config,
    unique, wait_gone, wait_ready,
};

/// The tests of this file each run their own controller processes, which must not overlap.
/// The controller processes run the PostgreSQL provider only: a leftover object of another
/// provider must not be the create after which the fault hook ends the process.
const ONLY_POSTGRESQL: (&str, &str) = ("TESSERA_PROVIDERS", "postgresql");

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
    let r = unique("crashrole");
    let d = unique("crashdb");
    // The hook fires after this test's own object only: a leftover object of another test
    // created beside it must not be the create the process dies after.
    fn crash_after(name: &str) -> [(&str, &str); 2] {
        [
            ONLY_POSTGRESQL,
            ("TESSERA_FAULT_EXIT_AFTER_EXTERNAL_CREATE", name),
        ]
    }
    apply(&client, json!({
        "apiVersion": PG_API, "kind": "Role", "metadata": { "name": r },
        "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "privileges": { "login": true } } }
    }))
    .await;

    // 1. The controller creates the role, then dies before recording the result.
    let mut c = ControllerProcess::spawn(&env, &crash_after(&r)).unwrap();
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
    let mut c = ControllerProcess::spawn(&env, &crash_after(&d)).unwrap();
    assert_eq!(
        c.wait_exit(Duration::from_secs(60)).await.unwrap(),
        Some(86)
    );
    let db_after_crash = oid(&pg, db_oids, &d).await;
    assert_eq!(db_after_crash.len(), 1, "the database was created once");

    // 3. A normal restart adopts both: same objects (same oids), nothing created twice.
    let controller = ControllerProcess::spawn(&env, &[ONLY_POSTGRESQL]).unwrap();
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
async fn an_interrupted_create_whose_role_is_missing_is_retried_and_makes_exactly_one_role() {
    let _one = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let pc = unique("pendingpc");
    pg_provider_config(&env, &client, &pc, env.get("POSTGRES_PASSWORD")).await;
    let r = unique("pendingrole");
    let pending = "2026-01-01T00:00:00.000000Z";
    // A create was started (pending recorded) and never reached PostgreSQL: the role is
    // not there. A role's name is fixed before the create and unique in PostgreSQL, so
    // the runtime creates it again instead of waiting for a person.
    apply(
        &client,
        json!({
            "apiVersion": PG_API, "kind": "Role",
            "metadata": { "name": r, "annotations": {
                "tessera.dev/external-name": r,
                "tessera.dev/external-create-pending": pending } },
            "spec": { "providerConfigRef": { "name": pc }, "forProvider": {} }
        }),
    )
    .await;
    let controller = ControllerProcess::spawn(&env, &[ONLY_POSTGRESQL]).unwrap();
    let obj = wait_ready(&client, PG_API, "Role", &r).await;
    let pg = env.postgres().await;
    assert_eq!(
        oid(&pg, "SELECT oid FROM pg_roles WHERE rolname = $1", &r)
            .await
            .len(),
        1,
        "the role exists once"
    );
    let ann = obj.metadata.annotations.clone().unwrap_or_default();
    let retried = ann
        .get("tessera.dev/external-create-pending")
        .map(String::as_str);
    assert!(
        retried > Some(pending),
        "the retry recorded a new pending time: {ann:?}"
    );
    assert!(
        ann.get("tessera.dev/external-create-succeeded")
            .map(String::as_str)
            > retried,
        "the retried create is recorded: {ann:?}"
    );
    delete(&client, PG_API, "Role", &r).await;
    wait_gone(&client, PG_API, "Role", &r).await;
    assert!(
        oid(&pg, "SELECT oid FROM pg_roles WHERE rolname = $1", &r)
            .await
            .is_empty(),
        "role dropped"
    );
    drop(controller);
}

/// How many roles and databases PostgreSQL holds whose names start with `prefix`.
async fn count_with_prefix(pg: &tokio_postgres::Client, prefix: &str) -> (i64, i64) {
    let count = |sql: &'static str| async move {
        pg.query_one(sql, &[&prefix])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    (
        count("SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)").await,
        count("SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)").await,
    )
}

#[tokio::test]
async fn killing_the_controller_at_many_points_leaves_every_pair_ready_once_with_no_leak() {
    let _one = ONE_AT_A_TIME.lock().await;
    let started = std::time::Instant::now();
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let pc = unique("killpc");
    pg_provider_config(&env, &client, &pc, env.get("POSTGRES_PASSWORD")).await;
    let pg = env.postgres().await;
    // Every name starts with the prefix, so PostgreSQL can be asked for all of them.
    let prefix = format!("{}-", unique("kill"));
    const PAIRS: usize = 10;
    let roles: Vec<String> = (0..PAIRS).map(|i| format!("{prefix}r{i}")).collect();
    let databases: Vec<String> = (0..PAIRS).map(|i| format!("{prefix}d{i}")).collect();
    for (r, d) in roles.iter().zip(&databases) {
        apply(&client, json!({
            "apiVersion": PG_API, "kind": "Role", "metadata": { "name": r },
            "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "privileges": { "login": true } } }
        }))
        .await;
        apply(
            &client,
            json!({
                "apiVersion": PG_API, "kind": "Database", "metadata": { "name": d },
                "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "owner": r } }
            }),
        )
        .await;
    }

    // 1. Three controllers die right after an external create, before recording it; the
    //    creates running beside it at that moment die wherever they were.
    for _ in 0..3 {
        let mut c = ControllerProcess::spawn(
            &env,
            &[
                ONLY_POSTGRESQL,
                ("TESSERA_FAULT_EXIT_AFTER_EXTERNAL_CREATE", "1"),
            ],
        )
        .unwrap();
        let code = c
            .wait_exit(Duration::from_secs(60))
            .await
            .expect("the controller made a create and exited (none is made while objects wait for a person)");
        assert_eq!(
            code,
            Some(86),
            "exited through the hook; log: {}",
            c.log().display()
        );
    }

    // 2. Six controllers are killed (SIGKILL) at random moments while they work.
    for _ in 0..6 {
        let c = ControllerProcess::spawn(&env, &[ONLY_POSTGRESQL]).unwrap();
        tokio::time::sleep(Duration::from_millis(rand::random_range(300..2500))).await;
        drop(c);
    }
    let (r, d) = count_with_prefix(&pg, &prefix).await;
    assert!(
        r <= PAIRS as i64 && d <= PAIRS as i64,
        "never more than one role and one database per object: {r} roles, {d} databases"
    );

    // 3. A controller that is left running makes every object Ready, with no human action.
    let controller = ControllerProcess::spawn(&env, &[ONLY_POSTGRESQL]).unwrap();
    for (r, d) in roles.iter().zip(&databases) {
        wait_ready(&client, PG_API, "Role", r).await;
        wait_ready(&client, PG_API, "Database", d).await;
        let owner: String = pg
            .query_one(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
                &[d],
            )
            .await
            .expect("the database exists")
            .get(0);
        assert_eq!(&owner, r, "database {d} is owned by its role");
    }
    assert_eq!(
        count_with_prefix(&pg, &prefix).await,
        (PAIRS as i64, PAIRS as i64),
        "exactly one role and one database per object"
    );

    // 4. Nothing leaks: deleting the objects drops everything they made.
    for d in &databases {
        delete(&client, PG_API, "Database", d).await;
    }
    for d in &databases {
        wait_gone(&client, PG_API, "Database", d).await;
    }
    for r in &roles {
        delete(&client, PG_API, "Role", r).await;
    }
    for r in &roles {
        wait_gone(&client, PG_API, "Role", r).await;
    }
    assert_eq!(
        count_with_prefix(&pg, &prefix).await,
        (0, 0),
        "nothing left"
    );
    drop(controller);
    eprintln!(
        "killed 9 controllers and recovered in {:?}",
        started.elapsed()
    );
}

/// 100 PostgresDatabase claims (and a few objects of each other provider) created while
/// 30 controller processes are killed with SIGKILL at random moments (after 3 that end
/// themselves right after an external create): every claim Ready with exactly one role and
/// one database, nothing left anywhere after the deletes. The long run is
/// `cargo run -p tessera-tests --example crash_long -- --kills 500`.
#[tokio::test]
async fn killing_the_controller_30_times_while_100_claims_are_created_duplicates_and_leaks_nothing()
{
    let _one = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::load();
    let cfg = CrashRun {
        claims: 100,
        kills: 30,
        hook_exits: 3,
        others: 4,
        kill_after: Duration::from_millis(300)..Duration::from_millis(2500),
        seed: CrashRun::seed_from_env(),
        // Generous: the last controller does the work of all 100 claims (about 300
        // PostgreSQL objects and their Secrets); the figure it took is printed.
        converge_timeout: Duration::from_secs(300),
    };
    let report = tessera_tests::crash::run(&env, &cfg).await;
    assert_eq!(report.controllers_ended, 33);
    eprintln!(
        "crash run: {} controllers ended ({} by the create hook, {} SIGKILLs); {} objects Ready \
         {:?} after the first controller, {:?} after the last one started; clean {:?} after the deletes",
        report.controllers_ended,
        cfg.hook_exits,
        cfg.kills,
        report.objects,
        report.until_ready,
        report.last_controller_until_ready,
        report.until_clean
    );
}
