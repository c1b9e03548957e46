//! The engine baseline for `bench/run.sh`: pingora's HTTP proxy with nothing of the gateway in
//! it, built from the same pingora version with the same server settings (threads, one
//! single-threaded runtime per thread, the same allocator), forwarding every request to one
//! upstream with one header added. The bench runs it beside the gateway, so "gateway / engine"
//! is what the gateway's own work costs on top of pingora.
//!
//! ```sh
//! cargo build --profile production --example engine_baseline
//! target/production/examples/engine_baseline LISTEN_ADDR UPSTREAM_ADDR THREADS
//! ```

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::{http_proxy_service, HttpPeer, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};

// The gateway's allocator, so the comparison is of the code, not of malloc.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Engine {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Engine {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }

    /// The one header insert: the least a proxy that passes identity on does per request.
    async fn upstream_request_filter(
        &self,
        _: &mut Session,
        req: &mut RequestHeader,
        _: &mut (),
    ) -> pingora::Result<()> {
        req.insert_header("X-Engine-Baseline", "1")
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, threads] = args.as_slice() else {
        anyhow::bail!("usage: engine_baseline LISTEN_ADDR UPSTREAM_ADDR THREADS");
    };
    let upstream: SocketAddr = upstream.parse()?;
    let work = tempfile_dir()?;
    let conf = ServerConf {
        threads: threads.parse()?,
        work_stealing: false,
        pid_file: format!("{work}/engine.pid"),
        upgrade_sock: format!("{work}/engine.sock"),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Engine { upstream });
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run(RunArgs::default());
    Ok(())
}

/// A private directory for the pid file and upgrade socket (pingora's defaults are shared
/// paths in /tmp).
fn tempfile_dir() -> anyhow::Result<String> {
    let dir = std::env::temp_dir().join(format!("engine-baseline-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.to_string_lossy().into_owned())
}
