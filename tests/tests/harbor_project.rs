//! The Harbor provider's Project driven by the managed runtime: objects applied to the real
//! kube-apiserver, reconciled by the controller in this process, against testenv's
//! simulator of Harbor's API — or a real Harbor when `TESSERA_HARBOR_URL`,
//! `TESSERA_HARBOR_USERNAME` and `TESSERA_HARBOR_PASSWORD` are set.

use http::Method;
use serde_json::json;
use std::time::{Duration, Instant};
use tessera_tests::{
    HARBOR_API, HarborTarget, TestEnv, apply, delete, harbor_provider_config, install_crds,
    start_harbor_controller_in_process, unique, wait_for, wait_gone, wait_ready, wait_reconciled,
    wait_sync_error,
};

async fn setup() -> (kube::Client, HarborTarget, String) {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_harbor_controller_in_process(&env);
    let target = HarborTarget::load(&env);
    eprintln!(
        "Harbor tests against {} ({})",
        target.url,
        if target.simulator {
            "testenv's simulator of Harbor's API; set TESSERA_HARBOR_URL/_USERNAME/_PASSWORD for a real Harbor"
        } else {
            "a real Harbor"
        }
    );
    let pc = unique("harbor-pc");
    let password = target.password.clone();
    harbor_provider_config(&client, &target, &pc, &password).await;
    (client, target, pc)
}

/// A Harbor project name (lower case, unique per run).
fn project_name(prefix: &str) -> String {
    unique(prefix).to_lowercase()
}

fn project(name: &str, pc: &str, spec: serde_json::Value) -> serde_json::Value {
    let mut for_provider = json!({});
    let mut extra = serde_json::Map::new();
    if let Some(obj) = spec.as_object() {
        for (k, v) in obj {
            if ["deletionPolicy", "adoptExisting", "managementPolicies"].contains(&k.as_str()) {
                extra.insert(k.clone(), v.clone());
            } else {
                for_provider[k] = v.clone();
            }
        }
    }
    let mut s = json!({ "providerConfigRef": { "name": pc }, "forProvider": for_provider });
    if let Some(obj) = s.as_object_mut() {
        obj.extend(extra);
    }
    json!({
        "apiVersion": HARBOR_API, "kind": "Project",
        "metadata": { "name": name },
        "spec": s
    })
}

async fn wait_harbor<F>(
    what: &str,
    target: &HarborTarget,
    path: &str,
    check: F,
) -> Option<serde_json::Value>
where
    F: Fn(&Option<serde_json::Value>) -> bool,
{
    let path = path.to_string();
    wait_for(Duration::from_secs(60), || {
        let path = path.clone();
        let check = &check;
        async move {
            let got = target.get(&path).await;
            check(&got).then_some(got)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{what}: {e}"))
}

async fn quota_of(target: &HarborTarget, project_id: i64) -> i64 {
    let q = target
        .get(&format!(
            "/quotas?reference=project&reference_id={project_id}"
        ))
        .await
        .expect("quota list");
    q[0]["hard"]["storage"].as_i64().expect("hard storage")
}

#[tokio::test]
async fn project_lifecycle_drift_repaired_and_deleted() {
    let (client, target, pc) = setup().await;
    let name = project_name("proj");
    apply(
        &client,
        project(
            &name,
            &pc,
            json!({"public": true, "autoScan": true, "preventVulnerableImages": true, "severity": "high",
                   "storageLimit": 1_073_741_824_i64, "cveAllowlist": ["CVE-2024-0001"]}),
        ),
    )
    .await;
    let obj = wait_ready(&client, HARBOR_API, "Project", &name).await;

    let p = target
        .get(&format!("/projects/{name}"))
        .await
        .expect("the project exists in Harbor");
    assert_eq!(p["metadata"]["public"], "true");
    assert_eq!(p["metadata"]["auto_scan"], "true");
    assert_eq!(p["metadata"]["prevent_vul"], "true");
    assert_eq!(p["metadata"]["severity"], "high");
    assert_eq!(p["cve_allowlist"]["items"][0]["cve_id"], "CVE-2024-0001");
    let id = p["project_id"].as_i64().expect("project id");
    assert_eq!(quota_of(&target, id).await, 1_073_741_824);
    assert_eq!(obj.data["status"]["atProvider"]["projectId"], id);

    // Drift behind Tessera's back: metadata and quota changed through the API.
    let resp = target
        .request(Method::PUT, &format!("/projects/{name}"))
        .header("X-Is-Resource-Name", "true")
        .json(&json!({"metadata": {"public": "false", "severity": "low"}}))
        .send()
        .await
        .expect("PUT project");
    assert!(resp.status().is_success(), "{}", resp.status());
    let q = target
        .get(&format!("/quotas?reference=project&reference_id={id}"))
        .await
        .expect("quota");
    let resp = target
        .request(Method::PUT, &format!("/quotas/{}", q[0]["id"]))
        .json(&json!({"hard": {"storage": 5}}))
        .send()
        .await
        .expect("PUT quota");
    assert!(resp.status().is_success(), "{}", resp.status());
    wait_harbor(
        "metadata repaired",
        &target,
        &format!("/projects/{name}"),
        |p| {
            p.as_ref().is_some_and(|p| {
                p["metadata"]["public"] == "true" && p["metadata"]["severity"] == "high"
            })
        },
    )
    .await;
    wait_for(Duration::from_secs(60), || async {
        (quota_of(&target, id).await == 1_073_741_824).then_some(())
    })
    .await
    .expect("quota repaired");

    delete(&client, HARBOR_API, "Project", &name).await;
    wait_gone(&client, HARBOR_API, "Project", &name).await;
    assert!(
        target.get(&format!("/projects/{name}")).await.is_none(),
        "deletionPolicy Delete removes the project"
    );
}

#[tokio::test]
async fn orphan_keeps_the_project() {
    let (client, target, pc) = setup().await;
    let name = project_name("orphan");
    apply(
        &client,
        project(
            &name,
            &pc,
            json!({"deletionPolicy": "Orphan", "public": false}),
        ),
    )
    .await;
    wait_ready(&client, HARBOR_API, "Project", &name).await;
    delete(&client, HARBOR_API, "Project", &name).await;
    wait_gone(&client, HARBOR_API, "Project", &name).await;
    assert!(
        target.get(&format!("/projects/{name}")).await.is_some(),
        "Orphan leaves the project in Harbor"
    );
    let resp = target
        .request(Method::DELETE, &format!("/projects/{name}"))
        .header("X-Is-Resource-Name", "true")
        .send()
        .await
        .expect("clean up");
    assert!(resp.status().is_success());
}

#[tokio::test]
async fn a_project_with_repositories_is_not_deleted_and_says_why() {
    let (client, target, pc) = setup().await;
    if !target.simulator {
        eprintln!(
            "skipped: needs the simulator's test-only endpoint to put a repository into a project"
        );
        return;
    }
    let name = project_name("repos");
    apply(&client, project(&name, &pc, json!({}))).await;
    wait_ready(&client, HARBOR_API, "Project", &name).await;
    let resp = target
        .request(
            Method::POST,
            &format!("/simulator/projects/{name}/repositories"),
        )
        .json(&json!({"name": "app"}))
        .send()
        .await
        .expect("add a repository");
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);

    delete(&client, HARBOR_API, "Project", &name).await;
    let synced = wait_sync_error(
        &client,
        HARBOR_API,
        "Project",
        &name,
        "while it holds repositories",
    )
    .await;
    assert!(
        synced.message.contains("deletionPolicy: Orphan"),
        "{}",
        synced.message
    );
    // Retried with backoff, not in a hot loop: the next reconcile happens and still refuses.
    wait_reconciled(
        "Project",
        None,
        &name,
        Instant::now(),
        Duration::from_secs(30),
    )
    .await;
    assert!(target.get(&format!("/projects/{name}")).await.is_some());

    let resp = target
        .request(
            Method::DELETE,
            &format!("/simulator/projects/{name}/repositories/app"),
        )
        .send()
        .await
        .expect("remove the repository");
    assert!(resp.status().is_success());
    wait_gone(&client, HARBOR_API, "Project", &name).await;
    assert!(target.get(&format!("/projects/{name}")).await.is_none());
}

#[tokio::test]
async fn an_invalid_project_name_is_a_clear_spec_error() {
    let (client, target, pc) = setup().await;
    let name = project_name("invalid");
    let mut obj = project(&name, &pc, json!({}));
    obj["metadata"]["annotations"] = json!({"tessera.dev/external-name": "Team_A--x"});
    apply(&client, obj).await;
    let synced = wait_sync_error(
        &client,
        HARBOR_API,
        "Project",
        &name,
        "Harbor project name \"Team_A--x\"",
    )
    .await;
    assert!(
        synced.message.contains("\"Team_A--x\""),
        "{}",
        synced.message
    );
    assert!(target.get("/projects/Team_A--x").await.is_none());
    delete(&client, HARBOR_API, "Project", &name).await;
    wait_gone(&client, HARBOR_API, "Project", &name).await;
}

#[tokio::test]
async fn a_wrong_admin_password_names_the_provider_config() {
    let (client, target, _) = setup().await;
    let pc = unique("harbor-badpw");
    harbor_provider_config(&client, &target, &pc, "not-the-password").await;
    let name = project_name("badpw");
    apply(&client, project(&name, &pc, json!({}))).await;
    let synced = wait_sync_error(
        &client,
        HARBOR_API,
        "Project",
        &name,
        "refused the username and password",
    )
    .await;
    assert!(synced.message.contains(&pc), "{}", synced.message);
    assert!(!synced.message.contains("not-the-password"));
    assert!(target.get(&format!("/projects/{name}")).await.is_none());
    delete(&client, HARBOR_API, "Project", &name).await;
    wait_gone(&client, HARBOR_API, "Project", &name).await;
}

#[tokio::test]
async fn an_existing_project_is_adopted_only_on_request() {
    let (client, target, pc) = setup().await;
    let name = project_name("existing");
    let resp = target
        .request(Method::POST, "/projects")
        .json(&json!({"project_name": name, "metadata": {"public": "false"}}))
        .send()
        .await
        .expect("create the project behind Tessera's back");
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);

    apply(&client, project(&name, &pc, json!({"public": true}))).await;
    wait_sync_error(
        &client,
        HARBOR_API,
        "Project",
        &name,
        "was not created by Tessera",
    )
    .await;
    wait_reconciled(
        "Project",
        None,
        &name,
        Instant::now(),
        Duration::from_secs(30),
    )
    .await;
    let p = target
        .get(&format!("/projects/{name}"))
        .await
        .expect("still there");
    assert_eq!(
        p["metadata"]["public"], "false",
        "not taken over: unchanged"
    );

    apply(
        &client,
        project(&name, &pc, json!({"public": true, "adoptExisting": true})),
    )
    .await;
    wait_ready(&client, HARBOR_API, "Project", &name).await;
    let p = target
        .get(&format!("/projects/{name}"))
        .await
        .expect("adopted");
    assert_eq!(p["metadata"]["public"], "true", "adopted means managed");
    delete(&client, HARBOR_API, "Project", &name).await;
    wait_gone(&client, HARBOR_API, "Project", &name).await;
    assert!(
        target.get(&format!("/projects/{name}")).await.is_none(),
        "adopted means deleted with Delete"
    );
}

#[tokio::test]
async fn harbors_default_project_is_never_taken_over() {
    let (client, target, pc) = setup().await;
    if target.get("/projects/library").await.is_none() {
        // The simulator starts empty; a real Harbor always has `library`.
        let resp = target
            .request(Method::POST, "/projects")
            .json(&json!({"project_name": "library", "metadata": {"public": "true"}}))
            .send()
            .await
            .expect("create library");
        assert!(resp.status().is_success() || resp.status() == reqwest::StatusCode::CONFLICT);
    }
    let before = target
        .get("/projects/library")
        .await
        .expect("library exists");
    let name = unique("library-mr");
    let mut obj = project(&name, &pc, json!({"public": false, "adoptExisting": true}));
    obj["metadata"]["annotations"] = json!({"tessera.dev/external-name": "library"});
    apply(&client, obj).await;
    wait_sync_error(
        &client,
        HARBOR_API,
        "Project",
        &name,
        "never managed by Tessera",
    )
    .await;
    delete(&client, HARBOR_API, "Project", &name).await;
    wait_gone(&client, HARBOR_API, "Project", &name).await;
    let after = target
        .get("/projects/library")
        .await
        .expect("library is never deleted");
    assert_eq!(
        after["metadata"]["public"], before["metadata"]["public"],
        "nor changed"
    );
}
