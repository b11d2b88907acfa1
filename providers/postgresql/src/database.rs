//! Databases: `CREATE DATABASE`, `ALTER DATABASE`, `DROP DATABASE`, observed through
//! pg_database.
//!
//! Encoding, locale and template are fixed when a database is created. A spec that asks
//! for others later is an [`ProviderError::InvalidSpec`]; nothing is ever dropped or
//! recreated to satisfy it.

use async_trait::async_trait;
use kube::Resource;
use tessera_engine::api::common::ConnectionDetails;
use tessera_engine::managed::{
    CreateIdentity, ExternalClient, Observation, Ownership, ProviderError,
};
use tokio_postgres::error::SqlState;

use crate::api::{Database, DatabaseObservation, DatabaseParameters};
use tessera_engine::managed::machine::external_name;

use crate::connector::{PostgresClient, deleting};
use crate::ownership::{database_ownership, mark_literal};
use crate::sql::{ident, literal, validate_identifier, validate_literal};

/// A database as pg_database has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DatabaseRow {
    pub owner: String,
    pub encoding: String,
    pub lc_collate: String,
    pub lc_c_type: String,
    pub connection_limit: i32,
    pub allow_connections: bool,
    pub is_template: bool,
}

const SELECT_DATABASE: &str = "SELECT pg_catalog.pg_get_userbyid(datdba)::text, \
     pg_catalog.pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text, \
     datconnlimit, datallowconn, datistemplate, datname = pg_catalog.current_database(), \
     pg_catalog.shobj_description(oid, 'pg_database') \
     FROM pg_catalog.pg_database WHERE datname = $1";

/// Checks names and values before any statement.
pub(crate) fn validate(params: &DatabaseParameters) -> Result<(), ProviderError> {
    if let Some(owner) = &params.owner {
        validate_identifier("owner", owner)?;
    }
    if let Some(template) = &params.template {
        validate_identifier("template", template)?;
    }
    for (what, value) in [
        ("encoding", &params.encoding),
        ("lcCollate", &params.lc_collate),
        ("lcCType", &params.lc_c_type),
    ] {
        if let Some(v) = value {
            validate_literal(what, v)?;
        }
    }
    if let Some(limit) = params.connection_limit
        && limit < -1
    {
        return Err(ProviderError::InvalidSpec(format!(
            "connectionLimit must be -1 (no limit) or more, not {limit}"
        )));
    }
    Ok(())
}

/// The immutable fields the spec wants changed, as an error that says what to do.
/// `encoding` is the spec's encoding as PostgreSQL names it (`utf-8` -> `UTF8`).
pub(crate) fn immutable_conflicts(
    want: &DatabaseParameters,
    encoding: Option<&str>,
    have: &DatabaseRow,
    created_from: Option<&str>,
) -> Option<ProviderError> {
    let mut problems = Vec::new();
    let mut check = |field: &str, want: Option<&str>, have: &str| {
        if let Some(w) = want
            && w != have
        {
            problems.push(format!(
                "{field} cannot change after creation: database has {have}, spec asks {w}"
            ));
        }
    };
    check("encoding", encoding, &have.encoding);
    check("lcCollate", want.lc_collate.as_deref(), &have.lc_collate);
    check("lcCType", want.lc_c_type.as_deref(), &have.lc_c_type);
    if let Some(created_from) = created_from {
        check("template", want.template.as_deref(), created_from);
    }
    if problems.is_empty() {
        None
    } else {
        Some(ProviderError::InvalidSpec(format!(
            "{}; create a new Database instead",
            problems.join("; ")
        )))
    }
}

/// What differs in the updatable fields, in words.
pub(crate) fn diff(want: &DatabaseParameters, have: &DatabaseRow) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(w) = &want.owner
        && *w != have.owner
    {
        out.push(format!("owner: want {w}, have {}", have.owner));
    }
    if let Some(w) = want.connection_limit
        && w != have.connection_limit
    {
        out.push(format!(
            "connectionLimit: want {w}, have {}",
            have.connection_limit
        ));
    }
    if let Some(w) = want.allow_connections
        && w != have.allow_connections
    {
        out.push(format!(
            "allowConnections: want {w}, have {}",
            have.allow_connections
        ));
    }
    if let Some(w) = want.is_template
        && w != have.is_template
    {
        out.push(format!("isTemplate: want {w}, have {}", have.is_template));
    }
    out
}

/// `CREATE DATABASE` with every option the spec sets.
pub(crate) fn create_statement(name: &str, want: &DatabaseParameters) -> String {
    let mut sql = format!("CREATE DATABASE {}", ident(name));
    let mut options = Vec::new();
    if let Some(o) = &want.owner {
        options.push(format!("OWNER {}", ident(o)));
    }
    if let Some(t) = &want.template {
        options.push(format!("TEMPLATE {}", ident(t)));
    }
    if let Some(e) = &want.encoding {
        options.push(format!("ENCODING {}", literal(e)));
    }
    if let Some(l) = &want.lc_collate {
        options.push(format!("LC_COLLATE {}", literal(l)));
    }
    if let Some(l) = &want.lc_c_type {
        options.push(format!("LC_CTYPE {}", literal(l)));
    }
    options.extend(alterable_options(want, None));
    if !options.is_empty() {
        sql.push_str(" WITH ");
        sql.push_str(&options.join(" "));
    }
    sql
}

/// CONNECTION LIMIT, ALLOW_CONNECTIONS and IS_TEMPLATE options: those the spec sets, or
/// with `have`, those that differ from it.
fn alterable_options(want: &DatabaseParameters, have: Option<&DatabaseRow>) -> Vec<String> {
    let mut options = Vec::new();
    if let Some(w) = want.connection_limit
        && have.is_none_or(|h| h.connection_limit != w)
    {
        options.push(format!("CONNECTION LIMIT {w}"));
    }
    if let Some(w) = want.allow_connections
        && have.is_none_or(|h| h.allow_connections != w)
    {
        options.push(format!("ALLOW_CONNECTIONS {w}"));
    }
    if let Some(w) = want.is_template
        && have.is_none_or(|h| h.is_template != w)
    {
        options.push(format!("IS_TEMPLATE {w}"));
    }
    options
}

/// The statements that make the updatable fields of `have` match `want`; empty when none differ.
pub(crate) fn update_statements(
    name: &str,
    want: &DatabaseParameters,
    have: &DatabaseRow,
) -> String {
    let mut statements = Vec::new();
    if let Some(o) = &want.owner
        && *o != have.owner
    {
        statements.push(format!(
            "ALTER DATABASE {} OWNER TO {}",
            ident(name),
            ident(o)
        ));
    }
    let options = alterable_options(want, Some(have));
    if !options.is_empty() {
        statements.push(format!(
            "ALTER DATABASE {} WITH {}",
            ident(name),
            options.join(" ")
        ));
    }
    statements.join("; ")
}

impl PostgresClient {
    /// The database `name` and who it belongs to, seen by the managed resource with `uid`.
    async fn read_database(
        &self,
        name: &str,
        uid: Option<&str>,
    ) -> Result<Option<(DatabaseRow, Ownership)>, ProviderError> {
        let row = self
            .session
            .query_opt(
                &format!("read database {name:?}"),
                SELECT_DATABASE,
                &[&name],
            )
            .await?;
        Ok(row.map(|r| {
            let comment: Option<String> = r.get(8);
            let ownership = database_ownership(name, comment.as_deref(), r.get(7), uid);
            let row = DatabaseRow {
                owner: r.get(0),
                encoding: r.get(1),
                lc_collate: r.get(2),
                lc_c_type: r.get(3),
                connection_limit: r.get(4),
                allow_connections: r.get(5),
                is_template: r.get(6),
            };
            (row, ownership)
        }))
    }

    /// `COMMENT ON DATABASE` with the mark of the managed resource with `uid`.
    async fn mark_database(&self, name: &str, uid: Option<&str>) -> Result<(), ProviderError> {
        let sql = format!(
            "COMMENT ON DATABASE {} IS {}",
            ident(name),
            mark_literal(uid)?
        );
        self.session
            .execute(
                &format!("mark database {name:?} as managed by Tessera"),
                &sql,
            )
            .await
    }

    /// The spec's encoding as PostgreSQL names it, so that `utf-8` and `UTF8` compare equal.
    async fn canonical_encoding(
        &self,
        want: &DatabaseParameters,
    ) -> Result<Option<String>, ProviderError> {
        let Some(e) = &want.encoding else {
            return Ok(None);
        };
        let row = self
            .session
            .query_opt(
                "look up an encoding",
                "SELECT pg_catalog.pg_encoding_to_char(pg_catalog.pg_char_to_encoding($1))::text",
                &[e],
            )
            .await?;
        match row.map(|r| r.get::<_, String>(0)) {
            Some(canonical) if !canonical.is_empty() => Ok(Some(canonical)),
            _ => Err(ProviderError::InvalidSpec(format!(
                "encoding {e:?} is not known to PostgreSQL"
            ))),
        }
    }
}

fn created_from(mr: &Database) -> Option<String> {
    mr.status
        .as_ref()
        .and_then(|s| s.at_provider.as_ref())
        .and_then(|a| a.template.clone())
}

#[async_trait]
impl ExternalClient<Database> for PostgresClient {
    // Deterministic: a database is named by its external name, unique per server (pg_database), so a create whose result was lost is simply made again.
    fn create_identity(&self) -> CreateIdentity {
        CreateIdentity::Deterministic
    }

    // Databases carry the managed resource's uid in their comment (see crate::ownership).
    fn marks_ownership(&self) -> bool {
        true
    }

    async fn mark(&self, mr: &Database) -> Result<(), ProviderError> {
        let name = external_name(mr);
        validate_identifier("database name", &name)?;
        self.mark_database(&name, mr.meta().uid.as_deref()).await
    }

    async fn observe(&self, mr: &mut Database) -> Result<Observation, ProviderError> {
        let name = external_name(mr);
        validate_identifier("database name", &name)?;
        let uid = mr.meta().uid.clone();
        if deleting(mr) {
            return Ok(match self.read_database(&name, uid.as_deref()).await? {
                Some((_, ownership)) => Observation::up_to_date().with_ownership(ownership),
                None => Observation::absent(),
            });
        }
        validate(&mr.spec.for_provider)?;
        let Some((row, ownership)) = self.read_database(&name, uid.as_deref()).await? else {
            return Ok(Observation::absent());
        };
        let created_from = created_from(mr);
        // Immutable-field conflicts matter only for a database that may be managed: one
        // that is not, is reported as such instead.
        let managed = matches!(ownership, Ownership::Ours)
            || mr.spec.resource.read_only()
            || mr.spec.resource.adopt_existing;
        mr.status.get_or_insert_with(Default::default).at_provider = Some(DatabaseObservation {
            owner: Some(row.owner.clone()),
            encoding: Some(row.encoding.clone()),
            lc_collate: Some(row.lc_collate.clone()),
            lc_c_type: Some(row.lc_c_type.clone()),
            template: created_from.clone(),
            connection_limit: Some(row.connection_limit),
            allow_connections: Some(row.allow_connections),
            is_template: Some(row.is_template),
        });
        let encoding = self.canonical_encoding(&mr.spec.for_provider).await?;
        if let Some(err) = immutable_conflicts(
            &mr.spec.for_provider,
            encoding.as_deref(),
            &row,
            created_from.as_deref(),
        ) && managed
        {
            return Err(err);
        }
        let diff = diff(&mr.spec.for_provider, &row);
        let observation = if diff.is_empty() {
            Observation::up_to_date()
        } else {
            Observation::drifted(diff.join("; "))
        };
        Ok(observation.with_ownership(ownership))
    }

    async fn create(&self, mr: &mut Database) -> Result<ConnectionDetails, ProviderError> {
        let name = external_name(mr);
        validate_identifier("database name", &name)?;
        validate(&mr.spec.for_provider)?;
        let action = format!("create database {name:?}");
        self.canonical_encoding(&mr.spec.for_provider).await?;
        if let Some(owner) = &mr.spec.for_provider.owner {
            self.require_roles(&action, &[owner]).await?;
        }
        let mark = mark_literal(mr.meta().uid.as_deref())?;
        let sql = create_statement(&name, &mr.spec.for_provider);
        match self.session.batch(&action, &sql).await? {
            Ok(()) => {}
            // Observe found no database a moment ago, so someone else made it meanwhile:
            // never take it over here. The failure is recorded, and the next observe
            // reports whose it is.
            Err(db) if *db.code() == SqlState::DUPLICATE_DATABASE => {
                return Err(ProviderError::Transient(format!(
                    "cannot {action}: a database of that name was created meanwhile by someone else"
                )));
            }
            Err(db) => return Err(self.session.origin().db_error(&action, &db)),
        }
        // CREATE DATABASE cannot run in a transaction, so the mark follows it. A crash in
        // between leaves an unmarked database and an unrecorded create, which the runtime
        // marks on the next pass. A failed mark undoes the fresh, empty database, so that a
        // recorded failure never leaves an unmarked database of Tessera's behind.
        let comment = format!("COMMENT ON DATABASE {} IS {mark}", ident(&name));
        if let Err(e) = self.session.execute(&action, &comment).await {
            let drop = format!("DROP DATABASE IF EXISTS {}", ident(&name));
            let _ = self.session.execute(&action, &drop).await;
            return Err(e);
        }
        if let Some(t) = &mr.spec.for_provider.template {
            let status = mr.status.get_or_insert_with(Default::default);
            status
                .at_provider
                .get_or_insert_with(Default::default)
                .template = Some(t.clone());
        }
        Ok(ConnectionDetails::new())
    }

    async fn update(&self, mr: &mut Database) -> Result<ConnectionDetails, ProviderError> {
        let name = external_name(mr);
        validate_identifier("database name", &name)?;
        validate(&mr.spec.for_provider)?;
        let Some((row, _)) = self.read_database(&name, None).await? else {
            return Err(ProviderError::Transient(format!(
                "database {name:?} disappeared before it could be updated"
            )));
        };
        let encoding = self.canonical_encoding(&mr.spec.for_provider).await?;
        if let Some(err) = immutable_conflicts(
            &mr.spec.for_provider,
            encoding.as_deref(),
            &row,
            created_from(mr).as_deref(),
        ) {
            return Err(err);
        }
        let sql = update_statements(&name, &mr.spec.for_provider, &row);
        if !sql.is_empty() {
            let action = format!("update database {name:?}");
            if let Some(owner) = &mr.spec.for_provider.owner {
                self.require_roles(&action, &[owner]).await?;
            }
            self.session.execute(&action, &sql).await?;
        }
        Ok(ConnectionDetails::new())
    }

    async fn delete(&self, mr: &Database) -> Result<(), ProviderError> {
        let name = external_name(mr);
        validate_identifier("database name", &name)?;
        let Some((row, _)) = self.read_database(&name, None).await? else {
            return Ok(());
        };
        let action = format!("drop database {name:?}");
        if row.is_template {
            // PostgreSQL refuses to drop a template database.
            let sql = format!("ALTER DATABASE {} WITH IS_TEMPLATE false", ident(&name));
            self.session.execute(&action, &sql).await?;
        }
        // Active sessions make this fail with object_in_use: transient, retried with backoff.
        let sql = format!("DROP DATABASE IF EXISTS {}", ident(&name));
        self.session.execute(&action, &sql).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> DatabaseRow {
        DatabaseRow {
            owner: "postgres".into(),
            encoding: "UTF8".into(),
            lc_collate: "C.UTF-8".into(),
            lc_c_type: "C.UTF-8".into(),
            connection_limit: -1,
            allow_connections: true,
            is_template: false,
        }
    }

    #[test]
    fn changes_of_fields_fixed_at_creation_are_refused_with_advice() {
        struct Case {
            reason: &'static str,
            want: DatabaseParameters,
            encoding: Option<&'static str>,
            created_from: Option<&'static str>,
            error: Option<&'static str>,
        }
        let cases = vec![
            Case {
                reason: "unset immutable fields are not checked",
                want: DatabaseParameters::default(),
                encoding: None,
                created_from: None,
                error: None,
            },
            Case {
                reason: "the same values are fine",
                want: DatabaseParameters {
                    lc_collate: Some("C.UTF-8".into()),
                    ..DatabaseParameters::default()
                },
                encoding: Some("UTF8"),
                created_from: None,
                error: None,
            },
            Case {
                reason: "another encoding is refused, saying what the database has",
                want: DatabaseParameters::default(),
                encoding: Some("LATIN1"),
                created_from: None,
                error: Some(
                    "encoding cannot change after creation: database has UTF8, spec asks LATIN1; \
                     create a new Database instead",
                ),
            },
            Case {
                reason: "several conflicts are all listed",
                want: DatabaseParameters {
                    lc_collate: Some("C".into()),
                    lc_c_type: Some("C".into()),
                    ..DatabaseParameters::default()
                },
                encoding: None,
                created_from: None,
                error: Some(
                    "lcCollate cannot change after creation: database has C.UTF-8, spec asks C; \
                     lcCType cannot change after creation: database has C.UTF-8, spec asks C; \
                     create a new Database instead",
                ),
            },
            Case {
                reason: "the template is checked while status remembers it",
                want: DatabaseParameters {
                    template: Some("template1".into()),
                    ..DatabaseParameters::default()
                },
                encoding: None,
                created_from: Some("template0"),
                error: Some(
                    "template cannot change after creation: database has template0, spec asks template1",
                ),
            },
            Case {
                reason: "the template is not checked when nothing remembers it",
                want: DatabaseParameters {
                    template: Some("template1".into()),
                    ..DatabaseParameters::default()
                },
                encoding: None,
                created_from: None,
                error: None,
            },
        ];
        for c in cases {
            let got = immutable_conflicts(&c.want, c.encoding, &row(), c.created_from);
            match (got, c.error) {
                (None, None) => {}
                (Some(ProviderError::InvalidSpec(msg)), Some(want)) => {
                    assert!(msg.contains(want), "{}: {msg}", c.reason)
                }
                (got, want) => panic!("{}: got {got:?}, want {want:?}", c.reason),
            }
        }
    }

    #[test]
    fn diff_and_update_cover_owner_limit_connections_and_template_flag() {
        let want = DatabaseParameters {
            owner: Some("shop".into()),
            connection_limit: Some(10),
            allow_connections: Some(true),
            is_template: Some(true),
            ..DatabaseParameters::default()
        };
        assert_eq!(
            diff(&want, &row()),
            vec![
                "owner: want shop, have postgres",
                "connectionLimit: want 10, have -1",
                "isTemplate: want true, have false",
            ]
        );
        assert_eq!(
            update_statements("shop", &want, &row()),
            "ALTER DATABASE \"shop\" OWNER TO \"shop\"; \
             ALTER DATABASE \"shop\" WITH CONNECTION LIMIT 10 IS_TEMPLATE true"
        );
        assert_eq!(
            update_statements("shop", &DatabaseParameters::default(), &row()),
            "",
            "an empty spec changes nothing"
        );
    }

    #[test]
    fn create_statement_quotes_names_and_values() {
        let want = DatabaseParameters {
            owner: Some("o\"wner".into()),
            encoding: Some("UTF8".into()),
            lc_collate: Some("it's".into()),
            template: Some("template0".into()),
            connection_limit: Some(3),
            ..DatabaseParameters::default()
        };
        assert_eq!(
            create_statement("my db", &want),
            "CREATE DATABASE \"my db\" WITH OWNER \"o\"\"wner\" TEMPLATE \"template0\" \
             ENCODING 'UTF8' LC_COLLATE 'it''s' CONNECTION LIMIT 3"
        );
        assert_eq!(
            create_statement("shop", &DatabaseParameters::default()),
            "CREATE DATABASE \"shop\""
        );
    }

    #[test]
    fn validation_rejects_bad_names_and_limits() {
        let bad_owner = DatabaseParameters {
            owner: Some(String::new()),
            ..DatabaseParameters::default()
        };
        assert!(
            matches!(validate(&bad_owner), Err(ProviderError::InvalidSpec(m)) if m == "owner must not be empty")
        );
        let bad_limit = DatabaseParameters {
            connection_limit: Some(-5),
            ..DatabaseParameters::default()
        };
        assert!(matches!(
            validate(&bad_limit),
            Err(ProviderError::InvalidSpec(_))
        ));
        let nul = DatabaseParameters {
            encoding: Some("UTF\08".into()),
            ..DatabaseParameters::default()
        };
        assert!(matches!(validate(&nul), Err(ProviderError::InvalidSpec(_))));
    }
}
