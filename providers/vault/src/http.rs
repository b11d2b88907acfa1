//! [`VaultHttp`]: requests vaultrs has no endpoint for (and the login and renewal of the
//! provider's own token), on the ProviderConfig's HTTP client.

use serde_json::Value;

use crate::error::{CallError, error_chain};

/// The address, namespace and HTTP client of one ProviderConfig.
#[derive(Clone)]
pub(crate) struct VaultHttp {
    http: reqwest::Client,
    address: String,
    namespace: Option<String>,
}

impl VaultHttp {
    pub(crate) fn new(http: reqwest::Client, address: String, namespace: Option<String>) -> Self {
        VaultHttp {
            http,
            address,
            namespace,
        }
    }

    /// The server's address.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// `method` on `/v1/{path}`, with `token` if any and an optional JSON body.
    /// `Ok(None)` when Vault answers 404; the answer's JSON otherwise.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Option<Value>, CallError> {
        let url = format!("{}/v1/{}", self.address, path);
        let mut req = self
            .http
            .request(method, url)
            .header("X-Vault-Request", "true");
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token);
        }
        if let Some(ns) = &self.namespace {
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
            .map_err(|e| CallError::sending(&e.without_url()))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| CallError::Unanswered(error_chain(&e.without_url())))?;
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
