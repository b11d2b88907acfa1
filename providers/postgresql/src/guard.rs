//! Refuses, before anything is sent, a server that asks for the password in cleartext or
//! as an MD5 hash. Where TLS is required, channel binding would refuse it too; the guard
//! says precisely why. Where it is not (`disable`, and `prefer`, which may fall back to the
//! clear), the guard is the only protection.
//!
//! tokio-postgres answers AuthenticationCleartextPassword and AuthenticationMD5Password
//! on its own unless channel binding is required, and has no hook to refuse them. So the
//! server's bytes are watched on their way in, up to the end of authentication: a
//! request for either method ends the read with [`PasswordRequestRefused`], and
//! tokio-postgres never gets to answer it.
//!
//! ```text
//!  TCP ─▶ Guarded(watch from the SSLRequest answer) ─▶ 'N': watch the messages
//!                                                  └▶ 'S': TLS ─▶ Guarded(watch the messages)
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// A password request the guard refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PasswordRequestRefused {
    /// AuthenticationCleartextPassword.
    Cleartext,
    /// AuthenticationMD5Password: a salted hash an eavesdropper or impostor can attack
    /// offline, and password-equivalent to what MD5 servers store.
    Md5,
}

impl PasswordRequestRefused {
    /// How the password was asked for: `in cleartext`, `as an MD5 hash`.
    pub(crate) fn how(self) -> &'static str {
        match self {
            PasswordRequestRefused::Cleartext => "in cleartext",
            PasswordRequestRefused::Md5 => "as an MD5 hash",
        }
    }
}

impl std::fmt::Display for PasswordRequestRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server asked for the password {}", self.how())
    }
}

impl std::error::Error for PasswordRequestRefused {}

// Backend message layout: a type byte, a 4-byte big-endian length that counts itself, and
// the body; an Authentication ('R') body starts with a 4-byte request code.
const AUTHENTICATION: u8 = b'R';
const AUTH_OK: u32 = 0;
const AUTH_CLEARTEXT: u32 = 3;
const AUTH_MD5: u32 = 5;

/// Where in the server's byte stream the watch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the one-byte answer to SSLRequest.
    SslAnswer,
    /// Collecting a message header (type, length and, for 'R', the request code).
    Header { buf: [u8; 9], len: usize },
    /// Passing over the rest of a message's body.
    Skip(usize),
    /// Authentication succeeded, or TLS took over the stream: nothing more to watch.
    Done,
}

/// Watches the server's bytes up to the end of authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AuthWatch {
    state: State,
}

impl AuthWatch {
    /// For a stream whose first server bytes are protocol messages.
    pub(crate) fn messages() -> Self {
        AuthWatch {
            state: State::Header {
                buf: [0; 9],
                len: 0,
            },
        }
    }

    /// For a stream on which the client first sends SSLRequest.
    pub(crate) fn ssl_answer() -> Self {
        AuthWatch {
            state: State::SslAnswer,
        }
    }

    /// Takes the next bytes from the server.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), PasswordRequestRefused> {
        while let Some((&byte, rest)) = bytes.split_first() {
            match &mut self.state {
                State::Done => return Ok(()),
                State::SslAnswer => {
                    self.state = if byte == b'N' {
                        Self::messages().state
                    } else {
                        // 'S': TLS follows, watched by a guard above it. Anything else is
                        // an error tokio-postgres reports itself.
                        State::Done
                    };
                    bytes = rest;
                }
                State::Skip(n) => {
                    let take = (*n).min(bytes.len());
                    *n -= take;
                    if *n == 0 {
                        self.state = Self::messages().state;
                    }
                    bytes = &bytes[take..];
                }
                State::Header { buf, len } => {
                    buf[*len] = byte;
                    *len += 1;
                    bytes = rest;
                    let (buf, len) = (*buf, *len);
                    if len < 5 {
                        continue;
                    }
                    let length = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                    if buf[0] != AUTHENTICATION {
                        self.state = skip(length.saturating_sub(4));
                        continue;
                    }
                    if len < 9 {
                        if length < 8 {
                            // Malformed; tokio-postgres rejects it.
                            self.state = State::Done;
                        }
                        continue;
                    }
                    match u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) {
                        AUTH_CLEARTEXT => return Err(PasswordRequestRefused::Cleartext),
                        AUTH_MD5 => return Err(PasswordRequestRefused::Md5),
                        AUTH_OK => self.state = State::Done,
                        _ => self.state = skip(length - 8),
                    }
                }
            }
        }
        Ok(())
    }
}

fn skip(n: usize) -> State {
    if n == 0 {
        AuthWatch::messages().state
    } else {
        State::Skip(n)
    }
}

/// A stream whose incoming bytes pass an [`AuthWatch`].
pub(crate) struct Guarded<S> {
    inner: S,
    watch: AuthWatch,
}

impl<S> Guarded<S> {
    pub(crate) fn new(inner: S, watch: AuthWatch) -> Self {
        Guarded { inner, watch }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => Poll::Ready(
                this.watch
                    .feed(&buf.filled()[before..])
                    .map_err(|refused| io::Error::new(io::ErrorKind::PermissionDenied, refused)),
            ),
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for Guarded<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

/// A TLS connector whose sessions are [`Guarded`] from their first message.
pub(crate) struct GuardedTls<T>(pub(crate) T);

impl<S, T> TlsConnect<S> for GuardedTls<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
    T::Stream: Send + 'static,
{
    type Stream = Guarded<T::Stream>;
    type Error = T::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, T::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let handshake = self.0.connect(stream);
        Box::pin(async move {
            let tls = handshake.await?;
            Ok(Guarded::new(tls, AuthWatch::messages()))
        })
    }
}

/// The TLS connector of `make` for `host`, guarded.
pub(crate) fn guarded_tls<S, M: MakeTlsConnect<S>>(
    make: &mut M,
    host: &str,
) -> Result<GuardedTls<M::TlsConnect>, M::Error> {
    make.make_tls_connect(host).map(GuardedTls)
}

/// A [`MakeTlsConnect`] whose sessions are [`Guarded`], for `Config::connect`.
#[derive(Clone)]
pub(crate) struct GuardedMakeTls<M>(pub(crate) M);

impl<S, M> MakeTlsConnect<S> for GuardedMakeTls<M>
where
    M: MakeTlsConnect<S>,
    <M::TlsConnect as TlsConnect<S>>::Future: Send + 'static,
    M::Stream: Send + 'static,
{
    type Stream = Guarded<M::Stream>;
    type TlsConnect = GuardedTls<M::TlsConnect>;
    type Error = M::Error;

    fn make_tls_connect(&mut self, host: &str) -> Result<Self::TlsConnect, M::Error> {
        guarded_tls(&mut self.0, host)
    }
}

/// The [`PasswordRequestRefused`] inside a failed connection, if that is why it failed.
pub(crate) fn refused(err: &tokio_postgres::Error) -> Option<PasswordRequestRefused> {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(r) = cause.downcast_ref::<PasswordRequestRefused>() {
            return Some(*r);
        }
        if let Some(io) = cause.downcast_ref::<io::Error>()
            && let Some(r) = io
                .get_ref()
                .and_then(|e| e.downcast_ref::<PasswordRequestRefused>())
        {
            return Some(*r);
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(code: u32, extra: &[u8]) -> Vec<u8> {
        let mut m = vec![AUTHENTICATION];
        m.extend_from_slice(&(8 + extra.len() as u32).to_be_bytes());
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(extra);
        m
    }

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(4 + body.len() as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// Feeds `stream` in chunks of `chunk` bytes.
    fn run(
        mut watch: AuthWatch,
        stream: &[u8],
        chunk: usize,
    ) -> Result<(), PasswordRequestRefused> {
        for part in stream.chunks(chunk) {
            watch.feed(part)?;
        }
        Ok(())
    }

    #[test]
    fn password_requests_are_refused_and_everything_else_passes() {
        struct Case {
            reason: &'static str,
            watch: AuthWatch,
            stream: Vec<u8>,
            want: Result<(), PasswordRequestRefused>,
        }
        let sasl = auth(10, b"SCRAM-SHA-256\0\0");
        let cases = [
            Case {
                reason: "a cleartext request is refused",
                watch: AuthWatch::messages(),
                stream: auth(AUTH_CLEARTEXT, b""),
                want: Err(PasswordRequestRefused::Cleartext),
            },
            Case {
                reason: "an MD5 request is refused",
                watch: AuthWatch::messages(),
                stream: auth(AUTH_MD5, b"salt"),
                want: Err(PasswordRequestRefused::Md5),
            },
            Case {
                reason: "SCRAM, its continuation and the session that follows pass",
                watch: AuthWatch::messages(),
                stream: [
                    sasl.clone(),
                    auth(11, b"r=abc,s=def,i=4096"),
                    auth(12, b"v=xyz"),
                    auth(AUTH_OK, b""),
                    message(b'S', b"server_version\x0016\0"),
                    message(b'Z', b"I"),
                ]
                .concat(),
                want: Ok(()),
            },
            Case {
                reason: "after authentication, bytes that look like a request are data",
                watch: AuthWatch::messages(),
                stream: [auth(AUTH_OK, b""), auth(AUTH_CLEARTEXT, b"")].concat(),
                want: Ok(()),
            },
            Case {
                reason: "a server without TLS is watched after its 'N'",
                watch: AuthWatch::ssl_answer(),
                stream: [b"N".to_vec(), auth(AUTH_CLEARTEXT, b"")].concat(),
                want: Err(PasswordRequestRefused::Cleartext),
            },
            Case {
                reason: "after 'S' the bytes are TLS records, watched above TLS",
                watch: AuthWatch::ssl_answer(),
                stream: [b"S".to_vec(), auth(AUTH_CLEARTEXT, b"")].concat(),
                want: Ok(()),
            },
            Case {
                reason: "an error response before authentication passes to tokio-postgres",
                watch: AuthWatch::messages(),
                stream: message(b'E', b"SFATAL\0C28000\0Mno pg_hba.conf entry\0\0"),
                want: Ok(()),
            },
            Case {
                reason: "a notice before the request does not hide it",
                watch: AuthWatch::messages(),
                stream: [message(b'N', b"SNOTICE\0\0"), auth(AUTH_MD5, b"salt")].concat(),
                want: Err(PasswordRequestRefused::Md5),
            },
        ];
        for c in cases {
            for chunk in [1, 2, 3, 7, 1024] {
                assert_eq!(
                    run(c.watch, &c.stream, chunk),
                    c.want,
                    "{} (chunks of {chunk})",
                    c.reason
                );
            }
        }
    }

    #[tokio::test]
    async fn a_guarded_stream_ends_the_read_that_carries_a_password_request() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, mut server) = tokio::io::duplex(64);
        let mut guarded = Guarded::new(client, AuthWatch::messages());
        server.write_all(&auth(AUTH_CLEARTEXT, b"")).await.unwrap();
        let mut buf = [0u8; 16];
        let err = guarded.read(&mut buf).await.expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(
            err.to_string(),
            "the server asked for the password in cleartext"
        );
    }
}
