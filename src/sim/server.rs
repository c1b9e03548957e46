//! The accept loop behind the simulator and the sample app: one hyper HTTP/1 connection task
//! per socket, all stopped when the owning handle is dropped.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
    let listener = TcpListener::bind(addr).await?;
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
            let handler = handler.clone();
            let mut stop_conn = stopped.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    _ = conn => {}
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
