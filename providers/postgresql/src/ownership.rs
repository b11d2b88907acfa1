//! Which roles and databases are Tessera's: the mark that Tessera writes into the comment
//! of what it creates or adopts, `COMMENT ON ROLE|DATABASE ... IS
//! 'tessera.dev/managed-resource-uid=<uid>'`, read back with `shobj_description`, and the
//! objects that are never taken over.
//!
//! The comment must be exactly the mark (surrounding whitespace aside): a comment that
//! merely mentions it, or says anything else, is no mark, so a person's description of a
//! role never makes Tessera think the role is its own.

use tessera_engine::managed::{Ownership, ProviderError};

use crate::sql::literal;

/// What the comment of a role or database that Tessera manages starts with; the managed
/// resource's `metadata.uid` follows.
pub(crate) const MARK_PREFIX: &str = "tessera.dev/managed-resource-uid=";

/// Databases that exist on every server and that Tessera never takes over.
const SYSTEM_DATABASES: [&str; 3] = ["postgres", "template0", "template1"];

/// The comment that marks an object as managed by the managed resource with `uid`, as a
/// quoted literal.
pub(crate) fn mark_literal(uid: Option<&str>) -> Result<String, ProviderError> {
    match uid {
        Some(uid) if is_uid(uid) => Ok(literal(&format!("{MARK_PREFIX}{uid}"))),
        // The API server always sets a uid; this only guards against a hand-made object.
        _ => Err(ProviderError::InvalidSpec(
            "the object has no metadata.uid to mark the external resource with".into(),
        )),
    }
}

/// Whether `s` looks like a Kubernetes uid (an RFC 4122 UUID, or at least nothing that
/// could leak or confuse: ASCII letters, digits and dashes, at most 64 of them).
fn is_uid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Who an object with `comment` belongs to, seen by the managed resource with `uid`.
pub(crate) fn from_comment(comment: Option<&str>, uid: Option<&str>) -> Ownership {
    let Some(marked) = comment
        .map(str::trim)
        .and_then(|c| c.strip_prefix(MARK_PREFIX))
    else {
        return Ownership::Unmarked;
    };
    if !is_uid(marked) {
        return Ownership::Unmarked;
    }
    if uid == Some(marked) {
        Ownership::Ours
    } else {
        Ownership::Other(marked.to_string())
    }
}

/// What observe read about a role, for [`role_ownership`].
pub(crate) struct RoleFacts<'a> {
    pub name: &'a str,
    pub comment: Option<&'a str>,
    pub super_user: bool,
    /// The role is the one the ProviderConfig logs in as.
    pub is_current_user: bool,
}

/// Who a role belongs to. The ProviderConfig's own login and PostgreSQL's `pg_` roles are
/// never Tessera's; a superuser is Tessera's only when it carries this object's mark
/// (Tessera made it so, on a spec's request), and is never adopted.
pub(crate) fn role_ownership(role: &RoleFacts<'_>, uid: Option<&str>) -> Ownership {
    if role.is_current_user {
        return Ownership::Protected(format!(
            "role {:?} is the login of the ProviderConfig",
            role.name
        ));
    }
    if role.name.starts_with("pg_") {
        return Ownership::Protected(format!("role {:?} is a PostgreSQL system role", role.name));
    }
    let ownership = from_comment(role.comment, uid);
    if role.super_user && ownership != Ownership::Ours {
        return Ownership::Protected(format!("role {:?} is a superuser", role.name));
    }
    ownership
}

/// Who a database belongs to. The system databases and the ProviderConfig's default
/// database (the one its sessions are connected to) are never Tessera's.
pub(crate) fn database_ownership(
    name: &str,
    comment: Option<&str>,
    is_current_database: bool,
    uid: Option<&str>,
) -> Ownership {
    if SYSTEM_DATABASES.contains(&name) {
        return Ownership::Protected(format!("database {name:?} is a system database"));
    }
    if is_current_database {
        return Ownership::Protected(format!(
            "database {name:?} is the default database of the ProviderConfig"
        ));
    }
    from_comment(comment, uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0b9c1f5e-4a57-4c31-9d55-6a1d2f0e7c11";

    #[test]
    fn only_a_comment_that_is_exactly_a_mark_counts() {
        let mark = format!("{MARK_PREFIX}{UID}");
        let cases = [
            ("no comment", None, Ownership::Unmarked),
            ("this object's mark", Some(mark.clone()), Ownership::Ours),
            (
                "the mark with surrounding whitespace",
                Some(format!("  {mark}\n")),
                Ownership::Ours,
            ),
            (
                "another object's mark",
                Some(format!("{MARK_PREFIX}1111-2222")),
                Ownership::Other("1111-2222".into()),
            ),
            (
                "a person's description",
                Some("the billing team's login".into()),
                Ownership::Unmarked,
            ),
            (
                "a description that mentions a mark",
                Some(format!("copied from {mark}")),
                Ownership::Unmarked,
            ),
            (
                "a mark followed by more text",
                Some(format!("{mark} and notes")),
                Ownership::Unmarked,
            ),
            (
                "a mark without a uid",
                Some(MARK_PREFIX.into()),
                Ownership::Unmarked,
            ),
        ];
        for (reason, comment, want) in cases {
            assert_eq!(
                from_comment(comment.as_deref(), Some(UID)),
                want,
                "{reason}"
            );
        }
    }

    #[test]
    fn superusers_system_roles_and_the_login_are_protected() {
        let mark = format!("{MARK_PREFIX}{UID}");
        let role = |name, comment, super_user, is_current_user| RoleFacts {
            name,
            comment,
            super_user,
            is_current_user,
        };
        let protected = |o: Ownership| matches!(o, Ownership::Protected(_));
        let cases = [
            (
                "an unmarked superuser",
                role("admin", None, true, false),
                true,
            ),
            (
                "the ProviderConfig's login",
                role("tessera", None, false, true),
                true,
            ),
            (
                "the login even when marked",
                role("tessera", Some(mark.as_str()), false, true),
                true,
            ),
            (
                "a system role",
                role("pg_monitor", None, false, false),
                true,
            ),
            (
                "a superuser marked by another object",
                role(
                    "admin",
                    Some("tessera.dev/managed-resource-uid=99"),
                    true,
                    false,
                ),
                true,
            ),
            (
                "a superuser this object made",
                role("admin", Some(mark.as_str()), true, false),
                false,
            ),
            (
                "an ordinary unmarked role",
                role("app", None, false, false),
                false,
            ),
        ];
        for (reason, facts, want) in cases {
            assert_eq!(
                protected(role_ownership(&facts, Some(UID))),
                want,
                "{reason}"
            );
        }
    }

    #[test]
    fn system_and_default_databases_are_protected() {
        let protected = |o: Ownership| matches!(o, Ownership::Protected(_));
        for name in ["postgres", "template0", "template1"] {
            assert!(
                protected(database_ownership(name, None, false, Some(UID))),
                "{name}"
            );
        }
        assert!(protected(database_ownership("main", None, true, Some(UID))));
        assert_eq!(
            database_ownership("shop", None, false, Some(UID)),
            Ownership::Unmarked
        );
    }

    #[test]
    fn marks_are_quoted_and_need_a_uid() {
        assert_eq!(
            mark_literal(Some(UID)).unwrap(),
            format!("'{MARK_PREFIX}{UID}'")
        );
        assert!(mark_literal(None).is_err());
        assert!(mark_literal(Some("x'; DROP ROLE y; --")).is_err());
    }
}
