//! The Clever simulator as its own process, for `bench/run.sh` and `bench/storm.sh` (not part
//! of the product's CLI).
//!
//! ```sh
//! cargo run --release --example sim_server -- REDIRECT_URI...
//! ```
//!
//! Registers every `REDIRECT_URI`, lifts the per-token rate limit, prints
//! `base_url client_id client_secret` on one line, and serves on 127.0.0.1 until it is killed.
//! By default it signs the demo teacher in at `/oauth/authorize` without a page (auto-login).
//!
//! Environment, for the sign-in storm (`bench/storm.sh`):
//! - `SIM_TLS_DIR=DIR`: serve HTTPS with a certificate for 127.0.0.1 issued by a fresh test CA,
//!   whose certificate is written to `DIR/ca.pem` (give it to the client as `SSL_CERT_FILE`).
//! - `SIM_LATENCY=150ms`, `SIM_JITTER=50ms`: hold every answer of a Clever endpoint that long.
//! - `SIM_API_LISTENER=1`: a second address serving the same simulator, printed as a fourth
//!   field: give it to the relying party for its server-to-server calls (token exchange, API),
//!   so `GET /_sim/stats` counts the connections it opens apart from the browsers'.
//! - `SIM_AUTO_LOGIN=none`: no auto-login; browsers sign in through Instant Login links, which
//!   keep them signed in at the simulator, as Clever's Portal does.

use std::sync::Arc;
use std::time::Duration;

use clever_gateway::identity::UserType;
use clever_gateway::sim::{demo_users, Latency, SimConfig, SimHandle};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio_rustls::rustls;

fn main() -> anyhow::Result<()> {
    let redirects: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(!redirects.is_empty(), "usage: sim_server REDIRECT_URI...");
    let duration = |name: &str| -> anyhow::Result<Option<Duration>> {
        match std::env::var(name) {
            Ok(v) => Ok(Some(humantime::parse_duration(&v)?)),
            Err(_) => Ok(None),
        }
    };
    let latency = duration("SIM_LATENCY")?.map(|mean| Latency {
        mean,
        jitter: Duration::ZERO,
    });
    let latency = match (latency, duration("SIM_JITTER")?) {
        (Some(l), Some(jitter)) => Some(Latency { jitter, ..l }),
        (l, _) => l,
    };
    let tls = match std::env::var("SIM_TLS_DIR") {
        Ok(dir) => Some(test_ca_server_config(std::path::Path::new(&dir))?),
        Err(_) => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // The sign-in benchmark signs the demo teacher in 2000 times within a second, and the
        // simulator counts Clever's limit (1200 API requests a minute) per user, which would
        // turn most of those logins into 429s: the benchmark measures the gateway, not the limit.
        let config = SimConfig {
            rate_limit: u32::MAX,
            latency,
            ..SimConfig::new(redirects)
        };
        let addr = "127.0.0.1:0".parse()?;
        let mut sim = match tls {
            Some(tls) => SimHandle::start_tls(addr, config, tls).await?,
            None => SimHandle::start(addr, config).await?,
        };
        if std::env::var("SIM_AUTO_LOGIN").as_deref() != Ok("none") {
            let teacher = demo_users()
                .into_iter()
                .find(|u| u.role_types() == [UserType::Teacher] && u.district.is_some())
                .ok_or_else(|| anyhow::anyhow!("no demo teacher"))?;
            sim.set_auto_login(Some(&teacher.id));
        }
        let api = if std::env::var("SIM_API_LISTENER").as_deref() == Ok("1") {
            let bound = sim.add_listener(addr).await?;
            let scheme = sim
                .base_url()
                .split(':')
                .next()
                .unwrap_or("http")
                .to_string();
            format!(" {scheme}://{bound}")
        } else {
            String::new()
        };
        println!(
            "{} {} {}{api}",
            sim.base_url(),
            sim.client_id(),
            sim.client_secret()
        );
        use std::io::Write;
        std::io::stdout().flush()?;
        std::future::pending::<()>().await;
        drop(sim);
        anyhow::Ok(())
    })
}

/// A fresh test CA (its certificate written to `dir/ca.pem`) and a server certificate for
/// 127.0.0.1 and localhost that it issued.
fn test_ca_server_config(dir: &std::path::Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "clever-gateway storm test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let leaf_key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?
        .signed_by(&leaf_key, &ca)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("leaf key: {e}"))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let config = rustls::ServerConfig::builder_with_provider(provider.into())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)?;
    Ok(Arc::new(config))
}
