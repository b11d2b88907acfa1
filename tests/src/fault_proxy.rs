//! A TCP proxy that injects network faults between a controller and an external system
//! (PostgreSQL, OpenBao, moto, the Harbor API simulator): latency on every chunk it
//! forwards, connections reset when they open or in the middle of a stream, and stalls
//! (a connection that is accepted and then never answered). Besides the faults drawn by
//! chance, a chosen connection (counted from the last [`FaultProxy::set`]) can be stalled
//! and another reset when its first answer comes back, so that a test sees both kinds
//! whatever the draws; and the answer to a chosen request can be lost (the upstream
//! carried it out, the client is cut off before the answer), or a chosen request be
//! answered with a server error by the proxy itself (the upstream never sees it). The
//! faults can be changed while connections are open;
//! [`Faults::default`] forwards everything unchanged.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// The n-th connection opened after these faults were set (1 = the first) is accepted
    /// and never answered, as with `stall`.
    pub stall_connection: Option<u64>,
    /// Once after these faults were set: the first answer the upstream sends on the n-th
    /// connection opened since (1 = the first) or a later one is dropped and that
    /// connection reset (the request reached the upstream, its answer is lost). A later
    /// one takes the turn when the n-th is stalled or reset by chance first.
    pub reset_connection: Option<u64>,
    /// Once after these faults were set: the answer to the first request that contains
    /// this text in one chunk the proxy reads (an HTTP request line such as
    /// `POST /v1/secret/data/app `, or `Action=CreateDBInstance` of an AWS query request)
    /// is dropped and its connection reset. The upstream carried the request out; the
    /// client never hears.
    pub lose_answer_to: Option<String>,
    /// Once after these faults were set: the first request that contains this text in one
    /// chunk the proxy reads (as for `lose_answer_to`) is not forwarded; the proxy answers
    /// it itself with `500 Internal Server Error` and a JSON body
    /// `{"errors":["..."]}` (as OpenBao words its errors), then closes the connection.
    /// Connections already open when the faults are set take part too.
    pub fail_request: Option<String>,
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
    /// Requests the proxy answered with a server error itself (`fail_request`).
    pub failed: u64,
}

/// A running proxy; stops accepting (and drops its open connections) when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    faults: watch::Sender<Faults>,
    stats: Arc<Mutex<ProxyStats>>,
    numbering: Arc<Numbering>,
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
        let numbering = Arc::new(Numbering::default());
        let numbered = numbering.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                counted.lock().expect("stats").connections += 1;
                let number = numbered.since_set.fetch_add(1, Ordering::SeqCst) + 1;
                connections.spawn(serve(
                    client,
                    number,
                    numbered.clone(),
                    upstream,
                    rx.clone(),
                    counted.clone(),
                ));
                // Reap finished connections so the set stays small.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(FaultProxy {
            addr,
            faults,
            stats,
            numbering,
            task,
        })
    }

    /// The address to give the controller instead of the upstream's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the faults; stalled connections are released when stalls are switched off
    /// (they are then closed, as a hung server that finally gives up). Connections are
    /// numbered for `stall_connection` and `reset_connection` from here on.
    pub fn set(&self, faults: Faults) {
        self.numbering.since_set.store(0, Ordering::SeqCst);
        self.numbering
            .reset_due
            .store(faults.reset_connection.is_some(), Ordering::SeqCst);
        self.numbering
            .lose_due
            .store(faults.lose_answer_to.is_some(), Ordering::SeqCst);
        self.numbering
            .fail_due
            .store(faults.fail_request.is_some(), Ordering::SeqCst);
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

/// The connections since the faults were last set, for `stall_connection` and
/// `reset_connection`.
#[derive(Debug, Default)]
struct Numbering {
    /// Connections opened since.
    since_set: AtomicU64,
    /// The reset of `reset_connection` is still to be made.
    reset_due: AtomicBool,
    /// The answer of `lose_answer_to` is still to be lost.
    lose_due: AtomicBool,
    /// The request of `fail_request` is still to be answered with an error.
    fail_due: AtomicBool,
}

/// Whether stalled connections stay stalled under `f`.
fn stalling(f: &Faults) -> bool {
    f.stall_all || f.stall > 0.0 || f.stall_connection.is_some()
}

/// Serves the `number`-th connection since the faults were last set.
async fn serve(
    client: TcpStream,
    number: u64,
    numbering: Arc<Numbering>,
    upstream: SocketAddr,
    mut faults: watch::Receiver<Faults>,
    stats: Arc<Mutex<ProxyStats>>,
) {
    let now = faults.borrow_and_update().clone();
    if now.stall_all || now.stall_connection == Some(number) || chance(now.stall) {
        stats.lock().expect("stats").stalls += 1;
        // Hold the connection, read nothing, answer nothing, until stalls are switched off.
        let _ = faults.wait_for(|f| !stalling(f)).await;
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
    // Set when the request of `fail_request` came on this connection (and was held back).
    let fail_now = AtomicBool::new(false);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let reset_here = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        // Only this connection's answers may take the reset of `reset_connection`.
        let reset_due = now
            .reset_connection
            .is_some_and(|n| number >= n)
            .then_some(&numbering.reset_due);
        // Set when this connection carried the request of `lose_answer_to`.
        let lose_next = AtomicBool::new(false);
        let request = Request {
            lose_answer_to: now.lose_answer_to.as_deref(),
            lose_due: &numbering.lose_due,
            lose_next: &lose_next,
            fail_due: &numbering.fail_due,
            fail_now: &fail_now,
        };
        let lose = [reset_due, Some(&lose_next)];
        // Either direction ending (or resetting) ends both.
        tokio::select! {
            r = pump(client_read, server_write, faults.clone(), Some(request), &[]) => r,
            r = pump(server_read, client_write, faults, None, &lose) => r,
        }
    };
    if reset_here {
        stats.lock().expect("stats").resets += 1;
        reset(client);
        reset(server);
    } else if fail_now.load(Ordering::SeqCst) {
        stats.lock().expect("stats").failed += 1;
        let body = r#"{"errors":["internal error injected by the test proxy"]}"#;
        let answer = format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(answer.as_bytes()).await;
        let _ = client.shutdown().await;
    }
}

/// The client's side of `lose_answer_to` on one connection.
struct Request<'a> {
    lose_answer_to: Option<&'a str>,
    /// The proxy's flag: the answer is still to be lost.
    lose_due: &'a AtomicBool,
    /// This connection's: the next answer on it is to be lost.
    lose_next: &'a AtomicBool,
    /// The proxy's flag: the request is still to be answered with an error.
    fail_due: &'a AtomicBool,
    /// This connection's: it carried that request, held back.
    fail_now: &'a AtomicBool,
}

/// Whether `chunk` contains `text`.
fn contains(chunk: &[u8], text: Option<&str>) -> bool {
    text.is_some_and(|t| chunk.windows(t.len()).any(|w| w == t.as_bytes()))
}

/// Forwards chunks from `from` to `to` with the current latency; returns `true` when the
/// connection is to be reset, `false` when a side closed it. A chunk that finds one of
/// the `lose` flags set clears it and resets the connection instead of being forwarded.
/// With `request` (the client's side), the request of `lose_answer_to` sets `lose_next`,
/// and the request of `fail_request` sets `fail_now` and ends the connection unforwarded.
async fn pump(
    mut from: tokio::net::tcp::ReadHalf<'_>,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    faults: watch::Receiver<Faults>,
    request: Option<Request<'_>>,
    lose: &[Option<&AtomicBool>],
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
        let lost = lose
            .iter()
            .flatten()
            .any(|due| due.swap(false, Ordering::SeqCst));
        if lost || chance(now.reset_mid_stream) {
            return true;
        }
        if let Some(r) = &request
            && contains(&buf[..n], now.fail_request.as_deref())
            && r.fail_due.swap(false, Ordering::SeqCst)
        {
            r.fail_now.store(true, Ordering::SeqCst);
            return false;
        }
        if let Some(r) = &request
            && contains(&buf[..n], r.lose_answer_to)
            && r.lose_due.swap(false, Ordering::SeqCst)
        {
            r.lose_next.store(true, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes what it reads.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Writes `ping` on a new connection and reads until the answer or the end.
    async fn ping(proxy: &FaultProxy) -> Vec<u8> {
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        while got.len() < 4 {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    }

    #[tokio::test]
    async fn the_chosen_connections_are_stalled_and_reset_once_each() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        assert_eq!(ping(&proxy).await, b"ping", "no faults: forwarded");
        proxy.set(Faults {
            stall_connection: Some(1),
            reset_connection: Some(2),
            ..Faults::default()
        });
        // The first connection since is held without an answer.
        let mut stalled = TcpStream::connect(proxy.addr()).await.unwrap();
        stalled.write_all(b"ping").await.unwrap();
        while proxy.stats().stalls == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The second reaches the upstream, and its answer is cut off by a reset.
        assert_eq!(ping(&proxy).await, b"", "the answer is lost");
        // Later ones are forwarded again.
        assert_eq!(ping(&proxy).await, b"ping");
        assert_eq!(
            proxy.stats(),
            ProxyStats {
                connections: 4,
                resets: 1,
                stalls: 1,
                failed: 0
            }
        );
        // Stalls switched off: the stalled connection is closed without an answer.
        proxy.set(Faults::default());
        let mut buf = [0u8; 16];
        assert!(matches!(stalled.read(&mut buf).await, Ok(0) | Err(_)));
    }

    #[tokio::test]
    async fn the_answer_to_the_chosen_request_is_lost_once() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        proxy.set(Faults {
            lose_answer_to: Some("pi".into()),
            ..Faults::default()
        });
        // Another request on the same connection goes through; the chosen one reaches the
        // upstream (which echoes it) and its answer is cut off.
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(b"xy").await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).await.unwrap(), 2);
        s.write_all(b"ping").await.unwrap();
        assert!(matches!(s.read(&mut buf).await, Ok(0) | Err(_)));
        // Once only.
        assert_eq!(ping(&proxy).await, b"ping");
        assert_eq!(proxy.stats().resets, 1);
    }

    #[tokio::test]
    async fn the_chosen_request_is_answered_with_a_server_error_once_unforwarded() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        proxy.set(Faults {
            fail_request: Some("pi".into()),
            ..Faults::default()
        });
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(b"xy").await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            s.read(&mut buf).await.unwrap(),
            2,
            "another request goes through"
        );
        s.write_all(b"ping").await.unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 500 ") && !answer.contains("ping"),
            "answered by the proxy, not echoed by the upstream: {answer}"
        );
        assert_eq!(ping(&proxy).await, b"ping", "once only");
        assert_eq!(proxy.stats().failed, 1);
    }
}
