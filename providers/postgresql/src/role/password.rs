//! Role passwords, on the engine's password kit ([`tessera_engine::managed::password`]):
//! which Roles get one, and the SCRAM-SHA-256 verifier that is all the server ever sees
//! (so no plaintext password is sent to the server or written to its statement log).
//!
//! The version of the source Secret the password was last set from is kept in
//! `status.atProvider.passwordSecretVersion`; nothing derived from the password is kept.

use kube::Resource;
use tessera_engine::managed::ProviderError;
use tessera_engine::managed::password::Password;
pub(crate) use tessera_engine::managed::password::{Source, Sourced};

use crate::api::Role;

/// Field manager for server-side apply of generated password Secrets.
pub(crate) const FIELD_MANAGER: &str = "tessera-provider-postgresql";

/// The password source of `role`, or `None` when its password is not managed: without
/// `passwordSecretRef`, a password is generated only for roles with `login: true`, into
/// the Secret `<name>-password`.
pub(crate) fn source_for_role(role: &Role, default_namespace: &str) -> Option<Source> {
    let params = &role.spec.for_provider;
    if let Some(r) = &params.password_secret_ref {
        return Some(Source::Reference(r.clone()));
    }
    if params.privileges.login != Some(true) {
        return None;
    }
    Some(Source::generated(
        role.meta().name.as_deref().unwrap_or_default(),
        "password",
        &role.spec.resource,
        default_namespace,
    ))
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (what `\password` in psql
/// sends), with a fresh random salt. Its 4096 PBKDF2 iterations take a while (a tenth
/// of a second to a second in a debug build on a loaded machine), so they run on tokio's blocking threads: the async workers
/// go on with other reconciles and the watches meanwhile.
pub(crate) async fn scram_verifier(password: &Password) -> Result<String, ProviderError> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        postgres_protocol::password::scram_sha_256(password.expose().as_bytes())
    })
    .await
    .map_err(|e| {
        ProviderError::Transient(format!(
            "computing the SCRAM verifier of the role's password did not finish: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_engine::api::common::SecretKeySelector;

    #[tokio::test]
    async fn scram_verifiers_have_postgres_format_and_never_contain_the_password() {
        let v = scram_verifier(&Password::new("hunter2")).await.unwrap();
        assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
        assert!(!v.contains("hunter2"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_verifier_is_computed_off_the_async_thread() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        // On a runtime of one thread, another task runs meanwhile only when the
        // computation leaves the thread free.
        let turns = Arc::new(AtomicU64::new(0));
        let counted = turns.clone();
        let other = tokio::spawn(async move {
            loop {
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        scram_verifier(&Password::new("hunter2")).await.unwrap();
        other.abort();
        assert!(
            turns.load(Ordering::Relaxed) > 0,
            "another task ran while the verifier was computed"
        );
    }

    fn role(yaml: &str) -> Role {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn password_source_follows_reference_login_and_connection_secret() {
        struct Case {
            reason: &'static str,
            role: Role,
            want: Option<Source>,
        }
        let header = "apiVersion: postgresql.sql.tessera.dev/v1alpha1\nkind: Role\nmetadata: {name: alice}\n";
        let cases = vec![
            Case {
                reason: "a group role (no login) gets no generated password",
                role: role(&format!("{header}spec: {{forProvider: {{}}}}")),
                want: None,
            },
            Case {
                reason: "a login role without a reference gets one in the default namespace",
                role: role(&format!(
                    "{header}spec: {{forProvider: {{privileges: {{login: true}}}}}}"
                )),
                want: Some(Source::Generated {
                    namespace: "tessera-system".into(),
                    name: "alice-password".into(),
                }),
            },
            Case {
                reason: "next to the connection secret when there is one",
                role: role(&format!(
                    "{header}spec: {{writeConnectionSecretToRef: {{name: c, namespace: shop}}, \
                     forProvider: {{privileges: {{login: true}}}}}}"
                )),
                want: Some(Source::Generated {
                    namespace: "shop".into(),
                    name: "alice-password".into(),
                }),
            },
            Case {
                reason: "a reference wins, even without login",
                role: role(&format!(
                    "{header}spec: {{forProvider: {{passwordSecretRef: {{name: s, namespace: n, key: k}}}}}}"
                )),
                want: Some(Source::Reference(SecretKeySelector {
                    name: "s".into(),
                    namespace: "n".into(),
                    key: "k".into(),
                })),
            },
        ];
        for c in cases {
            assert_eq!(
                source_for_role(&c.role, "tessera-system"),
                c.want,
                "{}",
                c.reason
            );
        }
    }
}
