//! The RDS provider against moto_server and the real kube-apiserver, with the controllers
//! in this process: DBInstance lifecycle (create, Ready, modify, tags, drift repaired,
//! delete with and without a final snapshot, Orphan, Observe-only import), the adoption
//! rule, master passwords, DBSubnetGroups on real (simulated) VPC subnets, and bad input.

use std::time::Duration;

use aws_sdk_rds::types::DbInstance;
use serde_json::json;
use tessera_tests::{
    RDS_API, TEST_NAMESPACE, TestEnv, apply, condition, delete, install_crds, moto_subnets,
    rds_provider_config, rds_sdk, secret_data, start_rds_controller_in_process, unique, wait_for,
    wait_gone, wait_object, wait_ready, wait_sync_error,
};

const OWNERSHIP_TAG: &str = "tessera.dev/managed-resource-uid";

async fn setup() -> (TestEnv, kube::Client, String, aws_sdk_rds::Client) {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_rds_controller_in_process(&env);
    let pc = unique("aws");
    rds_provider_config(&env, &client, &pc, None).await;
    let rds = rds_sdk(&env);
    (env, client, pc, rds)
}

/// A DBInstance named `name`; `for_provider` and `spec` extend the defaults.
fn instance(
    name: &str,
    pc: &str,
    for_provider: serde_json::Value,
    spec: serde_json::Value,
) -> serde_json::Value {
    let mut obj = json!({
        "apiVersion": RDS_API, "kind": "DBInstance",
        "metadata": { "name": name },
        "spec": {
            "providerConfigRef": { "name": pc },
            "forProvider": {
                "engine": "postgres",
                "dbInstanceClass": "db.t3.micro",
                "allocatedStorage": 20,
                "masterUsername": "admin",
                "skipFinalSnapshot": true,
                "applyImmediately": true
            },
            "writeConnectionSecretToRef": { "name": format!("{name}-conn"), "namespace": TEST_NAMESPACE }
        }
    });
    if let (Some(s), Some(extra)) = (
        obj["spec"]["forProvider"].as_object_mut(),
        for_provider.as_object(),
    ) {
        s.extend(extra.clone());
    }
    if let (Some(s), Some(extra)) = (obj["spec"].as_object_mut(), spec.as_object()) {
        s.extend(extra.clone());
    }
    obj
}

async fn describe(rds: &aws_sdk_rds::Client, id: &str) -> Option<DbInstance> {
    match rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
    {
        Ok(out) => out.db_instances().first().cloned(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_db_instance_not_found_fault()) =>
        {
            None
        }
        Err(e) => panic!("DescribeDBInstances {id}: {e:?}"),
    }
}

fn tag<'a>(db: &'a DbInstance, key: &str) -> Option<&'a str> {
    db.tag_list()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// Waits until the instance `id` in moto satisfies `check`.
async fn wait_aws(
    rds: &aws_sdk_rds::Client,
    id: &str,
    what: &str,
    check: impl Fn(&DbInstance) -> bool,
) -> DbInstance {
    wait_for(Duration::from_secs(60), || async {
        describe(rds, id).await.filter(|db| check(db))
    })
    .await
    .unwrap_or_else(|_| panic!("DB instance {id}: {what} was not seen within 60 s"))
}

async fn snapshot_exists(rds: &aws_sdk_rds::Client, id: &str) -> bool {
    match rds
        .describe_db_snapshots()
        .db_snapshot_identifier(id)
        .send()
        .await
    {
        Ok(out) => !out.db_snapshots().is_empty(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_db_snapshot_not_found_fault()) =>
        {
            false
        }
        Err(e) => panic!("DescribeDBSnapshots {id}: {e:?}"),
    }
}

#[tokio::test]
async fn an_instance_is_created_ready_modified_repaired_and_deleted_with_a_final_snapshot() {
    let (_env, client, pc, rds) = setup().await;
    let name = unique("db");
    let applied = apply(
        &client,
        instance(
            &name,
            &pc,
            json!({ "skipFinalSnapshot": false, "tags": { "team": "a", "env": "test" } }),
            json!({}),
        ),
    )
    .await;
    let uid = applied.metadata.uid.clone().unwrap();
    let ready = wait_ready(&client, RDS_API, "DBInstance", &name).await;
    assert_eq!(ready.data["status"]["atProvider"]["status"], "available");
    assert!(
        ready.data["status"]["atProvider"]["arn"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:rds:"))
    );

    // What AWS has: the spec, Tessera's mark, and the tags.
    let db = describe(&rds, &name)
        .await
        .expect("the instance exists in AWS");
    assert_eq!(db.engine(), Some("postgres"));
    assert_eq!(db.db_instance_class(), Some("db.t3.micro"));
    assert_eq!(db.allocated_storage(), Some(20));
    assert_eq!(tag(&db, OWNERSHIP_TAG), Some(uid.as_str()));
    assert_eq!(tag(&db, "team"), Some("a"));

    // The connection secret has the four keys, the password being the generated one.
    let conn = wait_for(Duration::from_secs(30), || async {
        secret_data(&client, TEST_NAMESPACE, &format!("{name}-conn"))
            .await
            .filter(|d| d.contains_key("endpoint"))
    })
    .await
    .expect("connection secret");
    let generated = secret_data(&client, TEST_NAMESPACE, &format!("{name}-master-password"))
        .await
        .expect("generated password Secret");
    assert_eq!(conn["username"], "admin");
    assert_eq!(conn["port"], "5432");
    assert_eq!(
        Some(conn["endpoint"].as_str()),
        db.endpoint().and_then(|e| e.address())
    );
    assert_eq!(conn["password"], generated["password"]);
    assert_eq!(conn["password"].len(), 40);

    // Late-initialised: the engine version AWS chose is now in the spec.
    let obj = wait_object(
        &client,
        RDS_API,
        "DBInstance",
        &name,
        Duration::from_secs(30),
        "late-initialised engineVersion",
        |o| o.data["spec"]["forProvider"]["engineVersion"].is_string(),
    )
    .await;
    assert_eq!(
        obj.data["spec"]["forProvider"]["engineVersion"].as_str(),
        db.engine_version()
    );

    // Modify class, storage and tags: only those change.
    apply(
        &client,
        instance(
            &name,
            &pc,
            json!({ "skipFinalSnapshot": false, "dbInstanceClass": "db.t3.small", "allocatedStorage": 30,
                    "engineVersion": db.engine_version(), "tags": { "team": "b", "owner": "x" } }),
            json!({}),
        ),
    )
    .await;
    // Tags are added and removed by two calls: wait for both.
    let db = wait_aws(&rds, &name, "class, storage and tags changed", |db| {
        db.db_instance_class() == Some("db.t3.small")
            && db.allocated_storage() == Some(30)
            && tag(db, "team") == Some("b")
            && tag(db, "env").is_none()
    })
    .await;
    assert_eq!(tag(&db, "owner"), Some("x"));
    assert_eq!(
        tag(&db, "env"),
        None,
        "a tag removed from the spec is removed"
    );
    assert_eq!(
        tag(&db, OWNERSHIP_TAG),
        Some(uid.as_str()),
        "the mark stays"
    );

    // Drift: a change behind Tessera's back is repaired.
    rds.modify_db_instance()
        .db_instance_identifier(&name)
        .db_instance_class("db.t3.large")
        .apply_immediately(true)
        .send()
        .await
        .expect("modify out of band");
    assert_eq!(
        describe(&rds, &name).await.unwrap().db_instance_class(),
        Some("db.t3.large")
    );
    wait_aws(&rds, &name, "drift repaired", |db| {
        db.db_instance_class() == Some("db.t3.small")
    })
    .await;

    // Delete: a final snapshot named after the instance is taken.
    delete(&client, RDS_API, "DBInstance", &name).await;
    wait_gone(&client, RDS_API, "DBInstance", &name).await;
    assert!(
        describe(&rds, &name).await.is_none(),
        "the instance is deleted"
    );
    assert!(snapshot_exists(&rds, &format!("{name}-final")).await);
}

/// A CreateDBInstance that moto carried out but whose answer was lost (a fault proxy cuts
/// the connection before the answer): the instance carries its ownership tag from the
/// create itself, so the next pass finds it as this DBInstance's own, and the deletion
/// removes it.
#[tokio::test]
async fn an_instance_whose_create_lost_its_answer_is_found_as_its_own() {
    use tessera_tests::fault_proxy::{FaultProxy, Faults};
    let (env, client, _, rds) = setup().await;
    let upstream = env
        .get("AWS_ENDPOINT_URL")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("moto's address is host:port");
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let pc = unique("aws-lossy");
    let through = format!("http://{}", proxy.addr());
    rds_provider_config(&env, &client, &pc, Some(&through)).await;
    let name = unique("db");
    proxy.set(Faults {
        lose_answer_to: Some("Action=CreateDBInstance".into()),
        ..Faults::default()
    });
    apply(&client, instance(&name, &pc, json!({}), json!({}))).await;
    let o = wait_ready(&client, RDS_API, "DBInstance", &name).await;
    assert_eq!(proxy.stats().resets, 1, "the answer of the create was lost");
    let have = describe(&rds, &name).await.expect("the instance exists");
    let tag = have
        .tag_list()
        .iter()
        .find(|t| t.key() == Some(OWNERSHIP_TAG))
        .and_then(|t| t.value());
    assert_eq!(
        tag,
        o.metadata.uid.as_deref(),
        "tagged as the DBInstance's own"
    );
    delete(&client, RDS_API, "DBInstance", &name).await;
    wait_gone(&client, RDS_API, "DBInstance", &name).await;
    assert!(describe(&rds, &name).await.is_none());
}

#[tokio::test]
async fn skip_final_snapshot_leaves_no_snapshot_and_orphan_leaves_the_instance() {
    let (_env, client, pc, rds) = setup().await;
    let skipped = unique("db");
    let orphaned = unique("db");
    apply(&client, instance(&skipped, &pc, json!({}), json!({}))).await;
    apply(
        &client,
        instance(
            &orphaned,
            &pc,
            json!({}),
            json!({ "deletionPolicy": "Orphan" }),
        ),
    )
    .await;
    wait_ready(&client, RDS_API, "DBInstance", &skipped).await;
    wait_ready(&client, RDS_API, "DBInstance", &orphaned).await;

    delete(&client, RDS_API, "DBInstance", &skipped).await;
    delete(&client, RDS_API, "DBInstance", &orphaned).await;
    wait_gone(&client, RDS_API, "DBInstance", &skipped).await;
    wait_gone(&client, RDS_API, "DBInstance", &orphaned).await;

    assert!(describe(&rds, &skipped).await.is_none());
    assert!(!snapshot_exists(&rds, &format!("{skipped}-final")).await);
    let left = describe(&rds, &orphaned)
        .await
        .expect("an orphaned instance stays");
    assert_eq!(left.db_instance_status(), Some("available"));
    rds.delete_db_instance()
        .db_instance_identifier(&orphaned)
        .skip_final_snapshot(true)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_instance_tessera_did_not_create_is_refused_and_observe_only_imports_it() {
    let (_env, client, pc, rds) = setup().await;
    let id = unique("theirs");
    rds.create_db_instance()
        .db_instance_identifier(&id)
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("owner")
        .master_user_password("their-password-1")
        .send()
        .await
        .expect("create their instance");

    // Same identifier, different spec: refused, nothing changed, nothing deleted.
    apply(
        &client,
        instance(
            &id,
            &pc,
            json!({ "dbInstanceClass": "db.t3.large", "masterUsername": "owner" }),
            json!({}),
        ),
    )
    .await;
    let synced = wait_sync_error(
        &client,
        RDS_API,
        "DBInstance",
        &id,
        "was not created by Tessera",
    )
    .await;
    assert_eq!(synced.reason, "ExternalResourceNotOwned");
    let db = describe(&rds, &id).await.unwrap();
    assert_eq!(db.db_instance_class(), Some("db.t3.micro"));
    assert_eq!(tag(&db, OWNERSHIP_TAG), None, "not marked");
    delete(&client, RDS_API, "DBInstance", &id).await;
    wait_gone(&client, RDS_API, "DBInstance", &id).await;
    assert!(
        describe(&rds, &id).await.is_some(),
        "their instance is never deleted"
    );

    // Observe-only import: status filled, Ready, never changed.
    let observer = unique("import");
    let mut obj = instance(
        &observer,
        &pc,
        json!({ "dbInstanceClass": "db.t3.large", "masterUsername": "owner" }),
        json!({ "managementPolicies": ["Observe"] }),
    );
    obj["metadata"]["annotations"] = json!({ "tessera.dev/external-name": id });
    apply(&client, obj).await;
    let seen = wait_object(
        &client,
        RDS_API,
        "DBInstance",
        &observer,
        Duration::from_secs(60),
        "observed",
        |o| {
            o.data["status"]["atProvider"]["arn"].is_string()
                && condition(o, "Ready").is_some_and(|c| c.is_true())
        },
    )
    .await;
    assert_eq!(
        seen.data["status"]["atProvider"]["address"].as_str(),
        db.endpoint().and_then(|e| e.address())
    );
    delete(&client, RDS_API, "DBInstance", &observer).await;
    wait_gone(&client, RDS_API, "DBInstance", &observer).await;
    let db = describe(&rds, &id).await.expect("still there");
    assert_eq!(db.db_instance_class(), Some("db.t3.micro"));
    rds.delete_db_instance()
        .db_instance_identifier(&id)
        .skip_final_snapshot(true)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_changed_master_password_secret_is_applied_and_published() {
    let (_env, client, pc, _rds) = setup().await;
    let name = unique("db");
    let secret = format!("{name}-pw");
    let set_password = |p: &'static str| {
        let client = client.clone();
        let secret = secret.clone();
        async move {
            apply(
                &client,
                json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": { "name": secret, "namespace": TEST_NAMESPACE },
                    "stringData": { "pw": p }
                }),
            )
            .await;
        }
    };
    // The referenced Secret is missing: explained, nothing created.
    let spec = json!({ "masterPasswordSecretRef": { "name": secret, "namespace": TEST_NAMESPACE, "key": "pw" } });
    apply(&client, instance(&name, &pc, spec.clone(), json!({}))).await;
    wait_sync_error(
        &client,
        RDS_API,
        "DBInstance",
        &name,
        "does not exist; create it or change masterPasswordSecretRef",
    )
    .await;

    set_password("first-password-1").await;
    wait_ready(&client, RDS_API, "DBInstance", &name).await;
    let conn = format!("{name}-conn");
    wait_for(Duration::from_secs(30), || async {
        secret_data(&client, TEST_NAMESPACE, &conn)
            .await
            .filter(|d| d.get("password").is_some_and(|p| p == "first-password-1"))
    })
    .await
    .expect("first password published");
    let before = wait_ready(&client, RDS_API, "DBInstance", &name).await.data["status"]["atProvider"]["passwordSecretVersion"].clone();
    assert!(before.is_string());

    set_password("second-password-2").await;
    wait_for(Duration::from_secs(60), || async {
        secret_data(&client, TEST_NAMESPACE, &conn)
            .await
            .filter(|d| d.get("password").is_some_and(|p| p == "second-password-2"))
    })
    .await
    .expect("second password published");
    let after = wait_object(
        &client,
        RDS_API,
        "DBInstance",
        &name,
        Duration::from_secs(30),
        "new password Secret version",
        |o| o.data["status"]["atProvider"]["passwordSecretVersion"] != before,
    )
    .await;
    let status = serde_json::to_string(&after.data["status"]).unwrap();
    assert!(
        !status.contains("second-password-2") && !status.contains("first-password-1"),
        "no password in status"
    );
    delete(&client, RDS_API, "DBInstance", &name).await;
    wait_gone(&client, RDS_API, "DBInstance", &name).await;
}

#[tokio::test]
async fn bad_input_is_explained_on_the_managed_resource() {
    let (env, client, pc, rds) = setup().await;

    // An engine AWS does not know: AWS's own code and message.
    let engine = unique("db");
    apply(
        &client,
        instance(&engine, &pc, json!({ "engine": "postgress" }), json!({})),
    )
    .await;
    let c = wait_sync_error(
        &client,
        RDS_API,
        "DBInstance",
        &engine,
        "InvalidParameterValue",
    )
    .await;
    assert!(
        c.message.contains("CreateDBInstance") && c.message.contains("postgress"),
        "{}",
        c.message
    );
    assert!(describe(&rds, &engine).await.is_none());

    // An identifier RDS would rewrite (upper case): refused before any call.
    let upper = unique("db");
    let mut obj = instance(&upper, &pc, json!({}), json!({}));
    obj["metadata"]["annotations"] = json!({ "tessera.dev/external-name": "MyDB" });
    apply(&client, obj).await;
    wait_sync_error(
        &client,
        RDS_API,
        "DBInstance",
        &upper,
        "\"MyDB\" is not a valid RDS identifier",
    )
    .await;

    // A ProviderConfig whose credentials Secret is missing.
    let no_secret = unique("aws");
    apply(&client, json!({
        "apiVersion": RDS_API, "kind": "ProviderConfig", "metadata": { "name": no_secret },
        "spec": { "region": "us-east-1", "endpointUrl": env.get("AWS_ENDPOINT_URL"),
                  "credentials": { "source": "Secret", "secretRef": { "name": "nope", "namespace": TEST_NAMESPACE } } }
    }))
    .await;
    let missing = unique("db");
    apply(
        &client,
        instance(&missing, &no_secret, json!({}), json!({})),
    )
    .await;
    let c = wait_sync_error(&client, RDS_API, "DBInstance", &missing, "not found").await;
    assert!(
        c.message.contains(&format!("ProviderConfig {no_secret:?}")) && c.message.contains("nope"),
        "{}",
        c.message
    );

    // A region that cannot exist: the message names the ProviderConfig.
    let bad_region = unique("aws");
    rds_provider_config(&env, &client, &bad_region, None).await;
    let pc_obj = json!({
        "apiVersion": RDS_API, "kind": "ProviderConfig", "metadata": { "name": bad_region },
        "spec": { "region": "mars", "endpointUrl": env.get("AWS_ENDPOINT_URL"),
                  "credentials": { "source": "Secret", "secretRef": { "name": format!("{bad_region}-aws"), "namespace": TEST_NAMESPACE } } }
    });
    apply(&client, pc_obj).await;
    let region = unique("db");
    apply(
        &client,
        instance(&region, &bad_region, json!({}), json!({})),
    )
    .await;
    let c = wait_sync_error(
        &client,
        RDS_API,
        "DBInstance",
        &region,
        "is not an AWS region name",
    )
    .await;
    assert!(
        c.message
            .contains(&format!("ProviderConfig {bad_region:?}")),
        "{}",
        c.message
    );

    for name in [&engine, &upper, &missing, &region] {
        delete(&client, RDS_API, "DBInstance", name).await;
        wait_gone(&client, RDS_API, "DBInstance", name).await;
    }
}

#[tokio::test]
async fn a_subnet_group_is_created_changed_used_by_an_instance_and_deleted() {
    let (env, client, pc, rds) = setup().await;
    let (vpc, subnets) = moto_subnets(&env, 20, &["a", "b", "c"]);
    let name = unique("sng");
    let group = |description: &str, subnets: &[String], tags: serde_json::Value| {
        json!({
            "apiVersion": RDS_API, "kind": "DBSubnetGroup", "metadata": { "name": name },
            "spec": { "providerConfigRef": { "name": pc },
                      "forProvider": { "description": description, "subnetIds": subnets, "tags": tags } }
        })
    };
    let applied = apply(
        &client,
        group("first", &subnets[..2], json!({ "team": "a" })),
    )
    .await;
    let uid = applied.metadata.uid.clone().unwrap();
    let ready = wait_ready(&client, RDS_API, "DBSubnetGroup", &name).await;
    assert_eq!(ready.data["status"]["atProvider"]["vpcId"], vpc.as_str());

    let read = || async {
        let out = rds
            .describe_db_subnet_groups()
            .db_subnet_group_name(&name)
            .send()
            .await
            .ok()?;
        let g = out.db_subnet_groups().first()?.clone();
        let tags = rds
            .list_tags_for_resource()
            .resource_name(g.db_subnet_group_arn()?)
            .send()
            .await
            .ok()?;
        let mut ids: Vec<String> = g
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_identifier().map(str::to_string))
            .collect();
        ids.sort();
        let tags: Vec<(String, String)> = tags
            .tag_list()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect();
        Some((
            g.db_subnet_group_description()
                .unwrap_or_default()
                .to_string(),
            ids,
            tags,
        ))
    };
    let (description, ids, tags) = read().await.expect("the group exists in AWS");
    assert_eq!(description, "first");
    let mut want: Vec<String> = subnets[..2].to_vec();
    want.sort();
    assert_eq!(ids, want);
    assert!(
        tags.contains(&(OWNERSHIP_TAG.to_string(), uid.clone())),
        "{tags:?}"
    );
    assert!(
        tags.contains(&("team".to_string(), "a".to_string())),
        "{tags:?}"
    );

    // Change the description, the subnets and the tags.
    apply(
        &client,
        group("second", &subnets[1..], json!({ "team": "b" })),
    )
    .await;
    let mut want: Vec<String> = subnets[1..].to_vec();
    want.sort();
    wait_for(Duration::from_secs(60), || async {
        read()
            .await
            .filter(|(d, ids, _)| d == "second" && *ids == want)
    })
    .await
    .expect("the group was modified");
    wait_for(Duration::from_secs(60), || async {
        read()
            .await
            .filter(|(_, _, tags)| tags.contains(&("team".to_string(), "b".to_string())))
    })
    .await
    .expect("the tags were changed");

    // An instance placed in the group.
    let db = unique("db");
    apply(
        &client,
        instance(&db, &pc, json!({ "dbSubnetGroupName": name }), json!({})),
    )
    .await;
    wait_ready(&client, RDS_API, "DBInstance", &db).await;
    let inst = describe(&rds, &db).await.unwrap();
    assert_eq!(
        inst.db_subnet_group()
            .and_then(|g| g.db_subnet_group_name()),
        Some(name.as_str())
    );
    delete(&client, RDS_API, "DBInstance", &db).await;
    wait_gone(&client, RDS_API, "DBInstance", &db).await;

    delete(&client, RDS_API, "DBSubnetGroup", &name).await;
    wait_gone(&client, RDS_API, "DBSubnetGroup", &name).await;
    assert!(read().await.is_none(), "the group is deleted");
}
