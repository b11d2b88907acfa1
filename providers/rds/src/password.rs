//! Master passwords of DBInstances, on the engine's password kit
//! ([`tessera_engine::managed::password`]).
//!
//! AWS never returns a password, so the provider remembers which version of the source
//! Secret it last set the password from (`status.atProvider.passwordSecretVersion`: the
//! Secret's UID and resourceVersion) and compares it at every observe: another version
//! of the Secret becomes a ModifyDBInstance. Nothing derived from the password is kept.

use kube::Resource;
pub(crate) use tessera_engine::managed::password::{Password, Source, Sourced};

use crate::api::DBInstance;

/// Field manager for server-side apply of generated password Secrets.
pub(crate) const FIELD_MANAGER: &str = "tessera-provider-rds";

/// The password source of `db`: `masterPasswordSecretRef`, else the generated Secret
/// `<name>-master-password`.
pub(crate) fn source_for_instance(db: &DBInstance, default_namespace: &str) -> Source {
    if let Some(r) = &db.spec.for_provider.master_password_secret_ref {
        return Source::Reference(r.clone());
    }
    Source::generated(
        db.meta().name.as_deref().unwrap_or_default(),
        "master-password",
        &db.spec.resource,
        default_namespace,
    )
}
