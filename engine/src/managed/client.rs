//! The contract between the managed reconciler and a provider (see `docs/architecture.md`).

use std::sync::Arc;

use async_trait::async_trait;

use crate::api::common::{ConnectionDetails, ResourceSpec, ResourceStatus};

/// What `observe` found out about the external resource.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// The external resource exists.
    pub exists: bool,
    /// The external resource matches the spec; `false` makes the reconciler call `update`.
    pub up_to_date: bool,
    /// `observe` filled unset spec fields from the external resource (only honoured when
    /// the management policies allow LateInitialize).
    pub late_initialized: bool,
    /// The external resource is usable (for example an RDS instance past `creating`).
    /// Drives the Ready condition: `Available` when true, `Unavailable` (or `Creating`, see
    /// [`Observation::creating`]) when false.
    pub available: bool,
    /// Why the resource is not usable yet, in words (for example the external system's own
    /// status, "AWS status: creating"): the Ready condition's message while `available` is
    /// false.
    pub unavailable_message: Option<String>,
    /// The resource is not usable because it is still being made (an RDS instance that is
    /// `creating`, or `backing-up` right after its create): `Ready=False` then has the
    /// reason `Creating` instead of `Unavailable`, which is for a resource that was usable
    /// and is not now (`modifying`, `rebooting`, `stopped`).
    pub creating: bool,
    /// Connection details that can be read back from the external system (never the
    /// password of a role, which only `create`/`update` know).
    pub connection: ConnectionDetails,
    /// What differs between the spec and the external resource, in words, for the
    /// Synced condition's message and the update event.
    pub diff: Option<String>,
    /// Who the existing external resource belongs to. Decides whether the reconciler may
    /// change or delete it (see [`Ownership`]); ignored when the resource does not exist.
    pub ownership: Ownership,
}

/// Who an existing external resource belongs to, as `observe` reads it from the mark that
/// [`ExternalClient::mark`] (or `create`) leaves on what Tessera manages.
///
/// The default is [`Ownership::Unmarked`], the safe answer: the reconciler then changes or
/// deletes the resource only when this managed resource's own records say it created it,
/// or when `spec.adoptExisting` asks to take it over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Ownership {
    /// The resource exists and carries no Tessera mark (made by someone else, by an earlier
    /// Tessera version, or by a create that was interrupted before its mark).
    #[default]
    Unmarked,
    /// The resource carries this managed resource's mark (its `metadata.uid`).
    Ours,
    /// The resource carries the mark of another managed resource: the uid it names.
    Other(String),
    /// The resource must never be taken over, even with `spec.adoptExisting` (a superuser,
    /// the ProviderConfig's own login, a system database): why, in words. Observe-only
    /// managed resources may still read it.
    Protected(String),
    /// The kind has no identity of its own to take over (a grant, which relates objects
    /// that are guarded themselves): the reconciler manages it as before this check.
    NotTracked,
}

impl Observation {
    /// The external resource does not exist.
    pub fn absent() -> Self {
        Observation::default()
    }

    /// The external resource exists, is usable and matches the spec.
    pub fn up_to_date() -> Self {
        Observation {
            exists: true,
            up_to_date: true,
            available: true,
            ..Observation::default()
        }
    }

    /// The external resource exists and is usable, but differs from the spec as `diff` says.
    pub fn drifted(diff: impl Into<String>) -> Self {
        Observation {
            exists: true,
            up_to_date: false,
            available: true,
            diff: Some(diff.into()),
            ..Observation::default()
        }
    }

    /// Sets who the external resource belongs to.
    pub fn with_ownership(mut self, ownership: Ownership) -> Self {
        self.ownership = ownership;
        self
    }

    /// Adds connection details.
    pub fn with_connection(mut self, connection: ConnectionDetails) -> Self {
        self.connection = connection;
        self
    }
}

/// Why a provider call failed. The class decides what the reconciler does next.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// A temporary failure (network, server restarting, a dependency not yet gone):
    /// retried with exponential backoff.
    #[error("{0}")]
    Transient(String),
    /// The external system did not answer (the call timed out, or the connection was lost
    /// after the request was sent): the call may or may not have taken effect. Retried with
    /// backoff like a transient failure; a create that ends this way is not recorded as
    /// failed, so the next pass looks for what it may have made (see
    /// [`crate::managed::machine::drive`]) instead of taking it for someone else's.
    #[error("{0}")]
    Unanswered(String),
    /// The spec cannot be satisfied as written (bad identifier, unknown privilege,
    /// change of an immutable field): reported, then retried only after a spec change.
    #[error("{0}")]
    InvalidSpec(String),
    /// The ProviderConfig or its credentials are missing or wrong: the message names the
    /// ProviderConfig and what is wrong; retried with backoff (a fixed Secret is picked up
    /// by the next try).
    #[error("{0}")]
    Config(String),
}

impl ProviderError {
    /// A short PascalCase name of the class, for event reasons and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            ProviderError::Transient(_) | ProviderError::Unanswered(_) => "TransientError",
            ProviderError::InvalidSpec(_) => "InvalidSpec",
            ProviderError::Config(_) => "ProviderConfigError",
        }
    }
}

/// Who decides the identity of the external resource that `create` makes. It decides
/// what the reconciler does with a create that was started (`external-create-pending`
/// persisted) but whose result was never recorded, when observe finds no resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateIdentity {
    /// The external system assigns the identity at create time (an ID in the create's
    /// answer), so the reconciler cannot look for what an interrupted create made, and
    /// creating again could make a second resource: the reconciler stops with a Synced
    /// message until a person has checked the external system. The safe default.
    AssignedByExternalSystem,
    /// The identity is the external name, known before the create and persisted with the
    /// pending annotation, and the external system refuses a second resource of that name.
    /// A second resource is impossible, so the reconciler creates again; a create that
    /// finds the resource already there is answered as `create` documents (adopt or fail),
    /// and the next observe finds it.
    Deterministic,
}

/// One managed-resource kind's operations on the external system.
///
/// The reconciler, not the client, owns finalizers, annotations, conditions, events,
/// connection secrets, polling and backoff. A client only talks to the external system.
#[async_trait]
pub trait ExternalClient<M>: Send + Sync {
    /// Who decides the identity of what `create` makes (see [`CreateIdentity`]). Declare
    /// [`CreateIdentity::Deterministic`] only when the external name alone identifies the
    /// resource and the external system enforces its uniqueness.
    fn create_identity(&self) -> CreateIdentity {
        CreateIdentity::AssignedByExternalSystem
    }
    /// Whether this kind marks the external resources it manages (see [`ExternalClient::mark`]).
    /// The default, `false`, is for external systems that cannot store a mark: the
    /// reconciler then recognises a resource as this managed resource's own only by its
    /// create records, never adopts one silently, and never calls `mark`.
    fn marks_ownership(&self) -> bool {
        false
    }
    /// Marks the existing external resource as this managed resource's own (its
    /// `metadata.uid` in a comment, tag or label), so that observe reports
    /// [`Ownership::Ours`]. Called when `spec.adoptExisting` takes a resource over, and when
    /// this managed resource created the resource but the mark is missing (a crash between
    /// create and mark, or a resource made before marks existed). Only called when
    /// [`ExternalClient::marks_ownership`] is true; must be idempotent.
    async fn mark(&self, _mr: &M) -> Result<(), ProviderError> {
        Err(ProviderError::InvalidSpec(
            "this kind of external resource cannot be marked as managed by Tessera".into(),
        ))
    }
    /// The Kubernetes type of this kind's connection Secrets, e.g.
    /// `kubernetes.io/dockerconfigjson` for credentials meant for `imagePullSecrets`;
    /// `None` (the default) is the engine's own type. The Secret is written only once the
    /// connection details hold the keys the type requires.
    fn connection_secret_type(&self) -> Option<&'static str> {
        None
    }
    /// Reads the external resource. Never changes it. May fill `status.atProvider` and,
    /// for LateInitialize, unset fields of `spec.forProvider`. When the resource exists,
    /// reports who it belongs to in [`Observation::ownership`] (also while the managed
    /// resource is being deleted).
    async fn observe(&self, mr: &mut M) -> Result<Observation, ProviderError>;
    /// Called only when observe said it does not exist. Must be idempotent. A kind that
    /// marks ownership marks what it creates in the same step when the external system
    /// allows it (one transaction, a tag given to the create call). A create that finds
    /// the resource already there (made meanwhile by someone else) must not take it over:
    /// it fails, and the next observe reports the resource's ownership.
    async fn create(&self, mr: &mut M) -> Result<ConnectionDetails, ProviderError>;
    /// Called when observe said it exists but is not up to date, and the resource is this
    /// managed resource's own (or was just adopted).
    async fn update(&self, mr: &mut M) -> Result<ConnectionDetails, ProviderError>;
    /// Called when the managed resource is being deleted, deletionPolicy is Delete, and the
    /// resource is this managed resource's own.
    async fn delete(&self, mr: &M) -> Result<(), ProviderError>;
}

/// Produces the [`ExternalClient`] for one managed resource: resolves its ProviderConfig
/// and credentials and connects, reusing a cached connection per ProviderConfig. A
/// provider rarely writes one: [`crate::managed::connections::CachedConnector`] is the
/// connector of every kind of a provider that implements
/// [`crate::managed::connections::Connect`].
#[async_trait]
pub trait Connector<M>: Send + Sync + 'static {
    /// Connects for `mr`. Errors about the ProviderConfig or its Secret are
    /// [`ProviderError::Config`] and name the ProviderConfig.
    async fn connect(
        &self,
        client: &kube::Client,
        mr: &M,
    ) -> Result<Arc<dyn ExternalClient<M>>, ProviderError>;

    /// The external system, as messages name it (for example when a call times out).
    fn external_system(&self) -> &str {
        "the external system"
    }
}

/// A managed-resource kind: a cluster-scoped custom resource whose spec flattens
/// [`ResourceSpec`] next to `forProvider` and whose status flattens [`ResourceStatus`]
/// next to `atProvider`. Implement it with [`crate::impl_managed!`].
pub trait Managed:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
    + Clone
    + std::fmt::Debug
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The common spec fields.
    fn resource_spec(&self) -> &ResourceSpec;
    /// The common status fields, if there is a status.
    fn resource_status(&self) -> Option<&ResourceStatus>;
    /// The common status fields, creating an empty status when there is none.
    fn resource_status_mut(&mut self) -> &mut ResourceStatus;
}

/// Implements [`Managed`] for a kind whose spec has a flattened `resource: ResourceSpec`
/// field and whose `status: Option<S>` (with `S: Default`) has a flattened
/// `resource: ResourceStatus` field.
#[macro_export]
macro_rules! impl_managed {
    ($kind:ty) => {
        impl $crate::managed::Managed for $kind {
            fn resource_spec(&self) -> &$crate::api::common::ResourceSpec {
                &self.spec.resource
            }
            fn resource_status(&self) -> Option<&$crate::api::common::ResourceStatus> {
                self.status.as_ref().map(|s| &s.resource)
            }
            fn resource_status_mut(&mut self) -> &mut $crate::api::common::ResourceStatus {
                &mut self.status.get_or_insert_with(Default::default).resource
            }
        }
    };
}
