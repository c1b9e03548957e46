//! A flood of anonymous navigations costs real users nothing: the server keeps no state for a
//! sign-in in progress (it lives in the browser's login cookie), so a bot that follows no
//! redirect can neither push a real user's sign-in out nor grow the gateway's memory. Through
//! the real binary and the Clever simulator.
//!
//! `#[ignore]`d so that a plain `cargo test` stays fast (the flood takes minutes on a debug
//! build); `.ci/run` runs it: `cargo test --test flood -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use clever_gateway::sim::Endpoint;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Anonymous navigations in the flood: the gateway before stateless sign-ins kept at most
/// 200,000 sign-ins in progress, and a flood past that pushed the oldest (a real user's) out.
const FLOOD: usize = 250_000;
/// Connections the flood is sent over, each one request at a time (keep-alive).
const CONNECTIONS: usize = 16;

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// One response's status, read off a keep-alive connection (headers, then a
/// `Content-Length` body).
async fn read_response(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> u16 {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 16 * 1024];
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the gateway closed a flood connection");
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..end + 4 + len);
            return raw_status(&head);
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the gateway closed a flood connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `count` anonymous navigations to protected pages, no cookies, redirects not followed (a bot
/// that never signs in), each to `/grades/<connection>/<i>?term=2` and `query_pad` more bytes of
/// query. Returns how many were sent to Clever (302).
async fn flood(port: u16, count: usize, query_pad: usize) -> usize {
    let mut tasks = Vec::new();
    let pad = "p".repeat(query_pad);
    for c in 0..CONNECTIONS {
        let pad = pad.clone();
        let n = count / CONNECTIONS + usize::from(c < count % CONNECTIONS);
        tasks.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            s.set_nodelay(true).unwrap();
            let mut buf = Vec::new();
            let mut redirected = 0;
            for i in 0..n {
                let req = format!(
                    "GET /grades/{c}/{i}?term=2&pad={pad} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
                     Accept: text/html\r\nSec-Fetch-Mode: navigate\r\n\r\n"
                );
                s.write_all(req.as_bytes()).await.unwrap();
                if read_response(&mut s, &mut buf).await == 302 {
                    redirected += 1;
                }
            }
            redirected
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "flood: 250,000 requests, minutes on a debug build; run with --ignored (.ci/run does)"]
async fn flood_of_anonymous_navigations_leaves_a_real_sign_in_in_progress_intact() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let user = browser();
    // The real user starts signing in, and is at Clever's sign-in page...
    let start = user.get(env.gw.url("/report?week=3")).send().await.unwrap();
    assert_eq!(start.status(), 302);
    let at_clever = location(&start);
    let rss_before = rss_kib(env.gw.child.id());
    // ...while a bot floods the gateway with anonymous navigations.
    let t = Instant::now();
    let redirected = flood(env.gw.port, FLOOD, 0).await;
    let secs = t.elapsed().as_secs_f64();
    let rss_after = rss_kib(env.gw.child.id());
    eprintln!(
        "flood: {FLOOD} navigations in {secs:.1} s ({:.0}/s); gateway RSS {} -> {} MiB",
        FLOOD as f64 / secs,
        rss_before / 1024,
        rss_after / 1024
    );
    assert_eq!(redirected, FLOOD, "every navigation was sent to Clever");
    // The user signs in at Clever and comes back: the sign-in completes where it started.
    let back = user.get(&at_clever).send().await.unwrap();
    let callback = location(&back);
    let done = user.get(&callback).send().await.unwrap();
    assert_eq!(
        done.status(),
        302,
        "the real user's sign-in survived the flood: {}",
        done.text().await.unwrap_or_default()
    );
    assert_eq!(location(&done), "/report?week=3");
    let page = user.get(env.gw.url("/report?week=3")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(env.app.last().header("x-clever-user-id").unwrap(), teacher);
    assert_eq!(env.sim.calls(Endpoint::Tokens), 1);
    // Nothing is kept per abandoned sign-in: the flood left the gateway's memory as it was
    // (the server before kept ~900 bytes each, about 170 MiB for this flood).
    let grown_mib = rss_after.saturating_sub(rss_before) / 1024;
    assert!(
        grown_mib < 40,
        "the gateway grew {grown_mib} MiB for {FLOOD} abandoned sign-ins"
    );
}

/// Sign-ins with the longest return addresses (a ~1.9 KB query, which cost the server about
/// 2.9 KB each while they lasted before): the server keeps nothing for them, and the browser's
/// login cookie holds at most `MAX_RETURN_TO` bytes of return address, the query dropped past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_return_addresses_cost_the_server_nothing_and_are_capped_in_the_cookie() {
    const ABANDONED: usize = 10_000;
    const PAD: usize = 1_900;
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    flood(env.gw.port, 200, PAD).await;
    let rss_before = rss_kib(env.gw.child.id());
    assert_eq!(flood(env.gw.port, ABANDONED, PAD).await, ABANDONED);
    let grown_mib = rss_kib(env.gw.child.id()).saturating_sub(rss_before) / 1024;
    assert!(
        grown_mib < 10,
        "{ABANDONED} abandoned sign-ins with long return addresses grew the gateway by \
         {grown_mib} MiB"
    );
    // A real user with such an address: a bounded cookie, and back on the page without its
    // query.
    let user = browser();
    let long = format!("/grades/report?term=2&pad={}", "p".repeat(PAD));
    let start = user.get(env.gw.url(&long)).send().await.unwrap();
    assert_eq!(start.status(), 302);
    let (name, value, _) = login_cookie(&start).expect("a login cookie");
    assert!(
        name.len() + value.len() < 1600,
        "login cookie of {} bytes",
        name.len() + value.len()
    );
    let at_clever = user.get(location(&start)).send().await.unwrap();
    let done = user.get(location(&at_clever)).send().await.unwrap();
    assert_eq!(done.status(), 302);
    assert_eq!(
        location(&done),
        "/grades/report",
        "the query did not fit: dropped"
    );
}
