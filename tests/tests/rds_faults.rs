//! What moto does not model, injected by a small HTTP proxy between the provider and moto:
//! a throttled CreateDBInstance, an HTTP 500 on a describe, and an instance that stays
//! `creating` for the first describes. The resource converges, Ready turns True only on
//! `available` (with the AWS status in the message until then), the SDK's own retries
//! absorb the faults (no error reaches the managed resource), and the number of AWS calls
//! stays bounded: in steady state one DescribeDBInstances per poll and nothing else.
//! Ready=False is `Creating` while the instance is made and `Unavailable` when an
//! existing one is `modifying` or `backing-up`. The proxy also refuses what AWS refuses
//! and moto accepts (an unknown instance class, storage below the minimum), so that bad
//! input can be shown explained on the managed resource and on the claim.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_tests::{
    RDS_API, TEST_NAMESPACE, TestEnv, apply, condition, delete, delete_in, events_about, get,
    http_forward, http_read_message, install_crds, install_postgres_platform, kubectl,
    moto_subnets, namespace, rds_provider_config, start_composition_controllers_in_process,
    start_rds_controller_in_process, unique, wait_crd_established, wait_gone, wait_gone_in,
    wait_object, wait_object_in, wait_ready, wait_reconciled, wait_sync_error, yaml_docs,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// How many answers to DescribeDBInstances say `creating` instead of `available`.
const CREATING_DESCRIBES: usize = 3;

#[derive(Default)]
struct Proxy {
    /// Whether to inject the faults (a throttled create, an HTTP 500, `creating`);
    /// otherwise the proxy only validates as AWS does.
    faults: bool,
    /// When set, the AWS status every describe of the test's instance reports (an
    /// instance that is `modifying`, `rebooting`, ... behind Tessera's back).
    status: Mutex<Option<String>>,
    /// Requests per AWS action, as received from the provider.
    calls: Mutex<BTreeMap<String, usize>>,
    /// Answers rewritten from `available` to `creating`.
    creating_served: Mutex<usize>,
    /// HTTP 500 answers injected.
    errors_served: Mutex<usize>,
}

impl Proxy {
    fn count(&self, action: &str) -> usize {
        self.calls.lock().unwrap().get(action).copied().unwrap_or(0)
    }
    fn snapshot(&self) -> BTreeMap<String, usize> {
        self.calls.lock().unwrap().clone()
    }
}

fn field<'a>(form: &'a str, key: &str) -> Option<&'a str> {
    form.split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn aws_error(status: &str, code: &str) -> (String, String, Vec<u8>) {
    aws_error_message(status, code, "injected by the test proxy")
}

fn aws_error_message(status: &str, code: &str, message: &str) -> (String, String, Vec<u8>) {
    let body = format!(
        "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
         <Message>{message}</Message></Error><RequestId>test</RequestId></ErrorResponse>"
    );
    (
        format!("HTTP/1.1 {status}"),
        "text/xml".into(),
        body.into_bytes(),
    )
}

/// What AWS refuses and moto accepts in a CreateDBInstance: an instance class that does
/// not exist (RDS answers InvalidParameterCombination) and storage below the engine's
/// minimum (InvalidParameterValue), with AWS's own messages.
fn refused_as_aws_does(form: &str) -> Option<(String, String, Vec<u8>)> {
    let decode = |v: &str| v.replace("%2E", ".").replace("%2e", ".");
    let engine = decode(field(form, "Engine").unwrap_or_default());
    let class = decode(field(form, "DBInstanceClass").unwrap_or_default());
    let class_ok = class
        .strip_prefix("db.")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(family, size)| {
            !family.is_empty()
                && family
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && (["micro", "small", "medium", "large", "xlarge"].contains(&size)
                    || size
                        .strip_suffix("xlarge")
                        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())))
        });
    if !class_ok {
        let version = decode(field(form, "EngineVersion").unwrap_or("16.4"));
        return Some(aws_error_message(
            "400 Bad Request",
            "InvalidParameterCombination",
            &format!(
                "RDS does not support creating a DB instance with the following combination: \
                 DBInstanceClass={class}, Engine={engine}, EngineVersion={version}, \
                 LicenseModel=postgresql-license. For supported combinations of instance class \
                 and database engine version, see the documentation."
            ),
        ));
    }
    let storage: i64 = field(form, "AllocatedStorage")?.parse().ok()?;
    let storage_type = field(form, "StorageType").unwrap_or("gp2");
    (storage < 20).then(|| {
        aws_error_message(
            "400 Bad Request",
            "InvalidParameterValue",
            &format!(
                "Invalid storage size for engine name {engine} and storage type {storage_type}: {storage}"
            ),
        )
    })
}

async fn serve(mut conn: TcpStream, upstream: String, id: String, proxy: Arc<Proxy>) {
    let mut buf = Vec::new();
    while let Some((head, body)) = http_read_message(&mut conn, &mut buf).await {
        let form = String::from_utf8_lossy(&body).into_owned();
        let action = field(&form, "Action").unwrap_or("?").to_string();
        let ours = field(&form, "DBInstanceIdentifier") == Some(id.as_str());
        let n = {
            let mut calls = proxy.calls.lock().unwrap();
            let n = calls.entry(action.clone()).or_default();
            *n += 1;
            *n
        };
        let refused = (action == "CreateDBInstance")
            .then(|| refused_as_aws_does(&form))
            .flatten();
        let answer = if let Some(refused) = refused {
            refused
        } else if proxy.faults && action == "CreateDBInstance" && n == 1 {
            aws_error("400 Bad Request", "Throttling")
        } else if proxy.faults
            && action == "DescribeDBInstances"
            && ours
            && proxy.count("CreateDBInstance") >= 2
            && {
                let mut e = proxy.errors_served.lock().unwrap();
                let inject = *e == 0;
                *e += usize::from(inject);
                inject
            }
        {
            aws_error("500 Internal Server Error", "InternalFailure")
        } else {
            let (status, content_type, mut body) = http_forward(&upstream, &head, &body).await;
            if action == "DescribeDBInstances" && ours {
                let text = String::from_utf8_lossy(&body).into_owned();
                let available = "<DBInstanceStatus>available</DBInstanceStatus>";
                let mut served = proxy.creating_served.lock().unwrap();
                let status = proxy.status.lock().unwrap().clone();
                if let Some(status) = status {
                    body = text
                        .replace(
                            available,
                            &format!("<DBInstanceStatus>{status}</DBInstanceStatus>"),
                        )
                        .into_bytes();
                } else if proxy.faults && text.contains(available) && *served < CREATING_DESCRIBES {
                    *served += 1;
                    body = text
                        .replace(available, "<DBInstanceStatus>creating</DBInstanceStatus>")
                        .into_bytes();
                }
            }
            (status, content_type, body)
        };
        let (status, content_type, body) = answer;
        let head = format!(
            "{status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-requestid: test\r\n\r\n",
            body.len()
        );
        if conn.write_all(head.as_bytes()).await.is_err() || conn.write_all(&body).await.is_err() {
            return;
        }
    }
}

async fn start_proxy(upstream: String, id: String, faults: bool) -> (String, Arc<Proxy>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let proxy = Arc::new(Proxy {
        faults,
        ..Proxy::default()
    });
    let p = proxy.clone();
    // A thread and runtime of its own, like the in-process controllers it serves: the
    // test's runtime ends with the test.
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                loop {
                    let (conn, _) = listener.accept().await.unwrap();
                    tokio::spawn(serve(conn, upstream.clone(), id.clone(), p.clone()));
                }
            })
    });
    (format!("http://{addr}"), proxy)
}

#[tokio::test]
async fn throttling_errors_and_a_slow_create_converge_with_a_bounded_number_of_calls() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    start_rds_controller_in_process(&env);
    let name = unique("faulty");
    let upstream = env
        .get("AWS_ENDPOINT_URL")
        .trim_start_matches("http://")
        .to_string();
    let (url, proxy) = start_proxy(upstream, name.clone(), true).await;
    let pc = unique("proxied");
    rds_provider_config(&env, &client, &pc, Some(&url)).await;

    apply(&client, json!({
        "apiVersion": RDS_API, "kind": "DBInstance", "metadata": { "name": name },
        "spec": { "providerConfigRef": { "name": pc },
                  "forProvider": { "engine": "postgres", "dbInstanceClass": "db.t3.micro",
                                   "allocatedStorage": 20, "masterUsername": "admin",
                                   "skipFinalSnapshot": true },
                  "writeConnectionSecretToRef": { "name": format!("{name}-conn"), "namespace": TEST_NAMESPACE } }
    }))
    .await;

    // While AWS says `creating`: Ready=False with the AWS status in the message.
    let creating = wait_object(
        &client,
        RDS_API,
        "DBInstance",
        &name,
        Duration::from_secs(60),
        "Ready=False while creating",
        |o| condition(o, "Ready").is_some_and(|c| !c.is_true() && c.message.contains("creating")),
    )
    .await;
    assert_eq!(condition(&creating, "Ready").unwrap().reason, "Creating");
    assert!(*proxy.creating_served.lock().unwrap() <= CREATING_DESCRIBES);

    let ready = wait_ready(&client, RDS_API, "DBInstance", &name).await;
    assert_eq!(ready.data["status"]["atProvider"]["status"], "available");
    assert_eq!(
        *proxy.creating_served.lock().unwrap(),
        CREATING_DESCRIBES,
        "Ready only after every `creating`"
    );
    assert_eq!(*proxy.errors_served.lock().unwrap(), 1);

    // The SDK retried the throttled create once; the runtime never saw an error.
    assert_eq!(
        proxy.count("CreateDBInstance"),
        2,
        "one throttled, one retried by the SDK"
    );
    let warnings: Vec<_> = events_about(&client, "default", &name)
        .await
        .into_iter()
        .filter(|(type_, _, _)| type_ == "Warning")
        .collect();
    assert!(
        warnings.is_empty(),
        "no failure reached the managed resource: {warnings:?}"
    );
    // Bounded: the creating polls, the injected 500 and its retry, the describe before the
    // create and the read-back after it, and a few reconciles of status writes.
    let describes = proxy.count("DescribeDBInstances");
    eprintln!("AWS calls until Ready: {:?}", proxy.snapshot());
    assert!(
        describes <= CREATING_DESCRIBES + 10,
        "{describes} describes: {:?}",
        proxy.snapshot()
    );
    assert_eq!(proxy.count("ModifyDBInstance"), 0, "nothing to modify");

    // Steady state: a poll is one DescribeDBInstances and nothing else, and writes nothing
    // to Kubernetes (late-initialised fields settled, status unchanged).
    let since = Instant::now();
    wait_reconciled("DBInstance", None, &name, since, Duration::from_secs(30)).await;
    let version = get(&client, RDS_API, "DBInstance", &name)
        .await
        .unwrap()
        .metadata
        .resource_version;
    let before = proxy.snapshot();
    let since = Instant::now();
    wait_reconciled("DBInstance", None, &name, since, Duration::from_secs(30)).await;
    let after = proxy.snapshot();
    let mut grown: Vec<(String, usize)> = after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect();
    grown.sort();
    assert_eq!(
        grown,
        vec![("DescribeDBInstances".to_string(), 1)],
        "calls of one poll"
    );
    let again = get(&client, RDS_API, "DBInstance", &name)
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_eq!(
        version, again,
        "a steady poll writes nothing to the DBInstance"
    );

    // An instance that was available and is `modifying` (or `backing-up`) behind
    // Tessera's back is Unavailable, not Creating, with the AWS status in the message.
    for status in ["modifying", "backing-up"] {
        *proxy.status.lock().unwrap() = Some(status.to_string());
        let unavailable = wait_object(
            &client,
            RDS_API,
            "DBInstance",
            &name,
            Duration::from_secs(60),
            "Ready=False while AWS changes the instance",
            |o| {
                condition(o, "Ready")
                    .is_some_and(|c| !c.is_true() && c.message.ends_with(&format!(": {status}")))
            },
        )
        .await;
        assert_eq!(
            condition(&unavailable, "Ready").unwrap().reason,
            "Unavailable",
            "{status}"
        );
        *proxy.status.lock().unwrap() = None;
        wait_ready(&client, RDS_API, "DBInstance", &name).await;
    }

    delete(&client, RDS_API, "DBInstance", &name).await;
    wait_gone(&client, RDS_API, "DBInstance", &name).await;
    assert_eq!(proxy.count("DeleteDBInstance"), 1);
}

/// A Composition of `postgres-rds`'s resources, named and labelled `name`, whose
/// DBInstance's forProvider is changed by `instance` and whose resources use the
/// ProviderConfig `pc`.
fn rds_composition(
    name: &str,
    pc: &str,
    subnets: &[String],
    instance: serde_json::Value,
) -> serde_json::Value {
    let mut c = yaml_docs("compositions/postgres/composition-rds.yaml").remove(0);
    c["metadata"]["name"] = json!(name);
    c["metadata"]["labels"] = json!({ "platform.tessera.dev/engine": name });
    c["spec"]["resources"][0]["base"]["spec"]["forProvider"]["subnetIds"] = json!(subnets);
    for r in 0..2 {
        c["spec"]["resources"][r]["base"]["spec"]["providerConfigRef"]["name"] = json!(pc);
    }
    if let (Some(base), Some(extra)) = (
        c["spec"]["resources"][1]["base"]["spec"]["forProvider"].as_object_mut(),
        instance.as_object(),
    ) {
        base.extend(extra.clone());
    }
    c
}

#[tokio::test]
async fn bad_input_is_explained_on_the_managed_resource_and_on_the_claim() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    install_postgres_platform(&env, &client).await;
    start_rds_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    wait_crd_established(&client, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD offers the PostgresDatabase claim");
    let upstream = env
        .get("AWS_ENDPOINT_URL")
        .trim_start_matches("http://")
        .to_string();
    let (url, _proxy) = start_proxy(upstream, String::new(), false).await;
    let pc = unique("validated");
    rds_provider_config(&env, &client, &pc, Some(&url)).await;
    let (_, subnets) = moto_subnets(&env, 40, &["a", "b"]);

    // A ProviderConfig whose credentials Secret does not exist, and one with a region
    // that cannot exist.
    let no_secret = unique("aws");
    apply(&client, json!({
        "apiVersion": RDS_API, "kind": "ProviderConfig", "metadata": { "name": no_secret },
        "spec": { "region": env.get("AWS_REGION"), "endpointUrl": url,
                  "credentials": { "source": "Secret", "secretRef": { "name": "nope", "namespace": TEST_NAMESPACE } } }
    }))
    .await;
    let bad_region = unique("aws");
    rds_provider_config(&env, &client, &bad_region, Some(&url)).await;
    apply(&client, json!({
        "apiVersion": RDS_API, "kind": "ProviderConfig", "metadata": { "name": bad_region },
        "spec": { "region": "mars", "endpointUrl": url,
                  "credentials": { "source": "Secret", "secretRef": { "name": format!("{bad_region}-aws"), "namespace": TEST_NAMESPACE } } }
    }))
    .await;

    struct Case {
        reason: &'static str,
        pc: String,
        instance: serde_json::Value,
        /// The composed resource that fails.
        resource: &'static str,
        /// What its Synced message and the claim's Ready message both say.
        says: Vec<String>,
    }
    let cases = [
        Case {
            reason: "unknown engine",
            pc: pc.clone(),
            instance: json!({ "engine": "postgress" }),
            resource: "instance",
            says: vec!["InvalidParameterValue".into(), "postgress".into()],
        },
        Case {
            reason: "storage below the engine's minimum",
            pc: pc.clone(),
            instance: json!({ "allocatedStorage": 5 }),
            resource: "instance",
            says: vec![
                "InvalidParameterValue".into(),
                "Invalid storage size for engine name postgres and storage type gp3: 5".into(),
            ],
        },
        Case {
            reason: "instance class typo",
            pc: pc.clone(),
            instance: json!({ "dbInstanceClass": "db.t3.micr" }),
            resource: "instance",
            says: vec![
                "InvalidParameterCombination".into(),
                "RDS does not support creating a DB instance with the following combination: DBInstanceClass=db.t3.micr".into(),
            ],
        },
        Case {
            reason: "missing credentials Secret",
            pc: no_secret.clone(),
            instance: json!({}),
            resource: "subnets",
            says: vec![format!("ProviderConfig {no_secret:?}"), "nope".into()],
        },
        Case {
            reason: "unknown region",
            pc: bad_region.clone(),
            instance: json!({}),
            resource: "subnets",
            says: vec![
                format!("ProviderConfig {bad_region:?}"),
                "\"mars\" is not an AWS region name".into(),
            ],
        },
    ];
    let ns = namespace(&client, &unique("shop")).await;
    let mut claims = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let comp = unique("bad-rds");
        apply(
            &client,
            rds_composition(&comp, &c.pc, &subnets, c.instance.clone()),
        )
        .await;
        let name = format!("bad-{i}");
        apply(&client, json!({
            "apiVersion": "platform.tessera.dev/v1alpha1", "kind": "PostgresDatabase",
            "metadata": { "name": name, "namespace": ns },
            "spec": { "compositionSelector": { "matchLabels": { "platform.tessera.dev/engine": comp } },
                      "writeConnectionSecretToRef": { "name": format!("{name}-db") } }
        }))
        .await;
        claims.push(name);
    }
    for (c, name) in cases.iter().zip(&claims) {
        let xr = tessera_engine::naming::claim_composite_name(&ns, name);
        // On the managed resource: its Synced condition.
        let mr = wait_sync_error(
            &client,
            RDS_API,
            if c.resource == "instance" {
                "DBInstance"
            } else {
                "DBSubnetGroup"
            },
            &format!("{xr}-{}", c.resource),
            &c.says[0],
        )
        .await;
        for s in &c.says {
            assert!(
                mr.message.contains(s.as_str()),
                "{}: managed resource: {}",
                c.reason,
                mr.message
            );
        }
        // On the claim: its Ready condition names the resource and quotes its failure.
        let claim = wait_object_in(
            &client,
            "platform.tessera.dev/v1alpha1",
            "PostgresDatabase",
            &ns,
            name,
            c.reason,
            |o| {
                condition(o, "Ready").is_some_and(|r| {
                    !r.is_true() && c.says.iter().all(|s| r.message.contains(s.as_str()))
                })
            },
        )
        .await;
        let ready = condition(&claim, "Ready").unwrap();
        assert!(
            ready
                .message
                .contains(&format!("Resource '{}'", c.resource)),
            "{}: {}",
            c.reason,
            ready.message
        );
        // And `kubectl describe` of the claim shows it.
        let described = kubectl(
            &env,
            &[
                "describe",
                "postgresdatabases.platform.tessera.dev",
                "-n",
                &ns,
                name,
            ],
        );
        assert!(
            described.contains(c.says[0].as_str()),
            "{}: kubectl describe: {described}",
            c.reason
        );
    }
    for name in &claims {
        delete_in(
            &client,
            "platform.tessera.dev/v1alpha1",
            "PostgresDatabase",
            &ns,
            name,
        )
        .await;
    }
    for name in &claims {
        wait_gone_in(
            &client,
            "platform.tessera.dev/v1alpha1",
            "PostgresDatabase",
            &ns,
            name,
        )
        .await;
    }
}
