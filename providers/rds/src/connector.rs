//! [`RdsConnector`]: the kit's [`CachedConnector`] with [`Rds`], which makes one AWS SDK
//! client per ProviderConfig (and credentials fingerprint) from its spec and its Secret or
//! the default credential chain, with the role of `assumeRoleArn` when set
//! ([`crate::credentials`]).
//!
//! The SDK retries throttling, transient and 5xx answers itself (standard retry mode, with
//! jittered exponential backoff); what it gives up on reaches the runtime as a
//! [`ProviderError::Transient`], whose own backoff then applies. Nothing retries twice.

use async_trait::async_trait;
use std::sync::Arc;

use aws_sdk_rds::config::{BehaviorVersion, Region};
use kube::Resource;
use tessera_engine::api::common::{CredentialsSource, ProviderCredentials};
use tessera_engine::managed::ProviderError;
use tessera_engine::managed::connections::{CachedConnector, Connect, ProviderConfigKind};
use tessera_engine::managed::credentials::Credentials;

use crate::api::ProviderConfig;
use crate::credentials::{self, Origin};

/// The namespace of generated master password Secrets of DBInstances without a
/// connection secret.
pub const DEFAULT_PASSWORD_NAMESPACE: &str = "tessera-system";

/// Key of the access key id in a ProviderConfig's credentials Secret.
pub const ACCESS_KEY_ID: &str = "aws_access_key_id";
/// Key of the secret access key.
pub const SECRET_ACCESS_KEY: &str = "aws_secret_access_key";
/// Key of the (optional) session token of temporary credentials.
pub const SESSION_TOKEN: &str = "aws_session_token";

/// Connects DBInstances and DBSubnetGroups to RDS, one cached SDK client per
/// ProviderConfig. Cheap to clone; clones share the cache.
pub type RdsConnector = CachedConnector<Rds>;

/// How the RDS provider connects: an `aws_sdk_rds::Client` with the ProviderConfig's
/// region, endpoint and credentials.
pub struct Rds {
    password_namespace: String,
}

impl Rds {
    /// A connector that keeps generated master passwords of DBInstances without a
    /// connection secret in [`DEFAULT_PASSWORD_NAMESPACE`].
    pub fn connector() -> RdsConnector {
        Self::connector_with_password_namespace(DEFAULT_PASSWORD_NAMESPACE)
    }

    /// Like [`Rds::connector`], with generated passwords kept in `namespace`.
    pub fn connector_with_password_namespace(namespace: impl Into<String>) -> RdsConnector {
        CachedConnector::new(Rds {
            password_namespace: namespace.into(),
        })
    }
}

impl ProviderConfigKind for ProviderConfig {
    fn credentials(&self) -> &ProviderCredentials {
        &self.spec.credentials
    }
}

#[async_trait]
impl Connect for Rds {
    type Config = ProviderConfig;
    type Client = RdsClient;
    const SYSTEM: &'static str = "AWS RDS";
    const SOURCES: &'static [CredentialsSource] =
        &[CredentialsSource::Secret, CredentialsSource::Default];

    async fn connect(
        &self,
        kube: &kube::Client,
        name: &str,
        config: &ProviderConfig,
        credentials: &Credentials,
    ) -> Result<RdsClient, ProviderError> {
        let spec = &config.spec;
        if !valid_region(&spec.region) {
            return Err(ProviderError::Config(format!(
                "ProviderConfig {name:?}: {:?} is not an AWS region name (e.g. eu-west-1)",
                spec.region
            )));
        }
        let mut builder = aws_sdk_rds::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(spec.region.clone()));
        if let Some(url) = &spec.endpoint_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ProviderError::Config(format!(
                    "ProviderConfig {name:?}: endpointUrl {url:?} must start with https:// or http://"
                )));
            }
            builder = builder.endpoint_url(url);
        }
        let (provider, origin) = credentials::provider(name, spec, credentials).await?;
        builder = builder.credentials_provider(provider);
        Ok(RdsClient {
            rds: aws_sdk_rds::Client::from_conf(builder.build()),
            kube: kube.clone(),
            provider_config: Arc::new(origin),
            password_namespace: self.password_namespace.clone(),
        })
    }
}

/// Whether `region` is shaped like an AWS region name (`eu-west-1`, `us-gov-east-1`):
/// lower-case words joined by dashes, ending in a number. Which regions exist is AWS's
/// to answer; this refuses what cannot be one before it becomes part of a host name.
pub(crate) fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 5
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1]
            .parse::<u8>()
            .is_ok_and(|n| n > 0 && parts[parts.len() - 1].len() <= 2)
}

/// The [`ExternalClient`](tessera_engine::managed::ExternalClient) of DBInstances and
/// DBSubnetGroups: the SDK client of one ProviderConfig, plus the Kubernetes client for
/// the Secrets that hold master passwords.
#[derive(Clone)]
pub struct RdsClient {
    pub(crate) rds: aws_sdk_rds::Client,
    pub(crate) kube: kube::Client,
    /// The ProviderConfig and who its calls are made as, for error messages.
    pub(crate) provider_config: Arc<Origin>,
    pub(crate) password_namespace: String,
}

impl RdsClient {
    /// The SDK client.
    pub fn sdk(&self) -> &aws_sdk_rds::Client {
        &self.rds
    }
}

/// Whether `obj` is being deleted: observe then only answers whether the external
/// resource exists and whose it is.
pub(crate) fn deleting<K: Resource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}

/// The `metadata.uid` of `obj` (empty before the API server gave it one).
pub(crate) fn uid<K: Resource>(obj: &K) -> &str {
    obj.meta().uid.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::valid_region;

    #[test]
    fn region_names_are_checked_for_shape_only() {
        for ok in ["eu-west-1", "us-east-1", "us-gov-west-1", "ap-southeast-12"] {
            assert!(valid_region(ok), "{ok}");
        }
        for bad in [
            "",
            "eu",
            "eu-west",
            "EU-WEST-1",
            "eu-west-1.evil.com",
            "eu-west-0",
            "eu--1",
        ] {
            assert!(!valid_region(bad), "{bad}");
        }
    }
}
