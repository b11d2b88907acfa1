//! Policies: `sys/policy/<name>` read, written and deleted through vaultrs; compared by
//! meaning (see [`hcl`]).

mod hcl;

use async_trait::async_trait;
use kube::ResourceExt;
use tessera_engine::api::common::ConnectionDetails;
use tessera_engine::managed::client::Ownership;
use tessera_engine::managed::machine::external_name;
use tessera_engine::managed::{CreateIdentity, ExternalClient, Observation, ProviderError};

use crate::api::{Policy, PolicyObservation};
use crate::connector::{VaultClient, deleting};
use crate::error::CallError;
use crate::ownership;

/// Policies Vault keeps for itself: root cannot be changed, default is attached to
/// every token and changing it changes every token's rights.
const RESERVED: [&str; 2] = ["root", "default"];

fn check_name(name: &str) -> Result<(), ProviderError> {
    if RESERVED.contains(&name) {
        return Err(ProviderError::InvalidSpec(format!(
            "policy name {name:?} is reserved: Vault's root and default policies cannot be \
             managed; choose another name (metadata.name or the tessera.dev/external-name \
             annotation)"
        )));
    }
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
        return Err(ProviderError::InvalidSpec(format!(
            "policy name {name:?} is not a Vault policy name (empty, or with a slash or a \
             control character)"
        )));
    }
    Ok(())
}

/// Who the policy with `text` belongs to: its mark line names the managed resource.
fn policy_ownership(text: Option<&str>, mr: &Policy) -> Ownership {
    ownership::of(
        text.and_then(hcl::marked_uid).as_deref(),
        mr.uid().as_deref(),
    )
}

/// The HCL the spec asks for, without the mark; `None` when the spec leaves the rules
/// unmanaged.
fn desired(mr: &Policy) -> Result<Option<String>, ProviderError> {
    let p = &mr.spec.for_provider;
    match (&p.policy, &p.rules) {
        (Some(_), Some(_)) => Err(ProviderError::InvalidSpec(
            "set either forProvider.policy or forProvider.rules, not both".to_string(),
        )),
        (Some(text), None) if text.trim().is_empty() => Err(ProviderError::InvalidSpec(
            "forProvider.policy is empty".to_string(),
        )),
        (Some(text), None) => Ok(Some(hcl::strip_mark(text).to_string())),
        (None, Some(rules)) => hcl::render(rules)
            .map(Some)
            .map_err(ProviderError::InvalidSpec),
        (None, None) => Ok(None),
    }
}

impl VaultClient {
    /// The policy's text in Vault, `None` when there is no such policy. (A raw request:
    /// vaultrs logs every 404, the normal answer for a policy not yet created, as an error.)
    async fn read_policy(&self, name: &str) -> Result<Option<String>, ProviderError> {
        let answer = self
            .raw(reqwest::Method::GET, &format!("sys/policy/{name}"), None)
            .await
            .map_err(|e| self.error(&format!("read policy {name:?}"), e))?;
        Ok(answer.map(|v| {
            v["data"]["rules"]
                .as_str()
                .or_else(|| v["rules"].as_str())
                .unwrap_or_default()
                .to_string()
        }))
    }

    async fn write_policy(&self, mr: &Policy) -> Result<ConnectionDetails, ProviderError> {
        let name = external_name(mr);
        check_name(&name)?;
        let text = desired(mr)?.ok_or_else(|| {
            ProviderError::InvalidSpec(
                "set forProvider.policy (HCL) or forProvider.rules to write the policy".to_string(),
            )
        })?;
        let text = hcl::with_mark(&text, &mr.uid().unwrap_or_default());
        vaultrs::sys::policy::set(&*self.vault(), &name, &text)
            .await
            .map_err(|e| self.error(&format!("write policy {name:?}"), e))?;
        Ok(ConnectionDetails::new())
    }
}

#[async_trait]
impl ExternalClient<Policy> for VaultClient {
    // A policy is its name, unique per Vault (namespace): a lost create is made again,
    // and writing it again only writes the same text.
    fn create_identity(&self) -> CreateIdentity {
        CreateIdentity::Deterministic
    }

    async fn observe(&self, mr: &mut Policy) -> Result<Observation, ProviderError> {
        let name = external_name(mr);
        if deleting(mr) {
            // Never let the deletion of a managed resource named root or default reach
            // Vault's own policies; otherwise only existence matters now.
            if check_name(&name).is_err() {
                return Ok(Observation::absent());
            }
            let have = self.read_policy(&name).await?;
            return Ok(Observation {
                exists: have.is_some(),
                ..Observation::default()
            }
            .with_ownership(policy_ownership(have.as_deref(), mr)));
        }
        check_name(&name)?;
        let want = desired(mr)?;
        let Some(have) = self.read_policy(&name).await? else {
            return Ok(Observation::absent());
        };
        let paths = hcl::meaning(hcl::strip_mark(&have))
            .map(|m| m.into_keys().collect())
            .unwrap_or_default();
        mr.status.get_or_insert_with(Default::default).at_provider = Some(PolicyObservation {
            paths,
            managed_resource_uid: hcl::marked_uid(&have),
        });
        let ownership = policy_ownership(Some(&have), mr);
        Ok(match want.and_then(|w| hcl::difference(&w, &have)) {
            None => Observation::up_to_date(),
            Some(diff) => Observation::drifted(diff),
        }
        .with_ownership(ownership))
    }

    async fn create(&self, mr: &mut Policy) -> Result<ConnectionDetails, ProviderError> {
        // Writing a policy replaces any policy of that name: one made meanwhile by someone
        // else is not taken over (the next observe reports whose it is).
        let name = external_name(mr);
        if self.read_policy(&name).await?.is_some() {
            return Err(ProviderError::Transient(format!(
                "policy {name:?} appeared in Vault before this create; not taking it over"
            )));
        }
        self.write_policy(mr).await
    }

    fn marks_ownership(&self) -> bool {
        true
    }

    async fn mark(&self, mr: &Policy) -> Result<(), ProviderError> {
        let name = external_name(mr);
        check_name(&name)?;
        let Some(text) = self.read_policy(&name).await? else {
            return Err(ProviderError::Transient(format!(
                "cannot mark policy {name:?}: it is gone"
            )));
        };
        let marked = hcl::with_mark(&text, &mr.uid().unwrap_or_default());
        vaultrs::sys::policy::set(&*self.vault(), &name, &marked)
            .await
            .map_err(|e| self.error(&format!("mark policy {name:?}"), e))
    }

    async fn update(&self, mr: &mut Policy) -> Result<ConnectionDetails, ProviderError> {
        self.write_policy(mr).await
    }

    async fn delete(&self, mr: &Policy) -> Result<(), ProviderError> {
        let name = external_name(mr);
        check_name(&name)?;
        match vaultrs::sys::policy::delete(&*self.vault(), &name).await {
            Ok(()) => Ok(()),
            Err(e) => match CallError::from(e) {
                CallError::Api { code: 404, .. } => Ok(()),
                other => Err(self.error(&format!("delete policy {name:?}"), other)),
            },
        }
    }
}
