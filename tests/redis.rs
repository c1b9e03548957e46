//! `store = "redis"` through the real binary: two gateway processes on one `redis-server`
//! (a load balancer's replicas), restarts, revocation across replicas, and Redis outages.
//! Skipped, with a message, where `redis-server` is not installed.

mod common;

use std::time::{Duration, Instant};

use clever_gateway::sim::SimHandle;
use clever_gateway::testing::redis::{RedisServer, SKIPPED};
use common::*;

/// Simulator, upstream, Redis, and the config every replica shares (its `redirect_uri` is
/// replica A's address: the one registered at Clever, as a load balancer's would be).
struct Cluster {
    sim: SimHandle,
    app: Upstream,
    redis: RedisServer,
    config: String,
    port_a: u16,
    /// Environment of every replica.
    env: Vec<(String, String)>,
}

impl Cluster {
    async fn new() -> Option<Cluster> {
        Some(Self::with(RedisServer::start()?).await)
    }

    async fn with(redis: RedisServer) -> Cluster {
        let port_a = free_port();
        let teacher = user_with_roles(&["teacher"]);
        let sim = sim_for(port_a, Some(&teacher)).await;
        let app = Upstream::start().await;
        let session = format!("store = \"redis\"\nredis_url = \"{}\"", redis.url());
        let config = format!(
            "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n",
            base_config(port_a, &sim, &session),
            app.addr
        );
        Cluster {
            sim,
            app,
            redis,
            config,
            port_a,
            env: Vec::new(),
        }
    }

    /// A gateway replica on `port` (replica A on `port_a`).
    async fn replica(&self, port: u16) -> Gateway {
        self.replica_with(port, "").await
    }

    /// A replica whose upstream has `upstream_extra` lines too (a changed configuration).
    async fn replica_with(&self, port: u16, upstream_extra: &str) -> Gateway {
        let cfg = format!("{}{upstream_extra}\n", self.config).replace(
            &format!("listen = [\"127.0.0.1:{}\"]", self.port_a),
            &format!("listen = [\"127.0.0.1:{port}\"]"),
        );
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        start_gateway_env(port, &cfg, self.sim.client_secret(), &env).await
    }
}

/// Starts a login on `start` and returns Clever's callback URL (pointing at replica A).
async fn to_callback(c: &reqwest::Client, start: &Gateway) -> String {
    callback_for(c, &start.url("/_gateway/login?rd=/hello")).await
}

/// The same URL on another replica's port.
fn on_port(url: &str, port: u16) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_port(Some(port)).unwrap();
    u.to_string()
}

/// Signs in through replica `gw` and returns the session cookie as a `Cookie` header.
async fn signed_in(c: &reqwest::Client, gw: &Gateway) -> String {
    let cb = to_callback(c, gw).await;
    let done = c.get(on_port(&cb, gw.port)).send().await.unwrap();
    assert_eq!(done.status(), 302, "callback completes");
    format!(
        "clever_gateway={}",
        set_cookie_value(&done, "clever_gateway").expect("session cookie")
    )
}

/// An API request (no redirects, no cookie jar) with the given session cookie: its status.
async fn api_status(gw: &Gateway, cookie: &str) -> u16 {
    reqwest::Client::new()
        .get(gw.url("/api/x"))
        .header("accept", "application/json")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn status(url: &str) -> u16 {
    reqwest::Client::new()
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn redis_login_started_on_a_completes_on_b() {
    let Some(cl) = Cluster::new().await else {
        return eprintln!("{SKIPPED}");
    };
    let a = cl.replica(cl.port_a).await;
    let b = cl.replica(free_port()).await;
    let c = browser();
    let cb = to_callback(&c, &a).await;
    let done = c.get(on_port(&cb, b.port)).send().await.unwrap();
    assert_eq!(done.status(), 302, "B finished A's login:\n{}", b.logs());
    assert_eq!(location(&done), "/hello");
    // One browser session, good on both replicas.
    assert_eq!(c.get(b.url("/hello")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(a.url("/hello")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn redis_logout_on_a_refuses_copied_cookie_on_b_within_1s() {
    let Some(cl) = Cluster::new().await else {
        return eprintln!("{SKIPPED}");
    };
    let a = cl.replica(cl.port_a).await;
    let b = cl.replica(free_port()).await;
    let c = browser();
    let cookie = signed_in(&c, &a).await;
    // B has the session in its L1 now.
    assert_eq!(api_status(&b, &cookie).await, 200);
    let out = c
        .post(a.url("/_gateway/logout"))
        .header("origin", a.url(""))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 302);
    let t = Instant::now();
    loop {
        if api_status(&b, &cookie).await == 401 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "the copied cookie still works on B after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(api_status(&a, &cookie).await, 401);
}

/// A session keeps the record's fields its configuration uses. A replica (or a reload) whose
/// headers need a field the session did not keep does not call the user's account short of it:
/// optional headers go without it, and a required one's 403 page asks the user to sign in
/// again, which reads the field.
#[tokio::test]
async fn redis_a_session_from_before_a_header_needed_a_field_asks_to_sign_in_again() {
    let Some(cl) = Cluster::new().await else {
        return eprintln!("{SKIPPED}");
    };
    let a = cl.replica(cl.port_a).await;
    let needs = "required_headers = [\"X-Teacher\"]\n[upstream.set_headers]\n\
                 \"X-Teacher\" = \"{teacher_number}\"\n\"X-Title\" = \"{title}\"";
    let b = cl.replica_with(free_port(), needs).await;
    let c = browser();
    let old = signed_in(&c, &a).await;
    let r = reqwest::Client::new()
        .get(b.url("/grades"))
        .header("accept", "text/html")
        .header("cookie", &old)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "{}", b.logs());
    let page = r.text().await.unwrap();
    assert!(page.contains("Sign out and sign in again"), "{page}");
    assert!(
        !page.contains("has no teacher number"),
        "not the user's fault: {page}"
    );
    assert!(b.logs().contains("stale=true"), "{}", b.logs());
    // Signed in again through B: the session keeps the fields B's headers use.
    let c = browser();
    let fresh = signed_in(&c, &b).await;
    assert_eq!(api_status(&b, &fresh).await, 200);
    let seen = cl.app.last();
    assert_eq!(seen.header("x-teacher").as_deref(), Some("2001"));
    assert_eq!(seen.header("x-title").as_deref(), Some("Grade 5 teacher"));
    // A reads the newer record too (it ignores what it does not use).
    assert_eq!(api_status(&a, &fresh).await, 200);
}

#[tokio::test]
async fn redis_session_survives_gateway_restart() {
    let Some(cl) = Cluster::new().await else {
        return eprintln!("{SKIPPED}");
    };
    let a = cl.replica(cl.port_a).await;
    let cookie = signed_in(&browser(), &a).await;
    assert_eq!(api_status(&a, &cookie).await, 200);
    drop(a);
    let again = cl.replica(cl.port_a).await;
    assert_eq!(api_status(&again, &cookie).await, 200, "{}", again.logs());
}

#[tokio::test]
async fn redis_outage_l1_keeps_users_new_logins_503_readiness_returns() {
    let Some(mut cl) = Cluster::new().await else {
        return eprintln!("{SKIPPED}");
    };
    let a = cl.replica(cl.port_a).await;
    assert_eq!(status(&a.url("/_gateway/readyz")).await, 200);
    let cookie = signed_in(&browser(), &a).await;
    cl.redis.stop();
    // Signed in a moment ago: still served from this replica's L1.
    assert_eq!(api_status(&a, &cookie).await, 200, "{}", a.logs());
    // A sign-in starts without Redis (its state is in the browser's cookie), but cannot
    // finish: the code claim and the new session need Redis.
    let c = browser();
    let cb = callback_for(&c, &a.url("/_gateway/login?rd=/")).await;
    let r = c.get(&cb).send().await.unwrap();
    assert_eq!(r.status(), 503, "new login while Redis is down");
    assert!(r.text().await.unwrap().contains("temporarily unavailable"));
    assert_eq!(status(&a.url("/_gateway/readyz")).await, 503);
    assert_eq!(status(&a.url("/_gateway/healthz")).await, 200, "alive");
    // Many requests while down: one log line for the change, not one per request.
    for _ in 0..5 {
        let _ = status(&a.url("/_gateway/readyz")).await;
    }
    cl.redis.restart();
    let t = Instant::now();
    while status(&a.url("/_gateway/readyz")).await != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "ready again without a restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = browser()
        .get(a.url("/_gateway/login?rd=/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "logins work again");
    let logs = a.logs();
    assert_eq!(
        logs.matches("Redis is unreachable").count(),
        1,
        "one line per state change:\n{logs}"
    );
    assert_eq!(
        logs.matches("Redis is reachable again").count(),
        1,
        "{logs}"
    );
    assert!(!logs.contains(&cookie[15..]), "no session id in the logs");
}

#[tokio::test]
async fn redis_rediss_url_verified_against_ssl_cert_file() {
    let dir = tempfile::tempdir().unwrap();
    let c =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("redis.pem"), dir.path().join("redis.key"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    let Some(redis) = RedisServer::start_tls(&cert, &key) else {
        return eprintln!("{SKIPPED}");
    };
    assert!(redis.url().starts_with("rediss://"));
    let mut cl = Cluster::with(redis).await;
    // The gateway trusts the system roots; SSL_CERT_FILE adds this test's certificate.
    cl.env = vec![("SSL_CERT_FILE".into(), cert.display().to_string())];
    let a = cl.replica(cl.port_a).await;
    assert_eq!(
        status(&a.url("/_gateway/readyz")).await,
        200,
        "{}",
        a.logs()
    );
    let cookie = signed_in(&browser(), &a).await;
    assert_eq!(api_status(&a, &cookie).await, 200);
    // Without it the certificate is not trusted: not ready, never a plain-text fallback.
    cl.env.clear();
    let b = cl.replica(free_port()).await;
    assert_eq!(status(&b.url("/_gateway/readyz")).await, 503);
}

/// Every string value under the gateway's keys in Redis, joined (to look for a secret in).
fn redis_values(redis: &RedisServer) -> String {
    let keys = redis.command("KEYS clever-gateway:*").unwrap();
    let mut all = String::new();
    for key in keys.lines().filter(|l| l.starts_with("clever-gateway:")) {
        if redis
            .command(&format!("TYPE {key}"))
            .unwrap()
            .contains("+string")
        {
            all.push_str(&redis.command(&format!("GET {key}")).unwrap());
        }
    }
    all
}

#[tokio::test]
async fn redis_logout_deletes_the_session_and_its_access_token() {
    let Some(mut cl) = Cluster::new().await else {
        return eprintln!("{SKIPPED}");
    };
    cl.config = cl.config.replace(
        "name = \"app\"\n",
        "name = \"app\"\nforward_access_token = true\n",
    );
    let a = cl.replica(cl.port_a).await;
    let b = cl.replica(free_port()).await;
    let c = browser();
    let cookie = signed_in(&c, &a).await;
    assert_eq!(c.get(b.url("/x")).send().await.unwrap().status(), 200);
    let token = cl
        .app
        .last()
        .header("x-clever-access-token")
        .expect("the app gets the token");
    assert!(
        redis_values(&cl.redis).contains(&token),
        "kept while signed in"
    );
    let out = c
        .post(a.url("/_gateway/logout"))
        .header("origin", a.url(""))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 302);
    assert!(
        !redis_values(&cl.redis).contains(&token),
        "the token is gone from Redis after logout"
    );
    // Neither replica forwards it again (B within the 1 s revocation bound).
    let t = Instant::now();
    while api_status(&b, &cookie).await != 401 {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "B still serves the session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(api_status(&a, &cookie).await, 401);
    let forwarded = cl
        .app
        .requests()
        .iter()
        .filter(|r| r.header("x-clever-access-token").is_some())
        .count();
    assert_eq!(forwarded, 1, "the token went upstream only while signed in");
}

#[tokio::test]
async fn redis_outage_with_readiness_process_stays_ready_and_serves_from_cache() {
    let Some(mut cl) = Cluster::new().await else {
        return eprintln!("{SKIPPED}");
    };
    cl.config = cl.config.replace(
        "store = \"redis\"",
        "store = \"redis\"\nreadiness = \"process\"",
    );
    let a = cl.replica(cl.port_a).await;
    let cookie = signed_in(&browser(), &a).await;
    cl.redis.stop();
    // Still in the load balancer's pool: the signed-in user is served from the cache ...
    assert_eq!(status(&a.url("/_gateway/readyz")).await, 200);
    assert_eq!(api_status(&a, &cookie).await, 200, "{}", a.logs());
    // ... and what needs Redis (finishing a sign-in) gets the 503 page, not another error.
    let c = browser();
    let cb = callback_for(&c, &a.url("/_gateway/login?rd=/")).await;
    let r = c.get(&cb).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("temporarily unavailable"));
    assert_eq!(status(&a.url("/_gateway/readyz")).await, 200);
}

/// `logout_paths`: the app's own sign-out on replica A ends the session on replica B too, as
/// `/_gateway/logout` does (the same revocation), within 1 s.
#[tokio::test]
async fn redis_logout_path_on_a_refuses_copied_cookie_on_b_within_1s() {
    let Some(mut cl) = Cluster::new().await else {
        return eprintln!("{SKIPPED}");
    };
    cl.config.push_str("logout_paths = [\"/logout/\"]\n");
    let a = cl.replica(cl.port_a).await;
    let b = cl.replica(free_port()).await;
    let c = browser();
    let cookie = signed_in(&c, &a).await;
    // B has the session in its L1 now.
    assert_eq!(api_status(&b, &cookie).await, 200);
    let out = reqwest::Client::new()
        .get(a.url("/logout/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200, "the app answered its sign-out");
    assert_eq!(cl.app.last().uri, "/logout/");
    let t = Instant::now();
    loop {
        if api_status(&b, &cookie).await == 401 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "the copied cookie still works on B after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(api_status(&a, &cookie).await, 401);
}

/// How many times Redis ran `command` (scripts' calls included) since the last `CONFIG RESETSTAT`.
fn command_calls(redis: &RedisServer, command: &str) -> u64 {
    let stats = redis.command("INFO commandstats").unwrap();
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// `idle_timeout = "2s"` over Redis: a session in use on replica A for longer than 2 s is alive
/// on replica B, which never saw it (A moved its deadline in Redis), at a cost of one write per
/// second (min(60 s, idle / 2)), not one per request; unused for 3 s it ends on both.
#[tokio::test]
async fn redis_idle_session_in_use_lives_on_every_replica_without_a_write_per_request() {
    let Some(mut cl) = Cluster::new().await else {
        return eprintln!("{SKIPPED}");
    };
    cl.config = cl.config.replace(
        "store = \"redis\"",
        "store = \"redis\"\nidle_timeout = \"2s\"",
    );
    let a = cl.replica(cl.port_a).await;
    let b = cl.replica(free_port()).await;
    let cookie = signed_in(&browser(), &a).await;
    cl.redis.command("CONFIG RESETSTAT").unwrap();
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_millis(3000) {
        assert_eq!(api_status(&a, &cookie).await, 200, "in use on A");
        requests += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(api_status(&b, &cookie).await, 200, "B: {}", b.logs());
    let writes = command_calls(&cl.redis, "pexpireat");
    eprintln!("{writes} deadline writes for {requests} requests in 3 s");
    assert!(
        (2..=5).contains(&writes),
        "{writes} deadline writes for {requests} requests in 3 s"
    );
    assert!(requests >= 15, "{requests}");
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(api_status(&a, &cookie).await, 401, "unused for 3 s: A");
    assert_eq!(api_status(&b, &cookie).await, 401, "unused for 3 s: B");
}
