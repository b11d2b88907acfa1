//! The kube-apiserver stops and starts again while a `tessera controller` process runs
//! (testenv/apiserver stop|start; etcd keeps the data): the controller is not restarted,
//! resumes its watches by itself, repairs what changed behind its back meanwhile, and
//! converges claims created right after the API server is back. Its own test binary,
//! because stopping the API server would disturb every other test.

use std::time::Duration;

use serde_json::json;
use tessera_engine::naming::claim_composite_name;
use tessera_tests::{
    ControllerProcess, TestEnv, condition, delete_in, install_crds, install_postgres_platform,
    namespace, repo_root, unique, wait_crd_established, wait_for, wait_gone_in, wait_object_in,
    yaml_docs,
};

const CLAIM_API: &str = "platform.tessera.dev/v1alpha1";

fn apiserver(env: &TestEnv, action: &str) {
    let status = std::process::Command::new(repo_root().join("testenv/apiserver"))
        .arg(action)
        .env("TESSERA_TESTENV_DIR", env.get("TESSERA_TESTENV_DIR"))
        .status()
        .expect("run testenv/apiserver");
    assert!(status.success(), "testenv/apiserver {action}: {status}");
}

/// Starts the API server again when dropped, so that a failing assertion never leaves it
/// stopped for the tests that run after this one.
struct StartOnDrop(TestEnv);

impl Drop for StartOnDrop {
    fn drop(&mut self) {
        apiserver(&self.0, "start");
    }
}

fn claim(ns: &str, name: &str) -> serde_json::Value {
    let mut c = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
    c["metadata"]["namespace"] = json!(ns);
    c["metadata"]["name"] = json!(name);
    c["spec"]["writeConnectionSecretToRef"]["name"] = json!(format!("{name}-conn"));
    c
}

async fn wait_claim_ready(client: &kube::Client, ns: &str, name: &str) {
    wait_object_in(
        client,
        CLAIM_API,
        "PostgresDatabase",
        ns,
        name,
        "Ready",
        |o| {
            condition(o, "Ready").is_some_and(|c| c.is_true())
                && condition(o, "Synced").is_some_and(|c| c.is_true())
        },
    )
    .await;
}

async fn databases(pg: &tokio_postgres::Client, name: &str) -> i64 {
    pg.query_one(
        "SELECT count(*) FROM pg_database WHERE datname = $1",
        &[&name],
    )
    .await
    .expect("count databases")
    .get(0)
}

#[tokio::test]
async fn the_controller_resumes_its_watches_after_an_api_server_restart_and_converges() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    install_postgres_platform(&env, &client).await;
    let mut controller = ControllerProcess::spawn(&env, &[("TESSERA_PROVIDERS", "postgresql")])
        .expect("start a controller");
    wait_crd_established(&client, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD's claim CRD");
    let pg = env.postgres().await;
    let ns = namespace(&client, &unique("restart")).await;
    let log = controller.log().display().to_string();

    let before = "before";
    tessera_tests::apply(&client, claim(&ns, before)).await;
    wait_claim_ready(&client, &ns, before).await;
    let before_db = claim_composite_name(&ns, before);
    assert_eq!(databases(&pg, &before_db).await, 1);

    // The API server goes away; meanwhile the claim's database is dropped behind the
    // controller's back.
    apiserver(&env, "stop");
    let restart = StartOnDrop(env.clone());
    pg.batch_execute(&format!("DROP DATABASE \"{before_db}\""))
        .await
        .expect("drop the database behind the controller's back");
    let stopped = std::time::Instant::now();
    drop(restart); // starts the API server again
    let restarted = stopped.elapsed();

    // A claim created right after the API server is back is seen through the resumed
    // watches and converges, and the dropped database is created again by the same
    // controller process.
    let after = "after";
    tessera_tests::apply(&client, claim(&ns, after)).await;
    wait_claim_ready(&client, &ns, after).await;
    let after_db = claim_composite_name(&ns, after);
    assert_eq!(databases(&pg, &after_db).await, 1);
    wait_for(Duration::from_secs(60), || async {
        (databases(&pg, &before_db).await == 1).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("the dropped database is created again: {e}; log: {log}"));
    wait_claim_ready(&client, &ns, before).await;
    assert!(
        controller.running(),
        "the same controller process did all this; log: {log}"
    );
    eprintln!(
        "apiserver restart: the API server was back {restarted:?} after the stop; the new claim \
         and the repaired one Ready {:?} after the stop",
        stopped.elapsed()
    );

    for name in [before, after] {
        delete_in(&client, CLAIM_API, "PostgresDatabase", &ns, name).await;
    }
    for name in [before, after] {
        wait_gone_in(&client, CLAIM_API, "PostgresDatabase", &ns, name).await;
    }
    wait_for(Duration::from_secs(60), || async {
        (databases(&pg, &before_db).await + databases(&pg, &after_db).await == 0).then_some(())
    })
    .await
    .expect("the claims' databases are dropped");
    drop(controller);
}
