//! Bounds on reading a request's header over HTTP/1: the whole header must arrive within
//! `server.header_timeout` of its first byte, and no more than [`MAX_HEADER_SECTION`](crate::gateway::MAX_HEADER_SECTION) bytes of
//! it are read. Pingora alone bounds each read (60 s, so a byte every few seconds keeps a
//! connection forever) and the header at 1 MiB (held in memory per connection while it
//! arrives). [`HeaderGuard`] wraps each new connection's stream and enforces both until the end
//! of each request's header; the proxy re-arms it when a request is done ([`request_done`]).
//! A client over either bound gets `408` or `431` and the connection is closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// What a header may cost: time from its first byte, and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimits {
    pub timeout: Duration,
    pub max_bytes: usize,
}

/// Finds the end of a request's header (the empty line after the request line and header
/// lines) in bytes that arrive in pieces. Lines end in `\n`, with or without `\r`, as pingora's
/// parser (httparse) reads them; empty lines before the request line do not count.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EndScanner {
    /// A byte other than CR or LF was seen: the request line has begun.
    content: bool,
    /// 1: just after a `\n`; 2: after `\n\r`; 0: elsewhere.
    after_lf: u8,
}

impl EndScanner {
    /// Scans `bytes`; `Some(n)`: the header ends after the first `n` of them.
    pub fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'\n' => {
                    if self.content && self.after_lf != 0 {
                        return Some(i + 1);
                    }
                    self.after_lf = 1;
                }
                b'\r' => self.after_lf = if self.after_lf == 1 { 2 } else { 0 },
                _ => {
                    self.after_lf = 0;
                    self.content = true;
                }
            }
        }
        None
    }
}

/// Where a connection is, as far as its request headers go.
enum Phase {
    /// Between requests: the next byte starts a header (the keep-alive timeout applies).
    Idle,
    /// Inside a header: `read` bytes of it so far, to end before `deadline`.
    Header {
        deadline: Pin<Box<Sleep>>,
        read: usize,
        scan: EndScanner,
    },
    /// The header is complete: body, response, or an upgraded connection pass freely.
    Body,
    /// Over a bound: the answer was written; every read fails.
    Refused(io::ErrorKind),
}

/// Why a header was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    Time,
    Size,
}

impl Over {
    /// The whole answer: the gateway writes it itself, as the request never reaches a phase.
    fn response(self) -> Vec<u8> {
        let (status, body) = match self {
            Over::Time => (
                "408 Request Timeout",
                "The request header did not arrive in time.\n",
            ),
            Over::Size => (
                "431 Request Header Fields Too Large",
                "The request header is too large.\n",
            ),
        };
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn kind(self) -> io::ErrorKind {
        match self {
            Over::Time => io::ErrorKind::TimedOut,
            Over::Size => io::ErrorKind::InvalidData,
        }
    }
}

/// A connection's stream, with its request headers bounded (see the module docs). Everything
/// but reads passes straight to the stream inside.
pub struct HeaderGuard {
    inner: Stream,
    limits: HeaderLimits,
    phase: Phase,
    /// Set by [`request_done`]: the next byte read starts a new header.
    rearm: Arc<AtomicBool>,
}

impl std::fmt::Debug for HeaderGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderGuard")
            .field("inner", &self.inner)
            .field("limits", &self.limits)
            .finish()
    }
}

impl HeaderGuard {
    /// Guards `inner` from its next byte on.
    pub fn new(inner: Stream, limits: HeaderLimits) -> Self {
        HeaderGuard {
            inner,
            limits,
            phase: Phase::Idle,
            rearm: Arc::default(),
        }
    }

    /// Whether this connection speaks HTTP/2 (ALPN): its headers are HPACK frames, bounded by
    /// the HTTP/2 layer, and are not guarded here.
    pub fn is_h2(stream: &Stream) -> bool {
        matches!(stream.selected_alpn_proto(), Some(ALPN::H2))
    }

    /// Writes the answer for `over` as far as the socket takes it at once (it is small, and
    /// the connection closes right after), logs, and fails the read.
    fn refuse(&mut self, cx: &mut Context<'_>, over: Over) -> Poll<io::Result<()>> {
        let response = over.response();
        let mut out = response.as_slice();
        while !out.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, out) {
                Poll::Ready(Ok(n)) if n > 0 => out = &out[n..],
                _ => break,
            }
        }
        let _ = Pin::new(&mut self.inner).poll_flush(cx);
        match over {
            Over::Time => tracing::warn!(
                timeout = ?self.limits.timeout,
                "request header not complete in time: 408, connection closed"
            ),
            Over::Size => tracing::warn!(
                max_bytes = self.limits.max_bytes,
                "request header too large: 431, connection closed"
            ),
        }
        self.phase = Phase::Refused(over.kind());
        Poll::Ready(Err(io::Error::new(
            over.kind(),
            "request header over the gateway's limits",
        )))
    }
}

impl AsyncRead for HeaderGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.rearm.swap(false, Ordering::AcqRel) && !matches!(this.phase, Phase::Refused(_)) {
            this.phase = Phase::Idle;
        }
        match &mut this.phase {
            Phase::Refused(kind) => {
                return Poll::Ready(Err(io::Error::new(*kind, "connection refused a header")))
            }
            Phase::Header { deadline, .. } => {
                if deadline.as_mut().poll(cx).is_ready() {
                    return this.refuse(cx, Over::Time);
                }
            }
            Phase::Idle | Phase::Body => {}
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let got = buf.filled().len() - before;
        match polled {
            Poll::Ready(Ok(())) if got > 0 => {}
            other => return other,
        }
        if matches!(this.phase, Phase::Idle) {
            this.phase = Phase::Header {
                deadline: Box::pin(tokio::time::sleep(this.limits.timeout)),
                read: 0,
                scan: EndScanner::default(),
            };
        }
        if let Phase::Header { read, scan, .. } = &mut this.phase {
            let new = &buf.filled()[before..];
            match scan.scan(new) {
                Some(end) if *read + end <= this.limits.max_bytes => this.phase = Phase::Body,
                Some(_) => return this.refuse(cx, Over::Size),
                None => {
                    *read += got;
                    if *read > this.limits.max_bytes {
                        return this.refuse(cx, Over::Size);
                    }
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for HeaderGuard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for HeaderGuard {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeaderGuard {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeaderGuard {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeaderGuard {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeaderGuard {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeaderGuard {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeaderGuard {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// A request on `stream` is done (the proxy's last phase): the next bytes on it start a new
/// header, bounded again. No-op for a stream without a guard (HTTP/2).
pub fn request_done(stream: &Stream) {
    let io: &dyn pingora::protocols::IO = &**stream;
    if let Some(guard) = io.as_any().downcast_ref::<HeaderGuard>() {
        guard.rearm.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn end_scanner_finds_the_empty_line_in_any_split() {
        let req = b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\nBODY";
        let end = req.len() - 4;
        for split in 0..req.len() {
            let mut s = EndScanner::default();
            let found = match s.scan(&req[..split]) {
                Some(n) => Some(n),
                None => s.scan(&req[split..]).map(|n| n + split),
            };
            assert_eq!(found, Some(end), "split at {split}");
        }
    }

    #[test]
    fn end_scanner_reads_lines_as_httparse_does() {
        let end = |b: &[u8]| EndScanner::default().scan(b);
        assert_eq!(end(b"GET / HTTP/1.1\n\nx"), Some(16));
        assert_eq!(end(b"GET / HTTP/1.1\nA: b\n\r\nx"), Some(22));
        // Empty lines before the request line are skipped, not an end.
        assert_eq!(end(b"\r\n\r\n\n"), None);
        assert_eq!(end(b"\r\nGET / HTTP/1.1\r\n\r\n"), Some(20));
        assert_eq!(end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        assert_eq!(end(b"GET / HTTP/1.1\r\nA: b\r\r\n"), None);
    }

    /// A guard over one end of an in-memory pipe, as pingora's stream would be.
    fn guarded(limits: HeaderLimits) -> (HeaderGuard, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        (HeaderGuard::new(Box::new(ours), limits), theirs)
    }

    const LIMITS: HeaderLimits = HeaderLimits {
        timeout: Duration::from_secs(10),
        max_bytes: 1000,
    };

    #[tokio::test(start_paused = true)]
    async fn header_that_never_ends_is_refused_408_at_the_deadline() {
        let (mut g, mut client) = guarded(LIMITS);
        client.write_all(b"GET / HTTP/1.1\r\nA").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(g.read(&mut buf).await.unwrap(), 17);
        let started = tokio::time::Instant::now();
        // A byte now and then: each read would be in time, the header is not.
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                if client.write_all(b"x").await.is_err() {
                    break;
                }
            }
            let mut answer = Vec::new();
            let _ = client.read_to_end(&mut answer).await;
            answer
        });
        let err = loop {
            match g.read(&mut buf).await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), LIMITS.timeout);
        drop(g);
        let answer = trickle.await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 408 "), "{answer:?}");
    }

    #[tokio::test]
    async fn header_over_the_byte_cap_is_refused_431_without_reading_on() {
        let (mut g, mut client) = guarded(LIMITS);
        let mut big = b"GET / HTTP/1.1\r\nCookie: ".to_vec();
        big.resize(5000, b'a');
        client.write_all(&big).await.unwrap();
        let mut buf = vec![0u8; 600];
        let mut read = 0;
        let err = loop {
            match g.read(&mut buf).await {
                Ok(n) => read += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(read <= LIMITS.max_bytes, "{read}");
        drop(g);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 431 "), "{answer:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn complete_header_then_body_and_rearmed_next_request_pass() {
        let (mut g, mut client) = guarded(LIMITS);
        let body = vec![b'b'; 5000];
        client
            .write_all(b"POST / HTTP/1.1\r\ncontent-length: 5000\r\n\r\n")
            .await
            .unwrap();
        client.write_all(&body).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 700];
        while got.len() < 5041 {
            let n = g.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        // The body is past the cap, and slow bodies are not this guard's business.
        tokio::time::sleep(Duration::from_secs(60)).await;
        client.write_all(b"x").await.unwrap();
        assert_eq!(g.read(&mut buf).await.unwrap(), 1);
        // The request is done: the next header is bounded again.
        let rearm = g.rearm.clone();
        rearm.store(true, Ordering::Release);
        client
            .write_all(b"GET /next HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        assert!(g.read(&mut buf).await.unwrap() > 0);
        tokio::time::sleep(LIMITS.timeout).await;
        let err = g.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connection_between_requests_is_not_timed_here() {
        let (mut g, mut client) = guarded(LIMITS);
        // Nothing sent for a long time: pingora's keep-alive timeout decides, not this guard.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        assert!(g.read(&mut buf).await.unwrap() > 0);
    }
}
