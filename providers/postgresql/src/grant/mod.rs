//! Grants: privileges on a database (observed with `aclexplode(datacl)` on pg_database)
//! or role membership (observed in pg_auth_members).
//!
//! A Grant's identity (role, and database or memberOf) is recorded in its external name at
//! creation. A spec that changes it later is refused, and deletion revokes what the
//! external name records, so a Grant never leaks the privileges it gave.

pub(crate) mod plan;

use std::collections::BTreeSet;

use async_trait::async_trait;
use kube::Resource;
use tessera_engine::api::common::ConnectionDetails;
use tessera_engine::api::common::annotations::EXTERNAL_NAME;
use tessera_engine::managed::{
    CreateIdentity, ExternalClient, Observation, Ownership, ProviderError,
};

use crate::api::{Grant, GrantObservation};
use tessera_engine::managed::machine::external_name;

use crate::connector::{PostgresClient, deleting};
use crate::sql::ident;
use plan::{DatabaseAcl, DbPrivilege, Identity, Target};

const SELECT_OIDS: &str = "SELECT (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1), \
     (SELECT oid FROM pg_catalog.pg_database WHERE datname = $2)";

const SELECT_ACL: &str = "SELECT a.grantee = 0, a.privilege_type, a.is_grantable \
     FROM pg_catalog.pg_database d, \
     LATERAL pg_catalog.aclexplode(COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) a \
     WHERE d.datname = $1 AND (a.grantee = 0 OR a.grantee = $2)";

const SELECT_MEMBERSHIP: &str = "SELECT bool_or(m.admin_option) \
     FROM pg_catalog.pg_auth_members m \
     JOIN pg_catalog.pg_roles g ON g.oid = m.roleid \
     JOIN pg_catalog.pg_roles r ON r.oid = m.member \
     WHERE g.rolname = $1 AND r.rolname = $2";

impl PostgresClient {
    /// The OIDs of a role and of a database (or of a second role, with `group`), `None`
    /// for those that do not exist.
    async fn oids(
        &self,
        role: &str,
        database: &str,
    ) -> Result<(Option<u32>, Option<u32>), ProviderError> {
        let rows = self
            .session
            .query(
                "look up a role and a database",
                SELECT_OIDS,
                &[&role, &database],
            )
            .await?;
        Ok(rows
            .first()
            .map(|r| (r.get(0), r.get(1)))
            .unwrap_or_default())
    }

    /// The ACL of `database` for `role` and PUBLIC; `None` when either does not exist.
    async fn database_acl(
        &self,
        role: &str,
        database: &str,
    ) -> Result<Option<DatabaseAcl>, ProviderError> {
        let (Some(role_oid), Some(_)) = self.oids(role, database).await? else {
            return Ok(None);
        };
        let rows = self
            .session
            .query(
                &format!("read the privileges on database {database:?}"),
                SELECT_ACL,
                &[&database, &role_oid],
            )
            .await?;
        let mut acl = DatabaseAcl::default();
        for row in rows {
            let public: bool = row.get(0);
            let privilege: String = row.get(1);
            let grantable: bool = row.get(2);
            let Some(p) = DbPrivilege::from_catalog(&privilege) else {
                continue;
            };
            if public {
                acl.public.insert(p);
            } else {
                acl.role.insert(p);
                if grantable {
                    acl.role_grantable.insert(p);
                }
            }
        }
        Ok(Some(acl))
    }

    /// `None` when `role` is not a member of `group`, else whether it has the ADMIN option.
    async fn membership(&self, role: &str, group: &str) -> Result<Option<bool>, ProviderError> {
        let rows = self
            .session
            .query(
                &format!("read the membership of role {role:?} in role {group:?}"),
                SELECT_MEMBERSHIP,
                &[&group, &role],
            )
            .await?;
        Ok(rows.first().and_then(|r| r.get(0)))
    }
}

/// The identity the external name records, if it is a Grant identity at all.
fn recorded_identity(mr: &Grant) -> Option<Identity> {
    Identity::parse(&external_name(mr))
}

/// What to revoke on deletion: the identity recorded in the external name, else the spec's.
fn identity_to_delete(mr: &Grant) -> Result<Identity, ProviderError> {
    match recorded_identity(mr) {
        Some(identity) => Ok(identity),
        None => Ok(Target::from_spec(&mr.spec.for_provider)?.identity()),
    }
}

/// Sets the external name to the Grant's identity when it has none yet, so that the
/// runtime records it before creating (it persists the external name it sees then).
fn propose_external_name(mr: &mut Grant, target: &Target) {
    let annotations = mr
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default);
    annotations
        .entry(EXTERNAL_NAME.to_string())
        .or_insert_with(|| target.identity().external_name());
}

/// Refuses a spec whose identity differs from the one recorded at creation.
fn check_identity(mr: &Grant, target: &Target) -> Result<(), ProviderError> {
    let wanted = target.identity();
    match recorded_identity(mr) {
        Some(recorded) if recorded != wanted => Err(ProviderError::InvalidSpec(format!(
            "role, database and memberOf cannot change after creation: this Grant manages the \
             {recorded}, spec asks for the {wanted}; create a new Grant instead"
        ))),
        _ => Ok(()),
    }
}

fn names(set: &BTreeSet<DbPrivilege>) -> Vec<String> {
    set.iter().map(|p| p.keyword().to_string()).collect()
}

#[async_trait]
impl ExternalClient<Grant> for PostgresClient {
    // Deterministic: a grant is identified by its role and database (or group), which its external name encodes; granting twice is a no-op, so a create whose result was lost is simply made again.
    fn create_identity(&self) -> CreateIdentity {
        CreateIdentity::Deterministic
    }

    async fn observe(&self, mr: &mut Grant) -> Result<Observation, ProviderError> {
        if deleting(mr) {
            let identity = identity_to_delete(mr)?;
            return Ok(if self.identity_exists(&identity).await? {
                Observation::up_to_date().with_ownership(Ownership::NotTracked)
            } else {
                Observation::absent()
            });
        }
        let target = Target::from_spec(&mr.spec.for_provider)?;
        check_identity(mr, &target)?;
        propose_external_name(mr, &target);
        let (observation, diff) = match &target {
            Target::Database {
                role,
                database,
                privileges,
                grant_option,
                revoke_public,
            } => {
                let Some(acl) = self.database_acl(role, database).await? else {
                    return Ok(Observation::absent());
                };
                let observation = GrantObservation {
                    privileges: names(&acl.role),
                    grantable_privileges: names(&acl.role_grantable),
                    public_privileges: Some(names(&acl.public)),
                    ..GrantObservation::default()
                };
                if acl.role.is_empty() {
                    mr.status.get_or_insert_with(Default::default).at_provider = Some(observation);
                    return Ok(Observation::absent());
                }
                let diff =
                    plan::database_diff(database, privileges, *grant_option, *revoke_public, &acl);
                (observation, diff)
            }
            Target::Membership {
                role,
                group,
                admin_option,
            } => {
                let Some(admin) = self.membership(role, group).await? else {
                    return Ok(Observation::absent());
                };
                let mut diff = Vec::new();
                if admin != *admin_option {
                    diff.push(format!("ADMIN OPTION: want {admin_option}, have {admin}"));
                }
                let observation = GrantObservation {
                    member: Some(true),
                    admin_option: Some(admin),
                    ..GrantObservation::default()
                };
                (observation, diff)
            }
        };
        mr.status.get_or_insert_with(Default::default).at_provider = Some(observation);
        // A grant is no object of its own that could be taken over: it relates a role to a
        // database or group, and those are guarded by their own managed resources.
        let observation = if diff.is_empty() {
            Observation::up_to_date()
        } else {
            Observation::drifted(diff.join("; "))
        };
        Ok(observation.with_ownership(Ownership::NotTracked))
    }

    async fn create(&self, mr: &mut Grant) -> Result<ConnectionDetails, ProviderError> {
        let target = Target::from_spec(&mr.spec.for_provider)?;
        check_identity(mr, &target)?;
        self.apply(&target).await?;
        Ok(ConnectionDetails::new())
    }

    async fn update(&self, mr: &mut Grant) -> Result<ConnectionDetails, ProviderError> {
        let target = Target::from_spec(&mr.spec.for_provider)?;
        check_identity(mr, &target)?;
        self.apply(&target).await?;
        Ok(ConnectionDetails::new())
    }

    async fn delete(&self, mr: &Grant) -> Result<(), ProviderError> {
        let identity = identity_to_delete(mr)?;
        if !self.identity_exists(&identity).await? {
            return Ok(());
        }
        let (action, sql) = match &identity {
            Identity::Database { role, database } => (
                format!("revoke the privileges of role {role:?} on database {database:?}"),
                format!(
                    "REVOKE ALL ON DATABASE {} FROM {}",
                    ident(database),
                    ident(role)
                ),
            ),
            Identity::Membership { role, group } => (
                format!("revoke the membership of role {role:?} in role {group:?}"),
                format!("REVOKE {} FROM {}", ident(group), ident(role)),
            ),
        };
        self.session.execute(&action, &sql).await
    }
}

impl PostgresClient {
    /// Whether the role holds privileges on the database, or is a member of the group.
    async fn identity_exists(&self, identity: &Identity) -> Result<bool, ProviderError> {
        Ok(match identity {
            Identity::Database { role, database } => self
                .database_acl(role, database)
                .await?
                .is_some_and(|acl| !acl.role.is_empty()),
            Identity::Membership { role, group } => self.membership(role, group).await?.is_some(),
        })
    }

    /// Makes PostgreSQL match `target`, from whatever it has now.
    async fn apply(&self, target: &Target) -> Result<(), ProviderError> {
        let (action, sql) = match target {
            Target::Database {
                role,
                database,
                privileges,
                grant_option,
                revoke_public,
            } => {
                let acl = self.database_acl(role, database).await?.ok_or_else(|| {
                    ProviderError::Transient(format!(
                        "cannot grant privileges of role {role:?} on database {database:?}: \
                         the role or the database does not exist (yet)"
                    ))
                })?;
                (
                    format!("grant privileges of role {role:?} on database {database:?}"),
                    plan::database_statements(
                        role,
                        database,
                        privileges,
                        *grant_option,
                        *revoke_public,
                        &acl,
                    ),
                )
            }
            Target::Membership {
                role,
                group,
                admin_option,
            } => {
                let action = format!("grant role {group:?} to role {role:?}");
                self.require_roles(&action, &[role, group]).await?;
                let have = self.membership(role, group).await?;
                (
                    action,
                    plan::membership_statements(role, group, *admin_option, have),
                )
            }
        };
        if sql.is_empty() {
            return Ok(());
        }
        self.session.execute(&action, &sql).await
    }
}
