//! Shutdown and reload through the real binary: SIGTERM drains in-flight requests within
//! `grace_period`; `clever-gateway reload` swaps the process under a request loop without a
//! failed request; a broken config is refused and the old process keeps serving; listeners a
//! reload adds are bound by the new process, which exits 2 naming one it cannot bind.

mod life;

use std::time::{Duration, Instant};

use clever_gateway::sim::SimHandle;
use nix::sys::signal::Signal;

use life::common::{free_port, sim_for};
use life::{
    alive, config, read, run_cmd, run_on_a_free_port, spawn, start_app, wait_exit, wait_gone,
    Files, KillOnDrop, Reaper,
};

/// A gateway with `grace_period` in front of a fresh test app; waits until it answers.
async fn gateway(grace: &str) -> (Reaper, Files, u16, SimHandle) {
    let app = start_app("a").await;
    let f = Files::new();
    let server = format!("grace_period = \"{grace}\"");
    let (gw, port, sim) = run_on_a_free_port(&f, &[], |port, sim| {
        config(port, sim, f.dir.path(), &server, &app.to_string(), "")
    })
    .await;
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

/// What one client of the request loop saw.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    failed: Vec<String>,
}

/// A client sending `GET /pub/loop` back to back until `stop`, at most 20 000 requests or
/// 30 s. `keep_alive = false`: a new connection per request.
fn client_loop(
    port: u16,
    keep_alive: bool,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Tally> {
    tokio::spawn(async move {
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if !keep_alive {
            b = b.pool_max_idle_per_host(0);
        }
        let client = b.build().unwrap();
        let mut t = Tally::default();
        let start = Instant::now();
        while !stop.load(std::sync::atomic::Ordering::SeqCst)
            && t.sent < 20_000
            && start.elapsed() < Duration::from_secs(30)
        {
            t.sent += 1;
            let at = start.elapsed();
            match client
                .get(format!("http://127.0.0.1:{port}/pub/loop"))
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => match r.text().await {
                    Ok(body) if body == "a /pub/loop" => {}
                    Ok(body) => t.failed.push(format!("{at:?}: body {body:?}")),
                    Err(e) => t.failed.push(format!("{at:?}: body: {e:?}")),
                },
                Ok(r) => t.failed.push(format!("{at:?}: status {}", r.status())),
                Err(e) => t.failed.push(format!("{at:?}: {e:?}")),
            }
        }
        t
    })
}

/// The second config: the same plus a route `/b` to app "b".
fn with_route_b(first: &str, b: std::net::SocketAddr) -> String {
    format!(
        "{first}\n[[upstream]]\nname = \"b\"\nurl = \"http://{b}\"\npath_prefix = \"/b\"\npublic_paths = [\"/b/\"]\n"
    )
}

#[tokio::test]
async fn reload_under_request_loop_fails_no_request_and_serves_the_new_route() {
    let (a, b) = (start_app("a").await, start_app("b").await);
    let f = Files::new();
    let _daemons = KillOnDrop(f.cfg.clone());
    let (mut old, port, sim) = run_on_a_free_port(&f, &[], |port, sim| {
        config(
            port,
            sim,
            f.dir.path(),
            "grace_period = \"2s\"",
            &a.to_string(),
            "",
        )
    })
    .await;
    let first = read(&f.cfg);
    let old_pid = old.0.id();
    let route_b = format!("http://127.0.0.1:{port}/b/x");
    // Before the reload /b/x belongs to app a, where only /pub/ is public.
    assert_eq!(reqwest::get(&route_b).await.unwrap().status(), 401);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loops: Vec<_> = [false, false, true, true]
        .into_iter()
        .map(|keep_alive| (keep_alive, client_loop(port, keep_alive, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    f.write_config(&with_route_b(&first, b));
    let reload_log = f.dir.path().join("reload.log");
    let (code, stdout, stderr) =
        run_cmd(&["reload"], &f.cfg, sim.client_secret(), &reload_log).await;
    let new_pid: u32 = read(&f.pid_file()).trim().parse().unwrap_or(0);
    assert_eq!(code, Some(0), "reload failed:\n{stdout}\n{stderr}");
    assert!(stdout.starts_with("reloaded: pid "), "{stdout}");
    assert!(
        new_pid != 0 && new_pid != old_pid && alive(new_pid),
        "{stdout}"
    );

    // reload returns once the old process is gone (it served 5 s alongside the new one, as
    // pingora does, then drained): only the new config answers now.
    let (status, _) = wait_exit(&mut old.0, Duration::from_millis(500))
        .await
        .unwrap_or_else(|| panic!("old process still running:\n{}", read(&f.log)));
    assert!(status.success(), "{status:?}");
    for _ in 0..20 {
        assert_eq!(
            reqwest::get(&route_b).await.unwrap().text().await.unwrap(),
            "b /b/x"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);

    let mut report = Vec::new();
    let mut total = 0;
    for (keep_alive, h) in loops {
        let t = h.await.unwrap();
        total += t.sent;
        report.push(format!(
            "{} client: {} sent, {} failed {:?}",
            if keep_alive {
                "keep-alive"
            } else {
                "new-connection"
            },
            t.sent,
            t.failed.len(),
            t.failed.iter().take(5).collect::<Vec<_>>()
        ));
        assert!(t.sent >= 20, "{report:?}");
    }
    eprintln!(
        "reload under load: {total} requests; reload: {}\n{}",
        stdout.trim(),
        report.join("\n")
    );
    assert!(
        report.iter().all(|r| r.contains(" 0 failed")),
        "{}\n--- old:\n{}\n--- new:\n{}",
        report.join("\n"),
        read(&f.log),
        read(&reload_log)
    );
    assert!(alive(new_pid), "new process still serving");
    assert_eq!(
        reqwest::get(&route_b).await.unwrap().text().await.unwrap(),
        "b /b/x"
    );
}

#[tokio::test]
async fn reload_with_broken_config_exits_2_and_old_keeps_serving() {
    let (mut gw, f, port, sim) = gateway("2s").await;
    let pid_before = read(&f.pid_file());
    let good = std::fs::read_to_string(&f.cfg).unwrap();
    f.write_config(&good.replace("threads = 2\n", "threads = 2\ncolour = \"blue\"\n"));
    let (code, stdout, stderr) = run_cmd(
        &["reload"],
        &f.cfg,
        sim.client_secret(),
        &f.dir.path().join("reload.log"),
    )
    .await;
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    let file = f.cfg.display().to_string();
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&file) && l.contains("unknown key \"colour\"")),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(read(&f.pid_file()), pid_before, "pid file untouched");
    assert!(matches!(gw.0.try_wait(), Ok(None)), "old process untouched");
    let r = reqwest::get(format!("http://127.0.0.1:{port}/pub/x"))
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "a /pub/x");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        matches!(gw.0.try_wait(), Ok(None)),
        "old process still running"
    );
}

#[tokio::test]
async fn reload_when_nothing_runs_fails_clearly() {
    let port = free_port();
    let sim = sim_for(port, None).await;
    let f = Files::new();
    f.write_config(&config(port, &sim, f.dir.path(), "", "127.0.0.1:9", ""));
    let (code, stdout, stderr) = run_cmd(
        &["reload"],
        &f.cfg,
        sim.client_secret(),
        &f.dir.path().join("reload.log"),
    )
    .await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("no running gateway found"), "{stderr}");
    assert!(stderr.contains("gw.pid does not exist"), "{stderr}");
}

#[tokio::test]
async fn run_daemon_then_reload_daemon_to_daemon() {
    // What systemd does: ExecStart=run --daemon (Type=forking, PIDFile), ExecReload=reload.
    let port = free_port();
    let sim = sim_for(port, None).await;
    let (a, b) = (start_app("a").await, start_app("b").await);
    let f = Files::new();
    let first = config(
        port,
        &sim,
        f.dir.path(),
        "grace_period = \"1s\"",
        &a.to_string(),
        "",
    );
    f.write_config(&first);
    let _daemons = KillOnDrop(f.cfg.clone());
    let log = f.dir.path().join("daemon.log");
    let (code, _, stderr) = run_cmd(&["run", "--daemon"], &f.cfg, sim.client_secret(), &log).await;
    assert_eq!(code, Some(0), "{stderr}");
    // `run --daemon` returns right after the fork; the daemon writes the pid file and serves.
    let mut old_pid = 0;
    for _ in 0..250 {
        old_pid = read(&f.pid_file()).trim().parse().unwrap_or(0);
        if old_pid != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(old_pid != 0 && alive(old_pid), "daemon pid in the pid file");
    for _ in 0..250 {
        if reqwest::get(format!("http://127.0.0.1:{port}/_gateway/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = reqwest::get(format!("http://127.0.0.1:{port}/pub/x"))
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "a /pub/x");

    f.write_config(&with_route_b(&first, b));
    let (code, stdout, stderr) = run_cmd(
        &["reload"],
        &f.cfg,
        sim.client_secret(),
        &f.dir.path().join("reload.log"),
    )
    .await;
    let new_pid: u32 = read(&f.pid_file()).trim().parse().unwrap_or(0);
    assert_eq!(code, Some(0), "{stdout}{stderr}\n{}", read(&log));
    assert!(new_pid != old_pid && alive(new_pid));
    let r = reqwest::get(format!("http://127.0.0.1:{port}/b/y"))
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "b /b/y");
    assert!(
        !alive(old_pid),
        "reload returned once the old daemon was gone"
    );
    assert!(
        !f.dir.path().join("gw.pid.old").exists(),
        "the old daemon removed its .old pid file"
    );

    // SIGTERM to the daemon the pid file names stops it and removes the pid file.
    life::signal(new_pid, Signal::SIGTERM);
    assert!(wait_gone(new_pid, Duration::from_secs(5)).await.is_some());
    assert!(!f.pid_file().exists(), "pid file removed");
}

/// `first` with `listen` replaced by `listen` and `admin_listen` added.
fn with_listeners(first: &str, port: u16, listen: &[u16], admin: u16) -> String {
    let list: Vec<String> = listen
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    first.replacen(
        &format!("listen = [\"127.0.0.1:{port}\"]\n"),
        &format!(
            "listen = [{}]\nadmin_listen = \"127.0.0.1:{admin}\"\n",
            list.join(", ")
        ),
        1,
    )
}

/// A gateway started with `run` on a free port in front of one app ("a"), healthy: where the
/// listener tests begin.
struct Running {
    port: u16,
    sim: SimHandle,
    f: Files,
    /// The config it runs.
    first: String,
    /// Kills every process still running this config when the test ends.
    _daemons: KillOnDrop,
    old: Reaper,
}

async fn running_in_front_of_one_app() -> Running {
    let app = start_app("a").await;
    let f = Files::new();
    let daemons = KillOnDrop(f.cfg.clone());
    let (old, port, sim) = run_on_a_free_port(&f, &[], |port, sim| {
        config(port, sim, f.dir.path(), "", &app.to_string(), "")
    })
    .await;
    let first = read(&f.cfg);
    Running {
        port,
        sim,
        f,
        first,
        _daemons: daemons,
        old,
    }
}

/// Waits (at most 15 s) until the file at `path` contains `needle`.
async fn wait_for_text(path: &std::path::Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !read(path).contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in:\n{}",
            read(path)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn reload_adding_listeners_binds_a_free_one_and_waits_for_one_still_in_use() {
    let Running {
        port,
        sim,
        f,
        first,
        _daemons,
        old: _old,
    } = running_in_front_of_one_app().await;

    // A new plain listener on a free port, and an admin listener on a port someone else holds
    // while the new process starts (as the old process would, for an address it does not hand
    // over): let go once the new process waits for it.
    let extra = free_port();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = busy.local_addr().unwrap().port();
    f.write_config(&with_listeners(&first, port, &[port, extra], admin));
    let reload_log = f.dir.path().join("reload.log");
    let release = async {
        wait_for_text(&reload_log, "did not hand this address over").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(busy);
    };
    let ((code, stdout, stderr), ()) = tokio::join!(
        run_cmd(&["reload"], &f.cfg, sim.client_secret(), &reload_log),
        release
    );
    assert_eq!(code, Some(0), "reload failed:\n{stdout}\n{stderr}");
    let new_pid: u32 = read(&f.pid_file()).trim().parse().unwrap_or(0);
    assert!(alive(new_pid), "{stderr}");
    for url in [
        format!("http://127.0.0.1:{port}/_gateway/healthz"),
        format!("http://127.0.0.1:{extra}/_gateway/healthz"),
        format!("http://127.0.0.1:{admin}/healthz"),
    ] {
        let r = reqwest::get(&url).await.unwrap();
        assert_eq!(r.status(), 200, "{url}\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn upgrade_exits_2_naming_an_address_that_stays_in_use() {
    let Running {
        port,
        sim,
        f,
        first,
        _daemons,
        old,
    } = running_in_front_of_one_app().await;

    // The new config adds an admin listener on a port another program holds throughout.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = busy.local_addr().unwrap().port();
    f.write_config(&with_listeners(&first, port, &[port], admin));
    let new_log = f.dir.path().join("new.log");
    let mut new = Reaper(spawn(
        &["run", "--upgrade"],
        &f.cfg,
        &new_log,
        sim.client_secret(),
    ));
    let sock = f.dir.path().join("gw.sock");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "no upgrade socket:\n{}",
            read(&new_log)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    life::signal(old.0.id(), Signal::SIGQUIT);

    let (status, _) = wait_exit(&mut new.0, Duration::from_secs(25))
        .await
        .unwrap_or_else(|| panic!("new process still running:\n{}", read(&new_log)));
    let log = read(&new_log);
    assert_eq!(status.code(), Some(2), "{log}");
    // (Pingora's own "No incoming socket transfer" ERROR line is expected on every upgrade.)
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR clever_gateway"))
        .collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("cannot listen")
            && errors[0].contains(&format!("addr=127.0.0.1:{admin}"))
            && errors[0].contains("Address already in use"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        read(&f.pid_file()).trim() != new.0.id().to_string(),
        "the pid file does not name the process that exited"
    );
    drop(busy);
}

#[tokio::test]
async fn reload_whose_new_address_stays_in_use_fails_naming_it() {
    let Running {
        port,
        sim,
        f,
        first,
        _daemons,
        old: _old,
    } = running_in_front_of_one_app().await;

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = busy.local_addr().unwrap().port();
    f.write_config(&with_listeners(&first, port, &[port], admin));
    let reload_log = f.dir.path().join("reload.log");
    let (code, stdout, stderr) =
        run_cmd(&["reload"], &f.cfg, sim.client_secret(), &reload_log).await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("does not answer on 127.0.0.1:{admin}")),
        "{stderr}"
    );
    // The new daemon logs to the same stderr; it gives up and exits.
    wait_for_text(
        &reload_log,
        &format!("cannot listen on this address, exiting addr=127.0.0.1:{admin}"),
    )
    .await;
    drop(busy);
}
