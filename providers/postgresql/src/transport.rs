//! Opening the connection a ProviderConfig's `sslMode` asks for.
//!
//! | sslMode                          | stream                           | a password request is refused by          |
//! |----------------------------------|----------------------------------|-------------------------------------------|
//! | `disable`                        | TCP                              | [`crate::guard`]                          |
//! | `prefer`                         | TCP, then TLS if the server can  | [`crate::guard`], on either               |
//! | `require`, `verify-ca`, `-full`  | TLS                              | [`crate::guard`] and channel binding      |
//!
//! Channel binding ([`crate::tls::channel_binding`]) also refuses what the guard lets
//! through: a server that admits the user without a password, or offers SCRAM without
//! binding it to the TLS session.

use std::io;
use std::time::Duration;

use tessera_engine::managed::ProviderError;
use tokio::net::TcpStream;
use tokio_postgres::{Client, Config, NoTls};
use tracing::warn;

use crate::api::SslMode;
use crate::guard::{AuthWatch, Guarded, GuardedMakeTls, guarded_tls};
use crate::tls;

/// Why a connection could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The ProviderConfig or its Secret does not allow a connection (already explained).
    Setup(ProviderError),
    /// The server could not be reached.
    Tcp(io::Error),
    /// tokio-postgres failed (TLS, authentication, or the server's refusal).
    Postgres(tokio_postgres::Error),
}

/// Connects as `config` says, encrypting and checking the server as `mode` says;
/// `ca_pem` is key `ca.crt` of the credentials Secret. The connection's task is spawned
/// and logs under `provider_config` when it ends.
pub(crate) async fn open(
    provider_config: &str,
    mode: SslMode,
    config: &Config,
    host: &str,
    port: u16,
    ca_pem: Option<&[u8]>,
) -> Result<Client, OpenError> {
    let timeout = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(Duration::from_secs(10));
    match (mode, tls::verification(mode)) {
        (SslMode::Disable, _) | (_, None) => {
            let tcp = tcp(host, port, timeout).await.map_err(OpenError::Tcp)?;
            let (client, conn) = config
                .connect_raw(Guarded::new(tcp, AuthWatch::messages()), NoTls)
                .await
                .map_err(OpenError::Postgres)?;
            spawn_connection(provider_config, conn);
            Ok(client)
        }
        (SslMode::Prefer, Some(verification)) => {
            let mut make = tls::connector(verification, ca_pem)
                .map_err(|e| OpenError::Setup(tls::setup_error(provider_config, mode, e)))?;
            let tls = guarded_tls::<Guarded<TcpStream>, _>(&mut make, host).map_err(|e| {
                OpenError::Setup(ProviderError::Transient(format!(
                    "cannot set up TLS for PostgreSQL at {host}:{port}: {e}"
                )))
            })?;
            let tcp = tcp(host, port, timeout).await.map_err(OpenError::Tcp)?;
            let (client, conn) = config
                .connect_raw(Guarded::new(tcp, AuthWatch::ssl_answer()), tls)
                .await
                .map_err(OpenError::Postgres)?;
            spawn_connection(provider_config, conn);
            Ok(client)
        }
        (_, Some(verification)) => {
            let make = tls::connector(verification, ca_pem)
                .map_err(|e| OpenError::Setup(tls::setup_error(provider_config, mode, e)))?;
            let (client, conn) = config
                .connect(GuardedMakeTls(make))
                .await
                .map_err(OpenError::Postgres)?;
            spawn_connection(provider_config, conn);
            Ok(client)
        }
    }
}

/// A TCP connection with the socket options tokio-postgres would set itself.
async fn tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connection timed out"))??;
    stream.set_nodelay(true)?;
    // Lets the session cache notice a server that vanished without closing the socket.
    socket2::SockRef::from(&stream).set_keepalive(true)?;
    Ok(stream)
}

fn spawn_connection<S, T>(provider_config: &str, conn: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let provider_config = provider_config.to_string();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            warn!(%provider_config, error = %e, "PostgreSQL connection ended");
        }
    });
}
