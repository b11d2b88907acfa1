//! RDS helpers: the provider's controllers in-process, ProviderConfigs on the testenv's
//! moto_server, an SDK client for acting behind Tessera's back, and subnets in moto's EC2
//! (DBSubnetGroups need real ones).

use std::sync::OnceLock;

use kube::Client;

use crate::{TEST_NAMESPACE, TestEnv, apply, namespace, start_provider_once};

/// Runs the RDS provider's controllers in this test process, once per test binary, on a
/// runtime of their own, with the same short poll interval and backoff as
/// [`start_controller_in_process`].
pub fn start_rds_controller_in_process(env: &TestEnv) {
    static STARTED: OnceLock<()> = OnceLock::new();
    start_provider_once(&STARTED, env, tessera_provider_rds::run);
}

/// Group/version of the RDS provider's kinds.
pub const RDS_API: &str = "rds.aws.tessera.dev/v1alpha1";

/// Creates an RDS ProviderConfig named `name` (and its credentials Secret) pointing at the
/// testenv's moto_server, or at `endpoint` when given (a proxy in front of moto).
pub async fn rds_provider_config(
    env: &TestEnv,
    client: &Client,
    name: &str,
    endpoint: Option<&str>,
) {
    namespace(client, TEST_NAMESPACE).await;
    namespace(client, tessera_provider_rds::DEFAULT_PASSWORD_NAMESPACE).await;
    apply(
        client,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": format!("{name}-aws"), "namespace": TEST_NAMESPACE },
            "stringData": {
                tessera_provider_rds::ACCESS_KEY_ID: env.get("AWS_ACCESS_KEY_ID"),
                tessera_provider_rds::SECRET_ACCESS_KEY: env.get("AWS_SECRET_ACCESS_KEY"),
            }
        }),
    )
    .await;
    apply(
        client,
        serde_json::json!({
            "apiVersion": RDS_API, "kind": "ProviderConfig",
            "metadata": { "name": name },
            "spec": {
                "region": env.get("AWS_REGION"),
                "endpointUrl": endpoint.unwrap_or(env.get("AWS_ENDPOINT_URL")),
                "credentials": { "source": "Secret",
                    "secretRef": { "name": format!("{name}-aws"), "namespace": TEST_NAMESPACE } }
            }
        }),
    )
    .await;
}

/// An AWS SDK RDS client on the testenv's moto_server, for acting behind Tessera's back.
pub fn rds_sdk(env: &TestEnv) -> aws_sdk_rds::Client {
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
    aws_sdk_rds::Client::from_conf(config)
}

/// Calls moto's EC2 query API (moto does not check signatures; the Authorization header
/// only names the service) and returns the first value of `<field>`.
pub fn moto_ec2(env: &TestEnv, params: &str, field: &str) -> String {
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

/// A new VPC `10.<octet>.0.0/16` in moto's EC2 with one subnet in each of `zones`
/// (`"a"`, `"b"`... of the testenv's region); returns the VPC id and the subnet ids.
pub fn moto_subnets(env: &TestEnv, octet: u8, zones: &[&str]) -> (String, Vec<String>) {
    let vpc = moto_ec2(
        env,
        &format!("Action=CreateVpc&CidrBlock=10.{octet}.0.0/16"),
        "vpcId",
    );
    let region = env.get("AWS_REGION");
    let subnets = zones
        .iter()
        .enumerate()
        .map(|(i, az)| {
            moto_ec2(
                env,
                &format!(
                    "Action=CreateSubnet&VpcId={vpc}&CidrBlock=10.{octet}.{i}.0/24&AvailabilityZone={region}{az}"
                ),
                "subnetId",
            )
        })
        .collect();
    (vpc, subnets)
}
