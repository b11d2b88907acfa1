//! OpenBao going away and coming back empty (the in-memory dev server loses everything):
//! the managed resources say so, then everything is created again and becomes Ready,
//! without a controller restart. Its own test binary, because stopping the server would
//! disturb other tests.

use std::time::Duration;

use serde_json::json;
use tessera_tests::{
    TEST_NAMESPACE, TestEnv, VAULT_API, apply, delete, install_crds, repo_root,
    start_vault_controller_in_process, unique, vault_provider_config, wait_gone, wait_ready,
    wait_sync_error,
};

/// Starts whatever testenv server is down when dropped, so that a failing assertion never
/// leaves OpenBao stopped for the tests that run after this one.
struct RestartOnDrop(String);

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_root().join("testenv/up"))
            .env("TESSERA_TESTENV_DIR", &self.0)
            .status();
    }
}

fn managed(kind: &str, name: &str, pc: &str, for_provider: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": VAULT_API, "kind": kind,
        "metadata": { "name": name, "annotations": { "tessera.dev/poll-interval": "1s" } },
        "spec": { "providerConfigRef": { "name": pc }, "forProvider": for_provider }
    })
}

#[tokio::test]
async fn openbao_restarted_empty_is_reported_then_everything_is_created_again() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_vault_controller_in_process(&env);
    let pc = unique("outage");
    vault_provider_config(&env, &client, &pc, env.get("VAULT_TOKEN")).await;
    let src = unique("outage-src");
    apply(
        &client,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": src, "namespace": TEST_NAMESPACE },
            "stringData": { "k": "v" }
        }),
    )
    .await;
    let (p, m, a, k) = (
        unique("outage-policy"),
        unique("outage-kv"),
        unique("outage-auth"),
        unique("outage-secret"),
    );
    let objects = [
        (
            "Policy",
            p.clone(),
            json!({ "rules": [{ "paths": ["secret/data/o/*"], "capabilities": ["read"] }] }),
        ),
        (
            "Mount",
            m.clone(),
            json!({ "type": "kv", "options": { "version": "2" } }),
        ),
        ("AuthBackend", a.clone(), json!({ "type": "approle" })),
        (
            "KVSecret",
            k.clone(),
            json!({ "mount": "secret", "path": format!("o/{k}"),
            "dataSecretRef": { "name": src, "namespace": TEST_NAMESPACE } }),
        ),
    ];
    for (kind, name, fp) in &objects {
        apply(&client, managed(kind, name, &pc, fp.clone())).await;
    }
    for (kind, name, _) in &objects {
        wait_ready(&client, VAULT_API, kind, name).await;
    }

    let state = env.get("TESSERA_TESTENV_DIR").to_string();
    let _restart = RestartOnDrop(state.clone());
    let pid = std::fs::read_to_string(format!("{state}/pids/openbao.pid")).expect("openbao pid");
    let status = std::process::Command::new("kill")
        .arg(pid.trim())
        .status()
        .unwrap();
    assert!(status.success());
    tessera_tests::wait_for(Duration::from_secs(30), || async {
        let alive = std::process::Command::new("kill")
            .args(["-0", pid.trim()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        (!alive).then_some(())
    })
    .await
    .expect("OpenBao stopped");

    // The objects say what is wrong.
    let synced = wait_sync_error(&client, VAULT_API, "Policy", &p, "did not answer").await;
    assert_eq!(synced.reason, "ReconcileError");

    // testenv/up starts an empty dev server; everything is created again.
    let up = std::process::Command::new(repo_root().join("testenv/up"))
        .env("TESSERA_TESTENV_DIR", &state)
        .status()
        .expect("run testenv/up");
    assert!(up.success(), "testenv/up restarts OpenBao");
    for (kind, name, _) in &objects {
        wait_ready(&client, VAULT_API, kind, name).await;
    }
    let vault = env.vault();
    assert!(
        vaultrs::sys::policy::read(&vault, &p).await.is_ok(),
        "policy created again"
    );
    let kv: serde_json::Value = vaultrs::kv2::read(&vault, "secret", &format!("o/{k}"))
        .await
        .expect("KV secret written again");
    assert_eq!(kv, json!({ "k": "v" }));
    let mounts = vaultrs::sys::mount::list(&vault).await.expect("mounts");
    assert!(mounts.contains_key(&format!("{m}/")), "mount enabled again");

    for (kind, name, _) in &objects {
        delete(&client, VAULT_API, kind, name).await;
    }
    for (kind, name, _) in &objects {
        wait_gone(&client, VAULT_API, kind, name).await;
    }
}
