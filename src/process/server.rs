//! Builds and runs the pingora server from a validated configuration: session store, Clever
//! client, listeners, and the process settings pingora would otherwise default unsafely.

use std::net::SocketAddr;
use std::os::fd::IntoRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{ExecutionPhase, ListenFds, RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use pingora::services::Service as PingoraService;

use crate::auth::assertion::{Assertions, KeyError};
use crate::auth::Auth;
use crate::clever::district::{discover_forever, DistrictTokens};
use crate::clever::CleverClient;
use crate::config::{Config, RedisTarget, StoreKind};
use crate::gateway::Gateway;
use crate::process::lifecycle::{self, PidFileError};
use crate::process::listeners::{self, Claim, ListenError, Sockets};
use crate::process::metrics::Metrics;
use crate::process::tls::{load_upstream_ca, UpstreamCa};
use crate::process::tls::{ListenerTls, TlsFileError};
use crate::proxy::header_guard::{HeaderGuard, HeaderLimits};
use crate::proxy::GatewayProxy;
use crate::secret::Secret;
use crate::session::memory::MemoryLimits;
use crate::session::{
    Clock, LoginTimes, MemoryStore, PrimaryAt, RedisSettings, RedisStore, SentinelSettings,
    SessionStore, SystemClock,
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot read the Redis password: {0}")]
    RedisPassword(crate::config::SecretError),
    #[error("cannot read the Redis Sentinels' password: {0}")]
    RedisSentinelPassword(crate::config::SecretError),
    #[error("cannot read server.forward_auth_secret: {0}")]
    ForwardAuthSecret(crate::config::SecretError),
    #[error(
        "server.forward_auth_secret is {0} characters long: use at least {MIN_FORWARD_AUTH_SECRET} \
         random characters (for example the output of `openssl rand -hex 32`)"
    )]
    ForwardAuthSecretTooShort(usize),
    #[error("cannot read the district-app token of district {id} ({name}): {source}")]
    DistrictToken {
        id: String,
        name: String,
        source: crate::config::SecretError,
    },
    #[error("cannot set up the Redis session store: {0}")]
    Redis(crate::session::StoreError),
    #[error("cannot set up metrics: {0}")]
    Metrics(String),
    #[error("cannot build the HTTP client for Clever: {0}")]
    Client(String),
    #[error("cannot set up TLS on {addr}: {msg}")]
    Tls { addr: SocketAddr, msg: String },
    #[error(transparent)]
    PidFile(#[from] PidFileError),
    #[error("{0}")]
    TlsFile(#[from] TlsFileError),
    #[error("{0}")]
    AssertionKey(#[from] KeyError),
    #[error("cannot load the system's CA certificates, which verify HTTPS upstreams: {0} (check SSL_CERT_FILE and SSL_CERT_DIR)")]
    SystemRoots(String),
}

/// The shortest `server.forward_auth_secret` accepted: it is guessed online at
/// `/_gateway/auth`, so it must be long and random.
pub const MIN_FORWARD_AUTH_SECRET: usize = 32;

/// Builds the request logic (store, Clever client, login flows) for a configuration.
/// Also returns the district-app tokens, which discovery (`discover_district_tokens`) fills.
pub fn build_gateway(
    cfg: Arc<Config>,
    secret: Secret,
) -> Result<(Gateway, Arc<DistrictTokens>), StartError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let metrics =
        crate::process::metrics::Metrics::new().map_err(|e| StartError::Metrics(e.to_string()))?;
    let metrics = Arc::new(metrics);
    let store = build_store(&cfg, clock.clone(), metrics.clone())?;
    let clever = CleverClient::new(cfg.clever.clone(), secret, metrics.clone())
        .map_err(|e| StartError::Client(e.to_string()))?;
    let tokens = Arc::new(read_district_tokens(&cfg)?);
    let auth = Auth::new(
        cfg.clone(),
        store.clone(),
        clever,
        clock.clone(),
        metrics.clone(),
    )
    .with_district_tokens(tokens.clone());
    let mut gateway = Gateway::new(cfg.clone(), auth, store, metrics);
    if let Some(src) = &cfg.server.forward_auth_secret {
        let secret = crate::config::read_secret(src).map_err(StartError::ForwardAuthSecret)?;
        if secret.chars().count() < MIN_FORWARD_AUTH_SECRET {
            return Err(StartError::ForwardAuthSecretTooShort(
                secret.chars().count(),
            ));
        }
        gateway = gateway.with_forward_auth_secret(Secret::new(secret));
    }
    let gateway = match &cfg.assertion {
        Some(a) => gateway.with_assertions(Arc::new(Assertions::load(a, clock)?)),
        None => gateway,
    };
    Ok((gateway, tokens))
}

/// The `[[district]]` tokens, read now: an unreadable one stops the start naming its district
/// and its variable or file (never the value).
fn read_district_tokens(cfg: &Config) -> Result<DistrictTokens, StartError> {
    let mut tokens = Vec::with_capacity(cfg.districts.len());
    for d in &cfg.districts {
        let token =
            crate::config::read_secret(&d.token).map_err(|source| StartError::DistrictToken {
                id: d.id.clone(),
                name: d.name.clone(),
                source,
            })?;
        tokens.push((d.id.clone(), Secret::new(token)));
    }
    Ok(DistrictTokens::new(tokens))
}

/// The configured session store; Redis is not contacted yet (a gateway may start while Redis
/// is down: it is then not ready).
fn build_store(
    cfg: &Config,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
) -> Result<Arc<dyn SessionStore>, StartError> {
    Ok(match cfg.session.store {
        StoreKind::Memory => Arc::new(MemoryStore::new(
            cfg.session.ttl,
            clock,
            MemoryLimits {
                login: LoginTimes::new(cfg.session.login_timeout),
                idle: cfg.session.idle_timeout,
                ..MemoryLimits::default()
            },
        )),
        StoreKind::Redis => {
            // rediss:// uses rustls: the process's provider, the one pingora installs.
            pingora::tls::install_default_crypto_provider();
            let read = |src: &Option<crate::config::SecretSource>| {
                src.as_ref()
                    .map(crate::config::read_secret)
                    .transpose()
                    .map(|s| s.map(Secret::new))
            };
            let password = read(&cfg.session.redis_password).map_err(StartError::RedisPassword)?;
            let at = match &cfg.session.redis {
                Some(RedisTarget::Sentinel(t)) => PrimaryAt::Sentinel(SentinelSettings {
                    sentinels: t.sentinels.clone(),
                    master_name: t.master_name.clone(),
                    db: t.db,
                    tls: t.tls,
                    password: read(&t.password).map_err(StartError::RedisSentinelPassword)?,
                }),
                Some(RedisTarget::Url(url)) => PrimaryAt::Url(url.clone()),
                // Validation requires one of them with store = "redis".
                None => PrimaryAt::Url(String::new()),
            };
            let settings = RedisSettings {
                at,
                password,
                login: LoginTimes::new(cfg.session.login_timeout),
                idle: cfg.session.idle_timeout,
            };
            Arc::new(RedisStore::new(&settings, clock, metrics).map_err(StartError::Redis)?)
        }
    })
}

/// Binds the proxy's listeners (`listen`, then `tls_listen`) and the admin listener, in that
/// order, keeping every socket open (see [`listeners::bind_all`]).
fn bind_listeners(cfg: &Config, upgrade: bool) -> Result<(Sockets, Sockets), StartError> {
    let proxy = cfg.server.listen.iter().chain(&cfg.server.tls_listen);
    let proxy = listeners::bind_all(proxy.copied(), upgrade)?;
    let admin = listeners::bind_all(cfg.server.admin_listen, upgrade)?;
    Ok((proxy, admin))
}

/// Builds the pingora server with the gateway service on every configured listener.
pub fn build_server(cfg: Arc<Config>, secret: Secret) -> Result<Server, StartError> {
    build_server_with(cfg, secret, RunMode::default())
}

/// How `run` was asked to start: pingora's `--daemon` and `--upgrade`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunMode {
    /// Fork into the background (after the config is checked and the listeners are bound);
    /// the daemon writes the pid file.
    pub daemon: bool,
    /// Take the listening sockets from the running gateway over the upgrade socket (it is sent
    /// SIGQUIT) instead of binding them; addresses it does not hold are bound as usual.
    pub upgrade: bool,
}

/// [`build_server`] for a run mode.
pub fn build_server_with(
    cfg: Arc<Config>,
    secret: Secret,
    mode: RunMode,
) -> Result<Server, StartError> {
    let listener_tls = load_listener_tls(&cfg)?;
    let upstream_ca = load_upstream_tls(&cfg)?;
    // Discovery gets its own client (and connection pool): it runs on the background
    // service's runtime, logins on the proxy's.
    let discovery_secret = secret.clone();
    let (gateway, district_tokens) = build_gateway(cfg.clone(), secret)?;
    let gateway = Arc::new(gateway.with_upstream_cas(upstream_ca));
    // Bound once every file and secret has been read (an error in those is reported whether
    // or not the ports are free), and before the fork of --daemon: a taken address is a start
    // error (exit 2). With --upgrade the running gateway holds them, by design, and hands them
    // over later.
    let (proxy_sockets, admin_sockets) = bind_listeners(&cfg, mode.upgrade)?;
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
    let proxy = pingora::proxy::http_proxy(
        &server.configuration,
        GatewayProxy {
            gateway: gateway.clone(),
        },
    );
    let limits = HeaderLimits {
        timeout: cfg.server.header_timeout,
        max_bytes: crate::gateway::MAX_HEADER_SECTION,
    };
    let mut svc = Service::new(
        "clever-gateway".to_owned(),
        FirstBytes {
            app: Arc::new(proxy),
            limits,
        },
    );
    // Added by address, as pingora would bind them: its table of sockets is keyed by these
    // strings, and OwnSockets puts ours there under the same keys.
    for addr in &cfg.server.listen {
        svc.add_tcp(&addr.to_string());
    }
    if let Some(tls) = &listener_tls {
        for addr in &cfg.server.tls_listen {
            let settings = tls.settings().map_err(|e| StartError::Tls {
                addr: *addr,
                msg: e.to_string(),
            })?;
            svc.add_tls_with_settings(&addr.to_string(), None, settings);
        }
    }
    let pid_file = cfg.server.pid_file.clone();
    server
        .add_service(OwnSockets::new(svc, proxy_sockets, pid_file.clone()))
        .add_dependency(&bootstrap);
    if let Some(addr) = cfg.server.admin_listen {
        // Also after bootstrap: with --upgrade the old process still holds the admin port.
        let admin = OwnSockets::new(
            admin_service(&addr, gateway.clone()),
            admin_sockets,
            pid_file,
        );
        server.add_service(admin).add_dependency(&bootstrap);
        tracing::info!(%addr, "listening (admin: healthz, readyz, metrics)");
    }
    if cfg.clever.discover_district_tokens {
        let client = CleverClient::new(
            cfg.clever.clone(),
            discovery_secret,
            gateway.metrics.clone(),
        )
        .map_err(|e| StartError::Client(e.to_string()))?;
        server.add_service(background_service(
            "district-app tokens",
            Discovery {
                client,
                tokens: district_tokens,
                refresh: cfg.clever.district_tokens_refresh,
            },
        ));
    }
    let phases = Mutex::new(Some(server.watch_execution_phase()));
    server.add_service(background_service(
        "drain",
        Drain {
            grace: cfg.server.grace_period,
            pid_file: cfg.server.pid_file.clone(),
            phases,
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

/// The admin listener: health, readiness and metrics from the proxy's own `Gateway`.
fn admin_service(
    addr: &SocketAddr,
    gateway: Arc<Gateway>,
) -> Service<crate::proxy::admin::AdminApp> {
    let mut svc = Service::new(
        "clever-gateway admin".to_string(),
        crate::proxy::admin::AdminApp { gateway },
    );
    svc.add_tcp(&addr.to_string());
    svc
}

/// A pingora listening service whose sockets the gateway bound itself (or awaits from the
/// running gateway, with --upgrade). When the service starts, after the bootstrap received any
/// sockets handed over, ours go into pingora's table of listening sockets under the addresses
/// the service listens on, so pingora takes them from there instead of binding. The table is
/// also what a later upgrade hands over.
///
/// An awaited address that was not handed over is bound here once it is released; if it is not
/// released in time the process exits (2) with one error line naming the address: pingora would
/// retry 30 s, panic in this thread and leave the process running without the listener.
struct OwnSockets<S> {
    inner: S,
    sockets: Sockets,
    /// Removed (if it names this process) before exiting.
    pid_file: PathBuf,
}

impl<S> OwnSockets<S> {
    fn new(inner: S, sockets: Sockets, pid_file: PathBuf) -> Self {
        OwnSockets {
            inner,
            sockets,
            pid_file,
        }
    }
}

#[async_trait]
impl<S: PingoraService> PingoraService for OwnSockets<S> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        // NOTE: pingora 0.9.1 always passes its table here on unix (Server::run_service);
        // without one our sockets would be closed and pingora would bind by itself.
        if let Some(table) = &fds {
            let mut missing = Vec::new();
            {
                let mut table = table.lock();
                for (addr, socket) in std::mem::take(&mut self.sockets) {
                    let key = addr.to_string();
                    match listeners::claim(table.get(&key).is_some(), socket) {
                        Claim::HandedOver => {}
                        // Pingora owns the descriptor from here on.
                        Claim::Ours(listener) => table.add(key, listener.into_raw_fd()),
                        Claim::Missing => missing.push(addr),
                    }
                }
            }
            for addr in missing {
                tracing::warn!(
                    %addr,
                    wait = ?listeners::RELEASE_WAIT,
                    "the running gateway did not hand this address over and it is in use: \
                     waiting for it to be released"
                );
                match listeners::bind_when_released(addr).await {
                    Ok(listener) => table.lock().add(addr.to_string(), listener.into_raw_fd()),
                    Err(error) => {
                        tracing::error!(%addr, %error, "cannot listen on this address, exiting");
                        lifecycle::remove_pid_file_if_ours(&self.pid_file);
                        std::process::exit(2);
                    }
                }
            }
        }
        self.inner
            .start_service(fds, shutdown, listeners_per_fd)
            .await
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        self.inner.threads()
    }

    fn runtime_opts_override(
        &self,
        global: &pingora::server::RuntimeOpts,
    ) -> Option<pingora::server::RuntimeOpts> {
        self.inner.runtime_opts_override(global)
    }

    /// Pingora closes handed-over sockets no service claims: the inner service's addresses.
    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.inner.listen_addresses()
    }
}

/// The TLS listeners' certificate and key, read and checked now (a bad file is a start error
/// naming it, not a panic in pingora's service thread). `None` without TLS listeners.
pub fn load_listener_tls(cfg: &Config) -> Result<Option<ListenerTls>, StartError> {
    match (&cfg.server.tls_cert, &cfg.server.tls_key) {
        (Some(cert), Some(key)) if !cfg.server.tls_listen.is_empty() => {
            Ok(Some(ListenerTls::load(cert, key)?))
        }
        _ => Ok(None),
    }
}

/// Per upstream (by index): its `tls_ca`, read now. Also loads the system roots the way
/// pingora will (it panics if they cannot be read), warns when HTTPS upstreams would be
/// verified against none, and warns about every upstream with `tls_verify = false`.
pub fn load_upstream_tls(cfg: &Config) -> Result<Vec<Option<UpstreamCa>>, StartError> {
    let roots = crate::process::tls::system_roots().map_err(StartError::SystemRoots)?;
    let mut cas = Vec::with_capacity(cfg.upstreams.len());
    for u in &cfg.upstreams {
        let ca = match &u.tls_ca {
            Some(path) if u.url.tls => Some(load_upstream_ca(&u.name, path)?),
            _ => None,
        };
        if u.url.tls && !u.tls_verify {
            tracing::warn!(
                upstream = %u.name,
                url = %u.url.original,
                "tls_verify = false: this upstream's certificate is NOT verified; anyone who can \
                 intercept the connection can read the identity headers sent to it"
            );
        } else if u.url.tls && ca.is_none() && roots == 0 {
            tracing::warn!(
                upstream = %u.name,
                "no system CA certificates were found (install ca-certificates, or set \
                 SSL_CERT_FILE or this upstream's tls_ca): its certificate cannot be verified \
                 and every request to it will fail"
            );
        }
        cas.push(ca);
    }
    Ok(cas)
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
        // NOTE: not daemon_wait_for_ready: in pingora 0.9.1 the parent installs its SIGUSR1
        // handler only after the fork (server/daemon.rs, wait_for_ready_or_exit), so a daemon
        // that bootstraps quickly kills its parent with SIGUSR1 (seen in tests/reload.rs). The
        // parent exits right after the fork; `reload` watches the pid file and upgrade socket.
        // The daemon keeps the directory it was started in, so relative paths still work.
        working_directory: std::env::current_dir().ok(),
        // One single-threaded tokio runtime per thread, each connection on one of them (as
        // nginx's workers): no work-stealing scheduler between the gateway's threads. Measured
        // with bench/run.sh: about a tenth fewer CPU microseconds per proxied request
        // (bench/results/profile.md). Nothing in the gateway blocks a runtime thread.
        work_stealing: false,
        ..ServerConf::default()
    }
}

/// Exits the process once a graceful shutdown (SIGTERM, or SIGQUIT after the sockets were
/// handed to a new process) has closed the listeners and the requests in flight are done, or
/// when the grace period is over. Pingora alone would always sleep the whole grace period.
///
/// On SIGQUIT pingora sends the sockets, then keeps this process accepting for 5 s before
/// closing the listeners, and closes idle keep-alive connections at that moment, racing any
/// request a client is sending on one. So from the SIGQUIT on, responses carry
/// `Connection: close` ([`lifecycle::start_draining`]) and keep-alive clients reconnect early.
struct Drain {
    grace: Duration,
    pid_file: PathBuf,
    /// Pingora's execution phases, subscribed before `run` (taken once by `start`).
    phases: Mutex<Option<tokio::sync::broadcast::Receiver<ExecutionPhase>>>,
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let phases = self.phases.lock().ok().and_then(|mut p| p.take());
        if let Some(mut phases) = phases {
            tokio::spawn(async move {
                use tokio::sync::broadcast::error::RecvError;
                loop {
                    match phases.recv().await {
                        Ok(ExecutionPhase::GracefulUpgradeTransferringFds) => {
                            tracing::info!(
                                "handing the sockets to a new process: closing connections \
                                 after each response from now on"
                            );
                            lifecycle::start_draining();
                            return;
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    }
                }
            });
        }
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

/// `discover_district_tokens`: lists the application's district-app tokens at start and every
/// `district_tokens_refresh` until shutdown (the loop itself is in `clever::district`).
struct Discovery {
    client: CleverClient,
    tokens: Arc<DistrictTokens>,
    refresh: Duration,
}

#[async_trait]
impl BackgroundService for Discovery {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let stop = async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    return;
                }
            }
        };
        discover_forever(self.client.clone(), self.tokens.clone(), self.refresh, stop).await;
    }
}

/// How long a new connection may stay silent before its first request (pingora's own
/// keep-alive timeout is 60 s too).
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(60);

/// Hands a new plain-HTTP connection to pingora only once the client has sent something, with
/// its request headers bounded (`header_guard`: `server.header_timeout` from a header's first
/// byte, `MAX_HEADER_SECTION` bytes) unless it speaks HTTP/2.
///
/// When a graceful shutdown starts, pingora drops every connection whose request it is still
/// waiting for, and closes the listener at the same moment; after a reload's handover that is
/// the old process, which keeps accepting until then. A client that had just connected to it,
/// but whose request bytes had not arrived yet, got its connection closed without an answer
/// (seen under a request loop in tests/reload.rs). A connection that has sent its first bytes
/// is read before the shutdown is noticed, and answered. TLS streams cannot be peeked: they are
/// handed over at once, as before.
struct FirstBytes<A> {
    app: Arc<A>,
    limits: HeaderLimits,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for FirstBytes<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut first = [0u8; 1];
        // Reads one byte and puts it back (pingora's rewind buffer); Ok(false) at once when
        // the stream cannot be peeked.
        match tokio::time::timeout(FIRST_BYTES_TIMEOUT, stream.try_peek(&mut first)).await {
            Ok(Ok(_)) => {
                if !HeaderGuard::is_h2(&stream) {
                    stream = Box::new(HeaderGuard::new(stream, self.limits));
                }
                self.app.process_new(stream, shutdown).await
            }
            // Closed before sending anything, or silent too long.
            Ok(Err(_)) | Err(_) => None,
        }
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

/// Runs until SIGTERM/SIGINT (graceful) and returns.
pub fn run(server: Server) {
    server.run(RunArgs::default());
}

/// `clever-gateway run`: prepares the pid file's directory, builds the server (binding its
/// listeners), writes the pid file (pingora writes it after the fork with --daemon), runs, and
/// removes the pid file if it still names this process. Without --upgrade, a pid file naming
/// a process therefore means that it holds its listening sockets.
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
