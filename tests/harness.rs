//! The test harness itself, through the real binary: a gateway whose port another process took
//! after `free_port()` released it is told apart from one that serves, and `on_a_free_port`
//! starts again on another port.

mod common;

use common::*;

/// Another gateway already serves `/_gateway/healthz` with `ok` on the port: the new one
/// exits (its port is taken) and that is what the harness reports, instead of taking the
/// other process's answer for its own and letting the test talk to a process that may go
/// away under it (connection refused later).
#[tokio::test]
async fn start_on_a_port_another_gateway_serves_is_port_taken() {
    let first = env_with(None, "", "").await;
    let port = first.gw.port;
    let sim = sim_for(port, None).await;
    let cfg = format!(
        "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n",
        base_config(port, &sim, ""),
        first.app.addr
    );
    match try_start_gateway_env(port, &cfg, sim.client_secret(), &[]).await {
        Err(PortTaken(logs)) => assert!(
            logs.contains(&format!("cannot listen on 127.0.0.1:{port}")),
            "{logs}"
        ),
        Ok(mut second) => panic!(
            "the second gateway was taken for started (running: {}):\n{}",
            second.is_running(),
            second.logs()
        ),
    }
}

/// The first try finds its port taken (held here from `free_port()` on, as another process
/// could): the gateway exits, and the harness starts everything again on another port.
#[tokio::test]
async fn on_a_free_port_starts_again_when_the_port_was_taken() {
    let mut ports = Vec::new();
    let env = on_a_free_port(async |port| {
        ports.push(port);
        let _thief = (ports.len() == 1).then(|| std::net::TcpListener::bind(("127.0.0.1", port)));
        let sim = sim_for(port, None).await;
        let app = Upstream::start().await;
        let cfg = format!(
            "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n",
            base_config(port, &sim, ""),
            app.addr
        );
        let gw = try_start_gateway_env(port, &cfg, sim.client_secret(), &[]).await?;
        Ok(Env { sim, app, gw })
    })
    .await;
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_eq!(env.gw.port, ports[1]);
    let r = reqwest::get(env.gw.url("/_gateway/healthz")).await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok\n");
}
