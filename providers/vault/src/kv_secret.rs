//! KVSecrets: a KV version 2 secret whose data is a Kubernetes Secret's, written as a new
//! version whenever Vault's latest version has other data.
//!
//! Values are compared and written, never put into messages: a difference names keys only.
//!
//! Whose a secret is, is read from the `tessera.dev/managed-resource-uid` custom metadata,
//! whatever the state of its versions, and that mark is written before any data: a write
//! cut short between the two leaves a secret marked as this object's (with no readable
//! version yet), which the next pass completes, never one it would take for another's.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use serde_json::Value;
use tessera_engine::api::common::ConnectionDetails;
use tessera_engine::managed::{
    CreateIdentity, ExternalClient, Observation, Ownership, ProviderError,
};

use crate::ownership;
use vaultrs::api::kv2::requests::{SetSecretMetadataRequest, SetSecretRequestOptions};
use vaultrs::api::kv2::responses::ReadSecretMetadataResponse;

use crate::api::{
    KVDeletion, KVSecret, KVSecretObservation, KVSecretParameters, MANAGED_RESOURCE_UID,
};
use crate::connector::{VaultClient, deleting};
use crate::error::CallError;
use crate::mounts::ttl_seconds;

/// The secret's metadata as the spec wants it (only what the spec sets).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct WantMetadata {
    pub custom: BTreeMap<String, String>,
    pub max_versions: Option<u64>,
    pub cas_required: Option<bool>,
    /// Seconds.
    pub delete_version_after: Option<u64>,
}

/// The secret's metadata as Vault has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HaveMetadata {
    pub custom: BTreeMap<String, String>,
    pub max_versions: u64,
    pub cas_required: bool,
    /// Seconds.
    pub delete_version_after: u64,
}

fn check(p: &KVSecretParameters) -> Result<WantMetadata, ProviderError> {
    let bad = |s: &str| {
        s.trim_matches('/').is_empty()
            || s.split('/').any(|seg| seg == "..")
            || s.chars()
                .any(|c| c.is_control() || matches!(c, '?' | '#' | '%'))
    };
    if bad(&p.mount) {
        return Err(ProviderError::InvalidSpec(format!(
            "forProvider.mount {:?} is not the path of a KV engine, e.g. secret",
            p.mount
        )));
    }
    if bad(&p.path) {
        return Err(ProviderError::InvalidSpec(format!(
            "forProvider.path {:?} is not a secret path, e.g. app/db",
            p.path
        )));
    }
    if p.custom_metadata.contains_key(MANAGED_RESOURCE_UID) {
        return Err(ProviderError::InvalidSpec(format!(
            "forProvider.customMetadata: {MANAGED_RESOURCE_UID} is set by Tessera, not by the spec"
        )));
    }
    let delete_version_after = p
        .delete_version_after
        .as_deref()
        .map(|s| {
            ttl_seconds(s).ok_or_else(|| {
                ProviderError::InvalidSpec(format!(
                    "forProvider.deleteVersionAfter {s:?} is not a duration such as 720h or 0s"
                ))
            })
        })
        .transpose()?;
    Ok(WantMetadata {
        custom: p.custom_metadata.clone(),
        max_versions: p.max_versions.map(|n| u64::try_from(n).unwrap_or(0)),
        cas_required: p.cas_required,
        delete_version_after,
    })
}

/// The keys whose values differ between the Secret's data and Vault's latest version, in
/// words (key names only, never values); `None` when equal.
pub(crate) fn data_difference(
    want: &BTreeMap<String, String>,
    have: &HashMap<String, Value>,
) -> Option<String> {
    let mut differ: Vec<&str> = want
        .iter()
        .filter(|(k, v)| have.get(*k).and_then(Value::as_str) != Some(v.as_str()))
        .map(|(k, _)| k.as_str())
        .collect();
    differ.extend(
        have.keys()
            .filter(|k| !want.contains_key(*k))
            .map(String::as_str),
    );
    differ.sort_unstable();
    (!differ.is_empty()).then(|| {
        format!(
            "the latest version's data differs from the Secret in keys [{}]",
            differ.join(", ")
        )
    })
}

/// What differs in the metadata the spec sets, in words; `None` when equal.
pub(crate) fn metadata_difference(want: &WantMetadata, have: &HaveMetadata) -> Option<String> {
    let mut out = Vec::new();
    for (k, v) in &want.custom {
        if have.custom.get(k) != Some(v) {
            out.push(format!("custom metadata {k} differs"));
        }
    }
    if want.max_versions.is_some_and(|n| n != have.max_versions) {
        out.push(format!("max versions is {}", have.max_versions));
    }
    if want.cas_required.is_some_and(|c| c != have.cas_required) {
        out.push(format!("cas required is {}", have.cas_required));
    }
    if want
        .delete_version_after
        .is_some_and(|d| d != have.delete_version_after)
    {
        out.push(format!(
            "delete version after is {}s",
            have.delete_version_after
        ));
    }
    (!out.is_empty()).then(|| out.join("; "))
}

fn have_metadata(m: &ReadSecretMetadataResponse) -> HaveMetadata {
    HaveMetadata {
        custom: m
            .custom_metadata
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        max_versions: m.max_versions,
        cas_required: m.cas_required,
        delete_version_after: ttl_seconds(&m.delete_version_after).unwrap_or(0),
    }
}

/// The uid in the secret's `tessera.dev/managed-resource-uid` custom metadata.
fn kv_marked_uid(m: &ReadSecretMetadataResponse) -> Option<String> {
    m.custom_metadata
        .as_ref()
        .and_then(|c| c.get(MANAGED_RESOURCE_UID).cloned())
}

/// Whether the latest version of `m` can be read (neither deleted nor destroyed).
fn latest_readable(m: &ReadSecretMetadataResponse) -> bool {
    m.versions
        .get(&m.current_version.to_string())
        .is_some_and(|v| v.deletion_time.is_empty() && !v.destroyed)
}

impl VaultClient {
    fn kv_action(&self, what: &str, p: &KVSecretParameters) -> String {
        format!("{what} KV secret {}/{}", p.mount, p.path)
    }

    /// The secret's metadata, `None` when there is none. (A raw request: vaultrs logs
    /// every 404, the normal answer for a secret not yet written, as an error.)
    async fn kv_metadata(
        &self,
        p: &KVSecretParameters,
    ) -> Result<Option<ReadSecretMetadataResponse>, ProviderError> {
        let action = self.kv_action("read the metadata of", p);
        let answer = self
            .raw(
                reqwest::Method::GET,
                &format!("{}/metadata/{}", p.mount, p.path),
                None,
            )
            .await
            .map_err(|e| self.error(&action, e))?;
        answer
            .map(|mut v| {
                serde_json::from_value(v["data"].take()).map_err(|e| {
                    ProviderError::Transient(format!("cannot {action}: unexpected answer: {e}"))
                })
            })
            .transpose()
    }

    /// The data of the Kubernetes Secret the spec names, as UTF-8 strings.
    async fn kv_source(
        &self,
        p: &KVSecretParameters,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        let r = &p.data_secret_ref;
        let api: Api<Secret> = Api::namespaced(self.inner.kube.clone(), &r.namespace);
        let secret = api
            .get_opt(&r.name)
            .await
            .map_err(|e| {
                ProviderError::Transient(format!(
                    "cannot read Secret {}/{} (forProvider.dataSecretRef): {e}",
                    r.namespace, r.name
                ))
            })?
            .ok_or_else(|| {
                ProviderError::Transient(format!(
                    "Secret {}/{} (forProvider.dataSecretRef) not found; create it",
                    r.namespace, r.name
                ))
            })?;
        let mut data = BTreeMap::new();
        for (k, v) in secret.data.unwrap_or_default() {
            let v = String::from_utf8(v.0).map_err(|_| {
                ProviderError::InvalidSpec(format!(
                    "key {k:?} of Secret {}/{} is not UTF-8 text; KV values are text",
                    r.namespace, r.name
                ))
            })?;
            data.insert(k, v);
        }
        if data.is_empty() {
            return Err(ProviderError::InvalidSpec(format!(
                "Secret {}/{} (forProvider.dataSecretRef) has no data",
                r.namespace, r.name
            )));
        }
        Ok(data)
    }

    /// Writes the metadata with the mark, then a new version with the Secret's data when
    /// the latest differs (check-and-set against the version observed, so a concurrent
    /// writer is not overwritten blindly). KV version 2 keeps metadata written before any
    /// version; a failure after it leaves a secret this object recognises as its own.
    ///
    /// Only a secret that is absent or already carries this object's mark is written (the
    /// reconciler marks an adopted or repaired one first): one that appeared, or changed
    /// hands, since it was observed is left alone for the next pass to look at.
    async fn kv_write(&self, mr: &KVSecret) -> Result<ConnectionDetails, ProviderError> {
        let p = &mr.spec.for_provider;
        let want_meta = check(p)?;
        let data = self.kv_source(p).await?;
        let meta = self.kv_metadata(p).await?;
        if let Some(m) = &meta
            && ownership::of(kv_marked_uid(m).as_deref(), mr.uid().as_deref()) != Ownership::Ours
        {
            return Err(ProviderError::Transient(format!(
                "KV secret {}/{} is not marked as this object's (it appeared or was marked by \
                 someone else since it was observed); it is looked at again",
                p.mount, p.path
            )));
        }
        let cas = meta.as_ref().map_or(0, |m| m.current_version);
        let cas = u32::try_from(cas).map_err(|_| {
            ProviderError::InvalidSpec(format!(
                "KV secret {}/{} has more versions than a check-and-set can name",
                p.mount, p.path
            ))
        })?;
        let mut custom: HashMap<String, String> = want_meta.custom.clone().into_iter().collect();
        if let Some(m) = &meta {
            // Keep keys the spec does not manage.
            for (k, v) in m.custom_metadata.clone().unwrap_or_default() {
                custom.entry(k).or_insert(v);
            }
        }
        if let Some(uid) = mr.uid() {
            custom.insert(MANAGED_RESOURCE_UID.to_string(), uid);
        }
        let mut req = SetSecretMetadataRequest::builder();
        req.custom_metadata(custom);
        if let Some(n) = want_meta.max_versions {
            req.max_versions(n);
        }
        if let Some(c) = want_meta.cas_required {
            req.cas_required(c);
        }
        if let Some(d) = want_meta.delete_version_after {
            req.delete_version_after(format!("{d}s"));
        }
        vaultrs::kv2::set_metadata(&*self.vault(), &p.mount, &p.path, Some(&mut req))
            .await
            .map_err(|e| self.error(&self.kv_action("write the metadata of", p), e))?;
        let latest = match &meta {
            Some(m) if latest_readable(m) => Some(
                vaultrs::kv2::read::<HashMap<String, Value>>(&*self.vault(), &p.mount, &p.path)
                    .await
                    .map_err(|e| self.error(&self.kv_action("read", p), e))?,
            ),
            _ => None,
        };
        if latest.is_none_or(|have| data_difference(&data, &have).is_some()) {
            vaultrs::kv2::set_with_options(
                &*self.vault(),
                &p.mount,
                &p.path,
                &data,
                SetSecretRequestOptions { cas },
            )
            .await
            .map_err(|e| self.error(&self.kv_action("write", p), e))?;
        }
        Ok(self.kv_connection(p))
    }

    fn kv_connection(&self, p: &KVSecretParameters) -> ConnectionDetails {
        let mut c = ConnectionDetails::new();
        c.insert("address", self.address());
        c.insert("mount", p.mount.as_str());
        c.insert("path", p.path.as_str());
        c
    }
}

#[async_trait]
impl ExternalClient<KVSecret> for VaultClient {
    // A KV secret is its mount and path; writing it again only adds a version with the
    // same data.
    fn create_identity(&self) -> CreateIdentity {
        CreateIdentity::Deterministic
    }

    async fn observe(&self, mr: &mut KVSecret) -> Result<Observation, ProviderError> {
        let p = mr.spec.for_provider.clone();
        if deleting(mr) {
            if check(&p).is_err() {
                return Ok(Observation::absent());
            }
            let meta = self.kv_metadata(&p).await?;
            let exists = match p.deletion {
                KVDeletion::AllVersions => meta.is_some(),
                // Metadata without any version (a create cut short after the mark) is
                // deleted whole; otherwise the older versions stay.
                KVDeletion::LatestVersion => meta
                    .as_ref()
                    .is_some_and(|m| m.current_version == 0 || latest_readable(m)),
            };
            let marked = meta.as_ref().and_then(kv_marked_uid);
            return Ok(Observation {
                exists,
                ..Observation::default()
            }
            .with_ownership(ownership::of(marked.as_deref(), mr.uid().as_deref())));
        }
        let want_meta = check(&p)?;
        let Some(meta) = self.kv_metadata(&p).await? else {
            return Ok(Observation::absent());
        };
        let have_meta = have_metadata(&meta);
        mr.status.get_or_insert_with(Default::default).at_provider = Some(KVSecretObservation {
            current_version: Some(i64::try_from(meta.current_version).unwrap_or(i64::MAX)),
            managed_resource_uid: have_meta.custom.get(MANAGED_RESOURCE_UID).cloned(),
        });
        let owner = ownership::of(kv_marked_uid(&meta).as_deref(), mr.uid().as_deref());
        if !latest_readable(&meta) {
            if owner == Ownership::Ours {
                // This object's secret without a readable latest version (deleted or
                // destroyed, or none written yet after the mark): a new one is written.
                return Ok(Observation::absent());
            }
            // Someone else's, or unmarked: it exists as its metadata, and the reconciler
            // decides from the mark whether it may be written (adopted, repaired) or not.
            let message = format!(
                "KV secret {}/{} has no readable latest version (deleted, destroyed or never \
                 written)",
                p.mount, p.path
            );
            return Ok(Observation {
                exists: true,
                up_to_date: false,
                available: false,
                diff: Some(message.clone()),
                unavailable_message: Some(message),
                ..Observation::default()
            }
            .with_ownership(owner));
        }
        let data = self.kv_source(&p).await?;
        let have: HashMap<String, Value> = vaultrs::kv2::read(&*self.vault(), &p.mount, &p.path)
            .await
            .map_err(|e| self.error(&self.kv_action("read", &p), e))?;
        let diffs: Vec<String> = [
            data_difference(&data, &have),
            metadata_difference(&want_meta, &have_meta),
        ]
        .into_iter()
        .flatten()
        .collect();
        let observation = if diffs.is_empty() {
            Observation::up_to_date()
        } else {
            Observation::drifted(diffs.join("; "))
        };
        Ok(observation
            .with_connection(self.kv_connection(&p))
            .with_ownership(owner))
    }

    async fn create(&self, mr: &mut KVSecret) -> Result<ConnectionDetails, ProviderError> {
        self.kv_write(mr).await
    }

    async fn update(&self, mr: &mut KVSecret) -> Result<ConnectionDetails, ProviderError> {
        self.kv_write(mr).await
    }

    fn marks_ownership(&self) -> bool {
        true
    }

    async fn mark(&self, mr: &KVSecret) -> Result<(), ProviderError> {
        let p = &mr.spec.for_provider;
        check(p)?;
        let meta = self.kv_metadata(p).await?;
        let mut custom: HashMap<String, String> =
            meta.and_then(|m| m.custom_metadata).unwrap_or_default();
        custom.insert(
            MANAGED_RESOURCE_UID.to_string(),
            mr.uid().unwrap_or_default(),
        );
        let mut req = SetSecretMetadataRequest::builder();
        req.custom_metadata(custom);
        vaultrs::kv2::set_metadata(&*self.vault(), &p.mount, &p.path, Some(&mut req))
            .await
            .map_err(|e| self.error(&self.kv_action("mark", p), e))
    }

    async fn delete(&self, mr: &KVSecret) -> Result<(), ProviderError> {
        let p = &mr.spec.for_provider;
        check(p)?;
        let whole = match p.deletion {
            KVDeletion::AllVersions => true,
            // Metadata without any version has no history to keep.
            KVDeletion::LatestVersion => self
                .kv_metadata(p)
                .await?
                .is_some_and(|m| m.current_version == 0),
        };
        let result = if whole {
            vaultrs::kv2::delete_metadata(&*self.vault(), &p.mount, &p.path).await
        } else {
            vaultrs::kv2::delete_latest(&*self.vault(), &p.mount, &p.path).await
        };
        match result.map_err(CallError::from) {
            Ok(()) | Err(CallError::Api { code: 404, .. }) => Ok(()),
            Err(other) => Err(self.error(&self.kv_action("delete", p), other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_data_difference_names_keys_and_never_values() {
        let want = map(&[("user", "app"), ("password", "s3cret-value")]);
        let same: HashMap<String, Value> = [
            ("user".to_string(), Value::from("app")),
            ("password".to_string(), Value::from("s3cret-value")),
        ]
        .into();
        assert_eq!(data_difference(&want, &same), None);
        let other: HashMap<String, Value> = [
            ("user".to_string(), Value::from("app")),
            ("password".to_string(), Value::from("changed-by-hand")),
            ("extra".to_string(), Value::from("x")),
        ]
        .into();
        let diff = data_difference(&want, &other).unwrap();
        assert_eq!(
            diff,
            "the latest version's data differs from the Secret in keys [extra, password]"
        );
        assert!(!diff.contains("s3cret") && !diff.contains("changed-by-hand"));
        let not_text: HashMap<String, Value> = [
            ("user".to_string(), Value::from(1)),
            ("password".to_string(), Value::from("s3cret-value")),
        ]
        .into();
        assert!(
            data_difference(&want, &not_text).is_some(),
            "a number is not the text"
        );
    }

    #[test]
    fn only_the_metadata_the_spec_sets_is_compared() {
        let have = HaveMetadata {
            custom: map(&[("owner", "team-a"), (MANAGED_RESOURCE_UID, "u1")]),
            max_versions: 0,
            cas_required: false,
            delete_version_after: 0,
        };
        assert_eq!(metadata_difference(&WantMetadata::default(), &have), None);
        let want = WantMetadata {
            custom: map(&[("owner", "team-b")]),
            max_versions: Some(5),
            cas_required: Some(false),
            delete_version_after: Some(0),
        };
        assert_eq!(
            metadata_difference(&want, &have).as_deref(),
            Some("custom metadata owner differs; max versions is 0")
        );
    }
}
