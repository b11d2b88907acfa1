//! The RDS provider's credentials, against moto_server (STS and RDS) and the real
//! kube-apiserver: a ProviderConfig whose Secret keys assume a role (`assumeRoleArn` with
//! an external ID), and `credentials.source: Default` read from the controller's own
//! environment, as static keys and as an EKS IRSA web identity (alone, and as the base of
//! another role's AssumeRole).
//!
//! Each test runs `tessera controller` processes (the default chain is the process's
//! environment) on a shard of its own, and points the provider at a recording proxy in
//! front of moto: the proxy notes which access key signed each AWS call and which keys STS
//! handed out, so the tests prove that RDS was called as the assumed role (moto itself
//! checks no signature). The proxy also refuses AssumeRole of roles named `denied-*` as STS
//! refuses a role whose trust policy does not name the caller.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tessera_tests::{
    ControllerProcess, RDS_API, TEST_NAMESPACE, TestEnv, apply, audit, condition, delete,
    http_forward, http_header, http_read_message, install_crds, moto_subnets, namespace, unique,
    wait_for, wait_gone, wait_ready, wait_sync_error,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const SHARD_LABEL: &str = "shard.tessera.dev/key";
/// moto's default account: the RDS calls of an assumed role land in the role's account,
/// where the test's subnets are.
const ACCOUNT: &str = "123456789012";

/// One AWS call as the proxy received it.
#[derive(Clone, Debug)]
struct Call {
    /// The service of the signature's scope (`rds`, `sts`).
    service: String,
    action: String,
    /// The access key ID that signed the call.
    key: String,
    /// The form body, decoded.
    form: String,
}

#[derive(Default)]
struct Recorded {
    calls: Vec<Call>,
    /// Access key IDs that STS handed out, with the action that did (AssumeRole,
    /// AssumeRoleWithWebIdentity).
    issued: Vec<(String, String)>,
}

/// A running proxy in front of moto and what it saw.
struct Proxy {
    url: String,
    recorded: Arc<Mutex<Recorded>>,
}

impl Proxy {
    fn calls(&self) -> Vec<Call> {
        self.recorded.lock().unwrap().calls.clone()
    }
    /// The access key IDs that the STS action `action` handed out.
    fn issued_by(&self, action: &str) -> Vec<String> {
        self.recorded
            .lock()
            .unwrap()
            .issued
            .iter()
            .filter(|(a, _)| a == action)
            .map(|(_, k)| k.clone())
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                }
                Err(_) => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn field(form: &str, key: &str) -> Option<String> {
    form.split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .map(percent_decode)
}

/// The text of the first `<tag>` of `xml`.
fn xml_value<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find('<')? + start;
    Some(&xml[start..end])
}

/// STS's answer to an AssumeRole the role's trust policy does not allow.
fn access_denied(role: &str) -> (String, String, Vec<u8>) {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
         <Type>Sender</Type><Code>AccessDenied</Code><Message>User: \
         arn:aws:iam::{ACCOUNT}:user/tessera is not authorized to perform: sts:AssumeRole on \
         resource: {role}</Message></Error><RequestId>test</RequestId></ErrorResponse>"
    );
    (
        "HTTP/1.1 403 Forbidden".into(),
        "text/xml".into(),
        body.into_bytes(),
    )
}

async fn serve(mut conn: TcpStream, upstream: String, recorded: Arc<Mutex<Recorded>>) {
    let mut buf = Vec::new();
    while let Some((head, body)) = http_read_message(&mut conn, &mut buf).await {
        let form = String::from_utf8_lossy(&body).into_owned();
        let action = field(&form, "Action").unwrap_or_default();
        // Credential=<key>/<date>/<region>/<service>/aws4_request
        let scope: Vec<String> = http_header(&head, "authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split([',', ' ']).next())
            .map(|c| c.split('/').map(str::to_string).collect())
            .unwrap_or_default();
        let call = Call {
            service: scope.get(3).cloned().unwrap_or_default(),
            action: action.clone(),
            key: scope.first().cloned().unwrap_or_default(),
            form: percent_decode(&form),
        };
        recorded.lock().unwrap().calls.push(call);
        let role = field(&form, "RoleArn").unwrap_or_default();
        let (status, content_type, body) =
            if action == "AssumeRole" && role.contains(":role/denied-") {
                access_denied(&role)
            } else {
                let answer = http_forward(&upstream, &head, &body).await;
                if action.starts_with("AssumeRole") {
                    let text = String::from_utf8_lossy(&answer.2);
                    if let Some(key) = xml_value(&text, "AccessKeyId") {
                        recorded
                            .lock()
                            .unwrap()
                            .issued
                            .push((action.clone(), key.to_string()));
                    }
                    // The temporary secrets must appear in no log, Event or status.
                    let secrets: Vec<&str> = ["SecretAccessKey", "SessionToken"]
                        .iter()
                        .filter_map(|t| xml_value(&text, t))
                        .collect();
                    audit::record_secrets(secrets);
                }
                answer
            };
        let head = format!(
            "{status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-requestid: test\r\n\r\n",
            body.len()
        );
        if conn.write_all(head.as_bytes()).await.is_err() || conn.write_all(&body).await.is_err() {
            return;
        }
    }
}

/// A recording proxy in front of the testenv's moto, on a thread and runtime of its own.
fn start_proxy(env: &TestEnv) -> Proxy {
    let upstream = env
        .get("AWS_ENDPOINT_URL")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let recorded = Arc::new(Mutex::new(Recorded::default()));
    let r = recorded.clone();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                loop {
                    let (conn, _) = listener.accept().await.unwrap();
                    tokio::spawn(serve(conn, upstream.clone(), r.clone()));
                }
            })
    });
    Proxy { url, recorded }
}

/// A `tessera controller` running only the RDS provider on the shard `shard`, with `vars`
/// in its environment (and no AWS profile files or instance metadata to fall back on).
fn controller(env: &TestEnv, shard: &str, vars: &[(&str, &str)]) -> ControllerProcess {
    let selector = format!("{SHARD_LABEL} in ({shard})");
    let mut all = vec![
        ("TESSERA_PROVIDERS", "rds"),
        ("TESSERA_SHARD", selector.as_str()),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    all.extend_from_slice(vars);
    ControllerProcess::spawn(env, &all).expect("spawn tessera controller")
}

/// A DBSubnetGroup on `subnets` through the ProviderConfig `pc`, on the shard `shard`.
fn subnet_group(name: &str, pc: &str, shard: &str, subnets: &[String]) -> serde_json::Value {
    json!({
        "apiVersion": RDS_API, "kind": "DBSubnetGroup",
        "metadata": { "name": name, "labels": { SHARD_LABEL: shard } },
        "spec": { "providerConfigRef": { "name": pc },
                  "forProvider": { "description": "credentials test", "subnetIds": subnets } }
    })
}

/// Creates the ProviderConfig `name` with `spec` added to its region and RDS endpoint.
async fn provider_config(
    env: &TestEnv,
    client: &kube::Client,
    name: &str,
    endpoint: &str,
    spec: serde_json::Value,
) {
    let mut s = json!({ "region": env.get("AWS_REGION"), "endpointUrl": endpoint });
    s.as_object_mut()
        .unwrap()
        .extend(spec.as_object().unwrap().clone());
    apply(
        client,
        json!({
            "apiVersion": RDS_API, "kind": "ProviderConfig",
            "metadata": { "name": name }, "spec": s
        }),
    )
    .await;
}

/// The base keys of a ProviderConfig, in a Secret named `name`.
async fn keys_secret(client: &kube::Client, name: &str, key_id: &str, secret: &str) {
    namespace(client, TEST_NAMESPACE).await;
    audit::record_secrets([secret]);
    apply(
        client,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": name, "namespace": TEST_NAMESPACE },
            "stringData": {
                tessera_provider_rds::ACCESS_KEY_ID: key_id,
                tessera_provider_rds::SECRET_ACCESS_KEY: secret,
            }
        }),
    )
    .await;
}

/// The RDS calls that concern the subnet group `name`.
fn rds_calls_for(proxy: &Proxy, name: &str) -> Vec<Call> {
    proxy
        .calls()
        .into_iter()
        .filter(|c| c.service == "rds" && c.form.contains(name))
        .collect()
}

fn test_key(prefix: &str) -> String {
    // Access key IDs are upper-case letters and digits.
    unique(prefix)
        .to_ascii_uppercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

#[tokio::test]
async fn secret_keys_assume_a_role_with_an_external_id_and_refusals_are_explained() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let proxy = start_proxy(&env);
    let shard = unique("creds");
    let _controller = controller(&env, &shard, &[]);
    let (_, subnets) = moto_subnets(&env, 50, &["a", "b"]);

    let base_key = test_key("AKIABASE");
    let secret = unique("base-secret-key");
    let keys = unique("base-keys");
    keys_secret(&client, &keys, &base_key, &secret).await;
    let credentials =
        json!({ "source": "Secret", "secretRef": { "name": keys, "namespace": TEST_NAMESPACE } });
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{}", unique("tessera-rds"));
    let external_id = unique("tenant");

    // A ProviderConfig that assumes the role: the group is made as the role.
    let pc = unique("assume");
    provider_config(
        &env,
        &client,
        &pc,
        &proxy.url,
        json!({ "credentials": credentials, "assumeRoleArn": role, "externalId": external_id,
                "sessionDurationSeconds": 900, "stsEndpointUrl": proxy.url }),
    )
    .await;
    let name = unique("assumed");
    apply(&client, subnet_group(&name, &pc, &shard, &subnets)).await;
    wait_ready(&client, RDS_API, "DBSubnetGroup", &name).await;

    let assume: Vec<Call> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.action == "AssumeRole" && c.form.contains(&role))
        .collect();
    assert_eq!(assume.len(), 1, "one AssumeRole, then cached: {assume:?}");
    let call = &assume[0];
    assert_eq!(call.service, "sts");
    assert_eq!(
        call.key, base_key,
        "AssumeRole is signed with the Secret's key"
    );
    assert!(
        call.form.contains(&format!("ExternalId={external_id}"))
            && call.form.contains(&format!("RoleSessionName=tessera-{pc}"))
            && call.form.contains("DurationSeconds=900"),
        "{}",
        call.form
    );
    let issued = proxy.issued_by("AssumeRole");
    let rds = rds_calls_for(&proxy, &name);
    assert!(
        rds.iter().any(|c| c.action == "CreateDBSubnetGroup"),
        "{rds:?}"
    );
    assert!(
        rds.iter().all(|c| issued.contains(&c.key)),
        "every RDS call is signed with the assumed role's key {issued:?}: {rds:?}"
    );

    // More polls reuse the cached role credentials: no second AssumeRole.
    let seen = rds.len();
    wait_for(Duration::from_secs(60), || async {
        (rds_calls_for(&proxy, &name).len() >= seen + 2).then_some(())
    })
    .await
    .expect("the group is polled again");
    let again = proxy
        .calls()
        .into_iter()
        .filter(|c| c.action == "AssumeRole" && c.form.contains(&role))
        .count();
    assert_eq!(again, 1, "the assumed credentials are cached between polls");

    // STS refuses a role whose trust policy does not allow the caller.
    let denied_role = format!("arn:aws:iam::{ACCOUNT}:role/denied-{}", unique("r"));
    let denied_pc = unique("denied");
    provider_config(
        &env,
        &client,
        &denied_pc,
        &proxy.url,
        json!({ "credentials": credentials, "assumeRoleArn": denied_role,
                "stsEndpointUrl": proxy.url }),
    )
    .await;
    let refused = unique("refused");
    apply(
        &client,
        subnet_group(&refused, &denied_pc, &shard, &subnets),
    )
    .await;
    let cond = wait_sync_error(
        &client,
        RDS_API,
        "DBSubnetGroup",
        &refused,
        "STS refused AssumeRole",
    )
    .await;
    for part in [
        format!("ProviderConfig {denied_pc:?}"),
        format!("role {denied_role}"),
        format!("Secret {TEST_NAMESPACE}/{keys}"),
        "AccessDenied".to_string(),
        "is not authorized to perform: sts:AssumeRole".to_string(),
    ] {
        assert!(cond.message.contains(&part), "{part:?} in {}", cond.message);
    }
    assert!(
        !cond.message.contains(&secret),
        "no secret in {}",
        cond.message
    );
    assert!(
        rds_calls_for(&proxy, &refused).is_empty(),
        "no RDS call without credentials"
    );

    // A role name where an ARN belongs is refused before any call.
    let bad_pc = unique("badarn");
    provider_config(
        &env,
        &client,
        &bad_pc,
        &proxy.url,
        json!({ "credentials": credentials, "assumeRoleArn": "tessera-rds" }),
    )
    .await;
    let bad = unique("badarn");
    apply(&client, subnet_group(&bad, &bad_pc, &shard, &subnets)).await;
    let cond = wait_sync_error(
        &client,
        RDS_API,
        "DBSubnetGroup",
        &bad,
        "is not an IAM role ARN",
    )
    .await;
    assert!(
        cond.message.contains(&format!("ProviderConfig {bad_pc:?}")),
        "{}",
        cond.message
    );

    for n in [&name, &refused, &bad] {
        delete(&client, RDS_API, "DBSubnetGroup", n).await;
    }
    for n in [&name, &refused, &bad] {
        wait_gone(&client, RDS_API, "DBSubnetGroup", n).await;
    }
    assert!(
        rds_calls_for(&proxy, &name)
            .iter()
            .any(|c| c.action == "DeleteDBSubnetGroup" && issued.contains(&c.key)),
        "the group is deleted as the role"
    );
    for pc in [&pc, &denied_pc, &bad_pc] {
        delete(&client, RDS_API, "ProviderConfig", pc).await;
    }
}

#[tokio::test]
async fn source_default_reads_keys_from_the_controller_environment() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let proxy = start_proxy(&env);
    let shard = unique("envkeys");
    let key = test_key("AKIAENV");
    let secret = unique("env-secret-key");
    audit::record_secrets([secret.as_str()]);
    let _controller = controller(
        &env,
        &shard,
        &[
            ("AWS_ACCESS_KEY_ID", &key),
            ("AWS_SECRET_ACCESS_KEY", &secret),
        ],
    );
    let (_, subnets) = moto_subnets(&env, 51, &["a", "b"]);

    let pc = unique("default");
    provider_config(
        &env,
        &client,
        &pc,
        &proxy.url,
        json!({ "credentials": { "source": "Default" } }),
    )
    .await;
    let name = unique("envkeys");
    apply(&client, subnet_group(&name, &pc, &shard, &subnets)).await;
    wait_ready(&client, RDS_API, "DBSubnetGroup", &name).await;
    let rds = rds_calls_for(&proxy, &name);
    assert!(
        rds.iter().any(|c| c.action == "CreateDBSubnetGroup"),
        "{rds:?}"
    );
    assert!(
        rds.iter().all(|c| c.key == key),
        "every RDS call is signed with the environment's key {key}: {rds:?}"
    );
    assert!(
        proxy.calls().iter().all(|c| c.service != "sts"),
        "static keys need no STS call"
    );

    delete(&client, RDS_API, "DBSubnetGroup", &name).await;
    wait_gone(&client, RDS_API, "DBSubnetGroup", &name).await;
    delete(&client, RDS_API, "ProviderConfig", &pc).await;
}

#[tokio::test]
async fn source_default_uses_an_irsa_web_identity_and_explains_a_missing_one() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let proxy = start_proxy(&env);
    let (_, subnets) = moto_subnets(&env, 52, &["a", "b"]);

    // The projected ServiceAccount token of EKS IRSA, as a file; moto's STS accepts any token.
    let token = unique("web-identity-token");
    audit::record_secrets([token.as_str()]);
    let token_file = std::env::temp_dir().join(unique("irsa-token"));
    std::fs::write(&token_file, &token).unwrap();
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{}", unique("irsa"));
    let shard = unique("irsa");
    let _controller = controller(
        &env,
        &shard,
        &[
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
            ("AWS_ROLE_ARN", &role),
            // The SDK's own variable for the STS endpoint of the web identity exchange.
            ("AWS_ENDPOINT_URL_STS", &proxy.url),
        ],
    );
    let pc = unique("irsa");
    provider_config(
        &env,
        &client,
        &pc,
        &proxy.url,
        json!({ "credentials": { "source": "Default" } }),
    )
    .await;
    let name = unique("irsa");
    apply(&client, subnet_group(&name, &pc, &shard, &subnets)).await;
    wait_ready(&client, RDS_API, "DBSubnetGroup", &name).await;

    let exchange: Vec<Call> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.action == "AssumeRoleWithWebIdentity" && c.form.contains(&role))
        .collect();
    assert!(!exchange.is_empty(), "{:?}", proxy.calls());
    assert!(
        exchange[0]
            .form
            .contains(&format!("WebIdentityToken={token}")),
        "the token file's content is exchanged"
    );
    let issued = proxy.issued_by("AssumeRoleWithWebIdentity");
    let rds = rds_calls_for(&proxy, &name);
    assert!(
        rds.iter().any(|c| c.action == "CreateDBSubnetGroup"),
        "{rds:?}"
    );
    assert!(
        rds.iter().all(|c| issued.contains(&c.key)),
        "every RDS call is signed with the web identity role's key {issued:?}: {rds:?}"
    );

    // The IRSA role assumes another one (the cross-account set-up): AssumeRole is signed
    // with the web identity role's key, RDS with the assumed role's.
    let target_role = format!("arn:aws:iam::{ACCOUNT}:role/{}", unique("target"));
    let chained_pc = unique("chained");
    provider_config(
        &env,
        &client,
        &chained_pc,
        &proxy.url,
        json!({ "credentials": { "source": "Default" }, "assumeRoleArn": target_role,
                "stsEndpointUrl": proxy.url }),
    )
    .await;
    let chained = unique("chained");
    apply(
        &client,
        subnet_group(&chained, &chained_pc, &shard, &subnets),
    )
    .await;
    wait_ready(&client, RDS_API, "DBSubnetGroup", &chained).await;
    let assume: Vec<Call> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.action == "AssumeRole" && c.form.contains(&target_role))
        .collect();
    assert!(!assume.is_empty(), "{:?}", proxy.calls());
    let web_identity_keys = proxy.issued_by("AssumeRoleWithWebIdentity");
    assert!(
        assume.iter().all(|c| web_identity_keys.contains(&c.key)),
        "AssumeRole is signed with a web identity role's key {web_identity_keys:?}: {assume:?}"
    );
    let target_keys = proxy.issued_by("AssumeRole");
    let rds = rds_calls_for(&proxy, &chained);
    assert!(
        !rds.is_empty() && rds.iter().all(|c| target_keys.contains(&c.key)),
        "every RDS call is signed with the assumed role's key {target_keys:?}: {rds:?}"
    );

    for n in [&name, &chained] {
        delete(&client, RDS_API, "DBSubnetGroup", n).await;
    }
    for n in [&name, &chained] {
        wait_gone(&client, RDS_API, "DBSubnetGroup", n).await;
    }
    delete(&client, RDS_API, "ProviderConfig", &chained_pc).await;

    // A controller with no credentials at all: the managed resource says so.
    let bare_shard = unique("bare");
    let _bare = controller(
        &env,
        &bare_shard,
        &[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")],
    );
    let orphan = unique("nocreds");
    apply(&client, subnet_group(&orphan, &pc, &bare_shard, &subnets)).await;
    let cond = wait_sync_error(
        &client,
        RDS_API,
        "DBSubnetGroup",
        &orphan,
        "no AWS credentials found",
    )
    .await;
    assert!(
        cond.message.contains(&format!("ProviderConfig {pc:?}"))
            && cond.message.contains("default credential chain"),
        "{}",
        cond.message
    );
    assert_eq!(
        condition(
            &tessera_tests::get(&client, RDS_API, "DBSubnetGroup", &orphan)
                .await
                .unwrap(),
            "Ready"
        )
        .map(|c| c.is_true()),
        Some(false)
    );
    delete(&client, RDS_API, "DBSubnetGroup", &orphan).await;
    wait_gone(&client, RDS_API, "DBSubnetGroup", &orphan).await;
    delete(&client, RDS_API, "ProviderConfig", &pc).await;
    let _ = std::fs::remove_file(&token_file);
}
