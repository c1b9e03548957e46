//! The 8:00 AM sign-in storm, for `bench/storm.sh` (not part of the product's CLI): N browsers,
//! each new (own cookies, own connections), arrive evenly over T seconds and sign in, while M
//! browsers that signed in before keep browsing. Prints one JSON object.
//!
//! Two kinds of target, so a peer can run the same storm:
//! - `--mode gateway`: Clever-initiated sign-ins, as from the Clever Portal. Each browser opens
//!   an Instant Login link at the simulator (which signs it in there and sends it to the
//!   gateway's callback without a `state`), then follows every redirect: the gateway's bounce
//!   through `/oauth/authorize`, the callback with the code, the landing page.
//! - `--mode rp`: a relying party that starts the sign-in itself (Apache with
//!   mod_auth_openidc): the browser asks for `--path`, and follows every redirect through the
//!   simulator's authorize and the relying party's callback back to the page.
//!
//! A sign-in's wall time runs from the first request to the relying party to the page's answer;
//! "added" is that minus the latency the simulator injected into the same sign-in (its
//! authorize, token exchange and API calls, found by the code in `GET /_sim/stats`), i.e. the
//! time the relying party itself took, connections to Clever included.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser, Debug, Clone)]
struct Args {
    /// `gateway` (Clever-initiated sign-ins) or `rp` (the relying party starts them).
    #[arg(long, default_value = "gateway")]
    mode: String,
    /// The relying party's base URL (`http://127.0.0.1:PORT`).
    #[arg(long)]
    target: String,
    /// The simulator's base URL.
    #[arg(long)]
    sim: String,
    /// PEM file of the CA the simulator's certificate is issued by.
    #[arg(long)]
    ca: Option<String>,
    /// The application's client id at the simulator (for Instant Login links).
    #[arg(long)]
    client_id: String,
    /// The protected page.
    #[arg(long, default_value = "/app/page")]
    path: String,
    /// Sign-ins in the storm.
    #[arg(long, default_value_t = 3000)]
    signins: usize,
    /// Seconds the storm's arrivals are spread over.
    #[arg(long, default_value_t = 60.0)]
    over: f64,
    /// Browsers signed in before the storm that keep browsing through it.
    #[arg(long, default_value_t = 200)]
    browsing: usize,
    /// Mean pause of a browsing user between a page and the next, milliseconds (each pause is
    /// uniform between 0 and twice this).
    #[arg(long, default_value_t = 100)]
    pause_ms: u64,
    /// Seconds of browsing measured before the storm starts.
    #[arg(long, default_value_t = 10.0)]
    before: f64,
}

/// The district whose users sign in (the simulator's demo district).
const DISTRICT: &str = clever_gateway::sim::DEMO_DISTRICT;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.mode == "gateway" || args.mode == "rp",
        "--mode is gateway or rp"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let out = rt.block_on(run(args))?;
    println!("{out}");
    Ok(())
}

/// One browser: its own cookies and connections, trusting the simulator's CA, following no
/// redirect by itself.
fn browser(ca: &Option<reqwest::Certificate>) -> anyhow::Result<reqwest::Client> {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(reqwest::header::ACCEPT, "text/html".parse()?);
    let mut b = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(h)
        .timeout(Duration::from_secs(30));
    if let Some(ca) = ca {
        b = b.tls_certs_merge([ca.clone()]);
    }
    Ok(b.build()?)
}

/// What one sign-in came to.
struct SignIn {
    wall: Duration,
    /// The code Clever issued for it (from the callback URL).
    code: Option<String>,
    error: Option<String>,
}

/// Follows redirects from `url` (at most 12) to a final answer; the sign-in's code is the
/// `code` parameter of the last URL on `target` that carried one.
async fn follow(client: &reqwest::Client, url: String, target: &str) -> SignIn {
    let start = Instant::now();
    let mut url = url;
    let mut code = None;
    for _ in 0..12 {
        if url.starts_with(target) {
            if let Ok(u) = url::Url::parse(&url) {
                if let Some((_, c)) = u.query_pairs().find(|(k, _)| k == "code") {
                    code = Some(c.into_owned());
                }
            }
        }
        let resp = match client.get(&url).send().await {
            Ok(r) => r,
            Err(e) => {
                return SignIn {
                    wall: start.elapsed(),
                    code,
                    error: Some(format!("GET {}: {e}", redact(&url))),
                }
            }
        };
        let status = resp.status();
        if status.is_redirection() {
            let Some(next) = resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| resp.url().join(l).ok())
            else {
                return SignIn {
                    wall: start.elapsed(),
                    code,
                    error: Some(format!("{status} without Location")),
                };
            };
            url = next.to_string();
            continue;
        }
        let _ = resp.bytes().await;
        return SignIn {
            wall: start.elapsed(),
            code,
            error: (!status.is_success()).then(|| format!("{status} at {}", redact(&url))),
        };
    }
    SignIn {
        wall: start.elapsed(),
        code,
        error: Some("more than 12 redirects".into()),
    }
}

/// A URL without its query (codes and states are not printed).
fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// One sign-in by a new browser; returns the browser (signed in) too.
async fn sign_in(
    args: &Args,
    ca: &Option<reqwest::Certificate>,
    user: &str,
) -> (SignIn, reqwest::Client) {
    let client = match browser(ca) {
        Ok(c) => c,
        Err(e) => {
            return (
                SignIn {
                    wall: Duration::ZERO,
                    code: None,
                    error: Some(format!("client: {e}")),
                },
                reqwest::Client::new(),
            )
        }
    };
    let start = if args.mode == "gateway" {
        // Clever's side: the Instant Login link signs the browser in at the simulator and
        // sends it to the gateway's callback. Not timed: the gateway has not been reached.
        let link = format!(
            "{}/oauth/instant-login?client_id={}&district_id={DISTRICT}&user={user}",
            args.sim, args.client_id
        );
        let resp = client.get(&link).send().await;
        match resp
            .ok()
            .filter(|r| r.status().is_redirection())
            .and_then(|r| {
                r.headers()
                    .get("location")?
                    .to_str()
                    .ok()
                    .map(str::to_string)
            }) {
            Some(callback) => callback,
            None => {
                return (
                    SignIn {
                        wall: Duration::ZERO,
                        code: None,
                        error: Some("the Instant Login link did not redirect".into()),
                    },
                    client,
                )
            }
        }
    } else {
        format!("{}{}", args.target, args.path)
    };
    let result = follow(&client, start, &args.target).await;
    (result, client)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(mut ms: Vec<f64>) -> Value {
    ms.sort_by(|a, b| a.total_cmp(b));
    json!({
        "n": ms.len(),
        "p50_ms": percentile(&ms, 50.0),
        "p99_ms": percentile(&ms, 99.0),
        "max_ms": ms.last().copied().unwrap_or(f64::NAN),
    })
}

/// A browsing user's page loads: (when, latency, ok).
type Loads = Arc<Mutex<Vec<(Instant, Duration, bool)>>>;

async fn run(args: Args) -> anyhow::Result<Value> {
    let ca = match &args.ca {
        Some(path) => Some(reqwest::Certificate::from_pem(&std::fs::read(path)?)?),
        None => None,
    };
    let users: Vec<String> = clever_gateway::sim::demo_users()
        .into_iter()
        .filter(|u| u.in_district(DISTRICT))
        .map(|u| u.id)
        .collect();
    let args = Arc::new(args);

    // The browsing users sign in first, a few at a time.
    let mut browsing = Vec::new();
    for chunk in (0..args.browsing).collect::<Vec<_>>().chunks(20) {
        let mut set = tokio::task::JoinSet::new();
        for &i in chunk {
            let (args, ca, user) = (args.clone(), ca.clone(), users[i % users.len()].clone());
            set.spawn(async move { sign_in(&args, &ca, &user).await });
        }
        while let Some(done) = set.join_next().await {
            let (result, client) = done?;
            if let Some(e) = result.error {
                anyhow::bail!("a browsing user could not sign in: {e}");
            }
            browsing.push(client);
        }
    }
    let loads: Loads = Arc::new(Mutex::new(Vec::new()));
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut browsers = tokio::task::JoinSet::new();
    for client in browsing {
        let (url, loads, stopped) = (
            format!("{}{}", args.target, args.path),
            loads.clone(),
            stopped.clone(),
        );
        let pause = args.pause_ms;
        browsers.spawn(async move {
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                let t = Instant::now();
                let ok = match client.get(&url).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                loads.lock().unwrap().push((t, t.elapsed(), ok));
                let wait = rand::random_range(0..=2 * pause);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        });
    }
    // The simulator's counters (connections, peak concurrency, delays) cover the storm only;
    // connections the relying party already holds are not counted again.
    let control = reqwest::Client::builder()
        .tls_certs_merge(ca.clone())
        .build()?;
    control
        .post(format!("{}/_sim/reset", args.sim))
        .send()
        .await?
        .error_for_status()?;
    tokio::time::sleep(Duration::from_secs_f64(args.before)).await;

    // The storm: arrivals evenly spread over `over` seconds.
    let storm_start = Instant::now();
    let gap = Duration::from_secs_f64(args.over / args.signins.max(1) as f64);
    let mut storm = tokio::task::JoinSet::new();
    for i in 0..args.signins {
        let at = storm_start + gap * i as u32;
        let (args, ca, user) = (args.clone(), ca.clone(), users[i % users.len()].clone());
        storm.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            sign_in(&args, &ca, &user).await.0
        });
    }
    let mut results = Vec::new();
    while let Some(done) = storm.join_next().await {
        results.push(done?);
    }
    let storm_end = Instant::now();
    stopped.store(true, std::sync::atomic::Ordering::SeqCst);
    while browsers.join_next().await.is_some() {}

    let stats: Value = control
        .get(format!("{}/_sim/stats", args.sim))
        .send()
        .await?
        .json()
        .await?;
    let delays = stats["delays_us"].as_object().cloned().unwrap_or_default();
    let mut wall = Vec::new();
    let mut added = Vec::new();
    let mut errors = Vec::new();
    let mut unmatched = 0;
    for r in &results {
        if let Some(e) = &r.error {
            errors.push(e.clone());
            continue;
        }
        let ms = r.wall.as_secs_f64() * 1e3;
        wall.push(ms);
        match r
            .code
            .as_ref()
            .and_then(|c| delays.get(c))
            .and_then(Value::as_u64)
        {
            Some(us) => added.push(ms - us as f64 / 1e3),
            None => unmatched += 1,
        }
    }
    let loads = loads.lock().unwrap();
    let window = |from: Instant, to: Instant| {
        let mut ms = Vec::new();
        let mut failed = 0;
        for (t, d, ok) in loads.iter() {
            if *t >= from && *t < to {
                if *ok {
                    ms.push(d.as_secs_f64() * 1e3);
                } else {
                    failed += 1;
                }
            }
        }
        let mut s = summary(ms);
        s["errors"] = failed.into();
        s
    };
    let before_start = storm_start - Duration::from_secs_f64(args.before);
    errors.sort();
    errors.dedup();
    Ok(json!({
        "mode": args.mode,
        "signins": args.signins,
        "over_s": args.over,
        "storm_s": (storm_end - storm_start).as_secs_f64(),
        "ok": wall.len(),
        "errors": results.len() - wall.len(),
        "error_kinds": errors.into_iter().take(5).collect::<Vec<_>>(),
        "wall": summary(wall),
        "added": summary(added),
        "unmatched_codes": unmatched,
        "browsing_users": args.browsing,
        "browsing_before": window(before_start, storm_start),
        "browsing_during": window(storm_start, storm_end),
        "sim": {
            "listeners": stats["listeners"],
            "peak_in_flight": stats["peak_in_flight"],
        },
    }))
}
