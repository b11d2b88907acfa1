use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::{ProviderCredentials, SecretKeySelector};

/// The key of the credentials Secret that holds the Vault token.
pub const TOKEN_KEY: &str = "token";

/// How to reach a Vault (or OpenBao) server and as whom.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "vault.tessera.dev",
    version = "v1alpha1",
    kind = "ProviderConfig",
    derive = "PartialEq",
    doc = "A ProviderConfig tells the Vault provider how to reach a Vault or OpenBao server and \
           how to authenticate: with a token from a Secret, or by logging in with a Kubernetes \
           ServiceAccount token through Vault's Kubernetes auth method. Managed resources name \
           it in spec.providerConfigRef; the one named `default` is used when they do not."
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfigSpec {
    /// The server's address, e.g. `https://vault.example.com:8200` (scheme, host and
    /// optional port; no path).
    pub address: String,

    /// The Vault Enterprise namespace every request is made in (the `X-Vault-Namespace`
    /// header). Leave unset for the root namespace and for OpenBao without namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// How the server's TLS certificate is checked. By default it must chain to a root of
    /// the system's trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,

    /// How the provider authenticates. `source: Secret` (the default): the token in key
    /// `token` of the Secret `secretRef`; the Secret is watched, so a new token is used from
    /// the next reconcile on, without a restart. `source: KubernetesAuth`: the provider logs
    /// in with a ServiceAccount token as `kubernetesAuth` says, renews the token it gets
    /// before it expires and logs in again when renewal fails. Either way the token needs a
    /// policy that allows what the managed resources ask for (`sys/policies/acl/*`,
    /// `sys/mounts/*`, `sys/auth/*` with `sudo` for auth methods).
    pub credentials: ProviderCredentials,

    /// The Kubernetes auth login, required when `credentials.source` is `KubernetesAuth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_auth: Option<KubernetesAuthLogin>,
}

/// How the provider logs in with Vault's Kubernetes auth method. The ServiceAccount token
/// comes from `tokenPath` or, with `serviceAccountRef`, from the TokenRequest API; with
/// neither, from the provider pod's own token file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesAuthLogin {
    /// The path the Kubernetes auth method is enabled at, without `auth/` (default
    /// `kubernetes`).
    #[serde(default = "default_mount_path")]
    pub mount_path: String,

    /// The Kubernetes auth role to log in as. It must bind the ServiceAccount whose token
    /// the provider presents.
    pub role: String,

    /// A file holding a ServiceAccount token (JWT), read again at every login so that a
    /// projected token that the kubelet rotates keeps working. Defaults to the pod's own
    /// token, `/var/run/secrets/kubernetes.io/serviceaccount/token`, when
    /// `serviceAccountRef` is not set either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_path: Option<String>,

    /// A ServiceAccount for which the provider requests a short-lived token with the
    /// TokenRequest API at every login. The provider's own ServiceAccount needs RBAC
    /// permission to `create` `serviceaccounts/token` for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountReference>,

    /// The audience of the tokens requested for `serviceAccountRef`; set it when the Vault
    /// role names an `audience`. Defaults to the API server's own audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

fn default_mount_path() -> String {
    "kubernetes".to_string()
}

/// A ServiceAccount by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceAccountReference {
    /// Name of the ServiceAccount.
    pub name: String,
    /// Namespace of the ServiceAccount.
    pub namespace: String,
}

/// How the Vault server's TLS certificate is checked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    /// A key of a Secret holding the PEM CA bundle the server's certificate must chain to,
    /// in addition to the system's roots. Read when the provider connects (after a change
    /// of this ProviderConfig or of its credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeySelector>,

    /// Accept any server certificate. Anyone on the network path can then impersonate the
    /// server and read the token: for tests only. The provider logs a warning when it
    /// connects this way.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}
