//! The accept loop behind the simulator and the sample app: one hyper HTTP/1 connection task
//! per socket (over TLS when the simulator serves HTTPS), all stopped when the owning handle is
//! dropped.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

use super::state::ConnCounters;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A running server. Dropping it stops accepting and closes every open connection.
#[derive(Debug)]
pub(crate) struct Server {
    pub addr: SocketAddr,
    // Dropping the sender wakes every connection task, which then closes its socket.
    _stop: watch::Sender<()>,
    accept: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Binds `addr` (port 0 is fine) and serves `handler` on the current tokio runtime.
pub(crate) async fn spawn<H, F>(addr: SocketAddr, handler: H) -> std::io::Result<Server>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    spawn_with(addr, Listening::default(), handler).await
}

/// How a server listens: plain HTTP or HTTPS, and what it counts.
#[derive(Default)]
pub(crate) struct Listening {
    /// Serve HTTPS with this acceptor.
    pub tls: Option<TlsAcceptor>,
    /// Counts accepted connections.
    pub connections: Option<Arc<ConnCounters>>,
}

/// As [`spawn`], over TLS when `listening.tls` is set, counting connections (and completed
/// TLS handshakes) in `listening.connections`.
pub(crate) async fn spawn_with<H, F>(
    addr: SocketAddr,
    listening: Listening,
    handler: H,
) -> std::io::Result<Server>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    spawn_on(TcpListener::bind(addr).await?, listening, handler)
}

/// As [`spawn_with`], on a bound listener.
pub(crate) fn spawn_on<H, F>(
    listener: TcpListener,
    listening: Listening,
    handler: H,
) -> std::io::Result<Server>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let Listening { tls, connections } = listening;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(());
    let accept = tokio::spawn(async move {
        loop {
            let mut stop_accept = stopped.clone();
            let (stream, _peer) = tokio::select! {
                _ = stop_accept.changed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            if let Some(counters) = &connections {
                counters.connections.fetch_add(1, Ordering::SeqCst);
            }
            let handler = handler.clone();
            let mut stop_conn = stopped.clone();
            let tls = tls.clone();
            let counters = connections.clone();
            tokio::spawn(async move {
                let served = async move {
                    match tls {
                        None => serve(stream, handler).await,
                        Some(acceptor) => {
                            let handshake =
                                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                            if let Ok(Ok(stream)) = handshake.await {
                                if let Some(counters) = &counters {
                                    counters.tls_handshakes.fetch_add(1, Ordering::SeqCst);
                                }
                                serve(stream, handler).await;
                            }
                        }
                    }
                };
                tokio::select! {
                    _ = served => {}
                    _ = stop_conn.changed() => {}
                }
            });
        }
    });
    Ok(Server {
        addr,
        _stop: stop,
        accept,
    })
}

/// Longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves HTTP/1 on one connection until it closes.
async fn serve<S, H, F>(stream: S, handler: H)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let service = service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(req).await) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
