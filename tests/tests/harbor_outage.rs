//! The Harbor API simulator stopped and started again (its state lost, as a Harbor whose
//! database was wiped): the Projects say what is wrong, then everything is recreated — the
//! projects, a robot (with a new secret in its connection Secret) and a membership.
//! Its own test binary, because stopping the simulator would disturb other tests. Runs only
//! against the simulator.

use std::time::Duration;

use serde_json::json;
use tessera_tests::{
    HARBOR_API, HarborTarget, TEST_NAMESPACE, TestEnv, apply, delete, harbor_authenticates,
    harbor_provider_config, install_crds, repo_root, secret_data,
    start_harbor_controller_in_process, unique, wait_for, wait_gone, wait_ready, wait_sync_error,
};

/// The role id of the member `entity` of `project`, as Harbor lists it.
async fn member_role(target: &HarborTarget, project: &str, user: &str) -> Option<i64> {
    let list = target
        .get(&format!("/projects/{project}/members?entityname={user}"))
        .await?;
    list.as_array()?
        .iter()
        .find(|m| m["entity_name"] == user)
        .and_then(|m| m["role_id"].as_i64())
}

/// Starts whatever testenv server is down when dropped, so that a failing assertion never
/// leaves the simulator stopped for the tests that run after this one.
struct RestartOnDrop(String);

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_root().join("testenv/up"))
            .env("TESSERA_TESTENV_DIR", &self.0)
            .status();
    }
}

#[tokio::test]
async fn harbor_restarted_empty_is_reported_then_everything_is_recreated() {
    let env = TestEnv::load();
    let target = HarborTarget::load(&env);
    if !target.simulator {
        eprintln!(
            "skipped: stops and restarts testenv's Harbor API simulator; TESSERA_HARBOR_URL names a real Harbor"
        );
        return;
    }
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_harbor_controller_in_process(&env);
    let pc = unique("harbor-outage-pc");
    harbor_provider_config(&client, &target, &pc, &target.password).await;
    let project = |name: &str| {
        json!({
            "apiVersion": HARBOR_API, "kind": "Project", "metadata": { "name": name },
            "spec": { "providerConfigRef": { "name": pc }, "forProvider": { "public": true } }
        })
    };
    let before = unique("before").to_lowercase();
    apply(&client, project(&before)).await;
    wait_ready(&client, HARBOR_API, "Project", &before).await;
    assert!(target.get(&format!("/projects/{before}")).await.is_some());
    let robot = unique("outage-robot");
    let robot_secret = format!("{robot}-creds");
    apply(
        &client,
        json!({
            "apiVersion": HARBOR_API, "kind": "RobotAccount", "metadata": { "name": robot },
            "spec": { "providerConfigRef": { "name": pc },
                      "forProvider": { "project": before,
                                       "permissions": [{"resource": "repository", "action": "pull"}] },
                      "writeConnectionSecretToRef": { "name": robot_secret, "namespace": TEST_NAMESPACE } }
        }),
    )
    .await;
    wait_ready(&client, HARBOR_API, "RobotAccount", &robot).await;
    let old = secret_data(&client, TEST_NAMESPACE, &robot_secret)
        .await
        .expect("robot Secret");
    assert!(harbor_authenticates(&target, &old["username"], &old["password"]).await);
    // A group member: the simulator creates the group named in a membership, so it can be
    // recreated after the restart (a user would be lost with the simulator's state).
    let member = unique("outage-member");
    let group = unique("outage-group").to_lowercase();
    apply(
        &client,
        json!({
            "apiVersion": HARBOR_API, "kind": "ProjectMember", "metadata": { "name": member },
            "spec": { "providerConfigRef": { "name": pc },
                      "forProvider": { "project": before, "group": group, "groupType": 2, "role": "maintainer" } }
        }),
    )
    .await;
    wait_ready(&client, HARBOR_API, "ProjectMember", &member).await;

    let state = env.get("TESSERA_TESTENV_DIR").to_string();
    let _restart = RestartOnDrop(state.clone());
    let pid =
        std::fs::read_to_string(format!("{state}/pids/harbor-sim.pid")).expect("harbor-sim pid");
    let status = std::process::Command::new("kill")
        .arg(pid.trim())
        .status()
        .unwrap();
    assert!(status.success());
    wait_for(Duration::from_secs(30), || async {
        let alive = std::process::Command::new("kill")
            .args(["-0", pid.trim()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        (!alive).then_some(())
    })
    .await
    .expect("the simulator stopped");

    // A project applied during the outage says what is wrong.
    let during = unique("during").to_lowercase();
    apply(&client, project(&during)).await;
    wait_sync_error(&client, HARBOR_API, "Project", &during, "did not answer").await;

    // testenv/up starts it again, empty; both projects are (re)created.
    let up = std::process::Command::new(repo_root().join("testenv/up"))
        .env("TESSERA_TESTENV_DIR", &state)
        .status()
        .expect("run testenv/up");
    assert!(up.success(), "testenv/up restarts the simulator");
    for name in [&before, &during] {
        wait_for(Duration::from_secs(60), || async {
            let p = target.get(&format!("/projects/{name}")).await?;
            (p["metadata"]["public"] == "true").then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("project {name} recreated: {e}"));
        wait_ready(&client, HARBOR_API, "Project", name).await;
    }
    // The robot is created again; its new secret is written into the connection Secret.
    let new = wait_for(Duration::from_secs(90), || async {
        let data = secret_data(&client, TEST_NAMESPACE, &robot_secret).await?;
        (data["password"] != old["password"]).then_some(data)
    })
    .await
    .expect("the robot's Secret holds the recreated robot's secret");
    assert!(harbor_authenticates(&target, &new["username"], &new["password"]).await);
    wait_for(Duration::from_secs(60), || async {
        (member_role(&target, &before, &group).await? == 4).then_some(())
    })
    .await
    .expect("the membership is recreated");

    delete(&client, HARBOR_API, "ProjectMember", &member).await;
    wait_gone(&client, HARBOR_API, "ProjectMember", &member).await;
    delete(&client, HARBOR_API, "RobotAccount", &robot).await;
    wait_gone(&client, HARBOR_API, "RobotAccount", &robot).await;
    for name in [&before, &during] {
        delete(&client, HARBOR_API, "Project", name).await;
        wait_gone(&client, HARBOR_API, "Project", name).await;
    }
}
