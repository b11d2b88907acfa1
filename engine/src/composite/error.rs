//! Errors of the composite reconciler. Their messages become the composite's `Synced`
//! condition (capitalised there), so they name the resource and what to change, and
//! never contain secret values.

use std::fmt;

use k8s_openapi::api::core::v1::ObjectReference;

use super::plan::NotComposable;
use super::select::SelectError;
use crate::compose::ComposeError;

/// Why reconciling a composite failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The composite's spec does not have the engine's fields in their expected shape.
    #[error("cannot read the composite's spec: {0}")]
    ReadSpec(#[source] serde_json::Error),

    /// The watch cache's copy of the composite could not be read.
    #[error(transparent)]
    Cached(#[from] crate::stored::ExpandError),

    /// No usable Composition or revision.
    #[error(transparent)]
    Select(#[from] SelectError),

    /// Rendering or observing failed (a patch, a transform, a readiness check, ...).
    #[error(transparent)]
    Compose(#[from] ComposeError),

    /// The Composition renders kinds the controller may not compose: nothing of the
    /// composite is applied.
    #[error(
        "{} not in the controller's composable resources ({allowed}); nothing of this \
         composite is applied until the Composition drops {} or the platform team allows {} \
         (tessera controller --composable-resources)",
        Refused(.resources),
        if .resources.len() == 1 { "it" } else { "them" },
        if .resources.len() == 1 { "it" } else { "them" },
    )]
    NotComposable {
        /// The refused resources, in the render's order.
        resources: Vec<NotComposable>,
        /// The controller's allow-list, in the flag's syntax.
        allowed: String,
    },

    /// The kind of a composed resource is not served by the API server.
    #[error("resource '{resource}': {api_version} {kind} is not served by the API server ({})", Msg(.source))]
    Discover {
        /// The `resources[].name`.
        resource: String,
        /// The base's apiVersion.
        api_version: String,
        /// The base's kind.
        kind: String,
        /// What discovery said.
        source: Box<kube::Error>,
    },

    /// The API server refused a composed resource.
    #[error("cannot apply {kind} {name:?} (resource '{resource}'): {}", Msg(.source))]
    Apply {
        /// The `resources[].name`.
        resource: String,
        /// The composed resource's apiVersion.
        api_version: String,
        /// The composed resource's kind.
        kind: String,
        /// The composed resource's name.
        name: String,
        /// What the API server said.
        source: Box<kube::Error>,
    },

    /// Deleting a composed resource failed.
    #[error("cannot delete {kind} {name:?}: {}", Msg(.source))]
    Delete {
        /// The composed resource's kind.
        kind: String,
        /// The composed resource's name.
        name: String,
        /// What the API server said.
        source: Box<kube::Error>,
    },

    /// Listing composed resources failed.
    #[error("cannot list the composed {kind} resources: {}", Msg(.source))]
    List {
        /// The kind listed.
        kind: String,
        /// What the API server said.
        source: Box<kube::Error>,
    },

    /// Reading a composed resource's connection Secret failed.
    #[error("cannot read connection Secret {namespace}/{name} of resource '{resource}': {}", Msg(.source))]
    ReadSecret {
        /// The `resources[].name`.
        resource: String,
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// What the API server said.
        source: Box<kube::Error>,
    },

    /// A composed resource's connection Secret is not controlled by that resource, so
    /// its keys may belong to someone else (a Composition pointing a resource at another
    /// application's Secret) and are not copied.
    #[error(
        "connection Secret {namespace}/{name} of resource '{resource}' is not controlled by that \
         resource; its keys are not copied (point the resource's writeConnectionSecretToRef \
         at a Secret only that resource writes)"
    )]
    SecretNotControlled {
        /// The `resources[].name`.
        resource: String,
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },

    /// Writing the composite's connection Secret failed.
    #[error("cannot write connection Secret {namespace}/{name}: {}", Msg(.source))]
    WriteSecret {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// What the API server said.
        source: Box<kube::Error>,
    },

    /// Recording the composition, revision or resource references failed.
    #[error("failed to write spec of composite {name}: {}", Msg(.source))]
    WriteSpec {
        /// The composite's name.
        name: String,
        /// What the API server said.
        source: Box<kube::Error>,
    },

    /// Writing the composite's status failed.
    #[error("failed to write status of composite {name}: {}", Msg(.source))]
    WriteStatus {
        /// The composite's name.
        name: String,
        /// What the API server said.
        source: Box<kube::Error>,
    },

    /// Adding or removing the finalizer failed.
    #[error("failed to update the finalizer of composite {name}: {}", Msg(.source))]
    Finalizer {
        /// The composite's name.
        name: String,
        /// What the API server said.
        source: Box<kube::Error>,
    },
}

impl crate::scaffold::ErrorReason for Error {
    fn reason(&self) -> &'static str {
        self.action()
    }
}

impl Error {
    /// The PascalCase action that failed, for events.
    pub fn action(&self) -> &'static str {
        match self {
            Error::ReadSpec(_) => "ReadSpec",
            Error::Cached(_) => "ReadCache",
            Error::Select(_) => "SelectComposition",
            Error::Compose(_) => "ComposeResources",
            Error::NotComposable { .. } => "CheckComposableResources",
            Error::Discover { .. } => "DiscoverKind",
            Error::Apply { .. } => "ApplyResource",
            Error::Delete { .. } => "DeleteResource",
            Error::List { .. } => "ListResources",
            Error::ReadSecret { .. } => "ReadConnectionSecret",
            Error::SecretNotControlled { .. } => "ConnectionSecretNotControlled",
            Error::WriteSecret { .. } => "PublishConnectionSecret",
            Error::WriteSpec { .. } => "WriteSpec",
            Error::WriteStatus { .. } => "WriteStatus",
            Error::Finalizer { .. } => "UpdateFinalizer",
        }
    }

    /// The reason of the `Synced=False` condition (and of its event) this error makes:
    /// `CompositionNotAllowed` for kinds the controller may not compose, else
    /// `ReconcileError`.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NotComposable { .. } => REASON_COMPOSITION_NOT_ALLOWED,
            _ => crate::api::common::reason::RECONCILE_ERROR,
        }
    }

    /// The composed resource the error is about, for events.
    pub fn related(&self) -> Option<ObjectReference> {
        match self {
            Error::Apply {
                api_version,
                kind,
                name,
                ..
            } => Some(ObjectReference {
                api_version: Some(api_version.clone()),
                kind: Some(kind.clone()),
                name: Some(name.clone()),
                ..ObjectReference::default()
            }),
            _ => None,
        }
    }

    /// Whether retrying soon may help (server or network trouble), as opposed to an error
    /// that waits for someone to change a spec (then the composite is polled normally).
    pub fn is_transient(&self) -> bool {
        let kube = match self {
            Error::ReadSpec(_)
            | Error::Cached(_)
            | Error::Select(_)
            | Error::Compose(_)
            | Error::NotComposable { .. }
            | Error::SecretNotControlled { .. } => return false,
            Error::Discover { source, .. }
            | Error::Apply { source, .. }
            | Error::Delete { source, .. }
            | Error::List { source, .. }
            | Error::ReadSecret { source, .. }
            | Error::WriteSecret { source, .. }
            | Error::WriteSpec { source, .. }
            | Error::WriteStatus { source, .. }
            | Error::Finalizer { source, .. } => source,
        };
        match kube.as_ref() {
            // Server-side apply reports a value of the wrong type as an internal error.
            kube::Error::Api(s) if s.message.starts_with("failed to create typed patch object") => {
                false
            }
            kube::Error::Api(s) => s.code >= 500 || s.code == 429 || s.code == 409,
            kube::Error::Discovery(_) => false,
            _ => true,
        }
    }
}

/// Reason of a composite's (and its claim's) `Synced=False` condition when its Composition
/// renders kinds the controller may not compose.
pub const REASON_COMPOSITION_NOT_ALLOWED: &str = "CompositionNotAllowed";

/// Refused resources as a sentence's subject: "resource 'admin' (rbac.authorization.k8s.io/v1
/// ClusterRoleBinding) is" or "resources 'a' (v1 Pod), 'b' (...) are".
struct Refused<'a>(&'a [NotComposable]);

impl fmt::Display for Refused<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self
            .0
            .iter()
            .map(|r| format!("'{}' ({} {})", r.resource, r.api_version, r.kind))
            .collect();
        match list.len() {
            1 => write!(f, "resource {} is", list[0]),
            _ => write!(f, "resources {} are", list.join(", ")),
        }
    }
}

/// A kube error as a sentence: the API server's own message when there is one (it names
/// the object and the field), without the debug dump of kube's `Display`.
struct Msg<'a>(&'a kube::Error);

impl fmt::Display for Msg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            kube::Error::Api(s) if !s.message.is_empty() => f.write_str(&s.message),
            kube::Error::Api(s) => write!(f, "{} ({})", s.reason, s.code),
            other => write!(f, "{other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: message.to_string(),
            reason: "Invalid".to_string(),
            ..Default::default()
        }))
    }

    #[test]
    fn apply_errors_carry_the_api_servers_message_and_the_resource() {
        let e = Error::Apply {
            resource: "role".into(),
            api_version: "postgresql.sql.tessera.dev/v1alpha1".into(),
            kind: "Role".into(),
            name: "orders-role".into(),
            source: Box::new(api_error(
                422,
                "Role.postgresql.sql.tessera.dev \"orders-role\" is invalid: spec.forProvider.connectionLimit: Invalid value: \"string\"",
            )),
        };
        assert_eq!(
            e.to_string(),
            "cannot apply Role \"orders-role\" (resource 'role'): Role.postgresql.sql.tessera.dev \"orders-role\" is invalid: spec.forProvider.connectionLimit: Invalid value: \"string\""
        );
        assert!(
            !e.is_transient(),
            "an invalid object waits for a spec change"
        );
    }

    #[test]
    fn refused_kinds_name_the_resource_the_kind_and_the_flag() {
        let one = Error::NotComposable {
            resources: vec![NotComposable {
                resource: "admin-binding".into(),
                api_version: "rbac.authorization.k8s.io/v1".into(),
                kind: "ClusterRoleBinding".into(),
            }],
            allowed: "postgresql.sql.tessera.dev, core/Secret, core/ConfigMap".into(),
        };
        assert_eq!(
            one.to_string(),
            "resource 'admin-binding' (rbac.authorization.k8s.io/v1 ClusterRoleBinding) is not \
             in the controller's composable resources (postgresql.sql.tessera.dev, core/Secret, \
             core/ConfigMap); nothing of this composite is applied until the Composition drops \
             it or the platform team allows it (tessera controller --composable-resources)"
        );
        assert_eq!(one.reason(), "CompositionNotAllowed");
        assert!(
            !one.is_transient(),
            "it waits for a Composition or flag change"
        );
        let two = Error::NotComposable {
            resources: vec![
                NotComposable {
                    resource: "a".into(),
                    api_version: "v1".into(),
                    kind: "Pod".into(),
                },
                NotComposable {
                    resource: "b".into(),
                    api_version: "v1".into(),
                    kind: "ServiceAccount".into(),
                },
            ],
            allowed: "core/Secret".into(),
        };
        assert!(
            two.to_string().starts_with(
                "resources 'a' (v1 Pod), 'b' (v1 ServiceAccount) are not in the controller's"
            ) && two
                .to_string()
                .contains("drops them or the platform team allows them"),
            "{two}"
        );
        let select = Error::Select(SelectError::NotFound { name: "x".into() });
        assert_eq!(select.reason(), "ReconcileError");
    }

    #[test]
    fn server_trouble_is_transient_and_spec_trouble_is_not() {
        let apply = |code| Error::Apply {
            resource: "r".into(),
            api_version: "g/v1".into(),
            kind: "K".into(),
            name: "n".into(),
            source: Box::new(api_error(code, "m")),
        };
        assert!(apply(500).is_transient());
        assert!(apply(429).is_transient());
        assert!(apply(409).is_transient(), "a conflict is retried");
        assert!(!apply(403).is_transient());
        let typed = Error::Apply {
            resource: "r".into(),
            api_version: "g/v1".into(),
            kind: "K".into(),
            name: "n".into(),
            source: Box::new(api_error(
                500,
                "failed to create typed patch object (/n; g/v1, Kind=K): .spec.x: expected numeric (int or float), got string",
            )),
        };
        assert!(
            !typed.is_transient(),
            "a wrong type waits for a spec change"
        );
        assert_eq!(typed.action(), "ApplyResource");
        assert_eq!(typed.related().and_then(|r| r.name).as_deref(), Some("n"));
        let select = Error::Select(SelectError::NotFound { name: "x".into() });
        assert!(!select.is_transient());
        assert_eq!(select.to_string(), "Composition \"x\" does not exist");
    }
}
