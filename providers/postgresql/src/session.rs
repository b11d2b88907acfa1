//! One connection to a PostgreSQL server, made from a ProviderConfig and its credentials.
//!
//! tokio-postgres pipelines concurrent queries over one connection, so all managed
//! resources of a ProviderConfig share one [`Session`]. Statements never use explicit
//! transactions (which would need the connection to themselves); a multi-statement
//! [`Session::batch`] runs as one implicit transaction instead.

use std::time::Duration;

use tessera_engine::managed::ProviderError;
use tessera_engine::managed::credentials::Credentials;
use tokio_postgres::Row;
use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::types::ToSql;
use tracing::debug;

use crate::api::ProviderConfigSpec;
use crate::error::Origin;
use crate::tls;
use crate::transport::{self, OpenError};

/// How long connecting may take before it counts as a transient failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one statement may take; catalog reads and DDL are quick unless blocked by a lock.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to PostgreSQL as the administrative user of one ProviderConfig.
pub struct Session {
    pg: tokio_postgres::Client,
    /// Set when a statement was abandoned before PostgreSQL answered: its caller timed out
    /// (the runtime's external-call timeout drops the call), or the statement timeout fired.
    /// The connection may be hung (a stalled server or network path keeps the socket open,
    /// and answers keepalives), so the session is not reused.
    abandoned: std::sync::atomic::AtomicBool,
    origin: Origin,
    endpoint: String,
    port: u16,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("provider_config", &self.origin.provider_config)
            .field("username", &self.origin.username)
            .field("endpoint", &self.endpoint)
            .field("port", &self.port)
            .finish()
    }
}

impl Session {
    /// Connects with the credentials of the ProviderConfig named `provider_config`.
    ///
    /// # Errors
    ///
    /// [`ProviderError::Config`] when the Secret lacks a key, the port is not a number,
    /// PostgreSQL rejects the credentials, the default database does not exist, TLS is
    /// required but not offered, the server's certificate fails the check `sslMode` asks
    /// for, the server asks for a cleartext or MD5 password, or TLS is required and the
    /// server does not offer SCRAM with channel binding (see [`crate::transport`]);
    /// [`ProviderError::Transient`] when the server cannot be reached.
    pub async fn connect(
        provider_config: &str,
        spec: &ProviderConfigSpec,
        creds: &Credentials,
    ) -> Result<Session, ProviderError> {
        let endpoint = creds.require("endpoint")?;
        let username = creds.require("username")?;
        let password = creds.require("password")?;
        let port = match creds.optional("port")? {
            None => 5432,
            // The value is not quoted: a key of a credentials Secret may hold anything,
            // even a password pasted into the wrong key.
            Some(p) => p.trim().parse::<u16>().map_err(|_| {
                ProviderError::Config(format!(
                    "ProviderConfig {provider_config:?}: key \"port\" of its credentials Secret \
                     is not a port number (1-65535)"
                ))
            })?,
        };
        let origin = Origin {
            provider_config: provider_config.to_string(),
            username: username.clone(),
        };

        let mut config = tokio_postgres::Config::new();
        config
            .host(&endpoint)
            .port(port)
            .user(&username)
            .password(password.as_bytes())
            .dbname(&spec.default_database)
            .application_name("tessera-provider-postgresql")
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .ssl_mode(tls::pg_ssl_mode(spec.ssl_mode))
            .channel_binding(tls::channel_binding(spec.ssl_mode));

        let action = format!("connect to PostgreSQL at {endpoint}:{port}");
        let ca = creds.optional("ca.crt")?;
        let connected = transport::open(
            provider_config,
            spec.ssl_mode,
            &config,
            &endpoint,
            port,
            ca.as_deref().map(str::as_bytes),
        )
        .await;
        let pg = connected.map_err(|e| match e {
            OpenError::Setup(e) => e,
            OpenError::Tcp(e) => ProviderError::Transient(format!(
                "cannot {action}: error connecting to server: {e}"
            )),
            OpenError::Postgres(e) => {
                if let Some(db) = e.as_db_error()
                    && *db.code() == SqlState::UNDEFINED_DATABASE
                {
                    return ProviderError::Config(format!(
                        "ProviderConfig {provider_config:?}: database {:?} does not exist; \
                         create it or set spec.defaultDatabase",
                        spec.default_database
                    ));
                }
                let server = format!("{endpoint}:{port}");
                tls::refusal(provider_config, spec.ssl_mode, &server, &username, &e)
                    .unwrap_or_else(|| origin.error(&action, &e))
            }
        })?;
        debug!(provider_config, %endpoint, port, "connected to PostgreSQL");
        Ok(Session {
            pg,
            abandoned: Default::default(),
            origin,
            endpoint,
            port,
        })
    }

    /// Whether a new session is needed: the connection is gone, or a statement on it was
    /// abandoned without an answer (see [`Session::abandoned`]).
    pub fn is_closed(&self) -> bool {
        self.pg.is_closed() || self.abandoned()
    }

    /// Whether a statement on this session was abandoned before PostgreSQL answered.
    pub fn abandoned(&self) -> bool {
        self.abandoned.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks the session abandoned unless [`Answer::got`] is called before it is dropped
    /// (a dropped statement future drops it unanswered).
    fn awaiting_answer(&self) -> Answer<'_> {
        Answer {
            session: self,
            answered: false,
        }
    }

    /// The server's host name or address, from the credentials Secret.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Runs a parameterised query; `action` says what it is for in error messages.
    pub(crate) async fn query(
        &self,
        action: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, ProviderError> {
        let mut answer = self.awaiting_answer();
        match tokio::time::timeout(STATEMENT_TIMEOUT, self.pg.query(sql, params)).await {
            Ok(result) => answer
                .got(result)
                .map_err(|e| self.origin.error(action, &e)),
            Err(_) => Err(timed_out(action)),
        }
    }

    /// Runs a parameterised query that returns at most one row.
    pub(crate) async fn query_opt(
        &self,
        action: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, ProviderError> {
        let mut answer = self.awaiting_answer();
        match tokio::time::timeout(STATEMENT_TIMEOUT, self.pg.query_opt(sql, params)).await {
            Ok(result) => answer
                .got(result)
                .map_err(|e| self.origin.error(action, &e)),
            Err(_) => Err(timed_out(action)),
        }
    }

    /// Runs statements built with [`crate::sql`] quoting; several statements separated by
    /// `;` run as one implicit transaction. PostgreSQL's own errors come back as
    /// `Ok(Err(db_error))` for callers that treat some codes specially (a role that already
    /// exists, a role that still owns objects); every other failure is classified.
    pub(crate) async fn batch(
        &self,
        action: &str,
        sql: &str,
    ) -> Result<Result<(), DbError>, ProviderError> {
        let mut answer = self.awaiting_answer();
        let result = tokio::time::timeout(STATEMENT_TIMEOUT, self.pg.batch_execute(sql)).await;
        match result.map(|r| answer.got(r)) {
            Ok(Ok(())) => Ok(Ok(())),
            Ok(Err(e)) => match e.as_db_error() {
                Some(db) => Ok(Err(db.clone())),
                None => Err(self.origin.error(action, &e)),
            },
            // Dropping the future does not cancel the statement on the server; statements
            // are idempotent DDL, so the next reconcile copes with either outcome.
            Err(_) => Err(timed_out(action)),
        }
    }

    /// Like [`Session::batch`], classifying every error.
    pub(crate) async fn execute(&self, action: &str, sql: &str) -> Result<(), ProviderError> {
        self.batch(action, sql)
            .await?
            .map_err(|db| self.origin.db_error(action, &db))
    }
}

/// Guard of one statement: drops unanswered (the statement future was dropped, or timed
/// out) mark the session abandoned.
struct Answer<'a> {
    session: &'a Session,
    answered: bool,
}

impl Answer<'_> {
    /// Records that PostgreSQL answered (with a result or an error), and passes it on.
    fn got<T>(&mut self, result: T) -> T {
        self.answered = true;
        result
    }
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.session
                .abandoned
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn timed_out(action: &str) -> ProviderError {
    ProviderError::Unanswered(format!(
        "cannot {action}: PostgreSQL did not answer within {}s",
        STATEMENT_TIMEOUT.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tessera_engine::managed::credentials::Credentials;

    use super::*;

    #[tokio::test]
    async fn a_port_that_is_no_number_is_refused_without_quoting_the_value() {
        let data = BTreeMap::from([
            ("endpoint".to_string(), b"127.0.0.1".to_vec()),
            ("username".to_string(), b"admin".to_vec()),
            ("password".to_string(), b"pw".to_vec()),
            ("port".to_string(), b"hunter2-secret".to_vec()),
        ]);
        let creds = Credentials::from_data("pc", "creds", data);
        let spec: ProviderConfigSpec = serde_json::from_value(serde_json::json!({
            "credentials": {"source": "Secret", "secretRef": {"name": "creds", "namespace": "ns"}}
        }))
        .expect("a spec");
        match Session::connect("pc", &spec, &creds).await {
            Err(ProviderError::Config(msg)) => {
                assert!(msg.contains("not a port number"), "{msg}");
                assert!(!msg.contains("hunter2"), "the value leaked: {msg}");
            }
            Err(other) => panic!("want a Config error, got {other}"),
            Ok(_) => panic!("want a Config error, got a session"),
        }
    }
}
