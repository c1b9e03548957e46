//! Just enough W3C WebDriver for `tests/browser.rs`: finds Chromium and chromedriver, runs
//! chromedriver on a free loopback port, and speaks the dozen WebDriver commands the test needs
//! over the reqwest client the other tests already use (no extra crates).
//!
//! Cleanup: chromedriver runs in a process group of its own, and Chromium (with its helper
//! processes) inherits it; dropping [`ChromeDriver`] kills that whole group, so a failing test
//! leaves no browser behind. [`Session::quit`] is the graceful path.
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Overrides the chromedriver executable (default: `chromedriver` on `PATH`).
pub const DRIVER_ENV: &str = "CLEVER_GATEWAY_CHROMEDRIVER";
/// Overrides the Chromium executable (default: `chromium` on `PATH`).
pub const CHROMIUM_ENV: &str = "CLEVER_GATEWAY_CHROMIUM";

/// How long any one wait (driver start, page load, an element to appear) may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The element reference key of W3C WebDriver.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium's command line: headless, nothing that reaches for the network on its own (this
/// machine's network is closed, and the test only ever talks to 127.0.0.1).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--window-size=1024,768",
];

/// The two executables the browser test needs.
#[derive(Debug, Clone)]
pub struct Tools {
    pub chromedriver: PathBuf,
    pub chromium: PathBuf,
}

impl Tools {
    /// Both executables, or why the browser test cannot run here.
    pub fn find() -> Result<Tools, String> {
        let chromedriver = executable(DRIVER_ENV, "chromedriver")?;
        let chromium = executable(CHROMIUM_ENV, "chromium")?;
        Ok(Tools {
            chromedriver,
            chromium,
        })
    }
}

/// `$env` if set (it must name an executable file), else `name` on `PATH`.
fn executable(env: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!(
                "{env}={} is not an executable file",
                path.display()
            ))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| format!("`{name}` not found on PATH (and {env} is not set)"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(DEADLINE)
        .build()
        .expect("reqwest client")
}

/// A WebDriver error: the W3C `error` code and message (or a transport failure).
#[derive(Debug, Clone)]
pub struct WdError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// One WebDriver command: `{"value": …}` on success, the W3C error object otherwise.
async fn command(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, WdError> {
    let mut req = http.request(method, url);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let transport = |e: reqwest::Error| WdError {
        error: "transport".into(),
        message: format!("{url}: {e}"),
    };
    let resp = req.send().await.map_err(transport)?;
    let status = resp.status();
    let mut body: Value = resp.json().await.map_err(transport)?;
    let value = body
        .get_mut("value")
        .map(Value::take)
        .unwrap_or(Value::Null);
    if status.is_success() {
        Ok(value)
    } else {
        Err(WdError {
            error: value["error"].as_str().unwrap_or("unknown error").into(),
            message: format!(
                "HTTP {status}: {}",
                value["message"].as_str().unwrap_or_default()
            ),
        })
    }
}

/// chromedriver on a free loopback port; its process group is killed on drop.
pub struct ChromeDriver {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group id is the child's pid (`process_group(0)`); Chromium and its helpers are in
        // it too. Only this group is signalled.
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is
            // involved.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChromeDriver {
    /// Starts chromedriver (logging to `dir/chromedriver.log`) and waits until it is ready.
    /// Chromium's profile, config and cache go under `dir` too.
    pub async fn start(tools: &Tools, dir: &Path) -> ChromeDriver {
        let log = dir.join("chromedriver.log");
        let mut last = String::new();
        // The port is free when picked; another process could take it before chromedriver
        // binds it, so try a few.
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(&tools.chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                // Chromium writes its crash database and caches under these, not under $HOME.
                .env("XDG_CONFIG_HOME", dir.join("config"))
                .env("XDG_CACHE_HOME", dir.join("cache"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", tools.chromedriver.display()));
            let mut driver = ChromeDriver {
                child,
                base: format!("http://127.0.0.1:{port}"),
                log: log.clone(),
                http: http_client(),
            };
            match driver.wait_ready().await {
                Ok(()) => return driver,
                Err(e) => last = e,
            }
        }
        panic!("chromedriver did not start: {last}");
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + DEADLINE;
        let status = format!("{}/status", self.base);
        loop {
            if let Ok(v) = command(&self.http, reqwest::Method::GET, &status, None).await {
                if v["ready"] == true {
                    return Ok(());
                }
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut err);
                }
                return Err(format!("exited with {exit}: {err}\n{}", self.log_tail()));
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {DEADLINE:?}\n{}", self.log_tail()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The end of chromedriver's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- chromedriver log ({}) ---\n{}",
            self.log.display(),
            lines[from..].join("\n")
        )
    }

    /// A new browser: Chromium with a fresh, empty profile in `profile`.
    pub async fn session(&self, chromium: &Path, profile: &Path) -> Session {
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": {
                        "pageLoad": DEADLINE.as_millis() as u64,
                        "script": 10_000,
                        "implicit": 0
                    },
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": args
                    }
                }
            }
        });
        let created = command(
            &self.http,
            reqwest::Method::POST,
            &format!("{}/session", self.base),
            Some(caps),
        )
        .await
        .unwrap_or_else(|e| panic!("new WebDriver session: {e}\n{}", self.log_tail()));
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {created}"));
        Session {
            http: self.http.clone(),
            base: format!("{}/session/{id}", self.base),
            browser_version: created["capabilities"]["browserVersion"]
                .as_str()
                .unwrap_or("?")
                .to_string(),
        }
    }
}

/// A found element (its WebDriver reference).
#[derive(Debug, Clone)]
pub struct Element(String);

/// One browser (a WebDriver session).
pub struct Session {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    base: String,
    pub browser_version: String,
}

impl Session {
    async fn cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WdError> {
        command(&self.http, method, &format!("{}{path}", self.base), body).await
    }

    async fn get(&self, path: &str) -> Value {
        self.cmd(reqwest::Method::GET, path, None)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Navigates and waits for the load (at most [`DEADLINE`]).
    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    pub async fn current_url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn title(&self) -> String {
        self.get("/title")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching `xpath`, if any (no waiting).
    pub async fn find(&self, xpath: &str) -> Result<Option<Element>, WdError> {
        let found = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "xpath", "value": xpath })),
            )
            .await;
        match found {
            Ok(v) => Ok(Some(Element(
                v[ELEMENT_KEY]
                    .as_str()
                    .ok_or_else(|| WdError {
                        error: "bad reply".into(),
                        message: v.to_string(),
                    })?
                    .to_string(),
            ))),
            Err(e) if e.error == "no such element" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Polls until an element matches `xpath` and `ok(url)` holds for the current URL, for at
    /// most [`DEADLINE`]; panics with the page's URL, title and text otherwise.
    pub async fn wait_for(&self, what: &str, xpath: &str, ok: impl Fn(&str) -> bool) -> Element {
        let deadline = Instant::now() + DEADLINE;
        let mut last_error = None;
        loop {
            let url = self.cmd(reqwest::Method::GET, "/url", None).await;
            match url {
                Ok(Value::String(url)) if ok(&url) => match self.find(xpath).await {
                    Ok(Some(el)) => return el,
                    Ok(None) => {}
                    Err(e) => last_error = Some(e),
                },
                Ok(_) => {}
                // Between two pages, commands may fail for a moment.
                Err(e) => last_error = Some(e),
            }
            if Instant::now() > deadline {
                let url = self.current_url().await;
                let title = self.title().await;
                let text = self.body_text().await;
                panic!(
                    "{what}: not there after {DEADLINE:?} ({xpath}); last error: {last_error:?}\n\
                     url: {url}\ntitle: {title}\n--- page text ---\n{text}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, el: &Element) {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/click", el.0),
            Some(json!({})),
        )
        .await
        .unwrap_or_else(|e| panic!("click: {e}"));
    }

    /// The element's rendered text (what a person sees).
    pub async fn text(&self, el: &Element) -> String {
        self.get(&format!("/element/{}/text", el.0))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn execute(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
        .unwrap_or_else(|e| panic!("execute {script:?}: {e}"))
    }

    /// `document.body.innerText`, or "" between pages.
    pub async fn body_text(&self) -> String {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": "return document.body ? document.body.innerText : ''", "args": [] })),
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
    }

    /// Every cookie the browser would send to the current page, as the browser stores it
    /// (`name`, `value`, `path`, `domain`, `secure`, `httpOnly`, `sameSite`, `expiry`).
    pub async fn cookies(&self) -> Vec<Value> {
        match self.get("/cookie").await {
            Value::Array(all) => all,
            other => panic!("cookies: {other}"),
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let b64 = self.get("/screenshot").await;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("screenshot is base64")
    }

    /// Closes the browser (the graceful way; dropping the driver kills it anyway).
    pub async fn quit(self) {
        let _ = self.cmd(reqwest::Method::DELETE, "", None).await;
    }
}
