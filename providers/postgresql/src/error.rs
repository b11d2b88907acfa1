//! Turning PostgreSQL errors into [`ProviderError`]s whose class drives the reconciler
//! (backoff, wait for a spec change, or fix the ProviderConfig) and whose message says
//! what to do.
//!
//! Messages carry PostgreSQL's message, detail and hint, never the statement, so that no
//! password (which only ever appears inside statements) can leak into a condition.

use tessera_engine::managed::ProviderError;
use tokio_postgres::error::{DbError, SqlState};

/// Who was talking to PostgreSQL, for messages about the ProviderConfig.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    /// Name of the ProviderConfig.
    pub provider_config: String,
    /// The administrative user from its Secret.
    pub username: String,
}

impl Origin {
    /// Classifies an error of `action` (e.g. `create role "alice"`).
    pub(crate) fn error(&self, action: &str, err: &tokio_postgres::Error) -> ProviderError {
        match err.as_db_error() {
            Some(db) => self.db_error(action, db),
            // No answer from the server (the connection was lost, or broke in the middle of
            // a statement): the statement may have run, so a create that ends here is
            // looked for again rather than recorded as failed.
            None if err.is_closed() => ProviderError::Unanswered(format!(
                "cannot {action}: the connection to PostgreSQL was closed"
            )),
            // The client could not complete authentication (e.g. the server asked for a
            // password method it cannot do): only a change of the credentials helps.
            None if err.to_string() == "authentication error" => ProviderError::Config(format!(
                "ProviderConfig {:?}: cannot {action} as user {}: {}",
                self.provider_config,
                self.username,
                error_text(err)
            )),
            None => ProviderError::Unanswered(format!("cannot {action}: {}", error_text(err))),
        }
    }

    /// Classifies an error that PostgreSQL reported.
    pub(crate) fn db_error(&self, action: &str, db: &DbError) -> ProviderError {
        let text = describe(db);
        let pc = &self.provider_config;
        let user = &self.username;
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            ProviderError::Config(format!(
                "ProviderConfig {pc:?}: PostgreSQL rejected the credentials of user {user}: {text}"
            ))
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            ProviderError::Config(format!(
                "ProviderConfig {pc:?}: user {user} is not allowed to {action}: {text}"
            ))
        } else if *code == SqlState::UNDEFINED_DATABASE
            || (*code == SqlState::UNDEFINED_OBJECT && db.message().starts_with("role \""))
        {
            // A role or database the spec refers to does not exist (yet): another managed
            // resource may create it shortly, so retry with backoff. Callers check the roles
            // they refer to first, so this holds whatever language the server speaks.
            // Other undefined objects (encodings, parameters) are mistakes in the spec.
            ProviderError::Transient(format!("cannot {action}: {text}"))
        } else if matches!(class(code), "42" | "22" | "0L" | "0P" | "2F") {
            // Syntax errors, invalid names, bad values, invalid grants: caused by the spec.
            ProviderError::InvalidSpec(format!("cannot {action}: {text}"))
        } else {
            // Connection trouble, shutdown, lock timeouts, objects in use, dependent
            // objects: temporary, or resolved by someone else in time.
            ProviderError::Transient(format!("cannot {action}: {text}"))
        }
    }
}

/// tokio-postgres' message with its causes, e.g. `error connecting to server: Connection
/// refused (os error 111)` (its `Display` alone leaves the cause out).
pub(crate) fn error_text(err: &tokio_postgres::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The two-character SQLSTATE class, e.g. `42` for syntax errors and access violations.
fn class(code: &SqlState) -> &str {
    code.code().get(..2).unwrap_or("")
}

/// PostgreSQL's message, then its detail and hint when there are any.
fn describe(db: &DbError) -> String {
    let mut text = db.message().to_string();
    if let Some(detail) = db.detail() {
        text.push_str(" (");
        text.push_str(&detail.replace('\n', "; "));
        text.push(')');
    }
    if let Some(hint) = db.hint() {
        text.push_str("; ");
        text.push_str(hint);
    }
    text
}

/// The message for DROP ROLE failing with dependent_objects_still_exist, from the error's
/// detail lines (`owner of database shop`, `privileges for database x`).
pub(crate) fn role_still_referenced(role: &str, detail: Option<&str>) -> String {
    let things: Vec<String> = detail
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            if let Some(object) = l.strip_prefix("owner of ") {
                format!("owns {object}")
            } else if let Some(object) = l.strip_prefix("privileges for ") {
                format!("has privileges on {object}")
            } else {
                l.to_string()
            }
        })
        .collect();
    match things.as_slice() {
        [] => format!(
            "role {role} still owns objects or holds privileges; delete or reassign them first"
        ),
        [one] if one.starts_with("owns ") => {
            format!("role {role} still {one}; delete or reassign it first")
        }
        [one] => format!("role {role} still {one}; revoke or delete it first"),
        many => format!(
            "role {role} still {}; delete, reassign or revoke them first",
            many.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_role_blockers_are_described_in_words() {
        struct Case {
            reason: &'static str,
            detail: Option<&'static str>,
            want: &'static str,
        }
        let cases = [
            Case {
                reason: "one owned database reads as a sentence",
                detail: Some("owner of database shop"),
                want: "role alice still owns database shop; delete or reassign it first",
            },
            Case {
                reason: "a privilege is something to revoke",
                detail: Some("privileges for database shop"),
                want: "role alice still has privileges on database shop; revoke or delete it first",
            },
            Case {
                reason: "several blockers are listed",
                detail: Some("owner of database shop\nprivileges for database web"),
                want: "role alice still owns database shop, has privileges on database web; \
                       delete, reassign or revoke them first",
            },
            Case {
                reason: "no detail still gives advice",
                detail: None,
                want: "role alice still owns objects or holds privileges; delete or reassign them first",
            },
        ];
        for c in cases {
            assert_eq!(
                role_still_referenced("alice", c.detail),
                c.want,
                "{}",
                c.reason
            );
        }
    }
}
