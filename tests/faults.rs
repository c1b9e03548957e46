//! Fault injection against the real binary: Clever misbehaving (through the simulator's
//! faults) and upstreams misbehaving (refusing, resetting, hanging past their `timeout`). Each fault ends in the
//! documented status; afterwards the gateway answers `/_gateway/healthz` and a user signed in
//! before the fault still reaches the upstream.

mod common;

use std::time::{Duration, Instant};

use clever_gateway::sim::{Endpoint, Fault};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Healthz answers 200 and `signed_in` still reaches the app as `user`.
async fn still_healthy(env: &Env, signed_in: &reqwest::Client, user: &str, after: &str) {
    let h = reqwest::Client::new()
        .get(env.gw.url("/_gateway/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200, "healthz after {after}");
    let r = signed_in.get(env.gw.url("/still")).send().await.unwrap();
    assert_eq!(r.status(), 200, "signed-in user after {after}");
    assert_eq!(
        env.app.last().header("x-clever-user-id").as_deref(),
        Some(user),
        "identity after {after}"
    );
}

#[tokio::test]
async fn clever_faults_end_in_the_documented_page_and_the_gateway_stays_healthy() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let signed_in = browser();
    assert_eq!(sign_in(&env, &signed_in, "/").await.status(), 200);

    // base_config sets clever.timeout = 4s.
    for (endpoint, fault, status, max_secs) in [
        // Slow past the timeout: not retried.
        (Endpoint::Me, Fault::Delay(Duration::from_secs(8)), 504, 6),
        (
            Endpoint::Tokens,
            Fault::Delay(Duration::from_secs(8)),
            504,
            6,
        ),
        // 5xx on the idempotent GETs: retried at 1 s and 3 s, then given up within the budget.
        (Endpoint::Me, Fault::Status(500), 502, 5),
        (Endpoint::Me, Fault::Status(502), 502, 5),
        (Endpoint::Users, Fault::Status(503), 502, 5),
        // The token POST is never retried.
        (Endpoint::Tokens, Fault::Status(503), 502, 2),
        // Rate limited: 503 at once, never waiting for X-RateLimit-Reset.
        (Endpoint::Tokens, Fault::RateLimited, 503, 2),
        (Endpoint::Me, Fault::RateLimited, 503, 2),
        (Endpoint::Users, Fault::RateLimited, 503, 2),
        (Endpoint::Me, Fault::Html, 502, 2),
        (Endpoint::Users, Fault::Html, 502, 2),
        (Endpoint::Tokens, Fault::Html, 502, 2),
        (Endpoint::Me, Fault::Truncated, 502, 2),
        (Endpoint::Tokens, Fault::Truncated, 502, 2),
        // A token /me then rejects.
        (Endpoint::Me, Fault::Status(401), 502, 2),
    ] {
        let what = format!("{endpoint:?} {fault:?}");
        env.sim.set_fault(endpoint, Some(fault));
        let before = env.sim.calls(endpoint);
        let t = Instant::now();
        let (r, _) = follow(&browser(), &env.gw.url("/")).await;
        let took = t.elapsed();
        assert_eq!(r.status(), status, "{what}");
        let body = r.text().await.unwrap();
        assert!(body.contains("Try again"), "{what}: {body}");
        assert!(took < Duration::from_secs(max_secs), "{what} took {took:?}");
        let tries = env.sim.calls(endpoint) - before;
        let expected = match fault {
            Fault::Status(s) if s >= 500 && endpoint != Endpoint::Tokens => 3,
            _ => 1,
        };
        assert_eq!(tries, expected, "{what}: tries");
        env.sim.set_fault(endpoint, None);
        still_healthy(&env, &signed_in, &teacher, &what).await;
    }
    // A 503 that clears while the gateway is backing off: the login succeeds.
    env.sim.set_fault(Endpoint::Me, Some(Fault::Status(503)));
    let c = browser();
    let login = tokio::spawn({
        let url = env.gw.url("/");
        async move {
            let (r, _) = follow(&c, &url).await;
            r.status()
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.sim.set_fault(Endpoint::Me, None);
    assert_eq!(login.await.unwrap(), 200, "retried /me recovers the login");
    let (r, _) = follow(&browser(), &env.gw.url("/")).await;
    assert_eq!(r.status(), 200, "logins work once Clever recovers");
}

/// A listener that answers every connection with `behave`.
async fn bad_upstream<F, Fut>(behave: F) -> std::net::SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(behave(s));
        }
    });
    addr
}

async fn read_head(s: &mut tokio::net::TcpStream) {
    let mut buf = vec![0u8; 8192];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn upstream_faults_end_in_502_504_or_the_answer_and_the_gateway_stays_healthy() {
    let teacher = user_with_roles(&["teacher"]);
    let refused = free_port();
    let reset = bad_upstream(|mut s| async move {
        read_head(&mut s).await;
        // Half a response, then an RST.
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf")
            .await;
        let _ = s.set_zero_linger();
        drop(s);
    })
    .await;
    let reset_early = bad_upstream(|mut s| async move {
        read_head(&mut s).await;
        let _ = s.set_zero_linger();
        drop(s);
    })
    .await;
    let slow = bad_upstream(|mut s| async move {
        read_head(&mut s).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nslow")
            .await;
    })
    .await;
    // Never answers: past its upstream's `timeout`, the user gets the 504 page.
    let hung = bad_upstream(|mut s| async move {
        read_head(&mut s).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let tail = format!(
        "[[upstream]]\nname = \"hung\"\nurl = \"http://{hung}\"\nhost = \"hung.example\"\ntimeout = \"1s\"\n\
         [[upstream]]\nname = \"refused\"\nurl = \"http://127.0.0.1:{refused}\"\nhost = \"refused.example\"\n\
         [[upstream]]\nname = \"reset\"\nurl = \"http://{reset}\"\nhost = \"reset.example\"\n\
         [[upstream]]\nname = \"early\"\nurl = \"http://{reset_early}\"\nhost = \"early.example\"\n\
         [[upstream]]\nname = \"slow\"\nurl = \"http://{slow}\"\nhost = \"slow.example\"\n"
    );
    let env = env_with(Some(&teacher), "", &tail).await;
    let signed_in = browser();
    assert_eq!(sign_in(&env, &signed_in, "/").await.status(), 200);

    for (host, ok_statuses) in [
        ("refused.example", &[502u16][..]),
        ("early.example", &[502][..]),
        // Headers were already sent: the browser sees 200 and a cut body, or a 502.
        ("reset.example", &[200, 502][..]),
    ] {
        let r = signed_in
            .get(env.gw.url("/x"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(ok_statuses.contains(&status), "{host}: {status}");
        if status == 200 {
            assert!(r.bytes().await.is_err(), "{host}: a cut body is an error");
        }
        still_healthy(&env, &signed_in, &teacher, host).await;
    }

    let started = Instant::now();
    let r = signed_in
        .get(env.gw.url("/x"))
        .header("host", "hung.example")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504, "hung past its 1s timeout");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );
    assert!(r.text().await.unwrap().contains("taking too long"));
    still_healthy(&env, &signed_in, &teacher, "hung.example").await;

    // A short hang (2 s, under the default 60 s timeout): the answer arrives, and the gateway
    // serves others meanwhile.
    let hang = tokio::spawn({
        let c = signed_in.clone();
        let url = env.gw.url("/x");
        async move {
            let r = c.get(url).header("host", "slow.example").send().await;
            let r = r.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    still_healthy(&env, &signed_in, &teacher, "during a hang").await;
    assert_eq!(hang.await.unwrap(), (200, "slow".to_string()));
    still_healthy(&env, &signed_in, &teacher, "slow.example").await;
}

/// Answers each request on a kept-alive connection by its path: `/no-content` a 204 that
/// claims a 17-byte body and sends it (the bytes look like a response), `/not-modified` a 304
/// with the length of what it stands for, `/hints` a 103 with a length then the 200,
/// `/switch` an unasked-for 101 then raw bytes, anything else `200 ok`.
async fn framing_upstream(mut s: tokio::net::TcpStream) {
    let mut buf = vec![0u8; 8192];
    loop {
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&got).into_owned();
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let answer: &[u8] = match path.as_str() {
            "/no-content" => {
                b"HTTP/1.1 204 No Content\r\nContent-Length: 17\r\n\r\nHTTP/1.1 200 OK\r\n"
            }
            "/not-modified" => b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 17\r\n\r\n",
            "/hints" => {
                b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            }
            "/switch" => {
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nraw tunnel bytes"
            }
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        };
        if s.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// Reads one response head (up to the blank line) from `s`, within 3 s.
async fn response_head(s: &mut tokio::net::TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut byte))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "a response head in time: {:?}",
                    String::from_utf8_lossy(&got)
                )
            })
            .unwrap();
        assert!(
            n > 0,
            "closed mid-head: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.push(byte[0]);
    }
    String::from_utf8(got).unwrap()
}

fn has_header(head: &str, name: &str) -> bool {
    head.lines()
        .any(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
}

#[tokio::test]
async fn upstream_bodyless_responses_lose_their_framing_headers_on_keep_alive() {
    let up = bad_upstream(framing_upstream).await;
    let tail = format!(
        "[[upstream]]\nname = \"framing\"\nurl = \"http://{up}\"\nhost = \"framing.example\"\npublic_paths = [\"/\"]\n"
    );
    let env = env_with(None, "", &tail).await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", env.gw.port))
        .await
        .unwrap();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: framing.example\r\n\r\n");
    for (path, status) in [("/no-content", 204), ("/not-modified", 304)] {
        s.write_all(get(path).as_bytes()).await.unwrap();
        let head = response_head(&mut s).await;
        assert_eq!(raw_status(&head), status, "{head}");
        for h in ["content-length", "transfer-encoding"] {
            assert!(
                !has_header(&head, h),
                "{path}: {h} reached the client:\n{head}"
            );
        }
        // The same connection carries the next answer, framed as itself: nothing of the 204's
        // claimed body comes first.
        s.write_all(get("/next").as_bytes()).await.unwrap();
        let head = response_head(&mut s).await;
        assert_eq!(raw_status(&head), 200, "after {path}: {head}");
        let mut body = [0u8; 2];
        s.read_exact(&mut body).await.unwrap();
        assert_eq!(&body, b"ok", "after {path}");
    }
    // An informational response is passed on (or not) without a length, then the answer.
    s.write_all(get("/hints").as_bytes()).await.unwrap();
    let mut head = response_head(&mut s).await;
    if raw_status(&head) == 103 {
        assert!(!has_header(&head, "content-length"), "{head}");
        head = response_head(&mut s).await;
    }
    assert_eq!(raw_status(&head), 200, "{head}");
    let mut body = [0u8; 2];
    s.read_exact(&mut body).await.unwrap();
    assert_eq!(&body, b"ok");
}

#[tokio::test]
async fn upstream_unrequested_101_becomes_the_502_page() {
    let up = bad_upstream(framing_upstream).await;
    let tail = format!(
        "[[upstream]]\nname = \"framing\"\nurl = \"http://{up}\"\nhost = \"framing.example\"\npublic_paths = [\"/\"]\n"
    );
    let env = env_with(None, "", &tail).await;
    let answer = raw(
        env.gw.port,
        b"GET /switch HTTP/1.1\r\nHost: framing.example\r\nAccept: text/html\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&answer), 502, "{answer}");
    assert!(
        answer.contains("clever-gateway"),
        "the gateway's page: {answer}"
    );
    assert!(!answer.contains("raw tunnel bytes"), "{answer}");
    let logs = env.gw.logs();
    assert!(
        logs.lines().any(|l| l.contains("upstream response refused")
            && l.contains("upstream=\"framing\"")
            && l.contains("101")),
        "{logs}"
    );
    // A real upgrade still switches (tests/websocket.rs covers the whole exchange).
    let answer = raw(
        env.gw.port,
        b"GET /switch HTTP/1.1\r\nHost: framing.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&answer), 101, "{answer}");
}
