//! A controller that dies between CreateDBInstance and recording it: the DB instance
//! identifier is the external name, fixed before the create, and the instance carries the
//! managed resource's uid tag, so the restarted controller adopts it: one instance, never a
//! second one, never a DBInstanceAlreadyExists failure. The controller runs as a real
//! `tessera controller` process (this file's only test, so no other controller competes).

use std::time::Duration;

use serde_json::json;
use tessera_tests::{
    ControllerProcess, RDS_API, TEST_NAMESPACE, TestEnv, apply, condition, delete, get,
    install_crds, rds_provider_config, rds_sdk, secret_data, unique, wait_for, wait_gone,
    wait_ready,
};

/// The controller processes run the RDS provider only: a leftover object of another
/// provider must not be the create after which the fault hook ends the process.
const ONLY_RDS: (&str, &str) = ("TESSERA_PROVIDERS", "rds");

#[tokio::test]
async fn crash_after_create_db_instance_adopts_the_instance_and_never_duplicates_it() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let pc = unique("crashaws");
    rds_provider_config(&env, &client, &pc, None).await;
    let rds = rds_sdk(&env);
    let name = unique("crashdb");
    let applied = apply(&client, json!({
        "apiVersion": RDS_API, "kind": "DBInstance", "metadata": { "name": name },
        "spec": { "providerConfigRef": { "name": pc },
                  "forProvider": { "engine": "postgres", "dbInstanceClass": "db.t3.micro",
                                   "allocatedStorage": 20, "masterUsername": "admin",
                                   "skipFinalSnapshot": true },
                  "writeConnectionSecretToRef": { "name": format!("{name}-conn"), "namespace": TEST_NAMESPACE } }
    }))
    .await;
    let uid = applied.metadata.uid.clone().unwrap();

    // 1. The controller creates the instance, then dies before recording the result.
    let mut c = ControllerProcess::spawn(
        &env,
        &[ONLY_RDS, ("TESSERA_FAULT_EXIT_AFTER_EXTERNAL_CREATE", "1")],
    )
    .unwrap();
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
    let described = rds
        .describe_db_instances()
        .db_instance_identifier(&name)
        .send()
        .await
        .expect("created");
    let first = described.db_instances()[0].clone();
    let resource_id = first.dbi_resource_id().unwrap().to_string();
    let tagged = first.tag_list().iter().any(|t| {
        t.key() == Some("tessera.dev/managed-resource-uid") && t.value() == Some(uid.as_str())
    });
    assert!(tagged, "the create call carried the ownership tag");
    let obj = get(&client, RDS_API, "DBInstance", &name).await.unwrap();
    let ann = obj.metadata.annotations.clone().unwrap_or_default();
    assert!(ann.contains_key("tessera.dev/external-create-pending"));
    assert!(!ann.contains_key("tessera.dev/external-create-succeeded"));

    // 2. A normal restart adopts it: the same instance, no error on the way.
    let controller = ControllerProcess::spawn(&env, &[ONLY_RDS]).unwrap();
    let ready = wait_ready(&client, RDS_API, "DBInstance", &name).await;
    assert!(condition(&ready, "Synced").is_some_and(|c| c.is_true()));
    assert_eq!(
        ready.data["status"]["atProvider"]["resourceId"],
        resource_id.as_str(),
        "adopted, not re-created"
    );
    let all = rds.describe_db_instances().send().await.unwrap();
    let same_name = all
        .db_instances()
        .iter()
        .filter(|d| d.db_instance_identifier() == Some(name.as_str()))
        .count();
    assert_eq!(same_name, 1);

    // The password generated before the crash is the one published (it was kept in its
    // Secret before CreateDBInstance).
    let generated = secret_data(&client, TEST_NAMESPACE, &format!("{name}-master-password"))
        .await
        .expect("generated password Secret");
    let conn = wait_for(Duration::from_secs(30), || async {
        secret_data(&client, TEST_NAMESPACE, &format!("{name}-conn"))
            .await
            .filter(|d| d.contains_key("password"))
    })
    .await
    .unwrap();
    assert_eq!(conn["password"], generated["password"]);

    // 3. Nothing leaks.
    delete(&client, RDS_API, "DBInstance", &name).await;
    wait_gone(&client, RDS_API, "DBInstance", &name).await;
    let gone = rds
        .describe_db_instances()
        .db_instance_identifier(&name)
        .send()
        .await;
    assert!(gone.is_err_and(|e| {
        e.as_service_error()
            .is_some_and(|s| s.is_db_instance_not_found_fault())
    }));
    drop(controller);
}
