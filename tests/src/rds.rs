//! RDS helpers: the provider's controllers in-process, ProviderConfigs on the testenv's
//! moto_server, an SDK client for acting behind Tessera's back, and subnets in moto's EC2
//! (DBSubnetGroups need real ones), and a plain HTTP/1.1 relay to moto for tests that put a
//! recording or fault-injecting proxy between the provider and moto.

use std::sync::OnceLock;

use kube::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// The value of header `name` (case-insensitive) in an HTTP message head.
pub fn http_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// One HTTP/1.1 message from `conn`: head and body (by Content-Length); `None` at EOF.
pub async fn http_read_message(
    conn: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len = http_header(&head, "content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 8192];
                let n = conn.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Some((head, body));
        }
        let mut chunk = [0u8; 8192];
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends the request to moto on a fresh connection; returns status line, content type and body.
pub async fn http_forward(upstream: &str, head: &str, body: &[u8]) -> (String, String, Vec<u8>) {
    let mut out = String::new();
    for (i, line) in head.lines().enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(upstream).await.expect("connect to moto");
    up.write_all(out.as_bytes()).await.unwrap();
    up.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    up.read_to_end(&mut raw).await.unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "moto answered chunked"
    );
    let status = head.lines().next().unwrap_or_default().to_string();
    let content_type = http_header(&head, "content-type")
        .unwrap_or("text/xml")
        .to_string();
    (status, content_type, raw[end + 4..].to_vec())
}
