//! `clever-gateway demo`: the Clever simulator, a sample app and the gateway on loopback, so a
//! person can sign in as any kind of user from a browser without a Clever account.

pub mod app;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use crate::config;
use crate::secret::Secret;
use crate::sim::{SimConfig, SimHandle};
use app::SampleApp;

/// Addresses of the demo's helper servers.
#[derive(Debug, Clone)]
pub struct DemoServices {
    pub sim_base: String,
    pub client_id: String,
    pub client_secret: String,
    pub app: SocketAddr,
}

/// Picks the gateway port: `wanted` if free, else any free loopback port.
pub fn pick_port(wanted: u16) -> std::io::Result<u16> {
    match TcpListener::bind(("127.0.0.1", wanted)) {
        Ok(l) => Ok(l.local_addr()?.port()),
        Err(_) => Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port()),
    }
}

/// Starts the simulator and the sample app on their own runtime thread.
pub fn start_services(gateway_port: u16) -> anyhow::Result<DemoServices> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("demo-services".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(anyhow::anyhow!("runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let redirect = format!("http://127.0.0.1:{gateway_port}/oauth/clever/callback");
                let sim_cfg = SimConfig::new(vec![redirect]);
                let started = async {
                    let sim = SimHandle::start("127.0.0.1:0".parse()?, sim_cfg).await?;
                    let app = SampleApp::start("127.0.0.1:0".parse()?).await?;
                    anyhow::Ok((sim, app))
                };
                match started.await {
                    Ok((sim, app)) => {
                        let _ = tx.send(Ok(DemoServices {
                            sim_base: sim.base_url(),
                            client_id: sim.client_id().to_string(),
                            client_secret: sim.client_secret().to_string(),
                            app: app.addr,
                        }));
                        // Serve for as long as the process lives.
                        std::future::pending::<()>().await;
                        drop((sim, app));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })?;
    rx.recv()?
}

/// The demo's gateway.toml, parsed by the real loader.
pub fn demo_config_text(port: u16, s: &DemoServices) -> String {
    format!(
        r#"# clever-gateway demo configuration (generated)
[server]
listen = ["127.0.0.1:{port}"]
threads = 2

[clever]
client_id = "{client_id}"
client_secret_env = "CLEVER_GATEWAY_DEMO_SECRET"
redirect_uri = "http://127.0.0.1:{port}/oauth/clever/callback"
authorize_url = "{sim}/oauth/authorize"
token_url = "{sim}/oauth/tokens"
api_base = "{sim}"
# The simulator's districts authorized the app: list their district-app tokens, so the sample
# app also receives the user's section ids (the demo district is a Secure Sync customer).
discover_district_tokens = true

[session]
cookie_secure = false   # plain HTTP on loopback, for the demo only
# Signing out of the demo also signs out of "Clever" (the simulator), so the next sign-in shows
# its picker again and a person can choose another user.
logout_redirect = "{sim}/oauth/logout?return=http://127.0.0.1:{port}/"

[[upstream]]
name = "sample-app"
url = "http://{app}"
public_paths = ["/public/"]
[upstream.headers]
email = "X-Clever-Email"
name = "X-Clever-Name"
school_ids = "X-Clever-School-Ids"
section_ids = "X-Clever-Section-Ids"
# The user as the app knows them, built from the Clever record (the README's section on the
# app's own user): a student by student number, a teacher by district username or else the
# email's local part, anyone else by email.
[upstream.set_headers]
"X-Remote-User" = {{ student = "{{student_number}}", teacher = ["{{district_username}}", "{{email|local}}"], default = "{{email|lower}}" }}

[[upstream]]
name = "staff-only"
url = "http://{app}"
path_prefix = "/staff"
allow_user_types = ["teacher", "staff", "district_admin"]
"#,
        client_id = s.client_id,
        sim = s.sim_base,
        app = s.app,
    )
}

/// Runs the demo until interrupted.
pub fn run(port: u16) -> anyhow::Result<()> {
    let port = pick_port(port)?;
    let services = start_services(port)?;
    let text = demo_config_text(port, &services);
    let cfg = config::parse_str(&text, "<demo>").map_err(|e| anyhow::anyhow!("{e}"))?;
    let server = crate::process::server::build_server(
        Arc::new(cfg),
        Secret::new(services.client_secret.clone()),
    )?;
    println!();
    println!("  clever-gateway demo is running.");
    println!();
    println!("  Open  http://127.0.0.1:{port}/          and sign in as any demo user");
    println!("        http://127.0.0.1:{port}/staff/    teachers, staff and admins only (students get 403)");
    println!("        http://127.0.0.1:{port}/_gateway/me       your identity as JSON");
    println!("        http://127.0.0.1:{port}/_gateway/logout   sign out, after asking (of the simulator too)");
    println!();
    println!(
        "  Clever simulator: {}   sample app: http://{}",
        services.sim_base, services.app
    );
    println!("  Press Ctrl-C to stop.");
    println!();
    crate::process::server::run(server);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid_and_logout_signs_out_of_the_simulator() {
        let services = DemoServices {
            sim_base: "http://127.0.0.1:41000".into(),
            client_id: "0123456789abcdef0123".into(),
            client_secret: "0123456789abcdef0123456789abcdef01234567".into(),
            app: "127.0.0.1:41001".parse().unwrap(),
        };
        let cfg = config::parse_str(&demo_config_text(8080, &services), "<demo>")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cfg.session.logout_redirect,
            "http://127.0.0.1:41000/oauth/logout?return=http://127.0.0.1:8080/"
        );
        assert!(cfg.clever.discover_district_tokens);
        assert!(cfg.wants_school_ids() && cfg.wants_section_ids());
    }
}
