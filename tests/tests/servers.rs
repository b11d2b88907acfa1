//! Each real server of testenv answers with the client Tessera's providers use.

use tessera_tests::{TestEnv, unique};

#[tokio::test]
async fn postgresql_answers_a_query() {
    let env = TestEnv::load();
    let pg = env.postgres().await;
    let row = pg
        .query_one("SELECT current_user::text, 40 + 2", &[])
        .await
        .expect("query PostgreSQL");
    assert_eq!(row.get::<_, String>(0), env.get("POSTGRES_USER"));
    assert_eq!(row.get::<_, i32>(1), 42);
}

#[tokio::test]
async fn postgresql_is_the_major_version_testenv_pins() {
    let env = TestEnv::load();
    let pg = env.postgres().await;
    let version: String = pg
        .query_one("SHOW server_version_num", &[])
        .await
        .expect("query PostgreSQL")
        .get(0);
    let major = version.parse::<u32>().expect("a number") / 10_000;
    assert_eq!(
        major.to_string(),
        env.get("POSTGRES_MAJOR"),
        "server_version_num {version}; testenv/versions pins POSTGRES_MAJOR"
    );
}

#[tokio::test]
async fn openbao_writes_and_reads_a_kv_v2_secret() {
    let env = TestEnv::load();
    let settings = vaultrs::client::VaultClientSettingsBuilder::default()
        .address(env.get("VAULT_ADDR"))
        .token(env.get("VAULT_TOKEN"))
        .build()
        .expect("vault settings");
    let client = vaultrs::client::VaultClient::new(settings).expect("vault client");
    let path = unique("tessera-test");
    let value = serde_json::json!({ "answer": "42" });
    vaultrs::kv2::set(&client, "secret", &path, &value)
        .await
        .expect("write KV v2 secret");
    let back: serde_json::Value = vaultrs::kv2::read(&client, "secret", &path)
        .await
        .expect("read KV v2 secret");
    assert_eq!(back, value);
}

#[tokio::test]
async fn moto_answers_describe_db_instances_through_aws_sdk_rds() {
    let env = TestEnv::load();
    let creds = aws_sdk_rds::config::Credentials::new(
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "testenv",
    );
    let config = aws_sdk_rds::Config::builder()
        .behavior_version(aws_sdk_rds::config::BehaviorVersion::latest())
        .region(aws_sdk_rds::config::Region::new(
            env.get("AWS_REGION").to_string(),
        ))
        .endpoint_url(env.get("AWS_ENDPOINT_URL"))
        .credentials_provider(creds)
        .build();
    let rds = aws_sdk_rds::Client::from_conf(config);
    let id = unique("tessera-db");
    rds.create_db_instance()
        .db_instance_identifier(&id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .master_username("admin")
        .master_user_password("not-a-real-secret")
        .allocated_storage(20)
        .send()
        .await
        .expect("create DB instance on moto");
    let out = rds
        .describe_db_instances()
        .db_instance_identifier(&id)
        .send()
        .await
        .expect("DescribeDBInstances on moto");
    let instances = out.db_instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].db_instance_identifier(), Some(id.as_str()));
    assert_eq!(instances[0].engine(), Some("postgres"));
    rds.delete_db_instance()
        .db_instance_identifier(&id)
        .skip_final_snapshot(true)
        .send()
        .await
        .expect("delete DB instance");
}

#[tokio::test]
async fn harbor_simulator_authenticates_the_admin_and_refuses_a_wrong_password() {
    let env = TestEnv::load();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let url = format!("{}/api/v2.0/users/current", env.get("HARBOR_SIM_URL"));
    let me = http
        .get(&url)
        .basic_auth(
            env.get("HARBOR_SIM_USERNAME"),
            Some(env.get("HARBOR_SIM_PASSWORD")),
        )
        .header("X-Request-Id", "servers-test")
        .send()
        .await
        .expect("GET users/current on the Harbor API simulator");
    assert_eq!(me.status(), reqwest::StatusCode::OK);
    assert_eq!(me.headers()["x-request-id"], "servers-test");
    let body: serde_json::Value = me.json().await.expect("JSON body");
    assert_eq!(body["username"], env.get("HARBOR_SIM_USERNAME"));
    assert_eq!(body["sysadmin_flag"], true);

    let wrong = http
        .get(&url)
        .basic_auth(env.get("HARBOR_SIM_USERNAME"), Some("not-the-password"))
        .send()
        .await
        .expect("GET users/current with a wrong password");
    assert_eq!(wrong.status(), reqwest::StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = wrong.json().await.expect("JSON error body");
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
}
