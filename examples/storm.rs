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
//! "added" is that minus Clever's time in the same sign-in: how long the simulator held its
//! authorize, token exchange and API calls (the injected latency as slept, and the answer's
//! making), found by the code in `GET /_sim/stats`; i.e. the time the relying party itself
//! took, connections to Clever included, and the browser's own. "added_at_target" is the time
//! of the requests to the relying party alone (its hops, as the browser waited on them) minus
//! Clever's time in the relying party's own calls (token exchange, API): the same, without the
//! browser's requests to Clever's authorize and its work between hops.

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
    /// Text the protected page's body holds (a sign-in that ends on another page failed).
    #[arg(long)]
    expect: Option<String>,
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
    /// Seconds of browsing measured before the storm starts, and again after it ends.
    #[arg(long, default_value_t = 10.0)]
    before: f64,
    /// The relying party's process: its CPU time (and its children's, for Apache) is read
    /// from /proc before, during and after the storm, and its peak RSS at the end.
    #[arg(long)]
    pid: Option<u32>,
    /// Writes one JSON line per sign-in of the storm to this file: Clever's time in the
    /// relying party's own calls, and each request to the relying party (its `X-Request-Id` and
    /// how long the browser waited on it), for `bench/storm.sh`'s PROFILE=1 breakdown.
    #[arg(long)]
    hops_out: Option<String>,
}

/// The file `name` of every thread of `pid` and of its child processes, from /proc.
fn task_files(pid: u32, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in std::iter::once(pid).chain(children(pid)) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        out.extend(
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join(name)).ok()),
        );
    }
    out
}

/// CPU seconds (user + kernel) of `pid`, its threads and its child processes.
fn cpu_seconds(pid: u32) -> f64 {
    let tck = 100.0; // USER_HZ on Linux
    let mut ticks = 0u64;
    for stat in task_files(pid, "stat") {
        // Fields after the command name (which ends with ')'): utime is the 12th, stime the
        // 13th of them.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        ticks += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    ticks as f64 / tck
}

/// Seconds the threads of `pid` (and its children) spent runnable but waiting for a CPU:
/// schedstat's second field, nanoseconds.
fn run_delay_seconds(pid: u32) -> f64 {
    let ns: u64 = task_files(pid, "schedstat")
        .iter()
        .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// The child processes of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        if rest
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u32>().ok())
            == Some(pid)
        {
            out.push(p);
        }
    }
    out
}

/// Peak resident set (VmHWM) of `pid` and its children, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::iter::once(pid)
        .chain(children(pid))
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .sum()
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
    // Only the simulator's CA: merging it with the system's roots would read every file of the
    // system's certificate directory for each new browser, blocking this driver's runtime for
    // milliseconds per sign-in, which the figures would then charge to the relying party.
    if let Some(ca) = ca {
        b = b.tls_certs_only([ca.clone()]);
    }
    Ok(b.build()?)
}

/// What one sign-in came to.
struct SignIn {
    wall: Duration,
    /// Each request to the relying party (the hops through it): its `X-Request-Id` (when it
    /// sent one) and time; together, the part of `wall` spent at the relying party.
    hops: Vec<(String, Duration)>,
    /// The code Clever issued for it (from the callback URL).
    code: Option<String>,
    error: Option<String>,
}

/// Follows redirects from `url` (at most 12) to a final answer; the sign-in's code is the
/// `code` parameter of the last URL on `target` that carried one.
async fn follow(
    client: &reqwest::Client,
    url: String,
    target: &str,
    expect: Option<&str>,
) -> SignIn {
    let start = Instant::now();
    let mut hops = Vec::new();
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
        let hop = Instant::now();
        let on_target = url.starts_with(target);
        let resp = match client.get(&url).send().await {
            Ok(r) => r,
            Err(e) => {
                return SignIn {
                    wall: start.elapsed(),
                    hops,
                    code,
                    error: Some(format!("GET {}: {e}", redact(&url))),
                }
            }
        };
        let status = resp.status();
        let request_id = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if status.is_redirection() {
            let Some(next) = resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| resp.url().join(l).ok())
            else {
                return SignIn {
                    wall: start.elapsed(),
                    hops,
                    code,
                    error: Some(format!("{status} without Location")),
                };
            };
            if on_target {
                hops.push((request_id, hop.elapsed()));
            }
            url = next.to_string();
            continue;
        }
        let body = resp.bytes().await.unwrap_or_default();
        if on_target {
            hops.push((request_id, hop.elapsed()));
        }
        let shows = |text: &str| {
            body.windows(text.len().max(1))
                .any(|w| w == text.as_bytes())
        };
        let error = if !status.is_success() {
            Some(format!("{status} at {}", redact(&url)))
        } else if !url.starts_with(target) || code.is_none() {
            // A page, but not the app's after a sign-in (the simulator's sign-in page, say).
            Some(format!("ended at {} without a sign-in", redact(&url)))
        } else if expect.is_some_and(|t| !shows(t)) {
            Some(format!(
                "{status} at {} is not the app's page",
                redact(&url)
            ))
        } else {
            None
        };
        return SignIn {
            wall: start.elapsed(),
            hops,
            code,
            error,
        };
    }
    SignIn {
        wall: start.elapsed(),
        hops,
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
                    hops: Vec::new(),
                    code: None,
                    error: Some(format!("client: {e}")),
                },
                reqwest::Client::new(),
            )
        }
    };
    // The user is signed in to Clever (as a student who opened the Clever Portal is): the
    // Instant Login link signs the browser in at the simulator and sends it to the app's
    // primary redirect URI, the gateway's callback, without a `state`. Not timed: no relying
    // party has been reached yet.
    let link = format!(
        "{}/oauth/instant-login?client_id={}&district_id={DISTRICT}&user={user}",
        args.sim, args.client_id
    );
    let callback = client
        .get(&link)
        .send()
        .await
        .ok()
        .filter(|r| r.status().is_redirection())
        .and_then(|r| {
            r.headers()
                .get("location")?
                .to_str()
                .ok()
                .map(str::to_string)
        });
    let Some(callback) = callback else {
        let error = Some("the Instant Login link did not redirect".to_string());
        let failed = SignIn {
            wall: Duration::ZERO,
            hops: Vec::new(),
            code: None,
            error,
        };
        return (failed, client);
    };
    // The gateway: the Clever-initiated sign-in goes on from its callback. A relying party
    // that starts sign-ins itself (mod_auth_openidc) is asked for the page instead; Clever
    // knows the browser, so its authorize answers at once with a code.
    let start = if args.mode == "gateway" {
        callback
    } else {
        format!("{}{}", args.target, args.path)
    };
    let result = follow(&client, start, &args.target, args.expect.as_deref()).await;
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
        let expect = args.expect.clone();
        browsers.spawn(async move {
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                let t = Instant::now();
                let ok = match client.get(&url).send().await {
                    Ok(r) => {
                        let success = r.status().is_success();
                        let body = r.bytes().await.unwrap_or_default();
                        success
                            && expect.as_deref().is_none_or(|t| {
                                body.windows(t.len().max(1)).any(|w| w == t.as_bytes())
                            })
                    }
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
    let cpu_at_browsing = args.pid.map(cpu_seconds);
    tokio::time::sleep(Duration::from_secs_f64(args.before)).await;

    // The storm: arrivals evenly spread over `over` seconds.
    let cpu_at_storm = args.pid.map(cpu_seconds);
    let waited_at_storm = args.pid.map(run_delay_seconds);
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
    let cpu_at_end = args.pid.map(cpu_seconds);
    let waited_at_end = args.pid.map(run_delay_seconds);
    // Browsing alone again, as long as before the storm: the browsing's CPU per page comes
    // from both windows (one 10 s window alone moved the sign-ins' CPU by a factor of two).
    tokio::time::sleep(Duration::from_secs_f64(args.before)).await;
    let cpu_after = args.pid.map(cpu_seconds);
    let after_end = Instant::now();
    stopped.store(true, std::sync::atomic::Ordering::SeqCst);
    while browsers.join_next().await.is_some() {}

    let stats: Value = control
        .get(format!("{}/_sim/stats", args.sim))
        .send()
        .await?
        .json()
        .await?;
    let delays = stats["delays_us"].as_object().cloned().unwrap_or_default();
    let browser_delays = stats["browser_delays_us"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut wall = Vec::new();
    let mut added = Vec::new();
    let mut added_at_target = Vec::new();
    let mut errors = Vec::new();
    let mut unmatched = 0;
    let mut hop_lines = String::new();
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
            Some(us) => {
                added.push(ms - us as f64 / 1e3);
                // The relying party's hops less Clever's time in its own calls (token
                // exchange, API): what the relying party added, without the browser's time at
                // Clever's authorize and between hops.
                let by_browser = r
                    .code
                    .as_ref()
                    .and_then(|c| browser_delays.get(c))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let server_side = us.saturating_sub(by_browser) as f64 / 1e3;
                let at_target: Duration = r.hops.iter().map(|(_, took)| *took).sum();
                added_at_target.push(at_target.as_secs_f64() * 1e3 - server_side);
                let hops: Vec<Value> = r
                    .hops
                    .iter()
                    .map(|(id, d)| json!({"request_id": id, "ms": d.as_secs_f64() * 1e3}))
                    .collect();
                let line = json!({"clever_ms": server_side, "hops": hops});
                hop_lines.push_str(&format!("{line}\n"));
            }
            None => unmatched += 1,
        }
    }
    if let Some(path) = &args.hops_out {
        std::fs::write(path, hop_lines)?;
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
    // The sign-ins' CPU: the storm's, less what its pages cost at the CPU per page measured
    // browsing alone before and after it (per page, not per second: under the storm the
    // browsers load fewer pages a second).
    let pages = |from: Instant, to: Instant| {
        loads
            .iter()
            .filter(|(t, _, _)| *t >= from && *t < to)
            .count() as f64
    };
    let pages_alone = pages(before_start, storm_start) + pages(storm_end, after_end);
    let pages_during = pages(storm_start, storm_end);
    let cpu = match (
        args.pid,
        cpu_at_browsing,
        cpu_at_storm,
        cpu_at_end,
        cpu_after,
    ) {
        (Some(pid), Some(b), Some(s), Some(e), Some(a)) => {
            let browsing_rate = ((s - b) + (a - e)) / (2.0 * args.before);
            let per_page = ((s - b) + (a - e)) / pages_alone.max(1.0);
            let signin_cpu = (e - s) - per_page * pages_during;
            json!({
                "storm_cpu_s": e - s,
                "browsing_cpu_per_s": browsing_rate,
                "browsing_cpu_us_per_page": per_page * 1e6,
                "pages_during_storm": pages_during,
                "signin_cpu_s": signin_cpu,
                "cpu_ms_per_signin": signin_cpu * 1e3 / wall.len().max(1) as f64,
                "signins_per_cpu_s": wall.len() as f64 / signin_cpu.max(1e-9),
                "peak_rss_kib": peak_rss_kib(pid),
                // Its threads' time runnable but without a CPU during the storm.
                "run_queue_wait_s": waited_at_end.zip(waited_at_storm).map(|(e, s)| e - s),
            })
        }
        _ => Value::Null,
    };
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
        "added_at_target": summary(added_at_target),
        "unmatched_codes": unmatched,
        "browsing_users": args.browsing,
        "browsing_before": window(before_start, storm_start),
        "browsing_during": window(storm_start, storm_end),
        "cpu": cpu,
        "sim": {
            "listeners": stats["listeners"],
            "peak_in_flight": stats["peak_in_flight"],
        },
    }))
}
