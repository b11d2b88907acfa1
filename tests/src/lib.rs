//! Helpers shared by the integration tests: the testenv's env file, clients for its real
//! servers, CRD installation, and running `tessera controller` in-process or as a process.
//!
//! Every test talks to the real servers started by `testenv/up`; none is mocked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::{Api, Client, Config};

pub mod audit;
mod controllers;
pub mod crash;
pub mod fault_proxy;
pub mod kstatus;
mod rds;
pub mod vault_auth;
pub use controllers::{
    assert_controllers_alive, install as record_reconciles, last_reconcile_started,
    wait_all_reconciled, wait_reconciled,
};
pub use rds::{
    RDS_API, http_forward, http_header, http_read_message, moto_ec2, moto_subnets,
    rds_provider_config, rds_sdk, start_rds_controller_in_process,
};

/// The values `testenv/up` wrote into its env file.
#[derive(Clone, Debug)]
pub struct TestEnv {
    vars: HashMap<String, String>,
}

impl TestEnv {
    /// Reads `${TESSERA_TESTENV_DIR:-/tmp/tessera-testenv}/env`.
    pub fn load() -> TestEnv {
        install_crypto_provider();
        let dir = std::env::var("TESSERA_TESTENV_DIR")
            .unwrap_or_else(|_| "/tmp/tessera-testenv".to_string());
        let path = Path::new(&dir).join("env");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}; start the test servers with testenv/up (scripts/test does)",
                path.display()
            )
        });
        let vars = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            .collect();
        TestEnv { vars }
    }

    /// A value of the env file; panics with the key's name when it is missing.
    pub fn get(&self, key: &str) -> &str {
        self.vars
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("testenv env file has no {key}; re-run testenv/up"))
    }

    /// A kube client for the test cluster's admin.
    pub async fn kube(&self) -> Client {
        self.kube_from(self.get("KUBECONFIG")).await
    }

    /// A client of the test cluster that counts the requests for which `counted` is
    /// true, and the count.
    pub async fn kube_counting(
        &self,
        counted: impl Fn(&http::Request<kube::client::Body>) -> bool + Clone + Send + Sync + 'static,
    ) -> (Client, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let config = self.config_from(self.get("KUBECONFIG")).await;
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = count.clone();
        let layer =
            tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
                if counted(&req) {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                req
            });
        let client = kube::client::ClientBuilder::try_from(config)
            .expect("client")
            .with_layer(&layer)
            .build();
        (client, count)
    }

    /// A kube client from a kubeconfig file of the test cluster.
    pub async fn kube_from(&self, kubeconfig: &str) -> Client {
        Client::try_from(self.config_from(kubeconfig).await).expect("kube client")
    }

    /// The client configuration of a kubeconfig file of the test cluster.
    async fn config_from(&self, kubeconfig: &str) -> Config {
        let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
        Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kubeconfig")
    }

    /// A connection to the test PostgreSQL server as its superuser.
    pub async fn postgres(&self) -> tokio_postgres::Client {
        self.postgres_url(self.get("POSTGRES_URL")).await
    }

    /// A connection to PostgreSQL with the given URL; the connection task is spawned.
    pub async fn postgres_url(&self, url: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to PostgreSQL: {e}"));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }
}

/// Picks ring as the process's TLS crypto provider (the AWS SDK also links aws-lc-rs, and
/// rustls refuses to guess between two).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The repository root (where `crds/` lives).
pub fn repo_root() -> PathBuf {
    // The checkout the tests run in (cargo sets the variable when it runs a test); the
    // build-time path only when run by hand, since a cached build may come from another
    // checkout.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Reads every CRD in `crds/`.
pub fn committed_crds() -> Vec<CustomResourceDefinition> {
    let dir = repo_root().join("crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read crds/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("read CRD file");
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

/// Applies every CRD of `crds/` with server-side apply and waits until all are Established.
pub async fn install_crds(client: &Client) -> anyhow::Result<Vec<String>> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for crd in committed_crds() {
        let name = crd.metadata.name.clone().context("CRD without name")?;
        api.patch(
            &name,
            &PatchParams::apply("tessera-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("apply CRD {name}"))?;
        names.push(name);
    }
    for name in &names {
        wait_for(Duration::from_secs(60), || async {
            let crd = api.get(name).await.ok()?;
            let established = crd
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(())
        })
        .await
        .with_context(|| format!("CRD {name} never became Established"))?;
    }
    Ok(names)
}

/// Polls `check` every 200 ms until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        assert_controllers_alive();
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates a namespace (if needed) and returns its name.
pub async fn namespace(client: &Client, name: &str) -> String {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name }
    }))
    .expect("namespace");
    api.patch(
        name,
        &PatchParams::apply("tessera-tests").force(),
        &Patch::Apply(&ns),
    )
    .await
    .expect("create namespace");
    name.to_string()
}

/// A name unique to this test run, for objects of tests that run in parallel.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000)
        .unwrap_or(0);
    format!("{prefix}-{}-{t}-{n}", std::process::id() % 10_000)
}

/// The path of the `tessera` binary built next to the test binaries.
pub fn tessera_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/tessera
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("tessera"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} does not exist; build it first with `cargo build --bin tessera` (scripts/test does)",
        bin.display()
    );
    bin
}

/// The log filter of the `tessera controller` processes the tests start:
/// `TESSERA_TEST_CONTROLLER_LOG` when set (for example
/// `info,tessera_engine=debug,tessera_engine::managed=trace` to follow a long crash run's
/// reconciles), else `info,tessera_engine=debug`.
pub fn controller_log_filter() -> String {
    std::env::var("TESSERA_TEST_CONTROLLER_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "info,tessera_engine=debug".to_string())
}

/// A `tessera controller` process against the test cluster, killed when dropped.
pub struct ControllerProcess {
    child: std::process::Child,
    log: PathBuf,
}

impl ControllerProcess {
    /// Starts `tessera controller` with the given extra environment variables; its output
    /// goes to a log file whose path [`ControllerProcess::log`] returns.
    pub fn spawn(env: &TestEnv, extra_env: &[(&str, &str)]) -> anyhow::Result<Self> {
        // In the state dir, where the secrets audit searches every controller's log.
        let log = audit::log_dir().join(format!("{}.log", unique("tessera-controller")));
        let out = std::fs::File::create(&log)?;
        let mut cmd = std::process::Command::new(tessera_bin());
        cmd.arg("controller")
            .args(["--poll-interval", "5", "--max-backoff", "5"])
            .env("KUBECONFIG", env.get("KUBECONFIG"))
            .env("RUST_LOG", controller_log_filter())
            .stdout(out.try_clone()?)
            .stderr(out);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("spawn tessera controller")?;
        Ok(ControllerProcess { child, log })
    }

    /// Waits for the process to exit on its own, returning its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        wait_for(timeout, || {
            let status = self.child.try_wait().ok().flatten();
            async move { status.map(|s| s.code()) }
        })
        .await
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The controller's log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The controller's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (a graceful stop).
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a provider's controllers (its `run`) once per test binary, guarded by `started`,
/// on a runtime of their own, polling every 5 s with at most 5 s of backoff.
fn start_provider_once<R, Fut>(started: &'static OnceLock<()>, env: &TestEnv, run: R)
where
    R: FnOnce(Client, tessera_engine::managed::ControllerOptions) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    started.get_or_init(|| {
        spawn_on_own_runtime(env, |env| async move {
            let client = env.kube().await;
            let opts = tessera_engine::managed::ControllerOptions {
                poll_interval: Duration::from_secs(5),
                max_backoff: Duration::from_secs(5),
                ..Default::default()
            };
            run(client, opts).await;
        });
    });
}

/// Runs `controllers` on a thread and runtime of their own, for the rest of the test
/// process (each test has its own runtime, which ends with the test). A panic on that
/// thread or its workers, or the controllers returning, fails the waits of every test
/// from then on (see [`assert_controllers_alive`]).
fn spawn_on_own_runtime<F, Fut>(env: &TestEnv, controllers: F)
where
    F: FnOnce(TestEnv) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    controllers::install();
    let env = env.clone();
    std::thread::Builder::new()
        .name(controllers::CONTROLLER_THREAD.to_string())
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(controllers::CONTROLLER_THREAD)
                .enable_all()
                .build()
                .expect("controller runtime")
                .block_on(controllers(env));
            controllers::record_death("the in-process controllers stopped".to_string());
        })
        .expect("spawn the controller thread");
}

/// Runs the controllers in this test process, once per test binary, on a runtime of their
/// own (tests each have their own runtime, which ends with the test). Poll interval and
/// backoff are short so that drift repair and recovery are seen within seconds.
pub fn start_controller_in_process(env: &TestEnv) {
    static STARTED: OnceLock<()> = OnceLock::new();
    start_provider_once(&STARTED, env, tessera_provider_postgresql::run);
}

/// Runs the Vault provider's controllers in this test process, once per test binary, on a
/// runtime of their own (see [`start_controller_in_process`]).
pub fn start_vault_controller_in_process(env: &TestEnv) {
    static STARTED: OnceLock<()> = OnceLock::new();
    start_provider_once(&STARTED, env, tessera_provider_vault::run);
}

/// A token of ServiceAccount `sa` in `ns` (created if needed), from the TokenRequest API.
pub async fn service_account_token(client: &kube::Client, ns: &str, sa: &str) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), ns);
    apply(
        client,
        serde_json::json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": sa, "namespace": ns } }),
    )
    .await;
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    api.create_token_request(sa, &Default::default(), &req)
        .await
        .expect("token request")
        .status
        .and_then(|s| s.token)
        .expect("token")
}

/// Group/version of the Vault provider's kinds.
pub const VAULT_API: &str = "vault.tessera.dev/v1alpha1";

impl TestEnv {
    /// A client of the test OpenBao server with its root token.
    pub fn vault(&self) -> vaultrs::client::VaultClient {
        let settings = vaultrs::client::VaultClientSettingsBuilder::default()
            .address(self.get("VAULT_ADDR"))
            .token(self.get("VAULT_TOKEN"))
            .build()
            .expect("vault settings");
        vaultrs::client::VaultClient::new(settings).expect("vault client")
    }
}

/// Creates a Vault ProviderConfig named `name` (and its credentials Secret holding `token`)
/// pointing at the testenv OpenBao server.
pub async fn vault_provider_config(env: &TestEnv, client: &Client, name: &str, token: &str) {
    audit::record_secrets([token]);
    namespace(client, TEST_NAMESPACE).await;
    apply(
        client,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": format!("{name}-creds"), "namespace": TEST_NAMESPACE },
            "stringData": { "token": token }
        }),
    )
    .await;
    apply(
        client,
        serde_json::json!({
            "apiVersion": VAULT_API, "kind": "ProviderConfig",
            "metadata": { "name": name },
            "spec": {
                "address": env.get("VAULT_ADDR"),
                "credentials": { "source": "Secret",
                    "secretRef": { "name": format!("{name}-creds"), "namespace": TEST_NAMESPACE } }
            }
        }),
    )
    .await;
}

/// Runs the Harbor provider's controllers in this test process, once per test binary (see
/// [`start_controller_in_process`]).
pub fn start_harbor_controller_in_process(env: &TestEnv) {
    static STARTED: OnceLock<()> = OnceLock::new();
    start_provider_once(&STARTED, env, tessera_provider_harbor::run);
}

/// Group/version of the Harbor provider's kinds.
pub const HARBOR_API: &str = "harbor.tessera.dev/v1alpha1";

/// The Harbor the Harbor tests run against: a real one when `TESSERA_HARBOR_URL`,
/// `TESSERA_HARBOR_USERNAME` and `TESSERA_HARBOR_PASSWORD` are set, otherwise testenv's
/// simulator of Harbor's API.
#[derive(Clone, Debug)]
pub struct HarborTarget {
    /// Base URL, without `/api/v2.0`.
    pub url: String,
    /// A system administrator.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Whether this is testenv's simulator (which has test-only endpoints).
    pub simulator: bool,
}

impl HarborTarget {
    /// The real Harbor of the `TESSERA_HARBOR_*` variables, or the simulator.
    pub fn load(env: &TestEnv) -> HarborTarget {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match (
            var("TESSERA_HARBOR_URL"),
            var("TESSERA_HARBOR_USERNAME"),
            var("TESSERA_HARBOR_PASSWORD"),
        ) {
            (Some(url), Some(username), Some(password)) => HarborTarget {
                url: url.trim_end_matches('/').to_string(),
                username,
                password,
                simulator: false,
            },
            _ => HarborTarget {
                url: env.get("HARBOR_SIM_URL").to_string(),
                username: env.get("HARBOR_SIM_USERNAME").to_string(),
                password: env.get("HARBOR_SIM_PASSWORD").to_string(),
                simulator: true,
            },
        }
    }

    /// A request to `path` under `/api/v2.0` (or under the URL itself when it starts with
    /// `/simulator`), as the administrator.
    pub fn request(&self, method: http::Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("/simulator") {
            format!("{}{path}", self.url)
        } else {
            format!("{}/api/v2.0{path}", self.url)
        };
        reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("HTTP client")
            .request(method, url)
            .basic_auth(&self.username, Some(&self.password))
    }

    /// GET `path` as JSON; `None` on 404.
    pub async fn get(&self, path: &str) -> Option<serde_json::Value> {
        let resp = self
            .request(http::Method::GET, path)
            .header("X-Is-Resource-Name", "true")
            .send()
            .await
            .expect("GET from Harbor");
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        Some(resp.json().await.expect("JSON from Harbor"))
    }
}

/// Creates a Harbor ProviderConfig named `name` (and its credentials Secret) for `target`
/// with the given password.
pub async fn harbor_provider_config(
    client: &Client,
    target: &HarborTarget,
    name: &str,
    password: &str,
) {
    audit::record_secrets([password]);
    namespace(client, TEST_NAMESPACE).await;
    apply(
        client,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": format!("{name}-creds"), "namespace": TEST_NAMESPACE },
            "stringData": { "username": target.username, "password": password }
        }),
    )
    .await;
    apply(
        client,
        serde_json::json!({
            "apiVersion": HARBOR_API, "kind": "ProviderConfig",
            "metadata": { "name": name },
            "spec": {
                "url": target.url,
                "credentials": { "source": "Secret",
                    "secretRef": { "name": format!("{name}-creds"), "namespace": TEST_NAMESPACE } }
            }
        }),
    )
    .await;
}

/// Group/version of the PostgreSQL provider's kinds.
pub const PG_API: &str = "postgresql.sql.tessera.dev/v1alpha1";

fn api_for(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// Server-side applies an object given as JSON (as `kubectl apply --server-side` would),
/// cluster-scoped unless it has `metadata.namespace`.
pub async fn apply(client: &Client, obj: serde_json::Value) -> DynamicObject {
    let api_version = obj["apiVersion"].as_str().expect("apiVersion").to_string();
    let kind = obj["kind"].as_str().expect("kind").to_string();
    let name = obj["metadata"]["name"].as_str().expect("name").to_string();
    let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
    if kind == "Secret" {
        // The passwords and tokens tests write must never reach a log, Event or condition.
        if let Some(data) = obj["stringData"].as_object() {
            audit::record_secrets(
                data.iter()
                    .filter(|(k, _)| audit::is_secret_key(k))
                    .filter_map(|(_, v)| v.as_str()),
            );
        }
    }
    let api = api_for(client, &api_version, &kind, ns.as_deref());
    api.patch(
        &name,
        &PatchParams::apply("tessera-tests").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"))
}

/// `namespace/name`, or `name` for cluster-scoped objects (for messages).
fn display_name(namespace: Option<&str>, name: &str) -> String {
    namespace.map_or_else(|| name.to_string(), |ns| format!("{ns}/{name}"))
}

async fn get_at(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Option<DynamicObject> {
    api_for(client, api_version, kind, namespace)
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("get {kind} {}: {e}", display_name(namespace, name)))
}

async fn delete_at(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) {
    match api_for(client, api_version, kind, namespace)
        .delete(name, &Default::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => panic!("delete {kind} {}: {e}", display_name(namespace, name)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn wait_object_at(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&DynamicObject) -> bool,
) -> DynamicObject {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        assert_controllers_alive();
        let obj = get_at(client, api_version, kind, namespace, name).await;
        if let Some(o) = &obj
            && check(o)
        {
            return o.clone();
        }
        if tokio::time::Instant::now() >= deadline {
            let status = obj.map(|o| o.data["status"].clone());
            panic!(
                "{kind} {}: {what} not seen within {timeout:?}; last status: {status:?}",
                display_name(namespace, name)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_gone_at(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Some(o) = get_at(client, api_version, kind, namespace, name).await {
        assert_controllers_alive();
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "{kind} {} still exists after 60s: {:?}",
                display_name(namespace, name),
                o.data["status"]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads a cluster-scoped object, `None` when it does not exist.
pub async fn get(
    client: &Client,
    api_version: &str,
    kind: &str,
    name: &str,
) -> Option<DynamicObject> {
    get_at(client, api_version, kind, None, name).await
}

/// Reads a namespaced object, `None` when it does not exist.
pub async fn get_in(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Option<DynamicObject> {
    get_at(client, api_version, kind, Some(namespace), name).await
}

/// Deletes a cluster-scoped object (no error when it is already gone).
pub async fn delete(client: &Client, api_version: &str, kind: &str, name: &str) {
    delete_at(client, api_version, kind, None, name).await
}

/// Deletes a namespaced object (no error when it is already gone).
pub async fn delete_in(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) {
    delete_at(client, api_version, kind, Some(namespace), name).await
}

/// Waits until `check` holds for a cluster-scoped object; on timeout panics with its last
/// status.
pub async fn wait_object(
    client: &Client,
    api_version: &str,
    kind: &str,
    name: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&DynamicObject) -> bool,
) -> DynamicObject {
    wait_object_at(client, api_version, kind, None, name, timeout, what, check).await
}

/// Waits (up to 60 s) until `check` holds for a namespaced object; on timeout panics with
/// its last status.
pub async fn wait_object_in(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&DynamicObject) -> bool,
) -> DynamicObject {
    let timeout = Duration::from_secs(60);
    wait_object_at(
        client,
        api_version,
        kind,
        Some(namespace),
        name,
        timeout,
        what,
        check,
    )
    .await
}

/// Waits until a cluster-scoped object is gone.
pub async fn wait_gone(client: &Client, api_version: &str, kind: &str, name: &str) {
    wait_gone_at(client, api_version, kind, None, name).await
}

/// Waits until a namespaced object is gone.
pub async fn wait_gone_in(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) {
    wait_gone_at(client, api_version, kind, Some(namespace), name).await
}

/// A condition of an object's status.
pub fn condition(
    obj: &DynamicObject,
    type_: &str,
) -> Option<tessera_engine::api::common::Condition> {
    let conditions = obj.data.pointer("/status/conditions")?.as_array()?;
    conditions
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| serde_json::from_value(c.clone()).ok())
}

/// Waits until the object is Ready=True and Synced=True.
pub async fn wait_ready(
    client: &Client,
    api_version: &str,
    kind: &str,
    name: &str,
) -> DynamicObject {
    wait_object(
        client,
        api_version,
        kind,
        name,
        Duration::from_secs(60),
        "Ready and Synced",
        |o| {
            condition(o, "Ready").is_some_and(|c| c.is_true())
                && condition(o, "Synced").is_some_and(|c| c.is_true())
        },
    )
    .await
}

/// Waits until the object's Synced condition is False with a message containing `needle`.
pub async fn wait_sync_error(
    client: &Client,
    api_version: &str,
    kind: &str,
    name: &str,
    needle: &str,
) -> tessera_engine::api::common::Condition {
    let o = wait_object(
        client,
        api_version,
        kind,
        name,
        Duration::from_secs(60),
        needle,
        |o| condition(o, "Synced").is_some_and(|c| !c.is_true() && c.message.contains(needle)),
    )
    .await;
    condition(&o, "Synced").expect("Synced")
}

/// The namespace in which tests keep ProviderConfig credentials and connection Secrets.
pub const TEST_NAMESPACE: &str = "tessera-tests";

/// Creates a PostgreSQL ProviderConfig named `name` (and its credentials Secret) pointing at
/// the testenv server with the given password.
pub async fn pg_provider_config(env: &TestEnv, client: &Client, name: &str, password: &str) {
    audit::record_secrets([password]);
    namespace(client, TEST_NAMESPACE).await;
    // Where the controller keeps generated passwords of Roles without a connection secret.
    namespace(
        client,
        tessera_provider_postgresql::DEFAULT_PASSWORD_NAMESPACE,
    )
    .await;
    apply(
        client,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": format!("{name}-creds"), "namespace": TEST_NAMESPACE },
            "stringData": {
                "endpoint": env.get("POSTGRES_HOST"),
                "port": env.get("POSTGRES_PORT"),
                "username": env.get("POSTGRES_USER"),
                "password": password,
            }
        }),
    )
    .await;
    apply(
        client,
        serde_json::json!({
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

/// Reads a Secret's data as UTF-8 strings.
pub async fn secret_data(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Option<HashMap<String, String>> {
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), namespace);
    let s = api.get_opt(name).await.expect("read secret")?;
    let data: HashMap<String, String> = s
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    // Every password and token a test sees is one that must never be logged.
    audit::record_secrets(
        data.iter()
            .filter(|(k, _)| audit::is_secret_key(k))
            .map(|(_, v)| v.as_str()),
    );
    Some(data)
}

/// Runs a `kubectl` of the test cluster and returns its stdout.
pub fn kubectl(env: &TestEnv, args: &[&str]) -> String {
    let out = std::process::Command::new(env.get("KUBECTL"))
        .arg("--kubeconfig")
        .arg(env.get("KUBECONFIG"))
        .arg("--cache-dir")
        .arg(env.get("KUBECACHEDIR"))
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Options of the composition controllers in tests: a short poll interval, so that
/// safety-net requeues happen within the tests' timeouts, and the composable resources
/// `tessera controller` has by default with the PostgreSQL and Vault providers.
pub fn composition_test_options() -> tessera_engine::composition_controllers::CompositionOptions {
    tessera_engine::composition_controllers::CompositionOptions {
        poll_interval: Duration::from_secs(5),
        composable: default_composable(),
        ..Default::default()
    }
}

/// The composable resources `tessera controller` has by default with the PostgreSQL,
/// Vault, RDS and Harbor providers (the default features): their API groups, `core/Secret` and
/// `core/ConfigMap`.
pub fn default_composable() -> tessera_engine::composable::ComposableResources {
    use tessera_engine::provider::Provider;
    let mut groups = tessera_provider_postgresql::PostgresqlProvider.groups();
    groups.extend(tessera_provider_vault::VaultProvider.groups());
    groups.extend(tessera_provider_rds::RdsProvider.groups());
    groups.extend(tessera_provider_harbor::HarborProvider.groups());
    tessera_engine::composable::ComposableResources::defaults(groups)
}

/// Runs the composition controllers in this test process, once per test binary, on a
/// runtime of their own: the XRD controller, which starts the composite and claim
/// controllers of every XRD.
pub fn start_composition_controllers_in_process(env: &TestEnv) {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        spawn_on_own_runtime(env, |env| async move {
            let client = env.kube().await;
            tessera_engine::composition_controllers::run_controllers(
                client,
                composition_test_options(),
            )
            .await;
        });
    });
}

/// Waits until the CRD `name` exists and is Established.
pub async fn wait_crd_established(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait_for(Duration::from_secs(60), || async {
        let crd = api.get_opt(name).await.ok()??;
        crd.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await
    .with_context(|| format!("CRD {name} never became Established"))
}

/// The events about an object, as (type, reason, note). Events of cluster-scoped objects
/// live in `default`.
pub async fn events_about(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Vec<(String, String, String)> {
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), namespace);
    let params = kube::api::ListParams::default().fields(&format!("involvedObject.name={name}"));
    api.list(&params)
        .await
        .expect("list events")
        .items
        .into_iter()
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect()
}

/// Runs the composite controller of the XR kind `xrd` defines, and the CompositionRevision
/// controller, in this test process, once per test binary, on a runtime of their own (the
/// tests' runtimes end with each test). Without the XRD controller: the test installs the
/// composite CRD itself.
pub fn start_composite_controller_in_process(
    env: &TestEnv,
    xrd: tessera_engine::api::xrd::CompositeResourceDefinition,
) {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        spawn_on_own_runtime(env, |env| async move {
            let client = env.kube().await;
            let opts = composition_test_options();
            let xr = tessera_engine::xrd::composite_resource(&xrd)
                .expect("the XRD has a referenceable version");
            let revisions = tessera_engine::revisions::run_revisions(client.clone(), opts.clone());
            let watch = tessera_engine::composite::watch(client.clone(), xr.clone(), &opts);
            let composites =
                tessera_engine::composite::run(client, std::sync::Arc::new(xrd), xr, opts, watch);
            tokio::join!(revisions, composites);
        });
    });
}

/// apiVersion of CompositeResourceDefinitions.
pub const XRD_API_VERSION: &str = "apiextensions.tessera.dev/v1";

/// Composite and claim kinds of one test, from an XRD of its own: `XWidget<n>` and
/// `Widget<n>` in the group `t<n>.tests.tessera.dev`, so tests running in parallel never
/// see each other's objects.
#[derive(Clone, Debug)]
pub struct TestKinds {
    /// API group of both kinds.
    pub group: String,
    /// `<group>/v1`.
    pub api_version: String,
    /// Kind of the composite.
    pub xr_kind: String,
    /// Plural of the composite.
    pub xr_plural: String,
    /// Kind of the claim.
    pub claim_kind: String,
    /// Plural of the claim.
    pub claim_plural: String,
}

impl TestKinds {
    /// New kinds, unique to this test run.
    pub fn new() -> TestKinds {
        let n: String = unique("k").chars().filter(char::is_ascii_digit).collect();
        let group = format!("t{n}.tests.tessera.dev");
        TestKinds {
            api_version: format!("{group}/v1"),
            group,
            xr_kind: format!("XWidget{n}"),
            xr_plural: format!("xwidget{n}s"),
            claim_kind: format!("Widget{n}"),
            claim_plural: format!("widget{n}s"),
        }
    }

    /// Name of the XRD: `<xr plural>.<group>`.
    pub fn xrd_name(&self) -> String {
        format!("{}.{}", self.xr_plural, self.group)
    }

    /// The XRD, with `spec.parameters.size` (small or large, required) and `status.endpoint`.
    pub fn xrd(&self) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": XRD_API_VERSION,
            "kind": "CompositeResourceDefinition",
            "metadata": { "name": self.xrd_name() },
            "spec": {
                "group": self.group,
                "names": { "kind": self.xr_kind, "plural": self.xr_plural },
                "claimNames": { "kind": self.claim_kind, "plural": self.claim_plural },
                "versions": [{
                    "name": "v1", "served": true, "referenceable": true,
                    "schema": { "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["parameters"],
                                "properties": { "parameters": {
                                    "type": "object",
                                    "description": "What kind of widget.",
                                    "required": ["size"],
                                    "properties": { "size": { "type": "string", "enum": ["small", "large"] } },
                                } },
                            },
                            "status": {
                                "type": "object",
                                "properties": { "endpoint": { "type": "string" } },
                            },
                        },
                    } },
                }],
            },
        })
    }

    /// A claim of `size`, asking for a connection Secret named `<name>-conn`.
    pub fn claim(&self, namespace: &str, name: &str, size: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": self.api_version,
            "kind": self.claim_kind,
            "metadata": { "name": name, "namespace": namespace },
            "spec": {
                "parameters": { "size": size },
                "writeConnectionSecretToRef": { "name": format!("{name}-conn") },
            },
        })
    }
}

impl Default for TestKinds {
    fn default() -> Self {
        TestKinds::new()
    }
}

/// Write requests (POST, PUT, PATCH, APPLY, DELETE) the API server has served so far, from
/// its own `apiserver_request_total` metric, keyed by `group/resource[/subresource]`
/// (group empty for the core API).
pub async fn apiserver_writes(client: &Client) -> std::collections::BTreeMap<String, u64> {
    apiserver_write_requests(client).await.into_iter().fold(
        Default::default(),
        |mut out, ((_, key), n)| {
            *out.entry(key).or_insert(0) += n;
            out
        },
    )
}

/// [`apiserver_writes`] by verb and resource: keyed by (`POST`, `PUT`, `PATCH`, `APPLY` or
/// `DELETE`; `group/resource[/subresource]`).
pub async fn apiserver_write_requests(
    client: &Client,
) -> std::collections::BTreeMap<(String, String), u64> {
    apiserver_requests(client, &["POST", "PUT", "PATCH", "APPLY", "DELETE"]).await
}

/// The requests of `verbs` (as the metric names them: `GET`, `LIST`, `WATCH`, `APPLY`, ...)
/// the API server has served so far, keyed by (verb, `group/resource[/subresource]`).
pub async fn apiserver_requests(
    client: &Client,
    verbs: &[&str],
) -> std::collections::BTreeMap<(String, String), u64> {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = client
        .request_text(req)
        .await
        .expect("read apiserver metrics");
    let mut out = std::collections::BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let label = |k: &str| {
            labels
                .split(&format!("{k}=\""))
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        if !verbs.contains(&label("verb").as_str()) {
            continue;
        }
        let mut key = format!("{}/{}", label("group"), label("resource"));
        let sub = label("subresource");
        if !sub.is_empty() {
            key = format!("{key}/{sub}");
        }
        *out.entry((label("verb"), key)).or_insert(0) += value.parse::<f64>().unwrap_or(0.0) as u64;
    }
    out
}

/// The YAML documents of a file of the repository, as JSON values.
pub fn yaml_docs(path: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(repo_root().join(path))
        .unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .filter(|v: &serde_json::Value| !v.is_null())
        .collect()
}

/// What a platform team installs for the shipped PostgresDatabase composition: the
/// admin Secret (with the server's CA: the ProviderConfig says `sslMode: verify-full`),
/// the ProviderConfig `default`, the XRD and the Composition
/// (compositions/postgres). Waits until the claim CRD is served.
pub async fn install_postgres_platform(env: &TestEnv, client: &Client) {
    namespace(client, "tessera-system").await;
    apply(
        client,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "postgres-admin", "namespace": "tessera-system" },
            "stringData": {
                "endpoint": env.get("POSTGRES_HOST"), "port": env.get("POSTGRES_PORT"),
                "username": env.get("POSTGRES_USER"), "password": env.get("POSTGRES_PASSWORD"),
                "ca.crt": std::fs::read_to_string(env.get("POSTGRES_CA_FILE"))
                    .expect("read testenv's PostgreSQL CA"),
            }
        }),
    )
    .await;
    for file in [
        "compositions/postgres/providerconfig.yaml",
        "compositions/postgres/xrd.yaml",
        "compositions/postgres/composition.yaml",
    ] {
        for doc in yaml_docs(file) {
            apply(client, doc).await;
        }
    }
}

/// What a platform team installs for the shipped VaultPolicy composition
/// (compositions/vault/platform.yaml, pointed at the test servers): the ProviderConfig
/// `default`, the auth method `kubernetes` configured to review tokens with this cluster,
/// the XRD and the Composition. Needs the Vault provider's and the composition controllers
/// running; waits until the claim CRD is served.
pub async fn install_vault_platform(env: &TestEnv, client: &Client) {
    vault_provider_config(env, client, "default", env.get("VAULT_TOKEN")).await;
    namespace(client, TEST_NAMESPACE).await;
    // Where the composition keeps the composed resources' connection Secrets.
    namespace(client, "tessera-system").await;
    let reviewer_jwt = service_account_token(client, TEST_NAMESPACE, "vault-reviewer").await;
    apply(
        client,
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": { "name": "tessera-tests-vault-reviewer" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator" },
            "subjects": [{ "kind": "ServiceAccount", "name": "vault-reviewer", "namespace": TEST_NAMESPACE }]
        }),
    )
    .await;
    apply(
        client,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "vault-reviewer-jwt", "namespace": TEST_NAMESPACE },
            "stringData": { "token": reviewer_jwt }
        }),
    )
    .await;
    for mut doc in yaml_docs("compositions/vault/platform.yaml") {
        match doc["kind"].as_str() {
            // The test's own ProviderConfig `default` (made above) points at testenv.
            Some("ProviderConfig") => continue,
            Some("KubernetesAuthBackendConfig") => {
                let fp = &mut doc["spec"]["forProvider"];
                fp["kubernetesHost"] = serde_json::json!(env.get("KUBE_APISERVER_URL"));
                fp["kubernetesCaCertRef"]["namespace"] = serde_json::json!(TEST_NAMESPACE);
                fp["tokenReviewerJwtSecretRef"]["namespace"] = serde_json::json!(TEST_NAMESPACE);
                // OpenBao runs outside the cluster.
                fp["disableLocalCaJwt"] = serde_json::json!(true);
            }
            _ => {}
        }
        apply(client, doc).await;
    }
    wait_ready(client, VAULT_API, "AuthBackend", "kubernetes").await;
    wait_ready(
        client,
        VAULT_API,
        "KubernetesAuthBackendConfig",
        "kubernetes",
    )
    .await;
    for file in [
        "compositions/vault/xrd.yaml",
        "compositions/vault/composition.yaml",
    ] {
        for doc in yaml_docs(file) {
            apply(client, doc).await;
        }
    }
    wait_crd_established(client, "vaultpolicies.platform.tessera.dev")
        .await
        .expect("the XRD offers the VaultPolicy claim");
}

/// What a platform team installs for the HarborProject claim (compositions/harbor): the
/// Harbor ProviderConfig `default` pointed at the test Harbor (testenv's simulator, or a
/// real Harbor from `TESSERA_HARBOR_*`), the XRD and both Compositions. Returns the target.
pub async fn install_harbor_platform(env: &TestEnv, client: &Client) -> HarborTarget {
    let target = HarborTarget::load(env);
    eprintln!("HarborProject claims against {}", target.url);
    harbor_provider_config(client, &target, "default", &target.password.clone()).await;
    // Where the compositions keep the robots' own connection Secrets.
    namespace(client, "tessera-system").await;
    for file in [
        "compositions/harbor/xrd.yaml",
        "compositions/harbor/composition.yaml",
        "compositions/harbor/composition-ci.yaml",
    ] {
        for doc in yaml_docs(file) {
            apply(client, doc).await;
        }
    }
    wait_crd_established(client, "harborprojects.platform.tessera.dev")
        .await
        .expect("the XRD offers the HarborProject claim");
    target
}

/// Whether Harbor's token service accepts `username`/`password` (what `docker login` and
/// a kubelet pulling with an imagePullSecret do).
pub async fn harbor_authenticates(target: &HarborTarget, username: &str, password: &str) -> bool {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
        .get(format!(
            "{}/service/token?service=harbor-registry",
            target.url
        ))
        .basic_auth(username, Some(password))
        .send()
        .await
        .expect("token service answers")
        .status()
        .is_success()
}
