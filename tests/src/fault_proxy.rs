//! A TCP proxy that injects network faults between a controller and an external system
//! (PostgreSQL, OpenBao, moto, the Harbor API simulator): latency on every chunk it
//! forwards, connections reset when they open or in the middle of a stream, and stalls
//! (a connection that is accepted and then never answered). The faults can be changed
//! while connections are open; [`Faults::default`] forwards everything unchanged.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The faults the proxy injects; each connection draws its fate when it opens, and each
/// forwarded chunk draws again for a reset in the middle of the stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Delay before each chunk is forwarded, in both directions.
    pub latency: Duration,
    /// Chance (0 to 1) that a new connection is reset at once.
    pub reset_on_connect: f64,
    /// Chance (0 to 1) per forwarded chunk that the connection is reset there.
    pub reset_mid_stream: f64,
    /// Chance (0 to 1) that a new connection is accepted and then never answered.
    pub stall: f64,
    /// The upstream looks hung: every new connection stalls, and an open connection that
    /// carries anything while this is set becomes a black hole for good (the proxy keeps it
    /// open and forwards nothing, as a dead network path whose sockets stay open).
    pub stall_all: bool,
}

/// What the proxy did, for tests to check that the faults happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted.
    pub connections: u64,
    /// Connections reset on open or mid-stream.
    pub resets: u64,
    /// Connections stalled.
    pub stalls: u64,
}

/// A running proxy; stops accepting (and drops its open connections) when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    faults: watch::Sender<Faults>,
    stats: Arc<Mutex<ProxyStats>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`. Runs on the current
    /// tokio runtime.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (faults, rx) = watch::channel(Faults::default());
        let stats = Arc::new(Mutex::new(ProxyStats::default()));
        let counted = stats.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                counted.lock().expect("stats").connections += 1;
                connections.spawn(serve(client, upstream, rx.clone(), counted.clone()));
                // Reap finished connections so the set stays small.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(FaultProxy {
            addr,
            faults,
            stats,
            task,
        })
    }

    /// The address to give the controller instead of the upstream's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the faults; stalled connections are released when stalls are switched off
    /// (they are then closed, as a hung server that finally gives up).
    pub fn set(&self, faults: Faults) {
        self.faults.send_replace(faults);
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        *self.stats.lock().expect("stats")
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn chance(p: f64) -> bool {
    p > 0.0 && rand::rng().random_bool(p.min(1.0))
}

/// Closes `stream` with a TCP reset (SO_LINGER 0) instead of an orderly shutdown.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    mut faults: watch::Receiver<Faults>,
    stats: Arc<Mutex<ProxyStats>>,
) {
    let now = faults.borrow_and_update().clone();
    if now.stall_all || chance(now.stall) {
        stats.lock().expect("stats").stalls += 1;
        // Hold the connection, read nothing, answer nothing, until stalls are switched off.
        let _ = faults.wait_for(|f| !f.stall_all && f.stall == 0.0).await;
        return;
    }
    if chance(now.reset_on_connect) {
        stats.lock().expect("stats").resets += 1;
        reset(client);
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset(client);
        return;
    };
    let (mut client, mut server) = (client, server);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let reset_here = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        // Either direction ending (or resetting) ends both.
        tokio::select! {
            r = pump(client_read, server_write, faults.clone()) => r,
            r = pump(server_read, client_write, faults) => r,
        }
    };
    if reset_here {
        stats.lock().expect("stats").resets += 1;
        reset(client);
        reset(server);
    }
}

/// Forwards chunks from `from` to `to` with the current latency; returns `true` when the
/// connection is to be reset, `false` when a side closed it.
async fn pump(
    mut from: tokio::net::tcp::ReadHalf<'_>,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    faults: watch::Receiver<Faults>,
) -> bool {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let now = faults.borrow().clone();
        if now.stall_all {
            // Swallow everything until the other side gives up on the connection.
            while let Ok(n) = from.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            return false;
        }
        if !now.latency.is_zero() {
            tokio::time::sleep(now.latency).await;
        }
        if chance(now.reset_mid_stream) {
            return true;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return false;
        }
    }
}
