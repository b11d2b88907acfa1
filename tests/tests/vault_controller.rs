//! The Vault provider driven by the managed runtime, end to end: objects applied to the
//! real kube-apiserver, reconciled in this process, against the real OpenBao server of
//! testenv. Every test uses names of its own, so tests run in parallel in one OpenBao.

use std::time::{Duration, Instant};

use serde_json::json;
use tessera_tests::{
    TestEnv, VAULT_API, apply, delete, install_crds, kubectl, start_vault_controller_in_process,
    unique, vault_provider_config, wait_for, wait_gone, wait_ready, wait_reconciled,
    wait_sync_error,
};
use vaultrs::client::VaultClient;

async fn setup() -> (TestEnv, kube::Client, String) {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_vault_controller_in_process(&env);
    let pc = unique("vault");
    vault_provider_config(&env, &client, &pc, env.get("VAULT_TOKEN")).await;
    (env, client, pc)
}

/// A managed resource of `kind` with a poll interval of one second, so that drift repair
/// is seen quickly.
fn managed(kind: &str, name: &str, pc: &str, for_provider: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": VAULT_API, "kind": kind,
        "metadata": { "name": name, "annotations": { "tessera.dev/poll-interval": "1s" } },
        "spec": { "providerConfigRef": { "name": pc }, "forProvider": for_provider }
    })
}

async fn policy_text(vault: &VaultClient, name: &str) -> Option<String> {
    match vaultrs::sys::policy::read(vault, name).await {
        Ok(p) => Some(p.rules),
        Err(vaultrs::error::ClientError::APIError { code: 404, .. }) => None,
        Err(e) => panic!("read policy {name}: {e}"),
    }
}

/// The mount (or auth method) at `path` as OpenBao lists it.
async fn mount_at(env: &TestEnv, sys: &str, path: &str) -> Option<serde_json::Value> {
    let list = vault_http(env, reqwest::Method::GET, sys, None).await;
    list["data"].get(format!("{path}/")).cloned()
}

/// A raw call of OpenBao's HTTP API with the root token (vaultrs has no tune endpoint).
async fn vault_http(
    env: &TestEnv,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
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
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn a_policy_from_rules_is_written_marked_repaired_after_drift_and_deleted() {
    let (env, client, pc) = setup().await;
    let vault = env.vault();
    let p = unique("app-read");
    let rules = json!({ "rules": [
        { "paths": ["secret/data/app/*"], "capabilities": ["read", "list"], "description": "the app's secrets" },
        { "paths": ["secret/metadata/app/*"], "capabilities": ["list"] }
    ]});
    apply(&client, managed("Policy", &p, &pc, rules.clone())).await;
    let o = wait_ready(&client, VAULT_API, "Policy", &p).await;
    let uid = o.metadata.uid.clone().unwrap();
    let text = policy_text(&vault, &p).await.expect("the policy exists");
    assert!(
        text.starts_with(&format!("# tessera.dev/managed-resource-uid={uid}\n")),
        "OpenBao keeps the mark line:\n{text}"
    );
    assert!(text.contains("path \"secret/data/app/*\""), "{text}");
    assert_eq!(
        o.data["status"]["atProvider"]["managedResourceUid"],
        json!(uid),
        "observe reads the mark back"
    );

    // Out of band: a capability added and a path dropped.
    vaultrs::sys::policy::set(
        &vault,
        &p,
        "path \"secret/data/app/*\" { capabilities = [\"read\", \"list\", \"delete\"] }",
    )
    .await
    .unwrap();
    let repaired = wait_for(Duration::from_secs(30), || async {
        let text = policy_text(&vault, &p).await?;
        (text.contains("secret/metadata/app/*") && !text.contains("delete")).then_some(text)
    })
    .await
    .expect("the policy is written back at the next poll");
    assert!(repaired.contains(&uid));
    let described = kubectl(&env, &["describe", "policies.vault.tessera.dev", &p]);
    assert!(
        described.contains("has capabilities [delete, list, read] instead of [list, read]"),
        "the update event says which capability differed:\n{described}"
    );

    // A poll that finds OpenBao's stored text equal in meaning writes nothing.
    let before = vaultrs::sys::policy::read(&vault, &p).await.unwrap().rules;
    wait_reconciled("Policy", None, &p, Instant::now(), Duration::from_secs(30)).await;
    wait_reconciled("Policy", None, &p, Instant::now(), Duration::from_secs(30)).await;
    assert_eq!(policy_text(&vault, &p).await.unwrap(), before);

    delete(&client, VAULT_API, "Policy", &p).await;
    wait_gone(&client, VAULT_API, "Policy", &p).await;
    assert_eq!(
        policy_text(&vault, &p).await,
        None,
        "Delete removes the policy"
    );
}

#[tokio::test]
async fn an_orphaned_policy_stays_and_an_observe_only_policy_is_imported_untouched() {
    let (env, client, pc) = setup().await;
    let vault = env.vault();

    let orphan = unique("orphan");
    let mut obj = managed(
        "Policy",
        &orphan,
        &pc,
        json!({ "policy": "path \"secret/data/orphan\" {\n  capabilities = [\"read\"]\n}\n" }),
    );
    obj["spec"]["deletionPolicy"] = json!("Orphan");
    apply(&client, obj).await;
    wait_ready(&client, VAULT_API, "Policy", &orphan).await;
    delete(&client, VAULT_API, "Policy", &orphan).await;
    wait_gone(&client, VAULT_API, "Policy", &orphan).await;
    assert!(
        policy_text(&vault, &orphan).await.is_some(),
        "Orphan keeps the policy"
    );
    vaultrs::sys::policy::delete(&vault, &orphan).await.unwrap();

    let existing = unique("existing");
    let by_hand = "# written by hand\npath \"secret/data/x\" { capabilities = [\"read\"] }";
    vaultrs::sys::policy::set(&vault, &existing, by_hand)
        .await
        .unwrap();
    let mut obj = managed("Policy", &existing, &pc, json!({}));
    obj["spec"]["managementPolicies"] = json!(["Observe"]);
    apply(&client, obj).await;
    let o = wait_ready(&client, VAULT_API, "Policy", &existing).await;
    assert_eq!(
        o.data["status"]["atProvider"]["paths"],
        json!(["secret/data/x"])
    );
    assert_eq!(
        o.data["status"]["atProvider"]["managedResourceUid"],
        serde_json::Value::Null,
        "a policy written by hand has no mark"
    );
    wait_reconciled(
        "Policy",
        None,
        &existing,
        Instant::now(),
        Duration::from_secs(30),
    )
    .await;
    delete(&client, VAULT_API, "Policy", &existing).await;
    wait_gone(&client, VAULT_API, "Policy", &existing).await;
    assert_eq!(
        policy_text(&vault, &existing).await.as_deref(),
        Some(by_hand),
        "an Observe-only policy is never changed nor deleted"
    );
    vaultrs::sys::policy::delete(&vault, &existing)
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_hcl_and_reserved_names_are_explained_and_change_nothing() {
    let (env, client, pc) = setup().await;
    let vault = env.vault();

    let bad = unique("malformed");
    apply(
        &client,
        managed(
            "Policy",
            &bad,
            &pc,
            json!({ "policy": "path \"secret/*\" { capabilities = [\"read\" }" }),
        ),
    )
    .await;
    let synced =
        wait_sync_error(&client, VAULT_API, "Policy", &bad, "failed to parse policy").await;
    assert_eq!(synced.reason, "ReconcileError");
    assert!(policy_text(&vault, &bad).await.is_none());
    let described = kubectl(&env, &["describe", "policies.vault.tessera.dev", &bad]);
    assert!(
        described.contains("failed to parse policy"),
        "OpenBao's parse error is in the events:\n{described}"
    );

    let default_before = policy_text(&vault, "default").await.unwrap();
    for reserved in ["root", "default"] {
        let name = unique(&format!("reserved-{reserved}"));
        let mut obj = managed(
            "Policy",
            &name,
            &pc,
            json!({ "policy": "path \"*\" { capabilities = [\"sudo\", \"read\"] }" }),
        );
        obj["metadata"]["annotations"]["tessera.dev/external-name"] = json!(reserved);
        apply(&client, obj).await;
        let synced = wait_sync_error(&client, VAULT_API, "Policy", &name, "is reserved").await;
        assert!(
            synced.message.contains(&format!("{reserved:?}")),
            "{}",
            synced.message
        );
        delete(&client, VAULT_API, "Policy", &name).await;
        wait_gone(&client, VAULT_API, "Policy", &name).await;
    }
    assert_eq!(
        policy_text(&vault, "default").await.unwrap(),
        default_before,
        "the default policy is neither changed nor deleted"
    );

    delete(&client, VAULT_API, "Policy", &bad).await;
    wait_gone(&client, VAULT_API, "Policy", &bad).await;
}

#[tokio::test]
async fn a_missing_secret_or_a_wrong_token_is_a_config_error_naming_the_provider_config() {
    let (env, client, _) = setup().await;
    let vault = env.vault();

    // A ProviderConfig whose Secret does not exist.
    let no_secret = unique("nosecret");
    apply(
        &client,
        json!({
            "apiVersion": VAULT_API, "kind": "ProviderConfig",
            "metadata": { "name": no_secret },
            "spec": { "address": env.get("VAULT_ADDR"),
                "credentials": { "source": "Secret",
                    "secretRef": { "name": "no-such-secret", "namespace": tessera_tests::TEST_NAMESPACE } } }
        }),
    )
    .await;
    let p1 = unique("nocreds");
    apply(
        &client,
        managed(
            "Policy",
            &p1,
            &no_secret,
            json!({ "rules": [{ "paths": ["a"], "capabilities": ["read"] }] }),
        ),
    )
    .await;
    let synced = wait_sync_error(&client, VAULT_API, "Policy", &p1, &no_secret).await;
    assert!(synced.message.contains("not found"), "{}", synced.message);

    // A wrong token.
    let wrong = unique("wrongtoken");
    vault_provider_config(&env, &client, &wrong, "s.not-a-token").await;
    let p2 = unique("wrongtoken");
    apply(
        &client,
        managed(
            "Policy",
            &p2,
            &wrong,
            json!({ "rules": [{ "paths": ["a"], "capabilities": ["read"] }] }),
        ),
    )
    .await;
    let synced = wait_sync_error(&client, VAULT_API, "Policy", &p2, &wrong).await;
    assert!(
        synced.message.contains("refused the token"),
        "{}",
        synced.message
    );
    assert!(
        !synced.message.contains("s.not-a-token"),
        "{}",
        synced.message
    );
    assert_eq!(policy_text(&vault, &p2).await, None);

    // Fixing the Secret converges, without a restart.
    vault_provider_config(&env, &client, &wrong, env.get("VAULT_TOKEN")).await;
    wait_ready(&client, VAULT_API, "Policy", &p2).await;
    assert!(policy_text(&vault, &p2).await.is_some());

    for p in [&p1, &p2] {
        delete(&client, VAULT_API, "Policy", p).await;
    }
    for p in [&p1, &p2] {
        wait_gone(&client, VAULT_API, "Policy", p).await;
    }
}

#[tokio::test]
async fn a_kv_mount_is_enabled_tuned_back_after_drift_refuses_a_type_change_and_is_disabled() {
    let (env, client, pc) = setup().await;
    let m = unique("kv");
    let spec = json!({
        "type": "kv", "description": "team secrets", "defaultLeaseTtl": "1h",
        "maxLeaseTtl": "2h", "options": { "version": "2" }
    });
    apply(&client, managed("Mount", &m, &pc, spec.clone())).await;
    let o = wait_ready(&client, VAULT_API, "Mount", &m).await;
    let uid = o.metadata.uid.clone().unwrap();
    let mount = mount_at(&env, "sys/mounts", &m).await.expect("mounted");
    assert_eq!(mount["type"], json!("kv"));
    assert_eq!(mount["options"]["version"], json!("2"));
    assert_eq!(
        mount["options"]["tessera.dev/managed-resource-uid"],
        json!(uid)
    );
    assert_eq!(mount["config"]["default_lease_ttl"], json!(3600));
    assert_eq!(
        o.data["status"]["atProvider"]["managedResourceUid"],
        json!(uid)
    );

    // Out of band: description and TTL tuned.
    vault_http(
        &env,
        reqwest::Method::POST,
        &format!("sys/mounts/{m}/tune"),
        Some(json!({ "description": "changed", "default_lease_ttl": "60s" })),
    )
    .await;
    wait_for(Duration::from_secs(30), || async {
        let mount = mount_at(&env, "sys/mounts", &m).await?;
        (mount["description"] == json!("team secrets")
            && mount["config"]["default_lease_ttl"] == json!(3600))
        .then_some(())
    })
    .await
    .expect("the mount is tuned back at the next poll");

    // A type change is refused and nothing changes.
    let mut changed = spec.clone();
    changed["type"] = json!("transit");
    apply(&client, managed("Mount", &m, &pc, changed)).await;
    let synced = wait_sync_error(&client, VAULT_API, "Mount", &m, "cannot change the type").await;
    assert!(synced.message.contains("\"kv\""), "{}", synced.message);
    assert_eq!(
        mount_at(&env, "sys/mounts", &m).await.unwrap()["type"],
        json!("kv")
    );
    apply(&client, managed("Mount", &m, &pc, spec)).await;
    wait_ready(&client, VAULT_API, "Mount", &m).await;

    delete(&client, VAULT_API, "Mount", &m).await;
    wait_gone(&client, VAULT_API, "Mount", &m).await;
    assert!(
        mount_at(&env, "sys/mounts", &m).await.is_none(),
        "Delete disables the mount"
    );
}

#[tokio::test]
async fn an_auth_backend_is_enabled_tuned_back_after_drift_and_orphaned() {
    let (env, client, pc) = setup().await;
    let a = unique("approle");
    let mut obj = managed(
        "AuthBackend",
        &a,
        &pc,
        json!({ "type": "approle", "description": "ci logins", "maxLeaseTtl": "30m" }),
    );
    obj["spec"]["deletionPolicy"] = json!("Orphan");
    apply(&client, obj).await;
    let o = wait_ready(&client, VAULT_API, "AuthBackend", &a).await;
    let uid = o.metadata.uid.clone().unwrap();
    let auth = mount_at(&env, "sys/auth", &a).await.expect("enabled");
    assert_eq!(auth["type"], json!("approle"));
    assert_eq!(auth["config"]["max_lease_ttl"], json!(1800));
    assert_eq!(
        auth["options"]["tessera.dev/managed-resource-uid"],
        json!(uid)
    );

    vault_http(
        &env,
        reqwest::Method::POST,
        &format!("sys/auth/{a}/tune"),
        Some(json!({ "max_lease_ttl": "5m" })),
    )
    .await;
    wait_for(Duration::from_secs(30), || async {
        let auth = mount_at(&env, "sys/auth", &a).await?;
        (auth["config"]["max_lease_ttl"] == json!(1800)).then_some(())
    })
    .await
    .expect("the auth method is tuned back at the next poll");

    delete(&client, VAULT_API, "AuthBackend", &a).await;
    wait_gone(&client, VAULT_API, "AuthBackend", &a).await;
    assert!(
        mount_at(&env, "sys/auth", &a).await.is_some(),
        "Orphan keeps the auth method"
    );
    vault_http(
        &env,
        reqwest::Method::DELETE,
        &format!("sys/auth/{a}"),
        None,
    )
    .await;
}

fn kv_secret(
    name: &str,
    pc: &str,
    path: &str,
    source: &str,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut for_provider = json!({
        "mount": "secret", "path": path,
        "dataSecretRef": { "name": source, "namespace": tessera_tests::TEST_NAMESPACE }
    });
    if let (Some(fp), Some(extra)) = (for_provider.as_object_mut(), extra.as_object()) {
        fp.extend(extra.clone());
    }
    managed("KVSecret", name, pc, for_provider)
}

async fn source_secret(client: &kube::Client, name: &str, data: serde_json::Value) {
    apply(
        client,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": name, "namespace": tessera_tests::TEST_NAMESPACE },
            "data": null,
            "stringData": data
        }),
    )
    .await;
}

async fn kv_data(vault: &VaultClient, path: &str) -> Option<serde_json::Value> {
    match vaultrs::kv2::read::<serde_json::Value>(vault, "secret", path).await {
        Ok(v) => Some(v),
        Err(vaultrs::error::ClientError::APIError { code: 404, .. }) => None,
        Err(e) => panic!("read secret/{path}: {e}"),
    }
}

#[tokio::test]
async fn a_kv_secret_copies_its_secret_repairs_a_newer_version_and_never_shows_values() {
    let (env, client, pc) = setup().await;
    let vault = env.vault();
    let k = unique("kv-app");
    let path = format!("apps/{k}");
    let src = unique("kv-src");
    let password = format!("pw-{}", unique("v"));
    source_secret(
        &client,
        &src,
        json!({ "username": "app", "password": password }),
    )
    .await;
    let mut obj = kv_secret(
        &k,
        &pc,
        &path,
        &src,
        json!({ "customMetadata": { "owner": "team-a" } }),
    );
    obj["spec"]["writeConnectionSecretToRef"] =
        json!({ "name": format!("{k}-conn"), "namespace": tessera_tests::TEST_NAMESPACE });
    apply(&client, obj).await;
    let o = wait_ready(&client, VAULT_API, "KVSecret", &k).await;
    let uid = o.metadata.uid.clone().unwrap();
    assert_eq!(
        kv_data(&vault, &path).await,
        Some(json!({ "username": "app", "password": password }))
    );
    let meta = vaultrs::kv2::read_metadata(&vault, "secret", &path)
        .await
        .unwrap();
    let custom = meta.custom_metadata.unwrap_or_default();
    assert_eq!(custom.get("owner").map(String::as_str), Some("team-a"));
    assert_eq!(custom.get("tessera.dev/managed-resource-uid"), Some(&uid));
    let conn =
        tessera_tests::secret_data(&client, tessera_tests::TEST_NAMESPACE, &format!("{k}-conn"))
            .await
            .expect("connection secret");
    assert_eq!(conn.get("path"), Some(&path));
    assert_eq!(conn.get("mount").map(String::as_str), Some("secret"));

    // Out of band: a newer version with other data is replaced by the Secret's.
    vaultrs::kv2::set(
        &vault,
        "secret",
        &path,
        &json!({ "username": "app", "password": "by-hand" }),
    )
    .await
    .unwrap();
    wait_for(Duration::from_secs(30), || async {
        let meta = vaultrs::kv2::read_metadata(&vault, "secret", &path)
            .await
            .ok()?;
        let data = kv_data(&vault, &path).await?;
        (meta.current_version >= 3 && data["password"] == json!(password)).then_some(())
    })
    .await
    .expect("a new version with the Secret's data is written at the next poll");

    // A changed Secret is written as a new version.
    let rotated = format!("pw-{}", unique("r"));
    source_secret(
        &client,
        &src,
        json!({ "username": "app", "password": rotated }),
    )
    .await;
    wait_for(Duration::from_secs(30), || async {
        (kv_data(&vault, &path).await?["password"] == json!(rotated)).then_some(())
    })
    .await
    .expect("the rotated value reaches Vault");

    let described = kubectl(&env, &["describe", "kvsecrets.vault.tessera.dev", &k]);
    let yaml = kubectl(
        &env,
        &["get", "kvsecrets.vault.tessera.dev", &k, "-o", "yaml"],
    );
    for text in [&described, &yaml] {
        assert!(
            !text.contains(&password) && !text.contains(&rotated) && !text.contains("by-hand"),
            "no value in the object or its events:\n{text}"
        );
    }
    assert!(
        described.contains("differs from the Secret in keys [password]"),
        "the update names the key:\n{described}"
    );

    delete(&client, VAULT_API, "KVSecret", &k).await;
    wait_gone(&client, VAULT_API, "KVSecret", &k).await;
    assert!(
        matches!(
            vaultrs::kv2::read_metadata(&vault, "secret", &path).await,
            Err(vaultrs::error::ClientError::APIError { code: 404, .. })
        ),
        "AllVersions deletes the metadata and every version"
    );
}

/// The data write of a KV secret that OpenBao carried out but whose answer was lost (a
/// fault proxy cuts the connection before the answer): the create stays pending, and the
/// next pass finds the secret marked as its own (the mark is written before the data)
/// instead of refusing it as not created by Tessera.
#[tokio::test]
async fn a_kv_secret_whose_write_lost_its_answer_is_made_its_own() {
    use tessera_tests::fault_proxy::Faults;
    let (env, client, _) = setup().await;
    let vault = env.vault();
    let (proxy, pc) = lossy_provider_config(&env, &client).await;
    let k = unique("kv-lost");
    let path = format!("apps/{k}");
    proxy.set(Faults {
        lose_answer_to: Some(format!("POST /v1/secret/data/{path} ")),
        ..Faults::default()
    });
    let src = unique("kv-src");
    source_secret(&client, &src, json!({ "token": "t1" })).await;
    apply(&client, kv_secret(&k, &pc, &path, &src, json!({}))).await;
    let o = wait_ready(&client, VAULT_API, "KVSecret", &k).await;
    assert_eq!(proxy.stats().resets, 1, "the answer of the write was lost");
    assert_eq!(kv_data(&vault, &path).await, Some(json!({ "token": "t1" })));
    let meta = vaultrs::kv2::read_metadata(&vault, "secret", &path)
        .await
        .unwrap();
    assert_eq!(meta.versions.len(), 1, "written once");
    assert_eq!(
        meta.custom_metadata
            .unwrap_or_default()
            .get("tessera.dev/managed-resource-uid"),
        o.metadata.uid.as_ref(),
        "marked as the KVSecret's own"
    );
    delete(&client, VAULT_API, "KVSecret", &k).await;
    wait_gone(&client, VAULT_API, "KVSecret", &k).await;
    assert!(kv_data(&vault, &path).await.is_none(), "deleted");
}

/// The proxy of `pc` (a ProviderConfig with the root token) in front of testenv's OpenBao.
async fn lossy_provider_config(
    env: &TestEnv,
    client: &kube::Client,
) -> (tessera_tests::fault_proxy::FaultProxy, String) {
    let upstream = env
        .get("VAULT_ADDR")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("OpenBao's address is host:port");
    let proxy = tessera_tests::fault_proxy::FaultProxy::start(upstream)
        .await
        .unwrap();
    let pc = unique("vault-faulty");
    vault_provider_config(env, client, &pc, env.get("VAULT_TOKEN")).await;
    apply(client, json!({
        "apiVersion": VAULT_API, "kind": "ProviderConfig", "metadata": { "name": pc },
        "spec": { "address": format!("http://{}", proxy.addr()),
            "credentials": { "source": "Secret",
                "secretRef": { "name": format!("{pc}-creds"), "namespace": tessera_tests::TEST_NAMESPACE } } }
    }))
    .await;
    (proxy, pc)
}

/// A create whose metadata write (the mark) or data write OpenBao answers with a server
/// error is completed by a later pass: the object becomes Ready with one version, marked
/// as its own, and its deletion removes the secret. (With the mark written after the data,
/// a failed mark write left an unmarked secret, refused as not created by Tessera.)
#[tokio::test]
async fn a_kv_secret_whose_mark_or_data_write_failed_is_completed_and_deleted() {
    use tessera_tests::fault_proxy::Faults;
    let (env, client, _) = setup().await;
    let vault = env.vault();
    let (proxy, pc) = lossy_provider_config(&env, &client).await;
    let src = unique("kv-src");
    source_secret(&client, &src, json!({ "token": "t1" })).await;
    for (n, endpoint) in ["metadata", "data"].into_iter().enumerate() {
        let k = unique(&format!("kv-fail-{endpoint}"));
        let path = format!("apps/{k}");
        proxy.set(Faults {
            fail_request: Some(format!("POST /v1/secret/{endpoint}/{path} ")),
            ..Faults::default()
        });
        apply(&client, kv_secret(&k, &pc, &path, &src, json!({}))).await;
        let o = wait_ready(&client, VAULT_API, "KVSecret", &k).await;
        assert_eq!(
            proxy.stats().failed,
            n as u64 + 1,
            "the {endpoint} write was answered with a server error"
        );
        assert_eq!(kv_data(&vault, &path).await, Some(json!({ "token": "t1" })));
        let meta = vaultrs::kv2::read_metadata(&vault, "secret", &path)
            .await
            .unwrap();
        assert_eq!(meta.versions.len(), 1, "one version ({endpoint})");
        assert_eq!(
            meta.custom_metadata
                .unwrap_or_default()
                .get("tessera.dev/managed-resource-uid"),
            o.metadata.uid.as_ref(),
            "marked as the KVSecret's own ({endpoint})"
        );
        delete(&client, VAULT_API, "KVSecret", &k).await;
        wait_gone(&client, VAULT_API, "KVSecret", &k).await;
        assert!(
            matches!(
                vaultrs::kv2::read_metadata(&vault, "secret", &path).await,
                Err(vaultrs::error::ClientError::APIError { code: 404, .. })
            ),
            "deleted with its metadata ({endpoint})"
        );
    }
}

/// A secret whose latest version is deleted still belongs to whoever its mark names: a
/// KVSecret for its path is refused (not owned) and writes nothing, whether the mark is
/// another managed resource's or missing, until it sets adoptExisting.
#[tokio::test]
async fn a_kv_secret_whose_latest_version_is_deleted_is_not_taken_over_without_adopt_existing() {
    let (env, client, pc) = setup().await;
    let vault = env.vault();
    let k = unique("kv-theirs");
    let path = format!("apps/{k}");
    let mark = "tessera.dev/managed-resource-uid";
    vaultrs::kv2::set(&vault, "secret", &path, &json!({ "token": "theirs" }))
        .await
        .unwrap();
    let mut req = vaultrs::api::kv2::requests::SetSecretMetadataRequest::builder();
    req.custom_metadata(
        [(mark.to_string(), "someone-else-uid".to_string())]
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>(),
    );
    vaultrs::kv2::set_metadata(&vault, "secret", &path, Some(&mut req))
        .await
        .unwrap();
    vaultrs::kv2::delete_latest(&vault, "secret", &path)
        .await
        .unwrap();
    let src = unique("kv-src");
    source_secret(&client, &src, json!({ "token": "ours" })).await;

    let unchanged = |want_mark: Option<&'static str>| {
        let vault = &vault;
        let path = &path;
        async move {
            let meta = vaultrs::kv2::read_metadata(vault, "secret", path)
                .await
                .unwrap();
            assert_eq!(meta.current_version, 1, "no version written");
            assert!(
                !meta.versions["1"].deletion_time.is_empty(),
                "the latest version is still deleted"
            );
            assert_eq!(
                meta.custom_metadata
                    .unwrap_or_default()
                    .get(mark)
                    .map(String::as_str),
                want_mark,
                "the mark is unchanged"
            );
        }
    };

    apply(&client, kv_secret(&k, &pc, &path, &src, json!({}))).await;
    let synced = wait_sync_error(&client, VAULT_API, "KVSecret", &k, "someone-else-uid").await;
    assert_eq!(synced.reason, "ExternalResourceNotOwned");
    wait_reconciled(
        "KVSecret",
        None,
        &k,
        Instant::now(),
        Duration::from_secs(30),
    )
    .await;
    unchanged(Some("someone-else-uid")).await;

    // Unmarked: not created by Tessera, still refused.
    let mut req = vaultrs::api::kv2::requests::SetSecretMetadataRequest::builder();
    req.custom_metadata(std::collections::HashMap::new());
    vaultrs::kv2::set_metadata(&vault, "secret", &path, Some(&mut req))
        .await
        .unwrap();
    let synced = wait_sync_error(
        &client,
        VAULT_API,
        "KVSecret",
        &k,
        "was not created by Tessera",
    )
    .await;
    assert_eq!(synced.reason, "ExternalResourceNotOwned");
    wait_reconciled(
        "KVSecret",
        None,
        &k,
        Instant::now(),
        Duration::from_secs(30),
    )
    .await;
    unchanged(None).await;

    // Adopted: marked, then a new version with the Secret's data.
    let mut obj = kv_secret(&k, &pc, &path, &src, json!({}));
    obj["spec"]["adoptExisting"] = json!(true);
    let uid = apply(&client, obj).await.metadata.uid.unwrap();
    wait_ready(&client, VAULT_API, "KVSecret", &k).await;
    assert_eq!(
        kv_data(&vault, &path).await,
        Some(json!({ "token": "ours" }))
    );
    let meta = vaultrs::kv2::read_metadata(&vault, "secret", &path)
        .await
        .unwrap();
    assert_eq!(
        meta.custom_metadata.unwrap_or_default().get(mark),
        Some(&uid)
    );
    delete(&client, VAULT_API, "KVSecret", &k).await;
    wait_gone(&client, VAULT_API, "KVSecret", &k).await;
    assert!(
        kv_data(&vault, &path).await.is_none(),
        "an adopted secret is deleted"
    );
}

/// A KVSecret whose token may write the metadata but not the data leaves a secret with
/// its mark and no version; deleting it, even with `deletion: LatestVersion`, removes that
/// metadata (there is no history to keep), instead of leaving a marked secret behind.
#[tokio::test]
async fn a_kv_secret_marked_but_never_written_is_deleted_whole() {
    let (env, client, _) = setup().await;
    let vault = env.vault();
    let k = unique("kv-markonly");
    let path = format!("apps/{k}");
    let policy = unique("kv-metadata-only");
    vaultrs::sys::policy::set(
        &vault,
        &policy,
        &format!(
            "path \"secret/metadata/{path}\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\"] }}"
        ),
    )
    .await
    .unwrap();
    let token = vaultrs::token::new(
        &vault,
        Some(
            vaultrs::api::token::requests::CreateTokenRequest::builder()
                .policies(vec![policy.clone()]),
        ),
    )
    .await
    .expect("a token that may write only the metadata");
    let pc = unique("vault-metadata-only");
    vault_provider_config(&env, &client, &pc, &token.client_token).await;
    let src = unique("kv-src");
    source_secret(&client, &src, json!({ "token": "t1" })).await;
    let uid = apply(
        &client,
        kv_secret(&k, &pc, &path, &src, json!({ "deletion": "LatestVersion" })),
    )
    .await
    .metadata
    .uid
    .unwrap();
    wait_sync_error(&client, VAULT_API, "KVSecret", &k, "permission denied").await;
    let meta = vaultrs::kv2::read_metadata(&vault, "secret", &path)
        .await
        .expect("the metadata is written first");
    assert_eq!(meta.current_version, 0, "no version");
    assert_eq!(
        meta.custom_metadata
            .unwrap_or_default()
            .get("tessera.dev/managed-resource-uid"),
        Some(&uid)
    );
    delete(&client, VAULT_API, "KVSecret", &k).await;
    wait_gone(&client, VAULT_API, "KVSecret", &k).await;
    assert!(
        matches!(
            vaultrs::kv2::read_metadata(&vault, "secret", &path).await,
            Err(vaultrs::error::ClientError::APIError { code: 404, .. })
        ),
        "the marked metadata without a version is deleted"
    );
    vaultrs::sys::policy::delete(&vault, &policy).await.unwrap();
}

#[tokio::test]
async fn a_kv_secret_deleting_only_the_latest_version_keeps_the_history() {
    let (env, client, pc) = setup().await;
    let vault = env.vault();
    let k = unique("kv-latest");
    let path = format!("apps/{k}");
    let src = unique("kv-src");
    source_secret(&client, &src, json!({ "token": "t1" })).await;
    apply(
        &client,
        kv_secret(&k, &pc, &path, &src, json!({ "deletion": "LatestVersion" })),
    )
    .await;
    wait_ready(&client, VAULT_API, "KVSecret", &k).await;
    delete(&client, VAULT_API, "KVSecret", &k).await;
    wait_gone(&client, VAULT_API, "KVSecret", &k).await;
    let meta = vaultrs::kv2::read_metadata(&vault, "secret", &path)
        .await
        .expect("the metadata stays");
    let latest = &meta.versions[&meta.current_version.to_string()];
    assert!(
        !latest.deletion_time.is_empty(),
        "the latest version is deleted"
    );
    assert!(!latest.destroyed, "and can be undeleted");
    vaultrs::kv2::delete_metadata(&vault, "secret", &path)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_service_account_logs_in_through_the_configured_kubernetes_auth_and_reads_only_what_its_role_allows()
 {
    let (env, client, pc) = setup().await;
    let vault = env.vault();
    let ns = tessera_tests::namespace(&client, &unique("k8s-auth")).await;
    let backend = unique("k8s");

    // The reviewer: a ServiceAccount allowed to review tokens.
    let reviewer = "vault-reviewer";
    let reviewer_jwt = tessera_tests::service_account_token(&client, &ns, reviewer).await;
    apply(
        &client,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": { "name": format!("{ns}-reviewer") },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator" },
            "subjects": [{ "kind": "ServiceAccount", "name": reviewer, "namespace": ns }]
        }),
    )
    .await;
    apply(
        &client,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "reviewer-jwt", "namespace": ns },
            "stringData": { "token": reviewer_jwt }
        }),
    )
    .await;

    apply(
        &client,
        managed(
            "AuthBackend",
            &backend,
            &pc,
            json!({ "type": "kubernetes" }),
        ),
    )
    .await;
    apply(
        &client,
        managed(
            "KubernetesAuthBackendConfig",
            &backend,
            &pc,
            json!({
                "backend": backend,
                "kubernetesHost": env.get("KUBE_APISERVER_URL"),
                "kubernetesCaCertRef": { "kind": "ConfigMap", "name": "kube-root-ca.crt", "namespace": ns, "key": "ca.crt" },
                "tokenReviewerJwtSecretRef": { "name": "reviewer-jwt", "namespace": ns, "key": "token" },
                "disableLocalCaJwt": true
            }),
        ),
    )
    .await;
    let secret_path = unique("svc");
    let policy = unique("svc-read");
    apply(
        &client,
        managed(
            "Policy",
            &policy,
            &pc,
            json!({ "rules": [{ "paths": [format!("secret/data/{secret_path}/*")], "capabilities": ["read"] }] }),
        ),
    )
    .await;
    let role = unique("svc-role");
    let mut role_obj = managed(
        "KubernetesAuthRole",
        &role,
        &pc,
        json!({
            "backend": backend,
            "boundServiceAccountNames": ["app"],
            "boundServiceAccountNamespaces": [ns],
            "tokenPolicies": [policy],
            "tokenTtl": "10m"
        }),
    );
    role_obj["spec"]["writeConnectionSecretToRef"] =
        json!({ "name": "vault-login", "namespace": ns });
    apply(&client, role_obj).await;
    for (kind, name) in [
        ("AuthBackend", &backend),
        ("KubernetesAuthBackendConfig", &backend),
        ("Policy", &policy),
        ("KubernetesAuthRole", &role),
    ] {
        wait_ready(&client, VAULT_API, kind, name).await;
    }
    let login = tessera_tests::secret_data(&client, &ns, "vault-login")
        .await
        .expect("the role's connection secret");
    assert_eq!(login.get("auth_path"), Some(&backend));
    assert_eq!(login.get("role"), Some(&role));

    vaultrs::kv2::set(
        &vault,
        "secret",
        &format!("{secret_path}/db"),
        &json!({ "user": "app" }),
    )
    .await
    .unwrap();
    vaultrs::kv2::set(
        &vault,
        "secret",
        &format!("other-{secret_path}/db"),
        &json!({ "user": "x" }),
    )
    .await
    .unwrap();

    // Log in as the ServiceAccount the role names.
    let app_jwt = tessera_tests::service_account_token(&client, &ns, "app").await;
    let auth = vaultrs::auth::kubernetes::login(&vault, &backend, &role, &app_jwt)
        .await
        .expect("login with the ServiceAccount token");
    let settings = vaultrs::client::VaultClientSettingsBuilder::default()
        .address(env.get("VAULT_ADDR"))
        .token(&auth.client_token)
        .build()
        .unwrap();
    let as_app = VaultClient::new(settings).unwrap();
    let allowed: serde_json::Value =
        vaultrs::kv2::read(&as_app, "secret", &format!("{secret_path}/db"))
            .await
            .expect("the policy allows reading its path");
    assert_eq!(allowed, json!({ "user": "app" }));
    let refused = vaultrs::kv2::read::<serde_json::Value>(
        &as_app,
        "secret",
        &format!("other-{secret_path}/db"),
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(vaultrs::error::ClientError::APIError { code: 403, .. })
        ),
        "another path is refused: {refused:?}"
    );
    // Another ServiceAccount cannot log in with the role.
    let other_jwt = tessera_tests::service_account_token(&client, &ns, "other").await;
    assert!(
        vaultrs::auth::kubernetes::login(&vault, &backend, &role, &other_jwt)
            .await
            .is_err()
    );

    // Out of band: the role's policies changed; repaired at the next poll.
    vault_http(
        &env,
        reqwest::Method::POST,
        &format!("auth/{backend}/role/{role}"),
        Some(json!({ "bound_service_account_names": ["app"], "bound_service_account_namespaces": [ns], "token_policies": ["root"] })),
    )
    .await;
    wait_for(Duration::from_secs(30), || async {
        let r = vault_http(
            &env,
            reqwest::Method::GET,
            &format!("auth/{backend}/role/{role}"),
            None,
        )
        .await;
        (r["data"]["token_policies"] == json!([policy]) && r["data"]["token_ttl"] == json!(600))
            .then_some(())
    })
    .await
    .expect("the role is written back at the next poll");

    for (kind, name) in [
        ("KubernetesAuthRole", &role),
        ("KubernetesAuthBackendConfig", &backend),
        ("Policy", &policy),
    ] {
        delete(&client, VAULT_API, kind, name).await;
        wait_gone(&client, VAULT_API, kind, name).await;
    }
    delete(&client, VAULT_API, "AuthBackend", &backend).await;
    wait_gone(&client, VAULT_API, "AuthBackend", &backend).await;
    assert!(mount_at(&env, "sys/auth", &backend).await.is_none());
    for p in [
        format!("{secret_path}/db"),
        format!("other-{secret_path}/db"),
    ] {
        vaultrs::kv2::delete_metadata(&vault, "secret", &p)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_revoked_token_is_reported_as_such_and_a_new_one_is_used_without_a_restart() {
    let (env, client, _) = setup().await;
    let vault = env.vault();
    let child = vaultrs::token::new(&vault, None)
        .await
        .expect("a child token");
    let pc = unique("revoked");
    vault_provider_config(&env, &client, &pc, &child.client_token).await;
    let p = unique("revoked-policy");
    let mut obj = managed(
        "Policy",
        &p,
        &pc,
        json!({ "rules": [{ "paths": ["secret/data/r/*"], "capabilities": ["read"] }] }),
    );
    apply(&client, obj.clone()).await;
    wait_ready(&client, VAULT_API, "Policy", &p).await;

    vaultrs::token::revoke(&vault, &child.client_token)
        .await
        .expect("revoke the token");
    // The next poll meets a 403; the one after checks the token again.
    let synced = wait_sync_error(&client, VAULT_API, "Policy", &p, "refused the token").await;
    assert!(synced.message.contains(&pc), "{}", synced.message);
    assert!(
        synced.message.contains("expired or revoked"),
        "{}",
        synced.message
    );
    assert!(!synced.message.contains(&child.client_token));

    // A new token in the Secret is used from the next reconcile on.
    vault_provider_config(&env, &client, &pc, env.get("VAULT_TOKEN")).await;
    obj["spec"]["forProvider"]["rules"][0]["capabilities"] = json!(["read", "list"]);
    apply(&client, obj).await;
    wait_for(Duration::from_secs(30), || async {
        let text = policy_text(&vault, &p).await?;
        text.contains("\"list\"").then_some(())
    })
    .await
    .expect("the new token writes the change");
    wait_ready(&client, VAULT_API, "Policy", &p).await;
    delete(&client, VAULT_API, "Policy", &p).await;
    wait_gone(&client, VAULT_API, "Policy", &p).await;
}

#[tokio::test]
async fn an_existing_policy_is_refused_until_adopted_then_marked_and_managed() {
    let (env, client, pc) = setup().await;
    let vault = env.vault();
    let p = unique("theirs");
    let theirs = "path \"secret/data/theirs/*\" { capabilities = [\"read\"] }";
    vaultrs::sys::policy::set(&vault, &p, theirs).await.unwrap();
    let rules = json!({ "rules": [{ "paths": ["secret/data/ours/*"], "capabilities": ["read"] }] });

    apply(&client, managed("Policy", &p, &pc, rules.clone())).await;
    let synced = wait_sync_error(
        &client,
        VAULT_API,
        "Policy",
        &p,
        "was not created by Tessera",
    )
    .await;
    assert_eq!(synced.reason, "ExternalResourceNotOwned");
    wait_reconciled("Policy", None, &p, Instant::now(), Duration::from_secs(30)).await;
    assert_eq!(
        policy_text(&vault, &p).await.as_deref(),
        Some(theirs),
        "a policy Tessera did not make is not changed"
    );

    // Marked by another managed resource: still not taken over.
    let other = format!("# tessera.dev/managed-resource-uid=someone-else-uid\n{theirs}");
    vaultrs::sys::policy::set(&vault, &p, &other).await.unwrap();
    wait_sync_error(&client, VAULT_API, "Policy", &p, "someone-else-uid").await;
    assert_eq!(
        policy_text(&vault, &p).await.as_deref(),
        Some(other.as_str())
    );

    // Adopted: marked with this managed resource's uid, then made to match the spec.
    let mut obj = managed("Policy", &p, &pc, rules);
    obj["spec"]["adoptExisting"] = json!(true);
    let applied = apply(&client, obj).await;
    let uid = applied.metadata.uid.clone().unwrap();
    wait_ready(&client, VAULT_API, "Policy", &p).await;
    let text = policy_text(&vault, &p).await.unwrap();
    assert!(
        text.starts_with(&format!("# tessera.dev/managed-resource-uid={uid}\n")),
        "{text}"
    );
    assert!(
        text.contains("secret/data/ours/*") && !text.contains("theirs"),
        "{text}"
    );

    delete(&client, VAULT_API, "Policy", &p).await;
    wait_gone(&client, VAULT_API, "Policy", &p).await;
    assert_eq!(
        policy_text(&vault, &p).await,
        None,
        "an adopted policy is deleted"
    );
}
