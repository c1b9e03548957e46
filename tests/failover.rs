//! A Redis failover under load, through the real binary: a primary, a replica and three
//! Sentinels (Debian's redis-server and redis-sentinel, on free loopback ports), two gateway
//! replicas that find the primary through the Sentinels, signed-in users browsing and new users
//! signing in through both, and the primary killed with SIGKILL in the middle of it. Prints the
//! figures docs/scaling.md quotes. Skipped, with a message, without redis-sentinel.
//!
//! ```sh
//! cargo test --test failover -- --nocapture
//! ```

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clever_gateway::process::metrics::parse_text;
use clever_gateway::testing::redis::{RedisHa, SKIPPED_SENTINEL};
use common::*;

/// How long the Sentinels wait before they call the primary down.
const DOWN_AFTER_MS: u64 = 1000;
/// Signed-in users before the kill (they browse through it).
const USERS: usize = 12;
/// Load before the kill, and after both replicas are back.
const WARM: Duration = Duration::from_millis(1500);
/// The failover must be over (both replicas ready, sign-ins working) this long after the kill.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(30);

/// Which gateway replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gw {
    A,
    B,
}

/// How a sign-in ended: a session cookie, the 503 page (when the refusing request was sent
/// and when its answer came back), or anything else (a failure of the test).
#[derive(Debug, Clone)]
enum Outcome {
    Done(String),
    Refused { sent: Duration, back: Duration },
    Other(String),
}

#[derive(Debug, Clone)]
struct SignIn {
    gw: Gw,
    started: Duration,
    outcome: Outcome,
}

/// A request and its status (0: no answer), by when it was sent and when it came back.
#[derive(Debug, Clone, Copy)]
struct Hit {
    gw: Gw,
    sent: Duration,
    back: Duration,
    status: u16,
}

struct Rig {
    ha: RedisHa,
    _sim: clever_gateway::sim::SimHandle,
    _app: Upstream,
    /// Replica A: its port is the one in `redirect_uri` (a load balancer's, in production).
    a: Gateway,
    b: Gateway,
}

impl Rig {
    async fn start() -> Option<Rig> {
        let ha = RedisHa::start(3, DOWN_AFTER_MS)?;
        let session = format!("store = \"redis\"\n{}", ha.sentinels.toml());
        // Another process may take a free port before a gateway binds it: start again on
        // another one (the simulator and the config name replica A's port).
        let (sim, app, config, a, port_a) = on_a_free_port(async |port_a| {
            let sim = sim_for(port_a, Some(&user_with_roles(&["teacher"]))).await;
            let app = Upstream::start().await;
            let config = format!(
                "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n",
                base_config(port_a, &sim, &session),
                app.addr
            );
            let a = try_start_gateway_env(port_a, &config, sim.client_secret(), &[]).await?;
            Ok((sim, app, config, a, port_a))
        })
        .await;
        let b = on_a_free_port(async |port_b| {
            let config_b = config.replace(
                &format!("listen = [\"127.0.0.1:{port_a}\"]"),
                &format!("listen = [\"127.0.0.1:{port_b}\"]"),
            );
            try_start_gateway_env(port_b, &config_b, sim.client_secret(), &[]).await
        })
        .await;
        let rig = Rig {
            ha,
            _sim: sim,
            _app: app,
            a,
            b,
        };
        for gw in [Gw::A, Gw::B] {
            let t = Instant::now();
            while status(&rig.url(gw, "/_gateway/readyz")).await != 200 {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "{gw:?} found no primary:\n{}",
                    rig.gateway(gw).logs()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Finding the primary at start is not an outage.
            let logs = rig.gateway(gw).logs();
            assert!(!logs.contains("Redis is unreachable"), "{logs}");
            assert!(
                logs.contains("the Sentinels name the Redis primary"),
                "{logs}"
            );
        }
        Some(rig)
    }

    fn gateway(&self, gw: Gw) -> &Gateway {
        match gw {
            Gw::A => &self.a,
            Gw::B => &self.b,
        }
    }

    fn url(&self, gw: Gw, path: &str) -> String {
        self.gateway(gw).url(path)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn status(url: &str) -> u16 {
    client()
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// An API request with a session cookie (JSON client: 401 without a session, never a
/// redirect): its status.
async fn api_status(url: &str, cookie: &str) -> u16 {
    client()
        .get(url)
        .header("accept", "application/json")
        .header("cookie", cookie)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The gateway's 503 page for an unreachable store, or what came instead.
async fn refusal(r: reqwest::Response, sent: Duration, back: Duration) -> Outcome {
    let code = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    if code == 503 && body.contains("temporarily unavailable") {
        Outcome::Refused { sent, back }
    } else {
        Outcome::Other(format!("{code}: {body}"))
    }
}

/// A full sign-in through replica `gw`: login start, Clever (the simulator), the callback on
/// the same replica.
async fn sign_in(rig: &Rig, gw: Gw, t0: Instant) -> SignIn {
    let started = t0.elapsed();
    let c = browser();
    let outcome = async {
        let at = t0.elapsed();
        let r = c
            .get(rig.url(gw, "/_gateway/login?rd=/hello"))
            .send()
            .await
            .map_err(|e| Outcome::Other(format!("login start: {e}")))?;
        if r.status() != 302 {
            return Err(refusal(r, at, t0.elapsed()).await);
        }
        let clever = c
            .get(location(&r))
            .send()
            .await
            .map_err(|e| Outcome::Other(format!("authorize: {e}")))?;
        let mut callback = url::Url::parse(&location(&clever)).unwrap();
        callback
            .set_port(Some(rig.gateway(gw).port))
            .expect("a port");
        let at = t0.elapsed();
        let done = c
            .get(callback.as_str())
            .send()
            .await
            .map_err(|e| Outcome::Other(format!("callback: {e}")))?;
        match set_cookie_value(&done, "clever_gateway") {
            Some(v) if done.status() == 302 => Ok(format!("clever_gateway={v}")),
            _ => Err(refusal(done, at, t0.elapsed()).await),
        }
    }
    .await;
    SignIn {
        gw,
        started,
        outcome: outcome.map_or_else(|o| o, Outcome::Done),
    }
}

/// A counter's value on replica `gw` (summed over its label sets), read from /_gateway/metrics.
async fn metric(rig: &Rig, gw: Gw, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = client()
        .get(rig.url(gw, "/_gateway/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_text(&text)
        .into_iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|s| s.value)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_kill_primary_under_load_loses_no_session() {
    let setup = Instant::now();
    let Some(rig) = Rig::start().await else {
        return eprintln!("{SKIPPED_SENTINEL}");
    };
    let t0 = Instant::now();
    println!(
        "setup (Redis, replica, 3 Sentinels, 2 gateways): {:.1?}",
        setup.elapsed()
    );
    // Users signed in before anything happens, half through each replica.
    let mut users = Vec::new();
    for i in 0..USERS {
        let gw = if i % 2 == 0 { Gw::A } else { Gw::B };
        match sign_in(&rig, gw, t0).await.outcome {
            Outcome::Done(cookie) => users.push(cookie),
            other => panic!("sign-in before the kill: {other:?}"),
        }
    }
    let rig = Arc::new(rig);
    let stop = Arc::new(AtomicBool::new(false));
    let sign_ins: Arc<Mutex<Vec<SignIn>>> = Arc::default();
    let browsing: Arc<Mutex<Vec<Hit>>> = Arc::default();
    let readiness: Arc<Mutex<Vec<Hit>>> = Arc::default();
    let mut tasks = Vec::new();
    for gw in [Gw::A, Gw::B] {
        // New users signing in, one after the other, on each replica.
        let (r, halt, log) = (rig.clone(), stop.clone(), sign_ins.clone());
        tasks.push(tokio::spawn(async move {
            while !halt.load(Ordering::SeqCst) {
                let s = sign_in(&r, gw, t0).await;
                log.lock().unwrap().push(s);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
        // Signed-in users browsing, round robin, on each replica.
        let (r, halt, log, cookies) = (rig.clone(), stop.clone(), browsing.clone(), users.clone());
        tasks.push(tokio::spawn(async move {
            for cookie in cookies.iter().cycle() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                let sent = t0.elapsed();
                let status = api_status(&r.url(gw, "/api/x"), cookie).await;
                log.lock().unwrap().push(Hit {
                    gw,
                    sent,
                    back: t0.elapsed(),
                    status,
                });
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
        // The load balancer's readiness probe.
        let (r, halt, log) = (rig.clone(), stop.clone(), readiness.clone());
        tasks.push(tokio::spawn(async move {
            while !halt.load(Ordering::SeqCst) {
                let sent = t0.elapsed();
                let status = status(&r.url(gw, "/_gateway/readyz")).await;
                log.lock().unwrap().push(Hit {
                    gw,
                    sent,
                    back: t0.elapsed(),
                    status,
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }

    tokio::time::sleep(WARM).await;
    // SIGKILL, as a crashed host: no goodbye to anyone.
    let killed = t0.elapsed();
    rig.ha.primary.kill();

    // Back when both replicas are ready again after having been unready, and each has
    // completed a sign-in started after that.
    let back_at = |gw: Gw| -> Option<Duration> {
        let r = readiness.lock().unwrap();
        let down = r
            .iter()
            .find(|h| h.gw == gw && h.sent >= killed && h.status != 200)?
            .sent;
        r.iter()
            .find(|h| h.gw == gw && h.sent > down && h.status == 200)
            .map(|h| h.back)
    };
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    let recovered = loop {
        let backs = (back_at(Gw::A), back_at(Gw::B));
        if let (Some(a), Some(b)) = backs {
            let signed = |gw: Gw, after: Duration| {
                sign_ins.lock().unwrap().iter().any(|s| {
                    s.gw == gw && s.started > after && matches!(s.outcome, Outcome::Done(_))
                })
            };
            if signed(Gw::A, a) && signed(Gw::B, b) {
                break (a, b);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no recovery {RECOVERY_DEADLINE:?} after the kill\nA:\n{}\nB:\n{}\n{}",
            rig.a.logs(),
            rig.b.logs(),
            rig.ha.sentinels.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(WARM).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let back = |gw: Gw| match gw {
        Gw::A => recovered.0,
        Gw::B => recovered.1,
    };

    // Sign-ins: completed, or refused with the 503 page during the window only.
    let sign_ins = sign_ins.lock().unwrap().clone();
    let mut refused = 0;
    for s in &sign_ins {
        match &s.outcome {
            Outcome::Done(_) => {}
            Outcome::Refused {
                sent,
                back: answered,
            } => {
                refused += 1;
                // Answered after the kill (it may have been on its way when it came), asked
                // before the replica was back.
                assert!(
                    *answered >= killed && *sent < back(s.gw),
                    "refused outside the failover window ({killed:?}..{:?}): {s:?}",
                    back(s.gw)
                );
            }
            Outcome::Other(what) => panic!("sign-in neither done nor the 503 page: {what}"),
        }
    }
    assert!(refused > 0, "the failover was seen by sign-ins");
    // Browsing: 200, or the documented 503 during the window; never a signed-out user.
    let browsing = browsing.lock().unwrap().clone();
    for h in &browsing {
        match h.status {
            200 => {}
            503 => assert!(
                h.back >= killed && h.sent < back(h.gw),
                "503 outside the failover window: {h:?}"
            ),
            other => panic!("browsing answered {other} (401: a session lost): {h:?}"),
        }
    }
    // Readiness: 200, then 503 (only after the kill), then 200 again, on both.
    let readiness = readiness.lock().unwrap().clone();
    for h in &readiness {
        assert!(
            h.status == 200 || (h.status == 503 && h.back >= killed),
            "readyz {h:?}"
        );
    }

    // Every session acknowledged to a browser, before or during the load, works on both.
    let acknowledged: Vec<&String> = users
        .iter()
        .chain(sign_ins.iter().filter_map(|s| match &s.outcome {
            Outcome::Done(c) => Some(c),
            _ => None,
        }))
        .collect();
    let mut lost = 0;
    for cookie in &acknowledged {
        for gw in [Gw::A, Gw::B] {
            if api_status(&rig.url(gw, "/api/x"), cookie).await != 200 {
                lost += 1;
                eprintln!("session lost on {gw:?}");
            }
        }
    }

    // A logout after the failover holds on the other replica within 1 s, both ways.
    for (from, to, cookie) in [(Gw::A, Gw::B, &users[0]), (Gw::B, Gw::A, &users[1])] {
        assert_eq!(api_status(&rig.url(to, "/api/x"), cookie).await, 200);
        // Sign-out is a same-site POST.
        let out = client()
            .post(rig.url(from, "/_gateway/logout"))
            .header("origin", rig.url(from, ""))
            .header("cookie", cookie.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), 302);
        let t = Instant::now();
        while api_status(&rig.url(to, "/api/x"), cookie).await != 401 {
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "logout on {from:?} still not seen on {to:?} after 1 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(api_status(&rig.url(from, "/api/x"), cookie).await, 401);
    }

    // The figures.
    let in_window = |gw: Gw, sent: Duration| sent >= killed && sent < back(gw);
    let window_hits: Vec<&Hit> = browsing
        .iter()
        .filter(|h| in_window(h.gw, h.sent))
        .collect();
    let first_failure = |gw: Gw| {
        let refused_at = sign_ins
            .iter()
            .filter(|s| s.gw == gw)
            .filter_map(|s| match s.outcome {
                Outcome::Refused { back, .. } => Some(back),
                _ => None,
            });
        let failed_hits = browsing
            .iter()
            .chain(&readiness)
            .filter(|h| h.gw == gw && h.status != 200)
            .map(|h| h.back);
        refused_at.chain(failed_hits).min().unwrap_or(back(gw))
    };
    let mut fallbacks = 0.0;
    let mut changes = 0.0;
    let mut timeouts = 0.0;
    for gw in [Gw::A, Gw::B] {
        fallbacks += metric(&rig, gw, "clever_gateway_redis_cache_fallbacks_total", &[]).await;
        changes += metric(&rig, gw, "clever_gateway_redis_primary_changes_total", &[]).await;
        timeouts += metric(
            &rig,
            gw,
            "clever_gateway_redis_writes_total",
            &[("ack", "timeout")],
        )
        .await;
    }
    let replica_acks = metric(
        &rig,
        Gw::A,
        "clever_gateway_redis_writes_total",
        &[("ack", "replica")],
    )
    .await
        + metric(
            &rig,
            Gw::B,
            "clever_gateway_redis_writes_total",
            &[("ack", "replica")],
        )
        .await;
    println!("failover figures (primary SIGKILLed at t={killed:.2?}, Sentinel down-after {DOWN_AFTER_MS} ms):");
    for gw in [Gw::A, Gw::B] {
        println!(
            "  replica {gw:?}: failover window seen by the gateway {:.2?} (first failure \
             {:.2?} after the kill, ready again {:.2?} after it)",
            back(gw) - first_failure(gw),
            first_failure(gw) - killed,
            back(gw) - killed,
        );
    }
    println!(
        "  sign-ins: {} attempted during the load, {} completed, {refused} refused with the \
         503 page (all inside the window)",
        sign_ins.len(),
        sign_ins.len() - refused
    );
    println!(
        "  browsing during the window: {} requests, {} served from the replicas' cache (200), \
         {} answered 503; cache fallbacks counted by the gateways: {fallbacks}",
        window_hits.len(),
        window_hits.iter().filter(|h| h.status == 200).count(),
        window_hits.iter().filter(|h| h.status == 503).count(),
    );
    println!(
        "  writes acknowledged by the replica before the answer: {replica_acks}, ack timeouts: \
         {timeouts}; primary changes followed: {changes}"
    );
    println!(
        "  sessions acknowledged: {}, sessions lost: {lost} (checked on both replicas)",
        acknowledged.len()
    );

    assert_eq!(lost, 0, "sessions lost");
    assert_eq!(changes, 2.0, "each replica followed the primary once");
    for gw in [Gw::A, Gw::B] {
        let logs = rig.gateway(gw).logs();
        assert!(!logs.contains("panicked"), "{gw:?} panicked:\n{logs}");
        assert!(
            logs.contains("the Redis primary moved (failover); following it"),
            "{logs}"
        );
        for cookie in &acknowledged {
            assert!(
                !logs.contains(&cookie[15..]),
                "a session id in {gw:?}'s log"
            );
        }
    }
}

#[tokio::test]
async fn sentinel_over_tls_verified_against_ssl_cert_file() {
    let dir = tempfile::tempdir().unwrap();
    let c =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("redis.pem"), dir.path().join("redis.key"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    let Some(redis) = clever_gateway::testing::redis::RedisServer::start_tls(&cert, &key) else {
        return eprintln!("{SKIPPED_SENTINEL}");
    };
    let Some(sentinels) = clever_gateway::testing::redis::Sentinels::start(1, &redis, 5000, None)
    else {
        return eprintln!("{SKIPPED_SENTINEL}");
    };
    let port = free_port();
    let sim = sim_for(port, Some(&user_with_roles(&["teacher"]))).await;
    let app = Upstream::start().await;
    let session = format!(
        "store = \"redis\"\nredis_sentinels = [\"rediss://127.0.0.1:{}\"]\nredis_master_name = \
         \"gateway\"\n",
        sentinels.ports()[0]
    );
    let config = format!(
        "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n",
        base_config(port, &sim, &session),
        app.addr
    );
    assert!(!redis.url().starts_with("redis://"), "a TLS-only primary");
    // TLS to the Sentinel and to the primary it names, trusted through SSL_CERT_FILE.
    let cert_file = cert.display().to_string();
    let gw = start_gateway_env(
        port,
        &config,
        sim.client_secret(),
        &[("SSL_CERT_FILE", cert_file.as_str())],
    )
    .await;
    let t = Instant::now();
    while status(&gw.url("/_gateway/readyz")).await != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "not ready over TLS:\n{}\n{}",
            gw.logs(),
            sentinels.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = browser();
    let cb = callback_for(&c, &gw.url("/_gateway/login?rd=/hello")).await;
    let done = c.get(&cb).send().await.unwrap();
    assert_eq!(done.status(), 302, "signed in over TLS:\n{}", gw.logs());
    drop(gw);
    // Without the certificate the Sentinel is not trusted: not ready, never plain text.
    let other = free_port();
    let config = config.replace(
        &format!("listen = [\"127.0.0.1:{port}\"]"),
        &format!("listen = [\"127.0.0.1:{other}\"]"),
    );
    let untrusting = start_gateway(other, &config, sim.client_secret()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(status(&untrusting.url("/_gateway/readyz")).await, 503);
    assert!(
        untrusting
            .logs()
            .contains("no Sentinel names a reachable primary"),
        "{}",
        untrusting.logs()
    );
}
