//! [`VaultConnector`]: the kit's [`CachedConnector`] with [`Vault`], which makes one
//! [`VaultClient`] per ProviderConfig from its spec and token.
//!
//! ```text
//!  mr.spec.providerConfigRef ─▶ ProviderConfig + credentials Secret (watched stores)
//!        ─▶ cache[(name)] ─▶ VaultClient (the token checked once, with lookup-self)
//!                │ fingerprint differs
//!                └──────────▶ Vault::connect again
//! ```

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Resource};
use serde_json::Value;
use tessera_engine::api::common::ProviderCredentials;
use tessera_engine::managed::ProviderError;
use tessera_engine::managed::connections::{CachedConnector, Connect, ProviderConfigKind};
use tessera_engine::managed::credentials::Credentials;
use tracing::warn;

use crate::api::{ProviderConfig, ProviderConfigSpec, TOKEN_KEY};
use crate::error::{CallError, Origin, error_chain};

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
        let token = credentials.require(TOKEN_KEY)?;
        let token = token.trim().to_string();
        if token.is_empty() {
            return Err(ProviderError::Config(format!(
                "ProviderConfig {name:?}: key {TOKEN_KEY:?} of Secret {} is empty",
                credentials.secret_name()
            )));
        }
        let address = validate_address(name, &spec.address)?;
        let insecure = spec.tls.as_ref().is_some_and(|t| t.insecure_skip_verify);
        if insecure {
            self.warn_insecure_once(name);
        }
        let ca = read_ca(kube, name, spec).await?;
        let http = http_client(name, insecure, ca.as_deref())?;
        let client = VaultClient {
            inner: Arc::new(Inner {
                vault: vault_client(name, &address, &token, spec, http.clone())?,
                http,
                address: address.clone(),
                token,
                namespace: spec.namespace.clone(),
                kube: kube.clone(),
                denied: AtomicBool::new(false),
                origin: Origin {
                    provider_config: name.to_string(),
                    address,
                },
            }),
        };
        client.check_token(credentials).await?;
        Ok(client)
    }

    // After a 403 the token is checked again by a new connection: a revoked or expired
    // token is then reported as such (a Config error naming the Secret), and a token that
    // merely lacks a capability keeps working for everything else.
    fn is_usable(client: &VaultClient) -> bool {
        !client.inner.denied.load(Ordering::Relaxed)
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
        .connect_timeout(std::time::Duration::from_secs(10));
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
    spec: &ProviderConfigSpec,
    http: reqwest::Client,
) -> Result<vaultrs::client::VaultClient, ProviderError> {
    let mut settings = vaultrs::client::VaultClientSettingsBuilder::default();
    settings
        .address(address)
        .token(token)
        .verify(true)
        .ca_certs(Vec::new())
        .identity(None);
    if let Some(ns) = &spec.namespace {
        settings.set_namespace(ns.clone());
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
/// AuthBackends: a Vault client with the ProviderConfig's token.
#[derive(Clone)]
pub struct VaultClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) vault: vaultrs::client::VaultClient,
    http: reqwest::Client,
    address: String,
    token: String,
    namespace: Option<String>,
    /// For the Kubernetes Secrets that KVSecrets copy into Vault.
    pub(crate) kube: kube::Client,
    /// Vault answered 403: the token may have been revoked or have expired, so the next
    /// reconcile connects again and checks it (see `is_usable`).
    denied: AtomicBool,
    pub(crate) origin: Origin,
}

impl VaultClient {
    /// The vaultrs client.
    pub(crate) fn vault(&self) -> &vaultrs::client::VaultClient {
        &self.inner.vault
    }

    /// The server's address.
    pub(crate) fn address(&self) -> &str {
        &self.inner.address
    }

    /// Classifies an error of `action`.
    pub(crate) fn error(&self, action: &str, err: impl Into<CallError>) -> ProviderError {
        let err = err.into();
        if matches!(err, CallError::Api { code: 403, .. }) {
            self.inner.denied.store(true, Ordering::Relaxed);
        }
        self.inner.origin.error(action, err)
    }

    /// Checks the token once per connection, so that a wrong one is reported as a
    /// ProviderConfig error rather than as a failure of each managed resource's call.
    async fn check_token(&self, credentials: &Credentials) -> Result<(), ProviderError> {
        match vaultrs::token::lookup_self(self.vault()).await {
            Ok(_) => Ok(()),
            Err(e) => match CallError::from(e) {
                CallError::Api { code: 403, .. } => Err(ProviderError::Config(format!(
                    "ProviderConfig {:?}: Vault at {} refused the token in key {TOKEN_KEY:?} \
                     of Secret {} (permission denied: it is wrong, expired or revoked)",
                    self.inner.origin.provider_config,
                    self.inner.address,
                    credentials.secret_name()
                ))),
                other => Err(self.error("look up the ProviderConfig's token", other)),
            },
        }
    }

    /// A request vaultrs has no endpoint for: `method` on `/v1/{path}` with an optional
    /// JSON body. `Ok(None)` when Vault answers 404; the answer's JSON otherwise.
    pub(crate) async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, CallError> {
        let url = format!("{}/v1/{}", self.inner.address, path);
        let mut req = self
            .inner
            .http
            .request(method, url)
            .header("X-Vault-Token", &self.inner.token)
            .header("X-Vault-Request", "true");
        if let Some(ns) = &self.inner.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CallError::Transport(error_chain(&e.without_url())))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| CallError::Transport(error_chain(&e.without_url())))?;
        if status.as_u16() == 404 {
            return Ok(None);
        }
        let json: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .map_err(|_| CallError::Transport(format!("the answer ({status}) is not JSON")))?
        };
        if status.is_success() {
            Ok(Some(json))
        } else {
            let errors = json["errors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            Err(CallError::Api {
                code: status.as_u16(),
                errors,
            })
        }
    }
}

/// Whether `obj` is being deleted. Observe then only answers whether the external resource
/// exists: a spec that became invalid must not block deletion.
pub(crate) fn deleting<K: Resource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}
