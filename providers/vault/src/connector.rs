//! [`VaultConnector`]: the kit's [`CachedConnector`] with [`Vault`], which makes one
//! [`VaultClient`] per ProviderConfig from its spec and credentials.
//!
//! ```text
//!  mr.spec.providerConfigRef ─▶ ProviderConfig + credentials Secret (watched stores)
//!        ─▶ cache[(name)] ─▶ VaultClient ◀── renewer task: renews the token at 2/3 of its
//!                │                           lease, logs in again (Kubernetes auth) when
//!                │                           renewal fails or the token reached its max TTL
//!                │ fingerprint differs, a 403, or the token expired
//!                └──────────▶ Vault::connect again (token checked with lookup-self, or a
//!                             fresh Kubernetes auth login)
//! ```
//!
//! The token lives in a [`Session`] that the renewer swaps; reconciles take the current
//! one per call, so all reconciles of a ProviderConfig share one token.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Resource};
use serde_json::Value;
use tessera_engine::api::common::{CredentialsSource, ProviderCredentials};
use tessera_engine::managed::ProviderError;
use tessera_engine::managed::connections::{CachedConnector, Connect, ProviderConfigKind};
use tessera_engine::managed::credentials::Credentials;
use tracing::{debug, info, warn};

use crate::api::{ProviderConfig, ProviderConfigSpec, TOKEN_KEY};
use crate::error::{CallError, Origin, error_chain};
use crate::http::VaultHttp;
use crate::login::{KubernetesLogin, Lease};

/// A bound on each renewal or login the renewer makes (reconciles are bounded by the
/// runtime's external timeout).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest wait between failed refresh attempts.
const MAX_REFRESH_RETRY: Duration = Duration::from_secs(30);
/// The whole of any one HTTP request, a backstop under the runtime's own timeouts.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Connects Policies, Mounts and AuthBackends to Vault, one cached [`VaultClient`] per
/// ProviderConfig. Cheap to clone; clones share the cache.
pub type VaultConnector = CachedConnector<Vault>;

/// How the Vault provider connects: with the token of the ProviderConfig's Secret.
pub struct Vault {
    // ProviderConfigs already warned about for insecureSkipVerify.
    warned_insecure: Mutex<HashSet<String>>,
}

impl Vault {
    /// The connector of all the provider's kinds.
    pub fn connector() -> VaultConnector {
        CachedConnector::new(Vault {
            warned_insecure: Mutex::new(HashSet::new()),
        })
    }

    fn warn_insecure_once(&self, name: &str) {
        let first = self
            .warned_insecure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
        if first {
            warn!(
                provider_config = name,
                "ProviderConfig sets tls.insecureSkipVerify: the Vault server's certificate \
                 is not checked, so anyone on the network path can impersonate it and read \
                 the token"
            );
        }
    }
}

impl ProviderConfigKind for ProviderConfig {
    fn credentials(&self) -> &ProviderCredentials {
        &self.spec.credentials
    }
}

#[async_trait]
impl Connect for Vault {
    type Config = ProviderConfig;
    type Client = VaultClient;
    const SYSTEM: &'static str = "Vault";

    async fn connect(
        &self,
        kube: &kube::Client,
        name: &str,
        config: &ProviderConfig,
        credentials: &Credentials,
    ) -> Result<VaultClient, ProviderError> {
        let spec = &config.spec;
        let address = validate_address(name, &spec.address)?;
        // Settings first: a wrong login block is reported before any call.
        let login = match spec.credentials.source {
            CredentialsSource::KubernetesAuth => Some(KubernetesLogin::from_spec(name, spec)?),
            _ => None,
        };
        let insecure = spec.tls.as_ref().is_some_and(|t| t.insecure_skip_verify);
        if insecure {
            self.warn_insecure_once(name);
        }
        let ca = read_ca(kube, name, spec).await?;
        let http = http_client(name, insecure, ca.as_deref())?;
        let api = VaultHttp::new(http.clone(), address.clone(), spec.namespace.clone());
        let lease = match &login {
            Some(login) => {
                let lease = login.login(&api, kube).await?;
                info!(
                    provider_config = name,
                    ttl_seconds = lease.ttl.as_secs(),
                    "logged in to Vault with Kubernetes auth"
                );
                lease
            }
            None => {
                let token = credentials.require(TOKEN_KEY)?;
                let token = token.trim().to_string();
                if token.is_empty() {
                    return Err(ProviderError::Config(format!(
                        "ProviderConfig {name:?}: key {TOKEN_KEY:?} of Secret {} is empty",
                        credentials.secret_name()
                    )));
                }
                // The lease is read by check_token below.
                Lease {
                    token,
                    ttl: Duration::ZERO,
                    renewable: false,
                }
            }
        };
        let origin = Origin {
            provider_config: name.to_string(),
            address: address.clone(),
        };
        let session = Session::new(&origin, &lease, spec, http.clone())?;
        let client = VaultClient {
            inner: Arc::new(Inner {
                session: RwLock::new(Arc::new(session)),
                api,
                vault_namespace: spec.namespace.clone(),
                http,
                login,
                kube: kube.clone(),
                denied: AtomicBool::new(false),
                renewer: Mutex::new(None),
                origin,
            }),
        };
        let lease = match client.inner.login {
            Some(_) => lease,
            None => client.check_token(credentials, lease).await?,
        };
        client.keep_fresh(lease);
        Ok(client)
    }

    const SOURCES: &'static [CredentialsSource] =
        &[CredentialsSource::Secret, CredentialsSource::KubernetesAuth];

    // After a 403 the token is checked again by a new connection: a revoked or expired
    // token is then reported as such (a Config error naming the Secret, or a fresh
    // Kubernetes login), and a token that merely lacks a capability keeps working for
    // everything else. A token past its lease (the renewer failed) is replaced the same way.
    fn is_usable(client: &VaultClient) -> bool {
        !client.inner.denied.load(Ordering::Relaxed) && !client.session().expired()
    }
}

fn validate_address(name: &str, address: &str) -> Result<String, ProviderError> {
    let address = address.trim().trim_end_matches('/');
    let ok = (address.starts_with("http://") || address.starts_with("https://"))
        && reqwest::Url::parse(address).is_ok_and(|u| u.path() == "/" || u.path().is_empty());
    if ok {
        Ok(address.to_string())
    } else {
        Err(ProviderError::Config(format!(
            "ProviderConfig {name:?}: address {address:?} is not an http:// or https:// URL \
             without a path, e.g. https://vault.example.com:8200"
        )))
    }
}

/// The PEM CA bundle of `tls.caSecretRef`, if set.
async fn read_ca(
    kube: &kube::Client,
    name: &str,
    spec: &ProviderConfigSpec,
) -> Result<Option<Vec<u8>>, ProviderError> {
    let Some(r) = spec.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref()) else {
        return Ok(None);
    };
    let api: Api<Secret> = Api::namespaced(kube.clone(), &r.namespace);
    let secret = api.get_opt(&r.name).await.map_err(|e| {
        ProviderError::Transient(format!(
            "ProviderConfig {name:?}: cannot read CA Secret {}/{}: {e}",
            r.namespace, r.name
        ))
    })?;
    let secret = secret.ok_or_else(|| {
        ProviderError::Config(format!(
            "ProviderConfig {name:?}: CA Secret {}/{} (tls.caSecretRef) not found",
            r.namespace, r.name
        ))
    })?;
    let value = secret
        .data
        .and_then(|mut d| d.remove(&r.key))
        .ok_or_else(|| {
            ProviderError::Config(format!(
                "ProviderConfig {name:?}: CA Secret {}/{} has no key {:?}",
                r.namespace, r.name, r.key
            ))
        })?;
    Ok(Some(value.0))
}

fn http_client(
    name: &str,
    insecure: bool,
    ca: Option<&[u8]>,
) -> Result<reqwest::Client, ProviderError> {
    let mut builder = reqwest::ClientBuilder::new()
        .tls_backend_rustls()
        .tls_danger_accept_invalid_certs(insecure)
        .connect_timeout(Duration::from_secs(10))
        .timeout(REQUEST_TIMEOUT);
    if let Some(pem) = ca {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
            ProviderError::Config(format!(
                "ProviderConfig {name:?}: the CA bundle of tls.caSecretRef is not PEM: {e}"
            ))
        })?;
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| {
        ProviderError::Config(format!(
            "ProviderConfig {name:?}: cannot set up the HTTP client: {}",
            error_chain(&e)
        ))
    })
}

/// A vaultrs client with every setting explicit (none read from the process's VAULT_*
/// variables) on our own HTTP client.
fn vault_client(
    name: &str,
    address: &str,
    token: &str,
    namespace: Option<&str>,
    http: reqwest::Client,
) -> Result<vaultrs::client::VaultClient, ProviderError> {
    let mut settings = vaultrs::client::VaultClientSettingsBuilder::default();
    settings
        .address(address)
        .token(token)
        .verify(true)
        .ca_certs(Vec::new())
        .identity(None);
    if let Some(ns) = namespace {
        settings.set_namespace(ns.to_string());
    }
    let settings = settings
        .build()
        .map_err(|e| ProviderError::Config(format!("ProviderConfig {name:?}: {e}")))?;
    let mut client = vaultrs::client::VaultClient::new(settings).map_err(|e| {
        ProviderError::Config(format!(
            "ProviderConfig {name:?}: cannot set up the Vault client: {}",
            error_chain(&e)
        ))
    })?;
    client.http = rustify::clients::reqwest::Client::new(address, http);
    Ok(client)
}

/// The [`ExternalClient`](tessera_engine::managed::ExternalClient) of Policies, Mounts and
/// AuthBackends: a Vault client with the ProviderConfig's current token.
#[derive(Clone)]
pub struct VaultClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The current token and its vaultrs client; swapped by the renewer.
    session: RwLock<Arc<Session>>,
    api: VaultHttp,
    vault_namespace: Option<String>,
    http: reqwest::Client,
    /// The Kubernetes auth login, for the `KubernetesAuth` credentials source.
    login: Option<KubernetesLogin>,
    /// For the Kubernetes Secrets that KVSecrets copy into Vault (and TokenRequests).
    pub(crate) kube: kube::Client,
    /// Vault answered 403: the token may have been revoked or have expired, so the next
    /// reconcile connects again and checks it (see `is_usable`).
    denied: AtomicBool,
    /// The task that keeps the token fresh; stopped with the client.
    renewer: Mutex<Option<tokio::task::AbortHandle>>,
    pub(crate) origin: Origin,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self
            .renewer
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

/// One token: the vaultrs client that sends it and when it expires.
pub(crate) struct Session {
    vault: Arc<vaultrs::client::VaultClient>,
    token: String,
    /// `None` for a token that does not expire.
    expires: Option<Instant>,
}

impl Session {
    fn new(
        origin: &Origin,
        lease: &Lease,
        spec: &ProviderConfigSpec,
        http: reqwest::Client,
    ) -> Result<Session, ProviderError> {
        Ok(Session {
            vault: Arc::new(vault_client(
                &origin.provider_config,
                &origin.address,
                &lease.token,
                spec.namespace.as_deref(),
                http,
            )?),
            token: lease.token.clone(),
            expires: (!lease.ttl.is_zero()).then(|| Instant::now() + lease.ttl),
        })
    }

    fn expired(&self) -> bool {
        self.expires.is_some_and(|e| Instant::now() >= e)
    }
}

/// What the renewer does next with the current token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refresh {
    /// Renew it (renew-self).
    Renew,
    /// Log in again (Kubernetes auth), or stop (a token from a Secret cannot be replaced).
    Replace,
}

/// When and how to refresh a token with `lease`, given the `full` TTL its login granted:
/// at two thirds of the lease; by renewal while renewal still grants the full TTL, by a new
/// login once the token is not renewable or its max TTL cut the lease short.
fn next_refresh(lease: &Lease, full: Duration) -> (Duration, Refresh) {
    let at = (lease.ttl * 2 / 3).max(Duration::from_secs(1));
    let how = if lease.renewable && lease.ttl >= full {
        Refresh::Renew
    } else {
        Refresh::Replace
    };
    (at, how)
}

impl VaultClient {
    /// The vaultrs client with the current token.
    pub(crate) fn vault(&self) -> Arc<vaultrs::client::VaultClient> {
        self.session().vault.clone()
    }

    fn session(&self) -> Arc<Session> {
        self.inner
            .session
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The server's address.
    pub(crate) fn address(&self) -> &str {
        self.inner.api.address()
    }

    /// Classifies an error of `action`.
    pub(crate) fn error(&self, action: &str, err: impl Into<CallError>) -> ProviderError {
        let err = err.into();
        if matches!(err, CallError::Api { code: 403, .. }) {
            self.inner.denied.store(true, Ordering::Relaxed);
        }
        self.inner.origin.error(action, err)
    }

    /// Checks a token from a Secret once per connection, so that a wrong one is reported
    /// as a ProviderConfig error rather than as a failure of each managed resource's call;
    /// returns its lease (a TTL of zero for a token that does not expire).
    async fn check_token(
        &self,
        credentials: &Credentials,
        lease: Lease,
    ) -> Result<Lease, ProviderError> {
        match vaultrs::token::lookup_self(&*self.vault()).await {
            Ok(info) => {
                let ttl = Duration::from_secs(info.ttl);
                if !ttl.is_zero() {
                    // Expiry known from now on, for is_usable.
                    let session = Session {
                        vault: self.vault(),
                        token: lease.token.clone(),
                        expires: Some(Instant::now() + ttl),
                    };
                    *self
                        .inner
                        .session
                        .write()
                        .unwrap_or_else(|p| p.into_inner()) = Arc::new(session);
                }
                Ok(Lease {
                    ttl,
                    renewable: info.renewable.unwrap_or(false),
                    ..lease
                })
            }
            Err(e) => match CallError::from(e) {
                CallError::Api { code: 403, .. } => Err(ProviderError::Config(format!(
                    "ProviderConfig {:?}: Vault at {} refused the token in key {TOKEN_KEY:?} \
                     of Secret {} (permission denied: it is wrong, expired or revoked)",
                    self.inner.origin.provider_config,
                    self.address(),
                    credentials.secret_name()
                ))),
                other => Err(self.error("look up the ProviderConfig's token", other)),
            },
        }
    }

    /// Starts the renewer of a token that expires.
    fn keep_fresh(&self, lease: Lease) {
        if lease.ttl.is_zero() {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let task = tokio::spawn(refresh_loop(weak, lease));
        *self.inner.renewer.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
    }

    /// A request vaultrs has no endpoint for: `method` on `/v1/{path}` with an optional
    /// JSON body. `Ok(None)` when Vault answers 404; the answer's JSON otherwise.
    pub(crate) async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, CallError> {
        let session = self.session();
        self.inner
            .api
            .call(method, path, Some(&session.token), body)
            .await
    }
}

impl Inner {
    /// Renews the current token: its new lease.
    async fn renew(&self) -> Result<Lease, String> {
        let token = self
            .session
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .token
            .clone();
        let answer = self
            .api
            .call(
                reqwest::Method::POST,
                "auth/token/renew-self",
                Some(&token),
                Some(&serde_json::json!({})),
            )
            .await
            .map_err(|e| match e {
                CallError::Api { code, errors } => format!("{code}: {}", errors.join("; ")),
                CallError::Transport(text) | CallError::Unanswered(text) => text,
            })?;
        answer
            .as_ref()
            .and_then(Lease::from_auth)
            .ok_or_else(|| "the answer has no token lease".to_string())
    }

    /// Installs `lease` as the current token.
    fn install(&self, lease: &Lease) -> Result<(), ProviderError> {
        let spec_namespace = self.vault_namespace.clone();
        let session = Session {
            vault: Arc::new(vault_client(
                &self.origin.provider_config,
                &self.origin.address,
                &lease.token,
                spec_namespace.as_deref(),
                self.http.clone(),
            )?),
            token: lease.token.clone(),
            expires: (!lease.ttl.is_zero()).then(|| Instant::now() + lease.ttl),
        };
        *self.session.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(session);
        Ok(())
    }
}

/// Keeps the token of the client `weak` fresh until the client is dropped: renews it at
/// two thirds of its lease, logs in again (Kubernetes auth) when renewal fails or the
/// token reached its max TTL, and retries failures with a growing pause. A token from a
/// Secret that can no longer be renewed is left to expire: `is_usable` then makes the next
/// reconcile connect again, which reports it.
async fn refresh_loop(weak: Weak<Inner>, first: Lease) {
    let mut full = first.ttl;
    let (mut wait, mut how) = next_refresh(&first, full);
    let mut retry = Duration::from_secs(1);
    loop {
        tokio::time::sleep(wait).await;
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let name = inner.origin.provider_config.clone();
        let renewed = match how {
            Refresh::Renew => match tokio::time::timeout(REFRESH_TIMEOUT, inner.renew()).await {
                Ok(Ok(lease)) => Some(lease),
                Ok(Err(e)) => {
                    warn!(provider_config = %name, error = %e, "renewing the Vault token failed");
                    None
                }
                Err(_) => {
                    warn!(provider_config = %name, "renewing the Vault token timed out");
                    None
                }
            },
            Refresh::Replace => None,
        };
        let next = match (renewed, &inner.login) {
            (Some(lease), _) => {
                debug!(provider_config = %name, ttl_seconds = lease.ttl.as_secs(), "renewed the Vault token");
                Ok((lease, false))
            }
            (None, Some(login)) => {
                match tokio::time::timeout(REFRESH_TIMEOUT, login.login(&inner.api, &inner.kube))
                    .await
                {
                    Ok(Ok(lease)) => Ok((lease, true)),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("the login timed out".to_string()),
                }
            }
            (None, None) if how == Refresh::Renew => Err("renewal failed".to_string()),
            (None, None) => {
                warn!(
                    provider_config = %name,
                    "the Vault token of the credentials Secret can no longer be renewed; \
                     put a new token in the Secret before it expires"
                );
                return;
            }
        };
        match next.and_then(|(lease, new)| {
            inner
                .install(&lease)
                .map(|()| (lease, new))
                .map_err(|e| e.to_string())
        }) {
            Ok((lease, new)) => {
                if new {
                    info!(provider_config = %name, ttl_seconds = lease.ttl.as_secs(), "logged in to Vault again with Kubernetes auth");
                    full = lease.ttl;
                }
                (wait, how) = next_refresh(&lease, full);
                retry = Duration::from_secs(1);
            }
            Err(e) => {
                warn!(provider_config = %name, error = %e, "refreshing the Vault token failed; retrying");
                // A token from a Secret can only be renewed; a login can be tried again.
                let again = if inner.login.is_some() {
                    Refresh::Replace
                } else {
                    Refresh::Renew
                };
                (wait, how) = (retry, again);
                retry = (retry * 2).min(MAX_REFRESH_RETRY);
            }
        }
    }
}

/// Whether `obj` is being deleted. Observe then only answers whether the external resource
/// exists: a spec that became invalid must not block deletion.
pub(crate) fn deleting<K: Resource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn origin() -> Origin {
        Origin {
            provider_config: "vault".into(),
            address: "http://vault".into(),
        }
    }

    #[tokio::test]
    async fn a_request_sent_without_an_answer_is_unanswered_and_a_refused_connection_transient() {
        use tokio::io::AsyncReadExt;
        // As the controller does at start.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A server that reads each request and closes the connection without answering, as
        // a reset or a stall cut off by a proxy does after Vault carried it out.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
            }
        });
        let http = reqwest::Client::new();
        let vault = vault_client("vault", &address, "token", None, http.clone()).unwrap();
        let raw = VaultHttp::new(http, address.clone(), None);
        let data = HashMap::from([("key", "value")]);

        // The write of a KV secret's data (the secret exists once Vault carried it out;
        // its mark is written after) and a raw request.
        let sent = vaultrs::kv2::set(&vault, "secret", "app", &data).await;
        let sent = origin().error("write KV secret", CallError::from(sent.unwrap_err()));
        assert!(
            matches!(sent, ProviderError::Unanswered(_)),
            "a request Vault may have carried out is unanswered: {sent:?}"
        );
        let sent = raw
            .call(reqwest::Method::POST, "sys/policy/p", Some("token"), None)
            .await;
        assert!(
            matches!(sent, Err(CallError::Unanswered(_))),
            "a raw request Vault may have carried out is unanswered: {sent:?}"
        );

        // Nothing listens on the port any more: the requests never left.
        server.abort();
        let _ = server.await;
        let refused = vaultrs::kv2::set(&vault, "secret", "app", &data).await;
        let refused = origin().error("write KV secret", CallError::from(refused.unwrap_err()));
        assert!(
            matches!(refused, ProviderError::Transient(_)),
            "a connection that could not be made is transient: {refused:?}"
        );
        let refused = raw
            .call(reqwest::Method::POST, "sys/policy/p", Some("token"), None)
            .await;
        assert!(
            matches!(refused, Err(CallError::Transport(_))),
            "a raw connection that could not be made is transport: {refused:?}"
        );
    }
}
