//! The provider kit under the PostgreSQL provider, against the real servers: every external
//! call is bounded by `--external-timeout` (a PostgreSQL that stops answering does not
//! hold the ProviderConfig's permits), and the credentials come from a watched Secret (a
//! rotated password is picked up without a restart).
//!
//! This binary runs its own in-process controller with a 2 s external timeout and one
//! external call at a time per ProviderConfig.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tessera_engine::managed::ControllerOptions;
use tessera_tests::{
    PG_API, TEST_NAMESPACE, TestEnv, apply, delete, install_crds, namespace, unique, wait_gone,
    wait_ready, wait_sync_error,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const EXTERNAL_TIMEOUT: Duration = Duration::from_secs(2);

async fn setup() -> (TestEnv, kube::Client) {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    namespace(&client, TEST_NAMESPACE).await;
    namespace(
        &client,
        tessera_provider_postgresql::DEFAULT_PASSWORD_NAMESPACE,
    )
    .await;
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let env = env.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("controller runtime")
                .block_on(async move {
                    let opts = ControllerOptions {
                        poll_interval: Duration::from_secs(3),
                        max_backoff: Duration::from_secs(2),
                        external_timeout: EXTERNAL_TIMEOUT,
                        // One call at a time: a call that kept its permit would starve
                        // every other resource of the ProviderConfig.
                        provider_config_concurrency: 1,
                        ..Default::default()
                    };
                    tessera_provider_postgresql::run(env.kube().await, opts).await;
                });
        });
    });
    (env, client)
}

/// A ProviderConfig `name` whose credentials Secret (`<name>-creds`) holds these values.
async fn provider_config(
    client: &kube::Client,
    name: &str,
    endpoint: &str,
    port: &str,
    user: &str,
    password: &str,
) {
    apply(
        client,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": format!("{name}-creds"), "namespace": TEST_NAMESPACE },
            "stringData": { "endpoint": endpoint, "port": port, "username": user, "password": password }
        }),
    )
    .await;
    apply(
        client,
        json!({
            "apiVersion": PG_API, "kind": "ProviderConfig",
            "metadata": { "name": name },
            "spec": {
                "credentials": { "source": "Secret",
                    "secretRef": { "name": format!("{name}-creds"), "namespace": TEST_NAMESPACE } },
                "sslMode": "disable"
            }
        }),
    )
    .await;
}

/// A group role (no login, so no password Secret) on ProviderConfig `pc`.
fn role(name: &str, pc: &str) -> serde_json::Value {
    json!({
        "apiVersion": PG_API, "kind": "Role",
        "metadata": { "name": name },
        "spec": { "providerConfigRef": { "name": pc }, "forProvider": {} }
    })
}

/// A TCP proxy to PostgreSQL that forwards bytes until it is frozen, then holds every
/// byte it receives: the connections stay open and PostgreSQL seems to hang.
struct FreezingProxy {
    port: u16,
    frozen: Arc<AtomicBool>,
}

impl FreezingProxy {
    async fn start(upstream: String) -> FreezingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = frozen.clone();
        tokio::spawn(async move {
            while let Ok((downstream, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (dr, dw) = downstream.into_split();
                let (ur, uw) = upstream.into_split();
                tokio::spawn(pipe(dr, uw, flag.clone()));
                tokio::spawn(pipe(ur, dw, flag.clone()));
            }
        });
        FreezingProxy { port, frozen }
    }

    fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_hung_postgresql_times_out_frees_the_permit_and_names_the_operation_on_synced() {
    let (env, client) = setup().await;
    let proxy = FreezingProxy::start(format!(
        "{}:{}",
        env.get("POSTGRES_HOST"),
        env.get("POSTGRES_PORT")
    ))
    .await;
    let pc = unique("hung");
    provider_config(
        &client,
        &pc,
        "127.0.0.1",
        &proxy.port.to_string(),
        env.get("POSTGRES_USER"),
        env.get("POSTGRES_PASSWORD"),
    )
    .await;
    let first = unique("hung-a");
    apply(&client, role(&first, &pc)).await;
    wait_ready(&client, PG_API, "Role", &first).await;

    // PostgreSQL stops answering on the session the controller holds open. Every
    // observe through this ProviderConfig now hangs; with one permit per ProviderConfig,
    // the second Role reports only if the first one's hung call gave its permit back.
    proxy.freeze();
    let second = unique("hung-b");
    apply(&client, role(&second, &pc)).await;
    // A session whose statement timed out is discarded, so after the first observe the
    // calls time out connecting (the frozen server accepts and never answers): either
    // message names the operation and the ProviderConfig.
    let wanted = ["Observe", "Connect"].map(|op| {
        format!(
            "{op} timed out after {EXTERNAL_TIMEOUT:?}: PostgreSQL (ProviderConfig {pc:?}) did not answer"
        )
    });
    for name in [&second, &first] {
        let synced = wait_sync_error(&client, PG_API, "Role", name, "timed out after").await;
        assert_eq!(synced.reason, "ReconcileError", "{name}");
        assert!(
            wanted.contains(&synced.message),
            "{name}: the message names the operation: {}",
            synced.message
        );
    }

    // PostgreSQL answers again: the held statements complete and the Roles can go.
    proxy.thaw();
    for name in [&first, &second] {
        delete(&client, PG_API, "Role", name).await;
        wait_gone(&client, PG_API, "Role", name).await;
    }
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_times_out_the_connect() {
    let (env, client) = setup().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let pc = unique("silent");
    provider_config(&client, &pc, "127.0.0.1", &port.to_string(), "nobody", "x").await;
    let name = unique("silent-role");
    apply(&client, role(&name, &pc)).await;
    let want = format!(
        "Connect timed out after {EXTERNAL_TIMEOUT:?}: PostgreSQL (ProviderConfig {pc:?}) did not answer"
    );
    let synced = wait_sync_error(&client, PG_API, "Role", &name, &want).await;
    assert_eq!(synced.message, want);
    // A timeout is transient, so deletion waits for the server; pointed at the real
    // PostgreSQL, the ProviderConfig lets it finish.
    provider_config(
        &client,
        &pc,
        env.get("POSTGRES_HOST"),
        env.get("POSTGRES_PORT"),
        env.get("POSTGRES_USER"),
        env.get("POSTGRES_PASSWORD"),
    )
    .await;
    delete(&client, PG_API, "Role", &name).await;
    wait_gone(&client, PG_API, "Role", &name).await;
}

#[tokio::test]
async fn a_rotated_provider_config_secret_is_picked_up_without_a_restart() {
    let (env, client) = setup().await;
    let pg = env.postgres().await;
    // An administrative role of this test's own, so that rotating its password disturbs
    // no other test.
    let admin = unique("kit-admin");
    pg.batch_execute(&format!(
        "CREATE ROLE \"{admin}\" LOGIN CREATEROLE PASSWORD 'first-password'"
    ))
    .await
    .expect("create admin role");
    let pc = unique("rotated");
    provider_config(
        &client,
        &pc,
        env.get("POSTGRES_HOST"),
        env.get("POSTGRES_PORT"),
        &admin,
        "first-password",
    )
    .await;
    let name = unique("rotated-role");
    apply(&client, role(&name, &pc)).await;
    wait_ready(&client, PG_API, "Role", &name).await;

    // The database administrator rotates the password and ends the old sessions: the
    // controller's next connect with the old Secret is refused.
    pg.batch_execute(&format!(
        "ALTER ROLE \"{admin}\" PASSWORD 'second-password'; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{admin}'"
    ))
    .await
    .expect("rotate the admin password");
    let refused = wait_sync_error(
        &client,
        PG_API,
        "Role",
        &name,
        "PostgreSQL rejected the credentials",
    )
    .await;
    assert!(
        refused
            .message
            .starts_with(&format!("ProviderConfig {pc:?}")),
        "{}",
        refused.message
    );
    assert!(!refused.message.contains("first-password"));

    // The Secret is updated; the same controller process connects with it.
    provider_config(
        &client,
        &pc,
        env.get("POSTGRES_HOST"),
        env.get("POSTGRES_PORT"),
        &admin,
        "second-password",
    )
    .await;
    wait_ready(&client, PG_API, "Role", &name).await;

    delete(&client, PG_API, "Role", &name).await;
    wait_gone(&client, PG_API, "Role", &name).await;
    pg.batch_execute(&format!("DROP ROLE \"{admin}\""))
        .await
        .expect("drop admin role");
}
