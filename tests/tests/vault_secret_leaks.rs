//! No secret the Vault provider handles shows anywhere a user or a log collector looks:
//! the test creates KV values, tokens and JWTs it knows, drives the provider through its
//! happy and its error paths (a `tessera controller` process, logging at debug level), and
//! then looks for every one of them in the controller's log, the Events, the objects'
//! conditions and status, `kubectl describe` and `tessera render` output.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde_json::json;
use tessera_tests::vault_auth::{PROVIDER_SA, kubernetes_auth, vault_root};
use tessera_tests::{
    ControllerProcess, TEST_NAMESPACE, TestEnv, VAULT_API, apply, delete, install_crds, kubectl,
    namespace, service_account_token, tessera_bin, unique, vault_provider_config, wait_for,
    wait_gone, wait_ready, wait_sync_error,
};

/// A managed resource polled every second.
fn managed(kind: &str, name: &str, pc: &str, for_provider: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": VAULT_API, "kind": kind,
        "metadata": { "name": name, "annotations": { "tessera.dev/poll-interval": "1s" } },
        "spec": { "providerConfigRef": { "name": pc }, "forProvider": for_provider }
    })
}

/// A value no output may contain, with a label for the failure message.
struct Needle {
    what: &'static str,
    value: String,
}

/// Every needle (and its base64 form) that occurs in `haystack`, as "what in where".
fn leaks(needles: &[Needle], where_: &str, haystack: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    needles
        .iter()
        .filter(|n| haystack.contains(&n.value) || haystack.contains(&b64.encode(&n.value)))
        .map(|n| format!("{} in {where_}", n.what))
        .collect()
}

#[tokio::test]
async fn no_kv_value_token_or_jwt_appears_in_logs_events_conditions_describe_or_render() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let log_filter = "info,tessera=debug,tessera_engine=debug,tessera_provider_vault=debug,\
                      vaultrs=debug,rustify=debug,kube=debug";
    let controller = ControllerProcess::spawn(
        &env,
        &[("TESSERA_PROVIDERS", "vault"), ("RUST_LOG", log_filter)],
    )
    .unwrap();
    let ns = namespace(&client, &unique("vault-leaks")).await;
    let kv_value = format!("kv-value-{}", unique("s3cr3t"));
    let kv_value_2 = format!("kv-drift-{}", unique("s3cr3t"));
    let wrong_token = format!("s.wrong-{}", unique("tok"));

    // A root-token ProviderConfig (token from a Secret) ...
    let root_pc = unique("leaks-root");
    vault_provider_config(&env, &client, &root_pc, env.get("VAULT_TOKEN")).await;
    // ... one with a wrong token ...
    let wrong_pc = unique("leaks-wrong");
    vault_provider_config(&env, &client, &wrong_pc, &wrong_token).await;
    // ... and two with Kubernetes auth from a token file: a right role and a wrong one.
    service_account_token(&client, &ns, PROVIDER_SA).await;
    let auth = kubernetes_auth(&env, &client, &ns).await;
    let role = unique("provider");
    auth.role(&env, &role, 600, 1200, None).await;
    let sa_jwt = service_account_token(&client, &ns, PROVIDER_SA).await;
    let token_file = std::env::temp_dir().join(unique("leaks-sa-token"));
    std::fs::write(&token_file, &sa_jwt).unwrap();
    let k8s_pc = unique("leaks-k8s");
    let bad_role_pc = unique("leaks-badrole");
    for (pc, role) in [(&k8s_pc, role.as_str()), (&bad_role_pc, "no-such-role")] {
        apply(
            &client,
            json!({
                "apiVersion": VAULT_API, "kind": "ProviderConfig",
                "metadata": { "name": pc },
                "spec": { "address": env.get("VAULT_ADDR"),
                    "credentials": { "source": "KubernetesAuth" },
                    "kubernetesAuth": { "mountPath": auth.mount, "role": role, "tokenPath": token_file } }
            }),
        )
        .await;
    }

    // A KVSecret with values from a Secret, changed behind the provider's back later.
    let source = unique("leaks-kv-source");
    apply(
        &client,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": source, "namespace": TEST_NAMESPACE },
            "stringData": { "password": kv_value }
        }),
    )
    .await;
    let kv = unique("leaks-kv");
    let kv_path = format!("leaks/{kv}");
    apply(
        &client,
        managed(
            "KVSecret",
            &kv,
            &root_pc,
            json!({ "mount": "secret", "path": kv_path,
                "dataSecretRef": { "name": source, "namespace": TEST_NAMESPACE } }),
        ),
    )
    .await;
    // A Kubernetes auth backend configured by the provider with the reviewer JWT.
    let reviewer_secret = unique("leaks-reviewer");
    apply(
        &client,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": reviewer_secret, "namespace": ns },
            "stringData": { "token": auth.reviewer_jwt }
        }),
    )
    .await;
    let backend = unique("leaks-k8s");
    apply(
        &client,
        managed(
            "AuthBackend",
            &backend,
            &root_pc,
            json!({ "type": "kubernetes" }),
        ),
    )
    .await;
    apply(
        &client,
        managed(
            "KubernetesAuthBackendConfig",
            &backend,
            &root_pc,
            json!({
                "backend": backend,
                "kubernetesHost": env.get("KUBE_APISERVER_URL"),
                "kubernetesCaCertRef": { "kind": "ConfigMap", "name": "kube-root-ca.crt", "namespace": ns, "key": "ca.crt" },
                "tokenReviewerJwtSecretRef": { "name": reviewer_secret, "namespace": ns, "key": "token" },
                "disableLocalCaJwt": true
            }),
        ),
    )
    .await;
    // Policies through the Kubernetes auth login, the wrong token and the wrong role.
    let good = unique("leaks-k8s-policy");
    let via_wrong = unique("leaks-wrong-policy");
    let via_bad_role = unique("leaks-badrole-policy");
    for (name, pc) in [
        (&good, &k8s_pc),
        (&via_wrong, &wrong_pc),
        (&via_bad_role, &bad_role_pc),
    ] {
        apply(
            &client,
            managed(
                "Policy",
                name,
                pc,
                json!({ "rules": [{ "paths": [format!("secret/data/{name}/*")], "capabilities": ["read"] }] }),
            ),
        )
        .await;
    }

    for (kind, name) in [
        ("KVSecret", &kv),
        ("AuthBackend", &backend),
        ("KubernetesAuthBackendConfig", &backend),
        ("Policy", &good),
    ] {
        wait_ready(&client, VAULT_API, kind, name).await;
    }
    wait_sync_error(
        &client,
        VAULT_API,
        "Policy",
        &via_wrong,
        "refused the token",
    )
    .await;
    wait_sync_error(&client, VAULT_API, "Policy", &via_bad_role, "no-such-role").await;

    // Drift: a newer KV version with another value is written back (an Updated event).
    let vault = env.vault();
    vaultrs::kv2::set(
        &vault,
        "secret",
        &kv_path,
        &json!({ "password": kv_value_2 }),
    )
    .await
    .unwrap();
    wait_for(Duration::from_secs(30), || async {
        let v: serde_json::Value = vaultrs::kv2::read(&vault, "secret", &kv_path).await.ok()?;
        (v["password"] == json!(kv_value)).then_some(())
    })
    .await
    .expect("the out-of-band KV version is repaired");

    // `tessera render` of the VaultPolicy claim with observed resources whose connection
    // Secret carries the values (as a provider that put a secret there would).
    let render = render_with_secret_connection_values(&kv_value, &sa_jwt);

    // Everything a user or a log collector sees.
    let mut sources: Vec<(String, String)> = Vec::new();
    let kinds = [
        "providerconfigs.vault.tessera.dev",
        "policies.vault.tessera.dev",
        "kvsecrets.vault.tessera.dev",
        "authbackends.vault.tessera.dev",
        "kubernetesauthbackendconfigs.vault.tessera.dev",
    ];
    for kind in kinds {
        sources.push((
            format!("kubectl get {kind} -o yaml"),
            kubectl(&env, &["get", kind, "-o", "yaml"]),
        ));
    }
    for (kind, name) in [
        ("kvsecrets.vault.tessera.dev", &kv),
        ("policies.vault.tessera.dev", &good),
        ("policies.vault.tessera.dev", &via_wrong),
        ("policies.vault.tessera.dev", &via_bad_role),
        ("authbackends.vault.tessera.dev", &backend),
        ("kubernetesauthbackendconfigs.vault.tessera.dev", &backend),
        ("providerconfigs.vault.tessera.dev", &root_pc),
        ("providerconfigs.vault.tessera.dev", &wrong_pc),
        ("providerconfigs.vault.tessera.dev", &k8s_pc),
        ("providerconfigs.vault.tessera.dev", &bad_role_pc),
    ] {
        sources.push((
            format!("kubectl describe {kind} {name}"),
            kubectl(&env, &["describe", kind, name]),
        ));
    }
    sources.push((
        "Events".to_string(),
        kubectl(&env, &["get", "events", "-A", "-o", "yaml"]),
    ));
    sources.push(("tessera render".to_string(), render.clone()));

    // The log: wait until it shows the work was logged at all (so an empty log cannot pass).
    let log = wait_for(Duration::from_secs(30), || async {
        let log = std::fs::read_to_string(controller.log()).ok()?;
        (log.contains(&kv) && log.contains(&good)).then_some(log)
    })
    .await
    .expect("the controller log names the managed resources");
    sources.push(("the controller log".to_string(), log));

    let needles = [
        Needle {
            what: "the KV value",
            value: kv_value.clone(),
        },
        Needle {
            what: "the out-of-band KV value",
            value: kv_value_2.clone(),
        },
        Needle {
            what: "the root token",
            value: env.get("VAULT_TOKEN").to_string(),
        },
        Needle {
            what: "the wrong token",
            value: wrong_token.clone(),
        },
        Needle {
            what: "the reviewer JWT",
            value: auth.reviewer_jwt.clone(),
        },
        Needle {
            what: "the ServiceAccount JWT",
            value: sa_jwt.clone(),
        },
    ];
    let found: Vec<String> = sources
        .iter()
        .flat_map(|(where_, text)| leaks(&needles, where_, text))
        .collect();
    assert!(found.is_empty(), "secrets leaked: {found:#?}");
    // The haystacks are real: the render used the observed connection Secret, the
    // conditions carry the errors.
    assert!(render.contains("VAULT_ADDR"), "render output:\n{render}");
    assert!(
        sources
            .iter()
            .any(|(w, t)| w.starts_with("kubectl describe") && t.contains("refused the token")),
        "describe shows the errors"
    );

    for (kind, name) in [
        ("Policy", &good),
        ("Policy", &via_wrong),
        ("Policy", &via_bad_role),
        ("KVSecret", &kv),
        ("KubernetesAuthBackendConfig", &backend),
    ] {
        delete(&client, VAULT_API, kind, name).await;
        wait_gone(&client, VAULT_API, kind, name).await;
    }
    delete(&client, VAULT_API, "AuthBackend", &backend).await;
    wait_gone(&client, VAULT_API, "AuthBackend", &backend).await;
    vault_root(
        &env,
        reqwest::Method::DELETE,
        &format!("sys/auth/{}", auth.mount),
        None,
    )
    .await;
    let _ = std::fs::remove_file(&token_file);
}

/// `tessera render` of the example VaultPolicy claim with observed composed resources, the
/// role's connection Secret holding `address` = `value` and `role` = `jwt`.
fn render_with_secret_connection_values(value: &str, jwt: &str) -> String {
    let root = tessera_tests::repo_root();
    let claim = root.join("compositions/vault/example-claim.yaml");
    let composition = root.join("compositions/vault/composition.yaml");
    let xrd = root.join("compositions/vault/xrd.yaml");
    let run = |observed: Option<&Path>| {
        let mut cmd = std::process::Command::new(tessera_bin());
        cmd.arg("render")
            .arg(&claim)
            .arg(&composition)
            .arg("--xrd")
            .arg(&xrd);
        if let Some(dir) = observed {
            cmd.arg("--observed").arg(dir);
        }
        let out = cmd.output().expect("run tessera render");
        assert!(
            out.status.success(),
            "tessera render failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    // The composed resources as the controller would make them, then observed as Ready.
    let first = run(None);
    let dir = std::env::temp_dir().join(unique("leaks-observed"));
    std::fs::create_dir_all(&dir).unwrap();
    let ready = json!({ "conditions": [
        { "type": "Ready", "status": "True", "reason": "Available", "lastTransitionTime": "2025-01-01T00:00:00Z" },
        { "type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "2025-01-01T00:00:00Z" }
    ]});
    let b64 = base64::engine::general_purpose::STANDARD;
    for doc in serde_yaml::Deserializer::from_str(&first) {
        let Ok(mut obj): Result<serde_yaml::Value, _> = serde::Deserialize::deserialize(doc) else {
            continue;
        };
        let Some(kind) = obj["kind"].as_str().map(str::to_string) else {
            continue;
        };
        if !matches!(kind.as_str(), "Policy" | "KubernetesAuthRole") {
            continue;
        }
        obj["status"] = serde_yaml::to_value(&ready).unwrap();
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let mut text = serde_yaml::to_string(&obj).unwrap();
        if let Some(secret) = obj["spec"]["writeConnectionSecretToRef"].as_mapping() {
            let secret = json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": { "name": secret.get("name").and_then(|v| v.as_str()),
                    "namespace": secret.get("namespace").and_then(|v| v.as_str()) },
                "data": { "address": b64.encode(value), "auth_path": b64.encode("kubernetes"),
                    "role": b64.encode(jwt) }
            });
            text.push_str("---\n");
            text.push_str(&serde_yaml::to_string(&secret).unwrap());
        }
        std::fs::write(dir.join(format!("{name}.yaml")), text).unwrap();
    }
    let out = run(Some(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    out
}
