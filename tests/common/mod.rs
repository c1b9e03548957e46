//! Test harness: the Clever simulator in-process, a recording upstream, and the real
//! `clever-gateway` binary started on an ephemeral port with a generated gateway.toml.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use clever_gateway::sim::{SimConfig, SimHandle};

pub const SECRET_ENV: &str = "CLEVER_GATEWAY_TEST_SECRET";

/// Demo users from the simulator, by role (ids are fixed in `sim::demo_users`).
pub fn user_with_roles(roles: &[&str]) -> String {
    clever_gateway::sim::demo_users()
        .into_iter()
        .find(|u| {
            let mut r: Vec<&str> = u.role_types().iter().map(|t| t.as_str()).collect();
            r.sort();
            let mut want = roles.to_vec();
            want.sort();
            r == want
        })
        .map(|u| u.id)
        .expect("demo user with these roles")
}

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
}

/// Serves one HTTP/1 connection: records every request into `rec` and answers 200 `body`.
pub async fn serve_recorded<I>(io: I, rec: Arc<Mutex<Vec<Seen>>>, body: &'static [u8])
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
        let rec = rec.clone();
        async move {
            rec.lock().unwrap().push(Seen {
                method: req.method().to_string(),
                uri: req.uri().to_string(),
                headers: req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
                    .collect(),
            });
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(body))))
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// A test upstream that records every request and answers 200 "upstream ok".
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let rec = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve_recorded(stream, rec.clone(), b"upstream ok"));
            }
        });
        Upstream { addr, seen }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.requests()
            .last()
            .cloned()
            .expect("upstream saw a request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// A free loopback port, bound then released, never handed out twice by this process, and below
/// the kernel's ephemeral range: a port the kernel hands out for `:0` is also where it picks the
/// source port of every outgoing connection, so one of the tests' own clients could take it
/// before the gateway binds it (seen in CI). Another process may still take it;
/// [`on_a_free_port`] starts again on another one then.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let range = 10_000..ephemeral_low.max(10_001);
    let mut given = GIVEN.lock().unwrap();
    for _ in 0..10_000 {
        let port = rand::random_range(range.clone());
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real gateway binary, running with a generated config.
pub struct Gateway {
    pub port: u16,
    pub child: Child,
    pub log_path: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a gateway test needs.
pub struct Env {
    pub sim: SimHandle,
    pub app: Upstream,
    pub gw: Gateway,
}

/// The simulator with auto-login of `user`, and its config for the gateway's port.
pub async fn sim_for(port: u16, user: Option<&str>) -> SimHandle {
    let cfg = SimConfig::new(vec![format!(
        "http://127.0.0.1:{port}/oauth/clever/callback"
    )]);
    let sim = SimHandle::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap();
    sim.set_auto_login(user);
    sim
}

/// `[clever]` and `[session]` tables pointing at the simulator; `extra_session` lines are
/// added to `[session]`.
pub fn base_config(port: u16, sim: &SimHandle, extra_session: &str) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:{port}"]
threads = 2

[clever]
client_id = "{cid}"
client_secret_env = "{SECRET_ENV}"
redirect_uri = "http://127.0.0.1:{port}/oauth/clever/callback"
authorize_url = "{base}/oauth/authorize"
token_url = "{base}/oauth/tokens"
api_base = "{base}"
timeout = "4s"

[session]
cookie_secure = false
{extra_session}
"#,
        cid = sim.client_id(),
        base = sim.base_url(),
    )
}

/// Starts the gateway binary with `config` and waits until it answers.
pub async fn start_gateway(port: u16, config: &str, secret: &str) -> Gateway {
    start_gateway_env(port, config, secret, &[]).await
}

/// As [`start_gateway`], with more environment variables for the process.
pub async fn start_gateway_env(
    port: u16,
    config: &str,
    secret: &str,
    env: &[(&str, &str)],
) -> Gateway {
    try_start_gateway_env(port, config, secret, env)
        .await
        .unwrap_or_else(|taken| panic!("{taken}"))
}

/// The gateway exited at start because an address of its config was in use: with a port from
/// [`free_port`], another process took it in between. Holds the gateway's log.
#[derive(Debug)]
pub struct PortTaken(pub String);

impl std::fmt::Display for PortTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a port of the gateway's config was taken by another process before the gateway \
             bound it (free-port race; `on_a_free_port` starts again on another):\n{}",
            self.0
        )
    }
}

/// Whether a gateway's log says it exited because one of its addresses was in use.
pub fn port_taken(logs: &str) -> bool {
    let in_use = std::io::Error::from_raw_os_error(libc::EADDRINUSE).to_string();
    logs.lines()
        .any(|l| l.contains("cannot listen on ") && l.contains(&in_use))
}

/// As [`start_gateway_env`], but a gateway that exits because its port was taken is an `Err`,
/// not a panic. Waits for `/_gateway/healthz` to answer `ok` from this very process: the pid
/// file it writes once its listeners are bound names it (on a port taken by another process,
/// that process could be what answers).
pub async fn try_start_gateway_env(
    port: u16,
    config: &str,
    secret: &str,
    env: &[(&str, &str)],
) -> Result<Gateway, PortTaken> {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("gateway.toml");
    // The pid file and upgrade socket in the test's own directory, not the shared default one.
    let (config, pid_file) = if config.contains("pid_file") {
        (config.to_owned(), None)
    } else {
        let pid_file = dir.path().join("gw.pid");
        let config = config.replacen(
            "[server]\n",
            &format!(
                "[server]\npid_file = \"{}\"\nupgrade_sock = \"{}\"\n",
                pid_file.display(),
                dir.path().join("gw.sock").display()
            ),
            1,
        );
        (config, Some(pid_file))
    };
    std::fs::write(&cfg_path, config).unwrap();
    let log_path = dir.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_clever-gateway"))
        .args(["run", "--config"])
        .arg(&cfg_path)
        .env(SECRET_ENV, secret)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn clever-gateway");
    let mut gw = Gateway {
        port,
        child,
        log_path,
        dir,
    };
    let ours = |gw: &Gateway| match &pid_file {
        Some(p) => std::fs::read_to_string(p).is_ok_and(|s| s.trim() == gw.child.id().to_string()),
        None => true,
    };
    // A timeout per probe: a process that took the port may accept and never answer.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Probe only once the pid file names our child (written after it bound its listeners):
        // until then the port may belong to another test's server (an upstream that the kernel
        // gave the port `free_port` released), which must not see this test's probes.
        if ours(&gw) {
            if let Ok(r) = client.get(gw.url("/_gateway/healthz")).send().await {
                if r.status() == 200 && r.text().await.is_ok_and(|t| t == "ok\n") {
                    break;
                }
            }
        }
        if !gw.is_running() {
            let logs = gw.logs();
            if port_taken(&logs) {
                return Err(PortTaken(logs));
            }
            panic!("gateway exited early:\n{logs}");
        }
        assert!(
            Instant::now() < deadline,
            "gateway did not start:\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(gw)
}

/// Runs `start` on a port from [`free_port`], and again on another one (three tries) when the
/// gateway found it taken: `start` builds everything that names the port (simulator, config).
pub async fn on_a_free_port<T>(mut start: impl AsyncFnMut(u16) -> Result<T, PortTaken>) -> T {
    const TRIES: usize = 3;
    for _ in 1..TRIES {
        let port = free_port();
        match start(port).await {
            Ok(t) => return t,
            Err(taken) => eprintln!("port {port}: {taken}\ntrying another port"),
        }
    }
    let port = free_port();
    start(port)
        .await
        .unwrap_or_else(|taken| panic!("port {port}, try {TRIES}: {taken}"))
}

/// Simulator + recording upstream + gateway with one upstream table built from `upstream_extra`
/// (lines added to the `[[upstream]]` table) and `tail` (more tables).
pub async fn env_with(user: Option<&str>, upstream_extra: &str, tail: &str) -> Env {
    on_a_free_port(async |port| {
        let sim = sim_for(port, user).await;
        let app = Upstream::start().await;
        let cfg = format!(
            "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n{}\n{}",
            base_config(port, &sim, ""),
            app.addr,
            upstream_extra,
            tail
        );
        let gw = try_start_gateway_env(port, &cfg, sim.client_secret(), &[]).await?;
        Ok(Env { sim, app, gw })
    })
    .await
}

/// A browser-like client: keeps cookies, does not follow redirects, asks for HTML.
pub fn browser() -> reqwest::Client {
    browser_builder().cookie_store(true).build().unwrap()
}

/// The same browser with a cookie jar the test can see and fill (as an app's `Set-Cookie`s
/// would).
pub fn browser_with(jar: &Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    browser_builder()
        .cookie_provider(jar.clone())
        .build()
        .unwrap()
}

fn browser_builder() -> reqwest::ClientBuilder {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::ACCEPT,
        "text/html,application/xhtml+xml".parse().unwrap(),
    );
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(h)
}

/// Follows redirects by hand (at most 10), returning the final response and every URL visited.
pub async fn follow(client: &reqwest::Client, url: &str) -> (reqwest::Response, Vec<String>) {
    let mut visited = vec![url.to_string()];
    let mut resp = client.get(url).send().await.unwrap();
    for _ in 0..10 {
        if !resp.status().is_redirection() {
            break;
        }
        let loc = resp.headers()["location"].to_str().unwrap().to_string();
        let next = resp.url().join(&loc).unwrap().to_string();
        visited.push(next.clone());
        resp = client.get(&next).send().await.unwrap();
    }
    (resp, visited)
}

/// The `Location` of a redirect.
pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()["location"].to_str().unwrap().to_string()
}

/// Visits `url` (which must send the browser to Clever) and lets the simulator answer:
/// returns the callback URL Clever sends the browser back to.
pub async fn callback_for(client: &reqwest::Client, url: &str) -> String {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 302, "{url} redirects to Clever");
    let a = client.get(location(&r)).send().await.unwrap();
    location(&a)
}

/// Signs the browser in through the simulator by visiting `path` on the gateway.
pub async fn sign_in(env: &Env, client: &reqwest::Client, path: &str) -> reqwest::Response {
    let (resp, visited) = follow(client, &env.gw.url(path)).await;
    assert!(
        visited.iter().any(|u| u.contains("/oauth/clever/callback")),
        "login went through the callback: {visited:?}"
    );
    resp
}

/// Signs the browser `client` out the way the gateway's sign-out button does: a form POST to
/// `/_gateway/logout` from the gateway's own origin.
pub async fn sign_out(env: &Env, client: &reqwest::Client) -> reqwest::Response {
    client
        .post(env.gw.url("/_gateway/logout"))
        .header("origin", env.gw.url(""))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap()
}

/// The session cookie value the client holds for the gateway, read from a Set-Cookie.
pub fn set_cookie_value(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            v[name.len() + 1..]
                .split(';')
                .next()
                .unwrap_or("")
                .to_string()
        })
}

/// The first sign-in (login) cookie a response sets, as `(name, value, whole Set-Cookie line)`:
/// one per sign-in, named `[__Host-|__Secure-]clever_gateway_login_<tag>` (a gateway before
/// per-sign-in cookies set one `clever_gateway_login`).
pub fn login_cookie(resp: &reqwest::Response) -> Option<(String, String, String)> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| {
            let (name, rest) = line.split_once('=')?;
            let bare = name
                .strip_prefix("__Host-")
                .or_else(|| name.strip_prefix("__Secure-"))
                .unwrap_or(name);
            let value = rest.split(';').next().unwrap_or("");
            let ours = bare == "clever_gateway_login" || bare.starts_with("clever_gateway_login_");
            (ours && !value.is_empty())
                .then(|| (name.to_string(), value.to_string(), line.to_string()))
        })
}

/// Sends raw bytes to the gateway and returns what it answered (until close or 3 s).
pub async fn raw(port: u16, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// The status code of a raw HTTP/1.1 answer (0 when there was none).
pub fn raw_status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The `Cookie` header for a signed-in session of `client`, made by a fresh login.
pub async fn session_cookie(env: &Env, client: &reqwest::Client) -> String {
    let cb = callback_for(client, &env.gw.url("/_gateway/login?rd=/")).await;
    let done = client.get(&cb).send().await.unwrap();
    format!(
        "clever_gateway={}",
        set_cookie_value(&done, "clever_gateway").expect("session cookie")
    )
}

/// `clever-gateway demo --port <port>` (with `env`) whose stdout and stderr are drained for
/// its life, so it never blocks on a full pipe: stdout lines arrive on the receiver (the
/// banner), and everything it printed collects in the shared string (for failure messages).
pub fn spawn_demo(
    port: u16,
    env: &[(&str, &str)],
) -> (Child, std::sync::mpsc::Receiver<String>, Arc<Mutex<String>>) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_clever-gateway"))
        .args(["demo", "--port", &port.to_string()])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn clever-gateway demo");
    let output: Arc<Mutex<String>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out = child.stdout.take().unwrap();
    let sink = output.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = tx.send(line);
        }
    });
    let mut err = child.stderr.take().unwrap();
    let sink = output.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, rx, output)
}
