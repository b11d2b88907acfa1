//! The in-memory "external system" of NopResources and its [`ExternalClient`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tessera_engine::api::common::ConnectionDetails;
use tessera_engine::managed::machine::external_name;
use tessera_engine::managed::{
    CreateIdentity, ExternalClient, Observation, Ownership, ProviderError,
};

use crate::api::{MAX_DELAY_MS, NopResource, NopResourceParameters};

/// The most connection details one NopResource may publish.
pub const MAX_CONNECTION_DETAILS: usize = 64;

/// The nop resources of one controller process, by external name: who made each (the
/// managed resource's uid, the mark) and when.
#[derive(Default)]
pub struct NopSystem {
    resources: Mutex<HashMap<String, Made>>,
}

#[derive(Clone)]
struct Made {
    owner: String,
    at: Instant,
}

impl NopSystem {
    /// How many nop resources exist.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no nop resource exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Made>> {
        // A panic while holding the lock leaves the map consistent (single inserts and
        // removes), so a poisoned lock is used as it is.
        self.resources.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn uid(mr: &NopResource) -> String {
    mr.metadata.uid.clone().unwrap_or_default()
}

fn params(mr: &NopResource) -> Result<&NopResourceParameters, ProviderError> {
    let p = &mr.spec.for_provider;
    for (field, v) in [
        ("observeDelayMs", p.observe_delay_ms),
        ("createDelayMs", p.create_delay_ms),
        ("readyAfterMs", p.ready_after_ms),
    ] {
        if v > MAX_DELAY_MS {
            return Err(ProviderError::InvalidSpec(format!(
                "spec.forProvider.{field} is {v}, more than the allowed {MAX_DELAY_MS}"
            )));
        }
    }
    if p.connection_details.len() > MAX_CONNECTION_DETAILS {
        return Err(ProviderError::InvalidSpec(format!(
            "spec.forProvider.connectionDetails has {} entries, more than the allowed {MAX_CONNECTION_DETAILS}",
            p.connection_details.len()
        )));
    }
    Ok(p)
}

fn details(p: &NopResourceParameters) -> ConnectionDetails {
    let mut d = ConnectionDetails::new();
    for (k, v) in &p.connection_details {
        d.insert(k.clone(), v.as_bytes().to_vec());
    }
    d
}

async fn take(ms: u32) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms.into())).await;
    }
}

fn log_call(call: &'static str, name: &str) {
    tracing::debug!(target: "tessera_provider_nop::calls", call, name, "nop call");
}

#[async_trait]
impl ExternalClient<NopResource> for NopSystem {
    // The external name is the identity and the map holds one entry per name.
    fn create_identity(&self) -> CreateIdentity {
        CreateIdentity::Deterministic
    }

    fn marks_ownership(&self) -> bool {
        true
    }

    async fn mark(&self, mr: &NopResource) -> Result<(), ProviderError> {
        log_call("mark", &external_name(mr));
        if let Some(made) = self.lock().get_mut(&external_name(mr)) {
            made.owner = uid(mr);
        }
        Ok(())
    }

    async fn observe(&self, mr: &mut NopResource) -> Result<Observation, ProviderError> {
        let name = external_name(mr);
        log_call("observe", &name);
        let p = params(mr)?;
        take(p.observe_delay_ms).await;
        let Some(made) = self.lock().get(&name).cloned() else {
            return Ok(Observation::absent());
        };
        let ownership = if made.owner == uid(mr) {
            Ownership::Ours
        } else if made.owner.is_empty() {
            Ownership::Unmarked
        } else {
            Ownership::Other(made.owner)
        };
        let mut observation = Observation::up_to_date()
            .with_ownership(ownership)
            .with_connection(details(p));
        let ready_at = made.at + Duration::from_millis(p.ready_after_ms.into());
        if let Some(message) = &p.unavailable_message {
            observation.available = false;
            observation.unavailable_message = Some(message.clone());
        } else if Instant::now() < ready_at {
            observation.available = false;
            observation.unavailable_message = Some(format!(
                "Ready {} ms after the create (spec.forProvider.readyAfterMs)",
                p.ready_after_ms
            ));
        }
        Ok(observation)
    }

    async fn create(&self, mr: &mut NopResource) -> Result<ConnectionDetails, ProviderError> {
        let name = external_name(mr);
        log_call("create", &name);
        let p = params(mr)?;
        take(p.create_delay_ms).await;
        let mut resources = self.lock();
        if resources.contains_key(&name) {
            return Err(ProviderError::Transient(format!(
                "a nop resource named {name:?} already exists"
            )));
        }
        resources.insert(
            name,
            Made {
                owner: uid(mr),
                at: Instant::now(),
            },
        );
        Ok(details(p))
    }

    async fn update(&self, mr: &mut NopResource) -> Result<ConnectionDetails, ProviderError> {
        log_call("update", &external_name(mr));
        Ok(details(params(mr)?))
    }

    async fn delete(&self, mr: &NopResource) -> Result<(), ProviderError> {
        let name = external_name(mr);
        log_call("delete", &name);
        self.lock().remove(&name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nop(name: &str, uid: &str, yaml: &str) -> NopResource {
        let mut mr: NopResource = serde_yaml::from_str(&format!(
            "apiVersion: nop.tessera.dev/v1alpha1\nkind: NopResource\n\
             metadata: {{name: {name}, uid: {uid}}}\nspec: {{forProvider: {yaml}}}"
        ))
        .unwrap();
        mr.metadata.uid = Some(uid.into());
        mr
    }

    #[tokio::test]
    async fn a_created_resource_is_observed_as_ours_ready_and_with_its_connection_details() {
        let system = NopSystem::default();
        let mut mr = nop("a", "u1", "{connectionDetails: {host: h}}");
        assert!(!system.observe(&mut mr).await.unwrap().exists);
        let created = system.create(&mut mr).await.unwrap();
        assert_eq!(created.get_str("host"), Some("h"));
        let o = system.observe(&mut mr).await.unwrap();
        assert!(o.exists && o.up_to_date && o.available);
        assert_eq!(o.ownership, Ownership::Ours);
        assert_eq!(o.connection.get_str("host"), Some("h"));
        system.delete(&mr).await.unwrap();
        assert!(!system.observe(&mut mr).await.unwrap().exists);
    }

    #[tokio::test]
    async fn a_second_create_of_the_same_name_fails_and_another_uid_sees_it_as_not_its_own() {
        let system = NopSystem::default();
        let mut first = nop("a", "u1", "{}");
        system.create(&mut first).await.unwrap();
        let mut second = nop("a", "u2", "{}");
        assert!(system.create(&mut second).await.is_err());
        let o = system.observe(&mut second).await.unwrap();
        assert_eq!(o.ownership, Ownership::Other("u1".into()));
        assert_eq!(system.len(), 1);
    }

    #[tokio::test]
    async fn ready_waits_for_ready_after_ms_and_never_comes_with_an_unavailable_message() {
        let system = NopSystem::default();
        let mut later = nop("later", "u1", "{readyAfterMs: 60000}");
        system.create(&mut later).await.unwrap();
        let o = system.observe(&mut later).await.unwrap();
        assert!(o.exists && !o.available);
        assert!(o.unavailable_message.unwrap().contains("readyAfterMs"));

        let mut never = nop("never", "u2", "{unavailableMessage: Stuck on purpose}");
        system.create(&mut never).await.unwrap();
        let o = system.observe(&mut never).await.unwrap();
        assert!(!o.available);
        assert_eq!(o.unavailable_message.as_deref(), Some("Stuck on purpose"));
    }

    #[tokio::test]
    async fn a_delay_beyond_the_limit_is_an_invalid_spec_naming_the_field() {
        let system = NopSystem::default();
        let mut mr = nop("slow", "u1", "{observeDelayMs: 60001}");
        let err = system.observe(&mut mr).await.unwrap_err();
        assert!(matches!(&err, ProviderError::InvalidSpec(m) if m.contains("observeDelayMs")));
    }
}
