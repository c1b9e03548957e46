//! Slow and oversized request headers through the real binary: a header must arrive whole
//! within `server.header_timeout` of its first byte (408 and closed otherwise, however often
//! bytes trickle in), and the gateway stops reading a header past its own limit (431 and closed),
//! so neither slow senders nor unfinished megabyte headers hold connections or memory.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway with `header_timeout = "1s"` and a public path, so no sign-in is needed.
async fn env() -> Env {
    on_a_free_port(async |port| {
        let sim = sim_for(port, None).await;
        let app = Upstream::start().await;
        let cfg = base_config(port, &sim, "").replacen(
            "[server]\n",
            "[server]\nheader_timeout = \"1s\"\n",
            1,
        );
        let cfg = format!(
            "{cfg}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\npublic_paths = [\"/pub/\"]\n",
            app.addr
        );
        let gw = try_start_gateway_env(port, &cfg, sim.client_secret(), &[]).await?;
        Ok(Env { sim, app, gw })
    })
    .await
}

/// Reads until the gateway closes the connection or `within` passes: what it answered, and
/// whether it closed.
async fn answer_and_close(s: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into(), false),
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn slow_header_senders_get_408_and_are_closed_at_the_deadline() {
    let env = env().await;
    let port = env.gw.port;
    let started = Instant::now();
    let mut senders = Vec::new();
    for i in 0..10 {
        senders.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.write_all(format!("GET /pub/{i} HTTP/1.1\r\nHost: x\r\n").as_bytes())
                .await
                .unwrap();
            // A header byte every 200 ms: every read is in time, the header never is.
            let (mut rd, mut wr) = s.into_split();
            let trickle = tokio::spawn(async move {
                for _ in 0..100 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if wr.write_all(b"X").await.is_err() {
                        return;
                    }
                }
            });
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            let closed = loop {
                match tokio::time::timeout(Duration::from_secs(5), rd.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break true,
                    Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                    Err(_) => break false,
                }
            };
            trickle.abort();
            (String::from_utf8_lossy(&got).into_owned(), closed)
        }));
    }
    for s in senders {
        let (answer, closed) = s.await.unwrap();
        assert!(
            closed,
            "a slow sender's connection is still open: {answer:?}"
        );
        assert_eq!(raw_status(&answer), 408, "{answer:?}");
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "closed {took:?} after the first byte (header_timeout = 1s)"
    );
    assert_eq!(env.app.count(), 0, "no slow request reached the app");
    let logs = env.gw.logs();
    assert!(
        logs.contains("request header not complete in time"),
        "{logs}"
    );
    // The gateway serves everyone else as before.
    let r = raw(
        port,
        b"GET /pub/ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&r), 200, "{r}");
}

#[tokio::test]
async fn unfinished_megabyte_headers_are_cut_at_the_gateway_limit() {
    let env = env().await;
    let port = env.gw.port;
    let pid = env.gw.child.id();
    // Warm up, then 64 connections each send ~1 MB of header that never ends.
    raw(
        port,
        b"GET /pub/warm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let before = rss_kib(pid);
    let mut conns = Vec::new();
    for _ in 0..64 {
        conns.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let mut head = b"GET /pub/x HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
            head.resize(1_000_000, b'a');
            // The gateway may stop reading (and close) long before all of it is sent.
            let _ = s.write_all(&head).await;
            let answer = answer_and_close(&mut s, Duration::from_secs(5)).await;
            (answer, s)
        }));
    }
    let mut open = Vec::new();
    for c in conns {
        let ((answer, closed), s) = c.await.unwrap();
        assert!(
            closed,
            "an unfinished 1 MB header still holds its connection"
        );
        assert_eq!(raw_status(&answer), 431, "{answer:?}");
        open.push(s);
    }
    let grown_mib = rss_kib(pid).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 16,
        "64 unfinished headers grew the gateway by {grown_mib} MiB"
    );
    drop(open);
    assert_eq!(env.app.count(), 1, "only the warm-up reached the app");
}

#[tokio::test]
async fn keep_alive_requests_each_get_the_limits_and_normal_ones_pass() {
    let env = env().await;
    let port = env.gw.port;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // A large but allowed header (30 KiB of cookie), a request with a body, both answered...
    let cookie = "c".repeat(30 * 1024);
    let first = format!("GET /pub/a HTTP/1.1\r\nHost: x\r\nCookie: big={cookie}\r\n\r\n");
    assert!(first.len() < 32 * 1024, "under the gateway's limits");
    let mut answered = String::new();
    let mut buf = [0u8; 4096];
    let requests = [
        first.into_bytes(),
        b"POST /pub/b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
    ];
    for (i, req) in requests.iter().enumerate() {
        s.write_all(req).await.unwrap();
        while answered.matches("upstream ok").count() <= i {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("an answer")
                .unwrap();
            assert!(n > 0, "closed early: {answered}");
            answered.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert_eq!(answered.matches("HTTP/1.1 200").count(), 2, "{answered}");
    // ...then, on the same connection, a header that stalls: bounded like the first one.
    s.write_all(b"GET /pub/c HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (answer, closed) = answer_and_close(&mut s, Duration::from_secs(5)).await;
    assert!(closed);
    assert_eq!(raw_status(&answer), 408, "{answer:?}");
    assert_eq!(env.app.count(), 2);
}
