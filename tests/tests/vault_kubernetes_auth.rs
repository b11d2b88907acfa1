//! Vault ProviderConfigs that log in with Kubernetes auth (credentials source
//! `KubernetesAuth`) against the real OpenBao server, which verifies the ServiceAccount
//! tokens with the real kube-apiserver's TokenReview: a token requested with the
//! TokenRequest API or read from a file, renewed before it expires and replaced by a new
//! login when its max TTL ends it.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use tessera_tests::vault_auth::{KubernetesAuth, PROVIDER_SA, kubernetes_auth};
use tessera_tests::{
    TestEnv, VAULT_API, apply, delete, install_crds, kubectl, namespace, service_account_token,
    start_vault_controller_in_process, unique, wait_for, wait_gone, wait_ready, wait_sync_error,
};
use vaultrs::client::VaultClient;

async fn setup() -> (TestEnv, kube::Client, KubernetesAuth) {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_vault_controller_in_process(&env);
    let ns = namespace(&client, &unique("vault-login")).await;
    // The ServiceAccount the provider logs in as.
    service_account_token(&client, &ns, PROVIDER_SA).await;
    let auth = kubernetes_auth(&env, &client, &ns).await;
    (env, client, auth)
}

/// A ProviderConfig logging in with Kubernetes auth as `login` says.
async fn provider_config(
    env: &TestEnv,
    client: &kube::Client,
    name: &str,
    login: serde_json::Value,
) {
    apply(
        client,
        json!({
            "apiVersion": VAULT_API, "kind": "ProviderConfig",
            "metadata": { "name": name },
            "spec": {
                "address": env.get("VAULT_ADDR"),
                "credentials": { "source": "KubernetesAuth" },
                "kubernetesAuth": login
            }
        }),
    )
    .await;
}

/// A Policy polled every second, so each reconcile uses the provider's token of the moment.
fn policy(name: &str, pc: &str) -> serde_json::Value {
    json!({
        "apiVersion": VAULT_API, "kind": "Policy",
        "metadata": { "name": name, "annotations": { "tessera.dev/poll-interval": "1s" } },
        "spec": { "providerConfigRef": { "name": pc },
            "forProvider": { "rules": [{ "paths": [format!("secret/data/{name}/*")], "capabilities": ["read"] }] } }
    })
}

async fn policy_text(vault: &VaultClient, name: &str) -> Option<String> {
    match vaultrs::sys::policy::read(vault, name).await {
        Ok(p) => Some(p.rules),
        Err(vaultrs::error::ClientError::APIError { code: 404, .. }) => None,
        Err(e) => panic!("read policy {name}: {e}"),
    }
}

/// Changes the policy behind the provider's back and waits until a reconcile wrote it back:
/// proof of a successful reconcile with the provider's token of the moment.
async fn drift_is_repaired(vault: &VaultClient, name: &str, round: usize) {
    let tampered = format!("path \"tampered/{round}\" {{ capabilities = [\"read\"] }}");
    vaultrs::sys::policy::set(vault, name, &tampered)
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), || async {
        policy_text(vault, name)
            .await
            .filter(|t| !t.contains("tampered") && t.contains(&format!("secret/data/{name}/*")))
            .map(|_| ())
    })
    .await
    .unwrap_or_else(|_| panic!("round {round}: the out-of-band change is repaired"));
}

#[tokio::test]
async fn a_requested_service_account_token_logs_in_and_the_vault_token_is_renewed_then_replaced_across_ttls()
 {
    let (env, client, auth) = setup().await;
    let vault = env.vault();
    // Tokens live 10 s and at most 20 s: renewed at about 7 s and 13 s (the second renewal
    // is cut short by the max TTL), then replaced by a new login at about 18 s.
    let role = unique("provider");
    auth.role(&env, &role, 10, 20, Some("vault")).await;
    let pc = unique("k8s-auth");
    provider_config(
        &env,
        &client,
        &pc,
        json!({
            "mountPath": auth.mount,
            "role": role,
            "serviceAccountRef": { "name": PROVIDER_SA, "namespace": auth.namespace },
            "audience": "vault"
        }),
    )
    .await;
    let name = unique("k8s-auth-policy");
    apply(&client, policy(&name, &pc)).await;
    wait_ready(&client, VAULT_API, "Policy", &name).await;
    assert!(policy_text(&vault, &name).await.is_some());

    // From OpenBao's side: a token of this login path is renewed, then a new login makes
    // another token (another accessor), twice; after each, a reconcile still succeeds.
    let mut seen: HashSet<String> = HashSet::new();
    let first = wait_for(Duration::from_secs(20), || async {
        auth.tokens(&env).await.into_iter().next().map(|(a, _)| a)
    })
    .await
    .expect("the provider's login made a token");
    seen.insert(first);
    let mut renewed_seen = false;
    for round in 1..=2 {
        let (next, renewed) = wait_for(Duration::from_secs(60), || async {
            let tokens = auth.tokens(&env).await;
            let renewed = tokens.iter().any(|(_, r)| *r);
            tokens
                .into_iter()
                .find(|(a, _)| !seen.contains(a))
                .map(|(a, _)| (a, renewed))
        })
        .await
        .unwrap_or_else(|_| {
            panic!("round {round}: the provider logs in again before its token's max TTL")
        });
        renewed_seen |= renewed;
        seen.insert(next);
        drift_is_repaired(&vault, &name, round).await;
    }
    assert!(
        renewed_seen || auth.tokens(&env).await.iter().any(|(_, renewed)| *renewed),
        "a token was renewed before it was replaced"
    );
    let synced = wait_ready(&client, VAULT_API, "Policy", &name).await;
    assert!(synced.data["status"]["conditions"].is_array());

    delete(&client, VAULT_API, "Policy", &name).await;
    wait_gone(&client, VAULT_API, "Policy", &name).await;
    assert_eq!(policy_text(&vault, &name).await, None);
}

#[tokio::test]
async fn a_wrong_role_is_explained_on_the_managed_resource_and_a_token_file_logs_in_once_fixed() {
    let (env, client, auth) = setup().await;
    let vault = env.vault();
    let role = unique("provider");
    auth.role(&env, &role, 600, 1200, None).await;
    let jwt = service_account_token(&client, &auth.namespace, PROVIDER_SA).await;
    let file = std::env::temp_dir().join(unique("sa-token"));
    std::fs::write(&file, &jwt).unwrap();
    let pc = unique("k8s-file");
    provider_config(
        &env,
        &client,
        &pc,
        json!({ "mountPath": auth.mount, "role": "no-such-role", "tokenPath": file }),
    )
    .await;
    let name = unique("k8s-file-policy");
    apply(&client, policy(&name, &pc)).await;
    let synced = wait_sync_error(
        &client,
        VAULT_API,
        "Policy",
        &name,
        "refused the Kubernetes login as role \"no-such-role\"",
    )
    .await;
    assert!(synced.message.contains(&pc), "{}", synced.message);
    assert!(
        synced.message.contains(&format!("auth/{}", auth.mount)),
        "{}",
        synced.message
    );
    assert!(!synced.message.contains(&jwt), "{}", synced.message);
    let described = kubectl(&env, &["describe", "policies.vault.tessera.dev", &name]);
    assert!(
        described.contains("no-such-role"),
        "kubectl describe explains it:\n{described}"
    );
    assert_eq!(policy_text(&vault, &name).await, None);

    // The right role: the next reconcile logs in with the token file.
    provider_config(
        &env,
        &client,
        &pc,
        json!({ "mountPath": auth.mount, "role": role, "tokenPath": file }),
    )
    .await;
    wait_ready(&client, VAULT_API, "Policy", &name).await;
    assert!(policy_text(&vault, &name).await.is_some());
    assert_eq!(
        auth.tokens(&env).await.len(),
        1,
        "one login, shared by all reconciles"
    );

    delete(&client, VAULT_API, "Policy", &name).await;
    wait_gone(&client, VAULT_API, "Policy", &name).await;
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn credentials_missing_what_their_source_needs_are_explained_naming_the_provider_config() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_vault_controller_in_process(&env);
    let cases = [
        (
            "KubernetesAuth without its settings",
            json!({ "source": "KubernetesAuth" }),
            "needs spec.kubernetesAuth",
        ),
        (
            "Secret without a secretRef",
            json!({ "source": "Secret" }),
            "credentials.secretRef is required",
        ),
        (
            "a source the Vault provider does not support",
            json!({ "source": "Default" }),
            "credentials source Default is not supported by the Vault provider; use Secret or KubernetesAuth",
        ),
    ];
    let mut policies = Vec::new();
    for (reason, credentials, needle) in cases {
        let pc = unique("bad-creds");
        apply(
            &client,
            json!({
                "apiVersion": VAULT_API, "kind": "ProviderConfig",
                "metadata": { "name": pc },
                "spec": { "address": env.get("VAULT_ADDR"), "credentials": credentials }
            }),
        )
        .await;
        let name = unique("bad-creds-policy");
        apply(&client, policy(&name, &pc)).await;
        let synced = wait_sync_error(&client, VAULT_API, "Policy", &name, needle).await;
        assert!(
            synced.message.contains(&format!("ProviderConfig \"{pc}\"")),
            "{reason}: {}",
            synced.message
        );
        policies.push(name);
    }
    for name in &policies {
        delete(&client, VAULT_API, "Policy", name).await;
    }
    for name in &policies {
        wait_gone(&client, VAULT_API, "Policy", name).await;
    }
}
