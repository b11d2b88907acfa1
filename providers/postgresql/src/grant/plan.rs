//! Pure logic of Grants: what a Grant is about, parsing privileges, comparing with the
//! catalogs, and the GRANT/REVOKE statements that make them match.

use std::collections::BTreeSet;
use std::fmt;

use tessera_engine::managed::ProviderError;

use crate::api::{GrantOption, GrantParameters};
use crate::sql::{ident, validate_identifier};

/// A privilege on a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum DbPrivilege {
    Connect,
    Create,
    Temporary,
}

impl DbPrivilege {
    const ALL: [DbPrivilege; 3] = [
        DbPrivilege::Connect,
        DbPrivilege::Create,
        DbPrivilege::Temporary,
    ];

    /// The keyword, as in GRANT and in aclexplode's privilege_type.
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            DbPrivilege::Connect => "CONNECT",
            DbPrivilege::Create => "CREATE",
            DbPrivilege::Temporary => "TEMPORARY",
        }
    }

    /// Reads aclexplode's privilege_type; `None` for anything else.
    pub(crate) fn from_catalog(s: &str) -> Option<DbPrivilege> {
        DbPrivilege::ALL.into_iter().find(|p| p.keyword() == s)
    }
}

impl fmt::Display for DbPrivilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// Parses spec privileges: CONNECT, CREATE, TEMPORARY or TEMP, ALL or ALL PRIVILEGES;
/// any case, surrounding spaces ignored.
pub(crate) fn parse_privileges(list: &[String]) -> Result<BTreeSet<DbPrivilege>, ProviderError> {
    let mut out = BTreeSet::new();
    for raw in list {
        let words: Vec<String> = raw.split_whitespace().map(str::to_uppercase).collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["CONNECT"] => {
                out.insert(DbPrivilege::Connect);
            }
            ["CREATE"] => {
                out.insert(DbPrivilege::Create);
            }
            ["TEMPORARY"] | ["TEMP"] => {
                out.insert(DbPrivilege::Temporary);
            }
            ["ALL"] | ["ALL", "PRIVILEGES"] => out.extend(DbPrivilege::ALL),
            _ => {
                return Err(ProviderError::InvalidSpec(format!(
                    "unknown privilege {raw:?} on a database: use CONNECT, CREATE, TEMPORARY \
                     (or TEMP) or ALL"
                )));
            }
        }
    }
    Ok(out)
}

/// What a Grant is about; together with the role, its identity in PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Privileges of `role` on `database`.
    Database {
        role: String,
        database: String,
        privileges: BTreeSet<DbPrivilege>,
        grant_option: bool,
        revoke_public: bool,
    },
    /// Membership of `role` in `group`.
    Membership {
        role: String,
        group: String,
        admin_option: bool,
    },
}

impl Target {
    /// Validates the parameters and says what the Grant is about.
    pub(crate) fn from_spec(p: &GrantParameters) -> Result<Target, ProviderError> {
        validate_identifier("role", &p.role)?;
        match (&p.database, &p.member_of) {
            (Some(_), Some(_)) => Err(ProviderError::InvalidSpec(
                "set either database (privileges on a database) or memberOf (role membership), \
                 not both; use two Grants for both"
                    .into(),
            )),
            (None, None) => Err(ProviderError::InvalidSpec(
                "set database (with privileges) or memberOf".into(),
            )),
            (Some(database), None) => {
                validate_identifier("database", database)?;
                if p.with_option == Some(GrantOption::Admin) {
                    return Err(ProviderError::InvalidSpec(
                        "withOption ADMIN applies to memberOf; use GRANT for privileges on a database"
                            .into(),
                    ));
                }
                let privileges = parse_privileges(&p.privileges)?;
                if privileges.is_empty() {
                    return Err(ProviderError::InvalidSpec(
                        "privileges must not be empty when database is set".into(),
                    ));
                }
                Ok(Target::Database {
                    role: p.role.clone(),
                    database: database.clone(),
                    privileges,
                    grant_option: p.with_option == Some(GrantOption::Grant),
                    revoke_public: p.revoke_public_on_db == Some(true),
                })
            }
            (None, Some(group)) => {
                validate_identifier("memberOf", group)?;
                if !p.privileges.is_empty() {
                    return Err(ProviderError::InvalidSpec(
                        "privileges apply to a database; a memberOf grant takes none".into(),
                    ));
                }
                if p.with_option == Some(GrantOption::Grant) {
                    return Err(ProviderError::InvalidSpec(
                        "withOption GRANT applies to privileges on a database; use ADMIN for memberOf"
                            .into(),
                    ));
                }
                if p.revoke_public_on_db == Some(true) {
                    return Err(ProviderError::InvalidSpec(
                        "revokePublicOnDb needs database; it does not apply to memberOf".into(),
                    ));
                }
                Ok(Target::Membership {
                    role: p.role.clone(),
                    group: group.clone(),
                    admin_option: p.with_option == Some(GrantOption::Admin),
                })
            }
        }
    }

    /// The role and the database or group: what the Grant is about in PostgreSQL.
    pub(crate) fn identity(&self) -> Identity {
        match self {
            Target::Database { role, database, .. } => Identity::Database {
                role: role.clone(),
                database: database.clone(),
            },
            Target::Membership { role, group, .. } => Identity::Membership {
                role: role.clone(),
                group: group.clone(),
            },
        }
    }
}

/// What a Grant is about in PostgreSQL, as its external name records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Identity {
    Database { role: String, database: String },
    Membership { role: String, group: String },
}

const DATABASE_SEPARATOR: &str = "database";
const MEMBERSHIP_SEPARATOR: &str = "member-of";

impl Identity {
    /// The external name: `<role>/database/<database>` or `<role>/member-of/<group>`, with
    /// `%` and `/` in names percent-encoded so that the string is unambiguous. Kubernetes
    /// names cannot contain `/`, so it never collides with a default external name.
    pub(crate) fn external_name(&self) -> String {
        match self {
            Identity::Database { role, database } => {
                format!("{}/{DATABASE_SEPARATOR}/{}", escape(role), escape(database))
            }
            Identity::Membership { role, group } => {
                format!("{}/{MEMBERSHIP_SEPARATOR}/{}", escape(role), escape(group))
            }
        }
    }

    /// Reads an external name written by [`Identity::external_name`]; `None` for anything
    /// else (such as the default external name, the object's name).
    pub(crate) fn parse(external_name: &str) -> Option<Identity> {
        let mut parts = external_name.split('/');
        let (role, kind, other) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let (role, other) = (unescape(role)?, unescape(other)?);
        match kind {
            DATABASE_SEPARATOR => Some(Identity::Database {
                role,
                database: other,
            }),
            MEMBERSHIP_SEPARATOR => Some(Identity::Membership { role, group: other }),
            _ => None,
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Database { role, database } => {
                write!(f, "privileges of role {role} on database {database}")
            }
            Identity::Membership { role, group } => {
                write!(f, "membership of role {role} in role {group}")
            }
        }
    }
}

fn escape(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 3) {
            Some("25") => out.push('%'),
            Some("2F") => out.push('/'),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Privileges of the role and of PUBLIC on a database, from aclexplode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DatabaseAcl {
    pub role: BTreeSet<DbPrivilege>,
    pub role_grantable: BTreeSet<DbPrivilege>,
    pub public: BTreeSet<DbPrivilege>,
}

fn list(set: &BTreeSet<DbPrivilege>) -> String {
    if set.is_empty() {
        "none".into()
    } else {
        set.iter()
            .map(|p| p.keyword())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What differs between a database grant and the ACL, in words.
pub(crate) fn database_diff(
    database: &str,
    privileges: &BTreeSet<DbPrivilege>,
    grant_option: bool,
    revoke_public: bool,
    have: &DatabaseAcl,
) -> Vec<String> {
    let mut out = Vec::new();
    if *privileges != have.role {
        out.push(format!(
            "privileges on database {database}: want {}, have {}",
            list(privileges),
            list(&have.role)
        ));
    }
    let want_grantable = if grant_option {
        privileges.clone()
    } else {
        BTreeSet::new()
    };
    let have_grantable: BTreeSet<_> = have
        .role_grantable
        .intersection(privileges)
        .copied()
        .collect();
    if want_grantable != have_grantable {
        out.push(format!(
            "privileges with GRANT OPTION: want {}, have {}",
            list(&want_grantable),
            list(&have_grantable)
        ));
    }
    if revoke_public && !have.public.is_empty() {
        out.push(format!(
            "privileges of PUBLIC on database {database}: want none, have {}",
            list(&have.public)
        ));
    }
    out
}

/// The statements that turn `have` into the wanted database grant; empty when it matches.
pub(crate) fn database_statements(
    role: &str,
    database: &str,
    privileges: &BTreeSet<DbPrivilege>,
    grant_option: bool,
    revoke_public: bool,
    have: &DatabaseAcl,
) -> String {
    let on = format!("ON DATABASE {}", ident(database));
    let to = ident(role);
    let mut out = Vec::new();
    let extra: BTreeSet<_> = have.role.difference(privileges).copied().collect();
    if !extra.is_empty() {
        out.push(format!("REVOKE {} {on} FROM {to}", list(&extra)));
    }
    let missing: BTreeSet<_> = if grant_option {
        // Granting again WITH GRANT OPTION adds the option to privileges already held.
        privileges
            .iter()
            .filter(|p| !have.role.contains(p) || !have.role_grantable.contains(p))
            .copied()
            .collect()
    } else {
        privileges.difference(&have.role).copied().collect()
    };
    if !missing.is_empty() {
        let with = if grant_option {
            " WITH GRANT OPTION"
        } else {
            ""
        };
        out.push(format!("GRANT {} {on} TO {to}{with}", list(&missing)));
    }
    if !grant_option {
        let grantable: BTreeSet<_> = have
            .role_grantable
            .intersection(privileges)
            .copied()
            .collect();
        if !grantable.is_empty() {
            out.push(format!(
                "REVOKE GRANT OPTION FOR {} {on} FROM {to}",
                list(&grantable)
            ));
        }
    }
    if revoke_public && !have.public.is_empty() {
        out.push(format!("REVOKE ALL {on} FROM PUBLIC"));
    }
    out.join("; ")
}

/// The statements that turn the membership `have` (`None`: not a member; `Some(admin)`)
/// into the wanted one; empty when it matches.
pub(crate) fn membership_statements(
    role: &str,
    group: &str,
    admin_option: bool,
    have: Option<bool>,
) -> String {
    let (group, role) = (ident(group), ident(role));
    match (have, admin_option) {
        (Some(a), w) if a == w => String::new(),
        (_, true) => format!("GRANT {group} TO {role} WITH ADMIN OPTION"),
        (None, false) => format!("GRANT {group} TO {role}"),
        (Some(_), false) => format!("REVOKE ADMIN OPTION FOR {group} FROM {role}"),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
