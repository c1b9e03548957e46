//! Log format: `log_format` in the file and `--log-format` on the command line; config errors
//! are plain text unless the command line asks for JSON.

mod life;

use life::common::{free_port, sim_for, Upstream};
use life::{config, read, run_on_a_free_port, spawn, Files, Reaper};

/// Starts a gateway with `server` lines and extra `args`, sends one public request with a
/// query, stops it, and returns its stderr.
async fn logs_of(server: &str, args: &[&str]) -> String {
    let app = Upstream::start().await;
    let f = Files::new();
    let (gw, port, _sim) = run_on_a_free_port(&f, args, |port, sim| {
        config(port, sim, f.dir.path(), server, &app.addr.to_string(), "")
    })
    .await;
    let r = reqwest::get(format!(
        "http://127.0.0.1:{port}/pub/page?code=SECRETCODE123"
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    // The access line is written after the response: give it a moment.
    for _ in 0..50 {
        if read(&f.log).contains("/pub/page") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(gw);
    read(&f.log)
}

#[tokio::test]
async fn log_format_json_in_file_writes_one_json_object_per_line() {
    let logs = logs_of("log_format = \"json\"", &[]).await;
    let mut access = None;
    let mut lines = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{logs}"));
        assert!(v.is_object(), "{line}");
        assert!(v["level"].is_string(), "{line}");
        // RFC 3339 UTC with microseconds, as tracing-subscriber's default timer writes it.
        let time = v["timestamp"].as_str().unwrap_or_default();
        assert!(
            time.len() == 27 && time.ends_with('Z') && humantime::parse_rfc3339(time).is_ok(),
            "{line}"
        );
        if v["target"] == "access" && v["path"] == "/pub/page" {
            access = Some(v);
        }
        lines += 1;
    }
    assert!(lines >= 3, "startup lines are JSON too:\n{logs}");
    let a = access.unwrap_or_else(|| panic!("no access line:\n{logs}"));
    // Fields are at the top level, not under "fields".
    assert_eq!(a["message"], "request");
    assert_eq!(a["method"], "GET");
    assert_eq!(a["status"], 200);
    assert_eq!(a["upstream"], "app");
    assert_eq!(a["user_id"], "-");
    assert!(
        a["request_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{a}"
    );
    assert!(a["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{a}");
    assert!(
        !logs.contains("SECRETCODE123"),
        "query value in logs:\n{logs}"
    );
}

#[tokio::test]
async fn log_format_flag_overrides_file() {
    let logs = logs_of("log_format = \"json\"", &["--log-format", "human"]).await;
    let line = logs
        .lines()
        .find(|l| l.contains("/pub/page"))
        .unwrap_or_else(|| panic!("no access line:\n{logs}"));
    assert!(
        serde_json::from_str::<serde_json::Value>(line).is_err(),
        "{line}"
    );
    assert!(line.contains("INFO") && line.contains("access"), "{line}");
    // The line starts with the time as tracing-subscriber's default timer writes it.
    let time = line.split(' ').next().unwrap_or_default();
    assert!(
        time.len() == 27 && time.ends_with('Z') && humantime::parse_rfc3339(time).is_ok(),
        "{line}"
    );
    assert!(
        !line.contains('\u{1b}'),
        "no color codes when stderr is a file: {line:?}"
    );

    let logs = logs_of("", &["--log-format", "json"]).await;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "{line}"
        );
    }
}

/// Config errors come before the file's `log_format` is read: plain lines whatever the file
/// says, JSON lines (one per problem, level ERROR) only when `--log-format json` is given.
#[test]
fn config_errors_are_plain_lines_unless_the_flag_asks_for_json() {
    let f = Files::new();
    let text = "[server]\nlog_format = \"json\"\ncolour = \"blue\"\n";
    f.write_config(text);
    let file = f.cfg.display().to_string();
    let unknown = format!("{file}:3:1: unknown key \"colour\"");
    let nothing_started = format!("clever-gateway: {file} has errors; nothing started");
    // The command's stderr; it must exit 2.
    let stderr_of = |args: &[&str]| {
        let out = life::bin()
            .args(args)
            .arg("--config")
            .arg(&f.cfg)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for args in [&["run"][..], &["check"]] {
        let stderr = stderr_of(args);
        assert!(
            stderr.lines().any(|l| l.starts_with(&unknown)),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.lines().any(|l| l == nothing_started),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.lines().all(|l| !l.starts_with('{')),
            "{args:?}: no JSON: {stderr}"
        );
    }
    for args in [
        &["run", "--log-format", "json"][..],
        &["check", "--log-format", "json"],
    ] {
        let stderr = stderr_of(args);
        let lines: Vec<serde_json::Value> = stderr
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {l:?}\n{stderr}"))
            })
            .collect();
        assert!(
            lines.iter().all(|v| v["level"] == "ERROR"),
            "{args:?}: {stderr}"
        );
        let messages: Vec<&str> = lines.iter().filter_map(|v| v["message"].as_str()).collect();
        assert_eq!(messages.len(), lines.len(), "{args:?}: {stderr}");
        assert!(
            messages.iter().any(|m| m.starts_with(&unknown)),
            "{args:?}: {stderr}"
        );
        assert_eq!(
            messages.last(),
            Some(&nothing_started.as_str()),
            "{args:?}: {stderr}"
        );
    }
}

/// Access lines wait in a buffer and go out in batches; the ones still waiting when the gateway
/// stops are written as it exits: every request of the last moments is in the log, once.
#[tokio::test]
async fn every_access_line_is_written_when_the_gateway_stops() {
    let app = Upstream::start().await;
    let f = Files::new();
    let (mut gw, port, _sim) = run_on_a_free_port(&f, &[], |port, sim| {
        config(
            port,
            sim,
            f.dir.path(),
            "grace_period = \"1s\"",
            &app.addr.to_string(),
            "",
        )
    })
    .await;
    let client = reqwest::Client::new();
    const N: usize = 40;
    for i in 0..N {
        let r = client
            .get(format!("http://127.0.0.1:{port}/pub/last-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // At once: no time for a periodic flush of the last lines.
    life::signal(gw.0.id(), nix::sys::signal::Signal::SIGTERM);
    let exited = life::wait_exit(&mut gw.0, std::time::Duration::from_secs(10)).await;
    assert!(exited.is_some(), "the gateway did not stop");
    let logs = read(&f.log);
    for i in 0..N {
        let path = format!("/pub/last-{i} ");
        let n = logs
            .lines()
            .filter(|l| format!("{l} ").contains(&path))
            .count();
        assert_eq!(n, 1, "access lines of /pub/last-{i}: {n}\n{logs}");
    }
}

/// `run --daemon` forks after logging starts; the daemon writes its access lines without
/// waiting for a full buffer or its exit.
#[tokio::test]
async fn a_daemon_writes_its_access_lines_as_it_serves() {
    let port = free_port();
    let sim = sim_for(port, None).await;
    let app = Upstream::start().await;
    let f = Files::new();
    f.write_config(&config(
        port,
        &sim,
        f.dir.path(),
        "grace_period = \"1s\"",
        &app.addr.to_string(),
        "",
    ));
    let _daemons = life::KillOnDrop(f.cfg.clone());
    let mut parent = Reaper(spawn(
        &["run", "--daemon"],
        &f.cfg,
        &f.log,
        sim.client_secret(),
    ));
    let exited = life::wait_exit(&mut parent.0, std::time::Duration::from_secs(20)).await;
    assert!(exited.is_some_and(|(s, _)| s.success()), "{}", read(&f.log));
    let client = reqwest::Client::new();
    let mut served = false;
    for _ in 0..250 {
        if client
            .get(format!("http://127.0.0.1:{port}/pub/from-the-daemon"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(served, "the daemon does not serve:\n{}", read(&f.log));
    let mut logged = false;
    for _ in 0..100 {
        if read(&f.log).contains("/pub/from-the-daemon") {
            logged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(logged, "no access line within 2 s:\n{}", read(&f.log));
}

/// Starts a gateway with `args`, signs a teacher in through the simulator and sends one request
/// with a bad path; returns the log and the request ids the gateway answered the three requests
/// that log (the login start, the callback, the refusal) with.
async fn sign_in_and_refusal(args: &[&str]) -> (String, [String; 3]) {
    let app = Upstream::start().await;
    let f = Files::new();
    let (gw, port, sim) = run_on_a_free_port(&f, args, |port, sim| {
        config(port, sim, f.dir.path(), "", &app.addr.to_string(), "")
    })
    .await;
    sim.set_auto_login(Some(&life::common::user_with_roles(&["teacher"])));
    let client = life::common::browser();
    let id = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_string();
    let start = client
        .get(format!("http://127.0.0.1:{port}/x"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let callback = life::common::location(
        &client
            .get(life::common::location(&start))
            .send()
            .await
            .unwrap(),
    );
    let done = client.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 302, "signed in");
    let refused = client
        .get(format!("http://127.0.0.1:{port}/a/%2e%2e%2f/b"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let ids = [id(&start), id(&done), id(&refused)];
    for _ in 0..100 {
        if read(&f.log).contains("bad request path") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(gw);
    (read(&f.log), ids)
}

/// The lines a sign-in and a refusal write carry the id of the request they belong to (the
/// request span's), once, at the top level of the JSON object, as the access line does.
#[tokio::test]
async fn sign_in_and_refusal_lines_carry_their_request_id_in_json() {
    let (logs, [start, callback, refused]) = sign_in_and_refusal(&["--log-format", "json"]).await;
    let line = |message: &str| {
        let raw = logs
            .lines()
            .find(|l| l.contains(&format!("\"message\":\"{message}\"")))
            .unwrap_or_else(|| panic!("no {message:?} line:\n{logs}"));
        assert_eq!(raw.matches("\"request_id\"").count(), 1, "{raw}");
        serde_json::from_str::<serde_json::Value>(raw).unwrap()
    };
    assert_eq!(line("login started")["request_id"], start.as_str());
    let completed = line("login completed");
    assert_eq!(completed["request_id"], callback.as_str());
    assert!(completed["user_id"].is_string(), "{completed}");
    let bad = line("bad request path");
    assert_eq!(bad["request_id"], refused.as_str());
    assert_eq!(bad["reason"], "bad_path");
}

/// The same in the human format: `request{request_id=…}` before the line's target.
#[tokio::test]
async fn sign_in_and_refusal_lines_carry_their_request_id_in_human_lines() {
    let (logs, [start, callback, refused]) = sign_in_and_refusal(&[]).await;
    for (message, id) in [
        ("login started", start),
        ("login completed", callback),
        ("bad request path", refused),
    ] {
        let line = logs
            .lines()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("no {message:?} line:\n{logs}"));
        assert_eq!(
            line.matches(&format!("request_id={id}")).count(),
            1,
            "{line}"
        );
    }
}
