//! Shutdown and reload through the real binary: SIGTERM drains in-flight requests within
//! `grace_period`; `clever-gateway reload` swaps the process under a request loop without a
//! failed request; a broken config is refused and the old process keeps serving.

mod life;

use std::time::{Duration, Instant};

use clever_gateway::sim::SimHandle;
use nix::sys::signal::Signal;

use life::common::{free_port, sim_for};
use life::{config, read, spawn, start_app, wait_exit, wait_healthy, Files, Reaper};

/// A gateway with `grace_period` in front of a fresh test app; waits until it answers.
async fn gateway(grace: &str) -> (Reaper, Files, u16, SimHandle) {
    let port = free_port();
    let sim = sim_for(port, None).await;
    let app = start_app("a").await;
    let f = Files::new();
    f.write_config(&config(
        port,
        &sim,
        f.dir.path(),
        &format!("grace_period = \"{grace}\""),
        &app.to_string(),
        "",
    ));
    let mut gw = Reaper(spawn(&["run"], &f.cfg, &f.log, sim.client_secret()));
    wait_healthy(port, &mut gw.0, &f.log).await;
    (gw, f, port, sim)
}

#[tokio::test]
async fn sigterm_lets_in_flight_request_finish_then_exits_before_grace_period() {
    let (mut gw, f, port, _sim) = gateway("5s").await;
    assert!(f.pid_file().exists(), "pid file written");
    let slow = tokio::spawn(async move {
        let r = reqwest::get(format!("http://127.0.0.1:{port}/pub/slow/1000"))
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((
            r.status().as_u16(),
            r.text().await.map_err(|e| e.to_string())?,
        ))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    life::signal(gw.0.id(), Signal::SIGTERM);
    let (status, took) = wait_exit(&mut gw.0, Duration::from_secs(8))
        .await
        .unwrap_or_else(|| panic!("still running 8 s after SIGTERM:\n{}", read(&f.log)));
    let answer = slow.await.unwrap();
    assert_eq!(
        answer,
        Ok((200, "a /pub/slow/1000".to_owned())),
        "{}",
        read(&f.log)
    );
    assert!(status.success(), "{status:?}");
    // The request had ~700 ms left: the process waits for it, then exits, well before 5 s.
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "exited {took:?} after SIGTERM\n{}",
        read(&f.log)
    );
    assert!(!f.pid_file().exists(), "pid file removed on exit");
    assert!(read(&f.log).contains("all requests finished"));
}

#[tokio::test]
async fn sigterm_idle_exits_at_once() {
    let (mut gw, f, _port, _sim) = gateway("10s").await;
    life::signal(gw.0.id(), Signal::SIGTERM);
    let (status, took) = wait_exit(&mut gw.0, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("still running:\n{}", read(&f.log)));
    assert!(status.success());
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn sigterm_grace_period_bounds_a_stuck_request() {
    let (mut gw, f, port, _sim) = gateway("1s").await;
    let stuck = tokio::spawn(async move {
        reqwest::get(format!("http://127.0.0.1:{port}/pub/slow/8000"))
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    life::signal(gw.0.id(), Signal::SIGTERM);
    let (status, took) = wait_exit(&mut gw.0, Duration::from_secs(8))
        .await
        .unwrap_or_else(|| panic!("still running:\n{}", read(&f.log)));
    assert!(status.success());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "exited {took:?} after SIGTERM with grace_period 1s\n{}",
        read(&f.log)
    );
    assert!(stuck.await.unwrap().is_err(), "the stuck request was cut");
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert!(read(&f.log).contains("grace period over"));
}
