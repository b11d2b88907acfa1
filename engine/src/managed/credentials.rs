//! ProviderConfig credentials read from their Secret, with errors a user can act on.
//!
//! Sources without a Secret (`Default`, `KubernetesAuth`) get [`Credentials::none`]: no
//! values, and the provider finds what it needs itself (from its ProviderConfig's spec,
//! its environment or the cluster).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use crate::managed::ProviderError;

/// The data of a ProviderConfig's credentials Secret (empty for sources without a
/// Secret). Values are secrets: `Debug` prints the keys only.
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

    /// The credentials of a ProviderConfig whose source reads no Secret: no values.
    pub fn none(provider_config: &str) -> Self {
        Credentials {
            provider_config: provider_config.to_string(),
            secret: String::new(),
            data: BTreeMap::new(),
        }
    }

    /// Whether the credentials came from a Secret (rather than from a source without one).
    pub fn from_a_secret(&self) -> bool {
        !self.secret.is_empty()
    }

    /// `namespace/name` of the Secret the credentials came from; empty without one.
    pub fn secret_name(&self) -> &str {
        &self.secret
    }

    /// A required UTF-8 value; the error names the ProviderConfig, the Secret and the key.
    pub fn require(&self, key: &str) -> Result<String, ProviderError> {
        let raw = self.data.get(key).ok_or_else(|| {
            if self.from_a_secret() {
                ProviderError::Config(format!(
                    "ProviderConfig {:?}: Secret {} has no key {:?}",
                    self.provider_config, self.secret, key
                ))
            } else {
                ProviderError::Config(format!(
                    "ProviderConfig {:?}: its credentials source reads no Secret, so there \
                     is no key {:?}; set credentials.source: Secret and credentials.secretRef",
                    self.provider_config, key
                ))
            }
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

/// The credentials of the ProviderConfig named `provider_config` in `secret` (the Secret
/// its credentials reference, as held by a watched store).
pub fn from_secret(provider_config: &str, secret: &Secret) -> Credentials {
    let name = format!(
        "{}/{}",
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default()
    );
    let data = secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Credentials::from_data(provider_config, &name, data)
}
