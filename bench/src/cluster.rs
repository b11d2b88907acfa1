//! The test cluster: testenv's env file, server-side apply of JSON documents, the API
//! server's request counters, waits on claims and Secrets.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config, ResourceExt};
use serde_json::Value;

/// The values `testenv/up` wrote into its env file.
pub struct TestEnv {
    vars: HashMap<String, String>,
    /// The state directory of testenv.
    pub dir: String,
}

impl TestEnv {
    /// Reads `${TESSERA_TESTENV_DIR:-/tmp/tessera-testenv}/env`.
    pub fn load() -> anyhow::Result<TestEnv> {
        let dir = std::env::var("TESSERA_TESTENV_DIR")
            .unwrap_or_else(|_| "/tmp/tessera-testenv".to_string());
        let path = Path::new(&dir).join("env");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "read {} (start the servers with testenv/up)",
                path.display()
            )
        })?;
        let vars = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            .collect();
        Ok(TestEnv { vars, dir })
    }

    /// A value of the env file.
    pub fn get(&self, key: &str) -> anyhow::Result<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("testenv env file has no {key}"))
    }

    /// A client of the cluster's admin.
    pub async fn kube(&self) -> anyhow::Result<Client> {
        let kc = kube::config::Kubeconfig::read_from(self.get("KUBECONFIG")?)?;
        let mut config = Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        config.read_timeout = Some(Duration::from_secs(300));
        Ok(Client::try_from(config)?)
    }
}

/// The API resource of `apiVersion` + `kind` (plural guessed the way Kubernetes does).
pub fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

fn api(client: &Client, obj: &Value) -> anyhow::Result<(Api<DynamicObject>, String)> {
    let ar = resource(
        obj["apiVersion"].as_str().context("apiVersion")?,
        obj["kind"].as_str().context("kind")?,
    );
    let name = obj["metadata"]["name"]
        .as_str()
        .context("name")?
        .to_string();
    let api = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    Ok((api, name))
}

/// Server-side apply of one document (field manager `tessera-bench`).
pub async fn apply(client: &Client, obj: &Value) -> anyhow::Result<()> {
    let (api, name) = api(client, obj)?;
    api.patch(
        &name,
        &PatchParams::apply("tessera-bench").force(),
        &Patch::Apply(obj),
    )
    .await
    .with_context(|| format!("apply {} {name}", obj["kind"]))?;
    Ok(())
}

/// Applies every document of a YAML stream, retrying for a while when the kind is not
/// served yet (a CRD or an XRD's claim kind that was just created).
pub async fn apply_yaml(client: &Client, text: &str) -> anyhow::Result<()> {
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(doc)?;
        if v.is_null() {
            continue;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match apply(client, &v).await {
                Ok(()) => break,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Creates a namespace (no error when it exists).
pub async fn namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    apply(
        client,
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    .await
}

/// How many objects of a kind exist (all namespaces).
pub async fn count(client: &Client, api_version: &str, kind: &str) -> anyhow::Result<usize> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource(api_version, kind));
    let all = ListParams::default();
    match retried(|| api.list_metadata(&all)).await {
        Ok(l) => Ok(l.items.len()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// `request`, tried again (up to 5 times, 2 s apart) when it failed before an answer came
/// (a connection the API server closed under load): a long run must not end on one.
async fn retried<T, F, Fut>(mut request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 1;
    loop {
        match request().await {
            Err(e @ (kube::Error::Service(_) | kube::Error::HyperError(_))) if attempt < 5 => {
                eprintln!("request failed ({e}), trying again");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            result => return result,
        }
    }
}

/// Deletes every object of a namespaced kind in `ns`, then waits until `gone_kind`
/// (cluster-wide) has no objects left, at most `timeout`.
pub async fn delete_all_and_wait(
    client: &Client,
    api_version: &str,
    kind: &str,
    ns: &str,
    gone: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &resource(api_version, kind));
    let (delete, all) = (Default::default(), ListParams::default());
    match retried(|| api.delete_collection(&delete, &all)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    loop {
        let mut left = 0;
        for (v, k) in gone {
            left += count(client, v, k).await?;
        }
        left += count(client, api_version, kind).await?;
        if left == 0 {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            bail!("{left} objects still there {timeout:?} after deleting the {kind}s of {ns}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The Secret `postgres-admin` in `namespace` with testenv's PostgreSQL admin credentials
/// and CA (`endpoint`, `port`, `username`, `password`, `ca.crt`), as both systems'
/// ProviderConfigs read it.
pub async fn postgres_admin_secret(
    client: &Client,
    env: &TestEnv,
    namespace: &str,
) -> anyhow::Result<()> {
    apply(
        client,
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "postgres-admin", "namespace": namespace },
            "stringData": {
                "endpoint": env.get("POSTGRES_HOST")?, "port": env.get("POSTGRES_PORT")?,
                "username": env.get("POSTGRES_USER")?, "password": env.get("POSTGRES_PASSWORD")?,
                "ca.crt": std::fs::read_to_string(env.get("POSTGRES_CA_FILE")?)?,
            }
        }),
    )
    .await
}

/// Removes the finalizers of every object of a cluster-scoped kind (objects a controller
/// cannot delete), then waits until they are gone; returns how many there were.
pub async fn release_all(client: &Client, api_version: &str, kind: &str) -> anyhow::Result<usize> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource(api_version, kind));
    let left = api.list_metadata(&ListParams::default()).await?.items;
    for o in &left {
        let name = o.metadata.name.clone().unwrap_or_default();
        let patch = serde_json::json!({"metadata": {"finalizers": null}});
        match api
            .patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    while count(client, api_version, kind).await? > 0 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(left.len())
}

/// `apiserver_request_total` by `verb group/resource[/subresource]`.
pub type Requests = BTreeMap<String, f64>;

/// Reads the API server's request counters.
pub async fn requests(client: &Client) -> anyhow::Result<Requests> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    let mut out = Requests::new();
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
        let mut key = format!("{} {}/{}", label("verb"), label("group"), label("resource"));
        let sub = label("subresource");
        if !sub.is_empty() {
            key = format!("{key}/{sub}");
        }
        *out.entry(key).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    Ok(out)
}

/// What was requested between two readings (only what changed).
pub fn delta(before: &Requests, after: &Requests) -> Requests {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d > 0.5).then(|| (k.clone(), d))
        })
        .collect()
}

/// Whether a request key is a write.
pub fn is_write(key: &str) -> bool {
    matches!(
        key.split(' ').next(),
        Some("POST" | "PUT" | "PATCH" | "APPLY" | "DELETE" | "DELETECOLLECTION")
    )
}

/// Watches the claims of one kind in a namespace and records when each became Ready.
#[derive(Clone, Default)]
pub struct ReadyClock {
    ready: Arc<Mutex<HashMap<String, Instant>>>,
}

impl ReadyClock {
    /// Starts watching; the task ends with the process.
    pub fn watch(client: &Client, api_version: &str, kind: &str, ns: &str) -> ReadyClock {
        let clock = ReadyClock::default();
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &resource(api_version, kind));
        let ready = clock.ready.clone();
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .applied_objects()
                .boxed();
            loop {
                match stream.try_next().await {
                    Ok(Some(o)) => {
                        if is_ready(&o.data) {
                            ready
                                .lock()
                                .expect("lock")
                                .entry(o.name_any())
                                .or_insert_with(Instant::now);
                        }
                    }
                    Ok(None) => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        clock
    }

    /// How many are Ready.
    pub fn len(&self) -> usize {
        self.ready.lock().expect("lock").len()
    }

    /// When each became Ready.
    pub fn times(&self) -> HashMap<String, Instant> {
        self.ready.lock().expect("lock").clone()
    }

    /// Waits until `n` are Ready, at most `timeout`.
    pub async fn wait(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        while self.len() < n {
            if start.elapsed() > timeout {
                bail!("only {} of {n} Ready after {timeout:?}", self.len());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// The object's Ready condition is True.
pub fn is_ready(o: &Value) -> bool {
    o["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Watches the Secrets of a namespace and records when each first appeared.
#[derive(Clone, Default)]
pub struct SecretClock {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
}

impl SecretClock {
    /// Starts watching.
    pub fn watch(client: &Client, ns: &str) -> SecretClock {
        let clock = SecretClock::default();
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        let seen = clock.seen.clone();
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .applied_objects()
                .boxed();
            loop {
                match stream.try_next().await {
                    Ok(Some(s)) => {
                        seen.lock()
                            .expect("lock")
                            .entry(s.name_any())
                            .or_insert_with(Instant::now);
                    }
                    Ok(None) => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        clock
    }

    /// Waits until a Secret of this name was seen; when.
    pub async fn wait(&self, name: &str, timeout: Duration) -> anyhow::Result<Instant> {
        let start = Instant::now();
        loop {
            if let Some(t) = self.seen.lock().expect("lock").get(name) {
                return Ok(*t);
            }
            if start.elapsed() > timeout {
                bail!("Secret {name} not seen within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Waits until the API server serves a kind (a claim kind appears once its XRD's
/// controller has created the CRD), at most `timeout`.
pub async fn wait_served(
    client: &Client,
    api_version: &str,
    kind: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource(api_version, kind));
    let start = Instant::now();
    loop {
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > timeout => {
                bail!("{kind} ({api_version}) not served after {timeout:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
