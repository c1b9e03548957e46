//! Metrics, health and readiness through the real gateway binary: what `/_gateway/metrics`
//! counts after logins, requests and a policy denial, and the separate `admin_listen` port.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clever_gateway::sim::{Endpoint, Fault};
use common::*;

/// One sample of the text format: (name, labels) → value.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

fn parse(text: &str) -> Samples {
    clever_gateway::process::metrics::parse_text(text)
        .into_iter()
        .map(|s| ((s.name, s.labels.into_iter().collect()), s.value))
        .collect()
}

/// The value of `name{labels}` (exactly these labels), if the series exists.
fn get(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let key: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples.get(&(name.to_string(), key)).copied()
}

/// Reads `url` until `done` holds (requests are counted just after their response is sent,
/// so the last one may land a moment later) or 5 s pass; returns the last text.
async fn metrics_until(url: &str, done: impl Fn(&Samples) -> bool) -> String {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = client.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.headers()["content-type"], "text/plain; version=0.0.4");
        let text = r.text().await.unwrap();
        if done(&parse(&text)) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const REQUESTS: &str = "clever_gateway_requests_total";
const LOGINS: &str = "clever_gateway_logins_total";

/// An open app at `/` and a teachers-only app at `/staff` on the same recording upstream.
fn staff_route(app: &Upstream) -> String {
    format!(
        "[[upstream]]\nname = \"staff\"\nurl = \"http://{}\"\npath_prefix = \"/staff\"\nallow_user_types = [\"teacher\"]\n",
        app.addr
    )
}

#[tokio::test]
async fn metrics_after_login_requests_and_denial() {
    let student = user_with_roles(&["student"]);
    let port = free_port();
    let sim = sim_for(port, Some(&student)).await;
    let app = Upstream::start().await;
    let cfg = format!(
        "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n{}",
        base_config(port, &sim, ""),
        app.addr,
        staff_route(&app)
    );
    let gw = start_gateway(port, &cfg, sim.client_secret()).await;
    let env = Env { sim, app, gw };
    let c = browser();
    let r = sign_in(&env, &c, "/").await;
    assert_eq!(r.status(), 200);
    for p in ["/a", "/b?x=1"] {
        assert_eq!(c.get(env.gw.url(p)).send().await.unwrap().status(), 200);
    }
    let denied = c.get(env.gw.url("/staff/report")).send().await.unwrap();
    assert_eq!(denied.status(), 403);

    let text = metrics_until(&env.gw.url("/_gateway/metrics"), |s| {
        get(s, REQUESTS, &[("upstream", "app"), ("class", "2xx")]) == Some(3.0)
            && get(s, REQUESTS, &[("upstream", "_gateway"), ("class", "4xx")]) == Some(1.0)
    })
    .await;
    let s = parse(&text);
    let expect = |name: &str, labels: &[(&str, &str)], want: f64| {
        assert_eq!(
            get(&s, name, labels),
            Some(want),
            "{name} {labels:?}\n{text}"
        );
    };
    expect(
        LOGINS,
        &[("outcome", "started"), ("reason", "gateway")],
        1.0,
    );
    expect(LOGINS, &[("outcome", "completed"), ("reason", "none")], 1.0);
    expect(REQUESTS, &[("upstream", "app"), ("class", "2xx")], 3.0);
    // The redirect to Clever and the callback's redirect back.
    expect(REQUESTS, &[("upstream", "_gateway"), ("class", "3xx")], 2.0);
    expect(REQUESTS, &[("upstream", "_gateway"), ("class", "4xx")], 1.0);
    expect(
        "clever_gateway_policy_denials_total",
        &[("upstream", "staff"), ("reason", "user_type_not_allowed")],
        1.0,
    );
    for ep in ["tokens", "me", "users"] {
        expect(
            "clever_gateway_clever_request_duration_seconds_count",
            &[("endpoint", ep)],
            1.0,
        );
    }
    expect(
        "clever_gateway_upstream_duration_seconds_count",
        &[("upstream", "app")],
        3.0,
    );
    assert!(
        get(&s, "clever_gateway_sessions", &[]).unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(
        !s.keys()
            .any(|(n, _)| n == "clever_gateway_clever_errors_total"),
        "no Clever error: {text}"
    );
    assert!(!text.contains(&student), "no user id in metrics:\n{text}");
    assert!(!text.contains("/staff/report") && !text.contains("x=1"));
}

#[tokio::test]
async fn metrics_clever_503_at_login_counts_failed_clever_error() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    env.sim
        .set_fault(Endpoint::Tokens, Some(Fault::Status(503)));
    let (r, _) = follow(&browser(), &env.gw.url("/")).await;
    assert_eq!(r.status(), 502);
    let failed = [("outcome", "failed"), ("reason", "clever_error")];
    let text = metrics_until(&env.gw.url("/_gateway/metrics"), |s| {
        get(s, LOGINS, &failed) == Some(1.0)
    })
    .await;
    let s = parse(&text);
    assert_eq!(get(&s, LOGINS, &failed), Some(1.0), "{text}");
    assert_eq!(
        get(&s, LOGINS, &[("outcome", "completed"), ("reason", "none")]),
        Some(0.0)
    );
    assert_eq!(
        get(
            &s,
            "clever_gateway_clever_errors_total",
            &[("endpoint", "tokens"), ("reason", "clever_error")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        get(
            &s,
            "clever_gateway_clever_request_duration_seconds_count",
            &[("endpoint", "tokens")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn admin_listen_serves_health_ready_metrics_and_404_elsewhere() {
    let teacher = user_with_roles(&["teacher"]);
    let port = free_port();
    let admin = free_port();
    let sim = sim_for(port, Some(&teacher)).await;
    let app = Upstream::start().await;
    let cfg = format!(
        "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n",
        base_config(port, &sim, "").replace(
            "threads = 2\n",
            &format!("threads = 2\nadmin_listen = \"127.0.0.1:{admin}\"\n")
        ),
        app.addr
    );
    let gw = start_gateway(port, &cfg, sim.client_secret()).await;
    let env = Env { sim, app, gw };
    sign_in(&env, &browser(), "/").await;

    let admin_url = |p: &str| format!("http://127.0.0.1:{admin}{p}");
    let client = reqwest::Client::new();
    for p in ["/_gateway/healthz", "/healthz"] {
        let r = client.get(admin_url(p)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{p}");
        assert_eq!(r.text().await.unwrap(), "ok\n");
    }
    for p in ["/_gateway/readyz", "/readyz"] {
        let r = client.get(admin_url(p)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{p}");
        assert_eq!(r.text().await.unwrap(), "ready\n");
    }
    for p in ["/_gateway/metrics", "/metrics"] {
        let text = metrics_until(&admin_url(p), |s| {
            get(s, LOGINS, &[("outcome", "completed"), ("reason", "none")]) == Some(1.0)
        })
        .await;
        let s = parse(&text);
        assert_eq!(
            get(&s, LOGINS, &[("outcome", "completed"), ("reason", "none")]),
            Some(1.0),
            "the admin port shows the proxy's own metrics:\n{text}"
        );
        assert!(get(&s, "clever_gateway_sessions", &[]).unwrap_or(0.0) >= 1.0);
    }
    let head = client.head(admin_url("/metrics")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    for p in [
        "/",
        "/_gateway/me",
        "/_gateway/login",
        "/oauth/clever/callback",
        "/x",
    ] {
        let r = client.get(admin_url(p)).send().await.unwrap();
        assert_eq!(r.status(), 404, "admin {p}");
    }
    assert_eq!(env.app.count(), 1, "the admin port never proxies");

    // On the public listener: metrics are off, health and readiness stay for load balancers.
    let public = client
        .get(env.gw.url("/_gateway/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    for p in ["/_gateway/healthz", "/_gateway/readyz"] {
        let r = client.get(env.gw.url(p)).send().await.unwrap();
        assert_eq!(r.status(), 200, "public {p}");
    }
}

#[tokio::test]
async fn admin_listen_busy_port_fails_clearly() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = busy.local_addr().unwrap().port();
    let port = free_port();
    let sim = sim_for(port, None).await;
    let cfg = format!(
        "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9\"\n",
        base_config(port, &sim, "").replace(
            "threads = 2\n",
            &format!("threads = 2\nadmin_listen = \"127.0.0.1:{admin}\"\n")
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, cfg).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clever-gateway"))
        .args(["run", "--config"])
        .arg(&path)
        .env(SECRET_ENV, sim.client_secret())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{admin}")),
        "{stderr}"
    );
}
