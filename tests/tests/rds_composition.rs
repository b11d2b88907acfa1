//! The `postgres-rds` Composition: a PostgresDatabase claim that selects it by label gets
//! a DBSubnetGroup and a DBInstance on (simulated) RDS and a Secret in its namespace with
//! the same six keys as with `postgres-shared`; deleting the claim deletes the instance.
//! Real kube-apiserver, moto, and the composition and RDS controllers in this process.

use std::time::Duration;

use serde_json::json;
use tessera_tests::{
    TestEnv, apply, install_crds, install_postgres_platform, namespace, rds_provider_config,
    rds_sdk, secret_data, start_composition_controllers_in_process,
    start_rds_controller_in_process, unique, wait_for, yaml_docs,
};

/// Calls moto's EC2 query API (moto does not check signatures) and returns the first
/// value of `<field>`.
fn ec2(env: &TestEnv, params: &str, field: &str) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-fsS",
            "--max-time",
            "10",
            env.get("AWS_ENDPOINT_URL"),
            "-H",
            &format!(
                "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/{}/ec2/aws4_request, SignedHeaders=host, Signature=0",
                env.get("AWS_REGION")
            ),
            "-d",
            &format!("Version=2016-11-15&{params}"),
        ])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "EC2 {params}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = String::from_utf8_lossy(&out.stdout);
    let open = format!("<{field}>");
    let start = body
        .find(&open)
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        + open.len();
    let end = body[start..].find('<').unwrap() + start;
    body[start..end].to_string()
}

#[tokio::test]
async fn a_claim_selecting_postgres_rds_gets_an_instance_and_the_six_keys() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    install_postgres_platform(&env, &client).await;
    rds_provider_config(&env, &client, "default", None).await;
    let vpc = ec2(&env, "Action=CreateVpc&CidrBlock=10.30.0.0/16", "vpcId");
    let region = env.get("AWS_REGION");
    let subnets: Vec<String> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, az)| {
            ec2(&env, &format!("Action=CreateSubnet&VpcId={vpc}&CidrBlock=10.30.{i}.0/24&AvailabilityZone={region}{az}"), "subnetId")
        })
        .collect();
    let mut composition = yaml_docs("compositions/postgres/composition-rds.yaml").remove(0);
    composition["spec"]["resources"][0]["base"]["spec"]["forProvider"]["subnetIds"] =
        json!(subnets);
    apply(&client, composition).await;
    start_rds_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    tessera_tests::wait_crd_established(&client, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD offers the PostgresDatabase claim");

    let ns = namespace(&client, &unique("shop")).await;
    let name = "orders";
    let claim = |engine: &str| {
        let mut c = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
        c["metadata"]["namespace"] = json!(ns);
        c["metadata"]["name"] = json!(name);
        c["spec"]["compositionSelector"] =
            json!({ "matchLabels": { "platform.tessera.dev/engine": engine } });
        c
    };
    apply(&client, claim("rds")).await;

    // The Secret in the claim's namespace: six keys, the RDS endpoint.
    let secret = wait_for(Duration::from_secs(90), || async {
        secret_data(&client, &ns, "orders-db").await.filter(|s| {
            s.get("host")
                .is_some_and(|h| h.ends_with(".rds.amazonaws.com"))
        })
    })
    .await
    .expect("a Secret with the RDS instance's endpoint");
    let mut keys: Vec<&str> = secret.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["database", "host", "password", "port", "url", "username"]
    );
    assert_eq!(secret["database"], "app");
    assert_eq!(secret["username"], "app");
    assert_eq!(
        secret["url"],
        format!(
            "postgres://app:{}@{}:{}/app",
            secret["password"], secret["host"], secret["port"]
        )
    );
    let xr = tessera_engine::naming::claim_composite_name(&ns, name);
    let rds = rds_sdk(&env);
    let db = rds
        .describe_db_instances()
        .db_instance_identifier(&xr)
        .send()
        .await
        .expect("the instance exists");
    let db = &db.db_instances()[0];
    assert_eq!(
        db.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some(xr.as_str())
    );
    assert_eq!(db.db_name(), Some("app"));

    tessera_tests::delete_in(
        &client,
        "platform.tessera.dev/v1alpha1",
        "PostgresDatabase",
        &ns,
        name,
    )
    .await;
    wait_for(Duration::from_secs(90), || async {
        let out = rds
            .describe_db_instances()
            .db_instance_identifier(&xr)
            .send()
            .await;
        out.is_err_and(|e| {
            e.as_service_error()
                .is_some_and(|s| s.is_db_instance_not_found_fault())
        })
        .then_some(())
    })
    .await
    .expect("deleting the claim deletes its instance in AWS");
    let snapshot = rds
        .describe_db_snapshots()
        .db_snapshot_identifier(format!("{xr}-final"))
        .send()
        .await
        .expect("the final snapshot the Composition names");
    assert_eq!(snapshot.db_snapshots().len(), 1);
}
