//! A Kubernetes auth method of the test OpenBao server, set up directly with the root token,
//! that verifies ServiceAccount tokens with the real kube-apiserver's TokenReview; for the
//! tests of ProviderConfigs that log in with Kubernetes auth.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{TestEnv, apply, service_account_token, unique, wait_for};

/// A raw call of OpenBao's HTTP API with the root token; panics unless it succeeds.
pub async fn vault_root(
    env: &TestEnv,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let url = format!("{}/v1/{path}", env.get("VAULT_ADDR"));
    let mut req = reqwest::Client::new()
        .request(method, &url)
        .header("X-Vault-Token", env.get("VAULT_TOKEN"));
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A Kubernetes auth method enabled at `mount`, with a role for the provider.
pub struct KubernetesAuth {
    /// Where the method is enabled (without `auth/`).
    pub mount: String,
    /// The reviewer ServiceAccount's token OpenBao holds (a secret the tests look for).
    pub reviewer_jwt: String,
    /// The namespace of the ServiceAccounts.
    pub namespace: String,
    /// The policy the provider's role grants: enough to manage ACL policies.
    pub policy: String,
}

/// The ServiceAccount the provider logs in as.
pub const PROVIDER_SA: &str = "tessera-provider";

/// Enables a Kubernetes auth method at a unique mount, configured against the test
/// cluster with a reviewer ServiceAccount bound to `system:auth-delegator`, and a policy
/// for the provider. ServiceAccounts live in `namespace` (created by the caller).
pub async fn kubernetes_auth(
    env: &TestEnv,
    client: &kube::Client,
    namespace: &str,
) -> KubernetesAuth {
    let mount = unique("k8s-login");
    let reviewer = "vault-reviewer";
    let reviewer_jwt = service_account_token(client, namespace, reviewer).await;
    apply(
        client,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": { "name": format!("{namespace}-reviewer") },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator" },
            "subjects": [{ "kind": "ServiceAccount", "name": reviewer, "namespace": namespace }]
        }),
    )
    .await;
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), namespace);
    let ca = wait_for(Duration::from_secs(60), || async {
        cms.get_opt("kube-root-ca.crt")
            .await
            .ok()??
            .data?
            .remove("ca.crt")
    })
    .await
    .expect("the namespace's kube-root-ca.crt ConfigMap");
    vault_root(
        env,
        reqwest::Method::POST,
        &format!("sys/auth/{mount}"),
        Some(json!({ "type": "kubernetes" })),
    )
    .await;
    vault_root(
        env,
        reqwest::Method::POST,
        &format!("auth/{mount}/config"),
        Some(json!({
            "kubernetes_host": env.get("KUBE_APISERVER_URL"),
            "kubernetes_ca_cert": ca,
            "token_reviewer_jwt": reviewer_jwt,
            "disable_local_ca_jwt": true
        })),
    )
    .await;
    let policy = unique("provider-acl");
    vault_root(
        env,
        reqwest::Method::PUT,
        &format!("sys/policies/acl/{policy}"),
        Some(json!({ "policy": "path \"sys/policies/acl/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }\npath \"sys/policy/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }\n" })),
    )
    .await;
    KubernetesAuth {
        mount,
        reviewer_jwt,
        namespace: namespace.to_string(),
        policy,
    }
}

impl KubernetesAuth {
    /// Writes the role `role` binding the provider's ServiceAccount, granting the provider's
    /// policy, with the given token TTLs (seconds) and optional audience.
    pub async fn role(
        &self,
        env: &TestEnv,
        role: &str,
        ttl: u64,
        max_ttl: u64,
        audience: Option<&str>,
    ) {
        let mut body = json!({
            "bound_service_account_names": [PROVIDER_SA],
            "bound_service_account_namespaces": [self.namespace],
            "token_policies": [self.policy],
            "token_ttl": ttl,
            "token_max_ttl": max_ttl
        });
        if let Some(a) = audience {
            body["audience"] = json!(a);
        }
        vault_root(
            env,
            reqwest::Method::POST,
            &format!("auth/{}/role/{role}", self.mount),
            Some(body),
        )
        .await;
    }

    /// The tokens OpenBao holds that were made by a login at this method, as
    /// (accessor, whether it was ever renewed), read with the root token.
    pub async fn tokens(&self, env: &TestEnv) -> Vec<(String, bool)> {
        let list = vault_root(env, "LIST".parse().unwrap(), "auth/token/accessors", None).await;
        let mut found = Vec::new();
        let login_path = format!("auth/{}/login", self.mount);
        for accessor in list["data"]["keys"].as_array().into_iter().flatten() {
            let Some(accessor) = accessor.as_str() else {
                continue;
            };
            // A token may expire between the list and the lookup.
            let url = format!("{}/v1/auth/token/lookup-accessor", env.get("VAULT_ADDR"));
            let resp = reqwest::Client::new()
                .post(&url)
                .header("X-Vault-Token", env.get("VAULT_TOKEN"))
                .body(json!({ "accessor": accessor }).to_string())
                .send()
                .await
                .expect("lookup-accessor");
            if !resp.status().is_success() {
                continue;
            }
            let info: Value = resp.json().await.expect("lookup-accessor JSON");
            if info["data"]["path"].as_str() == Some(login_path.as_str()) {
                let renewed = info["data"]["last_renewal_time"]
                    .as_i64()
                    .is_some_and(|t| t > 0);
                found.push((accessor.to_string(), renewed));
            }
        }
        found
    }
}
