//! Criterion micro-benchmarks of the per-request work the gateway adds, without pingora's I/O:
//!
//! - `hot_path/signed_in`: one signed-in browser request (20 headers): scrub spoofable headers,
//!   read the gateway's cookies, look the session up in the memory store (10 000 live
//!   sessions), check the upstream's policy, then the upstream rewrite (scrub again, strip the
//!   gateway's cookie, `X-Forwarded-*`, `X-Request-Id`, identity headers) on a clone of the
//!   request header, as `proxy::GatewayProxy` does in `request_filter` and
//!   `upstream_request_filter`.
//! - `hot_path/signed_in_decide`: the same with `Gateway::decide` (path normalisation, routing,
//!   public-path check, session, policy) and the request id in place of the bare lookup.
//! - `scrub/*`: the spoofable-header scan alone over 20 headers (3 of them spoofed).
//! - `baseline/*`: a clone of the request header (pingora clones it for the upstream request
//!   anyway) and of an empty `HeaderMap`, so the figures can be read as ratios; and
//!   `clone_and_pingora_inserts`: that clone plus pingora's `insert_header` of exactly the
//!   headers `signed_in_decide` sets (the same names and values), i.e. what any proxy adding
//!   those headers through pingora's API pays. The summary subtracts it from
//!   `signed_in_decide` to show the gateway's own work.
//!
//! `cargo bench --bench hot_path` prints criterion's estimates, then a summary table with the
//! medians of this run and their ratios to the baselines. `HOT_PATH_PROFILE=N` runs the full
//! signed-in path N times instead (for callgrind). `HOT_PATH_IDLE=20m` gives the memory store
//! an idle timeout (`session.idle_timeout`), for comparing the lookup with and without it.

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, Criterion};
use http::header::COOKIE;
use http::HeaderMap;
use pingora::http::RequestHeader;

use clever_gateway::auth::{policy, Auth};
use clever_gateway::clever::CleverClient;
use clever_gateway::gateway::host::Host;
use clever_gateway::gateway::upstream_headers::{self as headers, Edits, ForwardFacts};
use clever_gateway::gateway::{Decision, Gateway, RequestFacts};
use clever_gateway::identity::{Field, Identity, UserType};
use clever_gateway::process::metrics::Metrics;
use clever_gateway::secret::{random_token, Secret};
use clever_gateway::session::memory::MemoryLimits;
use clever_gateway::session::{MemoryStore, SessionId, SessionRecord, SessionStore, SystemClock};

/// The gateway binary's allocator (src/main.rs), so the figures are the binary's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:8080"]
[clever]
client_id = "4c63c1cf623dce82caac"
client_secret_env = "BENCH_SECRET"
redirect_uri = "https://apps.example-district.org/oauth/clever/callback"
[[upstream]]
name = "gradebook"
url = "http://127.0.0.1:9000"
public_paths = ["/assets/"]
allow_user_types = ["teacher", "staff", "district_admin"]
[upstream.headers]
email = "X-Clever-Email"
name = "X-Clever-Name"
[[upstream]]
name = "library"
url = "http://127.0.0.1:9001"
path_prefix = "/library"
"#;

/// Sessions in the store besides the one the request carries.
const OTHER_SESSIONS: usize = 10_000;

/// Drives a future that never waits (the memory store and the decision code do not) to its
/// end without a runtime.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

struct Fixture {
    gw: Gateway,
    /// The headers `signed_in_decide` inserts or replaces (wire-case name, value).
    inserted: Vec<(bytes::Bytes, http::HeaderValue)>,
    /// What a browser sends for `GET /grades/2026/term1?class=7b` when signed in.
    req: RequestHeader,
    /// 20 headers, three of them spoofed identity headers.
    spoofed: HeaderMap,
}

fn record(i: usize) -> SessionRecord {
    SessionRecord::new(
        Identity::builder(&format!("5fc43758db087d0be1{i:06x}"))
            .district("5d0a9e5d0958b300014e49d2")
            .role(UserType::Teacher)
            .role(UserType::DistrictAdmin)
            .with(Field::Name, "Ada Lovelace")
            .with(Field::Email, "ada.lovelace@example-district.org")
            .with(Field::AuthorizedBy, "district")
            .build(),
        Secret::new(random_token(32)),
        SystemTime::now(),
        Duration::from_secs(7200),
    )
}

fn browser_headers(session_cookie: &str) -> Vec<(&'static str, String)> {
    vec![
        ("host", "apps.example-district.org".into()),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36".into()),
        ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8".into()),
        ("accept-language", "en-US,en;q=0.9,es;q=0.8".into()),
        ("accept-encoding", "gzip, deflate, br, zstd".into()),
        ("referer", "https://apps.example-district.org/grades/2026".into()),
        ("connection", "keep-alive".into()),
        ("upgrade-insecure-requests", "1".into()),
        ("sec-fetch-dest", "document".into()),
        ("sec-fetch-mode", "navigate".into()),
        ("sec-fetch-site", "same-origin".into()),
        ("sec-fetch-user", "?1".into()),
        ("sec-ch-ua", "\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"".into()),
        ("sec-ch-ua-mobile", "?0".into()),
        ("sec-ch-ua-platform", "\"Linux\"".into()),
        ("cache-control", "max-age=0".into()),
        ("priority", "u=0, i".into()),
        ("if-none-match", "W/\"5e-1a2b3c4d\"".into()),
        ("dnt", "1".into()),
        (
            "cookie",
            format!("PHPSESSID=9f2c1e0d4b7a6c5e3f2a1b0c; _ga=GA1.1.123456789.1700000000; clever_gateway={session_cookie}; theme=dark; _ga_XYZ=GS1.1.1700000000.1.1.1700000100.0.0.0"),
        ),
    ]
}

fn fixture() -> Fixture {
    let cfg = Arc::new(clever_gateway::config::parse_str(CONFIG, "bench.toml").expect("config"));
    // `HOT_PATH_IDLE=20m`: the store ends idle sessions (`session.idle_timeout`), so each
    // lookup also checks and marks the session's last use.
    let idle = std::env::var("HOT_PATH_IDLE")
        .ok()
        .map(|d| humantime::parse_duration(&d).expect("HOT_PATH_IDLE is a duration"));
    let store = Arc::new(MemoryStore::new(
        cfg.session.ttl,
        Arc::new(SystemClock),
        MemoryLimits {
            idle,
            ..MemoryLimits::default()
        },
    ));
    for i in 0..OTHER_SESSIONS {
        ready(store.insert(&SessionId::generate(), record(i))).unwrap();
    }
    let id = SessionId::generate();
    ready(store.insert(&id, record(OTHER_SESSIONS))).unwrap();
    let metrics = Arc::new(Metrics::new().unwrap());
    let clever = CleverClient::new(cfg.clever.clone(), Secret::new("s"), metrics.clone()).unwrap();
    let auth = Auth::new(
        cfg.clone(),
        store.clone(),
        clever,
        Arc::new(SystemClock),
        metrics.clone(),
    );
    let gw = Gateway::new(cfg, auth, store, metrics);

    let mut req = RequestHeader::build("GET", b"/grades/2026/term1?class=7b", Some(20)).unwrap();
    for (k, v) in browser_headers(id.expose()) {
        req.append_header(k, v).unwrap();
    }
    let mut spoofed = HeaderMap::new();
    for (k, v) in browser_headers(id.expose()).into_iter().take(17) {
        spoofed.append(k, v.parse().unwrap());
    }
    spoofed.append(
        "x-clever-user-id",
        "5fc43758db087d0be186c29d".parse().unwrap(),
    );
    spoofed.append("x_clever_user_type", "district_admin".parse().unwrap());
    spoofed.append("x-forwarded-for", "6.6.6.6".parse().unwrap());
    assert_eq!(spoofed.len(), 20);
    Fixture {
        gw,
        req,
        spoofed,
        inserted: Vec::new(),
    }
}

/// The headers of `out` that `req` does not have with the same value, in `out`'s order.
fn inserted_headers(
    gw: &Gateway,
    req: &RequestHeader,
    out: &RequestHeader,
) -> Vec<(bytes::Bytes, http::HeaderValue)> {
    out.headers
        .iter()
        .filter(|(name, value)| req.headers.get(*name) != Some(*value))
        .map(|(name, value)| {
            let wire = match headers::wire_name(name) {
                Some(w) => bytes::Bytes::from_static(w.as_bytes()),
                None if name == COOKIE => bytes::Bytes::from_static(b"Cookie"),
                None => gw.cfg.upstreams[0]
                    .headers
                    .iter()
                    .find(|h| h.name == name)
                    .map(|h| h.wire.clone())
                    .unwrap_or_else(|| panic!("unexpected header {name}")),
            };
            (wire, value.clone())
        })
        .collect()
}

/// Pingora's share of the rewrite: the clone and one `insert_header` per header the gateway
/// sets, with the gateway's wire-case names and its values.
fn clone_and_pingora_inserts(
    req: &RequestHeader,
    inserted: &[(bytes::Bytes, http::HeaderValue)],
) -> RequestHeader {
    let mut up = req.clone();
    for (name, value) in inserted {
        up.insert_header(name.clone(), value.clone()).unwrap();
    }
    up
}

fn apply(req: &mut RequestHeader, edits: Edits) {
    clever_gateway::proxy::apply(req, edits).unwrap();
}

/// The upstream rewrite of `upstream_request_filter` for a signed-in request.
fn rewrite(
    gw: &Gateway,
    up: &mut RequestHeader,
    rec: &SessionRecord,
    request_id: &http::HeaderValue,
) {
    let upstream = &gw.cfg.upstreams[0];
    for name in headers::spoofable(&up.headers, &gw.identity_header_names) {
        up.remove_header(&name);
    }
    clever_gateway::proxy::apply_cookie(up, headers::upstream_cookie(&up.headers, &gw.cookies))
        .unwrap();
    let host = up
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok());
    let fwd = headers::forwarding(
        &up.headers,
        ForwardFacts {
            client_ip: Some("192.0.2.44".parse().unwrap()),
            tls: true,
            host,
            request_id,
        },
        &gw.cfg.server.trusted_proxies,
    );
    apply(up, fwd);
    for (h, value) in headers::session_headers(&upstream.headers, rec, &gw.cfg.header_specs) {
        up.insert_header(h.wire.clone(), value).unwrap();
    }
}

/// The components the issue names: cookie parse, session lookup, policy, header edits.
fn signed_in(gw: &Gateway, req: &RequestHeader) -> RequestHeader {
    let mut up = req.clone();
    for name in headers::spoofable(&up.headers, &gw.identity_header_names) {
        up.remove_header(&name);
    }
    let cookies = gw
        .cookies
        .read(up.headers.get_all(COOKIE).iter().map(|v| v.as_bytes()));
    let (_, rec) = ready(gw.auth.session(&cookies)).unwrap().expect("session");
    policy::check(&gw.cfg.upstreams[0], &rec.identity).expect("allowed");
    rewrite(
        gw,
        &mut up,
        &rec,
        &http::HeaderValue::from_static("bench-request-id"),
    );
    up
}

/// Everything `request_filter` and `upstream_request_filter` do for a signed-in request,
/// minus pingora's own work: request id, scrub, refusal checks, `Gateway::decide`, rewrite.
fn signed_in_decide(gw: &Gateway, req: &RequestHeader) -> RequestHeader {
    let request_id = clever_gateway::proxy::request_id();
    let mut up = req.clone();
    for name in headers::spoofable(&up.headers, &gw.identity_header_names) {
        up.remove_header(&name);
    }
    assert!(clever_gateway::gateway::refuse_request(up.raw_path(), &up.headers, None).is_none());
    let wants_html = clever_gateway::gateway::wants_html(
        up.headers
            .get("sec-fetch-mode")
            .and_then(|v| v.to_str().ok()),
        up.headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let cookies = gw
        .cookies
        .read(up.headers.get_all(COOKIE).iter().map(|v| v.as_bytes()));
    let host = Host::of_request(
        up.uri.authority().map(|a| a.as_str()),
        up.headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok()),
    );
    let facts = RequestFacts {
        method: up.method.as_str(),
        host,
        path: up.uri.path(),
        query: up.uri.query(),
        cookies,
        wants_html,
        request_id: &request_id,
        forwarded_uri: None,
        forward_auth_secret: None,
        sec_fetch_site: None,
        origin: None,
    };
    let Decision::Forward(f) = ready(gw.decide(&facts)) else {
        panic!("not forwarded");
    };
    let rec = f.session.expect("signed in");
    rewrite(gw, &mut up, &rec, request_id.header_value());
    up
}

fn benches(c: &mut Criterion) {
    let mut fx = fixture();
    // Sanity: the rewrite did what the gateway does.
    let out = signed_in(&fx.gw, &fx.req);
    assert_eq!(out.headers["x-clever-user-type"], "teacher,district_admin");
    assert!(!out.headers["cookie"]
        .to_str()
        .unwrap()
        .contains("clever_gateway"));
    let out = signed_in_decide(&fx.gw, &fx.req);
    assert_eq!(
        out.headers["x-clever-email"],
        "ada.lovelace@example-district.org"
    );
    fx.inserted = inserted_headers(&fx.gw, &fx.req, &out);
    // Forwarding (4), identity (5 with this upstream's email and name) and the cookie.
    assert_eq!(fx.inserted.len(), 10, "{:?}", fx.inserted);

    let mut g = c.benchmark_group("baseline");
    let empty = HeaderMap::new();
    g.bench_function("empty_headermap_clone", |b| {
        b.iter(|| std::hint::black_box(&empty).clone())
    });
    g.bench_function("request_header_clone", |b| {
        b.iter(|| std::hint::black_box(&fx.req).clone())
    });
    g.bench_function("clone_and_pingora_inserts", |b| {
        b.iter(|| clone_and_pingora_inserts(std::hint::black_box(&fx.req), &fx.inserted))
    });
    g.finish();

    let mut g = c.benchmark_group("hot_path");
    g.bench_function("signed_in", |b| {
        b.iter(|| signed_in(&fx.gw, std::hint::black_box(&fx.req)))
    });
    g.bench_function("signed_in_decide", |b| {
        b.iter(|| signed_in_decide(&fx.gw, std::hint::black_box(&fx.req)))
    });
    g.finish();

    let mut g = c.benchmark_group("scrub");
    g.bench_function("spoofable_20_headers_3_spoofed", |b| {
        b.iter(|| {
            headers::spoofable(
                std::hint::black_box(&fx.spoofed),
                &fx.gw.identity_header_names,
            )
        })
    });
    g.bench_function("spoofable_and_remove_20_headers", |b| {
        b.iter(|| {
            let mut h = std::hint::black_box(&fx.spoofed).clone();
            for name in headers::spoofable(&h, &fx.gw.identity_header_names) {
                h.remove(&name);
            }
            h
        })
    });
    g.finish();
}

criterion_group! {
    name = hot_path;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}

/// Criterion's output directory: `$CRITERION_HOME`, else `<target>/criterion` (the bench
/// binary lives in `<target>/release/deps/`).
fn criterion_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(h));
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(t).join("criterion"));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

/// The median (ns) criterion estimated for `group/id` in this run.
fn median_ns(dir: &std::path::Path, id: &str, since: SystemTime) -> Option<f64> {
    let path = dir.join(id).join("new").join("estimates.json");
    let meta = std::fs::metadata(&path).ok()?;
    if meta.modified().ok()? < since {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn summary(since: SystemTime) {
    let Some(dir) = criterion_dir() else { return };
    let base_empty = median_ns(&dir, "baseline/empty_headermap_clone", since);
    let base_req = median_ns(&dir, "baseline/request_header_clone", since);
    println!();
    println!("summary (criterion medians of this run)");
    println!(
        "{:<42} {:>10} {:>14} {:>16}",
        "benchmark", "ns/iter", "x empty clone", "x request clone"
    );
    for id in [
        "baseline/empty_headermap_clone",
        "baseline/request_header_clone",
        "baseline/clone_and_pingora_inserts",
        "hot_path/signed_in",
        "hot_path/signed_in_decide",
        "scrub/spoofable_20_headers_3_spoofed",
        "scrub/spoofable_and_remove_20_headers",
    ] {
        let Some(ns) = median_ns(&dir, id, since) else {
            continue;
        };
        let ratio = |b: Option<f64>| b.map_or("-".to_string(), |b| format!("{:.1}", ns / b));
        println!(
            "{:<42} {:>10.1} {:>14} {:>16}",
            id,
            ns,
            ratio(base_empty),
            ratio(base_req)
        );
    }
    if let Some(ns) = median_ns(&dir, "hot_path/signed_in_decide", since) {
        let verdict = if ns <= 2000.0 { "met" } else { "NOT met" };
        println!("target hot path <= 2000 ns: {verdict} ({ns:.0} ns)");
        if let Some(p) = median_ns(&dir, "baseline/clone_and_pingora_inserts", since) {
            println!(
                "of which pingora's clone and header inserts {p:.0} ns, the gateway's own work \
                 (cookies, session lookup, policy, path, scrubbing, header values) {:.0} ns",
                ns - p
            );
        }
    }
}

fn main() {
    // `HOT_PATH_PROFILE=N`: run the full signed-in path N times without criterion, for
    // `valgrind --tool=callgrind`.
    // `HOT_PATH_TARGET=/STAFF;x/y` profiles that request target instead of the fixture's.
    if let Some(n) = std::env::var("HOT_PATH_PROFILE")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        let mut fx = fixture();
        if let Ok(target) = std::env::var("HOT_PATH_TARGET") {
            let mut req = RequestHeader::build("GET", target.as_bytes(), Some(20)).unwrap();
            for (name, value) in fx.req.headers.iter() {
                req.append_header(name.clone(), value.clone()).unwrap();
            }
            fx.req = req;
        }
        for _ in 0..n {
            std::hint::black_box(signed_in_decide(&fx.gw, std::hint::black_box(&fx.req)));
        }
        return;
    }
    let since = SystemTime::now() - Duration::from_secs(1);
    hot_path();
    Criterion::default().configure_from_args().final_summary();
    summary(since);
}
