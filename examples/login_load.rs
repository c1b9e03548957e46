//! Login load for `bench/run.sh`: full sign-ins through a running gateway and the simulator
//! (`examples/sim_server.rs`, with auto-login), and the gateway process's CPU time per login.
//!
//! ```sh
//! cargo run --release --example login_load -- GATEWAY_URL GATEWAY_PID [COUNT] [CONCURRENCY]
//! ```
//!
//! Each login is what a browser does: `/_gateway/login?rd=/` (302 to Clever, the sign-in's
//! login cookie), the simulator's authorize (302 back with a code), the callback with the login
//! cookie (code exchange, `/me`, `/users/{id}`, new session, `Set-Cookie`). Prints one line:
//! `logins=N seconds=S logins_per_s=R gateway_cpu_us_per_login=U`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_comm = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `f[0]` is field 3.
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks as f64 / hz)
}

fn location(r: &reqwest::Response) -> anyhow::Result<String> {
    Ok(r.headers()
        .get("location")
        .context("no Location")?
        .to_str()?
        .to_string())
}

/// The `name=value` of the first `Set-Cookie` whose name starts with `stem`.
fn cookie_pair(r: &reqwest::Response, stem: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| {
            v.split_once('=')
                .is_some_and(|(name, _)| name.starts_with(stem))
        })
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

async fn login(client: &reqwest::Client, gw: &str) -> anyhow::Result<()> {
    let r = client
        .get(format!("{gw}/_gateway/login?rd=/"))
        .send()
        .await?;
    if r.status() != 302 {
        bail!("login start: {}", r.status());
    }
    // `__Host-`/`__Secure-` prefixed when the gateway sets Secure cookies.
    let binding = cookie_pair(&r, "clever_gateway_login_")
        .or_else(|| cookie_pair(&r, "__Host-clever_gateway_login_"))
        .or_else(|| cookie_pair(&r, "__Secure-clever_gateway_login_"))
        .context("no login cookie")?;
    let r = client.get(location(&r)?).send().await?;
    if r.status() != 302 {
        bail!("authorize: {}", r.status());
    }
    let callback = location(&r)?;
    let r = client
        .get(&callback)
        .header("cookie", binding)
        .send()
        .await?;
    let session = cookie_pair(&r, "clever_gateway").filter(|p| p.starts_with("clever_gateway="));
    if r.status() != 302 || session.is_none() {
        bail!("callback: {}", r.status());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (gw, pid) = match (args.first(), args.get(1)) {
        (Some(g), Some(p)) => (g.trim_end_matches('/').to_string(), p.parse::<u32>()?),
        _ => bail!("usage: login_load GATEWAY_URL GATEWAY_PID [COUNT] [CONCURRENCY]"),
    };
    let count: usize = args.get(2).map_or(Ok(2000), |s| s.parse())?;
    let conc: usize = args.get(3).map_or(Ok(8), |s| s.parse())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .default_headers({
                let mut h = reqwest::header::HeaderMap::new();
                h.insert("accept", "text/html".parse()?);
                h
            })
            .build()?;
        for _ in 0..20 {
            login(&client, &gw).await?;
        }
        let cpu0 = cpu_seconds(pid)?;
        let t0 = Instant::now();
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..conc {
            let (client, gw, next) = (client.clone(), gw.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                    login(&client, &gw).await?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds(pid)? - cpu0;
        println!(
            "logins={count} seconds={secs:.2} logins_per_s={:.0} gateway_cpu_us_per_login={:.0}",
            count as f64 / secs,
            cpu * 1e6 / count as f64
        );
        anyhow::Ok(())
    })
}
