//! A real Django site behind the real gateway (section 4b): Django's own RemoteUserMiddleware
//! and RemoteUserBackend know users only by the `X-Remote-User` header the gateway builds from
//! the Clever record (tests/django_app). The simulator signs people in. Skipped, with a message,
//! where Debian's python3-django is not installed.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use reqwest::cookie::{CookieStore, Jar};
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";
const SKIPPED: &str = "SKIPPED: python3-django not installed (apt-get install python3-django)";

/// The demo student (José Ñúñez, student number 100234) and a teacher without a district
/// username (Maria Lopez): see `sim::demo_users`.
const STUDENT: &str = "5fc43758db087d0be186c29d";
const TEACHER: &str = "5fc43758db087d0be186c2a1";

fn django_installed() -> bool {
    Command::new(PYTHON)
        .args(["-c", "import django"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Django test site on a free loopback port, killed when dropped.
struct Django {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Django {
    fn start() -> Django {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let serve = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/django_app/serve.py");
        let mut child = Command::new(PYTHON)
            .arg(serve)
            .arg(port.to_string())
            .arg(dir.path().join("db.sqlite3"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Django site");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("ready http://127.0.0.1:"), "{line:?}");
        // `ready` is printed just before the server binds.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "Django did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Django {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Django {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway in front of Django, as the docs recommend for it.
fn upstream(django: &Django) -> String {
    format!(
        r#"[[upstream]]
name = "django"
url = "http://127.0.0.1:{}"
public_paths = ["/public/"]
app_cookies = ["sessionid"]
logout_paths = ["/logout/"]
[upstream.set_headers]
"X-Remote-User" = {{ student = "{{student_number}}", teacher = ["{{district_username}}", "{{email|local}}"], default = "{{email|lower}}" }}
"#,
        django.port
    )
}

/// The value of cookie `name` the jar would send to `url`.
fn cookie_in(jar: &Jar, url: &str, name: &str) -> Option<String> {
    let all = jar.cookies(&url.parse().unwrap())?;
    all.to_str()
        .unwrap()
        .split("; ")
        .find_map(|c| c.strip_prefix(&format!("{name}=")).map(str::to_string))
}

async fn json(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Value {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.unwrap()
}

/// Signs the browser in by opening the site's home page: through Clever (the simulator's
/// signed-in user) and the callback, whose answer is returned with the page Django shows.
async fn open_home(gw: &Gateway, client: &reqwest::Client) -> (reqwest::Response, String) {
    let cb = callback_for(client, &gw.url("/")).await;
    let done = client.get(&cb).send().await.unwrap();
    assert_eq!(done.status(), 302, "signed in");
    let page = client.get(gw.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let text = page.text().await.unwrap();
    (done, text)
}

#[tokio::test]
async fn django_knows_each_user_by_the_header_the_gateway_builds() {
    if !django_installed() {
        return eprintln!("{SKIPPED}");
    }
    let django = Django::start();
    let (sim, gw) = on_a_free_port(async |port| {
        let sim = sim_for(port, Some(STUDENT)).await;
        let cfg = format!("{}\n{}", base_config(port, &sim, ""), upstream(&django));
        let gw = try_start_gateway_env(port, &cfg, sim.client_secret(), &[]).await?;
        Ok((sim, gw))
    })
    .await;
    let home = gw.url("/");
    let jar = Arc::new(Jar::default());
    let client = browser_with(&jar);

    // The student: Django creates and shows the user named by the student number.
    let (_, page) = open_home(&gw, &client).await;
    assert!(page.contains("Signed in to Django as 100234"), "{page}");
    let me = json(&client, &gw.url("/whoami"), &[]).await;
    assert_eq!(me["username"], "100234", "{me}");
    assert_eq!(me["users"], serde_json::json!(["100234"]), "{me}");
    let student_sid = cookie_in(&jar, &home, "sessionid").expect("Django's session");

    // The app's own sign-out ends the gateway session too: the next request goes to Clever.
    let out = client.get(gw.url("/logout/")).send().await.unwrap();
    assert_eq!(out.status(), 200);
    assert!(out.text().await.unwrap().contains("Signed out of Django"));
    assert_eq!(cookie_in(&jar, &home, "clever_gateway"), None);
    let next = client.get(&home).send().await.unwrap();
    assert_eq!(next.status(), 302);
    assert!(
        location(&next).contains("/oauth/authorize"),
        "{}",
        location(&next)
    );

    // Signed in again, then the gateway session ends without the browser's help (its time is
    // up): the browser still holds the student's Django session when the next user comes.
    let (_, page) = open_home(&gw, &client).await;
    assert!(page.contains("Signed in to Django as 100234"), "{page}");
    let student_sid_2 = cookie_in(&jar, &home, "sessionid").expect("Django's session");
    assert_ne!(student_sid, student_sid_2);
    let gateway_cookie = cookie_in(&jar, &home, "clever_gateway").unwrap();
    let ended = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(gw.url("/_gateway/logout"))
        .header("cookie", format!("clever_gateway={gateway_cookie}"))
        .header("origin", gw.url(""))
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 302);
    assert_eq!(
        cookie_in(&jar, &home, "sessionid").as_deref(),
        Some(student_sid_2.as_str()),
        "the browser still has the student's Django session"
    );

    // The teacher signs in on the same browser: the sign-in expires the student's Django
    // session, and Django shows the teacher (no district username: the email's local part).
    sim.set_auto_login(Some(TEACHER));
    let (signed_in, page) = open_home(&gw, &client).await;
    let expired = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .any(|c| c.starts_with("sessionid=;") && c.contains("Max-Age=0") && c.contains("Path=/"));
    assert!(expired, "sessionid expired at sign-in: {signed_in:?}");
    assert!(
        page.contains("Signed in to Django as maria.lopez"),
        "{page}"
    );
    let me = json(&client, &gw.url("/whoami"), &[]).await;
    assert_eq!(me["username"], "maria.lopez", "{me}");
    assert_ne!(
        cookie_in(&jar, &home, "sessionid").as_deref(),
        Some(student_sid_2.as_str())
    );

    // A forged header never reaches Django: signed in ...
    let forged = [("X-Remote-User", "admin"), ("X_Remote_User", "admin")];
    let me = json(&client, &gw.url("/whoami"), &forged).await;
    assert_eq!(me["username"], "maria.lopez", "{me}");
    assert_eq!(
        me["remote_user_headers"],
        serde_json::json!({"HTTP_X_REMOTE_USER": "maria.lopez"}),
        "{me}"
    );
    // ... and on the public path, without a session.
    let me = json(&browser(), &gw.url("/public/whoami"), &forged).await;
    assert_eq!(me["authenticated"], false, "{me}");
    assert_eq!(me["remote_user_headers"], serde_json::json!({}), "{me}");
    assert_eq!(
        me["users"],
        serde_json::json!(["100234", "maria.lopez"]),
        "no user made from a forged header: {me}"
    );

    // The same forged header sent to Django directly does sign in as anyone: it is the
    // gateway that stops it.
    let direct = format!("http://127.0.0.1:{}/whoami", django.port);
    let me = json(&reqwest::Client::new(), &direct, &forged[..1]).await;
    assert_eq!(me["username"], "admin", "{me}");
}
