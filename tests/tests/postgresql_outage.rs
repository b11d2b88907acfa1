//! PostgreSQL going away and coming back: the managed resources say so, then converge.
//! Its own test binary, because stopping the server would disturb other tests.

use std::time::Duration;

use serde_json::json;
use tessera_tests::{
    PG_API, TestEnv, apply, delete, install_crds, pg_provider_config, repo_root,
    start_controller_in_process, unique, wait_gone, wait_ready, wait_sync_error,
};

/// Starts whatever testenv server is down when dropped, so that a failing assertion never
/// leaves PostgreSQL stopped for the tests that run after this one.
struct RestartOnDrop(String);

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_root().join("testenv/up"))
            .env("TESSERA_TESTENV_DIR", &self.0)
            .status();
    }
}

#[tokio::test]
async fn postgresql_stopped_and_restarted_is_reported_then_converges() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_controller_in_process(&env);
    let pc = unique("outagepc");
    pg_provider_config(&env, &client, &pc, env.get("POSTGRES_PASSWORD")).await;
    let role = |name: &str| {
        json!({
            "apiVersion": PG_API, "kind": "Role", "metadata": { "name": name },
            "spec": { "providerConfigRef": { "name": pc }, "forProvider": {} }
        })
    };
    let before = unique("before");
    apply(&client, role(&before)).await;
    wait_ready(&client, PG_API, "Role", &before).await;

    // Fast shutdown of the postmaster (SIGINT), the way an operator's restart looks.
    let state = env.get("TESSERA_TESTENV_DIR").to_string();
    let _restart = RestartOnDrop(state.clone());
    let pid = std::fs::read_to_string(format!("{state}/pids/postgres.pid")).expect("postgres pid");
    let status = std::process::Command::new("kill")
        .args(["-INT", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success());
    // Stopped when the postmaster process is gone (it closes its port earlier).
    tessera_tests::wait_for(Duration::from_secs(30), || async {
        let alive = std::process::Command::new("kill")
            .args(["-0", pid.trim()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        (!alive).then_some(())
    })
    .await
    .expect("PostgreSQL stopped");

    // A role applied during the outage says what is wrong.
    let during = unique("during");
    apply(&client, role(&during)).await;
    let synced = wait_sync_error(
        &client,
        PG_API,
        "Role",
        &during,
        "Cannot connect to PostgreSQL",
    )
    .await;
    assert_eq!(synced.reason, "ReconcileError");

    // testenv/up starts what is not running; everything converges.
    let up = std::process::Command::new(repo_root().join("testenv/up"))
        .env("TESSERA_TESTENV_DIR", &state)
        .status()
        .expect("run testenv/up");
    assert!(up.success(), "testenv/up restarts PostgreSQL");
    wait_ready(&client, PG_API, "Role", &during).await;
    wait_ready(&client, PG_API, "Role", &before).await;

    for name in [&before, &during] {
        delete(&client, PG_API, "Role", name).await;
        wait_gone(&client, PG_API, "Role", name).await;
    }
}
