//! What moto does not model, injected by a small HTTP proxy between the provider and moto:
//! a throttled CreateDBInstance, an HTTP 500 on a describe, and an instance that stays
//! `creating` for the first describes. The resource converges, Ready turns True only on
//! `available` (with the AWS status in the message until then), the SDK's own retries
//! absorb the faults (no error reaches the managed resource), and the number of AWS calls
//! stays bounded: in steady state one DescribeDBInstances per poll and nothing else.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_tests::{
    RDS_API, TEST_NAMESPACE, TestEnv, apply, condition, delete, events_about, get, install_crds,
    rds_provider_config, start_rds_controller_in_process, unique, wait_gone, wait_object,
    wait_ready, wait_reconciled,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How many answers to DescribeDBInstances say `creating` instead of `available`.
const CREATING_DESCRIBES: usize = 3;

#[derive(Default)]
struct Proxy {
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

/// One HTTP/1.1 message from `conn`: head and body (by Content-Length); `None` at EOF.
async fn read_message(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
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

/// Sends the request to moto on a fresh connection and returns status line, content type
/// and body.
async fn forward(upstream: &str, head: &str, body: &[u8]) -> (String, String, Vec<u8>) {
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
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "text/xml".into());
    (status, content_type, raw[end + 4..].to_vec())
}

fn aws_error(status: &str, code: &str) -> (String, String, Vec<u8>) {
    let body = format!(
        "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
         <Message>injected by the test proxy</Message></Error><RequestId>test</RequestId></ErrorResponse>"
    );
    (
        format!("HTTP/1.1 {status}"),
        "text/xml".into(),
        body.into_bytes(),
    )
}

async fn serve(mut conn: TcpStream, upstream: String, id: String, proxy: Arc<Proxy>) {
    let mut buf = Vec::new();
    while let Some((head, body)) = read_message(&mut conn, &mut buf).await {
        let form = String::from_utf8_lossy(&body).into_owned();
        let action = field(&form, "Action").unwrap_or("?").to_string();
        let ours = field(&form, "DBInstanceIdentifier") == Some(id.as_str());
        let n = {
            let mut calls = proxy.calls.lock().unwrap();
            let n = calls.entry(action.clone()).or_default();
            *n += 1;
            *n
        };
        let answer = if action == "CreateDBInstance" && n == 1 {
            aws_error("400 Bad Request", "Throttling")
        } else if action == "DescribeDBInstances"
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
            let (status, content_type, mut body) = forward(&upstream, &head, &body).await;
            if action == "DescribeDBInstances" && ours {
                let text = String::from_utf8_lossy(&body).into_owned();
                let available = "<DBInstanceStatus>available</DBInstanceStatus>";
                let mut served = proxy.creating_served.lock().unwrap();
                if text.contains(available) && *served < CREATING_DESCRIBES {
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

async fn start_proxy(upstream: String, id: String) -> (String, Arc<Proxy>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let proxy = Arc::new(Proxy::default());
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
    let (url, proxy) = start_proxy(upstream, name.clone()).await;
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
    assert_eq!(condition(&creating, "Ready").unwrap().reason, "Unavailable");
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

    delete(&client, RDS_API, "DBInstance", &name).await;
    wait_gone(&client, RDS_API, "DBInstance", &name).await;
    assert_eq!(proxy.count("DeleteDBInstance"), 1);
}
