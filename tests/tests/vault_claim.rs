//! The developer's path end to end with the shipped VaultPolicy composition
//! (compositions/vault): a claim listing paths becomes a Vault policy and a Kubernetes auth
//! role on the real OpenBao server; a pod's ServiceAccount token (from the real
//! TokenRequest API) logs in with the claim's Secret and reads what the claim allows, and
//! nothing else; a change of the paths takes effect; deleting the claim removes the policy.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_tests::{
    TestEnv, apply, condition, delete_in, install_crds, install_vault_platform, namespace,
    secret_data, service_account_token, start_composition_controllers_in_process,
    start_vault_controller_in_process, unique, wait_all_reconciled, wait_for, wait_gone,
    wait_object_in, yaml_docs,
};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

const CLAIM_API: &str = "platform.tessera.dev/v1alpha1";

/// What a platform team installs (compositions/vault), pointed at the test servers; see
/// [`tessera_tests::install_vault_platform`].
async fn platform() -> (TestEnv, kube::Client) {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_vault_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    install_vault_platform(&env, &client).await;
    (env, client)
}

fn claim(ns: &str, name: &str, read: &[String]) -> serde_json::Value {
    let mut c = yaml_docs("compositions/vault/example-claim.yaml").remove(0);
    c["metadata"]["namespace"] = json!(ns);
    c["metadata"]["name"] = json!(name);
    c["spec"]["read"] = json!(read);
    c["spec"]["serviceAccount"] = json!("app");
    c["spec"]["writeConnectionSecretToRef"]["name"] = json!(format!("{name}-vault"));
    c
}

/// Logs in as ServiceAccount `sa` of `ns` with the claim's Secret, as a pod would.
async fn login(
    env: &TestEnv,
    client: &kube::Client,
    ns: &str,
    sa: &str,
    secret: &std::collections::HashMap<String, String>,
) -> Result<VaultClient, vaultrs::error::ClientError> {
    let jwt = service_account_token(client, ns, sa).await;
    let anonymous = VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(&secret["VAULT_ADDR"])
            .token("")
            .build()
            .unwrap(),
    )
    .unwrap();
    let auth = vaultrs::auth::kubernetes::login(
        &anonymous,
        &secret["VAULT_AUTH_PATH"],
        &secret["VAULT_ROLE"],
        &jwt,
    )
    .await?;
    let _ = env;
    Ok(VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(&secret["VAULT_ADDR"])
            .token(&auth.client_token)
            .build()
            .unwrap(),
    )
    .unwrap())
}

/// Writes to the Vault kinds, the claim and composite kinds, Secrets and Events so far,
/// from the API server's own request metrics. (This file's only test: nothing else of
/// this binary writes meanwhile.)
async fn writes(client: &kube::Client) -> BTreeMap<String, u64> {
    tessera_tests::apiserver_writes(client)
        .await
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with("vault.tessera.dev/")
                || k.starts_with("platform.tessera.dev/")
                || k.starts_with("/secrets")
                || k.contains("/events")
        })
        .collect()
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

async fn can_read(vault: &VaultClient, path: &str) -> bool {
    match vaultrs::kv2::read::<serde_json::Value>(vault, "secret", path).await {
        Ok(_) => true,
        Err(vaultrs::error::ClientError::APIError { code: 403, .. }) => false,
        Err(e) => panic!("read secret/{path}: {e}"),
    }
}

#[tokio::test]
async fn a_vault_policy_claim_lets_its_service_account_read_its_paths_and_nothing_else() {
    let (env, client) = platform().await;
    let root = env.vault();
    let ns = namespace(&client, &unique("orders")).await;
    let name = "orders-vault";
    let app = unique("orders");
    let (first, second) = (format!("{app}/first"), format!("{app}/second"));
    for p in [&first, &second] {
        vaultrs::kv2::set(&root, "secret", p, &json!({ "k": "v" }))
            .await
            .unwrap();
    }
    let before_claim = writes(&client).await;
    apply(&client, claim(&ns, name, &[format!("secret/data/{first}")])).await;
    let c = wait_object_in(&client, CLAIM_API, "VaultPolicy", &ns, name, "Ready", |o| {
        condition(o, "Ready").is_some_and(|c| c.is_true())
            && condition(o, "Synced").is_some_and(|c| c.is_true())
    })
    .await;
    let xr_name = c.data["status"]["resourceRef"]["name"]
        .as_str()
        .expect("the claim's composite")
        .to_string();

    let objects = [
        ("VaultPolicy", Some(ns.as_str()), name),
        ("XVaultPolicy", None, xr_name.as_str()),
        ("Policy", None, &format!("{xr_name}-policy")),
        ("KubernetesAuthRole", None, &format!("{xr_name}-role")),
    ];
    // A reconcile of each that started after the claim is Ready: the writes are over.
    wait_all_reconciled(&objects, Instant::now(), Duration::from_secs(30)).await;
    let create = delta(&before_claim, &writes(&client).await);
    println!(
        "writes from applying a VaultPolicy claim to all Ready (incl. the test's apply): {} {create:?}",
        create.values().sum::<u64>()
    );
    // Two polls of each, and nothing may be written.
    let before = writes(&client).await;
    for _ in 0..2 {
        wait_all_reconciled(&objects, Instant::now(), Duration::from_secs(30)).await;
    }
    let steady = delta(&before, &writes(&client).await);
    assert!(
        steady.is_empty(),
        "steady state must not write to Kubernetes: {steady:?}"
    );

    let secret = secret_data(&client, &ns, &format!("{name}-vault"))
        .await
        .expect("the claim's Secret");
    let mut keys: Vec<&str> = secret.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["VAULT_ADDR", "VAULT_AUTH_PATH", "VAULT_ROLE"]);
    assert_eq!(secret["VAULT_AUTH_PATH"], "kubernetes");

    let as_app = login(&env, &client, &ns, "app", &secret)
        .await
        .expect("the claim's ServiceAccount logs in");
    assert!(
        can_read(&as_app, &first).await,
        "the claimed path is readable"
    );
    assert!(!can_read(&as_app, &second).await, "another path is refused");
    assert!(
        login(&env, &client, &ns, "someone-else", &secret)
            .await
            .is_err(),
        "another ServiceAccount cannot log in with the role"
    );

    // The claim's paths change: the new permission takes effect.
    apply(
        &client,
        claim(&ns, name, &[format!("secret/data/{second}")]),
    )
    .await;
    wait_for(Duration::from_secs(60), || async {
        (can_read(&as_app, &second).await && !can_read(&as_app, &first).await).then_some(())
    })
    .await
    .expect("the changed paths take effect");

    delete_in(&client, CLAIM_API, "VaultPolicy", &ns, name).await;
    wait_gone(&client, CLAIM_API, &format!("X{}", "VaultPolicy"), &xr_name).await;
    assert!(
        matches!(
            vaultrs::sys::policy::read(&root, &xr_name).await,
            Err(vaultrs::error::ClientError::APIError { code: 404, .. })
        ),
        "deleting the claim deletes its policy"
    );
    for p in [&first, &second] {
        vaultrs::kv2::delete_metadata(&root, "secret", p)
            .await
            .unwrap();
    }
}
