//! Roles: `CREATE ROLE`, `ALTER ROLE`, `DROP ROLE`, observed through pg_roles.
//!
//! Password lifecycle (see [`password`]):
//!
//! ```text
//!  create: read source ─ generated and missing? ─▶ generate, store Secret ─▶ CREATE ROLE ... PASSWORD <verifier>
//!  observe: source Secret's uid/resourceVersion ≠ atProvider.passwordSecretVersion ─▶ drift "password: ..."
//!           tessera.dev/rotate-password ≠ atProvider.passwordRotationToken ─▶ drift "password: rotation requested"
//!  update: (generated and rotating or missing? ─▶ generate, store Secret) ─▶ ALTER ROLE ... PASSWORD <verifier>
//! ```
//!
//! The Secret is written before the role's password is changed, so a crash in between
//! leaves a Secret whose version differs from status, and the next reconcile sets it.
//! Roles recorded by earlier versions (a `passwordFingerprint`, no version) have their
//! password set from the Secret once. Any other change of the Secret (a label, another
//! key) also sets the password again: idempotent, and one statement per Secret change.

mod password;
pub(crate) mod plan;

use async_trait::async_trait;
use kube::Resource;
use tessera_engine::api::common::ConnectionDetails;
use tessera_engine::managed::{
    CreateIdentity, ExternalClient, Observation, Ownership, ProviderError,
};
use tokio_postgres::error::SqlState;

use crate::api::{ROTATE_PASSWORD_ANNOTATION, Role, RoleObservation};
use tessera_engine::managed::machine::external_name;

use crate::connector::{PostgresClient, deleting};
use crate::error::role_still_referenced;
use crate::ownership::{RoleFacts, mark_literal, role_ownership};
use crate::sql::{ident, validate_identifier};
use password::{FIELD_MANAGER, Source, Sourced, scram_verifier, source_for_role};
use plan::RoleRow;
use tessera_engine::managed::password::Password;

const SELECT_ROLE: &str = "SELECT rolcanlogin, rolcreatedb, rolcreaterole, rolinherit, \
     rolreplication, rolbypassrls, rolsuper, rolconnlimit, COALESCE(rolconfig, '{}'), \
     rolname = current_user, pg_catalog.shobj_description(oid, 'pg_authid') \
     FROM pg_catalog.pg_roles WHERE rolname = $1";

impl PostgresClient {
    /// The role `name` and who it belongs to, seen by the managed resource with `uid`.
    async fn read_role(
        &self,
        name: &str,
        uid: Option<&str>,
    ) -> Result<Option<(RoleRow, Ownership)>, ProviderError> {
        let row = self
            .session
            .query_opt(&format!("read role {name:?}"), SELECT_ROLE, &[&name])
            .await?;
        Ok(row.map(|r| {
            let comment: Option<String> = r.get(10);
            let facts = RoleFacts {
                name,
                comment: comment.as_deref(),
                super_user: r.get(6),
                is_current_user: r.get(9),
            };
            let ownership = role_ownership(&facts, uid);
            (role_row(&r), ownership)
        }))
    }
}

fn role_row(r: &tokio_postgres::Row) -> RoleRow {
    RoleRow {
        login: r.get(0),
        create_db: r.get(1),
        create_role: r.get(2),
        inherit: r.get(3),
        replication: r.get(4),
        bypass_rls: r.get(5),
        super_user: r.get(6),
        connection_limit: r.get(7),
        configuration_parameters: plan::parse_rolconfig(&r.get::<_, Vec<String>>(8)),
    }
}

impl PostgresClient {
    fn connection(&self, name: &str, password: Option<&Password>) -> ConnectionDetails {
        let mut c = ConnectionDetails::new();
        c.insert("username", name);
        c.insert("endpoint", self.session.endpoint());
        c.insert("port", self.session.port().to_string());
        if let Some(p) = password {
            c.insert("password", p.expose());
        }
        c
    }

    /// The password to set on create: the referenced one, the generated one already in
    /// its Secret (from an earlier attempt), or a new one stored before it is used.
    async fn password_for_create(
        &self,
        role: &Role,
        source: &Source,
    ) -> Result<Sourced, ProviderError> {
        if let Some(p) = source.read_fresh(&self.kube).await? {
            return Ok(p);
        }
        match source {
            Source::Reference(_) => Err(missing_reference(source)),
            Source::Generated { .. } => {
                source
                    .store(&self.kube, role, FIELD_MANAGER, Password::generate())
                    .await
            }
        }
    }
}

fn missing_reference(source: &Source) -> ProviderError {
    // Transient, not InvalidSpec: Secrets are not watched, and the Secret may simply not
    // have been created yet.
    ProviderError::Transient(format!(
        "the password {} does not exist; create it or change passwordSecretRef",
        source.describe()
    ))
}

fn rotation_token(role: &Role) -> Option<String> {
    role.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROTATE_PASSWORD_ANNOTATION))
        .cloned()
}

fn recorded(role: &Role) -> RoleObservation {
    role.status
        .as_ref()
        .and_then(|s| s.at_provider.clone())
        .unwrap_or_default()
}

fn observation(row: &RoleRow, previous: RoleObservation) -> RoleObservation {
    RoleObservation {
        privileges: row.privileges(),
        connection_limit: Some(row.connection_limit),
        configuration_parameters: row.configuration_parameters.clone(),
        ..previous
    }
}

/// Records the version of the Secret whose password was just set, and the rotation
/// token it answers.
fn remember_password(role: &mut Role, sourced: &Sourced) {
    let token = rotation_token(role);
    let status = role.status.get_or_insert_with(Default::default);
    let at = status.at_provider.get_or_insert_with(Default::default);
    at.password_secret_version = Some(sourced.version.clone());
    at.password_rotation_token = token;
}

#[async_trait]
impl ExternalClient<Role> for PostgresClient {
    // Deterministic: a role is named by its external name, unique per server (pg_authid), so a create whose result was lost is simply made again.
    fn create_identity(&self) -> CreateIdentity {
        CreateIdentity::Deterministic
    }

    // Roles carry the managed resource's uid in their comment (see crate::ownership).
    fn marks_ownership(&self) -> bool {
        true
    }

    async fn mark(&self, mr: &Role) -> Result<(), ProviderError> {
        let name = external_name(mr);
        validate_identifier("role name", &name)?;
        let sql = format!(
            "COMMENT ON ROLE {} IS {}",
            ident(&name),
            mark_literal(mr.meta().uid.as_deref())?
        );
        self.session
            .execute(&format!("mark role {name:?} as managed by Tessera"), &sql)
            .await
    }

    async fn observe(&self, mr: &mut Role) -> Result<Observation, ProviderError> {
        let name = external_name(mr);
        validate_identifier("role name", &name)?;
        let mr_uid = mr.meta().uid.clone();
        if deleting(mr) {
            return Ok(match self.read_role(&name, mr_uid.as_deref()).await? {
                Some((_, ownership)) => Observation::up_to_date().with_ownership(ownership),
                None => Observation::absent(),
            });
        }
        plan::validate(&mr.spec.for_provider)?;
        let Some((row, ownership)) = self.read_role(&name, mr_uid.as_deref()).await? else {
            return Ok(Observation::absent());
        };
        let previous = recorded(mr);
        let mut diff = plan::diff(&mr.spec.for_provider, &row);

        let mut password = None;
        if let Some(source) = source_for_role(mr, &self.password_namespace) {
            match source.read(&self.kube).await? {
                // Reported as drift, not as an error: update says what is missing.
                None => match source {
                    Source::Reference(_) => diff.push(format!(
                        "password: the {} does not exist",
                        source.describe()
                    )),
                    Source::Generated { .. } => diff.push(format!(
                        "password: the generated {} is missing; a new password will be set",
                        source.describe()
                    )),
                },
                Some(p) => {
                    if previous.password_secret_version.as_deref() != Some(&p.version) {
                        diff.push(format!(
                            "password: the password in {} may have changed since it was last set",
                            source.describe()
                        ));
                    } else {
                        password = Some(p.password);
                    }
                }
            }
            let token = rotation_token(mr);
            if token.is_some() && token != previous.password_rotation_token {
                diff.push(format!(
                    "password: rotation requested ({ROTATE_PASSWORD_ANNOTATION}: {})",
                    token.unwrap_or_default()
                ));
            }
        }

        mr.status.get_or_insert_with(Default::default).at_provider =
            Some(observation(&row, previous));
        let connection = self.connection(&name, password.as_ref());
        let observation = if diff.is_empty() {
            Observation::up_to_date()
        } else {
            Observation::drifted(diff.join("; "))
        };
        Ok(observation
            .with_connection(connection)
            .with_ownership(ownership))
    }

    async fn create(&self, mr: &mut Role) -> Result<ConnectionDetails, ProviderError> {
        let name = external_name(mr);
        validate_identifier("role name", &name)?;
        plan::validate(&mr.spec.for_provider)?;
        let source = source_for_role(mr, &self.password_namespace);
        let password = match &source {
            Some(s) => Some(self.password_for_create(mr, s).await?),
            None => None,
        };
        let verifier = match &password {
            Some(p) => Some(scram_verifier(&p.password).await?),
            None => None,
        };
        // The mark goes in the same implicit transaction as the role: a role Tessera made is
        // never without it, even after a crash.
        let sql = format!(
            "{}; COMMENT ON ROLE {} IS {}",
            plan::create_statements(&name, &mr.spec.for_provider, verifier.as_deref()),
            ident(&name),
            mark_literal(mr.meta().uid.as_deref())?
        );
        let action = format!("create role {name:?}");
        match self.session.batch(&action, &sql).await? {
            Ok(()) => {}
            // Observe found no role a moment ago, so someone else made it meanwhile: never
            // take it over here. The failure is recorded, and the next observe reports
            // whose it is.
            Err(db) if *db.code() == SqlState::DUPLICATE_OBJECT => {
                return Err(ProviderError::Transient(format!(
                    "cannot {action}: a role of that name was created meanwhile by someone else"
                )));
            }
            Err(db) => return Err(self.session.origin().db_error(&action, &db)),
        }
        if let Some(p) = &password {
            remember_password(mr, p);
        }
        Ok(self.connection(&name, password.as_ref().map(|p| &p.password)))
    }

    async fn update(&self, mr: &mut Role) -> Result<ConnectionDetails, ProviderError> {
        let name = external_name(mr);
        validate_identifier("role name", &name)?;
        plan::validate(&mr.spec.for_provider)?;
        let Some((row, _)) = self.read_role(&name, None).await? else {
            return Err(ProviderError::Transient(format!(
                "role {name:?} disappeared before it could be updated"
            )));
        };
        let previous = recorded(mr);

        let mut password = None;
        let mut set_password = false;
        if let Some(source) = source_for_role(mr, &self.password_namespace) {
            let token = rotation_token(mr);
            let rotate = token.is_some() && token != previous.password_rotation_token;
            let current = source.read_fresh(&self.kube).await?;
            let p = match (&source, current) {
                (Source::Reference(_), None) => return Err(missing_reference(&source)),
                (Source::Generated { .. }, Some(p)) if !rotate => p,
                (Source::Generated { .. }, _) => {
                    source
                        .store(&self.kube, mr, FIELD_MANAGER, Password::generate())
                        .await?
                }
                (Source::Reference(_), Some(p)) => p,
            };
            set_password =
                rotate || previous.password_secret_version.as_deref() != Some(&p.version);
            password = Some(p);
        }

        let verifier = match password.as_ref().filter(|_| set_password) {
            Some(p) => Some(scram_verifier(&p.password).await?),
            None => None,
        };
        let sql = plan::update_statements(&name, &mr.spec.for_provider, &row, verifier.as_deref());
        if !sql.is_empty() {
            self.session
                .execute(&format!("update role {name:?}"), &sql)
                .await?;
        }
        if let Some(p) = password.as_ref().filter(|_| set_password) {
            remember_password(mr, p);
        }
        Ok(self.connection(&name, password.as_ref().map(|p| &p.password)))
    }

    async fn delete(&self, mr: &Role) -> Result<(), ProviderError> {
        let name = external_name(mr);
        validate_identifier("role name", &name)?;
        let action = format!("drop role {name:?}");
        let sql = format!("DROP ROLE IF EXISTS {}", ident(&name));
        match self.session.batch(&action, &sql).await? {
            Ok(()) => Ok(()),
            // The runtime backs off: someone must delete or reassign the objects first.
            Err(db) if *db.code() == SqlState::DEPENDENT_OBJECTS_STILL_EXIST => Err(
                ProviderError::Transient(role_still_referenced(&name, db.detail())),
            ),
            Err(db) => Err(self.session.origin().db_error(&action, &db)),
        }
    }
}
