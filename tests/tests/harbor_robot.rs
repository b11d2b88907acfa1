//! The Harbor provider's RobotAccount and ProjectMember driven by the managed runtime:
//! objects applied to the real kube-apiserver, reconciled by the controller in this process,
//! against testenv's simulator of Harbor's API — or a real Harbor when `TESSERA_HARBOR_URL`,
//! `TESSERA_HARBOR_USERNAME` and `TESSERA_HARBOR_PASSWORD` are set.

use std::collections::HashMap;
use std::time::Duration;

use http::Method;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::{Value, json};
use tessera_tests::{
    HARBOR_API, HarborTarget, TEST_NAMESPACE, TestEnv, apply, delete, harbor_authenticates,
    harbor_provider_config, install_crds, secret_data, start_harbor_controller_in_process, unique,
    wait_for, wait_gone, wait_ready, wait_sync_error,
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

/// A Ready Harbor project managed by a Project of the same name.
async fn ready_project(client: &kube::Client, pc: &str, prefix: &str) -> String {
    let name = unique(prefix).to_lowercase();
    apply(
        client,
        json!({
            "apiVersion": HARBOR_API, "kind": "Project", "metadata": { "name": name },
            "spec": { "providerConfigRef": { "name": pc }, "forProvider": {} }
        }),
    )
    .await;
    wait_ready(client, HARBOR_API, "Project", &name).await;
    name
}

async fn drop_project(client: &kube::Client, name: &str) {
    delete(client, HARBOR_API, "Project", name).await;
    wait_gone(client, HARBOR_API, "Project", name).await;
}

fn robot(name: &str, pc: &str, project: &str, extra: Value) -> Value {
    let mut spec = json!({
        "providerConfigRef": { "name": pc },
        "forProvider": {
            "project": project,
            "description": "pulls images",
            "permissions": [
                {"resource": "repository", "action": "pull"},
                {"resource": "repository", "action": "push"},
                {"resource": "artifact", "action": "read"}
            ]
        },
        "writeConnectionSecretToRef": { "name": format!("{name}-creds"), "namespace": TEST_NAMESPACE }
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    json!({
        "apiVersion": HARBOR_API, "kind": "RobotAccount",
        "metadata": { "name": name, "annotations": { "tessera.dev/external-name": "ci" } },
        "spec": spec
    })
}

/// The robot of `project` named `robot$<project>+<name>`, as Harbor lists it.
async fn harbor_robot(target: &HarborTarget, project: &str, name: &str) -> Option<Value> {
    let p = target.get(&format!("/projects/{project}")).await?;
    let pid = p["project_id"].as_i64()?;
    let list = target
        .get(&format!(
            "/robots?q=Level%3Dproject%2CProjectID%3D{pid}&page_size=100"
        ))
        .await?;
    let full = format!("robot${project}+{name}");
    list.as_array()?
        .iter()
        .find(|r| r["name"] == full.as_str())
        .cloned()
}

async fn secret(client: &kube::Client, name: &str) -> Option<(String, HashMap<String, String>)> {
    let api: Api<Secret> = Api::namespaced(client.clone(), TEST_NAMESPACE);
    let s = api.get_opt(name).await.expect("read secret")?;
    let data = secret_data(client, TEST_NAMESPACE, name).await?;
    Some((s.type_.unwrap_or_default(), data))
}

/// Waits until the Secret exists with a password other than `old`.
async fn new_password(client: &kube::Client, name: &str, old: &str) -> HashMap<String, String> {
    wait_for(Duration::from_secs(60), || async {
        let (_, data) = secret(client, name).await?;
        (data.get("password").is_some_and(|p| p != old)).then_some(data)
    })
    .await
    .unwrap_or_else(|e| panic!("Secret {name} with a new password: {e}"))
}

#[tokio::test]
async fn robot_account_secret_lives_in_a_dockerconfigjson_secret_drift_loss_and_rotation_handled() {
    let (client, target, pc) = setup().await;
    let project = ready_project(&client, &pc, "robots").await;
    let name = unique("robot");
    let secret_name = format!("{name}-creds");
    apply(&client, robot(&name, &pc, &project, json!({}))).await;
    let obj = wait_ready(&client, HARBOR_API, "RobotAccount", &name).await;
    let full = format!("robot${project}+ci");
    assert_eq!(obj.data["status"]["atProvider"]["username"], full.as_str());
    assert!(
        !obj.data["status"].to_string().contains("password"),
        "no secret in status"
    );

    let (kind, data) = secret(&client, &secret_name)
        .await
        .expect("connection Secret");
    assert_eq!(kind, "kubernetes.io/dockerconfigjson");
    assert_eq!(data["username"], full);
    let config: Value = serde_json::from_str(&data[".dockerconfigjson"]).expect("JSON");
    let host = target
        .url
        .split("://")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    assert_eq!(config["auths"][host]["username"], full.as_str());
    assert_eq!(config["auths"][host]["password"], data["password"].as_str());
    assert!(harbor_authenticates(&target, &full, &data["password"]).await);
    let first = data["password"].clone();

    // Drift behind Tessera's back: the push permission removed, the description changed.
    let r = harbor_robot(&target, &project, "ci")
        .await
        .expect("robot in Harbor");
    let resp = target
        .request(Method::PUT, &format!("/robots/{}", r["id"]))
        .json(&json!({
            "name": full, "level": "project", "description": "changed", "disable": false,
            "duration": -1,
            "permissions": [{"kind": "project", "namespace": project,
                             "access": [{"resource": "repository", "action": "pull"}]}]
        }))
        .send()
        .await
        .expect("PUT robot");
    assert!(resp.status().is_success(), "{}", resp.status());
    wait_for(Duration::from_secs(60), || async {
        let r = harbor_robot(&target, &project, "ci").await?;
        let access = r["permissions"][0]["access"].as_array()?.len();
        (access == 3 && r["description"] == "pulls images").then_some(())
    })
    .await
    .expect("permissions and description repaired");
    let (_, data) = secret(&client, &secret_name).await.expect("Secret kept");
    assert_eq!(
        data["password"], first,
        "repairing settings keeps the secret"
    );

    // The connection Secret is the only copy: lost, the secret is refreshed and the old
    // one stops working.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), TEST_NAMESPACE);
    secrets
        .delete(&secret_name, &Default::default())
        .await
        .expect("delete the connection Secret");
    let data = new_password(&client, &secret_name, &first).await;
    let (kind, _) = secret(&client, &secret_name).await.expect("restored");
    assert_eq!(kind, "kubernetes.io/dockerconfigjson");
    assert!(harbor_authenticates(&target, &full, &data["password"]).await);
    assert!(
        !harbor_authenticates(&target, &full, &first).await,
        "the lost secret no longer works"
    );
    let second = data["password"].clone();

    // Rotation on request.
    let ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "harbor.tessera.dev",
        "v1alpha1",
        "RobotAccount",
    ));
    let api: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &ar);
    api.patch(
        &name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            json!({"metadata": {"annotations": {"tessera.dev/rotate-secret": "1"}}}),
        ),
    )
    .await
    .expect("annotate");
    let data = new_password(&client, &secret_name, &second).await;
    assert!(harbor_authenticates(&target, &full, &data["password"]).await);
    assert!(!harbor_authenticates(&target, &full, &second).await);

    delete(&client, HARBOR_API, "RobotAccount", &name).await;
    wait_gone(&client, HARBOR_API, "RobotAccount", &name).await;
    assert!(
        harbor_robot(&target, &project, "ci").await.is_none(),
        "deletionPolicy Delete removes the robot"
    );
    drop_project(&client, &project).await;
}

#[tokio::test]
async fn orphan_keeps_the_robot() {
    let (client, target, pc) = setup().await;
    let project = ready_project(&client, &pc, "robot-orphan").await;
    let name = unique("robot-orphan");
    apply(
        &client,
        robot(&name, &pc, &project, json!({"deletionPolicy": "Orphan"})),
    )
    .await;
    wait_ready(&client, HARBOR_API, "RobotAccount", &name).await;
    delete(&client, HARBOR_API, "RobotAccount", &name).await;
    wait_gone(&client, HARBOR_API, "RobotAccount", &name).await;
    assert!(
        harbor_robot(&target, &project, "ci").await.is_some(),
        "Orphan leaves the robot in Harbor"
    );
    drop_project(&client, &project).await;
}

#[tokio::test]
async fn a_duplicate_robot_is_refused_with_a_clear_message_and_left_alone() {
    let (client, target, pc) = setup().await;
    let project = ready_project(&client, &pc, "robot-dup").await;
    let resp = target
        .request(Method::POST, "/robots")
        .json(&json!({
            "name": "ci", "level": "project", "duration": -1,
            "permissions": [{"kind": "project", "namespace": project,
                             "access": [{"resource": "repository", "action": "pull"}]}]
        }))
        .send()
        .await
        .expect("create the robot behind Tessera's back");
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    let created: Value = resp.json().await.unwrap();
    let theirs = created["secret"].as_str().unwrap().to_string();
    let full = format!("robot${project}+ci");

    let name = unique("robot-dup");
    apply(&client, robot(&name, &pc, &project, json!({}))).await;
    let synced = wait_sync_error(
        &client,
        HARBOR_API,
        "RobotAccount",
        &name,
        "was not created by Tessera",
    )
    .await;
    assert!(
        synced.message.contains("adoptExisting"),
        "{}",
        synced.message
    );
    assert!(
        harbor_authenticates(&target, &full, &theirs).await,
        "the existing robot's secret is not refreshed"
    );
    let r = harbor_robot(&target, &project, "ci")
        .await
        .expect("still there");
    assert_eq!(
        r["permissions"][0]["access"].as_array().unwrap().len(),
        1,
        "nor changed"
    );

    delete(&client, HARBOR_API, "RobotAccount", &name).await;
    wait_gone(&client, HARBOR_API, "RobotAccount", &name).await;
    assert!(
        harbor_robot(&target, &project, "ci").await.is_some(),
        "someone else's robot is never deleted"
    );
    drop_project(&client, &project).await;
}

/// A Harbor user to make members of (created through Harbor's API).
async fn harbor_user(target: &HarborTarget) -> String {
    let username = unique("dev").to_lowercase();
    let resp = target
        .request(Method::POST, "/users")
        .json(&json!({
            "username": username, "email": format!("{username}@example.com"),
            "realname": "Dev", "password": "Passw0rd-for-tests"
        }))
        .send()
        .await
        .expect("create a user");
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    username
}

fn member(name: &str, pc: &str, project: &str, who: Value, extra: Value) -> Value {
    let mut for_provider = json!({"project": project, "role": "developer"});
    if let (Some(f), Some(w)) = (for_provider.as_object_mut(), who.as_object()) {
        f.extend(w.clone());
    }
    let mut spec = json!({ "providerConfigRef": { "name": pc }, "forProvider": for_provider });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    json!({ "apiVersion": HARBOR_API, "kind": "ProjectMember", "metadata": { "name": name }, "spec": spec })
}

async fn harbor_member(target: &HarborTarget, project: &str, entity: &str) -> Option<Value> {
    let list = target
        .get(&format!("/projects/{project}/members?entityname={entity}"))
        .await?;
    list.as_array()?
        .iter()
        .find(|m| m["entity_name"] == entity)
        .cloned()
}

#[tokio::test]
async fn project_member_lifecycle_role_drift_repaired_delete_and_orphan() {
    let (client, target, pc) = setup().await;
    let project = ready_project(&client, &pc, "members").await;
    let user = harbor_user(&target).await;

    let name = unique("member");
    apply(
        &client,
        member(&name, &pc, &project, json!({"user": user}), json!({})),
    )
    .await;
    wait_ready(&client, HARBOR_API, "ProjectMember", &name).await;
    let m = harbor_member(&target, &project, &user)
        .await
        .expect("member in Harbor");
    assert_eq!(m["role_id"], 2, "developer");

    // Drift behind Tessera's back: the role changed to guest.
    let resp = target
        .request(
            Method::PUT,
            &format!("/projects/{project}/members/{}", m["id"]),
        )
        .header("X-Is-Resource-Name", "true")
        .json(&json!({"role_id": 3}))
        .send()
        .await
        .expect("PUT member");
    assert!(resp.status().is_success());
    wait_for(Duration::from_secs(60), || async {
        let m = harbor_member(&target, &project, &user).await?;
        (m["role_id"] == 2).then_some(())
    })
    .await
    .expect("role repaired");

    // A role change in the spec is applied.
    apply(
        &client,
        member(
            &name,
            &pc,
            &project,
            json!({"user": user, "role": "maintainer"}),
            json!({}),
        ),
    )
    .await;
    wait_for(Duration::from_secs(60), || async {
        let m = harbor_member(&target, &project, &user).await?;
        (m["role_id"] == 4).then_some(())
    })
    .await
    .expect("role changed to maintainer");

    delete(&client, HARBOR_API, "ProjectMember", &name).await;
    wait_gone(&client, HARBOR_API, "ProjectMember", &name).await;
    assert!(
        harbor_member(&target, &project, &user).await.is_none(),
        "Delete removes it"
    );

    // A group, kept with Orphan.
    let group = unique("devs").to_lowercase();
    let orphan = unique("member-orphan");
    apply(
        &client,
        member(
            &orphan,
            &pc,
            &project,
            json!({"group": group, "groupType": 2, "role": "guest"}),
            json!({"deletionPolicy": "Orphan"}),
        ),
    )
    .await;
    wait_ready(&client, HARBOR_API, "ProjectMember", &orphan).await;
    assert_eq!(
        harbor_member(&target, &project, &group)
            .await
            .expect("group member")["role_id"],
        3
    );
    delete(&client, HARBOR_API, "ProjectMember", &orphan).await;
    wait_gone(&client, HARBOR_API, "ProjectMember", &orphan).await;
    assert!(
        harbor_member(&target, &project, &group).await.is_some(),
        "Orphan leaves the membership"
    );
    drop_project(&client, &project).await;
}

#[tokio::test]
async fn a_member_naming_both_a_user_and_a_group_is_a_spec_error() {
    let (client, _target, pc) = setup().await;
    let name = unique("member-bad");
    apply(
        &client,
        member(
            &name,
            &pc,
            "some-project",
            json!({"user": "a", "group": "b"}),
            json!({}),
        ),
    )
    .await;
    wait_sync_error(
        &client,
        HARBOR_API,
        "ProjectMember",
        &name,
        "exactly one of",
    )
    .await;
    delete(&client, HARBOR_API, "ProjectMember", &name).await;
    wait_gone(&client, HARBOR_API, "ProjectMember", &name).await;
}

/// The connection Secret is the only copy of the robot's secret, so a pass that read it
/// there hands nothing back for publishing: a pass in flight when someone deleted the
/// Secret would otherwise write the old secret back, and the next pass would keep it
/// instead of refreshing it (the deletion above then saw its old password restored).
#[tokio::test]
async fn a_pass_hands_back_no_secret_it_read_from_the_connection_secret() {
    use tessera_engine::managed::Connector;
    use tessera_provider_harbor::HarborConnect;
    use tessera_provider_harbor::api::RobotAccount;

    let (client, _target, pc) = setup().await;
    let project = ready_project(&client, &pc, "robot-read").await;
    let name = unique("robot-read");
    apply(&client, robot(&name, &pc, &project, json!({}))).await;
    wait_ready(&client, HARBOR_API, "RobotAccount", &name).await;
    let robots: Api<RobotAccount> = Api::all(client.clone());
    let mut mr = robots.get(&name).await.expect("RobotAccount");
    let harbor = HarborConnect::connector()
        .connect(&client, &mr)
        .await
        .expect("connect to Harbor");
    let observed = harbor.observe(&mut mr).await.expect("observe");
    assert!(observed.exists && observed.up_to_date, "{observed:?}");
    assert!(
        observed.connection.is_empty(),
        "observe hands back the secret it read from the connection Secret"
    );
    let updated = harbor.update(&mut mr).await.expect("update");
    assert!(
        updated.is_empty(),
        "an update that changed nothing hands back the secret it read"
    );

    delete(&client, HARBOR_API, "RobotAccount", &name).await;
    wait_gone(&client, HARBOR_API, "RobotAccount", &name).await;
    drop_project(&client, &project).await;
}
