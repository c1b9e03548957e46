//! Builds and runs the pingora server from a validated configuration: session store, Clever
//! client, listeners, and the process settings pingora would otherwise default unsafely.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use pingora::protocols::tls::CaType;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};

use crate::auth::Auth;
use crate::clever::CleverClient;
use crate::config::{Config, StoreKind};
use crate::gateway::Gateway;
use crate::proxy::GatewayProxy;
use crate::secret::Secret;
use crate::session::memory::MemoryLimits;
use crate::session::{Clock, MemoryStore, RedisSettings, RedisStore, SessionStore, SystemClock};
use crate::tls::{ListenerTls, TlsFileError};

/// Seconds SIGTERM waits for in-flight requests (pingora's own default is 300 s).
const GRACE_PERIOD_SECS: u64 = 10;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the Redis password: {0}")]
    RedisPassword(crate::config::SecretError),
    #[error("cannot set up the Redis session store: {0}")]
    Redis(crate::session::StoreError),
    #[error("cannot set up metrics: {0}")]
    Metrics(String),
    #[error("cannot build the HTTP client for Clever: {0}")]
    Client(String),
    #[error("cannot set up TLS on {addr}: {msg}")]
    Tls { addr: SocketAddr, msg: String },
    #[error("{0}")]
    TlsFile(#[from] TlsFileError),
    #[error("cannot load the system's CA certificates, which verify HTTPS upstreams: {0} (check SSL_CERT_FILE and SSL_CERT_DIR)")]
    SystemRoots(String),
}

/// Builds the request logic (store, Clever client, login flows) for a configuration.
pub fn build_gateway(cfg: Arc<Config>, secret: Secret) -> Result<Gateway, StartError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = build_store(&cfg, clock.clone())?;
    let metrics = crate::metrics::Metrics::new().map_err(|e| StartError::Metrics(e.to_string()))?;
    let metrics = Arc::new(metrics);
    let clever = CleverClient::new(cfg.clever.clone(), secret, metrics.clone())
        .map_err(|e| StartError::Client(e.to_string()))?;
    let auth = Auth::new(cfg.clone(), store, clever, clock, metrics);
    Ok(Gateway::new(cfg, auth))
}

/// The configured session store; Redis is not contacted yet (a gateway may start while Redis
/// is down: it is then not ready).
fn build_store(cfg: &Config, clock: Arc<dyn Clock>) -> Result<Arc<dyn SessionStore>, StartError> {
    Ok(match cfg.session.store {
        StoreKind::Memory => Arc::new(MemoryStore::new(
            cfg.session.ttl,
            clock,
            MemoryLimits::default(),
        )),
        StoreKind::Redis => {
            // rediss:// uses rustls: the process's provider, the one pingora installs.
            pingora::tls::install_default_crypto_provider();
            let password = cfg
                .session
                .redis_password
                .as_ref()
                .map(crate::config::read_secret)
                .transpose()
                .map_err(StartError::RedisPassword)?;
            let settings = RedisSettings {
                url: cfg.session.redis_url.clone().unwrap_or_default(),
                password: password.map(Secret::new),
            };
            Arc::new(RedisStore::new(&settings, clock).map_err(StartError::Redis)?)
        }
    })
}

/// Fails early and clearly when a listen address is taken (pingora would panic in a
/// service thread and leave the process running).
pub fn check_listen_addrs(cfg: &Config) -> Result<(), StartError> {
    let tls_and_admin = cfg.server.tls_listen.iter().chain(&cfg.server.admin_listen);
    for addr in cfg.server.listen.iter().chain(tls_and_admin) {
        TcpListener::bind(addr).map_err(|source| StartError::Listen {
            addr: *addr,
            source,
        })?;
    }
    Ok(())
}

/// The admin listener: health, readiness and metrics from the proxy's own `Gateway`.
fn admin_service(
    addr: &SocketAddr,
    gateway: Arc<Gateway>,
) -> pingora::services::listening::Service<crate::proxy::admin::AdminApp> {
    let mut svc = pingora::services::listening::Service::new(
        "clever-gateway admin".to_string(),
        crate::proxy::admin::AdminApp { gateway },
    );
    svc.add_tcp(&addr.to_string());
    svc
}

/// Builds the pingora server with the gateway service on every configured listener.
pub fn build_server(cfg: Arc<Config>, secret: Secret) -> Result<Server, StartError> {
    check_listen_addrs(&cfg)?;
    let listener_tls = load_listener_tls(&cfg)?;
    let upstream_ca = load_upstream_tls(&cfg)?;
    let gateway = Arc::new(build_gateway(cfg.clone(), secret)?);
    let threads = cfg.server.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let run_dir = std::env::temp_dir();
    let pid = std::process::id();
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(GRACE_PERIOD_SECS),
        graceful_shutdown_timeout_seconds: Some(5),
        pid_file: run_dir
            .join(format!("clever-gateway-{pid}.pid"))
            .to_string_lossy()
            .into_owned(),
        upgrade_sock: run_dir
            .join(format!("clever-gateway-{pid}-upgrade.sock"))
            .to_string_lossy()
            .into_owned(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut svc = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        GatewayProxy {
            gateway: gateway.clone(),
            upstream_ca,
        },
        "clever-gateway",
    );
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
    server.add_service(svc);
    for addr in &cfg.server.listen {
        tracing::info!(%addr, "listening (http)");
    }
    for addr in &cfg.server.tls_listen {
        tracing::info!(%addr, "listening (https)");
    }
    if let Some(addr) = cfg.server.admin_listen {
        server.add_service(admin_service(&addr, gateway));
        tracing::info!(%addr, "listening (admin: healthz, readyz, metrics)");
    }
    Ok(server)
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
pub fn load_upstream_tls(cfg: &Config) -> Result<Vec<Option<Arc<CaType>>>, StartError> {
    let roots = crate::tls::system_roots().map_err(StartError::SystemRoots)?;
    let mut cas = Vec::with_capacity(cfg.upstreams.len());
    for u in &cfg.upstreams {
        let ca = match &u.tls_ca {
            Some(path) if u.url.tls => Some(crate::tls::load_upstream_ca(&u.name, path)?),
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

/// Runs until SIGTERM/SIGINT (graceful) and returns.
pub fn run(server: Server) {
    server.run(RunArgs::default());
}
