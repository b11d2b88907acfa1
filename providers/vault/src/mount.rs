//! Mounts (secrets engines) and AuthBackends (auth methods): the same operations on
//! `sys/mounts` and `sys/auth` (see [`crate::mounts`]).

use async_trait::async_trait;
use kube::ResourceExt;
use tessera_engine::api::common::ConnectionDetails;
use tessera_engine::managed::machine::external_name;
use tessera_engine::managed::{CreateIdentity, ExternalClient, Observation, ProviderError};

use crate::ownership;

use crate::api::{AuthBackend, Mount};
use crate::connector::{VaultClient, deleting};
use crate::mounts::{Desired, MountKind, check_path, difference};

/// What the two kinds have in common, so that one implementation serves both.
trait MountLike: kube::Resource + Send + Sync {
    const KIND: MountKind;
    fn desired(&self) -> Result<Desired, ProviderError>;
    fn record(&mut self, observed: crate::api::MountObservation);
}

impl MountLike for Mount {
    const KIND: MountKind = MountKind::Secrets;
    fn desired(&self) -> Result<Desired, ProviderError> {
        let p = &self.spec.for_provider;
        Desired::new(
            &p.type_,
            &p.description,
            &p.default_lease_ttl,
            &p.max_lease_ttl,
            &p.options,
        )
    }
    fn record(&mut self, observed: crate::api::MountObservation) {
        self.status.get_or_insert_with(Default::default).at_provider = Some(observed);
    }
}

impl MountLike for AuthBackend {
    const KIND: MountKind = MountKind::Auth;
    fn desired(&self) -> Result<Desired, ProviderError> {
        let p = &self.spec.for_provider;
        Desired::new(
            &p.type_,
            &p.description,
            &p.default_lease_ttl,
            &p.max_lease_ttl,
            &Default::default(),
        )
    }
    fn record(&mut self, observed: crate::api::MountObservation) {
        self.status.get_or_insert_with(Default::default).at_provider = Some(observed);
    }
}

fn path_of<M: MountLike>(mr: &M) -> Result<String, ProviderError> {
    let path = external_name(mr).trim_end_matches('/').to_string();
    check_path(M::KIND, &path)?;
    Ok(path)
}

async fn observe<M: MountLike>(c: &VaultClient, mr: &mut M) -> Result<Observation, ProviderError> {
    if deleting(mr) {
        let Ok(path) = path_of(mr) else {
            return Ok(Observation::absent());
        };
        let have = c.read_mount(M::KIND, &path).await?;
        let marked = have.as_ref().and_then(|h| h.marked_uid());
        return Ok(Observation {
            exists: have.is_some(),
            ..Observation::default()
        }
        .with_ownership(ownership::of(marked.as_deref(), mr.uid().as_deref())));
    }
    let path = path_of(mr)?;
    let want = mr.desired()?;
    let Some(have) = c.read_mount(M::KIND, &path).await? else {
        return Ok(Observation::absent());
    };
    mr.record(have.observation());
    let owner = ownership::of(have.marked_uid().as_deref(), mr.uid().as_deref());
    Ok(match difference(M::KIND, &path, &want, &have)? {
        None => Observation::up_to_date(),
        Some(diff) => Observation::drifted(diff),
    }
    .with_ownership(owner))
}

async fn create<M: MountLike>(c: &VaultClient, mr: &M) -> Result<ConnectionDetails, ProviderError> {
    let path = path_of(mr)?;
    let want = mr.desired()?;
    // Vault refuses a second mount at a path ("path is already in use"): one made
    // meanwhile is never taken over, and the next observe reports whose it is.
    c.enable_mount(M::KIND, &path, &want, &mr.uid().unwrap_or_default())
        .await?;
    Ok(ConnectionDetails::new())
}

async fn update<M: MountLike>(c: &VaultClient, mr: &M) -> Result<ConnectionDetails, ProviderError> {
    let path = path_of(mr)?;
    let want = mr.desired()?;
    c.tune_mount(M::KIND, &path, &want, &mr.uid().unwrap_or_default())
        .await?;
    Ok(ConnectionDetails::new())
}

async fn mark<M: MountLike>(c: &VaultClient, mr: &M) -> Result<(), ProviderError> {
    let path = path_of(mr)?;
    c.mark_mount(M::KIND, &path, &mr.uid().unwrap_or_default())
        .await
}

async fn delete<M: MountLike>(c: &VaultClient, mr: &M) -> Result<(), ProviderError> {
    let path = path_of(mr)?;
    c.disable_mount(M::KIND, &path).await
}

#[async_trait]
impl ExternalClient<Mount> for VaultClient {
    // A mount is its path, unique per Vault (namespace).
    fn create_identity(&self) -> CreateIdentity {
        CreateIdentity::Deterministic
    }
    async fn observe(&self, mr: &mut Mount) -> Result<Observation, ProviderError> {
        observe(self, mr).await
    }
    async fn create(&self, mr: &mut Mount) -> Result<ConnectionDetails, ProviderError> {
        create(self, mr).await
    }
    async fn update(&self, mr: &mut Mount) -> Result<ConnectionDetails, ProviderError> {
        update(self, mr).await
    }
    async fn delete(&self, mr: &Mount) -> Result<(), ProviderError> {
        delete(self, mr).await
    }
    fn marks_ownership(&self) -> bool {
        true
    }
    async fn mark(&self, mr: &Mount) -> Result<(), ProviderError> {
        mark(self, mr).await
    }
}

#[async_trait]
impl ExternalClient<AuthBackend> for VaultClient {
    // An auth method is its path, unique per Vault (namespace).
    fn create_identity(&self) -> CreateIdentity {
        CreateIdentity::Deterministic
    }
    async fn observe(&self, mr: &mut AuthBackend) -> Result<Observation, ProviderError> {
        observe(self, mr).await
    }
    async fn create(&self, mr: &mut AuthBackend) -> Result<ConnectionDetails, ProviderError> {
        create(self, mr).await
    }
    async fn update(&self, mr: &mut AuthBackend) -> Result<ConnectionDetails, ProviderError> {
        update(self, mr).await
    }
    async fn delete(&self, mr: &AuthBackend) -> Result<(), ProviderError> {
        delete(self, mr).await
    }
    fn marks_ownership(&self) -> bool {
        true
    }
    async fn mark(&self, mr: &AuthBackend) -> Result<(), ProviderError> {
        mark(self, mr).await
    }
}
