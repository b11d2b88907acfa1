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
           with which token. Managed resources name it in spec.providerConfigRef; the one \
           named `default` is used when they do not."
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

    /// The Secret with the token the provider uses, in key `token`. The token needs a
    /// policy that allows what the managed resources ask for (`sys/policies/acl/*`,
    /// `sys/mounts/*`, `sys/auth/*` with `sudo` for auth methods). The Secret is watched:
    /// a new token is used from the next reconcile on, without a restart.
    pub credentials: ProviderCredentials,
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
