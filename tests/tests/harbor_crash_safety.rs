//! A controller that dies between a Harbor project's create and recording it: a project
//! cannot carry Tessera's mark, so the restarted controller knows the project as its own
//! only by the `external-create-pending` record written before the create. It adopts the
//! project (the same project id, never a second project, never a "not owned" refusal),
//! and the delete removes it. The controller runs as a real `tessera controller` process
//! with the Harbor provider only (this file's only test, so no other controller competes).

use std::time::Duration;

use serde_json::json;
use tessera_tests::{
    ControllerProcess, HARBOR_API, HarborTarget, TestEnv, apply, condition, delete, get,
    harbor_provider_config, install_crds, unique, wait_gone, wait_ready,
};

const ONLY_HARBOR: (&str, &str) = ("TESSERA_PROVIDERS", "harbor");

/// The projects in Harbor whose names start with `prefix`, by name, with their ids.
async fn projects_with_prefix(harbor: &HarborTarget, prefix: &str) -> Vec<(String, i64)> {
    let list = harbor
        .get(&format!("/projects?page_size=100&name={prefix}"))
        .await
        .unwrap_or_default();
    let mut found: Vec<(String, i64)> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["project_id"].as_i64()?)))
        .filter(|(name, _)| name.starts_with(prefix))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn crash_after_a_project_create_adopts_the_project_and_never_duplicates_it() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let harbor = HarborTarget::load(&env);
    let pc = unique("crashharbor");
    harbor_provider_config(&client, &harbor, &pc, &harbor.password).await;
    let name = unique("crashproj").to_lowercase();
    apply(
        &client,
        json!({
            "apiVersion": HARBOR_API, "kind": "Project", "metadata": { "name": name },
            "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "public": false } }
        }),
    )
    .await;

    // 1. The controller creates the project, then dies before recording the result.
    let mut c = ControllerProcess::spawn(
        &env,
        &[
            ONLY_HARBOR,
            ("TESSERA_FAULT_EXIT_AFTER_EXTERNAL_CREATE", name.as_str()),
        ],
    )
    .expect("start a controller");
    let code = c
        .wait_exit(Duration::from_secs(60))
        .await
        .expect("the controller made the create and exited");
    assert_eq!(
        code,
        Some(86),
        "exited through the hook; log: {}",
        c.log().display()
    );
    let after_crash = projects_with_prefix(&harbor, &name).await;
    assert_eq!(
        after_crash.len(),
        1,
        "the project was created once: {after_crash:?}"
    );
    let obj = get(&client, HARBOR_API, "Project", &name).await.unwrap();
    let ann = obj.metadata.annotations.clone().unwrap_or_default();
    assert!(ann.contains_key("tessera.dev/external-create-pending"));
    assert!(!ann.contains_key("tessera.dev/external-create-succeeded"));

    // 2. A normal restart adopts it: the same project, recorded as created, Ready.
    let controller = ControllerProcess::spawn(&env, &[ONLY_HARBOR]).expect("start a controller");
    let log = controller.log().display().to_string();
    let ready = wait_ready(&client, HARBOR_API, "Project", &name).await;
    assert!(condition(&ready, "Synced").is_some_and(|c| c.is_true()));
    assert_eq!(
        projects_with_prefix(&harbor, &name).await,
        after_crash,
        "adopted, not re-created; log: {log}"
    );
    assert_eq!(
        ready.data["status"]["atProvider"]["projectId"].as_i64(),
        Some(after_crash[0].1),
        "the status names the project created before the crash: {:?}",
        ready.data["status"]
    );
    let ann = ready.metadata.annotations.clone().unwrap_or_default();
    assert!(
        ann.get("tessera.dev/external-create-succeeded")
            > ann.get("tessera.dev/external-create-pending"),
        "the adoption is recorded: {ann:?}"
    );

    // 3. Nothing leaks: the delete removes the project.
    delete(&client, HARBOR_API, "Project", &name).await;
    wait_gone(&client, HARBOR_API, "Project", &name).await;
    assert!(
        harbor.get(&format!("/projects/{name}")).await.is_none(),
        "project deleted from Harbor; log: {log}"
    );
    eprintln!(
        "harbor crash: project {name} (id {}) created once, adopted after the crash, deleted",
        after_crash[0].1
    );
    drop(controller);
}
