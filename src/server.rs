//! Builds and runs the pingora server from a validated configuration: session store, Clever
//! client, listeners, and the process settings pingora would otherwise default unsafely.

use std::net::{SocketAddr, TcpListener};
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};

use crate::auth::Auth;
use crate::clever::CleverClient;
use crate::config::{Config, StoreKind};
use crate::gateway::Gateway;
use crate::lifecycle::{self, PidFileError};
use crate::proxy::GatewayProxy;
use crate::secret::Secret;
use crate::session::memory::MemoryLimits;
use crate::session::{Clock, MemoryStore, SessionStore, SystemClock};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the session store \"redis\" is not available in this version; use store = \"memory\""
    )]
    RedisUnsupported,
    #[error("admin_listen is not served in this version: /_gateway/healthz and /_gateway/readyz answer on every listener; remove admin_listen")]
    AdminListenUnsupported,
    #[error("cannot build the HTTP client for Clever: {0}")]
    Client(String),
    #[error("cannot set up TLS on {addr}: {msg}")]
    Tls { addr: SocketAddr, msg: String },
    #[error(transparent)]
    PidFile(#[from] PidFileError),
}

/// Builds the request logic (store, Clever client, login flows) for a configuration.
pub fn build_gateway(cfg: Arc<Config>, secret: Secret) -> Result<Gateway, StartError> {
    if cfg.session.store == StoreKind::Redis {
        return Err(StartError::RedisUnsupported);
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(
        cfg.session.ttl,
        clock.clone(),
        MemoryLimits::default(),
    ));
    let clever = CleverClient::new(cfg.clever.clone(), secret)
        .map_err(|e| StartError::Client(e.to_string()))?;
    let auth = Auth::new(cfg.clone(), store, clever, clock);
    Ok(Gateway::new(cfg, auth))
}

/// Fails early and clearly when a listen address is taken (pingora would panic in a
/// service thread and leave the process running).
pub fn check_listen_addrs(cfg: &Config) -> Result<(), StartError> {
    for addr in cfg.server.listen.iter().chain(&cfg.server.tls_listen) {
        TcpListener::bind(addr).map_err(|source| StartError::Listen {
            addr: *addr,
            source,
        })?;
    }
    Ok(())
}

/// Builds the pingora server with the gateway service on every configured listener.
pub fn build_server(cfg: Arc<Config>, secret: Secret) -> Result<Server, StartError> {
    build_server_with(cfg, secret, RunMode::default())
}

/// How `run` was asked to start: pingora's `--daemon` and `--upgrade`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunMode {
    /// Fork into the background once ready to take the sockets; pingora writes the pid file.
    pub daemon: bool,
    /// Take the listening sockets from the running gateway over the upgrade socket (it is sent
    /// SIGQUIT) instead of binding them.
    pub upgrade: bool,
}

/// [`build_server`] for a run mode.
pub fn build_server_with(
    cfg: Arc<Config>,
    secret: Secret,
    mode: RunMode,
) -> Result<Server, StartError> {
    if cfg.server.admin_listen.is_some() {
        return Err(StartError::AdminListenUnsupported);
    }
    // With --upgrade the addresses are in use by the old process, by design.
    if !mode.upgrade {
        check_listen_addrs(&cfg)?;
    }
    let gateway = build_gateway(cfg.clone(), secret)?;
    let threads = cfg.server.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let opt = Opt {
        daemon: mode.daemon,
        upgrade: mode.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&cfg, threads));
    // As a service rather than now: after a --daemon fork, and (with --upgrade) once the old
    // process sends the sockets; the proxy service waits for it.
    let bootstrap = server.bootstrap_as_a_service();
    let mut svc = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        GatewayProxy {
            gateway: Arc::new(gateway),
        },
        "clever-gateway",
    );
    for addr in &cfg.server.listen {
        svc.add_tcp(&addr.to_string());
    }
    if let (Some(cert), Some(key)) = (&cfg.server.tls_cert, &cfg.server.tls_key) {
        for addr in &cfg.server.tls_listen {
            svc.add_tls(
                &addr.to_string(),
                &cert.to_string_lossy(),
                &key.to_string_lossy(),
            )
            .map_err(|e| StartError::Tls {
                addr: *addr,
                msg: e.to_string(),
            })?;
        }
    }
    server.add_service(svc).add_dependency(&bootstrap);
    server.add_service(background_service(
        "drain",
        Drain {
            grace: cfg.server.grace_period,
            pid_file: cfg.server.pid_file.clone(),
        },
    ));
    for addr in &cfg.server.listen {
        tracing::info!(%addr, "listening (http)");
    }
    for addr in &cfg.server.tls_listen {
        tracing::info!(%addr, "listening (https)");
    }
    Ok(server)
}

/// Pingora's process settings from the config.
fn server_conf(cfg: &Config, threads: usize) -> ServerConf {
    ServerConf {
        threads,
        // Pingora sleeps this long after SIGTERM before stopping its runtimes. The drain
        // service exits first: as soon as nothing is in flight, at `grace_period` at the
        // latest. Pingora's whole-second sleep, one second longer, is only a backstop.
        grace_period_seconds: Some(cfg.server.grace_period.as_secs_f64().ceil() as u64 + 1),
        graceful_shutdown_timeout_seconds: Some(5),
        pid_file: cfg.server.pid_file.to_string_lossy().into_owned(),
        upgrade_sock: cfg.server.upgrade_sock.to_string_lossy().into_owned(),
        // --daemon: the starting process exits 0 only once the daemon is about to take (or
        // bind) the sockets, so systemd (Type=forking) and `reload` know it came up.
        daemon_wait_for_ready: true,
        daemon_ready_timeout_seconds: NonZeroU64::new(60),
        // The daemon keeps the directory it was started in, so relative paths still work.
        working_directory: std::env::current_dir().ok(),
        ..ServerConf::default()
    }
}

/// Exits the process once a graceful shutdown (SIGTERM, or SIGQUIT after the sockets were
/// handed to a new process) has closed the listeners and the requests in flight are done, or
/// when the grace period is over. Pingora alone would always sleep the whole grace period.
struct Drain {
    grace: Duration,
    pid_file: PathBuf,
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        tracing::info!(
            in_flight = lifecycle::in_flight(),
            grace_period = ?self.grace,
            "shutting down: listeners closed, finishing requests in flight"
        );
        let d = lifecycle::drain(self.grace, lifecycle::in_flight).await;
        if d.left == 0 {
            tracing::info!(elapsed = ?d.elapsed, "shutdown: all requests finished, exiting");
        } else {
            tracing::warn!(
                left = d.left,
                grace_period = ?self.grace,
                "shutdown: grace period over, closing the requests still in flight"
            );
        }
        lifecycle::remove_pid_file_if_ours(&self.pid_file);
        std::process::exit(0);
    }
}

/// Runs until SIGTERM/SIGINT (graceful) and returns.
pub fn run(server: Server) {
    server.run(RunArgs::default());
}

/// `clever-gateway run`: prepares the pid file's directory, builds the server, writes the pid
/// file (pingora writes it after the fork with --daemon), runs, and removes the pid file if it
/// still names this process.
pub fn serve(cfg: Arc<Config>, secret: Secret, mode: RunMode) -> Result<(), StartError> {
    lifecycle::prepare_run_dirs(&cfg.server)?;
    let server = build_server_with(cfg.clone(), secret, mode)?;
    if !mode.daemon {
        lifecycle::write_pid_file(&cfg.server.pid_file)?;
    }
    run(server);
    lifecycle::remove_pid_file_if_ours(&cfg.server.pid_file);
    Ok(())
}
