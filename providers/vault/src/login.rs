//! How the provider gets a Vault token without a Secret: a login with Vault's Kubernetes
//! auth method, presenting a ServiceAccount token read from a file or requested with the
//! TokenRequest API. The answer's lease says how long the Vault token lives; the
//! connector's renewer (see `connector.rs`) renews it before then and logs in again here
//! when renewal fails.
//!
//! Neither the ServiceAccount token nor the Vault token ever reaches a log line or an
//! error message: errors carry Vault's and the API server's error text only.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use serde_json::{Value, json};
use tessera_engine::managed::ProviderError;
use tokio::io::AsyncReadExt;

use crate::api::{KubernetesAuthLogin, ProviderConfigSpec};
use crate::error::{CallError, errors_text};
use crate::http::VaultHttp;

/// The token file of the pod the provider runs in.
pub(crate) const POD_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// A ServiceAccount token is a JWT of a few KiB; a bigger file is not one.
const MAX_JWT_BYTES: u64 = 64 * 1024;
/// The shortest lifetime the API server grants a requested token; the token is used at
/// once, for one login.
const REQUESTED_TOKEN_SECONDS: i64 = 600;
/// A bound on the TokenRequest call (the login itself is bounded by its caller).
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A Vault token and how long it lives, from a login or renewal answer.
pub(crate) struct Lease {
    pub(crate) token: String,
    /// Zero for a token that does not expire.
    pub(crate) ttl: Duration,
    pub(crate) renewable: bool,
}

impl Lease {
    /// The lease in the `auth` object of a login or renew-self answer.
    pub(crate) fn from_auth(answer: &Value) -> Option<Lease> {
        let auth = answer.get("auth")?;
        Some(Lease {
            token: auth.get("client_token")?.as_str()?.to_string(),
            ttl: Duration::from_secs(auth.get("lease_duration")?.as_u64()?),
            renewable: auth
                .get("renewable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// Where the ServiceAccount token comes from.
#[derive(Clone, Debug, PartialEq)]
enum JwtSource {
    File(PathBuf),
    TokenRequest {
        namespace: String,
        name: String,
        audience: Option<String>,
    },
}

/// A ProviderConfig's Kubernetes auth login.
pub(crate) struct KubernetesLogin {
    provider_config: String,
    mount: String,
    role: String,
    jwt: JwtSource,
}

impl KubernetesLogin {
    /// The login the ProviderConfig `name` asks for, checked.
    pub(crate) fn from_spec(
        name: &str,
        spec: &ProviderConfigSpec,
    ) -> Result<KubernetesLogin, ProviderError> {
        let config = |msg: String| ProviderError::Config(format!("ProviderConfig {name:?}: {msg}"));
        let Some(k) = &spec.kubernetes_auth else {
            return Err(config(
                "credentials source KubernetesAuth needs spec.kubernetesAuth (at least its role)"
                    .to_string(),
            ));
        };
        check(k).map_err(config)?;
        let jwt = match (&k.token_path, &k.service_account_ref) {
            (Some(_), Some(_)) => unreachable!("check refuses both"),
            (None, Some(sa)) => JwtSource::TokenRequest {
                namespace: sa.namespace.clone(),
                name: sa.name.clone(),
                audience: k.audience.clone(),
            },
            (path, None) => {
                JwtSource::File(PathBuf::from(path.as_deref().unwrap_or(POD_TOKEN_PATH)))
            }
        };
        Ok(KubernetesLogin {
            provider_config: name.to_string(),
            mount: k.mount_path.trim_matches('/').to_string(),
            role: k.role.clone(),
            jwt,
        })
    }

    /// Logs in and returns the Vault token's lease.
    pub(crate) async fn login(
        &self,
        http: &VaultHttp,
        kube: &kube::Client,
    ) -> Result<Lease, ProviderError> {
        let jwt = self.jwt(kube).await?;
        let body = json!({ "role": self.role, "jwt": jwt });
        let path = format!("auth/{}/login", self.mount);
        let answer = http
            .call(reqwest::Method::POST, &path, None, Some(&body))
            .await;
        let pc = &self.provider_config;
        match answer {
            Ok(Some(answer)) => Lease::from_auth(&answer).ok_or_else(|| {
                ProviderError::Transient(format!(
                    "ProviderConfig {pc:?}: the Kubernetes login at auth/{} answered without a \
                     token",
                    self.mount
                ))
            }),
            Ok(None) => Err(ProviderError::Config(format!(
                "ProviderConfig {pc:?}: Vault at {} has no Kubernetes auth method at auth/{} \
                 (kubernetesAuth.mountPath)",
                http.address(),
                self.mount
            ))),
            Err(CallError::Api { code, errors }) if (400..500).contains(&code) => {
                Err(ProviderError::Config(format!(
                    "ProviderConfig {pc:?}: Vault at {} refused the Kubernetes login as role {:?} \
                     at auth/{}: {} (check kubernetesAuth.role and mountPath, and that the role \
                     binds {})",
                    http.address(),
                    self.role,
                    self.mount,
                    errors_text(&errors, &format!("status {code}")),
                    self.who()
                )))
            }
            Err(CallError::Api { code, errors }) => Err(ProviderError::Transient(format!(
                "ProviderConfig {pc:?}: the Kubernetes login at Vault at {} failed with {code}: {}",
                http.address(),
                errors_text(&errors, "no detail")
            ))),
            Err(CallError::Transport(text) | CallError::Unanswered(text)) => {
                Err(ProviderError::Transient(format!(
                    "ProviderConfig {pc:?}: Vault at {} did not answer the Kubernetes login: {text}",
                    http.address()
                )))
            }
        }
    }

    /// The ServiceAccount the login presents, for messages.
    fn who(&self) -> String {
        match &self.jwt {
            JwtSource::File(path) => {
                format!("the ServiceAccount of the token in {}", path.display())
            }
            JwtSource::TokenRequest {
                namespace, name, ..
            } => format!("ServiceAccount {namespace}/{name}"),
        }
    }

    async fn jwt(&self, kube: &kube::Client) -> Result<String, ProviderError> {
        let pc = &self.provider_config;
        match &self.jwt {
            JwtSource::File(path) => {
                let cannot = |e: std::io::Error| {
                    ProviderError::Config(format!(
                        "ProviderConfig {pc:?}: cannot read the ServiceAccount token file {} \
                         (kubernetesAuth.tokenPath): {e}",
                        path.display()
                    ))
                };
                let file = tokio::fs::File::open(path).await.map_err(cannot)?;
                let mut raw = Vec::new();
                file.take(MAX_JWT_BYTES + 1)
                    .read_to_end(&mut raw)
                    .await
                    .map_err(cannot)?;
                let text = String::from_utf8(raw).ok().filter(|t| {
                    let t = t.trim();
                    !t.is_empty() && t.len() as u64 <= MAX_JWT_BYTES
                });
                text.map(|t| t.trim().to_string()).ok_or_else(|| {
                    ProviderError::Config(format!(
                        "ProviderConfig {pc:?}: the file {} (kubernetesAuth.tokenPath) holds no \
                         ServiceAccount token (empty, not text, or over {MAX_JWT_BYTES} bytes)",
                        path.display()
                    ))
                })
            }
            JwtSource::TokenRequest {
                namespace,
                name,
                audience,
            } => {
                let api: Api<ServiceAccount> = Api::namespaced(kube.clone(), namespace);
                let req = TokenRequest {
                    spec: Some(TokenRequestSpec {
                        audiences: audience.as_ref().map(|a| vec![a.clone()]),
                        expiration_seconds: Some(REQUESTED_TOKEN_SECONDS),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                let answer = tokio::time::timeout(
                    TOKEN_REQUEST_TIMEOUT,
                    api.create_token_request(name, &Default::default(), &req),
                )
                .await
                .map_err(|_| {
                    ProviderError::Transient(format!(
                        "ProviderConfig {pc:?}: the TokenRequest for ServiceAccount \
                         {namespace}/{name} got no answer within {}s",
                        TOKEN_REQUEST_TIMEOUT.as_secs()
                    ))
                })?;
                match answer {
                    Ok(tr) => tr
                        .status
                        .and_then(|s| s.token)
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| {
                            ProviderError::Transient(format!(
                                "ProviderConfig {pc:?}: the TokenRequest for ServiceAccount \
                                 {namespace}/{name} returned no token"
                            ))
                        }),
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        Err(ProviderError::Config(format!(
                            "ProviderConfig {pc:?}: ServiceAccount {namespace}/{name} \
                             (kubernetesAuth.serviceAccountRef) not found"
                        )))
                    }
                    Err(kube::Error::Api(s)) if s.code == 403 => {
                        Err(ProviderError::Config(format!(
                            "ProviderConfig {pc:?}: the provider may not request tokens for \
                             ServiceAccount {namespace}/{name}: its own ServiceAccount needs \
                             RBAC permission to create serviceaccounts/token there"
                        )))
                    }
                    Err(e) => Err(ProviderError::Transient(format!(
                        "ProviderConfig {pc:?}: the TokenRequest for ServiceAccount \
                         {namespace}/{name} failed: {e}"
                    ))),
                }
            }
        }
    }
}

/// What is wrong with a `kubernetesAuth` block, if anything.
fn check(k: &KubernetesAuthLogin) -> Result<(), String> {
    let mount = k.mount_path.trim_matches('/');
    if mount.is_empty() || mount.contains("..") || mount.chars().any(char::is_whitespace) {
        return Err(format!(
            "kubernetesAuth.mountPath {:?} is not an auth method path such as `kubernetes`",
            k.mount_path
        ));
    }
    if k.role.trim().is_empty() || k.role.contains('/') {
        return Err(format!(
            "kubernetesAuth.role {:?} is not a role name",
            k.role
        ));
    }
    match (&k.token_path, &k.service_account_ref) {
        (Some(_), Some(_)) => {
            Err("kubernetesAuth sets both tokenPath and serviceAccountRef; set one".to_string())
        }
        (Some(p), None) if p.trim().is_empty() => {
            Err("kubernetesAuth.tokenPath is empty".to_string())
        }
        (Some(_), None) if k.audience.is_some() => Err(
            "kubernetesAuth.audience applies to serviceAccountRef only; a token file has \
             the audience it was issued with"
                .to_string(),
        ),
        (None, Some(sa)) if sa.name.is_empty() || sa.namespace.is_empty() => {
            Err("kubernetesAuth.serviceAccountRef needs a name and a namespace".to_string())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ServiceAccountReference;

    fn login(f: impl FnOnce(&mut KubernetesAuthLogin)) -> KubernetesAuthLogin {
        let mut k = KubernetesAuthLogin {
            mount_path: "kubernetes".to_string(),
            role: "tessera".to_string(),
            token_path: None,
            service_account_ref: None,
            audience: None,
        };
        f(&mut k);
        k
    }

    #[test]
    fn kubernetes_auth_settings_are_checked_with_a_message_naming_the_field() {
        let sa = || {
            Some(ServiceAccountReference {
                name: "vault".to_string(),
                namespace: "ns".to_string(),
            })
        };
        let cases: Vec<(&str, KubernetesAuthLogin, Option<&str>)> = vec![
            ("the defaults are fine", login(|_| {}), None),
            (
                "a token file",
                login(|k| k.token_path = Some("/tmp/t".into())),
                None,
            ),
            (
                "a ServiceAccount with an audience",
                login(|k| {
                    k.service_account_ref = sa();
                    k.audience = Some("vault".into());
                }),
                None,
            ),
            (
                "both sources",
                login(|k| {
                    k.token_path = Some("/tmp/t".into());
                    k.service_account_ref = sa();
                }),
                Some("both tokenPath and serviceAccountRef"),
            ),
            (
                "an audience for a file",
                login(|k| {
                    k.token_path = Some("/tmp/t".into());
                    k.audience = Some("vault".into());
                }),
                Some("audience applies to serviceAccountRef only"),
            ),
            (
                "an empty role",
                login(|k| k.role = " ".into()),
                Some("kubernetesAuth.role"),
            ),
            (
                "a mount path going up",
                login(|k| k.mount_path = "../sys".into()),
                Some("kubernetesAuth.mountPath"),
            ),
        ];
        for (reason, k, want) in cases {
            match (check(&k), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.contains(w), "{reason}: {e}"),
                (got, want) => panic!("{reason}: got {got:?}, want an error with {want:?}"),
            }
        }
    }

    #[test]
    fn without_a_token_path_or_service_account_the_pod_token_is_used() {
        let spec: ProviderConfigSpec = serde_json::from_value(json!({
            "address": "http://127.0.0.1:8200",
            "credentials": { "source": "KubernetesAuth" },
            "kubernetesAuth": { "role": "tessera" }
        }))
        .unwrap();
        let l = KubernetesLogin::from_spec("pc", &spec).unwrap();
        assert_eq!(l.mount, "kubernetes", "the default mount path");
        assert_eq!(l.jwt, JwtSource::File(PathBuf::from(POD_TOKEN_PATH)));
    }

    #[test]
    fn kubernetes_auth_source_without_its_settings_names_the_provider_config() {
        let spec: ProviderConfigSpec = serde_json::from_value(json!({
            "address": "http://127.0.0.1:8200",
            "credentials": { "source": "KubernetesAuth" }
        }))
        .unwrap();
        let err = KubernetesLogin::from_spec("pc", &spec).err().unwrap();
        assert!(
            err.to_string().contains("ProviderConfig \"pc\"")
                && err.to_string().contains("spec.kubernetesAuth"),
            "{err}"
        );
    }

    #[test]
    fn a_lease_is_read_from_the_auth_of_a_login_answer() {
        let answer =
            json!({ "auth": { "client_token": "s.x", "lease_duration": 20, "renewable": true } });
        let lease = Lease::from_auth(&answer).unwrap();
        assert_eq!(lease.ttl, Duration::from_secs(20));
        assert!(lease.renewable);
        assert!(Lease::from_auth(&json!({ "data": {} })).is_none());
    }
}
