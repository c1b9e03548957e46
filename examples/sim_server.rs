//! The Clever simulator as its own process, for `bench/run.sh` (not part of the product's CLI).
//!
//! ```sh
//! cargo run --release --example sim_server -- REDIRECT_URI...
//! ```
//!
//! Registers every `REDIRECT_URI`, signs the demo teacher in at `/oauth/authorize` without a
//! page (auto-login), lifts the per-token rate limit, prints `base_url client_id client_secret` on one line, and serves on
//! 127.0.0.1 until it is killed.

use clever_gateway::identity::UserType;
use clever_gateway::sim::{demo_users, SimConfig, SimHandle};

fn main() -> anyhow::Result<()> {
    let redirects: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(!redirects.is_empty(), "usage: sim_server REDIRECT_URI...");
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
            ..SimConfig::new(redirects)
        };
        let sim = SimHandle::start("127.0.0.1:0".parse()?, config).await?;
        let teacher = demo_users()
            .into_iter()
            .find(|u| u.role_types() == [UserType::Teacher] && u.district.is_some())
            .ok_or_else(|| anyhow::anyhow!("no demo teacher"))?;
        sim.set_auto_login(Some(&teacher.id));
        println!(
            "{} {} {}",
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
