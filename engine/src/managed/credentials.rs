//! Reading ProviderConfig credentials from their Secret, with errors a user can act on.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::api::common::ProviderCredentials;
use crate::managed::ProviderError;

/// The data of a ProviderConfig's credentials Secret. Values are secrets: `Debug`
/// prints the keys only.
#[derive(Clone, Default)]
pub struct Credentials {
    provider_config: String,
    secret: String,
    data: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("provider_config", &self.provider_config)
            .field("secret", &self.secret)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// Builds credentials from already-read Secret data (used by tests and by callers
    /// that read the Secret themselves).
    pub fn from_data(provider_config: &str, secret: &str, data: BTreeMap<String, Vec<u8>>) -> Self {
        Credentials {
            provider_config: provider_config.to_string(),
            secret: secret.to_string(),
            data,
        }
    }

    /// A required UTF-8 value; the error names the ProviderConfig, the Secret and the key.
    pub fn require(&self, key: &str) -> Result<String, ProviderError> {
        let raw = self.data.get(key).ok_or_else(|| {
            ProviderError::Config(format!(
                "ProviderConfig {:?}: Secret {} has no key {:?}",
                self.provider_config, self.secret, key
            ))
        })?;
        String::from_utf8(raw.clone()).map_err(|_| {
            ProviderError::Config(format!(
                "ProviderConfig {:?}: key {:?} of Secret {} is not UTF-8 text",
                self.provider_config, key, self.secret
            ))
        })
    }

    /// An optional UTF-8 value.
    pub fn optional(&self, key: &str) -> Result<Option<String>, ProviderError> {
        if self.data.contains_key(key) {
            self.require(key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The `resourceVersion`-independent fingerprint of the credentials, for caching
    /// connections: changes whenever any value changes.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.data.hash(&mut h);
        h.finish()
    }
}

/// Reads the Secret that a ProviderConfig named `provider_config` refers to.
pub async fn read(
    client: &kube::Client,
    provider_config: &str,
    creds: &ProviderCredentials,
) -> Result<Credentials, ProviderError> {
    let r = &creds.secret_ref;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &r.namespace);
    let secret_name = format!("{}/{}", r.namespace, r.name);
    let secret = match secrets.get_opt(&r.name).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(ProviderError::Config(format!(
                "ProviderConfig {provider_config:?}: credentials Secret {secret_name} not found"
            )));
        }
        Err(e) => {
            return Err(ProviderError::Transient(format!(
                "ProviderConfig {provider_config:?}: cannot read credentials Secret {secret_name}: {e}"
            )));
        }
    };
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Ok(Credentials::from_data(provider_config, &secret_name, data))
}
