//! A controller that dies right after a Vault create, before recording it, neither
//! duplicates nor leaks: a real `tessera controller` process stopped by the crash-safety
//! hook, then restarted, for a Policy and a KVSecret against the real OpenBao server.

use std::time::Duration;

use serde_json::json;
use tessera_tests::{
    ControllerProcess, TEST_NAMESPACE, TestEnv, VAULT_API, apply, delete, get, install_crds,
    unique, vault_provider_config, wait_gone, wait_ready,
};

/// Runs a controller process with the crash hook until it exits through it, and checks
/// that `kind` `name` was left with a pending create and no recorded result.
async fn crash_after_create(env: &TestEnv, client: &kube::Client, kind: &str, name: &str) {
    let secrets = ["crash-value", env.get("VAULT_TOKEN")];
    // Only the Vault controllers: a create of another provider's leftover object must not
    // be the one the hook exits after.
    let crash = [
        ("TESSERA_FAULT_EXIT_AFTER_EXTERNAL_CREATE", "1"),
        ("TESSERA_PROVIDERS", "vault"),
    ];
    let mut c = ControllerProcess::spawn(env, &crash).unwrap();
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
    let log = std::fs::read_to_string(c.log()).expect("controller log");
    for secret in secrets {
        assert!(!log.contains(secret), "a secret in {}", c.log().display());
    }
    let obj = get(client, VAULT_API, kind, name).await.unwrap();
    let ann = obj.metadata.annotations.clone().unwrap_or_default();
    assert!(
        ann.contains_key("tessera.dev/external-create-pending"),
        "{ann:?}"
    );
    assert!(
        !ann.contains_key("tessera.dev/external-create-succeeded"),
        "{ann:?}"
    );
}

#[tokio::test]
async fn a_crash_after_a_policy_or_kv_create_neither_duplicates_nor_leaks() {
    let env = TestEnv::load();
    let client = env.kube().await;
    let vault = env.vault();
    install_crds(&client).await.expect("install CRDs");
    let pc = unique("vault-crash");
    vault_provider_config(&env, &client, &pc, env.get("VAULT_TOKEN")).await;

    // 1. A Policy is written, then the controller dies.
    let p = unique("crash-policy");
    apply(
        &client,
        json!({
            "apiVersion": VAULT_API, "kind": "Policy", "metadata": { "name": p },
            "spec": { "providerConfigRef": { "name": pc },
                "forProvider": { "rules": [{ "paths": ["secret/data/crash/*"], "capabilities": ["read"] }] } }
        }),
    )
    .await;
    crash_after_create(&env, &client, "Policy", &p).await;
    let written = vaultrs::sys::policy::read(&vault, &p)
        .await
        .expect("the policy was written")
        .rules;

    // 2. The same for a KVSecret: one version written.
    let k = unique("crash-kv");
    let path = format!("crash/{k}");
    apply(
        &client,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": k, "namespace": TEST_NAMESPACE },
            "stringData": { "password": "crash-value" }
        }),
    )
    .await;
    apply(
        &client,
        json!({
            "apiVersion": VAULT_API, "kind": "KVSecret", "metadata": { "name": k },
            "spec": { "providerConfigRef": { "name": pc },
                "forProvider": { "mount": "secret", "path": path,
                    "dataSecretRef": { "name": k, "namespace": TEST_NAMESPACE } } }
        }),
    )
    .await;
    crash_after_create(&env, &client, "KVSecret", &k).await;
    let meta = vaultrs::kv2::read_metadata(&vault, "secret", &path)
        .await
        .expect("the KV secret was written");
    assert_eq!(meta.current_version, 1);

    // 3. A normal restart adopts both: the same policy text, no second KV version.
    let controller = ControllerProcess::spawn(&env, &[("TESSERA_PROVIDERS", "vault")]).unwrap();
    wait_ready(&client, VAULT_API, "Policy", &p).await;
    wait_ready(&client, VAULT_API, "KVSecret", &k).await;
    assert_eq!(
        vaultrs::sys::policy::read(&vault, &p).await.unwrap().rules,
        written
    );
    let meta = vaultrs::kv2::read_metadata(&vault, "secret", &path)
        .await
        .unwrap();
    assert_eq!(
        meta.current_version, 1,
        "the KV secret was not written twice"
    );
    let obj = get(&client, VAULT_API, "KVSecret", &k).await.unwrap();
    let ann = obj.metadata.annotations.clone().unwrap_or_default();
    assert!(
        ann.get("tessera.dev/external-create-succeeded")
            > ann.get("tessera.dev/external-create-pending"),
        "the adoption is recorded: {ann:?}"
    );

    // No KV value and no token in the controllers' logs.
    let log = std::fs::read_to_string(controller.log()).expect("controller log");
    assert!(!log.is_empty());
    for secret in ["crash-value", env.get("VAULT_TOKEN")] {
        assert!(
            !log.contains(secret),
            "a secret in {}",
            controller.log().display()
        );
    }

    // 4. Nothing leaks.
    for (kind, name) in [("Policy", &p), ("KVSecret", &k)] {
        delete(&client, VAULT_API, kind, name).await;
        wait_gone(&client, VAULT_API, kind, name).await;
    }
    assert!(
        vaultrs::sys::policy::read(&vault, &p).await.is_err(),
        "policy deleted"
    );
    assert!(
        vaultrs::kv2::read_metadata(&vault, "secret", &path)
            .await
            .is_err(),
        "KV secret deleted"
    );
    drop(controller);
}
