//! A real browser through `clever-gateway demo`: headless Chromium, driven over WebDriver by
//! chromedriver, signs in on the simulator's page by clicking a user, lands on the sample app,
//! and the test checks what the browser shows and which cookie it keeps.
//!
//! Needs Chromium and chromedriver (Debian's `chromium` and `chromium-driver`; `./.ci/run`
//! installs them). Without them each test prints why it is skipped, on stderr (not captured by
//! the test harness), and passes. `CLEVER_GATEWAY_CHROMIUM` and `CLEVER_GATEWAY_CHROMEDRIVER`
//! override where they are looked for.

mod common;
mod webdriver;

use std::io::Write;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clever_gateway::identity::UserType;
use clever_gateway::sim::{demo_users, SimUser, DEMO_DISTRICT};
use webdriver::{ChromeDriver, Session, Tools, DEADLINE};

/// The demo's session cookie (`session.cookie_name`, default).
const SESSION_COOKIE: &str = "clever_gateway";

/// A line on the real stderr: shown by `cargo test` even for a passing test.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The browser tools, or `None` after saying why the test is skipped.
fn tools_or_skip(test: &str) -> Option<Tools> {
    match Tools::find() {
        Ok(tools) => Some(tools),
        Err(why) => {
            note(&format!(
                "SKIPPED {test}: no headless browser: {why}. Install Debian's `chromium` and \
                 `chromium-driver` (./.ci/run does, as root) to run this test."
            ));
            None
        }
    }
}

/// A running `clever-gateway demo`; killed (and reaped) on drop.
struct Demo {
    child: Child,
    /// `http://127.0.0.1:PORT`, as printed.
    gateway: String,
    /// The simulator's base URL, as printed.
    sim: String,
    output: Arc<Mutex<String>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    /// Starts `clever-gateway demo --port <free port>`, reads the URLs from its banner and
    /// waits until the gateway answers.
    async fn start() -> Demo {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let (child, rx, output) = common::spawn_demo(port, &[]);

        let mut demo = Demo {
            child,
            gateway: String::new(),
            sim: String::new(),
            output,
        };
        // "Open  http://127.0.0.1:PORT/ …", later "Clever simulator: URL   sample app: URL".
        let deadline = Instant::now() + DEADLINE;
        while demo.sim.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("demo banner ({e:?}):\n{}", demo.output()));
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() == Some(&"Open") && demo.gateway.is_empty() {
                demo.gateway = words[1].trim_end_matches('/').to_string();
            }
            if let Some(i) = words.iter().position(|w| *w == "simulator:") {
                demo.sim = words[i + 1].trim_end_matches('/').to_string();
            }
        }
        assert!(
            demo.gateway.starts_with("http://127.0.0.1:")
                && demo.sim.starts_with("http://127.0.0.1:"),
            "loopback URLs in the banner:\n{}",
            demo.output()
        );

        // The banner comes before the gateway listens: poll until it answers.
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        loop {
            if let Ok(r) = client.get(demo.url("/_gateway/healthz")).send().await {
                if r.status() == 200 {
                    return demo;
                }
            }
            assert!(
                matches!(demo.child.try_wait(), Ok(None)),
                "demo exited early:\n{}",
                demo.output()
            );
            assert!(
                Instant::now() < deadline,
                "demo gateway did not answer:\n{}",
                demo.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.gateway, path)
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

/// Everything one browser test needs. Fields drop in declaration order: the driver (killing
/// Chromium with it) before the temp dir holding the profile, the demo last.
struct Rig {
    browser: Session,
    chromium_version: String,
    driver: ChromeDriver,
    dir: tempfile::TempDir,
    demo: Demo,
}

impl Rig {
    async fn start() -> Option<Rig> {
        let tools = tools_or_skip(&current_test())?;
        let demo = Demo::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let driver = ChromeDriver::start(&tools, dir.path()).await;
        let browser = driver
            .session(&tools.chromium, &dir.path().join("profile"))
            .await;
        Some(Rig {
            chromium_version: browser.browser_version.clone(),
            browser,
            driver,
            dir,
            demo,
        })
    }

    /// From "no session" at `path` through the simulator's sign-in page, clicking `user`'s
    /// button (found by the name on it), back to `path` on the gateway.
    async fn sign_in(&self, path: &str, user: &SimUser) {
        let (b, demo) = (&self.browser, &self.demo);
        b.goto(&demo.url(path)).await;
        let name = user.full_name();
        assert!(!name.contains('\''), "{name} fits in an XPath literal");
        let authorize = format!("{}/oauth/authorize?", demo.sim);
        let button = b
            .wait_for(
                "the simulator's sign-in page",
                &format!("//form//button[@name='user'][.//strong[normalize-space()='{name}']]"),
                |url| url.starts_with(&authorize),
            )
            .await;
        b.click(&button).await;
        let back = demo.url(path);
        b.wait_for(
            "back on the gateway after signing in",
            "//body//h1",
            |url| url == back,
        )
        .await;
    }

    /// The value cell of the sample app's row for `header` (e.g. `x-clever-user-id`), as
    /// rendered.
    async fn identity_cell(&self, header: &str) -> String {
        let row = format!("//tr[td/code[normalize-space()='{header}']]/td[1]");
        match self.browser.find(&row).await {
            Ok(Some(cell)) => self.browser.text(&cell).await,
            other => panic!(
                "no {header} row ({other:?}):\n{}",
                self.browser.body_text().await
            ),
        }
    }

    /// The cookie the browser keeps for the current page under `name`.
    async fn cookie(&self, name: &str) -> serde_json::Value {
        let all = self.browser.cookies().await;
        all.iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} cookie in the browser: {all:?}"))
    }

    /// Ends the browser the graceful way (the driver's drop would kill it anyway).
    async fn finish(self) {
        let Rig {
            browser,
            driver,
            dir,
            demo,
            ..
        } = self;
        browser.quit().await;
        drop((driver, dir, demo));
    }
}

fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("browser test")
        .to_string()
}

/// The demo user with exactly `roles` in the main demo district.
fn demo_user(roles: &[UserType]) -> SimUser {
    demo_users()
        .into_iter()
        .find(|u| u.role_types() == roles && u.district.as_deref() == Some(DEMO_DISTRICT))
        .expect("demo user with these roles")
}

#[tokio::test]
async fn browser_teacher_signs_in_and_session_cookie_is_httponly_samesite_lax() {
    let started = Instant::now();
    let Some(rig) = Rig::start().await else {
        return;
    };
    let teacher = demo_user(&[UserType::Teacher]);
    assert_eq!(teacher.full_name(), "Maria Lopez");

    rig.sign_in("/", &teacher).await;
    let b = &rig.browser;

    // (a) The signed-in page shows who signed in, as the browser renders it.
    assert_eq!(
        b.title().await,
        "Sample school app — this is what the gateway told me"
    );
    assert_eq!(rig.identity_cell("x-clever-user-id").await, teacher.id);
    assert_eq!(rig.identity_cell("x-clever-user-type").await, "teacher");
    assert_eq!(
        rig.identity_cell("x-clever-district-id").await,
        DEMO_DISTRICT
    );
    assert_eq!(rig.identity_cell("x-clever-name").await, "Maria Lopez");

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("teacher-signed-in.png");
    let png = b.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(&shot, &png).unwrap();
    note(&format!(
        "browser test: Chromium {}; screenshot of the signed-in page: {}",
        rig.chromium_version,
        shot.display()
    ));

    // (b) The session cookie as the browser stores it: HttpOnly, SameSite=Lax, whole site, and
    // not Secure (the demo is plain HTTP on loopback, `cookie_secure = false`).
    let session = rig.cookie(SESSION_COOKIE).await;
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Lax", "{session}");
    assert_eq!(session["secure"], false, "{session}");
    assert_eq!(session["path"], "/", "{session}");
    assert_eq!(session["domain"], "127.0.0.1", "host-only: {session}");
    assert!(
        session["value"].as_str().is_some_and(|v| v.len() >= 32),
        "{session}"
    );
    // HttpOnly, seen from the page: its scripts cannot read any of the gateway's cookies.
    let script_cookies = b.execute("return document.cookie").await;
    assert!(
        !script_cookies
            .as_str()
            .unwrap_or_default()
            .contains(SESSION_COOKIE),
        "document.cookie shows the gateway's cookie: {script_cookies}"
    );
    // So is every other cookie of the gateway's the browser holds (the 10-minute login-binding
    // cookie stays, by design, for logins in other tabs).
    for c in b.cookies().await {
        let name = c["name"].as_str().unwrap_or_default();
        if name.starts_with(SESSION_COOKIE) {
            assert_eq!(c["httpOnly"], true, "{c}");
            assert_eq!(c["sameSite"], "Lax", "{c}");
        }
    }

    // The browser sends it: /_gateway/me answers with the teacher's identity.
    b.goto(&rig.demo.url("/_gateway/me")).await;
    let me: serde_json::Value = serde_json::from_str(&b.body_text().await).expect("JSON");
    assert_eq!(me["user_id"], teacher.id.as_str(), "{me}");
    assert_eq!(me["user_types"], serde_json::json!(["teacher"]), "{me}");

    note(&format!(
        "browser test: demo, chromedriver and Chromium started, teacher signed in and checked in {:.1?}",
        started.elapsed()
    ));
    rig.finish().await;
}

#[tokio::test]
async fn browser_student_sees_decoded_name_and_is_refused_on_staff_route() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    let student = demo_user(&[UserType::Student]);
    assert_eq!(student.full_name(), "José Ñúñez");

    // Starting at the staff-only route: after signing in the browser is sent back there, and
    // the gateway refuses the student with its own page.
    rig.sign_in("/staff/", &student).await;
    let b = &rig.browser;
    assert_eq!(b.title().await, "Access denied");
    let text = b.body_text().await;
    assert!(text.contains("Error 403"), "{text}");
    assert!(text.contains("Sign out"), "{text}");
    assert!(!text.contains("Sample school app"), "{text}");

    // The rest of the app lets the student in; the non-ASCII name (sent RFC 8187-encoded)
    // is shown decoded.
    b.goto(&rig.demo.url("/")).await;
    b.wait_for(
        "the sample app",
        "//h1[normalize-space()='Sample school app']",
        |_| true,
    )
    .await;
    assert_eq!(rig.identity_cell("x-clever-user-id").await, student.id);
    assert_eq!(rig.identity_cell("x-clever-user-type").await, "student");
    let name = rig.identity_cell("x-clever-name").await;
    assert_eq!(
        name.lines().next(),
        Some("José Luis Ñúñez"),
        "decoded name first: {name:?}"
    );
    let session = rig.cookie(SESSION_COOKIE).await;
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Lax", "{session}");

    // The 403 page's Sign out button: a form POST from the gateway's own page, which the
    // gateway answers with a redirect to the demo's logout_redirect, the simulator's sign-out
    // page on another origin (the page's CSP form-action must allow it).
    b.goto(&rig.demo.url("/staff/")).await;
    let button = b
        .wait_for(
            "the 403 page's sign-out button",
            "//form[@method='post'][@action='/_gateway/logout']//button",
            |_| true,
        )
        .await;
    b.click(&button).await;
    let sim_logout = format!("{}/oauth/logout?", rig.demo.sim);
    b.wait_for(
        "the simulator's sign-out page",
        "//h1[normalize-space()='Signed out of the Clever simulator']",
        |url| url.starts_with(&sim_logout),
    )
    .await;
    b.goto(&rig.demo.url("/_gateway/me")).await;
    let me: serde_json::Value = serde_json::from_str(&b.body_text().await).expect("JSON");
    assert_eq!(me["error"], "unauthenticated", "signed out: {me}");
    rig.finish().await;
}
