//! [`Harbor`]: the provider's HTTP client of Harbor's v2.0 API (basic authentication,
//! timeouts, bounded answers, Harbor's error bodies turned into [`ProviderError`]s).

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tessera_engine::managed::ProviderError;
use tessera_engine::managed::credentials::Credentials;

use crate::api::ProviderConfigSpec;

/// Time allowed for one request, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Time allowed to open the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read from Harbor.
const MAX_BODY: usize = 1 << 20;
/// Longest error message from Harbor quoted in a condition.
const MAX_MESSAGE: usize = 300;

/// A connection to one Harbor instance as one ProviderConfig says. Cheap to clone.
#[derive(Clone)]
pub struct Harbor {
    http: reqwest::Client,
    api: String,
    username: String,
    password: String,
    provider_config: String,
    /// For kinds that keep state in Kubernetes (a robot's secret in its connection Secret).
    kube: Option<kube::Client>,
}

impl std::fmt::Debug for Harbor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harbor")
            .field("api", &self.api)
            .field("username", &self.username)
            .field("provider_config", &self.provider_config)
            .finish_non_exhaustive()
    }
}

/// An answer read in full (bounded).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json<T: for<'de> Deserialize<'de>>(&self, what: &str) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ProviderError::Transient(format!("Harbor answered {what} with unexpected JSON: {e}"))
        })
    }

    /// Harbor's error message (`{"errors":[{"code","message"}]}`), bounded.
    pub fn message(&self) -> String {
        #[derive(Deserialize)]
        struct Errors {
            errors: Vec<ErrorItem>,
        }
        #[derive(Deserialize)]
        struct ErrorItem {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let text = match serde_json::from_slice::<Errors>(&self.body) {
            Ok(e) if !e.errors.is_empty() => e
                .errors
                .iter()
                .map(|i| format!("{}: {}", i.code, i.message))
                .collect::<Vec<_>>()
                .join("; "),
            _ => String::from_utf8_lossy(&self.body).trim().to_string(),
        };
        let mut text: String = text.chars().filter(|c| !c.is_control()).collect();
        if text.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        text
    }
}

impl Harbor {
    /// A client for the ProviderConfig `name` with `spec` and its credentials (`username`,
    /// `password`).
    pub fn new(
        name: &str,
        spec: &ProviderConfigSpec,
        credentials: &Credentials,
    ) -> Result<Harbor, ProviderError> {
        let config_error =
            |what: String| ProviderError::Config(format!("ProviderConfig {name:?}: {what}"));
        let url = spec.url.trim_end_matches('/');
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(config_error(format!(
                "spec.url {url:?} must start with https:// or http://"
            )));
        }
        let username = credentials.require("username")?;
        let password = credentials.require("password")?;
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &spec.ca_bundle {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                config_error(format!(
                    "spec.caBundle is not a PEM certificate bundle: {e}"
                ))
            })?;
            if certs.is_empty() {
                return Err(config_error("spec.caBundle holds no certificate".into()));
            }
            builder = builder.tls_certs_only(certs);
        }
        if spec.insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| config_error(format!("cannot build the HTTP client: {e}")))?;
        Ok(Harbor {
            http,
            api: format!("{url}/api/v2.0"),
            username,
            password,
            provider_config: name.to_string(),
            kube: None,
        })
    }

    /// This client with the Kubernetes client that kinds keeping state in Kubernetes use.
    pub fn with_kube(mut self, kube: kube::Client) -> Harbor {
        self.kube = Some(kube);
        self
    }

    /// The Kubernetes client (set by the connector).
    pub(crate) fn kube(&self) -> Result<&kube::Client, ProviderError> {
        self.kube.as_ref().ok_or_else(|| {
            ProviderError::Config(format!(
                "ProviderConfig {:?}: this Harbor client has no Kubernetes client",
                self.provider_config
            ))
        })
    }

    /// The username the client logs in with (the ProviderConfig's administrator).
    pub(crate) fn username(&self) -> &str {
        &self.username
    }

    /// The registry host of this Harbor (the URL without scheme and path).
    pub fn registry_host(&self) -> &str {
        let rest = self
            .api
            .split_once("://")
            .map_or(self.api.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .basic_auth(&self.username, Some(&self.password))
            .header("Accept", "application/json")
    }

    /// Sends `req` and reads the answer (at most [`MAX_BODY`] bytes). A connection that
    /// could not be made is transient (the request never reached Harbor); a request sent
    /// without a whole answer back (the connection lost or timed out after sending, the
    /// body cut off) is unanswered, since Harbor may have carried it out: a create that
    /// ends so is looked for, not taken for someone else's project. 401 and 403 are
    /// ProviderConfig errors.
    pub(crate) async fn send(
        &self,
        action: &str,
        req: RequestBuilder,
    ) -> Result<Answer, ProviderError> {
        let mut resp = req.send().await.map_err(|e| {
            let message = format!(
                "cannot {action}: Harbor at {} did not answer: {}",
                self.api,
                without_url(&e)
            );
            if e.is_connect() {
                ProviderError::Transient(message)
            } else {
                ProviderError::Unanswered(message)
            }
        })?;
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            ProviderError::Unanswered(format!(
                "cannot {action}: reading Harbor's answer failed: {}",
                without_url(&e)
            ))
        })? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(ProviderError::Transient(format!(
                    "cannot {action}: Harbor's answer is larger than {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let answer = Answer { status, body };
        match status {
            StatusCode::UNAUTHORIZED => Err(ProviderError::Config(format!(
                "ProviderConfig {:?}: Harbor refused the username and password of its credentials Secret (401 on {action}); check keys username and password",
                self.provider_config
            ))),
            StatusCode::FORBIDDEN => Err(ProviderError::Config(format!(
                "ProviderConfig {:?}: Harbor's user {:?} may not {action} (403): it must be a Harbor system administrator",
                self.provider_config, self.username
            ))),
            _ => Ok(answer),
        }
    }

    /// The error for an answer that none of the caller's cases expected: 400 and 422 mean
    /// the spec cannot be satisfied; anything else is retried.
    pub(crate) fn unexpected(&self, action: &str, answer: &Answer) -> ProviderError {
        let message = answer.message();
        match answer.status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                ProviderError::InvalidSpec(format!("Harbor refused to {action}: {message}"))
            }
            s => {
                ProviderError::Transient(format!("cannot {action}: Harbor answered {s}: {message}"))
            }
        }
    }

    /// GET `path`: `None` on 404.
    pub(crate) async fn get_json(
        &self,
        action: &str,
        req: RequestBuilder,
    ) -> Result<Option<Value>, ProviderError> {
        let answer = self.send(action, req).await?;
        match answer.status {
            StatusCode::OK => answer.json(action).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.unexpected(action, &answer)),
        }
    }
}

/// A reqwest error's text without the URL (which may carry a query but never a secret; the
/// message names Harbor's address on its own).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text
            .replace(&format!(" ({url})"), "")
            .replace(url.as_str(), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Percent-encodes a path segment (project names are plain, but names come from users).
pub(crate) fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(port: u16) -> Harbor {
        // As the controller does at start.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Harbor {
            http: reqwest::Client::new(),
            api: format!("http://127.0.0.1:{port}/api/v2.0"),
            username: "admin".into(),
            password: "secret".into(),
            provider_config: "harbor".into(),
            kube: None,
        }
    }

    #[tokio::test]
    async fn a_request_sent_without_an_answer_is_unanswered_and_a_refused_connection_transient() {
        use tokio::io::AsyncReadExt;
        // A server that reads the request and closes the connection without answering,
        // as a reset or a stall cut off by a proxy does after Harbor carried it out.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
        });
        let harbor = client(port);
        let sent = harbor
            .send(
                "create project p",
                harbor.request(Method::POST, "/projects"),
            )
            .await;
        assert!(
            matches!(sent, Err(ProviderError::Unanswered(_))),
            "a request Harbor may have carried out is unanswered: {:?}",
            sent.err()
        );

        // Nothing listens on the port any more: the request never left.
        let refused = harbor
            .send(
                "create project p",
                harbor.request(Method::POST, "/projects"),
            )
            .await;
        assert!(
            matches!(refused, Err(ProviderError::Transient(_))),
            "a connection that could not be made is transient: {:?}",
            refused.err()
        );
    }
}
