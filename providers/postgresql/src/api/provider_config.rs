use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::api::common::ProviderCredentials;

/// How to reach a PostgreSQL server and as whom.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "postgresql.sql.tessera.dev",
    version = "v1alpha1",
    kind = "ProviderConfig",
    derive = "PartialEq",
    doc = "A ProviderConfig tells the PostgreSQL provider how to reach a PostgreSQL server and \
           with which credentials. Managed resources name it in spec.providerConfigRef; the one \
           named `default` is used when they do not."
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfigSpec {
    /// The Secret with the server address and the credentials of an administrative role
    /// (a superuser, or a role with CREATEROLE and CREATEDB). Keys: `endpoint` (host name
    /// or IP address), `port` (optional, default 5432), `username`, `password`, and `ca.crt`
    /// (PEM CA bundle, needed by sslMode `verify-ca` and `verify-full`). The Secret is
    /// watched: a change (a rotated password) is used from the next reconcile of each
    /// managed resource on, without a restart.
    pub credentials: ProviderCredentials,

    /// Whether the connection is encrypted and the server authenticated, as libpq's
    /// sslmode. `verify-full` is recommended: it encrypts and checks that the server's
    /// certificate chains to the CA in key `ca.crt` of the credentials Secret and names
    /// the endpoint. `verify-ca` checks the chain but not the name. `require` encrypts
    /// without checking the certificate; `prefer` (the default, as in libpq) encrypts when
    /// the server offers TLS and otherwise connects in the clear; `disable` never encrypts.
    /// In every mode a server asking for a cleartext or MD5 password is refused before
    /// anything is sent; with `require`, `verify-ca` and `verify-full` the login must
    /// moreover be SCRAM-SHA-256 with channel binding, so a relayed login is detected.
    /// `prefer` and `disable` let whoever sits on the path downgrade the connection or
    /// impersonate the server.
    #[serde(default)]
    pub ssl_mode: SslMode,

    /// The database the provider connects to; CREATE DATABASE, DROP DATABASE and role
    /// statements run there. Default `postgres`.
    #[serde(default = "default_database")]
    pub default_database: String,
}

fn default_database() -> String {
    "postgres".to_string()
}

/// Whether the connection to PostgreSQL is encrypted and the server authenticated
/// (libpq's sslmode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server offers it, without verifying its certificate.
    #[default]
    Prefer,
    /// Always use TLS, without verifying the server's certificate; fail when the server does not offer it.
    Require,
    /// Always use TLS; the server's certificate must chain to the CA in key `ca.crt` of the credentials Secret.
    #[serde(rename = "verify-ca")]
    VerifyCa,
    /// Always use TLS; the server's certificate must chain to the CA in key `ca.crt` of the credentials Secret and name the endpoint (recommended).
    #[serde(rename = "verify-full")]
    VerifyFull,
}

impl SslMode {
    /// The name used in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}
